"""Batch parameter sweeps: specs, designs, process-pool and Dask backends,
resumable result folders (engine)."""
