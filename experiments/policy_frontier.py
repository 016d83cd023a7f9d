"""docs/model.md sections 6b and 10: which breach policy suppresses breaches, and at what cost?

What it tests. Every ``breach_policy`` (docs/model.md 6b) and a few useful combinations,
plus the strict credit matching rule ``cma_strict`` (low-credit parties get only what
is left after the trusted ones clear, no price-time fallback), each under the myopic
learning rules (``roth_erev``, ``epsilon_greedy``) and the foresighted ``q_learning``
(which values the credit band it lands in, so what credit buys later can move it;
docs/model.md section 8), with 20 % opportunists who start
by over-committing. The question is the analyst's: which rule lowers breaches among
learning, partly opportunistic parties, and what does it cost users, DPGCs, P2P
volume and clean energy?

How. Every arm (policy x learning rule) runs the same replication seeds (common
random numbers: the same parties, placement, weather and loads in every arm of a
replication), through the sweep engine (:func:`_common.run_arms`), so each arm's
difference from ``none`` under the same learning rule is a paired difference. The
scenario is the default one (10 DPGCs and 50 users on the IEEE 33-bus feeder, flat
R = 0.657 and F = 0.4 yuan/kWh, 2-h forecasts) with ``matching = "cma"`` and POCA,
30 days; the credit rule is the scenario default (``--set credit_rule=...`` to
change it), with the gate's threshold at credit 50 and the rebate's floor at 40
(``_common.KEPT_SCALE``: where they bite on the ``kept`` credit scale). Per run:

- ``breach_rate_last``: breaches / committed sides over the last week (the last
  half of the run if shorter): what learning has settled on;
- ``shortfall_last_mwh``: breach shortfall energy over the same window;
- ``user_cost_per_kwh``: users' total cost (every payment and receipt, penalties and
  rebates included) per kWh they bought (P2P delivered + grid);
- ``dpgc_income_kyuan``, ``p2p_volume_mwh``, ``clean_share_pct`` (users' need met
  directly by solar, wind or hydro), ``gated_share_pct`` (parties below the gate's
  credit threshold, mean over hours), ``consequence_kyuan`` (money the policy moved);
- what it is worth (docs/model.md 6c): ``system_cost_kyuan``, ``balancing_cost_kyuan``,
  net and gross imbalance, ``welfare_kyuan`` (value of served load - system cost), the
  grid company's net surplus, honest parties' (never breached) net surplus and
  penalties, and compensation received against counterparties' actual harm.

Writes to ``--out``: ``policy_frontier_runs.csv`` (one row per arm and replication),
``policy_frontier.csv`` (per arm and KPI: mean and Student-t 95 % CI, and the paired
difference from ``none`` under the same learning rule), ``policy_frontier_who_pays.csv``
(per arm and party type: net surplus and its paired difference from ``none``),
``policy_frontier.png`` (breach rate against users' cost per kWh and against system
cost, with CIs in both directions, one column per learning rule), and the sweep folders
under ``sweeps/`` (a rerun resumes).

    python experiments/policy_frontier.py --out results/policy_frontier
    python experiments/policy_frontier.py --quick
    python experiments/policy_frontier.py --reps 10 --days 30 --set credit_rule="ema"

Where it differs from the papers. Neither paper prices a breach: [DIPI] and
[DER-CBC] rely on credit (matching priority, block odds) alone. The penalties here
follow China's provincial deviation-assessment rules in spirit (tolerance bands for
new energy and users), not a published tariff.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    KEPT_SCALE,
    MARKET_LABELS,
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

#: breach_policy values compared (the strict-CMA arm is added separately)
POLICIES = (
    "none", "imbalance_penalty", "make_whole", "deposit", "credit_gate", "credit_scaled_reward",
    "imbalance_penalty+credit_gate", "make_whole+deposit", "make_whole+credit_scaled_reward",
)
STRICT = "cma_strict"
LEARNING = ("roth_erev", "epsilon_greedy", "q_learning")
BASE = {"matching": "cma", "consensus": "poca", "opportunist_share": 0.2,
        "ledger_detail": "off", **KEPT_SCALE}
#: keys the arms set; --set may not change them
ARM_KEYS = ("breach_policy", "learning", "matching")

#: KPI -> (label, unit)
KPIS = {
    "breach_rate_last": ("breach rate, last window", "% of committed sides"),
    "breach_rate": ("breach rate, whole run", "% of committed sides"),
    "shortfall_last_mwh": ("breach shortfall, last window", "MWh"),
    "p2p_volume_mwh": ("P2P contracted volume", "MWh"),
    "gated_share_pct": ("parties gated (mean over hours)", "%"),
    "gated_share_last_pct": ("parties gated, last window", "%"),
    "consequence_kyuan": ("money moved by the policy", "thousand yuan"),
    **MARKET_LABELS,
    "honest_surplus_kyuan": ("net surplus of parties that never breached", "thousand yuan"),
    "honest_penalties_kyuan": ("penalties paid by parties that never breached",
                               "thousand yuan"),
    "non_opportunist_surplus_kyuan": ("net surplus of parties that are not opportunists",
                                      "thousand yuan"),
    "non_opportunist_penalties_kyuan": ("penalties paid by parties that are not opportunists",
                                        "thousand yuan"),
    "compensation_to_harm": ("compensation received / counterparties' actual harm", "-"),
}
#: party types of the who-pays table (summary.json's by_party_type, flattened by the sweep)
PAYERS = ("solar", "wind", "hydro", "thermal", "residential", "commercial", "industrial",
          "ev", "prosumer", "grid_company", "balancing")
RUN_COLUMNS = ["arm", "policy", "learning", "matching", "replication", "seed", "window_h",
               *KPIS, *(f"surplus_{t}_kyuan" for t in PAYERS)]
SUMMARY_COLUMNS = ["kpi", "label", "unit", "policy", "learning", "arm", "mean", "ci_low",
                   "ci_high", "diff_mean", "diff_ci_low", "diff_ci_high", "replications"]


def groups_of(policies: Sequence[str], learning: Sequence[str],
              strict: bool) -> dict[str, dict]:
    """The sweeps: every policy x learning rule, and the strict-CMA arm per learning rule."""
    groups = {"policies": {"factors": {"learning": list(learning),
                                       "breach_policy": list(policies)}}}
    if strict:
        groups[STRICT] = {"base": {"matching": STRICT, "breach_policy": "none"},
                          "factors": {"learning": list(learning)}}
    return groups


def arm_label(group: str, point: dict) -> str:
    """``policy|learning``: the strict-CMA arm is named after its matching rule."""
    return f"{point.get('breach_policy', group) if group != STRICT else STRICT}|" \
           f"{point['learning']}"


def outcomes(window_h: int) -> dict[str, dict]:
    """The last-window KPIs, as a sweep spec's [outcomes] (columns of the runs)."""
    return {
        "breach_rate_last": {"ratio": ["breaches", "committed_parties"],
                             "last_hours": window_h},
        "shortfall_last_kwh": {"kpi": "breach_shortfall_kwh", "agg": "sum",
                               "last_hours": window_h},
        "gated_share_last": {"kpi": "gated_share", "last_hours": window_h},
    }


