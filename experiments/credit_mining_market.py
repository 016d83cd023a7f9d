"""Credit and mining through the market: blocks won against *emergent* credit, distance
and cleanliness (docs/model.md section 10, beside the stylised Fig. 4/8/9 reproductions).

What it tests. [DIPI] Fig. 4 and [DER-CBC] Figs. 8-9 set credit, distance or
cleanliness by hand and show that the chance of producing a block rises with credit,
falls with distance and rises with cleanliness; under the model's consensus weights
that holds by construction (``dipi_fig4_mining_credit.py``,
``der_cbc_fig8_distance.py``, ``der_cbc_fig9_cleanliness.py``). Here the same
quantities *emerge* from market runs: learning parties (Roth-Erev, 20 %
opportunists) trade under ``cma`` matching for 30 days, and every hour's block is
produced under ``poca`` (credit) or ``der_cbc`` (credit, electrical distance to the
hour's counterparties, cleanliness of the energy sold or bought). The question is
what the market makes of those weights: how much credit, distance and cleanliness
actually vary across parties, and how unequal block production becomes.

How. Two arms (consensus ``poca`` and ``der_cbc``) over the same replication seeds
(common random numbers), through the sweep engine (:func:`_common.run_arms`) with
an hourly probe (:func:`block_probe`). Each hour the probe bins every party by the
credit (and, under ``der_cbc``, the distance and Q) it had when the block was drawn,
and records per bin the party-hours, the block won (0 or 1), and the blocks the
consensus rule's exact probabilities expect. Over a run that gives, per bin, the
blocks won per party-hour relative to an equal share (1 = one party's fair share
1/N), realised and expected, with Student-t 95 % CIs over replications, and the
share of party-hours spent in each bin (the emergent distribution). Also the
per-run correlation between a party's blocks won and its final credit
(``win_credit_corr``) and the share of blocks won by parties below credit 90.

Writes to ``--out``: ``credit_mining_market.csv`` (per arm, attribute and bin: share
of party-hours, realised and expected relative win rate, CIs),
``credit_mining_market_runs.csv`` (per arm and replication: summary KPIs) and
``credit_mining_market.png``.

    python experiments/credit_mining_market.py --out results/credit_mining_market
    python experiments/credit_mining_market.py --quick
    python experiments/credit_mining_market.py --set credit_rule="ema"

Where it differs from the papers. The papers' figures put parties at chosen credits
(90-100), distances (up to about 5 ohm) and Q (0.3-0.8). In the market, credit is
whatever conduct earned under the scenario's credit rule, distance is the
volume-weighted electrical distance to the hour's counterparties on the IEEE 33-bus
feeder, and Q is a seller's technology or the mix a buyer bought. [DER-CBC]'s Fig. 8
note pairs 14 with about 0.8 and 4 with about 0.3; read as "a larger distance
coefficient w_D/D (a closer pair) goes with a higher chance", it agrees with the
model's weight, which falls as e^(-D/D0); read as raw distance, it would contradict
the paper's own conclusion (a). What the model gives is printed (and in the CSV):
the realised relative win rate per distance bin under ``der_cbc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
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

ARMS = ("poca", "der_cbc")
BASE = {"matching": "cma", "learning": "roth_erev", "opportunist_share": 0.2,
        "ledger_detail": "off"}
#: attribute -> bin edges (left-closed); labels follow the edges
BINS = {
    "credit": (0.0, 50.0, 70.0, 80.0, 90.0, 95.0, 99.0, 100.0 + 1e-9),
    "distance_ohm": (0.0, 0.5, 1.0, 2.0, 4.0, 7.0, 10.0, np.inf),
    "cleanliness": (0.0, 0.45, 0.7, 1.0 + 1e-9),
}
#: which arm each attribute is reported for (distance and Q enter only der_cbc's weight)
ATTRIBUTE_ARMS = {"credit": ARMS, "distance_ohm": ("der_cbc",), "cleanliness": ("der_cbc",)}
CSV_COLUMNS = ["consensus", "attribute", "bin", "low", "high", "party_hour_share",
               "win_rel_mean", "win_rel_ci_low", "win_rel_ci_high", "expected_rel_mean",
               "expected_rel_ci_low", "expected_rel_ci_high", "replications"]
RUN_KPIS = ("win_credit_corr", "low_credit_block_share", "blocks_gini", "mean_credit_dpgc",
            "mean_credit_user", "breach_rate")


def bin_labels(edges: Sequence[float]) -> list[str]:
    def f(x: float) -> str:
        return "inf" if not np.isfinite(x) else f"{min(x, 100.0):g}"

    return [f"[{f(a)}, {f(b)})" for a, b in zip(edges[:-1], edges[1:], strict=True)]


def block_probe(model) -> dict[str, float]:  # noqa: ANN001 - a DIPIModel
    """Per hour and bin: party-hours, the block won, the blocks the rule expects."""
    from dipi_abm.rules.consensus import Nodes, win_probabilities

    p, s = model.params, model.state
    n = s.n
    credit = np.concatenate([s.credit.credit, np.zeros(p.n_miners)])
    stake = np.concatenate([s.balance, model.miner_balance])
    dist, q = model._node_distance_and_cleanliness(model.record.cleared.contracts)
    nodes = Nodes(hash_power=model.node_hash_power, credit=credit, stake=stake,
                  distance=dist if p.consensus == "der_cbc" else None,
                  cleanliness=q if p.consensus == "der_cbc" else None)
    prob = win_probabilities(p.consensus, nodes, tau=p.poca_tau,
                             distance_scale=p.der_cbc_distance_scale_ohm,
                             q_exponent=p.der_cbc_q_exponent)[:n]
    won = np.zeros(n)
    if model.block_winner < n:
        won[model.block_winner] = 1.0
    out: dict[str, float] = {"parties": float(n)}
    for attr, values in (("credit", credit[:n]), ("distance_ohm", dist[:n]),
                         ("cleanliness", q[:n])):
        k = np.digitize(values, BINS[attr][1:-1])
        m = len(BINS[attr]) - 1
        for name, w in (("n", np.ones(n)), ("won", won), ("exp", prob)):
            counts = np.bincount(k, w, m)
            for b in range(m):
                out[f"{attr}_{name}{b}"] = float(counts[b])
    return out


def summarise(runs: pd.DataFrame, hourly: pd.DataFrame) -> pd.DataFrame:
    rows = []
    by_run = hourly.groupby(["arm", "replication"], sort=False)
    sums = by_run.sum(numeric_only=True)
    sums["probe_parties"] /= by_run.size()  # parties per hour (the same every hour)
    for arm in dict.fromkeys(runs["arm"]):
        per = sums.loc[arm]
        for attr, edges in BINS.items():
            if arm not in ATTRIBUTE_ARMS[attr]:
                continue
            labels = bin_labels(edges)
            total = per[[f"probe_{attr}_n{b}" for b in range(len(labels))]].sum(axis=1)
            for b, label in enumerate(labels):
                nh = per[f"probe_{attr}_n{b}"]
                with np.errstate(invalid="ignore", divide="ignore"):
                    # blocks per party-hour x parties: 1 is one party's equal share
                    rel = (per[f"probe_{attr}_won{b}"] / nh.where(nh > 0)) * per["probe_parties"]
                    exp = (per[f"probe_{attr}_exp{b}"] / nh.where(nh > 0)) * per["probe_parties"]
                w_m, w_lo, w_hi = mean_ci(rel.to_numpy(float))
                e_m, e_lo, e_hi = mean_ci(exp.to_numpy(float))
                rows.append({
                    "consensus": arm, "attribute": attr, "bin": label, "low": edges[b],
                    "high": edges[b + 1], "party_hour_share": float((nh / total).mean()),
                    "win_rel_mean": float(w_m), "win_rel_ci_low": float(w_lo),
                    "win_rel_ci_high": float(w_hi), "expected_rel_mean": float(e_m),
                    "expected_rel_ci_low": float(e_lo), "expected_rel_ci_high": float(e_hi),
                    "replications": int(np.sum(nh.to_numpy() > 0))})
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def plot(summary: pd.DataFrame, kpis: pd.DataFrame, scenario: dict, reps: int,
         path: Path) -> None:
    import matplotlib.pyplot as plt

    style()
    fig, axes = plt.subplots(1, 3, figsize=(20, 6.6))
    titles = {"credit": "by credit when the block was drawn",
              "distance_ohm": "by electrical distance to the hour's counterparties (der_cbc)",
              "cleanliness": "by cleanliness Q of the energy sold / bought (der_cbc)"}
    for ax, attr in zip(axes, BINS, strict=True):
        d = summary[summary["attribute"] == attr]
        arms = list(dict.fromkeys(d["consensus"]))
        labels = bin_labels(BINS[attr])
        width = 0.8 / max(len(arms), 1)
        for j, arm in enumerate(arms):
            a = d[d["consensus"] == arm].set_index("bin").reindex(labels)
            x = np.arange(len(labels)) + (j - (len(arms) - 1) / 2) * width
            color = PALETTE[j]
            # bins with (almost) no party-hours say nothing: leave them out
            ok = (a["win_rel_mean"].notna() & (a["party_hour_share"] >= 0.005)).to_numpy()
            ax.bar(x[ok], a["win_rel_mean"][ok], width=width * 0.9, color=color, alpha=0.7,
                   yerr=[(a["win_rel_mean"] - a["win_rel_ci_low"])[ok].fillna(0),
                         (a["win_rel_ci_high"] - a["win_rel_mean"])[ok].fillna(0)],
                   capsize=4, label=f"{arm}: realised")
            ax.plot(x[ok], a["expected_rel_mean"][ok], "_", color="black", ms=18, mew=2.5,
                    label=f"{arm}: expected from the rule" if j == 0 else None)
            for xi, share in zip(x, a["party_hour_share"].to_numpy(), strict=True):
                if np.isfinite(share) and share >= 0.005:
                    ax.text(xi, 0.0, f"{100 * share:.0f}%", ha="center", va="bottom",
                            fontsize=8.5, color=color, rotation=90)
        ax.axhline(1.0, color="0.4", ls=":", lw=1)
        shown = d[d["party_hour_share"] >= 0.005]
        top = np.nanmax(shown[["win_rel_mean", "expected_rel_mean"]].to_numpy(), initial=1.0)
        ax.set_ylim(0, 1.35 * top)  # CIs of sparse bins may reach beyond: clipped
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=10)
        ax.set_title(titles[attr], fontsize=12)
        ax.set_ylabel("blocks per party-hour / equal share")
        ax.legend(loc="upper left", fontsize=9.5)
    k = kpis.groupby("arm", sort=False)["win_credit_corr"]
    corr = "; ".join(f"{a}: {m:.2f}" for a, m in k.mean().items())
    fig.suptitle(
        f"Blocks won against emergent credit, distance and cleanliness: {scenario['n_dpgc']} "
        f"DPGCs + {scenario['n_users']} users, {scenario['hours'] / 24:g} days, learning "
        f"{scenario['learning']}, {100 * scenario['opportunist_share']:g} % opportunists, "
        f"credit rule {scenario['credit_rule']}, {reps} paired replications")
    fig.text(0.5, -0.02, "Bars: realised blocks per party-hour relative to an equal share "
             "(1 = 1/N), mean and 95 % CI over replications; black ticks: what the consensus "
             "rule's exact probabilities expect; small numbers: share of party-hours in the "
             "bin (bins under 0.5 % left out). Mean correlation of blocks won with final "
             f"credit: {corr}.",
             ha="center", fontsize=10, color="0.3", wrap=True)
    fig.tight_layout()
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = parser(__doc__, out="results/credit_mining_market", reps=10, quick_reps=2,
                reps_help="paired replications per consensus rule")
    market_args(ap, dpgc=(10, 4), users=(50, 16), days=(30, 3))
    args = parse(ap, argv)
    scenario = market_size(ap, args, BASE, ("consensus",))
    try:
        params = validate({**scenario, "consensus": "der_cbc"})
    except ConfigError as exc:
        ap.error(str(exc))
    timer = Timer()
    groups = {arm: {"base": {"consensus": arm}} for arm in ARMS}
    runs, hourly = run_arms(groups, scenario, reps=args.reps, seed=args.seed,
                            out=Path(args.out), workers=args.workers,
                            probe="credit_mining_market:block_probe")
    summary = summarise(runs, hourly)
    kpis = runs[["arm", "replication", "seed", *RUN_KPIS]]
    out = Path(args.out)
    save_csv(summary, out / "credit_mining_market.csv")
    save_csv(kpis, out / "credit_mining_market_runs.csv")
    plot(summary, kpis, scenario | {"credit_rule": params.credit_rule}, args.reps,
         out / "credit_mining_market.png")

    print(f"Credit and mining through the market: {args.reps} paired replications, "
          f"{scenario['n_dpgc']} DPGCs + {scenario['n_users']} users, {scenario['hours']} h, "
          f"credit rule {params.credit_rule}; blocks per party-hour relative to an equal "
          "share, realised mean [95 % CI] (expected by the rule)")
    for r in summary.itertuples():
        if r.party_hour_share > 0:
            print(f"  {r.consensus:8s} {r.attribute:12s} {r.bin:14s} party-hours "
                  f"{100 * r.party_hour_share:5.1f} %  won {r.win_rel_mean:5.2f} "
                  f"[{r.win_rel_ci_low:5.2f}, {r.win_rel_ci_high:5.2f}]  "
                  f"(expected {r.expected_rel_mean:5.2f})")
    for arm, g in kpis.groupby("arm", sort=False):
        for k in ("win_credit_corr", "low_credit_block_share"):
            m, lo, hi = mean_ci(g[k].to_numpy(float))
            print(f"  {arm}: {k} {float(m):.3f} [{float(lo):.3f}, {float(hi):.3f}]")
    print(f"written to {out} in {timer}")
    return summary


if __name__ == "__main__":
    main()
