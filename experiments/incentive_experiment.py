"""docs/model.md section 8: does credit deter breaches, for myopic and for foresighted parties?

What it tests. Parties learn (Roth-Erev reinforcement over commitment / bid-volume
ratios 0.8-1.3 and price levels, rewarded by their realised gain over the grid-only
alternative plus any block reward); 20 % of them are opportunists that start on the
largest commitment. docs/model.md section 8 states the hypothesis: under incentive rules
that bite (credit-weighted `cma` matching and POCA mining rewards) over-committing
should stop paying, so breaches should fall over time; in `centralized` mode, or with
credit switched off, they should not. The model measures whether that happens; this
script does not assume it.

How. Five arms per learning rule (``--learning``: by default the myopic ``roth_erev``
and ``epsilon_greedy`` beside the foresighted ``q_learning``), each run over the same
replication seeds (paired: the same parties, placement, weather and loads in every arm
and every learning rule of a replication):

- `cma_live`: credit matching algorithm (`matching = "cma"`), POCA consensus, the
  `paper` credit rule, credit updated from every settled contract;
- `cma_frozen`: the same with `credit_frozen = true` (every party's credit stays at
  credit_initial, so neither matching priority nor POCA's block odds depend on conduct);
- `centralized`: no direct trade; the grid company buys every offer at F and sells
  every need at R; breaches are counted against offers; credit does not change;
- `gate`: `cma_live` plus `breach_policy = "credit_gate"` (below credit 50 a party's
  volume is capped, down to a quarter of its forecast at credit 30);
- `reward`: `cma_live` plus `breach_policy = "credit_scaled_reward"` (a wheeling rebate
  per delivered kWh of R - F = 0.257 yuan/kWh at credit 100, nothing at or below 40).

The gate threshold and the reward floor sit where they bite on conduct: credit is the
recent share of contract sides kept, and an honest party keeps about 60-70 % of them
at the 5 % breach tolerance, so the keys' defaults (80) would gate and unpay nearly
everyone. Every credit effect a party sees arrives after the hour it breaches in: the
rebate is paid for delivered kWh at the credit the party has, never for the breach.

Default scenario otherwise (10 DPGCs and 50 users on the IEEE 33-bus feeder, flat
tariff R = 0.657, F = 0.4 yuan/kWh), 30 days,
`opportunist_share = 0.2`, `ledger_detail = "off"` (the chains do not change any KPI;
`--set ledger_detail=digest` turns them on). Runs go through the sweep engine
(:func:`_common.run_arms`: one paired sweep per arm, resumable under ``--out``/sweeps);
each run is seeded only by its replication, so the results do not depend on
``--workers``. An hourly probe (:func:`probe`) records the mean commitment ratio of
the parties that sold (and bid-volume ratio of those that bought) in that hour, and
the breaches and credit of opportunists and the others.

Writes to ``--out/<learning>/`` for each learning rule:

- ``incentive_experiment_runs.csv``: one row per (arm, replication): seed, the summary
  KPIs of model.summary(), breach rates in the first and last ``window_days`` (5 days,
  or half the run if shorter), commitment ratios at the start and end, opportunists'
  and others' breach rates and final credit;
- ``incentive_experiment_daily.csv``: per arm and day, mean and Student-t 95 % CI over
  replications of the breach rate (all, DPGCs, users, opportunists, others), mean credit
  at the end of the day (by type; opportunists and others), commitment and bid-volume
  ratios, transaction efficiency and P2P contract price spread;
- ``incentive_experiment.csv``: per KPI and arm, mean and 95 % CI, and the paired
  differences cma_live - cma_frozen and cma_live - centralized (and, per arm, last
  window - first window of the breach rate and commitment ratio);
- ``incentive_experiment.png``: the panels;

and to ``--out``: ``incentive_deterrence.csv`` (per learning rule and comparison, the
paired difference of the last-window breach rate, commitment ratio and whole-run
breach rate, mean and 95 % CI) and ``incentive_deterrence.png`` (the same as bars).

    python experiments/incentive_experiment.py --out results/incentive
    python experiments/incentive_experiment.py --quick
    python experiments/incentive_experiment.py --set credit_rule="ema" --set block_reward_yuan=50
    python experiments/incentive_experiment.py --arms cma_live cma_frozen --reps 20
    python experiments/incentive_experiment.py --learning q_learning --reps 10

Where and why it may differ from the papers. [DIPI] presumes that credit makes
parties keep their word. Here a breach costs the breaching party nothing directly (a
seller is simply not paid for what it did not deliver; the buyer covers the gap at
retail; a buyer that takes less leaves the seller to sell the rest at F): the only
price of a breach is a lower credit, which buys less CMA priority (weight
``cma_w_credit`` of the pair score) and fewer POCA block rewards. Whether that outweighs
the volume an over-commitment wins is what the run shows. In `centralized` mode every
party gets exactly the grid-only outcome, so its learning reward is zero except for the
hour's block reward: the block winner's chosen action is reinforced whatever it was,
and choices drift at random towards the middle of the action grid (opportunists
down, the others up). With `--set learning="static"` no arm shows any trend in the
breach rate, so trends over time come from learning, not from the weather.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    KEPT_SCALE,
    PALETTE,
    Timer,
    market_args,
    market_size,
    mean_ci,
    parse,
    parser,
    run_arms,
    save_csv,
    save_png,
    style,
)

from dipi_abm.config import validate
from dipi_abm.errors import ConfigError
from dipi_abm.model import BUYER, DPGC_KIND, SELLER

#: arm -> the scenario keys that define it
_LIVE = {"matching": "cma", "consensus": "poca", "credit_frozen": False, "breach_policy": "none"}
ARMS: dict[str, dict] = {
    "cma_live": _LIVE,
    "cma_frozen": {**_LIVE, "credit_frozen": True},
    "centralized": {**_LIVE, "matching": "centralized"},
    "gate": {**_LIVE, "breach_policy": "credit_gate"},
    "reward": {**_LIVE, "breach_policy": "credit_scaled_reward"},
}
ARM_LABEL = {"cma_live": "CMA + POCA, live credit", "cma_frozen": "CMA + POCA, credit frozen",
             "centralized": "centralized", "gate": "live credit + credit gate",
             "reward": "live credit + credit-scaled reward"}
ARM_COLOR = {"cma_live": PALETTE[0], "cma_frozen": PALETTE[1], "centralized": "#7a7a7a",
             "gate": PALETTE[2], "reward": PALETTE[3]}
#: the experiment's scenario, before --dpgc/--users/--days and --set
BASE = {"opportunist_share": 0.2, "ledger_detail": "off", **KEPT_SCALE,
        "reward_share_of_margin": 1.0}
LEARNING = ("roth_erev", "epsilon_greedy", "q_learning")
LEARNING_COLOR = dict(zip(LEARNING, PALETTE[4:], strict=True))
#: keys the arms and --learning set; --set may not change them
ARM_KEYS = ("matching", "consensus", "credit_frozen", "breach_policy", "learning")

#: columns of the runs CSV taken from model.summary()
SUMMARY_KPIS = (
    "breach_rate", "breaches", "breach_shortfall_kwh", "p2p_volume_kwh", "p2p_delivered_kwh",
    "grid_purchase_kwh", "grid_sale_kwh", "curtailed_kwh", "mean_credit_dpgc",
    "mean_credit_user", "transaction_efficiency", "price_mean", "price_std", "user_cost_yuan",
    "dpgc_income_yuan", "grid_income_yuan", "clean_share", "blocks_gini",
    "low_credit_block_share",
)
#: columns the script adds per run
RUN_EXTRAS = (
    "window_days", "breach_rate_first", "breach_rate_last", "breach_rate_change",
    "commitment_ratio_first", "commitment_ratio_last", "bid_volume_ratio_first",
    "bid_volume_ratio_last", "breach_rate_opportunist", "breach_rate_other",
    "mean_credit_opportunist", "mean_credit_other", "user_cost_per_kwh",
)
RUN_COLUMNS = ["arm", "replication", "seed", "matching", "credit_frozen", *SUMMARY_KPIS,
               *RUN_EXTRAS]
#: per-day series (the daily CSV has <name>_mean, <name>_ci_low, <name>_ci_high)
DAILY = (
    "breach_rate", "breach_rate_dpgc", "breach_rate_user", "breach_rate_opportunist",
    "breach_rate_other", "mean_credit_dpgc", "mean_credit_user", "mean_credit_opportunist",
    "mean_credit_other", "commitment_ratio", "bid_volume_ratio", "volume_ratio_opportunist",
    "volume_ratio_other", "transaction_efficiency", "price_std",
)
DAILY_COLUMNS = ["arm", "day", *(f"{k}_{s}" for k in DAILY for s in ("mean", "ci_low",
                                                                        "ci_high")),
                 "replications"]

#: KPI -> (label, unit, scale) in the summary CSV and the printout
KPIS = {
    "breach_rate_first": ("breach rate, first window", "% of committed sides", 100.0),
    "breach_rate_last": ("breach rate, last window", "% of committed sides", 100.0),
    "breach_rate_change": ("breach rate, last - first window", "points", 100.0),
    "breach_rate": ("breach rate, whole run", "% of committed sides", 100.0),
    "breach_rate_opportunist": ("breach rate of opportunists", "% of committed sides", 100.0),
    "breach_rate_other": ("breach rate of the others", "% of committed sides", 100.0),
    "breach_shortfall_kwh": ("breach shortfall", "MWh", 1e-3),
    "commitment_ratio_first": ("sellers' commitment ratio, first window", "-", 1.0),
    "commitment_ratio_last": ("sellers' commitment ratio, last window", "-", 1.0),
    "bid_volume_ratio_first": ("buyers' bid-volume ratio, first window", "-", 1.0),
    "bid_volume_ratio_last": ("buyers' bid-volume ratio, last window", "-", 1.0),
    "mean_credit_dpgc": ("mean DPGC credit at the end", "0-100", 1.0),
    "mean_credit_user": ("mean user credit at the end", "0-100", 1.0),
    "mean_credit_opportunist": ("mean opportunist credit at the end", "0-100", 1.0),
    "mean_credit_other": ("mean credit of the others at the end", "0-100", 1.0),
    "transaction_efficiency": ("transaction efficiency", "%", 100.0),
    "price_std": ("P2P contract price spread (SD)", "yuan/kWh", 1.0),
    "user_cost_yuan": ("users' total cost", "thousand yuan", 1e-3),
    "user_cost_per_kwh": ("users' cost per kWh of net need", "yuan/kWh", 1.0),
    "clean_share": ("users' need met directly by clean DPGCs", "%", 100.0),
    "p2p_delivered_kwh": ("P2P delivered", "MWh", 1e-3),
    "low_credit_block_share": ("blocks won by parties with credit < 90", "%", 100.0),
}
SUMMARY_COLUMNS = ["kpi", "label", "unit", "arm", "mean", "ci_low", "ci_high", "replications"]
#: (arm, control): CMA priority and POCA odds; the gate and the rebate on top of them
COMPARISONS = (("cma_live", "cma_frozen"), ("cma_live", "centralized"), ("gate", "cma_live"),
               ("reward", "cma_live"))
#: what the deterrence table compares, per learning rule
DETERRENCE_KPIS = ("breach_rate_last", "commitment_ratio_last", "breach_rate")


# --------------------------------------------------------------------------- one run
GROUPS = ("dpgc", "user", "opportunist", "other")


def probe(model) -> dict[str, float]:  # noqa: ANN001 - a DIPIModel
    """Hourly probe (run in the sweep's workers): chosen volume ratios of the parties that
    sold and bought, breaches and committed sides, and mean credit, by group."""
    s, opp = model.state, model.opportunist
    dpgc = s.kind == DPGC_KIND
    masks = {"dpgc": dpgc, "user": ~dpgc, "opportunist": opp, "other": ~opp}
    sell, buy = s.role == SELLER, s.role == BUYER
    ratio = np.where(sell, s.commitment_ratio, s.bid_volume_ratio)
    acting = sell | buy
    committed = s.committed_kwh > 0
    out = {"cr_sum": float(s.commitment_ratio[sell].sum()), "cr_n": float(sell.sum()),
           "bv_sum": float(s.bid_volume_ratio[buy].sum()), "bv_n": float(buy.sum())}
    for g, mask in masks.items():
        if g in ("opportunist", "other"):
            out[f"vr_{g}_sum"] = float(ratio[acting & mask].sum())
            out[f"vr_{g}_n"] = float((acting & mask).sum())
        out[f"breaches_{g}"] = float((s.breach & mask).sum())
        out[f"committed_{g}"] = float((committed & mask).sum())
        out[f"credit_{g}"] = float(s.credit.credit[mask].mean()) if mask.any() else np.nan
    return out


def run_row(arm: str, summ: pd.Series, hourly: pd.DataFrame, scenario: dict
            ) -> tuple[dict, pd.DataFrame]:
    """One (arm, replication): the run's row and its per-day series, from its summary and
    its hourly KPIs and probe columns."""
    hours = len(hourly)
    n_days = -(-hours // 24)
    day = np.arange(hours) // 24

    def col(name: str) -> np.ndarray:
        return hourly[f"probe_{name}"].to_numpy(float)

    def per_day(x: np.ndarray) -> np.ndarray:
        return np.bincount(day, x, n_days)

    def ratio_of(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)

    last_hour = np.minimum(np.arange(n_days) * 24 + 23, hours - 1)
    q = hourly["p2p_volume_kwh"].to_numpy()
    pm = np.nan_to_num(hourly["price_mean"].to_numpy())
    ps = np.nan_to_num(hourly["price_std"].to_numpy())
    tradable = np.minimum(hourly["offered_kwh"], hourly["demanded_kwh"]).to_numpy()
    qd = per_day(q)
    pmean = ratio_of(per_day(q * pm), qd)
    p2 = ratio_of(per_day(q * (ps ** 2 + pm ** 2)), qd)
    acc = {k: per_day(col(k)) for k in (
        "cr_sum", "cr_n", "bv_sum", "bv_n",
        *(f"vr_{g}_{x}" for g in ("opportunist", "other") for x in ("sum", "n")),
        *(f"{x}_{g}" for g in GROUPS for x in ("breaches", "committed")))}
    rep = int(hourly["replication"].iloc[0])
    daily = pd.DataFrame({
        "arm": arm, "replication": rep, "day": np.arange(1, n_days + 1),
        "breaches": per_day(hourly["breaches"].to_numpy(float)),
        "committed": per_day(hourly["committed_parties"].to_numpy(float)),
        **{f"breach_rate_{g}": ratio_of(acc[f"breaches_{g}"], acc[f"committed_{g}"])
           for g in GROUPS},
        **{f"mean_credit_{g}": col(f"credit_{g}")[last_hour] for g in GROUPS},
        "commitment_ratio": ratio_of(acc["cr_sum"], acc["cr_n"]),
        "bid_volume_ratio": ratio_of(acc["bv_sum"], acc["bv_n"]),
        **{f"volume_ratio_{g}": ratio_of(acc[f"vr_{g}_sum"], acc[f"vr_{g}_n"])
           for g in ("opportunist", "other")},
        "transaction_efficiency": ratio_of(qd, per_day(tradable)),
        "price_std": np.sqrt(np.maximum(p2 - pmean ** 2, 0.0)),
    })
    daily.insert(3, "breach_rate", ratio_of(daily["breaches"].to_numpy(),
                                            daily["committed"].to_numpy()))

    w = window_days(n_days)

    def window(col_sum: np.ndarray, col_n: np.ndarray, last: bool) -> float:
        sl = slice(n_days - w, n_days) if last else slice(0, w)
        n = col_n[sl].sum()
        return float(col_sum[sl].sum() / n) if n > 0 else float("nan")

    b, c = daily["breaches"].to_numpy(), daily["committed"].to_numpy()
    user_need = summ["p2p_delivered_kwh"] + summ["grid_purchase_kwh"]
    row = {
        "arm": arm, "replication": rep, "seed": int(summ["seed"]),
        "matching": scenario["matching"], "credit_frozen": bool(scenario["credit_frozen"]),
        **{k: summ[k] for k in SUMMARY_KPIS},
        "window_days": w,
        "breach_rate_first": window(b, c, False),
        "breach_rate_last": window(b, c, True),
        "commitment_ratio_first": window(acc["cr_sum"], acc["cr_n"], False),
        "commitment_ratio_last": window(acc["cr_sum"], acc["cr_n"], True),
        "bid_volume_ratio_first": window(acc["bv_sum"], acc["bv_n"], False),
        "bid_volume_ratio_last": window(acc["bv_sum"], acc["bv_n"], True),
        **{f"breach_rate_{g}": ratio_of(acc[f"breaches_{g}"].sum(),
                                        acc[f"committed_{g}"].sum()).item()
           for g in ("opportunist", "other")},
        "mean_credit_opportunist": float(col("credit_opportunist")[-1]),
        "mean_credit_other": float(col("credit_other")[-1]),
        "user_cost_per_kwh": summ["user_cost_yuan"] / user_need if user_need > 0 else np.nan,
    }
    row["breach_rate_change"] = row["breach_rate_last"] - row["breach_rate_first"]
    if summ["p2p_volume_kwh"] <= 0:  # no contracts: no contract price to spread
        row["price_mean"] = row["price_std"] = np.nan
    return row, daily


def window_days(n_days: int) -> int:
    """Days in the first and the last window: 5, or half the run if that is shorter."""
    return max(1, min(5, n_days // 2))


def run_all(arms: Sequence[str], scenario: dict, reps: int, seed: int, out: Path,
            workers: int) -> list[tuple[dict, pd.DataFrame]]:
    """Every arm over the same replication seeds, through the sweep engine; the results
    do not depend on ``workers``."""
    groups = {a: {"base": ARMS[a]} for a in arms}
    runs, hourly = run_arms(groups, scenario, reps=reps, seed=seed, out=out, workers=workers,
                            probe="incentive_experiment:probe")
    by_run = dict(iter(hourly.groupby(["arm", "replication"], sort=False)))
    return [run_row(r["arm"], r, by_run[(r["arm"], r["replication"])],
                    {**scenario, **ARMS[r["arm"]]})
            for _, r in runs.iterrows()]


# --------------------------------------------------------------------------- statistics
def summarise_daily(daily: pd.DataFrame, arms: Sequence[str]) -> pd.DataFrame:
    rows = []
    for arm in arms:
        d = daily[daily["arm"] == arm]
        for day, g in d.groupby("day", sort=True):
            row = {"arm": arm, "day": int(day)}
            for k in DAILY:
                mean, lo, hi = mean_ci(g[k].to_numpy())
                row |= {f"{k}_mean": float(mean), f"{k}_ci_low": float(lo),
                        f"{k}_ci_high": float(hi)}
            row["replications"] = len(g)
            rows.append(row)
    return pd.DataFrame(rows, columns=DAILY_COLUMNS)


def summarise(runs: pd.DataFrame, arms: Sequence[str]) -> pd.DataFrame:
    """Per KPI and arm: mean and 95 % CI; paired differences between arms."""
    wide = {a: runs[runs["arm"] == a].set_index("replication").sort_index() for a in arms}
    rows = []

    def add(kpi: str, name: str, x: np.ndarray) -> None:
        label, unit, scale = KPIS[kpi]
        mean, lo, hi = mean_ci(np.asarray(x, float) * scale)
        rows.append({"kpi": kpi, "label": label, "unit": unit, "arm": name, "mean": float(mean),
                     "ci_low": float(lo), "ci_high": float(hi),
                     "replications": int(np.sum(~np.isnan(np.asarray(x, float))))})

    for kpi in KPIS:
        for a in arms:
            add(kpi, a, wide[a][kpi].to_numpy())
        for a, b in COMPARISONS:
            if a in wide and b in wide:
                both = wide[a].index.intersection(wide[b].index)
                add(kpi, f"{a} - {b}", (wide[a].loc[both, kpi] - wide[b].loc[both, kpi]))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


# --------------------------------------------------------------------------- plot
def _band(ax, x, dsum: pd.DataFrame, key: str, color: str, label: str, scale: float = 1.0,
          ls: str = "-", marker: str | None = "o", alpha: float = 0.18) -> None:
    m = dsum[f"{key}_mean"].to_numpy() * scale
    lo = dsum[f"{key}_ci_low"].to_numpy() * scale
    hi = dsum[f"{key}_ci_high"].to_numpy() * scale
    ax.plot(x, m, color=color, lw=2, ls=ls, label=label, marker=marker, ms=3)
    ax.fill_between(x, lo, hi, color=color, alpha=alpha, lw=0)


def _bars(ax, runs: pd.DataFrame, summary: pd.DataFrame, arms: Sequence[str], kpi: str,
          unit: str, rng: np.random.Generator, nan_note: str = "",
          zero_note: str = "") -> None:
    s = summary[summary["kpi"] == kpi].set_index("arm")
    scale = KPIS[kpi][2]
    for x, a in enumerate(arms):
        mean, lo, hi = s.loc[a, ["mean", "ci_low", "ci_high"]]
        if not np.isfinite(mean):
            ax.text(x, 0.5, nan_note, transform=ax.get_xaxis_transform(), ha="center",
                    va="center", fontsize=9.5, color="0.35", style="italic")
            continue
        if zero_note and a == "centralized":
            ax.text(x, 0.5, zero_note, transform=ax.get_xaxis_transform(), ha="center",
                    va="center", fontsize=9.5, color="0.35", style="italic")
            continue
        ax.bar(x, mean, width=0.6, color=ARM_COLOR[a], alpha=0.75,
               yerr=[[mean - lo], [hi - mean]] if np.isfinite(lo) else None, capsize=7,
               error_kw={"lw": 1.6})
        v = runs.loc[runs["arm"] == a, kpi].to_numpy(float) * scale
        ax.scatter(x + rng.uniform(-0.2, 0.2, v.size), v, s=10, color="0.15", alpha=0.45,
                   zorder=3, lw=0)
    ax.set_xticks(range(len(arms)), [ARM_LABEL[a].replace(", ", ",\n") for a in arms],
                  fontsize=9.5)
    ax.set_xlim(-0.6, len(arms) - 0.4)
    ax.set_ylabel(unit)


#: credit series drawn in the credit panel: (daily column, name, line style)
CREDIT_LINES = (("mean_credit_dpgc", "DPGCs", "-"), ("mean_credit_user", "users", "--"),
                ("mean_credit_opportunist", "opportunists", ":"),
                ("mean_credit_other", "others", "-."))


def plot(runs: pd.DataFrame, dsum: pd.DataFrame, summary: pd.DataFrame, arms: Sequence[str],
         scenario: dict, reps: int, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    style()
    fig, axes = plt.subplots(3, 4, figsize=(22, 14.5))
    rng = np.random.default_rng(0)  # jitter of the replication dots only
    by_arm = {a: dsum[dsum["arm"] == a].sort_values("day") for a in arms}
    w = int(runs["window_days"].iloc[0])

    def days(a: str) -> np.ndarray:
        return by_arm[a]["day"].to_numpy()

    # (a) breach rate per day
    ax = axes[0, 0]
    for a in arms:
        _band(ax, days(a), by_arm[a], "breach_rate", ARM_COLOR[a], ARM_LABEL[a], 100)
    ax.set_title("breach rate per day (all committed sides)")
    ax.set_ylabel("% of committed sides")
    ax.legend(loc="best")

    # (b) mean credit by party type
    ax = axes[0, 1]
    flat = []
    for a in arms:
        d = by_arm[a]
        varies = np.nanmax(np.abs(d[["mean_credit_dpgc_mean", "mean_credit_user_mean"]].to_numpy()
                                  - 100.0)) > 1e-9
        if not varies:
            flat.append(ARM_LABEL[a])
            continue
        for key, name, ls in CREDIT_LINES:
            _band(ax, days(a), d, key, ARM_COLOR[a], f"{ARM_LABEL[a]}: {name}", ls=ls,
                  marker=None, alpha=0.1)
            last = d[f"{key}_mean"].dropna()
            if len(last):
                ax.annotate(f"{name} {last.iloc[-1]:.1f}", (days(a)[-1], last.iloc[-1]),
                            xytext=(4, 0), textcoords="offset points", va="center",
                            fontsize=9.5, color=ARM_COLOR[a])
    if flat:
        ax.text(0.02, 0.03, "constant 100: " + "; ".join(flat), transform=ax.transAxes,
                fontsize=9.5, color="0.3", style="italic")
    varying = [ARM_LABEL[a] for a in arms if ARM_LABEL[a] not in flat]
    ax.set_title("mean credit at the end of each day\n" + ("; ".join(varying) or "all arms"))
    ax.set_ylabel("credit (0-100)")
    if ax.lines:
        n_days = len(days(arms[0]))
        ax.set_xlim(right=ax.get_xlim()[1] + 0.3 * n_days)
        ax.set_xticks([t for t in ax.get_xticks() if 0 <= t <= n_days])

    # (c) commitment ratio, (d) bid-volume ratio
    for ax, key, title in ((axes[0, 2], "commitment_ratio",
                            "sellers' commitment ratio (parties that sold)"),
                           (axes[0, 3], "bid_volume_ratio",
                            "buyers' bid-volume ratio (parties that bought)")):
        for a in arms:
            _band(ax, days(a), by_arm[a], key, ARM_COLOR[a], ARM_LABEL[a])
        ax.axhline(1.0, color="0.4", ls=":", lw=1)
        ax.set_title(title)
        ax.set_ylabel("committed / forecast (mean)")
        ax.legend(loc="best", fontsize=9.5)

    # (e) breach rate: opportunists vs others
    ax = axes[1, 0]
    for a in arms:
        _band(ax, days(a), by_arm[a], "breach_rate_opportunist", ARM_COLOR[a],
              f"{ARM_LABEL[a]}: opportunists", 100)
        _band(ax, days(a), by_arm[a], "breach_rate_other", ARM_COLOR[a],
              f"{ARM_LABEL[a]}: others", 100, ls="--")
    ax.set_title("breach rate per day: opportunists (solid) vs others (dashed)")
    ax.set_ylabel("% of committed sides")

    # (f) volume ratio: opportunists vs others
    ax = axes[1, 1]
    for a in arms:
        _band(ax, days(a), by_arm[a], "volume_ratio_opportunist", ARM_COLOR[a],
              f"{ARM_LABEL[a]}: opportunists")
        _band(ax, days(a), by_arm[a], "volume_ratio_other", ARM_COLOR[a],
              f"{ARM_LABEL[a]}: others", ls="--")
    ax.axhline(1.0, color="0.4", ls=":", lw=1)
    ax.set_title("volume ratio (sellers and buyers):\nopportunists (solid) vs others (dashed)")
    ax.set_ylabel("committed / forecast (mean)")
    handles = [Line2D([], [], color=ARM_COLOR[a], lw=2, label=ARM_LABEL[a]) for a in arms]
    handles += [Line2D([], [], color="0.3", lw=2, label="opportunists"),
                Line2D([], [], color="0.3", lw=2, ls="--", label="others")]
    ax.legend(handles=handles, loc="best", fontsize=9)

    # (g) transaction efficiency, (h) price spread, per day
    ax = axes[1, 2]
    for a in arms:
        if a == "centralized":
            continue
        _band(ax, days(a), by_arm[a], "transaction_efficiency", ARM_COLOR[a], ARM_LABEL[a], 100)
    if "centralized" in arms:
        ax.text(0.02, 0.03, "centralized: 0 by construction (no direct trade)",
                transform=ax.transAxes, fontsize=9.5, color="0.3", style="italic")
    ax.set_title("transaction efficiency per day\nP2P volume / min(offered, demanded)")
    ax.set_ylabel("%")
    if ax.lines:
        ax.legend(loc="center right", fontsize=9.5)
    ax = axes[1, 3]
    for a in arms:
        if a == "centralized":
            continue
        _band(ax, days(a), by_arm[a], "price_std", ARM_COLOR[a], ARM_LABEL[a])
    if "centralized" in arms:
        ax.text(0.02, 0.03, "centralized: no contracts (one tariff price)",
                transform=ax.transAxes, fontsize=9.5, color="0.3", style="italic")
    ax.set_title("P2P contract price spread per day\n(volume-weighted SD)")
    ax.set_ylabel("yuan/kWh")
    if ax.lines:
        ax.legend(loc="center right", fontsize=9.5)
    for ax in axes[:2].flat:
        ax.set_xlabel("day")

    # (i) breach rate first vs last window
    ax = axes[2, 0]
    s = summary.set_index(["kpi", "arm"])
    for x, a in enumerate(arms):
        for dx, kpi, hatch in ((-0.18, "breach_rate_first", ""), (0.18, "breach_rate_last", "//")):
            mean, lo, hi = s.loc[(kpi, a), ["mean", "ci_low", "ci_high"]]
            ax.bar(x + dx, mean, width=0.34, color=ARM_COLOR[a], alpha=0.75 if hatch else 0.45,
                   hatch=hatch, edgecolor="white", yerr=[[mean - lo], [hi - mean]], capsize=5)
        ch = s.loc[("breach_rate_change", a)]
        ax.text(x, 0.97, f"{ch['mean']:+.1f} [{ch['ci_low']:+.1f}, {ch['ci_high']:+.1f}]",
                transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=9.5)
    ax.set_xticks(range(len(arms)), [ARM_LABEL[a].replace(", ", ",\n") for a in arms],
                  fontsize=9.5)
    ax.set_ylabel("% of committed sides")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    ax.set_title(f"breach rate: first {w} days (plain) vs last {w} days (hatched)\n"
                 "text: change, points, paired 95 % CI")

    _bars(axes[2, 1], runs, summary, arms, "user_cost_yuan", "thousand yuan", rng)
    axes[2, 1].set_title("users' total cost (whole run)")
    _bars(axes[2, 2], runs, summary, arms, "clean_share", "% of users' net need", rng,
          zero_note="0 by construction:\nno direct trade")
    axes[2, 2].set_title("clean share: users' need met directly\nby solar, wind or hydro")
    _bars(axes[2, 3], runs, summary, arms, "breach_shortfall_kwh", "MWh", rng)
    axes[2, 3].set_title("breach shortfall energy (whole run)")

    n_d, n_u = scenario.get("n_dpgc"), scenario.get("n_users")
    fig.suptitle(
        f"Incentive experiment (docs/model.md §8): {n_d} DPGCs + {n_u} users, "
        f"{scenario['hours'] / 24:g} days, learning = {scenario['learning']}, "
        f"{100 * scenario['opportunist_share']:g} % opportunists, "
        f"{reps} paired replications per arm")
    fig.text(0.5, -0.005, "Lines: mean over replications; bands and error bars: Student-t "
             "95 % CI over replications; dots: replications (same seeds in every arm).",
             ha="center", fontsize=10.5, color="0.3")
    fig.tight_layout()
    save_png(fig, path)


# --------------------------------------------------------------------------- main
def _fmt_ci(r: pd.Series) -> str:
    def f(v: float) -> str:
        a = abs(v)
        return (f"{v:,.0f}" if a >= 1000 else f"{v:.1f}" if a >= 10 else f"{v:.3f}"
                if a >= 0.1 else f"{v:.4f}")
    if not np.isfinite(r["mean"]):
        return "n/a"
    return f"{f(r['mean'])} [{f(r['ci_low'])}, {f(r['ci_high'])}]"


def report(summary: pd.DataFrame, arms: Sequence[str]) -> None:
    """Print the KPI table and what the numbers show (decided by the CIs, not assumed)."""
    s = summary.set_index(["kpi", "arm"])
    for kpi, (label, unit, _) in KPIS.items():
        print(f"  {label} ({unit})")
        for a in arms:
            print(f"      {a:<12} {_fmt_ci(s.loc[(kpi, a)])}")
        for a, b in COMPARISONS:
            if (kpi, f"{a} - {b}") in s.index:
                print(f"      {a} - {b}: {_fmt_ci(s.loc[(kpi, f'{a} - {b}')])}")

    def sign(kpi: str, arm: str) -> int:
        r = s.loc[(kpi, arm)]
        return 1 if r["ci_low"] > 0 else (-1 if r["ci_high"] < 0 else 0)

    moved = {1: "rose", -1: "fell", 0: "did not change significantly"}
    print("  findings (95 % CIs over paired replications):")
    for a in arms:
        r = s.loc[("breach_rate_change", a)]
        c0, c1 = s.loc[("commitment_ratio_first", a)], s.loc[("commitment_ratio_last", a)]
        print(f"    {a}: breach rate {moved[sign('breach_rate_change', a)]} from the first to "
              f"the last window ({r['mean']:+.1f} points [{r['ci_low']:+.1f}, "
              f"{r['ci_high']:+.1f}]); sellers' commitment ratio {c0['mean']:.3f} -> "
              f"{c1['mean']:.3f}")
    for a, b in COMPARISONS:
        key = f"{a} - {b}"
        if ("breach_rate_last", key) in s.index:
            r = s.loc[("breach_rate_last", key)]
            word = {1: "higher", -1: "lower", 0: "not significantly different"}[
                sign("breach_rate_last", key)]
            print(f"    last-window breach rate, {a} vs {b}: {word} ({r['mean']:+.1f} points "
                  f"[{r['ci_low']:+.1f}, {r['ci_high']:+.1f}])")
    hypothesis = ("cma_live" in arms and sign("breach_rate_change", "cma_live") < 0
                  and ("cma_frozen" not in arms
                       or sign("breach_rate_last", "cma_live - cma_frozen") < 0))
    print("    docs/model.md §8 hypothesis (breaches fall under live credit, and below the frozen "
          f"arm): {'supported' if hypothesis else 'not supported'} in this run")


def plot_deterrence(table: pd.DataFrame, path: Path) -> None:
    """Per comparison, the paired difference of the last-window breach rate, one bar per
    learning rule, with its 95 % CI."""
    import matplotlib.pyplot as plt

    style()
    t = table[table["kpi"] == "breach_rate_last"]
    comps = list(dict.fromkeys(t["comparison"]))
    rules = list(dict.fromkeys(t["learning"]))
    fig, ax = plt.subplots(figsize=(3 + 2.2 * len(comps), 5))
    width = 0.8 / max(len(rules), 1)
    for j, rule in enumerate(rules):
        d = t[t["learning"] == rule].set_index("comparison").reindex(comps)
        x = np.arange(len(comps)) + (j - (len(rules) - 1) / 2) * width
        m = d["mean"].to_numpy()
        ax.bar(x, m, width=width * 0.9, color=LEARNING_COLOR.get(rule, "0.5"), label=rule,
               yerr=[m - d["ci_low"].to_numpy(), d["ci_high"].to_numpy() - m], capsize=4,
               error_kw={"ecolor": "0.45"})
    ax.axhline(0, color="0.3", lw=1)
    ax.set_xticks(range(len(comps)), [c.replace(" - ", "\nminus ") for c in comps])
    ax.set_ylabel("points (paired difference, 95 % CI)")
    ax.set_title("Does credit deter breaches? Last-window breach rate, arm minus control")
    ax.legend(title="learning")
    fig.tight_layout()
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """Run every arm under every learning rule; returns the deterrence table."""
    ap = parser(__doc__, out="results/incentive_experiment", reps=30, quick_reps=2,
                reps_help="paired replications per arm (at least 10 for the analysis)")
    market_args(ap, dpgc=(10, 4), users=(50, 16), days=(30, 3), quick_workers=None)
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                    help="arms to run (default: all five)")
    ap.add_argument("--learning", nargs="+", choices=LEARNING, default=list(LEARNING),
                    help="learning rules, each over every arm (default: all three)")
    args = parse(ap, argv)
    scenario = market_size(ap, args, BASE, ARM_KEYS)
    arms = list(dict.fromkeys(args.arms))
    try:
        scenario.setdefault("agent_report_every", scenario["hours"])  # no per-agent snapshots
        for a in arms:
            validate({**scenario, **ARMS[a], "learning": args.learning[0]})
    except ConfigError as exc:
        ap.error(str(exc))
    timer = Timer()
    out = Path(args.out)
    tables = []
    for rule in dict.fromkeys(args.learning):
        sc, where = {**scenario, "learning": rule}, out / rule
        results = run_all(arms, sc, args.reps, args.seed, where, args.workers)
        runs = pd.DataFrame([r for r, _ in results], columns=RUN_COLUMNS)
        daily = pd.concat([d for _, d in results], ignore_index=True)
        dsum = summarise_daily(daily, arms)
        summary = summarise(runs, arms)
        save_csv(runs, where / "incentive_experiment_runs.csv")
        save_csv(dsum, where / "incentive_experiment_daily.csv")
        save_csv(summary, where / "incentive_experiment.csv")
        plot(runs, dsum, summary, arms, sc, args.reps, where / "incentive_experiment.png")
        w = int(runs["window_days"].iloc[0])
        print(f"Incentive experiment, learning {rule}: {', '.join(arms)}; {args.reps} paired "
              f"replications; {sc['n_dpgc']} DPGCs + {sc['n_users']} users, {sc['hours']} h, "
              f"opportunist_share {sc['opportunist_share']}; windows: first and last {w} days; "
              "mean [95 % CI]")
        report(summary, arms)
        diffs = summary[summary["arm"].str.contains(" - ") & summary["kpi"].isin(DETERRENCE_KPIS)]
        tables.append(diffs.rename(columns={"arm": "comparison"}).assign(learning=rule))
    table = pd.concat(tables, ignore_index=True)
    table = table[["learning", "comparison", *(c for c in table.columns
                                               if c not in ("learning", "comparison"))]]
    save_csv(table, out / "incentive_deterrence.csv")
    plot_deterrence(table, out / "incentive_deterrence.png")
    print(f"written to {out} in {timer} ({args.workers} workers)")
    return table


if __name__ == "__main__":
    main()