def per_run(runs: pd.DataFrame, window_h: int) -> pd.DataFrame:
    """One row per arm and replication with the frontier's KPIs."""
    r = runs.set_index(["arm", "replication"])

    def col(name: str) -> pd.Series:
        return r[name] if name in r else pd.Series(0.0, index=r.index)

    out = pd.DataFrame({
        "policy": r["breach_policy"].where(r["matching"] != STRICT, STRICT),
        "learning": r["learning"], "matching": r["matching"], "seed": r["seed"],
        "window_h": window_h,
        "breach_rate_last": 100 * r["breach_rate_last"],
        "breach_rate": 100 * r["breach_rate"],
        "shortfall_last_mwh": r["shortfall_last_kwh"] / 1e3,
        "p2p_volume_mwh": r["p2p_volume_kwh"] / 1e3,
        "gated_share_pct": 100 * col("gated_share").fillna(0.0),
        "gated_share_last_pct": 100 * r["gated_share_last"].fillna(0.0),
        "consequence_kyuan": col("breach_consequence_yuan").fillna(0.0) / 1e3,
        **market_kpis(r),
        "honest_surplus_kyuan": r["honest_net_surplus_yuan"] / 1e3,
        "honest_penalties_kyuan": r["honest_penalties_paid_yuan"] / 1e3,
        "non_opportunist_surplus_kyuan": r["non_opportunist_net_surplus_yuan"] / 1e3,
        "non_opportunist_penalties_kyuan": r["non_opportunist_penalties_paid_yuan"] / 1e3,
        "compensation_to_harm": r["compensation_yuan"] / r["harm_yuan"].where(r["harm_yuan"] > 0),
        **{f"surplus_{t}_kyuan": col(f"net_surplus_{t}_yuan") / 1e3 for t in PAYERS},
    }, index=r.index).reset_index()
    return out[RUN_COLUMNS]


