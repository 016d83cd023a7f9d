"""[DER-CBC] Fig. 9: probability of winning a block vs cleanliness Q.

What it reproduces. [DER-CBC] lets ten parties at equal electrical distance but
with energy of different cleanliness Q compete for blocks (Monte Carlo) and
shows that the chance of producing a block rises with Q, so that cleaner
generation (photovoltaic and wind, Q = 0.8) is favoured over hydro (0.6) and
thermal (0.3).

How. Two groups of ten parties with equal hash power, credit (100) and
electrical distance (1 ohm), each trial drawing 20 block producers with the
model's `der_cbc` rule (dipi_abm.rules.consensus.draw_producer: weight
hash power x e^(credit/tau) x Q^beta x e^(-D/D0), beta = 2 and D0 = 1 ohm, the
model's defaults), one SeedSequence child per trial:

- (a) a sweep: Q = 0.30, 0.35, ..., 0.60 (hydro), 0.65, 0.70, 0.80 (PV, wind)
  (--q-values): ten parties whose Q spans the papers' range and includes the
  three technology values;
- (b) the model's default DPGC technology mix (4 solar, 3 wind, 1 hydro,
  2 thermal; share_solar/wind/hydro/thermal = 0.4/0.3/0.1/0.2): the chance of
  one party of each technology.

Reported per party: the probability of winning a block (mean share of a
trial's blocks) with a Student-t 95 % CI over trials, and the exact value
Q^beta / sum Q_y^beta.

    python experiments/der_cbc_fig9_cleanliness.py --out results/fig9
    python experiments/der_cbc_fig9_cleanliness.py --quick          # smoke test

Where and why it may differ from the paper. [DER-CBC]'s weight formula does
not survive in print; the model's reading (a power law Q^beta, beta = 2) fixes
how steep the rise is: PV/wind win (0.8/0.3)^2 = 7.1 times as often as thermal
and (0.8/0.6)^2 = 1.8 times as often as hydro. beta (--q-exponent) sets that
ratio; the paper shows one Monte Carlo run, here it is an average with CIs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    PALETTE,
    Timer,
    block_wins,
    mean_ci,
    parse,
    parser,
    rep_streams,
    save_csv,
    save_png,
    style,
)

from dipi_abm.physics.weather import TECHNOLOGIES
from dipi_abm.rules.consensus import Nodes, win_probabilities
from dipi_abm.rules.tariffs import CLEANLINESS_Q

CSV_COLUMNS = ["group", "party", "n_parties", "technology", "cleanliness_q", "p_theory",
               "p_mean", "p_ci_low", "p_ci_high", "blocks_won", "trials", "blocks_per_trial"]
Q_SWEEP = (0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.80)
#: The model's default DPGC mix for ten DPGCs (share_* = 0.4, 0.3, 0.1, 0.2).
MIX = ("solar",) * 4 + ("wind",) * 3 + ("hydro",) + ("thermal",) * 2
TECH_Q = {t: float(CLEANLINESS_Q[i]) for i, t in enumerate(TECHNOLOGIES)}
TECH_LABEL = {"solar": "PV / wind", "wind": "PV / wind", "hydro": "hydro", "thermal": "thermal"}


def parties(q: np.ndarray, distance: float, credit: float) -> Nodes:
    n = q.size
    return Nodes(hash_power=np.ones(n), credit=np.full(n, credit), stake=np.zeros(n),
                 distance=np.full(n, distance), cleanliness=q)


def group(name: str, q: np.ndarray, tech: Sequence[str], streams, blocks: int,
          distance: float, credit: float, kw: dict) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per party, and the blocks each party won in each trial."""
    nodes = parties(q, distance, credit)
    wins = block_wins("der_cbc", nodes, blocks, streams, **kw)
    mean, lo, hi = mean_ci(wins / blocks)
    df = pd.DataFrame({
        "group": name, "party": np.arange(1, q.size + 1), "n_parties": 1,
        "technology": list(tech), "cleanliness_q": q,
        "p_theory": win_probabilities("der_cbc", nodes, **kw),
        "p_mean": mean, "p_ci_low": np.maximum(lo, 0.0), "p_ci_high": hi,
        "blocks_won": wins.sum(axis=0), "trials": len(streams), "blocks_per_trial": blocks})
    return df, wins


