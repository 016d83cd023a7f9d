"""Scenario discovery on the breach rate with the EMA Workbench (PRIM and feature scoring).

Which combinations of forecast error, commitment and tolerance make breaches
frequent? The EMA Workbench samples the uncertainties below by Latin hypercube,
runs one model per scenario through :func:`dipi_abm.sweep.engine.ema_model_function`
(all scenarios share one seed: common random numbers, so differences come from
the uncertainties), and then

- PRIM (Friedman & Fisher 1999, as used for scenario discovery by Bryant &
  Lempert 2010) finds a box of uncertainty ranges in which high-breach
  scenarios (breach rate in the top quarter, ``--quantile``) concentrate;
- extra-trees feature scoring ranks every uncertainty's influence on every outcome.

Needs the optional extra: ``pip install 'dipi-abm[ema]'``. ``--reps`` is the number
of scenarios; ``--seed`` the model seed they share.

    python experiments/ema_workbench_prim.py --out results/ema_prim
    python experiments/ema_workbench_prim.py --reps 512 --agents 500 --processes 4
    python experiments/ema_workbench_prim.py --quick    # 24 scenarios of 40 parties, 24 h

Writes to ``--out``: ``experiments.csv`` (every scenario with its outcomes),
``prim_trajectory.csv`` (the peeling trajectory: coverage, density, restricted
dimensions), ``prim_box.csv`` (the limits of the selected box), ``feature_scores.csv``,
``prim_tradeoff.png`` (coverage vs density) and ``feature_scores.png``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from _common import parse, parser, save_csv, save_png

from dipi_abm.sweep.engine import EMA_OUTCOMES, ema_model_function

#: name: (low, high) of the uncertainties explored (scenario keys of dipi_abm.config)
UNCERTAINTIES = {
    "commitment_ratio": (0.8, 1.4),
    "breach_tolerance": (0.0, 0.2),
    "forecast_sd_wind": (0.05, 0.5),
    "forecast_sd_solar": (0.02, 0.3),
    "forecast_sd_load": (0.02, 0.3),
    "forecast_lead_h": (0.5, 6.0),
    "natural_factor": (0.0, 0.29),
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__, out="results/ema_prim", reps=256, quick_reps=24, seed=2024,
                reps_help="Latin-hypercube scenarios")
    ap.add_argument("--agents", type=int, default=None,
                    help="parties per run, 10 %% DPGCs (default 200; 40 with --quick)")
    ap.add_argument("--hours", type=int, default=None,
                    help="simulated hours per run (default 168; 24 with --quick)")
    ap.add_argument("--processes", type=int, default=None, help="EMA worker processes "
                    "(1: sequential; default 2, 1 with --quick)")
    ap.add_argument("--quantile", type=float, default=0.75, help="scenarios whose breach "
                    "rate is above this quantile are the cases of interest")
    args = parse(ap, argv)
    q = args.quick
    agents = args.agents or (40 if q else 200)
    hours = args.hours or (24 if q else 168)
    processes = args.processes or (1 if q else 2)

    # The workbench warns on import about an optional backend this script does not use;
    # its worker processes read the filter from the environment.
    quiet = "ignore:ipyparallel not installed:UserWarning"
    warnings.filterwarnings("ignore", message="ipyparallel not installed")
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"),
                                                         quiet]))
    try:
        import ema_workbench as ema
        from ema_workbench.analysis import feature_scoring, prim
    except ImportError:
        print("This experiment needs the EMA Workbench: pip install 'dipi-abm[ema]' "
              "(or pip install ema_workbench).", file=sys.stderr)
        return 2
    out = Path(args.out)
    n_dpgc = max(1, agents // 10)

    model = ema.Model("dipi", function=ema_model_function)
    model.uncertainties = [ema.RealParameter(k, lo, hi) for k, (lo, hi) in UNCERTAINTIES.items()]
    model.constants = [ema.Constant("seed", args.seed), ema.Constant("hours", hours),
                       ema.Constant("n_dpgc", n_dpgc),
                       ema.Constant("n_users", agents - n_dpgc)]
    model.outcomes = [ema.ScalarOutcome(k) for k in EMA_OUTCOMES]

    ema.ema_logging.log_to_stderr(ema.ema_logging.INFO)
    evaluator = (ema.MultiprocessingEvaluator(model, n_processes=processes)
                 if processes > 1 else ema.SequentialEvaluator(model))
    with evaluator:
        experiments, outcomes = evaluator.perform_experiments(scenarios=args.reps)

    names = list(UNCERTAINTIES)
    x = experiments[names].astype(float).reset_index(drop=True)
    results = pd.concat([x, pd.DataFrame(outcomes)], axis=1)
    save_csv(results, out / "experiments.csv")

    breach = np.asarray(outcomes["breach_rate"], dtype=float)
    cut = float(np.quantile(breach, args.quantile))
    y = breach > cut
    print(f"\nbreach rate over {len(breach)} scenarios: min {breach.min():.4f}, "
          f"median {np.median(breach):.4f}, max {breach.max():.4f}; cases of interest: "
          f"breach rate > {cut:.4f} ({int(y.sum())} scenarios)")

    # PRIM: the box of uncertainty ranges where high-breach scenarios concentrate.
    finder = prim.Prim(x, y, threshold=0.8, peel_alpha=0.1)
    box = finder.find_box()
    trajectory = box.peeling_trajectory
    save_csv(trajectory, out / "prim_trajectory.csv")
    # Most coverage among the boxes at least 80 % dense (else the densest box).
    dense = trajectory[trajectory["density"] >= 0.8]
    pick = int(dense["coverage"].idxmax()) if len(dense) else int(trajectory["density"].idxmax())
    box.select(pick)
    stats, limits = box.inspect(pick, style="data")[0]
    limits = limits.droplevel(0, axis=1).iloc[:, :2]
    limits.columns = ["min", "max"]
    limits.index.name = "uncertainty"
    limits = limits.assign(full_min=[UNCERTAINTIES[k][0] for k in limits.index],
                           full_max=[UNCERTAINTIES[k][1] for k in limits.index],
                           coverage=stats["coverage"], density=stats["density"],
                           mass=stats["mass"])
    save_csv(limits.reset_index(), out / "prim_box.csv")
    print(f"\nPRIM box {pick}: coverage {stats['coverage']:.2f}, density "
          f"{stats['density']:.2f}, mass {stats['mass']:.2f}, restricted dimensions "
          f"{int(stats['res_dim'])}")
    print(limits[["min", "max", "full_min", "full_max"]].to_string(float_format="%.3f"))

    fig = box.show_tradeoff()
    fig.suptitle(f"PRIM peeling trajectory: breach rate > {cut:.3g}")
    save_png(fig, out / "prim_tradeoff.png")

    # Feature scoring: influence of every uncertainty on every outcome (extra trees).
    scores = feature_scoring.get_feature_scores_all(x, {k: np.asarray(v, float)
                                                        for k, v in outcomes.items()})
    scores.index.name = "uncertainty"
    save_csv(scores.reset_index(), out / "feature_scores.csv")
    print("\nfeature scores (extra trees; columns sum to 1):")
    print(scores.to_string(float_format="%.3f"))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.1 * len(scores.columns) + 3, 0.5 * len(scores) + 2))
    im = ax.imshow(scores.to_numpy(), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(scores.columns)), scores.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(scores.index)), scores.index)
    for (i, j), v in np.ndenumerate(scores.to_numpy()):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center",
                color="white" if v < scores.to_numpy().max() / 2 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, label="feature score")
    ax.set_title("Influence of each uncertainty on each outcome")
    fig.tight_layout()
    save_png(fig, out / "feature_scores.png")
    print(f"\nresults in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