def who_pays(df: pd.DataFrame) -> pd.DataFrame:
    """Per arm and party type: mean net surplus and its paired difference from ``none``
    under the same learning rule (thousand yuan, Student-t 95 % CI); honest parties (that
    never breached) and parties that are not opportunists as rows of their own."""
    rows = []
    cols = {**{t: f"surplus_{t}_kyuan" for t in PAYERS}, "honest parties": "honest_surplus_kyuan",
            "non-opportunists": "non_opportunist_surplus_kyuan"}
    for arm, g in df.groupby("arm", sort=False):
        g = g.set_index("replication").sort_index()
        ref = df[(df["policy"] == "none") & (df["learning"] == g["learning"].iloc[0])]
        ref = ref.set_index("replication").sort_index()
        both = g.index.intersection(ref.index)
        for payer, c in cols.items():
            mean, lo, hi = mean_ci(g[c].to_numpy(float))
            dm, dlo, dhi = mean_ci((g.loc[both, c] - ref.loc[both, c]).to_numpy(float))
            rows.append({"arm": arm, "policy": g["policy"].iloc[0],
                         "learning": g["learning"].iloc[0], "party_type": payer,
                         "net_surplus_kyuan": float(mean), "ci_low": float(lo),
                         "ci_high": float(hi), "diff_kyuan": float(dm),
                         "diff_ci_low": float(dlo), "diff_ci_high": float(dhi)})
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per arm and KPI: mean and 95 % CI, and the paired difference from ``none``."""
    rows = []
    for arm, g in df.groupby("arm", sort=False):
        g = g.set_index("replication").sort_index()
        ref = df[(df["policy"] == "none") & (df["learning"] == g["learning"].iloc[0])]
        ref = ref.set_index("replication").sort_index()
        both = g.index.intersection(ref.index)
        for kpi, (label, unit) in KPIS.items():
            x = g[kpi].to_numpy(float)
            mean, lo, hi = mean_ci(x)
            dm, dlo, dhi = mean_ci((g.loc[both, kpi] - ref.loc[both, kpi]).to_numpy(float))
            rows.append({"kpi": kpi, "label": label, "unit": unit,
                         "policy": g["policy"].iloc[0], "learning": g["learning"].iloc[0],
                         "arm": arm, "mean": float(mean), "ci_low": float(lo),
                         "ci_high": float(hi), "diff_mean": float(dm), "diff_ci_low": float(dlo),
                         "diff_ci_high": float(dhi),
                         "replications": int(np.sum(~np.isnan(x)))})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


#: short labels on the figure
SHORT = {"none": "none", "imbalance_penalty": "penalty", "make_whole": "make-whole",
         "deposit": "deposit", "credit_gate": "gate", "credit_scaled_reward": "reward",
         STRICT: "strict CMA"}


def short(policy: str) -> str:
    return " + ".join(SHORT.get(p, p) for p in policy.split("+"))


#: the frontier's x axes: KPI -> label (paired change from none)
X_AXES = {"user_cost_per_kwh": "users' cost per kWh bought, change from none (yuan/kWh)",
          "system_cost_kyuan": "system cost, change from none (thousand yuan; welfare moves "
                               "by minus this)"}


def plot(summary: pd.DataFrame, scenario: dict, reps: int, path: Path) -> None:
    """Breach rate against users' cost (top) and against system cost (bottom), as paired
    differences from ``none`` (the origin): common random numbers make those intervals
    far narrower than the arms' own."""
    import matplotlib.pyplot as plt

    style()
    learning = list(dict.fromkeys(summary["learning"]))
    fig, axes = plt.subplots(len(X_AXES), len(learning), figsize=(8.2 * len(learning), 13),
                             squeeze=False)
    policies = list(dict.fromkeys(summary["policy"]))
    cmap = plt.get_cmap("tab10")
    colors = {p: cmap(i % 10) for i, p in enumerate(policies)}
    markers = "osD^vP*XhH<>"
    s = summary.set_index(["kpi", "arm"])
    for row, (xkpi, xlabel) in zip(axes, X_AXES.items(), strict=True):
        for ax, lr in zip(row, learning, strict=True):
            ax.axhline(0, color="0.5", lw=1)
            ax.axvline(0, color="0.5", lw=1)
            for i, pol in enumerate(policies):
                arm = f"{pol}|{lr}"
                if ("breach_rate_last", arm) not in s.index or pol == "none":
                    continue
                y = s.loc[("breach_rate_last", arm)]
                x = s.loc[(xkpi, arm)]
                ax.errorbar(x["diff_mean"], y["diff_mean"],
                            xerr=[[x["diff_mean"] - x["diff_ci_low"]],
                                  [x["diff_ci_high"] - x["diff_mean"]]],
                            yerr=[[y["diff_mean"] - y["diff_ci_low"]],
                                  [y["diff_ci_high"] - y["diff_mean"]]],
                            fmt=markers[i % len(markers)], color=colors[pol], ms=9,
                            capsize=4, lw=1.5, label=short(pol),
                            mfc="white" if "+" in pol else colors[pol], mew=2)
            ref = s.loc[("breach_rate_last", f"none|{lr}")]
            x0 = s.loc[(xkpi, f"none|{lr}")]
            ax.set_title(f"learning = {lr}\nnone (origin): breach rate {ref['mean']:.1f} % "
                         f"[{ref['ci_low']:.1f}, {ref['ci_high']:.1f}], {xkpi} "
                         f"{x0['mean']:.3g}", fontsize=12)
            ax.set_xlabel(xlabel)
            ax.legend(loc="best", fontsize=9.5)
        row[0].set_ylabel(f"breach rate in the last {scenario['window_h'] / 24:g} days, "
                          "change from none (points)")
    fig.suptitle(
        f"Breach policy frontier: {scenario['n_dpgc']} DPGCs + {scenario['n_users']} users, "
        f"{scenario['hours'] / 24:g} days, {100 * scenario['opportunist_share']:g} % "
        f"opportunists, matching {scenario['matching']}, credit rule "
        f"{scenario['credit_rule']}, {reps} paired replications")
    fig.text(0.5, -0.01, "Points: mean paired difference from breach_policy = none under the "
             "same learning rule and seeds; bars: Student-t 95 % CI. Down and to the left is "
             "better. Open markers: combinations.", ha="center", fontsize=10.5, color="0.3")
    fig.tight_layout()
    save_png(fig, path)


