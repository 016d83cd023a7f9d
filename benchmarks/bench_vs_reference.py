"""Build plus N hours in-process: the columnar model against the per-agent Mesa reference.

Each side runs in a fresh process of its own (imports excluded, build included), and
the CPU seconds of build and run are compared, at the same parties (10 % DPGCs) and
hours as ``reference_per_agent.py``. Two rows: the model's default scenario (signed
in-memory ledger, line ratings and curtailment, the economy), and the model within
the reference's scope (``ledger_detail = "off"``, ``line_rating_margin = inf``: no
ledger and no line limits, as the reference has neither).

    python benchmarks/bench_vs_reference.py --parties 10000 --hours 48
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The model's settings per row: its defaults, and the reference's scope.
SCOPES = {"default": {}, "reference": {"ledger_detail": "off", "line_rating_margin": float("inf")}}


def child(kind: str, parties: int, hours: int) -> dict:
    if kind in SCOPES:
        from dipi_abm import DIPIModel

        c0 = time.process_time()
        n_dpgc = parties // 10
        m = DIPIModel(seed=1, n_dpgc=n_dpgc, n_users=parties - n_dpgc, hours=hours,
                      **SCOPES[kind])
        m.run()
    else:
        sys.path.insert(0, str(HERE))
        from reference_per_agent import ReferenceModel

        c0 = time.process_time()
        m = ReferenceModel(parties, seed=1)
        for _ in range(hours):
            m.step()
    return {"cpu_s": time.process_time() - c0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parties", type=int, default=10_000)
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.parties, args.hours)))
        return
    cpu = {}
    for kind in (*SCOPES, "per-agent"):
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--parties",
                              str(args.parties), "--hours", str(args.hours)],
                             capture_output=True, text=True, check=True)
        cpu[kind] = json.loads(out.stdout.strip().splitlines()[-1])["cpu_s"]
    for scope in SCOPES:
        print(f"{args.parties:,} parties, build + {args.hours} h, model ({scope} scope) "
              f"{cpu[scope]:.2f} CPU-s, per-agent reference {cpu['per-agent']:.2f} CPU-s: "
              f"{cpu['per-agent'] / cpu[scope]:.1f}x")


if __name__ == "__main__":
    main()
