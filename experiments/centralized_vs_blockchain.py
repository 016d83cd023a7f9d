"""[DIPI] section 5: the blockchain P2P market against the traditional centralized mode.

What it tests. [DIPI] claims that, against the traditional centralized mode
(the grid company buys all generation at the feed-in price and sells all
demand at retail), the blockchain market with credit and POCA has higher
transaction efficiency, fewer breaches and more orderly prices. The model
tests the claim; it does not assume it: this script runs both and prints
what it finds.

How. DIPIModel in `centralized` matching and in `price_time` matching (the
P2P continuous double auction with the `paper` credit rule and POCA
consensus), default scenario otherwise (IEEE 33-bus feeder, flat tariff
R = 0.657, F = 0.4 yuan/kWh), 20 DPGCs and 100 users, 14 days, over
replications seeded from one SeedSequence child each. Both modes of a
replication get the same seed, hence the same parties, placement, weather
and loads (common random numbers), so every KPI is also compared as a paired
difference (P2P minus centralized) with its 95 % CI. KPIs (model.summary()):

- transaction efficiency: P2P volume / min(offered, demanded). It is 0 in
  centralized mode *by construction* (no direct trade), so it cannot test the
  claim; it is reported for P2P only;
- breach rate, with one definition and one denominator in both modes: every
  party that submits a schedule in an hour (an order in P2P mode, an offer or
  bid to the grid company in centralized mode) is one party-hour of the
  denominator; it breaches when it delivers or takes less than
  (1 - breach_tolerance) of what it is held to (its contracts in P2P mode, its
  submitted schedule in centralized mode, where parties still submit schedules
  to the grid company). A P2P party whose order found no match is held to
  nothing and cannot breach; that is part of what the comparison measures.
  Also breach shortfall energy (MWh) and per scheduled party-hour (kWh);
- orderly transactions, defined in both modes: the spread (kWh-weighted SD,
  and the 10-90 % range) of users' *effective price*, what a user paid in an
  hour (contracts, wheeling, grid purchases, any consequence payments) per kWh
  it bought, across users and hours. Under a flat tariff every user pays R in
  centralized mode, so that spread is 0 there; P2P prices differ by pair and
  hour. The P2P contract price spread is reported too (P2P only);
- users' mean effective price (cost per kWh bought);
- users' total cost, DPGCs' income, the grid company's income, grid
  purchases (MWh), curtailment, clean share, mean credit;
- what it is worth (docs/model.md 6c): system cost, balancing cost, gross and net
  imbalance against schedules, welfare, the grid company's net surplus.

    python experiments/centralized_vs_blockchain.py --out results/centralized_vs_p2p
    python experiments/centralized_vs_blockchain.py --quick
    python experiments/centralized_vs_blockchain.py --set tariff="tou" --set breach_tolerance=0

Where and why it may differ from the paper. [DIPI] states the claim
qualitatively, without a model of weather, forecasts or a feeder; its breach
comparison presumes that credit makes parties keep their word. By default
parties here do not learn (``--set learning="roth_erev"`` makes them), so
credit and POCA cannot change anyone's behaviour: breaches come from forecast
error, and any difference in breach rate comes from what each mode holds a
party to (matched contracts vs the whole schedule), not from deterrence. The
cost and income differences are a transfer: P2P trade at prices between F
and R moves the grid company's retail margin to users and DPGCs.

Runs go through the sweep engine (:func:`_common.run_arms`, one arm per mode,
paired seeds); an hourly probe (:func:`schedule_probe`) records the scheduled
party-hours and users' effective prices.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    MARKET_LABELS,
    PALETTE,
    Timer,
    market_args,
    market_kpis,
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

MODES = ("centralized", "price_time")
MODE_LABEL = {"centralized": "centralized\n(grid buys/sells)",
              "price_time": "P2P (price_time,\ncredit, POCA)"}
MODE_COLOR = {"centralized": "#9a9a9a", "price_time": PALETTE[0]}

#: KPI column -> (label, unit) for the summary table; derived columns are added in kpis().
KPIS = {
    "transaction_efficiency_pct": ("transaction efficiency", "%"),
    "breach_rate_scheduled_pct": ("breach rate per scheduled party-hour (same denominator)",
                                  "% of scheduled party-hours"),
    "breach_rate_pct": ("breach rate per committed side (each mode's own denominator)",
                        "% of committed sides"),
    "shortfall_per_scheduled_kwh": ("breach shortfall per scheduled party-hour", "kWh"),
    "user_price_spread": ("spread of users' effective price across users and hours (SD)",
                          "yuan/kWh"),
    "user_price_spread_pct_of_retail": ("spread of users' effective price", "% of retail"),
    "price_mean": ("mean P2P contract price", "yuan/kWh"),
    "price_std": ("P2P contract price spread (SD)", "yuan/kWh"),
    "price_spread_pct_of_retail": ("P2P contract price spread", "% of retail"),
    "user_cost_kyuan": ("users' total cost", "thousand yuan"),
    "grid_purchase_mwh": ("bought from the grid", "MWh"),
    "curtailed_mwh": ("curtailed", "MWh"),
    **MARKET_LABELS,
}


def schedule_probe(model) -> dict[str, float]:  # noqa: ANN001 - a DIPIModel
    """Hourly probe (run in the sweep's workers): scheduled party-hours, breaches of what
    each party is held to, and the sums that give users' effective-price spread."""
    from dipi_abm.model import USER_KIND

    s = model.state
    scheduled = s.offered_kwh > 0  # submitted an order (P2P) or a schedule (centralized)
    short = np.where(s.breach, s.committed_kwh - s.delivered_kwh, 0.0)
    need = model.record.delivery.need_kw
    buyer = (s.kind == USER_KIND) & (need > 1e-9)
    paid = -model.record.settlement.party_transfer[buyer]
    kwh = need[buyer]
    # Prices relative to a constant (the retail parameter), so that a spread of zero
    # comes out as zero and not as rounding noise of E[x^2] - E[x]^2.
    dev = paid / kwh - model.params.retail_yuan_per_kwh
    return {"scheduled": float(scheduled.sum()), "breaches": float((s.breach & scheduled).sum()),
            "shortfall_kwh": float(short.sum()), "user_kwh": float(kwh.sum()),
            "user_dev_kwh": float((dev * kwh).sum()),
            "user_dev2_kwh": float((dev * dev * kwh).sum())}


def kpis(row: pd.Series, probe: pd.DataFrame, retail: float) -> dict:
    """The KPIs of one run beyond :data:`_common.MARKET_KPIS`: from its summary row and its
    summed hourly probe."""
    s = row
    p = probe.sum()
    has_p2p = s["p2p_volume_kwh"] > 0
    mean_dev = p["probe_user_dev_kwh"] / p["probe_user_kwh"]
    spread = float(np.sqrt(max(p["probe_user_dev2_kwh"] / p["probe_user_kwh"] - mean_dev ** 2,
                               0.0)))
    return {
        "transaction_efficiency_pct": 100.0 * s["transaction_efficiency"],
        "breach_rate_scheduled_pct": 100.0 * p["probe_breaches"] / p["probe_scheduled"],
        "breach_rate_pct": 100.0 * s["breach_rate"],
        "shortfall_per_scheduled_kwh": p["probe_shortfall_kwh"] / p["probe_scheduled"],
        "user_price_spread": spread,
        "user_price_spread_pct_of_retail": 100.0 * spread / retail,
        "price_mean": s["price_mean"] if has_p2p else np.nan,
        "price_std": s["price_std"] if has_p2p else np.nan,
        "price_spread_pct_of_retail": 100.0 * s["price_std"] / retail if has_p2p else np.nan,
        "user_cost_kyuan": s["user_cost_yuan"] / 1e3,
        "grid_purchase_mwh": s["grid_purchase_kwh"] / 1e3,
        "curtailed_mwh": s["curtailed_kwh"] / 1e3,
    }


def run(reps: int, seed: int, scenario: dict, modes: Sequence[str], out: Path,
        workers: int) -> pd.DataFrame:
    """One row per (replication, mode), every mode over the same seeds."""
    groups = {m: {"base": {"matching": m}} for m in modes}
    runs, hourly = run_arms(groups, scenario, reps=reps, seed=seed, out=out, workers=workers,
                            probe="centralized_vs_blockchain:schedule_probe")
    retail = validate(scenario).retail_yuan_per_kwh
    probes = dict(iter(hourly.groupby(["arm", "replication"], sort=False)))
    shared = market_kpis(runs)
    rows = [{"replication": int(r.replication), "seed": int(r.seed), "mode": r.arm,
             **kpis(r, probes[(r.arm, r.replication)], retail), **shared.loc[i]}
            for i, r in runs.iterrows()]
    return pd.DataFrame(rows).sort_values(["replication", "mode"], kind="stable",
                                          key=lambda c: c.map(modes.index) if c.name == "mode"
                                          else c).reset_index(drop=True)


def summarise(runs: pd.DataFrame, modes: Sequence[str]) -> pd.DataFrame:
    """Mean and 95 % CI per mode and KPI, and the paired difference of the last mode
    minus the first."""
    rows = []
    wide = {m: runs[runs["mode"] == m].set_index("replication").sort_index() for m in modes}
    base, other = modes[0], modes[-1]
    for kpi, (label, unit) in KPIS.items():
        row = {"kpi": kpi, "label": label, "unit": unit}
        for m in modes:
            mean, lo, hi = mean_ci(wide[m][kpi].to_numpy())
            row |= {f"{m}_mean": float(mean), f"{m}_ci_low": float(lo),
                    f"{m}_ci_high": float(hi)}
        diff = (wide[other][kpi] - wide[base][kpi]).to_numpy()
        mean, lo, hi = mean_ci(diff)
        row |= {"diff_mean": float(mean), "diff_ci_low": float(lo), "diff_ci_high": float(hi),
                "replications": int(len(wide[base]))}
        rows.append(row)
    return pd.DataFrame(rows)


PANELS = (
    ("user_cost_per_kwh", "users' net cost per kWh needed", "yuan/kWh"),
    ("dpgc_income_kyuan", "DPGCs' income", "thousand yuan"),
    ("grid_income_kyuan", "grid company's income", "thousand yuan"),
    ("grid_purchase_mwh", "energy bought from the grid", "MWh"),
    ("breach_rate_scheduled_pct", "breach rate (same denominator)",
     "% of scheduled party-hours"),
    ("shortfall_per_scheduled_kwh", "breach shortfall", "kWh per scheduled party-hour"),
    ("user_price_spread_pct_of_retail", "spread of users' effective price\n(users x hours)",
     "% of retail price"),
    ("transaction_efficiency_pct", "transaction efficiency", "% of min(offered, demanded)"),
    ("system_cost_kyuan", "system cost\n(generation, energy, balancing, network)",
     "thousand yuan"),
    ("welfare_kyuan", "welfare\n(value of served load - system cost)", "thousand yuan"),
)


def _fmt(v: float) -> str:
    v = v if abs(v) > 1e-9 else 0.0  # rounding is no difference
    a = abs(v)
    return f"{v:+,.0f}" if a >= 100 else (f"{v:+.2f}" if a >= 1 else f"{v:+.3f}")
BY_CONSTRUCTION = {
    "user_price_spread_pct_of_retail": "everyone pays the\ntariff price:\nspread 0 under a flat\n"
                                       "tariff (by construction)",
    "transaction_efficiency_pct": "no direct trade:\n0 by construction",
}


def plot(runs: pd.DataFrame, summary: pd.DataFrame, modes: Sequence[str], scenario: dict,
         path: Path) -> None:
    import matplotlib.pyplot as plt

    style()
    fig, axes = plt.subplots(2, 5, figsize=(23, 9.2))
    rng = np.random.default_rng(0)  # jitter of the replication dots only
    reps = int(summary.replications.iloc[0])
    for ax, (kpi, title, unit) in zip(axes.flat, PANELS, strict=True):
        row = summary.set_index("kpi").loc[kpi]
        for x, m in enumerate(modes):
            mean, lo, hi = row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"]
            values = runs.loc[runs["mode"] == m, kpi].to_numpy()
            if (m == "centralized" and kpi in BY_CONSTRUCTION
                    and np.allclose(np.nan_to_num(values), 0.0)):
                ax.text(x, 0.5, BY_CONSTRUCTION[kpi], transform=ax.get_xaxis_transform(),
                        ha="center", va="center", fontsize=10, color="0.35", style="italic")
                continue
            ax.bar(x, mean, width=0.55, color=MODE_COLOR.get(m, PALETTE[x]), alpha=0.75,
                   yerr=[[mean - lo], [hi - mean]], capsize=8, error_kw={"lw": 1.8})
            ax.scatter(x + rng.uniform(-0.18, 0.18, values.size), values, s=12, color="0.15",
                       alpha=0.5, zorder=3, lw=0)
        if kpi == "user_cost_per_kwh":
            for value, name in ((scenario.get("retail_yuan_per_kwh", 0.657), "retail R"),
                                (scenario.get("feed_in_yuan_per_kwh", 0.4), "feed-in F")):
                ax.axhline(value, color="0.4", ls="--", lw=1)
                ax.text(1.55, value, name, va="bottom", ha="right", fontsize=9.5, color="0.3",
                        bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
            ax.set_ylim(0.35, 0.7)
        diff = ""
        if np.isfinite(row["diff_mean"]):
            diff = (f"P2P − centralized: {_fmt(row['diff_mean'])} "
                    f"[{_fmt(row['diff_ci_low'])}, {_fmt(row['diff_ci_high'])}]")
        ax.set_title(f"{title}\n{diff}" if diff else title, fontsize=12)
        ax.set_ylabel(unit)
        ax.set_xticks(range(len(modes)), [MODE_LABEL.get(m, m) for m in modes], fontsize=10.5)
        ax.set_xlim(-0.6, len(modes) - 0.4)
    n_d, n_u = scenario.get("n_dpgc", 10), scenario.get("n_users", 50)
    days = scenario.get("hours", 168) / 24
    fig.suptitle(f"[DIPI] §5: blockchain P2P market vs centralized mode "
                 f"({n_d} DPGCs, {n_u} users, {days:g} days, {reps} paired replications)")
    fig.text(0.5, -0.01, "Bars: mean; error bars: 95 % CI over replications; dots: "
             "replications (same seed in both modes). Panel titles: paired difference, 95 % CI.",
             ha="center", fontsize=10, color="0.3")
    fig.tight_layout()
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = parser(__doc__, out="results/centralized_vs_blockchain", reps=40, quick_reps=4,
                reps_help="replications per mode")
    market_args(ap, dpgc=(20, 6), users=(100, 30), days=(14, 3))
    args = parse(ap, argv)
    scenario = market_size(ap, args, fixed=("matching",))
    try:
        validate({**scenario, "matching": "price_time"})
    except ConfigError as exc:
        ap.error(str(exc))
    modes = list(MODES)
    timer = Timer()
    scenario.setdefault("ledger_detail", "off")  # the chains change no KPI
    runs = run(args.reps, args.seed, scenario, modes, Path(args.out), args.workers)
    summary = summarise(runs, modes)
    out = Path(args.out)
    save_csv(runs, out / "centralized_vs_blockchain_runs.csv")
    save_csv(summary, out / "centralized_vs_blockchain.csv")
    plot(runs, summary, modes, scenario, out / "centralized_vs_blockchain.png")

    print(f"[DIPI] §5: centralized vs blockchain P2P, {args.reps} paired replications "
          f"({scenario['n_dpgc']} DPGCs, {scenario['n_users']} users, "
          f"{scenario['hours']} h); mean [95 % CI]")
    for r in summary.itertuples():
        cells = [f"{getattr(r, f'{m}_mean'):10.4g} [{getattr(r, f'{m}_ci_low'):.4g}, "
                 f"{getattr(r, f'{m}_ci_high'):.4g}]" for m in modes]
        print(f"  {r.label} ({r.unit})")
        print(f"      centralized {cells[0]}   P2P {cells[1]}   "
              f"P2P - centralized {r.diff_mean:+.4g} [{r.diff_ci_low:+.4g}, "
              f"{r.diff_ci_high:+.4g}]")
    print("  transaction efficiency is 0 in centralized mode by construction (no direct "
          "trade); the P2P contract price spread has no centralized counterpart.")
    verdict(summary)
    print(f"written to {out} in {timer}")
    return summary


def verdict(summary: pd.DataFrame) -> None:
    """Print, KPI by KPI, whether the paired difference supports the paper's claim."""
    s = summary.set_index("kpi")

    def sign(kpi: str) -> int:
        lo, hi = s.loc[kpi, "diff_ci_low"], s.loc[kpi, "diff_ci_high"]
        tol = 1e-9 * max(abs(s.loc[kpi, "centralized_mean"]), 1.0)  # rounding is no finding
        return 1 if lo > tol else (-1 if hi < -tol else 0)

    words = {1: "higher", -1: "lower", 0: "not significantly different"}
    print("  findings (paired 95 % CI of P2P - centralized excludes 0?):")
    print(f"    breach rate per scheduled party-hour in P2P: "
          f"{words[sign('breach_rate_scheduled_pct')]} (claim: fewer breaches)")
    print(f"    spread of users' effective price in P2P: "
          f"{words[sign('user_price_spread')]} (claim: more orderly, i.e. lower)")
    print(f"    users' cost per kWh in P2P: {words[sign('user_cost_per_kwh')]}")
    print(f"    DPGC income in P2P: {words[sign('dpgc_income_kyuan')]}")
    print(f"    grid purchases in P2P: {words[sign('grid_purchase_mwh')]}")
    print(f"    system cost in P2P: {words[sign('system_cost_kyuan')]}; welfare: "
          f"{words[sign('welfare_kyuan')]}")


if __name__ == "__main__":
    main()
