"""What every experiment script shares: its command line, Monte Carlo seeds and
confidence intervals, the plot style, and atomic CSV / PNG writing.

Not a script. The experiment scripts import it as a sibling module
(``python experiments/<script>.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from dipi_abm.config import parse_assignments  # noqa: E402
from dipi_abm.errors import ConfigError  # noqa: E402
from dipi_abm.results.files import atomic_write  # noqa: E402

CI_LEVEL = 0.95

#: Credit-rule thresholds on the ``kept`` credit scale (the recent share of contract sides
#: kept): parties that are not opportunists end 14-20-day runs at about 60-75, so the keys'
#: defaults (80) would gate and unpay nearly everyone (docs/findings.md states the levels).
KEPT_SCALE = {"gate_credit_threshold": 50.0, "reward_credit_floor": 40.0}

#: One colour per series, readable in greyscale print and by colour-blind readers (Okabe-Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def parser(doc: str, *, out: str, reps: int, quick_reps: int, seed: int = 20240601,
           reps_help: str = "Monte Carlo repetitions") -> argparse.ArgumentParser:
    """The arguments every experiment takes: --out, --reps, --seed, --quick."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=out, help=f"output folder (default {out})")
    ap.add_argument("--reps", type=int, default=None,
                    help=f"{reps_help} (default {reps}; {quick_reps} with --quick)")
    ap.add_argument("--seed", type=int, default=seed, help=f"master seed (default {seed})")
    ap.add_argument("--quick", action="store_true", help="a small, fast run (smoke test)")
    ap.set_defaults(_reps_full=reps, _reps_quick=quick_reps)
    return ap


