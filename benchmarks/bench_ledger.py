"""Cost of the ledger levels and speed of hashed POCA.

Runs the default scenario scaled to ``--agents`` parties for ``--hours`` hours
with ledger_detail off, digest and full (full on fewer hours: it stores every
record), in memory and on disk, and prints the cost per simulated hour; then
measures SHA-256 nonce-search speed (hashes per second) of the hashed mode.

    python benchmarks/bench_ledger.py --agents 10000 --hours 300
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from dipi_abm import DIPIModel
from dipi_abm.rules.consensus import hashed_race, poca_targets, pow_hash


def per_hour_ms(agents: int, hours: int, **kw: object) -> float:
    n_dpgc = agents // 10
    model = DIPIModel(seed=1, n_dpgc=n_dpgc, n_users=agents - n_dpgc, hours=hours,
                      agent_report_every=24, **kw)
    t0 = time.perf_counter()
    model.run()
    elapsed = time.perf_counter() - t0
    model.close()
    return 1000 * elapsed / hours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=10000)
    ap.add_argument("--hours", type=int, default=300)
    ap.add_argument("--full-hours", type=int, default=24)
    args = ap.parse_args()
    print(f"{args.agents} agents: ms per simulated hour")
    base = per_hour_ms(args.agents, args.hours, ledger_detail="off")
    print(f"  ledger off              {base:8.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for detail, hours in (("digest", args.hours), ("full", args.full_hours)):
            mem = per_hour_ms(args.agents, hours, ledger_detail=detail)
            disk = per_hour_ms(args.agents, hours, ledger_detail=detail,
                               ledger=str(Path(tmp) / f"{detail}.sqlite"))
            size = (Path(tmp) / f"{detail}.sqlite").stat().st_size / hours / 1024
            print(f"  ledger {detail:<7} memory {mem:8.2f} (+{mem - base:.2f})   "
                  f"disk {disk:8.2f} (+{disk - base:.2f}), {size:.1f} KiB per hour")
    n = 200_000
    t0 = time.perf_counter()
    for nonce in range(n):
        pow_hash("ab" * 32, "node", nonce)
    rate = n / (time.perf_counter() - t0)
    print(f"hashed POCA: {rate:,.0f} SHA-256 nonce hashes per second (one core)")
    credit = np.linspace(90, 100, 10)
    targets = poca_targets(credit, 10, 10.0)
    t0 = time.perf_counter()
    hashes = sum(hashed_race(f"{k:064x}", [f"n{i}" for i in range(10)], np.ones(10),
                             targets).hashes for k in range(200))
    dt = time.perf_counter() - t0
    print(f"hashed POCA race, 10 nodes, 10 difficulty bits: {hashes / 200:.0f} hashes and "
          f"{1000 * dt / 200:.1f} ms per block")


if __name__ == "__main__":
    main()
