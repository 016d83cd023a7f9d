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

Needs the optional extra: ``pip install 'dipi-abm[ema]'``. About a minute on two
cores with the defaults.

    python experiments/ema_workbench_prim.py --out results/ema_prim
    python experiments/ema_workbench_prim.py --scenarios 512 --agents 500 --processes 4

Writes to ``--out``: ``experiments.csv`` (every scenario with its outcomes),
``prim_trajectory.csv`` (the peeling trajectory: coverage, density, restricted
dimensions), ``prim_box.csv`` (the limits of the selected box), ``feature_scores.csv``,
``prim_tradeoff.png`` (coverage vs density) and ``feature_scores.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dipi_abm.results.files import atomic_write  # noqa: E402
from dipi_abm.sweep.engine import EMA_OUTCOMES, ema_model_function  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/ema_prim", help="output folder")
    ap.add_argument("--scenarios", type=int, default=256, help="Latin-hypercube scenarios")
    ap.add_argument("--agents", type=int, default=200, help="parties per run (10 %% DPGCs)")
    ap.add_argument("--hours", type=int, default=168, help="simulated hours per run")
    ap.add_argument("--seed", type=int, default=2024, help="model seed shared by all runs")
    ap.add_argument("--processes", type=int, default=2, help="EMA worker processes "
                    "(1: sequential)")
    ap.add_argument("--quantile", type=float, default=0.75, help="scenarios whose breach "
                    "rate is above this quantile are the cases of interest")
    args = ap.parse_args(argv)

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
    out.mkdir(parents=True, exist_ok=True)
    n_dpgc = max(1, args.agents // 10)

    model = ema.Model("dipi", function=ema_model_function)
    model.uncertainties = [ema.RealParameter(k, lo, hi) for k, (lo, hi) in UNCERTAINTIES.items()]
    model.constants = [ema.Constant("seed", args.seed), ema.Constant("hours", args.hours),
                       ema.Constant("n_dpgc", n_dpgc),
                       ema.Constant("n_users", args.agents - n_dpgc)]
    model.outcomes = [ema.ScalarOutcome(k) for k in EMA_OUTCOMES]

    ema.ema_logging.log_to_stderr(ema.ema_logging.INFO)
    evaluator = (ema.MultiprocessingEvaluator(model, n_processes=args.processes)
                 if args.processes > 1 else ema.SequentialEvaluator(model))
    with evaluator:
        experiments, outcomes = evaluator.perform_experiments(scenarios=args.scenarios)

    names = list(UNCERTAINTIES)
    x = experiments[names].astype(float).reset_index(drop=True)
    results = pd.concat([x, pd.DataFrame(outcomes)], axis=1)
    _write_csv(results, out / "experiments.csv")

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
    _write_csv(trajectory, out / "prim_trajectory.csv")
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
    _write_csv(limits.reset_index(), out / "prim_box.csv")
    print(f"\nPRIM box {pick}: coverage {stats['coverage']:.2f}, density "
          f"{stats['density']:.2f}, mass {stats['mass']:.2f}, restricted dimensions "
          f"{int(stats['res_dim'])}")
    print(limits[["min", "max", "full_min", "full_max"]].to_string(float_format="%.3f"))

    fig = box.show_tradeoff()
    fig.suptitle(f"PRIM peeling trajectory: breach rate > {cut:.3g}")
    _save_png(fig, out / "prim_tradeoff.png")
    plt.close(fig)

    # Feature scoring: influence of every uncertainty on every outcome (extra trees).
    scores = feature_scoring.get_feature_scores_all(x, {k: np.asarray(v, float)
                                                        for k, v in outcomes.items()})
    scores.index.name = "uncertainty"
    _write_csv(scores.reset_index(), out / "feature_scores.csv")
    print("\nfeature scores (extra trees; columns sum to 1):")
    print(scores.to_string(float_format="%.3f"))
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
    _save_png(fig, out / "feature_scores.png")
    plt.close(fig)
    print(f"\nresults in {out}/")
    return 0


def _write_csv(df, path: Path) -> None:  # noqa: ANN001
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def _save_png(fig, path: Path) -> None:  # noqa: ANN001
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120,
                                               bbox_inches="tight"))


if __name__ == "__main__":
    sys.exit(main())
