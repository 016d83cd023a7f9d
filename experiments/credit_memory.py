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
- **reaction after a long record** (365 days, skipped with ``--quick``): the
  same from day 300, for the honest dispatchable DPGCs.

Writes ``credit_memory.csv`` and prints the table the README shows.

    python experiments/credit_memory.py            # about 10 minutes
    python experiments/credit_memory.py --quick    # three rules, two parties, no year runs
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from dipi_abm import DIPIModel
from dipi_abm.results.files import atomic_write

RULES: tuple[tuple[str, float], ...] = (
    ("decay", 24.0), ("decay", 48.0), ("decay", 72.0), ("decay", 168.0),
    ("mean", 72.0), ("paper", 72.0), ("ema", 72.0), ("window", 72.0),
)
QUICK_RULES: tuple[tuple[str, float], ...] = (("decay", 72.0), ("mean", 72.0), ("paper", 72.0))
CSV_COLUMNS = ["rule", "half_life_h", "credit_opportunists", "credit_others", "gap",
               "corr_breach_credit", "rank_corr_daily", "react_median_h", "react_worst_h",
               "react_after_300d_h"]
DAY = 24


def _model(rule: str, half_life: float, seed: int, hours: int) -> DIPIModel:
    return DIPIModel(seed=seed, hours=hours, learning="static", opportunist_share=0.2,
                     credit_rule=rule, credit_half_life_h=half_life, ledger_detail="off")


def conduct(rule: str, half_life: float, seed: int, days: int = 30) -> dict[str, float]:
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
    rank = [stats.spearmanr(d[honest], rate[honest])[0] for d in daily[7:15]]
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


def measure(seed: int, quick: bool) -> pd.DataFrame:
    rows = []
    for rule, hl in RULES if not quick else QUICK_RULES:
        row = {"rule": rule, "half_life_h": hl if rule == "decay" else np.nan}
        row.update(conduct(rule, hl, seed))
        parties = onset_candidates(rule, hl, seed, 15 * DAY)
        if quick:
            parties = parties[:2]
        react = [hours_below_median(rule, hl, seed, int(i), 15 * DAY, 30 * DAY)
                 for i in parties]
        row["react_median_h"] = float(np.median(react)) if react else np.nan
        row["react_worst_h"] = float(np.max(react)) if react else np.nan
        if quick:
            row["react_after_300d_h"] = np.nan
        else:
            late = onset_candidates(rule, hl, seed, 300 * DAY, dispatchable_only=True)[:2]
            late_react = [hours_below_median(rule, hl, seed, int(i), 300 * DAY, 320 * DAY)
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


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/credit_memory", help="output folder")
    ap.add_argument("--seed", type=int, default=1, help="model seed (default 1)")
    ap.add_argument("--quick", action="store_true",
                    help="decay, mean and paper; two parties each; no year runs")
    args = ap.parse_args(argv)
    if args.seed < 0:
        ap.error(f"--seed {args.seed}: must be >= 0")
    print(HEADER)
    df = measure(args.seed, args.quick)
    path = Path(args.out) / "credit_memory.csv"
    atomic_write(path, lambda tmp: df.round(4).to_csv(tmp, index=False))
    print(f"written to {path}")
    return df


if __name__ == "__main__":
    main()
