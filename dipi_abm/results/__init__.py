"""What a run reports: hourly and per-party collection (collect), result files
(output) and the run's figures (plots)."""
