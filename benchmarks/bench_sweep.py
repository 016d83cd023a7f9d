"""Throughput of batch sweeps: runs per second with 1 and 2 local workers (and Dask).

The default sweep is 100 one-week runs with 1,000 agents (n_dpgc = 100,
n_users = 900, hours = 168): a Latin hypercube of 20 points over three credit and
forecast keys, 5 replications each. Every backend writes its own folder from
scratch; the script checks that all of them produce identical runs.parquet and
prints wall time, runs/s and the speed-up over one worker. Start-up (spawning the
workers, starting a Dask cluster) is included in the wall time.

    python benchmarks/bench_sweep.py                 # 1 and 2 workers
    python benchmarks/bench_sweep.py --dask          # and a 2-worker Dask LocalCluster
    python benchmarks/bench_sweep.py --cluster       # and `dask scheduler` + 1, 2 `dask worker`
                                                     # processes on 127.0.0.1 (--scheduler)
    python benchmarks/bench_sweep.py --points 4 --replications 5 --agents 200
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def spec(points: int, replications: int, agents: int, hours: int) -> dict:
    n_dpgc = agents // 10
    return {
        "sweep": {"design": "lhs", "samples": points, "replications": replications,
                  "seed": 2024},
        "base": {"hours": hours, "n_dpgc": n_dpgc, "n_users": agents - n_dpgc},
        "factors": {"natural_factor": [0.0, 0.25], "commitment_ratio": [0.8, 1.3],
                    "forecast_sd_wind": [0.1, 0.4]},
    }


@contextmanager
def dask_cluster(workers: int, folder: Path) -> Iterator[str]:
    """A real scheduler and ``workers`` single-threaded worker processes on 127.0.0.1
    (free ports); yields the scheduler's address; stops them all on the way out."""
    from distributed import Client

    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dask", *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    info = folder / "scheduler.json"
    procs = [start("scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                   ":0", "--no-show", "--scheduler-file", str(info))]
    try:
        deadline = time.monotonic() + 120
        while not (info.exists() and info.stat().st_size):
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError("dask scheduler did not start")
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        for i in range(workers):
            procs.append(start("worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                               "--dashboard-address", ":0", "--local-directory",
                               str(folder / f"worker{i}")))
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--replications", type=int, default=5)
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--hours", type=int, default=168)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                    help="local pool sizes to time (1: in this process)")
    ap.add_argument("--dask", action="store_true", help="also time a Dask LocalCluster "
                    "with the largest --workers")
    ap.add_argument("--cluster", action="store_true", help="also time a real Dask cluster: "
                    "`dask scheduler` and 1, then 2 `dask worker` processes on 127.0.0.1 "
                    "(start-up not included)")
    ap.add_argument("--repeat", type=int, default=1, help="time every backend this many "
                    "times, interleaved, and keep the best (other load on the machine only "
                    "ever slows a sweep down)")
    args = ap.parse_args()

    import pandas as pd

    from dipi_abm.sweep.engine import run_sweep

    s = spec(args.points, args.replications, args.agents, args.hours)
    n_runs = args.points * args.replications
    print(f"sweep: {n_runs} runs of {args.hours} h with {args.agents} agents, "
          f"{os.cpu_count()} cores, load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'backend':>26} {'wall s':>8} {'runs/s':>8} {'speed-up':>9}")
    cases = [(f"{w} worker{'s' if w > 1 else ''}", {"workers": w}) for w in args.workers]
    if args.dask:
        w = max(args.workers)
        cases.append((f"dask LocalCluster x{w}", {"workers": w, "use_dask": True}))
    if args.cluster:
        cases += [(f"dask cluster, {w} worker{'s' if w > 1 else ''}", {"cluster": w})
                  for w in args.workers]
    best: dict[str, float] = {}
    reference = None
    with tempfile.TemporaryDirectory(prefix="dipi-bench-sweep-") as tmp:
        for rep in range(args.repeat):
            for i, (label, kw) in enumerate(cases):
                out = Path(tmp) / f"case{i}-{rep}"
                if "cluster" in kw:
                    folder = Path(tmp) / f"cluster{i}-{rep}"
                    folder.mkdir()
                    with dask_cluster(kw["cluster"], folder) as address:
                        t0 = time.perf_counter()
                        runs = run_sweep(s, out, progress=False, scheduler=address)
                        wall = time.perf_counter() - t0
                else:
                    t0 = time.perf_counter()
                    runs = run_sweep(s, out, progress=False, **kw)
                    wall = time.perf_counter() - t0
                best[label] = min(best.get(label, wall), wall)
                if reference is None:
                    reference = runs
                else:
                    pd.testing.assert_frame_equal(reference, runs, check_exact=True)
    base_rate = n_runs / best[cases[0][0]]
    for label, _ in cases:
        rate = n_runs / best[label]
        print(f"{label:>26} {best[label]:8.1f} {rate:8.2f} {rate / base_rate:8.2f}x")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("runs.parquet identical across backends")


if __name__ == "__main__":
    main()