def _fmt(v: float, lo: float, hi: float) -> str:
    if not np.isfinite(v):
        return "n/a"
    d = 3 if abs(v) < 1 else 1
    return f"{v:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def report(summary: pd.DataFrame) -> None:
    s = summary.set_index(["kpi", "arm"])
    cols = ("breach_rate_last", "user_cost_per_kwh", "system_cost_kyuan",
            "balancing_cost_kyuan", "welfare_kyuan", "non_opportunist_penalties_kyuan")
    for lr in dict.fromkeys(summary["learning"]):
        print(f"  learning = {lr}: mean [95 % CI]; paired difference from none in ()")
        for arm in dict.fromkeys(summary.loc[summary["learning"] == lr, "arm"]):
            parts = []
            for k in cols:
                r = s.loc[(k, arm)]
                diff = "" if r["policy"] == "none" else (
                    f" ({r['diff_mean']:+.3g} [{r['diff_ci_low']:+.3g}, "
                    f"{r['diff_ci_high']:+.3g}])")
                parts.append(f"{k} {_fmt(r['mean'], r['ci_low'], r['ci_high'])}{diff}")
            print(f"    {short(s.loc[(cols[0], arm), 'policy']):<28} " + "; ".join(parts))


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = parser(__doc__, out="results/policy_frontier", reps=10, quick_reps=2,
                reps_help="paired replications per arm")
    market_args(ap, dpgc=(10, 4), users=(50, 16), days=(30, 3))
    ap.add_argument("--policies", nargs="+", default=list(POLICIES),
                    help="breach_policy values to compare ('none' is always included)")
    ap.add_argument("--learning", nargs="+", choices=LEARNING, default=list(LEARNING))
    ap.add_argument("--no-strict", action="store_true", help="leave out the cma_strict arm")
    args = parse(ap, argv)
    scenario = market_size(ap, args, BASE, ARM_KEYS)
    try:
        policies = list(dict.fromkeys(["none", *(validate({"breach_policy": p}).breach_policy
                                                 for p in args.policies)]))
        groups = groups_of(policies, args.learning, not args.no_strict)
        for lr in args.learning:
            for keys in ({"breach_policy": p} for p in policies):
                params = validate({**scenario, **keys, "learning": lr})
            validate({**scenario, "learning": lr, "matching": STRICT})
    except ConfigError as exc:
        ap.error(str(exc))
    scenario["credit_rule"] = params.credit_rule
    hours = scenario["hours"]
    window_h = min(168, max(hours // 2, 1))
    scenario["window_h"] = window_h
    timer = Timer()
    base = {k: v for k, v in scenario.items() if k != "window_h"}
    runs, _ = run_arms(groups, base, reps=args.reps, seed=args.seed, out=Path(args.out),
                       workers=args.workers, label=arm_label, outcomes=outcomes(window_h))
    df = per_run(runs, window_h)
    summary = summarise(df)
    out = Path(args.out)
    save_csv(df, out / "policy_frontier_runs.csv")
    save_csv(summary, out / "policy_frontier.csv")
    save_csv(who_pays(df), out / "policy_frontier_who_pays.csv")
    plot(summary, scenario, args.reps, out / "policy_frontier.png")
    print(f"Policy frontier: {runs['arm'].nunique()} arms x {args.reps} paired replications; "
          f"{scenario['n_dpgc']} DPGCs + {scenario['n_users']} users, {hours} h, matching "
          f"{scenario['matching']}, credit rule {scenario['credit_rule']}, opportunist_share "
          f"{scenario['opportunist_share']}; last window {window_h} h")
    report(summary)
    print(f"written to {out} in {timer} ({args.workers} workers)")
    return summary


if __name__ == "__main__":
    main()
