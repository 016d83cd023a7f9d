"""What the credit-matching quorum m tolerates ([DIPI] section 4.2 step 5).

Every node reports the hour's TradeResult; a share of nodes is faulty and
reports a wrong one (all the same wrong result when they collude, the worst
case; otherwise each its own). The matching result is committed once more
than m = floor(quorum_share x nodes) nodes report it identically, and only if
no wrong result also passes m. The script runs DIPIModel over a grid of
faulty shares and quorum shares and reports the share of hours whose trades
were committed, the share with a conflicting wrong quorum, and the P2P volume
that survived, next to the analytic bounds: safe while faulty <= m (colluders
cannot form a quorum), live while honest > m.

The quorum outcome depends only on counts, so one replication per cell would
do; --reps replications (paired seeds) check that it does not depend on the weather.

    python experiments/quorum_tolerance.py --out results/quorum
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from _common import parse, parser, rep_seeds, save_csv, save_png, style

from dipi_abm import DIPIModel

QUORUM_SHARES = (1 / 3, 1 / 2, 2 / 3)


def run(args) -> pd.DataFrame:
    faulty = np.round(np.linspace(0.0, 0.9, 4 if args.quick else 10), 3)
    size = dict(n_dpgc=4, n_users=16, hours=12) if args.quick else dict(n_dpgc=10, n_users=50,
                                                                          hours=48)
    rows = []
    for rep, seed in enumerate(rep_seeds(args.seed, args.reps)):
        for collude in (True, False):
            for q in QUORUM_SHARES:
                for f in faulty:
                    m = DIPIModel(seed=seed, quorum_share=q, faulty_share=float(f),
                                  faulty_collude=collude, ledger_detail="off", **size).run()
                    h = m.hourly_dataframe()
                    n = m.faulty.size
                    rows.append({
                        "replication": rep, "seed": seed, "collude": collude,
                        "quorum_share": round(q, 4), "quorum_m": m.quorum_m,
                        "nodes": n, "faulty_share": float(f), "faulty_nodes": int(m.faulty.sum()),
                        "committed_share": float(h["quorum_committed"].mean()),
                        "conflict_share": float(h["quorum_conflict"].mean()),
                        "p2p_volume_kwh": float(h["p2p_volume_kwh"].sum()),
                        "safe_bound": bool((m.faulty.sum() if collude else min(m.faulty.sum(), 1))
                                           <= m.quorum_m),
                        "live_bound": bool(n - m.faulty.sum() > m.quorum_m),
                    })
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, path: Path) -> None:
    style()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    colors = ("#0072B2", "#D55E00", "#009E73")
    markers = ("o", "s", "^")
    for ax, collude in zip(axes, (True, False), strict=True):
        d = df[df["collude"] == collude]
        for i, (q, g) in enumerate(d.groupby("quorum_share")):
            share = g.groupby("faulty_share")["committed_share"].mean() * 100
            x = share.index.to_numpy()
            ax.plot(x, share.to_numpy() + (i - 1) * 1.5, "-", marker=markers[i],
                    color=colors[i], ms=7 - i, label=f"m = ⌊{q:.2f} × nodes⌋")
            m_share = g["quorum_m"].iloc[0] / g["nodes"].iloc[0]
            bound = min(m_share, 1 - m_share) if collude else 1 - m_share
            ax.axvline(bound, color=colors[i], ls=":", lw=1.2)
        ax.set_title("faulty nodes collude (one wrong result)" if collude
                     else "faulty nodes each report their own wrong result")
        ax.set_xlabel("share of faulty nodes")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("hours whose trades were committed, %")
    axes[0].legend(frameon=False, loc="center left")
    fig.suptitle("What the matching quorum tolerates (dotted: analytic bound, faulty <= m "
                 "when colluding and honest > m)")
    fig.text(0.5, -0.02, "Lines are offset by ±1.5 points so that overlapping ones stay "
             "visible; every cell is 0 % or 100 %.", ha="center", fontsize=9, color="0.3")
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = parser(__doc__, out="results/quorum", reps=5, quick_reps=2,
                reps_help="replications (paired seeds)")
    args = parse(ap, argv)
    out = Path(args.out)
    df = run(args)
    save_csv(df, out / "quorum_tolerance.csv")
    plot(df, out / "quorum_tolerance.png")
    table = (df[df.replication == 0]
             .pivot_table(index="faulty_share", columns=["collude", "quorum_share"],
                          values="committed_share"))
    print("share of hours committed (rows: faulty share; columns: collude, quorum share)")
    print(table.round(2).to_string())
    ok = df["committed_share"].eq(1.0) == (df["safe_bound"] & df["live_bound"])
    print(f"analytic bounds match the simulated commits in {ok.mean():.0%} of the cells")
    return df


if __name__ == "__main__":
    main(sys.argv[1:])
