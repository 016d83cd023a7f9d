"""[DER-CBC] settlement tests (Tables 1 -> 2; docs/model.md section 5), and what the
rule charges as delivery falls short.

What it reproduces. Three contracts settled by the smart-contract rule with R = 0.657
and F = 0.4 yuan/kWh, each from starting balances of 200 yuan for the buyer, the
seller and the grid company: the buyer pays, the seller and the grid company
receive, exactly as [DER-CBC] Table 2 lists (deterministic: no repetitions needed).

Monte Carlo. ``--reps`` random contracts (one SeedSequence child each): price
uniform between F + wheeling and R, wheeling 0.02, agreed 200 kWh, the buyer
consuming 90-110 % and the seller generating 50-150 % of it. For each, the buyer's
price per kWh consumed and the seller's income per kWh generated, by the seller's
delivery ratio g / b (bins of 0.1, mean with a Student-t 95 % interval): a short
seller's buyer pays more and more of R for what the grid supplies, a long seller's
surplus earns F. Every contract conserves money (buyer pays = seller + grid income).

Writes ``settlement_tables.csv`` (Table 2), ``settlement_tables_monte_carlo.csv``
and ``settlement_tables.png``.

    python experiments/settlement_tables.py --out results/settlement
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from _common import PALETTE, mean_ci, parse, parser, rep_streams, save_csv, save_png, style

from dipi_abm.rules.settlement import settle

R, F, START, W, Q = 0.657, 0.4, 200.0, 0.02, 200.0
# p, q, w, b, g  ([DER-CBC] Table 1)
CASES = [
    (0.55, 200, 0.02, 200, 200),
    (0.54, 200, 0.02, 220, 200),
    (0.56, 200, 0.02, 180, 200),
]
BINS = np.round(np.arange(0.5, 1.61, 0.1), 2)
MC_COLUMNS = ["delivery_ratio", "contracts", "buyer_price_mean", "buyer_price_ci_low",
              "buyer_price_ci_high", "seller_price_mean", "seller_price_ci_low",
              "seller_price_ci_high", "max_imbalance_yuan"]


def table() -> pd.DataFrame:
    p, q, w, b, g = (list(c) for c in zip(*CASES, strict=True))
    s = settle(p, q, w, b, g, R, F)
    df = pd.DataFrame({"price": p, "agreed_kwh": q, "wheeling": w, "consumed_kwh": b,
                       "generated_kwh": g, "buyer_pays": s.buyer_pays,
                       "seller_income": s.seller_income, "grid_income": s.grid_income})
    df["buyer_balance"] = START - df["buyer_pays"]
    df["seller_balance"] = START + df["seller_income"]
    df["grid_balance"] = START + df["grid_income"]
    df["cumulative_volume_kwh"] = df["consumed_kwh"].cumsum()
    return df.round(4)


def monte_carlo(reps: int, seed: int) -> pd.DataFrame:
    """Random contracts, one stream each; per delivery-ratio bin, mean prices with CIs."""
    draws = np.array([np.random.default_rng(ss).random(3) for ss in rep_streams(seed, reps)])
    p = F + W + draws[:, 0] * (R - F - W)
    b = Q * (0.9 + 0.2 * draws[:, 1])
    g = Q * (0.5 + draws[:, 2])
    s = settle(p, np.full(reps, Q), np.full(reps, W), b, g, R, F)
    ratio = g / b
    which = np.digitize(ratio, BINS) - 1  # outside [0.5, 1.6): -1 or len(BINS) - 1
    rows = []
    for i in range(len(BINS) - 1):
        m = which == i
        if m.sum() < 2:
            continue
        buyer, seller = s.buyer_pays[m] / b[m], s.seller_income[m] / g[m]
        (bm,), (bl,), (bh,) = mean_ci(buyer[:, None])
        (sm,), (sl,), (sh,) = mean_ci(seller[:, None])
        gap = np.abs(s.buyer_pays[m] - s.seller_income[m] - s.grid_income[m]).max()
        rows.append([round(BINS[i] + 0.05, 2), int(m.sum()), bm, bl, bh, sm, sl, sh, gap])
    return pd.DataFrame(rows, columns=MC_COLUMNS)


def plot(tab: pd.DataFrame, mc: pd.DataFrame, reps: int, path: Path) -> None:
    style()
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    x = np.arange(len(tab))
    for k, (col, name) in enumerate((("buyer_pays", "buyer pays"),
                                     ("seller_income", "seller income"),
                                     ("grid_income", "grid income"))):
        bars = a.bar(x + (k - 1) * 0.27, tab[col], 0.27, color=PALETTE[k], label=name)
        a.bar_label(bars, fmt="%.2f", fontsize=9)
    a.axhline(0, color="black", lw=0.8)
    a.set_xticks(x, [f"test {i + 1}\nb={r.consumed_kwh:g}, g={r.generated_kwh:g}"
                     for i, r in enumerate(tab.itertuples())])
    a.set_ylabel("yuan")
    a.set_title("[DER-CBC] Table 2: the three settlement tests")
    a.set_ylim(top=1.3 * tab["buyer_pays"].max())
    a.legend(frameon=False, loc="upper center", ncols=3)
    for col, name, c in (("buyer_price", "buyer pays per kWh consumed", PALETTE[0]),
                         ("seller_price", "seller earns per kWh generated", PALETTE[1])):
        b.plot(mc.delivery_ratio, mc[f"{col}_mean"], "o-", color=c, label=name)
        b.fill_between(mc.delivery_ratio, mc[f"{col}_ci_low"], mc[f"{col}_ci_high"],
                       color=c, alpha=0.25)
    for level, name in ((R, "retail R"), (F, "feed-in F")):
        b.axhline(level, color="grey", ls="--", lw=1)
        b.annotate(name, (mc.delivery_ratio.iloc[0], level), va="bottom", fontsize=10)
    b.axvline(1.0, color="black", lw=0.8)
    b.set_xlabel("seller's delivery ratio g / b")
    b.set_ylabel("yuan/kWh")
    b.set_title(f"{reps} random contracts: mean and 95 % CI")
    b.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 0.1))
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = parser(__doc__, out="results/settlement", reps=20000, quick_reps=2000,
                reps_help="random contracts of the Monte Carlo part")
    args = parse(ap, argv)
    tab, mc = table(), monte_carlo(args.reps, args.seed)
    out = Path(args.out)
    save_csv(tab, out / "settlement_tables.csv")
    save_csv(mc, out / "settlement_tables_monte_carlo.csv")
    plot(tab, mc, args.reps, out / "settlement_tables.png")
    print(tab.to_string(index=False))
    print(f"\nbuyer's price per kWh consumed by delivery ratio ({args.reps} contracts, seed "
          f"{args.seed}):")
    print(mc[["delivery_ratio", "contracts", "buyer_price_mean", "buyer_price_ci_low",
              "buyer_price_ci_high"]].round(4).to_string(index=False))
    print(f"written to {out}/")
    return tab


if __name__ == "__main__":
    main()
