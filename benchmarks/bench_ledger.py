"""Cost of the ledger levels, of signing blocks, of verifying a year, and speed of hashed POCA.

Runs the default scenario scaled to ``--agents`` parties for ``--hours`` hours
with ledger_detail off, digest and full (full on fewer hours: it stores every
record), in memory and on disk, and prints the cost per simulated hour; then
the cost of the Ed25519 part of it (key pairs for every node at the start, three
signatures per period); then the time ``verify-ledger`` takes on a digest ledger
of ``--verify-hours`` periods (default a year); then SHA-256 nonce-search speed
(hashes per second) of the hashed mode.

At digest detail a block stores a few table digests, whatever its records held,
so verifying costs the same per block whatever the period's trades were. The
year's ledger is therefore the real run's genesis and first ``--hours`` hours,
then the last real period's records again for every later hour, produced and
signed by nodes drawn at random (``--real-year`` simulates every hour instead:
about as long as the per-hour figure times 8,760).

    python benchmarks/bench_ledger.py --agents 10000 --hours 300
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from dipi_abm import DIPIModel
from dipi_abm.ledger.keys import KeyRing
from dipi_abm.ledger.store import signed_message
from dipi_abm.ledger.verify import verify_ledger
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


def signing_cost(agents: int) -> None:
    """Key pairs for every node (once per run) and the three signatures of a period."""
    names = [f"{i:040x}" for i in range(agents + 1)]
    t0 = time.perf_counter()
    keys = KeyRing.generate(names)
    public = keys.public_keys()
    gen = time.perf_counter() - t0
    signers = [keys.signer(n) for n in names[:100]]
    messages = [signed_message(f"{k:064x}") for k in range(3)]
    n = 2000
    t0 = time.perf_counter()
    for k in range(n):
        for m in messages:
            signers[k % 100].sign(m)
    per_period = (time.perf_counter() - t0) / n
    print(f"Ed25519: {agents + 1} key pairs in {gen:.2f} s (once per run, {len(public)} "
          f"public keys); 3 signatures per period {1e3 * per_period:.3f} ms")


def verify_year(agents: int, real_hours: int, hours: int, real_year: bool,
                keep: str | None = None) -> None:
    n_dpgc = agents // 10
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "year.sqlite"
        model = DIPIModel(seed=1, n_dpgc=n_dpgc, n_users=agents - n_dpgc, hours=hours,
                          agent_report_every=24 * 7, ledger=str(path))
        ledger, rng, last = model.ledger, np.random.default_rng(0), {}
        submit = ledger.submit_period

        def keep_last(hour: int, records: dict, signer: object, **kw: object) -> None:
            last["records"] = records  # the last real period, appended again below
            submit(hour, records, signer, **kw)

        ledger.submit_period = keep_last
        t0 = time.perf_counter()
        model.run(hours if real_year else real_hours)
        if not real_year:
            prepared = ledger.prepare_period(last["records"])
            winners = rng.integers(0, len(model.addresses), hours - real_hours)
            for hour, w in enumerate(winners.tolist(), start=real_hours + 1):
                ledger.append_period(hour, prepared, model.node_keys.signer(model.addresses[w]))
        built = time.perf_counter() - t0
        anchor = ledger.heads()
        model.close()
        size = path.stat().st_size / 2**20
        t0 = time.perf_counter()
        report = verify_ledger(path, anchor)
        dt = time.perf_counter() - t0
        if keep:  # for timing `dipi-abm verify-ledger KEEP` as a whole process
            shutil.copyfile(path, keep)
    assert report.ok, report
    print(f"verify-ledger, {agents} parties, {hours} periods at digest ({report.blocks} blocks, "
          f"{size:.0f} MiB, built in {built:.0f} s): {dt:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=10000)
    ap.add_argument("--hours", type=int, default=300)
    ap.add_argument("--full-hours", type=int, default=24)
    ap.add_argument("--verify-hours", type=int, default=8760)
    ap.add_argument("--real-year", action="store_true")
    ap.add_argument("--keep", metavar="PATH", help="copy the verified year's ledger here")
    ap.add_argument("--only", choices=("hour", "sign", "verify", "pow"),
                    help="run one part only")
    args = ap.parse_args()
    if args.only in (None, "sign"):
        signing_cost(args.agents)
    if args.only in (None, "verify"):
        verify_year(args.agents, min(args.hours, args.verify_hours), args.verify_hours,
                    args.real_year, args.keep)
    if args.only in (None, "hour"):
        per_hour_table(args)
    if args.only in (None, "pow"):
        pow_speed()


def per_hour_table(args: argparse.Namespace) -> None:
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


def pow_speed() -> None:
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
