"""Attack study: can a stand-alone miner with much hash power and no credit history
take over block production?

What it tests (docs/model.md sections 1 and 7, the ledger issue). Every trading
party owns one miner node; a stand-alone miner has hash power but no trades
and hence no credit history (credit 0). Under proof of work, a miner holding a
share h of the total hash power writes about a share h of the blocks; with
h > 50 % it controls the ledger. [DIPI]'s POCA weights hash power by
e^(credit/tau), so hash power without credit should buy almost nothing.

How. DIPIModel with one stand-alone miner (n_miners = 1) whose hash power
(miner_hash_power) makes it hold 10, 30, 50, 70 and 90 % of the total hash
power (--shares; parties keep their own hash power, 1 each by default), under
consensus `pow`, `dpos` and `poca` (sampled), P2P price_time market with the
default scenario (10 DPGCs, 50 users, IEEE 33-bus), one week (168 blocks),
replications seeded from one SeedSequence child each; the same seed across
rules and shares (common random numbers). Per run two numbers:

- the share of blocks the miner actually won (model.summary()
  ["standalone_block_share"]), the Monte Carlo estimate;
- its expected share: the exact probability of winning each hour's block
  (dipi_abm.rules.consensus.win_probabilities on that hour's hash power, credit and
  stake) averaged over the hours; for POCA this resolves shares far below one
  block in 168;
- for POCA also a counterfactual: the expected share had the miner entered
  with a new party's credit (credit_initial = 100) instead of 0.

Means with Student-t 95 % CIs over replications.

    python experiments/attack_share.py --out results/attack_share
    python experiments/attack_share.py --quick
    python experiments/attack_share.py --set poca_tau=1 --set hash_power_spread=1

Caveats. The result for POCA rests entirely on a node without history
starting at credit 0, while a new *trading party* starts at credit_initial
(100); the counterfactual line shows that an attacker who registers as a
party (a Sybil) gets exactly its pow share back until breaches lower its
credit, and a party that never commits anything never breaches. Under DPoS
the miner's weight is its balance (200 yuan at the start plus block rewards)
against parties' balances, so its share does not depend on hash power at
all; DPGCs' balances grow with their sales, users' go negative (they hold
no stake). The papers do not run this experiment.
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

from dipi_abm import DIPIModel
from dipi_abm.config import parse_assignments, validate
from dipi_abm.errors import ConfigError
from dipi_abm.rules.consensus import Nodes, win_probabilities

RULES = ("pow", "dpos", "poca")
RULE_LABEL = {"pow": "PoW (hash power)", "dpos": "DPoS (stake = balance)",
              "poca": "POCA (hash power × e^(credit/τ))"}
RULE_SHORT = {"pow": "PoW", "dpos": "DPoS", "poca": "POCA"}
RULE_COLOR = {"pow": PALETTE[6], "dpos": PALETTE[1], "poca": PALETTE[0]}
CSV_COLUMNS = ["consensus", "hash_share", "miner_hash_power", "won_share_mean",
               "won_share_ci_low", "won_share_ci_high", "expected_share_mean",
               "expected_share_ci_low", "expected_share_ci_high", "fresh_credit_share_mean",
               "fresh_credit_share_ci_low", "fresh_credit_share_ci_high", "blocks_per_run",
               "replications"]


class ExpectedShare:
    """Called after every hour: the stand-alone miner's exact chance of producing that
    hour's block, and under POCA also its chance with a new party's credit."""

    def __init__(self, model: DIPIModel) -> None:
        self.model = model
        self.p: list[float] = []
        self.p_fresh: list[float] = []

    def __call__(self, _: int) -> None:
        m = self.model
        p = m.params
        n_parties = m.state.n
        credit = np.concatenate([m.state.credit.credit, np.zeros(p.n_miners)])
        stake = np.concatenate([m.state.balance, m.miner_balance])
        stake[m.block_winner] -= p.block_reward_yuan  # the stake the block was drawn on
        nodes = Nodes(hash_power=m.node_hash_power, credit=credit, stake=stake)
        kw = {"tau": p.poca_tau}
        self.p.append(float(win_probabilities(p.consensus, nodes, **kw)[n_parties:].sum()))
        if p.consensus == "poca":
            fresh = credit.copy()
            fresh[n_parties:] = p.credit_initial
            nodes = Nodes(hash_power=m.node_hash_power, credit=fresh, stake=stake)
            self.p_fresh.append(float(win_probabilities("poca", nodes, **kw)[n_parties:].sum()))


def one_run(seed: int, scenario: dict, rule: str, share: float) -> dict:
    probe = DIPIModel(seed=seed, **{**scenario, "n_miners": 1, "hours": 1})
    party_hp = float(probe.node_hash_power[: probe.state.n].sum())
    miner_hp = share / (1.0 - share) * party_hp
    model = DIPIModel(seed=seed, **{**scenario, "n_miners": 1, "miner_hash_power": miner_hp,
                                    "consensus": rule})
    expected = ExpectedShare(model)
    model.run(progress=expected)
    s = model.summary()
    return {"consensus": rule, "hash_share": share, "miner_hash_power": miner_hp,
            "won_share": s["standalone_block_share"], "blocks": s["blocks"],
            "expected_share": float(np.mean(expected.p)),
            "fresh_credit_share": float(np.mean(expected.p_fresh)) if expected.p_fresh
            else np.nan}


def run(reps: int, seed: int, scenario: dict, rules: Sequence[str],
        shares: Sequence[float]) -> pd.DataFrame:
    rows = []
    for rep, run_seed in enumerate(rep_seeds(seed, reps)):
        for rule in rules:
            for share in shares:
                rows.append({"replication": rep, "seed": run_seed,
                             **one_run(run_seed, scenario, rule, share)})
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (rule, share), d in runs.groupby(["consensus", "hash_share"], sort=False):
        row = {"consensus": rule, "hash_share": share,
               "miner_hash_power": float(d.miner_hash_power.mean()),
               "blocks_per_run": int(d.blocks.iloc[0]), "replications": len(d)}
        for col in ("won_share", "expected_share", "fresh_credit_share"):
            mean, lo, hi = mean_ci(d[col].to_numpy())
            row |= {f"{col}_mean": float(mean), f"{col}_ci_low": max(float(lo), 0.0),
                    f"{col}_ci_high": float(hi)}
        rows.append(row)
    return pd.DataFrame(rows)[CSV_COLUMNS]


def plot(summary: pd.DataFrame, rules: Sequence[str], scenario: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    style()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14.5, 5.8))
    reps = int(summary.replications.iloc[0])
    blocks = int(summary.blocks_per_run.iloc[0])
    x_all = 100 * summary.hash_share.unique()
    for a in (ax, bx):
        grid = np.linspace(0.0, 100.0, 101)
        a.plot(grid[1:], grid[1:], color="0.6", lw=1, ls=":", label="blocks share = hash share")
    for k, rule in enumerate(rules):
        d = summary[summary.consensus == rule]
        x = 100 * d.hash_share.to_numpy()
        color = RULE_COLOR.get(rule, PALETTE[k])
        off = (k - (len(rules) - 1) / 2) * 0.8
        ax.errorbar(x + off, 100 * d.won_share_mean,
                    yerr=[100 * (d.won_share_mean - d.won_share_ci_low),
                          100 * (d.won_share_ci_high - d.won_share_mean)],
                    fmt="o-", ms=7, lw=1.8, capsize=5, color=color, label=RULE_LABEL[rule])
        bx.plot(x, 100 * d.expected_share_mean, "o-", ms=6, lw=1.8, color=color,
                label=RULE_LABEL[rule])
        name = RULE_SHORT[rule] + (" (miner's credit 0)" if rule == "poca" else "")
        bx.annotate(name, (x[0], 100 * d.expected_share_mean.iloc[0]), xytext=(4, 7),
                    textcoords="offset points", fontsize=10.5, color=color)
        bx.fill_between(x, 100 * d.expected_share_ci_low.clip(lower=1e-12),
                        100 * d.expected_share_ci_high, color=color, alpha=0.2, lw=0)
        if rule == "poca":
            bx.plot(x, 100 * d.fresh_credit_share_mean, "s--", ms=5, lw=1.4, color=color,
                    mfc="white", label="POCA, had the miner a new party's credit (100)")
    notes = []
    for rule in rules:
        d = summary[summary.consensus == rule]
        if d.won_share_mean.max() < 0.02:
            won = int(round(float((d.won_share_mean * blocks * reps).sum())))
            notes.append(f"{RULE_SHORT[rule]}: {won:,} of {blocks * reps * len(d):,} blocks")
    if notes:
        ax.text(97, 4, "near 0: " + "; ".join(notes), ha="right", va="bottom", fontsize=10,
                color="0.25", bbox={"fc": "white", "ec": "none", "alpha": 0.85})
    ax.axhline(50, color="0.35", lw=1, ls="--")
    ax.text(1, 51, "majority of blocks", fontsize=10, color="0.3", va="bottom")
    ax.set_ylim(-2, 100)
    ax.set_title(f"blocks the miner won ({blocks} blocks per run; 95 % CI over {reps} runs)")
    ax.set_ylabel("stand-alone miner's share of blocks won (%)")
    bx.set_yscale("log")
    bx.set_ylim(1e-4, 150)
    bx.set_title("its exact chance per block, averaged over the hours (log scale)")
    bx.set_ylabel("expected share of blocks (%)")
    for a in (ax, bx):
        a.set_xlabel("stand-alone miner's share of total hash power (%)")
        a.set_xlim(0, 100)
        a.set_xticks(x_all)
    ax.legend(loc="upper left", frameon=True, framealpha=0.9)
    handles, labels = bx.get_legend_handles_labels()
    keep = [i for i, lab in enumerate(labels) if lab not in RULE_LABEL.values()]
    bx.legend([handles[i] for i in keep], [labels[i] for i in keep], loc="lower right",
              frameon=True, framealpha=0.9, fontsize=10)
    n_d, n_u = scenario.get("n_dpgc", 10), scenario.get("n_users", 50)
    fig.suptitle("Attack: one stand-alone miner with much hash power and no credit history "
                 f"({n_d} DPGCs + {n_u} users, each with hash power 1)")
    fig.tight_layout()
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = parser(__doc__, out="results/attack_share", reps=20, quick_reps=3,
                reps_help="replications per consensus rule and share")
    ap.add_argument("--shares", type=float, nargs="+", default=None,
                    help="miner's share of total hash power (default 0.1 0.3 0.5 0.7 0.9; "
                         "0.3 0.7 with --quick)")
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES,
                    help="consensus rules (default pow dpos poca)")
    ap.add_argument("--hours", type=int, default=None,
                    help="hours = blocks per run (default 168; 48 with --quick)")
    ap.add_argument("--set", dest="assignments", action="append", default=[],
                    metavar="KEY=VALUE", help="any other scenario key (repeatable)")
    args = parse(ap, argv)
    shares = args.shares or ([0.3, 0.7] if args.quick else [0.1, 0.3, 0.5, 0.7, 0.9])
    if any(not 0.0 < s < 1.0 for s in shares):
        ap.error("--shares: every share must lie in (0, 1)")
    scenario = {"hours": args.hours or (48 if args.quick else 168)}
    if args.quick:
        scenario |= {"n_dpgc": 6, "n_users": 30}
    try:
        scenario |= parse_assignments(args.assignments)
        for key in ("seed", "consensus", "n_miners", "miner_hash_power"):
            scenario.pop(key, None)
        validate(scenario)
    except ConfigError as exc:
        ap.error(str(exc))
    timer = Timer()
    runs = run(args.reps, args.seed, scenario, args.rules, shares)
    summary = summarise(runs)
    out = Path(args.out)
    save_csv(runs, out / "attack_share_runs.csv")
    save_csv(summary, out / "attack_share.csv")
    plot(summary, args.rules, scenario, out / "attack_share.png")

    print(f"Attack: stand-alone miner's share of blocks, {args.reps} replications of "
          f"{scenario['hours']} blocks; mean [95 % CI], in %")
    for r in summary.itertuples():
        fresh = ""
        if np.isfinite(r.fresh_credit_share_mean):
            fresh = f"   with a new party's credit: {100 * r.fresh_credit_share_mean:.1f}"
        print(f"  {r.consensus:5s} hash share {100 * r.hash_share:3.0f}: won "
              f"{100 * r.won_share_mean:6.2f} [{100 * r.won_share_ci_low:6.2f}, "
              f"{100 * r.won_share_ci_high:6.2f}]   expected {100 * r.expected_share_mean:.4g}"
              f"{fresh}")
    print(f"written to {out} in {timer}")
    return summary


if __name__ == "__main__":
    main()
