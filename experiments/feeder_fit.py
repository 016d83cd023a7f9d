"""Does the default population fit its feeder? (docs/model.md section 3)

Runs the default week for --reps seeds and reports, per seed and as a mean with a 95 %
interval: the peak load, the DPGC and rooftop PV capacity against the IEEE 33-bus design
load (3,715 kW), the peak line loading (share of rating: run maximum and hourly mean) and
the users' end-of-week balances (lowest, median). Writes feeder_fit.csv and feeder_fit.png.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from _common import (
    PALETTE,
    mean_ci,
    parse,
    parser,
    rep_seeds,
    save_csv,
    save_png,
    style,
)

from dipi_abm import DIPIModel

DESIGN_LOAD_KW = 3715.0  # Baran & Wu (1989), the IEEE 33-bus feeder's design load


def measure(seed: int, hours: int) -> dict[str, float]:
    m = DIPIModel(seed=seed, hours=hours, ledger_detail="off").run()
    h, s, su = m.hourly_dataframe(), m.state, m.summary()
    users = s.kind == 1
    return {"seed": seed, "peak_load_kw": float(h.load_kwh.max()),
            "dpgc_capacity_kw": float(s.capacity_kw[~users].sum()),
            "rooftop_pv_kw": float(s.capacity_kw[users].sum()),
            "peak_line_loading": float(su["peak_line_loading"]),
            "mean_line_loading": float(h.peak_line_loading.mean()),
            "user_balance_min_yuan": float(s.balance[users].min()),
            "user_balance_median_yuan": float(np.median(s.balance[users]))}


def plot(df: pd.DataFrame, path: Path) -> None:
    style()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(df))
    a.bar(x - 0.2, df.peak_load_kw, 0.4, color=PALETTE[0], label="peak load")
    a.bar(x + 0.2, df.dpgc_capacity_kw, 0.4, color=PALETTE[1], label="DPGC capacity")
    a.axhline(DESIGN_LOAD_KW, color="k", ls="--", lw=1, label="design load 3,715 kW")
    a.set(xticks=x, xticklabels=df.seed, xlabel="seed", ylabel="kW",
          title="Population against the feeder")
    a.legend(frameon=False)
    b.bar(x, df.peak_line_loading, color=PALETTE[2], label="run maximum")
    b.plot(x, df.mean_line_loading, "o", color="k", label="hourly mean")
    b.axhline(1.0, color="r", ls="--", lw=1, label="rating")
    b.set(xticks=x, xticklabels=df.seed, xlabel="seed", ylabel="share of rating",
          title="Peak line loading", ylim=(0, 1.1))
    b.legend(frameon=False)
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> None:
    ap = parser(__doc__, out="results/feeder_fit", reps=10, quick_reps=2,
                reps_help="seeds (default weeks)")
    args = parse(ap, argv)
    hours = 24 if args.quick else 168
    df = pd.DataFrame([measure(sd, hours) for sd in rep_seeds(args.seed, args.reps)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_csv(df, out / "feeder_fit.csv")
    plot(df, out / "feeder_fit.png")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for col in ("peak_load_kw", "dpgc_capacity_kw", "peak_line_loading"):
        mean, lo, hi = mean_ci(df[col].to_numpy())
        print(f"{col}: {float(mean):.3f} (95 % CI {float(lo):.3f} to {float(hi):.3f})")


if __name__ == "__main__":
    main(sys.argv[1:])
