"""A sweep on a real Dask cluster: `dask scheduler` and two `dask worker` processes on
127.0.0.1, driven by `dipi-abm sweep --scheduler` as a user would (README, "Running a
sweep on a Dask cluster")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from dipi_abm.sweep.engine import run_sweep

distributed = pytest.importorskip("distributed")

SPEC = """
[sweep]
design = "factorial"
replications = 2
seed = 5
[base]
n_dpgc = 3
n_users = 12
hours = 12
[factors]
natural_factor = [0.0, 0.2]
matching = ["price_time", "cma"]
"""
STARTUP_S = 90  # generous: the machine may be busy


def _dask(*args: str, log: Path) -> subprocess.Popen:
    """Start a `dask` command as its own process group (so cleanup takes its children)."""
    fh = open(log, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=fh,
                            stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = fh  # type: ignore[attr-defined]
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=20)
    proc.log.close()  # type: ignore[attr-defined]


def _wait_for(condition, what: str, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + STARTUP_S
    while not condition():
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}"
                              for log in logs if log.exists())
            pytest.fail(f"Dask cluster: {what} not ready "
                        f"({'a process exited' if dead else 'timed out'})\n{tails}")
        time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A scheduler on a free port of 127.0.0.1 and two single-threaded workers."""
    scheduler_file = tmp_path / "scheduler.json"
    logs = [tmp_path / "scheduler.log", tmp_path / "worker0.log", tmp_path / "worker1.log"]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_dask("scheduler", "--host", "127.0.0.1", "--port", "0",
                           "--dashboard-address", ":0", "--no-show",
                           "--scheduler-file", str(scheduler_file), log=logs[0]))

        def has_address() -> bool:
            try:
                return bool(json.loads(scheduler_file.read_text()).get("address"))
            except (OSError, ValueError):
                return False

        _wait_for(has_address, "scheduler", procs, logs)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in (1, 2):
            procs.append(_dask("worker", address, "--nthreads", "1", "--nworkers", "1",
                               "--host", "127.0.0.1", "--dashboard-address", ":0",
                               "--local-directory", str(tmp_path / f"worker{i}"),
                               "--name", f"w{i}", log=logs[i]))
        with distributed.Client(address, timeout="30s") as client:
            _wait_for(lambda: len(client.scheduler_info()["workers"]) >= 2, "two workers",
                      procs, logs)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_sweep_runs_on_a_scheduler_and_two_worker_processes(cluster, tmp_path):
    spec = tmp_path / "sweep.toml"
    spec.write_text(SPEC)
    out = tmp_path / "on_cluster"
    done = subprocess.run([sys.executable, "-m", "dipi_abm.cli", "sweep", str(spec),
                           "--out", str(out), "--scheduler", cluster, "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 8 and runs["run_id"].is_unique
    # both worker processes ran some of them
    with distributed.Client(cluster, timeout="30s") as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2 and all(n > 0 for n in executed.values()), executed
    assert sum(executed.values()) >= 8
    # the same runs as in this process, to the bit
    local = run_sweep(spec, tmp_path / "local", workers=1, progress=False)
    assert_frame_equal(runs, local, check_exact=True)
