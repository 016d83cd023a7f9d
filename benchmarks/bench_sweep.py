"""Throughput of batch sweeps: runs per second with 1 and 2 local workers (and Dask).

The default sweep is 100 one-week runs with 1,000 agents (n_dpgc = 100,
n_users = 900, hours = 168): a Latin hypercube of 20 points over three credit and
forecast keys, 5 replications each. Every backend writes its own folder from
scratch; the script checks that all of them produce identical runs.parquet and
prints wall time, runs/s and the speed-up over one worker. Start-up (spawning the
workers, starting a Dask cluster) is included in the wall time.

    python benchmarks/bench_sweep.py                 # 1 and 2 workers
    python benchmarks/bench_sweep.py --dask          # and a 2-worker Dask LocalCluster
    python benchmarks/bench_sweep.py --points 4 --replications 5 --agents 200
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
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
    print(f"{'backend':>22} {'wall s':>8} {'runs/s':>8} {'speed-up':>9}")
    cases = [(f"{w} worker{'s' if w > 1 else ''}", {"workers": w}) for w in args.workers]
    if args.dask:
        w = max(args.workers)
        cases.append((f"dask LocalCluster x{w}", {"workers": w, "use_dask": True}))
    best: dict[str, float] = {}
    reference = None
    with tempfile.TemporaryDirectory(prefix="dipi-bench-sweep-") as tmp:
        for rep in range(args.repeat):
            for i, (label, kw) in enumerate(cases):
                out = Path(tmp) / f"case{i}-{rep}"
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
        print(f"{label:>22} {best[label]:8.1f} {rate:8.2f} {rate / base_rate:8.2f}x")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("runs.parquet identical across backends")


if __name__ == "__main__":
    main()
