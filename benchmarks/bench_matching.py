"""How the hour's matching cost grows with the number of orders (price_time vs cma).

Builds the default scenario at several sizes, runs a day so every hour of the
day is seen, and times the matching rule alone on each hour's order book.
Prints milliseconds per hour, matching rounds, and the cost ratio against
n log n between consecutive sizes (about 1 means n log n growth).

    python benchmarks/bench_matching.py --agents 1000 2000 5000 10000 20000
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from dipi_abm import DIPIModel


def measure(agents: int, rule: str, hours: int, seed: int) -> tuple[float, float, float]:
    n_dpgc = agents // 10
    model = DIPIModel(seed=seed, n_dpgc=n_dpgc, n_users=agents - n_dpgc, matching=rule,
                      hours=hours, ledger_detail="off", agent_report_every=hours)
    times, orders, rounds = [], [], []
    inner = model._matching

    def timed(book, net):
        t0 = time.perf_counter()
        out = inner(book, net)
        times.append(time.perf_counter() - t0)
        orders.append(book.seller_volume.size + book.buyer_volume.size)
        rounds.append(out.rounds)
        return out

    model._matching = timed
    model.run()
    return 1000 * float(np.mean(times)), float(np.mean(orders)), float(np.mean(rounds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, nargs="+", default=[1000, 2000, 5000, 10000, 20000])
    ap.add_argument("--rules", nargs="+", default=["price_time", "cma"])
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"{'rule':>10} {'agents':>7} {'orders/h':>9} {'ms/h':>8} {'rounds':>7} "
          f"{'growth vs n log n':>18}")
    for rule in args.rules:
        prev = None
        for n in args.agents:
            ms, orders, rounds = measure(n, rule, args.hours, args.seed)
            ratio = ""
            if prev is not None:
                nlogn = (orders * math.log(orders)) / (prev[1] * math.log(prev[1]))
                ratio = f"{(ms / prev[0]) / nlogn:18.2f}"
            print(f"{rule:>10} {n:>7} {orders:>9.0f} {ms:>8.2f} {rounds:>7.1f} {ratio}")
            prev = (ms, orders)


if __name__ == "__main__":
    main()