def by_technology(mix: pd.DataFrame, wins: np.ndarray) -> pd.DataFrame:
    """Per technology class (PV / wind, hydro, thermal): one party's chance of winning a
    block, i.e. the class's share of a trial's blocks over its number of parties, with the
    CI over trials."""
    rows = []
    labels = mix.technology.map(TECH_LABEL).to_numpy()
    blocks = int(mix.blocks_per_trial.iloc[0])
    for label in ("thermal", "hydro", "PV / wind"):
        members = labels == label
        if not members.any():
            continue
        n = int(members.sum())
        share = wins[:, members].sum(axis=1) / blocks / n
        mean, lo, hi = mean_ci(share)
        rows.append({"group": "mix_by_technology", "party": 0, "n_parties": n,
                     "technology": label,
                     "cleanliness_q": float(mix.cleanliness_q[members].iloc[0]),
                     "p_theory": float(mix.p_theory[members].mean()), "p_mean": float(mean),
                     "p_ci_low": max(float(lo), 0.0), "p_ci_high": float(hi),
                     "blocks_won": int(wins[:, members].sum()), "trials": wins.shape[0],
                     "blocks_per_trial": blocks})
    return pd.DataFrame(rows)


def technology_of(q: float) -> str:
    return next((TECH_LABEL[t] for t, v in TECH_Q.items() if np.isclose(v, q)), "")


def run(reps: int, seed: int, q_values: Sequence[float], blocks: int, distance: float,
        credit: float, kw: dict) -> pd.DataFrame:
    sweep_ss, mix_ss = zip(*(t.spawn(2) for t in rep_streams(seed, reps)), strict=True)
    q = np.asarray(q_values, dtype=float)
    sweep, _ = group("sweep", q, [technology_of(v) for v in q], sweep_ss, blocks, distance,
                     credit, kw)
    mix, mix_wins = group("technology_mix", np.array([TECH_Q[t] for t in MIX]), MIX, mix_ss,
                          blocks, distance, credit, kw)
    return pd.concat([sweep, mix, by_technology(mix, mix_wins)],
                     ignore_index=True)[CSV_COLUMNS]


