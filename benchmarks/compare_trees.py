"""Same seed, same results? Two source trees' KPIs on a set of scenarios, compared.

Runs every scenario below under each tree (``PYTHONPATH=<tree>``, a process each) and
compares the summary and every hourly KPI of every hour: integer values must be equal,
floating-point values within ``--rtol`` (relative) or ``--atol`` (absolute), NaN equal
to NaN. Prints one line per scenario and the largest relative difference seen.

    git worktree add /tmp/base 1b99905
    python benchmarks/compare_trees.py /tmp/base .
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

SMALL = {"n_dpgc": 12, "n_users": 60, "hours": 240, "seed": 7}
SCENARIOS: dict[str, dict] = {
    "default": {},
    "cma": {"matching": "cma"},
    "cma_strict": {"matching": "cma_strict", "learning": "roth_erev"},
    "centralized": {"matching": "centralized"},
    "der_cbc": {"consensus": "der_cbc", "wheeling": "distance", "n_miners": 3},
    "learning": {"learning": "epsilon_greedy", "opportunist_share": 0.3},
    "policies": {"breach_policy": "imbalance_penalty+deposit+credit_gate",
                 "learning": "roth_erev"},
    "tou_storage_lines": {"tariff": "tou", "storage_share": 0.5, "line_limit_kw": 2000.0,
                          "grid_intake_limit_kw": 5000.0, "credit_rule": "ema"},
    "hashed_poca": {"poca_mode": "hashed", "hours": 48, "credit_rule": "window",
                    "faulty_share": 0.2},
    "large": {"n_dpgc": 200, "n_users": 1800, "hours": 72, "matching": "cma"},
}

CHILD = """
import json, sys
from dipi_abm.model import DIPIModel
m = DIPIModel(**json.loads(sys.argv[1])).run()
s = {k: v for k, v in m.summary().items() if k not in ("params", "version", "chains")}
print(json.dumps({"summary": s, "hourly": m.hourly_dataframe().to_dict("list")}))
"""


def run(tree: str, params: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(params)], env=env,
                         capture_output=True, text=True, check=True, cwd=tree)
    return json.loads(out.stdout.strip().splitlines()[-1])


def diff(a: object, b: object, path: str, rtol: float, atol: float,
         worst: list[float]) -> list[str]:
    """Where ``a`` and ``b`` differ beyond the tolerance (ints and strings exactly)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys differ: {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in diff(a[k], b[k], f"{path}.{k}", rtol, atol, worst)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} against {len(b)} values"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in diff(x, y, f"{path}[{i}]", rtol, atol, worst)]
    if isinstance(a, float) or isinstance(b, float):
        x, y = float(a), float(b)  # type: ignore[arg-type]
        if math.isnan(x) and math.isnan(y):
            return []
        scale = max(abs(x), abs(y))
        worst.append(abs(x - y) / scale if scale else 0.0)
        return [] if abs(x - y) <= max(atol, rtol * scale) else [f"{path}: {x!r} != {y!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rtol", type=float, default=1e-9)
    ap.add_argument("--atol", type=float, default=1e-9)
    ap.add_argument("--only", nargs="*", help="scenario names (default: all)")
    args = ap.parse_args()
    failed, worst = 0, [0.0]
    for name, extra in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        params = {**SMALL, **extra}
        problems = diff(run(args.before, params), run(args.after, params), name,
                        args.rtol, args.atol, worst)
        failed += bool(problems)
        print(f"{name:18s} {'same' if not problems else f'{len(problems)} differences'}")
        for p in problems[:5]:
            print("   ", p)
    print(f"largest relative difference of a float KPI: {max(worst):.3g}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
