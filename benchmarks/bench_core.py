"""Speed and memory of the hourly market core.

Runs the default scenario scaled to 1,000 and 10,000 agents (10 % DPGCs) for a
simulated year and prints agent-hours per second and peak resident memory.
Each size runs in its own process so that its peak memory is its own.

    python benchmarks/bench_core.py                  # both sizes, 8,760 h
    python benchmarks/bench_core.py --agents 10000 --hours 2000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(agents: int, hours: int, seed: int, every: int) -> dict:
    from dipi_abm import DIPIModel

    n_dpgc = agents // 10
    t0 = time.perf_counter()
    model = DIPIModel(seed=seed, n_dpgc=n_dpgc, n_users=agents - n_dpgc, hours=hours,
                      agent_report_every=every)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.run()
    run = time.perf_counter() - t0
    hourly = model.hourly_dataframe()
    return {
        "agents": agents,
        "hours": hours,
        "build_s": round(build, 2),
        "run_s": round(run, 2),
        "agent_hours_per_s": agents * hours / run,
        "hours_per_s": hours / run,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "mean_contracts_per_hour": float(hourly["n_contracts"].mean()),
        "mean_matching_rounds": float(hourly["matching_rounds"].mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--hours", type=int, default=8760)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--every", type=int, default=24, help="agent_report_every (hours)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one(args.agents[0], args.hours, args.seed, args.every)))
        return
    print(f"{'agents':>7} {'hours':>6} {'run s':>8} {'agent-h/s':>12} {'h/s':>8} "
          f"{'peak RSS MB':>12} {'contracts/h':>12} {'rounds':>7}")
    for n in args.agents:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--agents", str(n), "--hours",
             str(args.hours), "--seed", str(args.seed), "--every", str(args.every)],
            check=True, capture_output=True, text=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['agents']:>7} {r['hours']:>6} {r['run_s']:>8.1f} "
              f"{r['agent_hours_per_s']:>12.3g} {r['hours_per_s']:>8.0f} "
              f"{r['peak_rss_mb']:>12.0f} {r['mean_contracts_per_hour']:>12.0f} "
              f"{r['mean_matching_rounds']:>7.1f}")


if __name__ == "__main__":
    main()