def parse(ap: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = ap.parse_args(argv)
    if args.reps is None:
        args.reps = args._reps_quick if args.quick else args._reps_full
    if args.reps < 2:
        ap.error(f"--reps {args.reps}: need at least 2 repetitions for a confidence interval")
    if args.seed < 0:
        ap.error(f"--seed {args.seed}: must be >= 0")
    return args


def market_args(ap: argparse.ArgumentParser, *, dpgc: tuple[int, int],
                users: tuple[int, int], days: tuple[float, float],
                quick_workers: int | None = 1) -> None:
    """The arguments of the experiments that run the market: --dpgc, --users, --days
    (each given as (default, default with --quick)), --workers and --set. Read them back
    with :func:`market_size` after :func:`parse`. ``quick_workers`` None: --quick keeps
    the usual worker count."""
    ap.add_argument("--dpgc", type=int, default=None,
                    help=f"DPGCs (default {dpgc[0]}; {dpgc[1]} with --quick)")
    ap.add_argument("--users", type=int, default=None,
                    help=f"users (default {users[0]}; {users[1]} with --quick)")
    ap.add_argument("--days", type=float, default=None,
                    help=f"simulated days (default {days[0]:g}; {days[1]:g} with --quick)")
    quick = "" if quick_workers is None else f"; {quick_workers} with --quick"
    ap.add_argument("--workers", type=int, default=None,
                    help=f"worker processes (default: min(2, CPUs){quick}); results do not "
                    "depend on it")
    ap.add_argument("--set", dest="assignments", action="append", default=[],
                    metavar="KEY=VALUE", help="any other scenario key (repeatable)")
    ap.set_defaults(_market=(dpgc, users, days, quick_workers))


def market_size(ap: argparse.ArgumentParser, args: argparse.Namespace,
                base: Mapping[str, Any] | None = None, fixed: Sequence[str] = ()) -> dict[str, Any]:
    """Settle --workers on ``args`` and return the scenario: ``base``, the n_dpgc,
    n_users and hours of --dpgc/--users/--days, and the --set keys; a --set of a key
    in ``fixed`` (set by the arms) or of the seed is a usage error (exit 2)."""
    dpgc, users, days, quick_workers = args._market
    if args.workers is None:
        quick = args.quick and quick_workers is not None
        args.workers = quick_workers if quick else min(2, os.cpu_count() or 1)
    if args.workers < 1:
        ap.error(f"--workers {args.workers}: must be >= 1")
    q = 1 if args.quick else 0
    try:
        extra = parse_assignments(args.assignments)
    except ConfigError as exc:
        ap.error(str(exc))
    taken = sorted(set(extra) & {*fixed, "seed"})
    if taken:
        ap.error(f"--set {', '.join(taken)}: set by the experiment's arms and replication "
                 "seeds")
    return {**(base or {}), "n_dpgc": args.dpgc or dpgc[q], "n_users": args.users or users[q],
            "hours": round(24 * (args.days or days[q])), **extra}


#: KPIs every market experiment reports: column -> (summary.json key, factor, label, unit)
MARKET_KPIS: dict[str, tuple[str, float, str, str]] = {
    "breach_shortfall_mwh": ("breach_shortfall_kwh", 1e-3, "breach shortfall, whole run", "MWh"),
    "dpgc_income_kyuan": ("dpgc_income_yuan", 1e-3, "DPGC income", "thousand yuan"),
    "grid_income_kyuan": ("grid_income_yuan", 1e-3, "grid company income", "thousand yuan"),
    "p2p_delivered_mwh": ("p2p_delivered_kwh", 1e-3, "P2P delivered", "MWh"),
    "clean_share_pct": ("clean_share", 100.0, "users' need met directly by clean DPGCs", "%"),
    "mean_credit_dpgc": ("mean_credit_dpgc", 1.0, "mean DPGC credit at the end", "0-100"),
    "mean_credit_user": ("mean_credit_user", 1.0, "mean user credit at the end", "0-100"),
    "system_cost_kyuan": ("system_cost_yuan", 1e-3, "system cost (generation, upstream "
                          "energy, balancing, network)", "thousand yuan"),
    "balancing_cost_kyuan": ("balancing_cost_yuan", 1e-3, "balancing cost (reserve premium on "
                             "the net imbalance)", "thousand yuan"),
    "net_imbalance_mwh": ("net_imbalance_kwh", 1e-3, "net imbalance (sum over hours)", "MWh"),
    "gross_imbalance_mwh": ("gross_imbalance_kwh", 1e-3, "gross imbalance (sum over hours)",
                            "MWh"),
    "welfare_kyuan": ("welfare_yuan", 1e-3, "welfare: value of served load - system cost",
                      "thousand yuan"),
    "grid_company_surplus_kyuan": ("net_surplus_grid_company_yuan", 1e-3, "grid company's net "
                                   "surplus (after network and energy costs)", "thousand yuan"),
}
#: MARKET_KPIS's labels, and users' cost per kWh (computed by :func:`market_kpis`)
MARKET_LABELS = {"user_cost_per_kwh": ("users' cost per kWh bought", "yuan/kWh"),
                 **{k: (label, unit) for k, (_, _, label, unit) in MARKET_KPIS.items()}}


def market_kpis(runs: pd.DataFrame) -> pd.DataFrame:
    """:data:`MARKET_LABELS`'s columns for every run of a sweep's runs table: the
    summary KPIs rescaled, and users' total cost (every payment and receipt, penalties
    and rebates included) per kWh they bought (P2P delivered + grid)."""
    bought = runs["p2p_delivered_kwh"] + runs["grid_purchase_kwh"]
    out = pd.DataFrame({"user_cost_per_kwh": runs["user_cost_yuan"] / bought.where(bought > 0)},
                       index=runs.index)
    for k, (key, factor, _, _) in MARKET_KPIS.items():
        out[k] = runs[key] * factor
    return out


def rep_streams(seed: int, reps: int) -> list[np.random.SeedSequence]:
    """One independent child SeedSequence per repetition."""
    return np.random.SeedSequence(seed).spawn(reps)


def int_seed(ss: np.random.SeedSequence) -> int:
    """A 63-bit integer seed drawn from a SeedSequence (for APIs that take an int)."""
    hi, lo = (int(x) for x in ss.generate_state(2, np.uint32))
    return ((hi << 32) | lo) & ((1 << 63) - 1)


def rep_seeds(seed: int, reps: int) -> list[int]:
    """One model seed per repetition: :func:`int_seed` of each :func:`rep_streams` child."""
    return [int_seed(ss) for ss in rep_streams(seed, reps)]


def mean_ci(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Student-t 95 % confidence interval of the mean over ``axis``.

    NaNs (a repetition without the quantity) are left out, per column.
    """
    x = np.asarray(x, dtype=np.float64)
    n = np.sum(~np.isnan(x), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, quietly
        mean = np.nanmean(x, axis=axis)
        sd = np.nanstd(x, axis=axis, ddof=1)
        half = stats.t.ppf(0.5 + CI_LEVEL / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    half = np.where(n > 1, half, np.nan)
    return mean, mean - half, mean + half


def style() -> None:
    """Fonts large enough to read on a slide; light grid; no top/right spines."""
    plt.rcParams.update({
        "font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 10.5,
        "xtick.labelsize": 11, "ytick.labelsize": 11, "figure.titlesize": 15,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
        "axes.spines.right": False, "savefig.dpi": 130,
    })


def save_png(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, bbox_inches="tight", format="png"))
    plt.close(fig)


def save_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g"))


class Timer:
    """Wall-clock seconds since construction, for the closing line of a script."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __str__(self) -> str:
        return f"{time.perf_counter() - self.start:.1f} s"


def block_wins(rule: str, nodes, blocks: int, streams: Sequence[np.random.SeedSequence],
               **kw: float) -> np.ndarray:
    """Blocks won by each node in each trial (trials x nodes): ``blocks`` producers per
    trial drawn by the model's own rule (dipi_abm.rules.consensus.draw_producer), one
    SeedSequence child per trial."""
    from dipi_abm.rules.consensus import draw_producer

    wins = np.zeros((len(streams), nodes.hash_power.size), np.int64)
    for i, ss in enumerate(streams):
        rng = np.random.default_rng(ss)
        for _ in range(blocks):
            wins[i, draw_producer(rule, nodes, rng, **kw)] += 1
    return wins


def run_arms(groups: Mapping[str, Mapping[str, Mapping[str, Any]]], base: Mapping[str, Any],
             *, reps: int, seed: int, out: Path, workers: int, probe: str | None = None,
             label: Callable[[str, Mapping[str, Any]], str] | None = None,
             outcomes: Mapping[str, Mapping[str, Any]] | None = None,
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run arms over the same ``reps`` replications with the sweep engine.

    ``groups`` maps a group name to ``{"base": {...}, "factors": {...}}`` (the
    sweep spec's tables, on top of ``base``); each group is one factorial sweep with
    ``common_seeds = true`` in its own resumable folder ``out/sweeps/<group>-<spec hash>``.
    Every group uses the same master seed, so replication r has the same seed,
    parties, placement and weather in every arm of every group (common random
    numbers: differences between arms are paired). An arm is one design point,
    named ``label(group, point)`` (default: the group and the point's values joined
    by ``|``). ``outcomes``: the sweep spec's ``[outcomes]`` table (the package's
    :mod:`dipi_abm.sweep.outcomes`: windows, aggregations, ratios), one column each of
    the runs. Returns the runs (``arm``, ``group``, ``replication``, ``seed``, the
    keys, the summary KPIs) and their hourly KPIs (``arm``, ``replication``,
    ``hour``, ..., and the probe's ``probe_*`` columns), in group, point and
    replication order.
    """
    from dipi_abm.sweep.engine import SweepFolder, design_points, load_spec, run_sweep

    def default_label(group: str, point: Mapping[str, Any]) -> str:
        return "|".join([group, *map(str, point.values())]) if point else group

    label = label or default_label
    runs, hourly = [], []
    for group, tables in groups.items():
        sweep = {"seed": seed, "replications": reps, "hourly": True, "common_seeds": True}
        if probe:
            sweep["probe"] = probe
        spec = {"sweep": sweep, "base": {**base, **tables.get("base", {})},
                "factors": dict(tables.get("factors", {})), "outcomes": dict(outcomes or {})}
        s = load_spec(spec)
        folder = Path(out) / "sweeps" / f"{group}-{s.hash[:10]}"
        r = run_sweep(spec, folder, workers=workers, progress=False)
        names = [label(group, pt) for pt in design_points(s)]
        r.insert(0, "arm", [names[i] for i in r["point_id"]])
        r.insert(1, "group", group)
        runs.append(r)
        files = SweepFolder(folder, len(r))
        h = pd.concat([pd.read_parquet(files.hourly_path(i)).assign(run_id=i)
                       for i in r["run_id"]], ignore_index=True)
        run_id = h.pop("run_id")
        by_run = r.set_index("run_id")
        h.insert(0, "arm", by_run.loc[run_id, "arm"].to_numpy())
        h.insert(1, "replication", by_run.loc[run_id, "replication"].to_numpy())
        h.insert(2, "_run", run_id.to_numpy())
        hourly.append(h.sort_values(["_run", "hour"], kind="stable").drop(columns="_run"))
    return (pd.concat(runs, ignore_index=True),
            pd.concat(hourly, ignore_index=True))

