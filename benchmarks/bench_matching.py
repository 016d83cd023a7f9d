"""What the hour's market clearing costs, numpy rounds engine against the compiled one.

Builds the default scenario at several sizes and runs it; every hour clears the
market twice on the same orders, once with each matching engine (which goes
first alternates hour by hour), checks that both give the same contracts, and
times :meth:`Market.clear` and the matching rule inside it. Prints milliseconds
per hour (means over the run), matching rounds, the speed-up, and the cost ratio
against n log n between consecutive sizes (about 1 means n log n growth).

    python benchmarks/bench_matching.py --agents 1000 10000 --hours 320

The compiled engine is numba's (compiled on first use, then cached on disk: run
once before timing a fresh install).
"""

from __future__ import annotations

import argparse
import math
import time
from contextlib import contextmanager

import numpy as np

from dipi_abm import DIPIModel
from dipi_abm.rules import matching

COLUMNS = ("buyer", "seller", "volume", "ask", "bid", "wheeling")


@contextmanager
def engine(name: str):  # noqa: ANN201
    """Match with the numpy rounds engine (the reference, as before the compiled rounds:
    numpy rounds, the CMA choice loop compiled) or the compiled one."""
    saved = matching._compiled
    if name == "numpy":
        matching._compiled = lambda: None
    try:
        yield
    finally:
        matching._compiled = saved


def warm_up(rule: str) -> None:
    """Compile the engine (or load it from numba's cache) before anything is timed."""
    DIPIModel(rng=0, n_dpgc=5, n_users=45, matching=rule, hours=3, ledger_detail="off").run()


def measure(agents: int, rule: str, hours: int, seed: int) -> dict[str, float]:
    warm_up(rule)
    n_dpgc = agents // 10
    model = DIPIModel(rng=seed, n_dpgc=n_dpgc, n_users=agents - n_dpgc, matching=rule,
                      hours=hours, ledger_detail="off", agent_report_every=hours)
    market = model.market
    clear, match = market.clear, market.match
    spent = {"numpy clear": 0.0, "compiled clear": 0.0, "numpy match": 0.0,
             "compiled match": 0.0}
    orders, rounds = [], []
    current = ["numpy"]

    def timed_match(book, net):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        out = match(book, net)
        spent[f"{current[0]} match"] += time.perf_counter() - t0
        return out

    def both_engines(hour_orders):  # noqa: ANN001, ANN202
        results = {}
        names = ("numpy", "compiled") if len(orders) % 2 else ("compiled", "numpy")
        for name in names:
            current[0] = name
            with engine(name):
                t0 = time.perf_counter()
                results[name] = clear(hour_orders)
                spent[f"{name} clear"] += time.perf_counter() - t0
        a, b = results["numpy"].contracts, results["compiled"].contracts
        if a.rounds != b.rounds or not all(np.array_equal(getattr(a, f), getattr(b, f))
                                           for f in COLUMNS):
            raise AssertionError(f"the engines differ in hour {len(orders)}")
        book = hour_orders.book
        orders.append(book.seller_volume.size + book.buyer_volume.size)
        rounds.append(b.rounds)
        return results["compiled"]

    market.match = timed_match
    market.clear = both_engines
    model.run()
    out = {k: 1000 * v / len(orders) for k, v in spent.items()}
    out.update(orders=float(np.mean(orders)), rounds=float(np.mean(rounds)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, nargs="+", default=[1000, 2000, 5000, 10000, 20000])
    ap.add_argument("--rules", nargs="+", default=["price_time", "cma"])
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print("ms per hour (mean); clear = Market.clear, match = the matching rule inside it")
    print(f"{'rule':>10} {'agents':>7} {'orders/h':>9} {'rounds':>7} {'numpy clear':>12} "
          f"{'compiled clear':>15} {'speed-up':>9} {'numpy match':>12} {'compiled match':>15} "
          f"{'growth vs n log n':>18}")
    for rule in args.rules:
        prev = None
        for n in args.agents:
            r = measure(n, rule, args.hours, args.seed)
            ratio = ""
            if prev is not None:
                nlogn = (r["orders"] * math.log(r["orders"])) / (prev[1] * math.log(prev[1]))
                ratio = f"{(r['compiled clear'] / prev[0]) / nlogn:18.2f}"
            print(f"{rule:>10} {n:>7} {r['orders']:>9.0f} {r['rounds']:>7.1f} "
                  f"{r['numpy clear']:>12.3f} {r['compiled clear']:>15.3f} "
                  f"{r['numpy clear'] / r['compiled clear']:>9.2f} {r['numpy match']:>12.3f} "
                  f"{r['compiled match']:>15.3f} {ratio}")
            prev = (r["compiled clear"], r["orders"])


if __name__ == "__main__":
    main()