def plot(df: pd.DataFrame, kw: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    style()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13.5, 5.4),
                                 gridspec_kw={"width_ratios": [1.5, 1]})
    s = df[df.group == "sweep"]
    blocks, trials = int(s.blocks_per_trial.iloc[0]), int(s.trials.iloc[0])
    q = s.cleanliness_q.to_numpy()
    grid = np.linspace(q.min(), q.max(), 200)
    beta = kw["q_exponent"]
    scale = s.p_theory.iloc[0] / q[0] ** beta
    ax.plot(grid, scale * grid ** beta, color="0.25", lw=1.5,
            label=r"exact  $Q^\beta / \Sigma_y Q_y^\beta$")
    ax.errorbar(q, s.p_mean, yerr=[s.p_mean - s.p_ci_low, s.p_ci_high - s.p_mean], fmt="o",
                ms=7, color=PALETTE[0], capsize=4, lw=1.6, label="Monte Carlo mean, 95 % CI")
    top = float(s.p_ci_high.max())
    for label, value in (("thermal", TECH_Q["thermal"]), ("hydro", TECH_Q["hydro"]),
                         ("PV / wind", TECH_Q["solar"])):
        ax.axvline(value, color="0.6", ls=":", lw=1.2)
        ax.text(value, top * 1.04, label, ha="center", va="bottom", fontsize=10.5, color="0.3")
    ax.set_ylim(0, top * 1.15)
    ax.set_xlabel("cleanliness Q of the party's energy")
    ax.set_ylabel("probability of winning a block")
    ax.set_title(f"(a) ten parties, Q from 0.3 to 0.8\n({trials:,} trials × {blocks} blocks)")
    ax.legend(loc="lower right", frameon=True, framealpha=0.9)
    sec = ax.secondary_yaxis("right", functions=(lambda p: p * blocks, lambda b: b / blocks))
    sec.set_ylabel(f"blocks won of {blocks} (mean)")

    order = ["thermal", "hydro", "PV / wind"]
    per = df[df.group == "mix_by_technology"].set_index("technology").reindex(order)
    x = np.arange(len(order))
    bx.bar(x, per.p_mean, color=[PALETTE[1], PALETTE[5], PALETTE[2]], width=0.6,
           yerr=[per.p_mean - per.p_ci_low, per.p_ci_high - per.p_mean], capsize=6,
           label="Monte Carlo mean, 95 % CI")
    for xi, r in zip(x, per.itertuples(), strict=True):
        bx.text(xi, r.p_ci_high * 1.02 + 0.002, f"{r.p_mean:.4f}\n(exact {r.p_theory:.4f})",
                ha="center", va="bottom", fontsize=10)
    bx.set_xticks(x, [f"{o}\nQ = {per.cleanliness_q[o]:g}, {int(per.n_parties[o])} "
                      f"part{'y' if per.n_parties[o] == 1 else 'ies'}" for o in order])
    bx.set_ylabel("probability of winning a block, per party")
    bx.set_title("(b) the model's default DPGC mix\n(4 solar, 3 wind, 1 hydro, 2 thermal)")
    bx.legend(loc="upper left", frameon=True, framealpha=0.9)
    bx.set_ylim(0, float(per.p_ci_high.max()) * 1.3)
    fig.suptitle("[DER-CBC] Fig. 9: block-winning probability vs cleanliness Q "
                 "(equal distance, credit and hash power)")
    fig.text(0.5, -0.02, f"der_cbc weight ∝ e^(credit/τ)·Q^β·e^(−D/D0); β = {beta:g}, "
             f"τ = {kw['tau']:g}; every party at the same distance.", ha="center",
             fontsize=10, color="0.3")
    fig.tight_layout()
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = parser(__doc__, out="results/der_cbc_fig9", reps=5000, quick_reps=300,
                reps_help="trials of --blocks blocks")
    ap.add_argument("--blocks", type=int, default=20, help="blocks per trial (default 20)")
    ap.add_argument("--q-values", type=float, nargs="+", default=list(Q_SWEEP),
                    help="cleanliness of the sweep's parties (default 0.3 ... 0.8)")
    ap.add_argument("--distance", type=float, default=1.0, help="every party's distance, ohm")
    ap.add_argument("--credit", type=float, default=100.0, help="every party's credit (100)")
    ap.add_argument("--distance-scale", type=float, default=1.0,
                    help="D0, ohm (model default der_cbc_distance_scale_ohm = 1)")
    ap.add_argument("--q-exponent", type=float, default=2.0,
                    help="beta (model default der_cbc_q_exponent = 2)")
    ap.add_argument("--tau", type=float, default=10.0, help="POCA tau (default 10)")
    args = parse(ap, argv)
    if any(not 0.0 < v <= 1.0 for v in args.q_values):
        ap.error("--q-values: every Q must lie in (0, 1]")
    kw = {"tau": args.tau, "distance_scale": args.distance_scale,
          "q_exponent": args.q_exponent}
    timer = Timer()
    df = run(args.reps, args.seed, args.q_values, args.blocks, args.distance, args.credit, kw)
    out = Path(args.out)
    save_csv(df, out / "der_cbc_fig9_cleanliness.csv")
    plot(df, kw, out / "der_cbc_fig9_cleanliness.png")

    print(f"[DER-CBC] Fig. 9: P(win a block) by cleanliness Q; mean [95 % CI] over "
          f"{args.reps} trials of {args.blocks} blocks")
    for name, d in df.groupby("group", sort=False):
        print(f"  {name}")
        for r in d.itertuples():
            tech = f" ({r.technology})" if r.technology else ""
            if r.n_parties > 1:
                tech += f", per party of {r.n_parties}"
            print(f"    Q = {r.cleanliness_q:.2f}{tech}: {r.p_mean:.4f} [{r.p_ci_low:.4f}, "
                  f"{r.p_ci_high:.4f}]  exact {r.p_theory:.4f}")
    print(f"written to {out} in {timer}")
    return df


if __name__ == "__main__":
    main()
