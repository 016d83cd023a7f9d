"""Server-side cost of one dashboard Step: the model's hour, the snapshot, the figures.

For each population (10 % DPGCs) it builds the default scenario, plays a few
warm-up hours, then times ``--hours`` Steps as the page does them: one
``model.step()``, :func:`~dipi_abm.dashboard.views.take_snapshot`, the grid
and credit figures redrawn to PNG by one session's figure views, and the
series chart's ECharts option built (the browser draws it).
It prints the median and the maximum of each part and of the whole (the
maximum includes the few hours whose axis limits grew and whose frame was
redrawn). The browser's share (websocket, PNG decoding) comes on top: the
browser tests print the time from the Step click to the new hour drawn.

    python benchmarks/bench_dashboard.py --parties 1000 10000 --hours 30
"""

from __future__ import annotations

import argparse
import statistics
import time

from dipi_abm import DIPIModel
from dipi_abm.dashboard import charts, figures, views


def measure(parties: int, hours: int, warmup: int = 3) -> dict[str, list[float]]:
    n_dpgc = parties // 10
    model = DIPIModel(seed=1, n_dpgc=n_dpgc, n_users=parties - n_dpgc, hours=hours + warmup)
    session = figures.make_views()
    for _ in range(warmup):
        model.step()
        figures.render_all(views.take_snapshot(model, 1), session)
    times: dict[str, list[float]] = {k: [] for k in ("step", "snapshot", *session, "series",
                                                     "total")}
    for _ in range(hours):
        t0 = time.perf_counter()
        model.step()
        t1 = time.perf_counter()
        snap = views.take_snapshot(model, 1)
        t2 = time.perf_counter()
        times["step"].append(t1 - t0)
        times["snapshot"].append(t2 - t1)
        for name, view in session.items():
            a = time.perf_counter()
            view.render(snap)
            times[name].append(time.perf_counter() - a)
        a = time.perf_counter()
        charts.series_option(snap)
        times["series"].append(time.perf_counter() - a)
        times["total"].append(time.perf_counter() - t0)
    model.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parties", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--hours", type=int, default=30)
    args = ap.parse_args()
    for parties in args.parties:
        times = measure(parties, args.hours)
        parts = ", ".join(f"{k} {1000 * statistics.median(v):.0f}" for k, v in times.items()
                          if k != "total")
        total = times["total"]
        print(f"{parties:>6,} parties: one Step {1000 * statistics.median(total):.0f} ms median, "
              f"{1000 * max(total):.0f} ms max over {args.hours} hours ({parts} ms median)")


if __name__ == "__main__":
    main()
