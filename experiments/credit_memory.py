"""Does credit track conduct? Every credit rule measured in market runs (docs/model.md section 6).

The default-size market (10 DPGCs, 50 users) with 20 % opportunists who keep
over-committing (``learning = "static"``, commitment ``commit_max``), for each
credit rule (and the ``decay`` rule at several half-lives):

- **separation** (30 days): the opportunists' mean final credit against the
  others', and the per-party correlation between breach rate and final credit;
- **ranking**: the rank correlation, averaged over days 8-15, between an honest
  party's credit that day and its breach rate over the whole run (how well
  today's credit ranks parties by their true reliability; noise lowers it);
- **reaction** (30 days): each honest party above the median credit on day 15
  is, in its own run, switched to over-committing (``commit_max``, as the
  opportunists) from then on; hours until its credit falls below the median
  (median and worst over those parties; "never": not by the end of the run);
- **reaction after a long record** (320 days, first seed only, skipped with
  ``--quick``): the same from day 300, for the honest dispatchable DPGCs.

Each measure runs on ``--reps`` model seeds (one ``numpy.random.SeedSequence`` child
of ``--seed`` each): separation and ranking are means over seeds with Student-t 95 %
intervals; the reaction hours pool the parties of every seed.

Writes ``credit_memory.csv`` (one row per rule), ``credit_memory.png`` (the gap and
the correlations per rule, with intervals, and the reaction hours) and prints the
table docs/overview.md shows.

    python experiments/credit_memory.py --out results/credit_memory
    python experiments/credit_memory.py --quick    # two rules, 6 days, one party a seed
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    PALETTE,
    Timer,
    mean_ci,
    parse,
    parser,
    rep_seeds,
    save_csv,
    save_png,
    style,
)
from scipy import stats

from dipi_abm import DIPIModel

RULES: tuple[tuple[str, float], ...] = (
    ("decay", 24.0), ("decay", 48.0), ("decay", 72.0), ("decay", 168.0),
    ("mean", 72.0), ("paper", 72.0), ("ema", 72.0), ("window", 72.0),
)
QUICK_RULES: tuple[tuple[str, float], ...] = (("decay", 72.0), ("paper", 72.0))
#: measures of one run without interventions (mean and CI over seeds)
CONDUCT = ("credit_opportunists", "credit_others", "gap", "corr_breach_credit",
           "rank_corr_daily")
CSV_COLUMNS = ["rule", "half_life_h", "seeds",
               *(f"{m}{s}" for m in CONDUCT for s in ("", "_ci_low", "_ci_high")),
               "react_parties", "react_median_h", "react_worst_h", "react_after_300d_h"]
DAY = 24


def _model(rule: str, half_life: float, seed: int, hours: int) -> DIPIModel:
    return DIPIModel(seed=seed, hours=hours, learning="static", opportunist_share=0.2,
                     credit_rule=rule, credit_half_life_h=half_life, ledger_detail="off")


def conduct(rule: str, half_life: float, seed: int, days: int) -> dict[str, float]:
    """Separation and ranking in one run without interventions."""
    m = _model(rule, half_life, seed, days * DAY)
    s = m.state
    committed = np.zeros(s.n)
    breached = np.zeros(s.n)
    daily = []
    for h in range(days * DAY):
        m.step()
        committed += s.committed_kwh > 0
        breached += s.breach
        if h % DAY == DAY - 1:
            daily.append(s.credit.credit.copy())
    active = committed > DAY
    rate = breached / np.maximum(committed, 1)
    credit = s.credit.credit
    opp = m.opportunist & active
    honest = ~m.opportunist & active
    rank = [stats.spearmanr(d[honest], rate[honest])[0] for d in daily[days // 4:days // 2]]
    return {"credit_opportunists": credit[opp].mean(), "credit_others": credit[honest].mean(),
            "gap": credit[honest].mean() - credit[opp].mean(),
            "corr_breach_credit": float(np.corrcoef(rate[active], credit[active])[0, 1]),
            "rank_corr_daily": float(np.nanmean(rank))}


def hours_below_median(rule: str, half_life: float, seed: int, party: int, onset_h: int,
                       hours: int) -> int:
    """Hours after ``onset_h`` until ``party``, over-committing from then on, is below
    the median credit (inf if not by ``hours``)."""
    m = _model(rule, half_life, seed, hours)
    s, top = m.state, m.params.commit_max
    for h in range(hours):
        if h == onset_h:
            s.commitment_ratio[party] = top
            s.bid_volume_ratio[party] = top
        m.step()
        if h >= onset_h and s.credit.credit[party] < np.median(s.credit.credit):
            return h + 1 - onset_h
    return np.inf


def onset_candidates(rule: str, half_life: float, seed: int, onset_h: int,
                     dispatchable_only: bool = False) -> np.ndarray:
    """Honest parties that traded and sit above the median credit at ``onset_h``."""
    m = _model(rule, half_life, seed, onset_h)
    committed = np.zeros(m.state.n)
    for _ in range(onset_h):
        m.step()
        committed += m.state.committed_kwh > 0
    c = m.state.credit.credit
    ok = ~m.opportunist & (committed > DAY) & (c > np.median(c))
    if dispatchable_only:
        ok &= m.state.tech >= 2  # hydro, thermal: they sell every hour
    return np.flatnonzero(ok)


def measure(seeds: Sequence[int], quick: bool) -> pd.DataFrame:
    """One row per rule: separation and ranking over ``seeds``, reaction pooled."""
    days, onset = (6, 3) if quick else (30, 15)
    rows = []
    for rule, hl in QUICK_RULES if quick else RULES:
        row = {"rule": rule, "half_life_h": hl if rule == "decay" else np.nan,
               "seeds": len(seeds)}
        runs = pd.DataFrame([conduct(rule, hl, sd, days) for sd in seeds])
        for m in CONDUCT:
            row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = (
                float(v) for v in mean_ci(runs[m].to_numpy()))
        react = []
        for sd in seeds:
            parties = onset_candidates(rule, hl, sd, onset * DAY)[:1 if quick else None]
            react += [hours_below_median(rule, hl, sd, int(i), onset * DAY, days * DAY)
                      for i in parties]
        row["react_parties"] = len(react)
        row["react_median_h"] = float(np.median(react)) if react else np.nan
        row["react_worst_h"] = float(np.max(react)) if react else np.nan
        row["react_after_300d_h"] = np.nan
        if not quick:
            late = onset_candidates(rule, hl, seeds[0], 300 * DAY, dispatchable_only=True)[:2]
            late_react = [hours_below_median(rule, hl, seeds[0], int(i), 300 * DAY, 320 * DAY)
                          for i in late]
            row["react_after_300d_h"] = float(np.max(late_react)) if late_react else np.nan
        rows.append(row)
        print(_line(row), flush=True)
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def _hours(x: float) -> str:
    return "-" if np.isnan(x) else "never" if np.isinf(x) else f"{x:.0f}"


def _line(r: dict) -> str:
    name = f"decay {r['half_life_h']:.0f} h" if r["rule"] == "decay" else r["rule"]
    return (f"| {name} | {r['credit_opportunists']:.1f} | {r['credit_others']:.1f} "
            f"| {r['gap']:.1f} | {r['corr_breach_credit']:.2f} | {r['rank_corr_daily']:.2f} "
            f"| {_hours(r['react_median_h'])} / {_hours(r['react_worst_h'])} "
            f"| {_hours(r['react_after_300d_h'])} |")


HEADER = ("| rule | credit, opportunists | credit, others | gap | corr(breach rate, credit) "
          "| rank corr, daily | hours to below median (median / worst) | same after 300 days |\n"
          "|---|---|---|---|---|---|---|---|")


def plot(df: pd.DataFrame, path: Path) -> None:
    """Per rule: the credit gap and the correlations (mean, 95 % CI over seeds), and the
    hours until a party that turns bad falls below the median."""
    import matplotlib.pyplot as plt

    style()
    names = [f"decay {h:.0f} h" if r == "decay" else r for r, h in zip(df.rule, df.half_life_h,
                                                                       strict=True)]
    x = np.arange(len(df))
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.2))
    for ax, cols, title, unit in (
            (axes[0], ("gap",), "credit gap: others - opportunists", "credit points"),
            (axes[1], ("corr_breach_credit", "rank_corr_daily"),
             "does credit rank conduct?", "correlation with breach rate")):
        width = 0.8 / len(cols)
        for j, c in enumerate(cols):
            m = df[c].to_numpy()
            ax.bar(x + (j - (len(cols) - 1) / 2) * width, m, width * 0.9, color=PALETTE[j],
                   yerr=[m - df[f"{c}_ci_low"], df[f"{c}_ci_high"] - m], capsize=4,
                   label={"corr_breach_credit": "per party, final credit",
                          "rank_corr_daily": "honest parties, daily credit (rank)"}.get(c))
        ax.axhline(0, color="0.3", lw=1)
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.set_xticks(x, names, rotation=30, ha="right")
        if len(cols) > 1:
            ax.legend(fontsize=9)
    for j, (c, label) in enumerate((("react_median_h", "median"), ("react_worst_h", "worst"),
                                    ("react_after_300d_h", "after 300 days"))):
        v = df[c].to_numpy(float)
        axes[2].bar(x + (j - 1) * 0.27, np.where(np.isinf(v), np.nan, v), 0.25,
                    color=PALETTE[j], label=label)
    axes[2].set_title("a party turns bad: hours until below the median")
    axes[2].set_ylabel("hours (missing bar: never or not run)")
    axes[2].set_xticks(x, names, rotation=30, ha="right")
    axes[2].legend(fontsize=9)
    fig.suptitle(f"Does credit track conduct? 20 % static opportunists, "
                 f"{int(df.seeds.iloc[0])} seeds; bars: mean, 95 % CI over seeds")
    fig.tight_layout()
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = parser(__doc__, out="results/credit_memory", reps=2, quick_reps=2,
                reps_help="model seeds")
    args = parse(ap, argv)
    timer = Timer()
    seeds = rep_seeds(args.seed, args.reps)
    print(HEADER)
    df = measure(seeds, args.quick)
    out = Path(args.out)
    save_csv(df, out / "credit_memory.csv")
    plot(df, out / "credit_memory.png")
    print(f"written to {out} in {timer}")
    return df


if __name__ == "__main__":
    main()
