"""Sweep reports: what a finished sweep says, with its uncertainty (docs/model.md section 9:
"for sweeps, one row per run with its parameters"; section 10: "paired replications,
intervals").

``dipi-abm report DIR`` (and the end of ``dipi-abm sweep``) reads ``DIR/sweep.json`` and
``DIR/runs.parquet`` and writes, next to them:

- ``report.md`` and ``report.html`` (the same summary; the HTML embeds its figures),
- ``report_levels.png``: each headline KPI's mean per factor level with its 95 % interval,
- ``report_differences.png``: each level against the factor's first level (factorial
  designs) and every ``--contrast A:B``, paired where the points share seeds,
- ``report_sobol.png`` (sobol designs): first-order and total Sobol indices (SALib),
- ``report_levels.csv``, ``report_differences.csv``, ``report_sobol.csv``: every KPI.

Statistics
----------
Replications are the unit: every replication ``r`` runs every design point once, with
a seed of its own (``common_seeds = true``: the same seed at every point), so
replications are independent draws of the whole design.

- *Level means.* For a factor level, replication ``r`` gives one number: the mean KPI
  over the points at that level. The report gives the mean of these numbers over
  replications with a Student-t 95 % interval (``R - 1`` degrees of freedom). Ranges
  of lhs/sobol designs are cut into :data:`BINS` equal bins; an integer factor with
  at most :data:`BINS` values keeps its values.
- *Differences* between a level and the factor's first level (factorial designs), and
  between any two levels asked for (``--contrast A:B``: A minus B; any design).
  Where the two levels' runs share their seeds replication by replication (common
  random numbers), the difference is taken within each replication and the interval
  is the paired t interval over replications; otherwise it is Welch's interval for
  two independent samples of replication means.
- *Sobol indices* (sobol designs, Saltelli's scheme; see
  :func:`dipi_abm.sweep.engine.sobol_design`): the model output at a point is its mean
  over replications; :func:`SALib.analyze.sobol.analyze` gives the first-order (S1)
  and total (ST) indices with 95 % bootstrap intervals (seeded by the sweep's seed).

- *Designs that warn*: a breach or credit rule varied while every party is static, and
  (lhs/sobol) a categorical factor spread unevenly over another factor's bins (then the
  level means are also given within each of its levels); see
  :mod:`dipi_abm.sweep.caveats`.

With one replication there is no interval ("n/a"); set ``replications`` to 2 or more.
Every file is written to a temporary name and renamed into place; the Markdown and
HTML summaries come last.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..results.files import atomic_write
from .caveats import confounding, static_policy
from .engine import EMA_OUTCOMES, RUNS_FILE, SPEC_FILE, Factor, load_spec, sobol_problem

#: Confidence level of every interval in a report.
CONFIDENCE = 0.95
#: A range factor of an lhs/sobol design is shown in this many equal bins.
BINS = 4
#: The KPIs a report shows (tables and figures) unless told otherwise; every KPI is in
#: the CSV files.
HEADLINE_KPIS = EMA_OUTCOMES
#: Terminal tables wider than this are split into several, each repeating the row names.
TERMINAL_WIDTH = 100

_RUN_COLUMNS = ("run_id", "point_id", "replication", "seed")
_FILES = {"md": "report.md", "html": "report.html", "levels_png": "report_levels.png",
          "differences_png": "report_differences.png", "sobol_png": "report_sobol.png",
          "levels_csv": "report_levels.csv", "differences_csv": "report_differences.csv",
          "sobol_csv": "report_sobol.csv"}


# --------------------------------------------------------------------------- statistics
def t_interval(values: Sequence[float] | np.ndarray,
               confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Mean and half-width of the Student-t interval (half-width NaN below 2 values)."""
    from scipy import stats

    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan
    sem = float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * sem


def welch_interval(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                   confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Difference of means ``mean(a) - mean(b)`` and the half-width of Welch's interval
    (two independent samples, unequal variances)."""
    from scipy import stats

    x, y = np.asarray(a, float), np.asarray(b, float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return diff, math.nan
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    if se == 0:
        return diff, 0.0
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return diff, float(stats.t.ppf(0.5 + confidence / 2, df)) * se


# --------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class SweepReport:
    """Everything a report says about one sweep folder, as tables.

    ``levels``: within, factor, level, kpi, mean, half_width, low, high, replications,
    runs (``within`` is "" for all runs, or "c=v": only the runs at level v of the
    categorical factor c, when an lhs/sobol design spreads c unevenly).
    ``differences``: factor, level, reference, kpi, difference, half_width, low, high,
    paired (each level against the first, and every ``--contrast``).
    ``sobol``: kpi, factor, S1, S1_half_width, ST, ST_half_width (and lows and highs).
    Empty tables where the design gives none.
    """

    root: Path
    design: str
    n_points: int
    replications: int
    n_runs: int
    common_seeds: bool
    factors: tuple[str, ...]
    kpis: tuple[str, ...]
    headline: tuple[str, ...]
    constant: dict[str, Any]
    levels: pd.DataFrame
    differences: pd.DataFrame
    sobol: pd.DataFrame
    notes: tuple[str, ...] = field(default=())


def _sweep_error(root: Path, message: str) -> ConfigError:
    return ConfigError(f"sweep folder '{root}': {message}")


def read_sweep(sweep_dir: str | os.PathLike) -> tuple[dict[str, Any], pd.DataFrame]:
    """``sweep.json`` and ``runs.parquet`` of a complete sweep folder (ConfigError if not)."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise _sweep_error(root, "no such folder" if not root.exists() else "not a folder")
    meta_path = root / SPEC_FILE
    if not meta_path.exists():
        raise _sweep_error(root, f"no {SPEC_FILE}: not a folder written by `dipi-abm sweep`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["spec"], meta["points"]  # noqa: B018  (both must be there)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _sweep_error(root, f"{SPEC_FILE} cannot be read ({exc})") from None
    runs_path = root / RUNS_FILE
    if not runs_path.exists():
        done = len(list((root / "runs").glob("*.parquet"))) if (root / "runs").is_dir() else 0
        raise _sweep_error(root, f"no {RUNS_FILE}: the sweep is not complete ({done} of "
                           f"{meta.get('n_runs', '?')} runs finished); rerun the same "
                           "`dipi-abm sweep` command to finish it")
    try:
        runs = pd.read_parquet(runs_path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise _sweep_error(root, f"{RUNS_FILE} cannot be read ({exc})") from None
    if runs.empty:
        raise _sweep_error(root, f"{RUNS_FILE} has no runs")
    return meta, runs


def build_report(sweep_dir: str | os.PathLike, kpis: Sequence[str] | None = None,
                 contrasts: Sequence[str] = ()) -> SweepReport:
    """Read a complete sweep folder and compute its report (no file is written).

    ``kpis``: the headline KPIs of the tables and figures (default
    :data:`HEADLINE_KPIS` that vary, then the spec's outcomes); every KPI is computed for
    the CSV files. ``contrasts``: ``"A:B"`` or ``"factor=A:B"``, level A minus level B of
    a factor (paired where their runs share seeds), beside each level minus the first.
    """
    root = Path(sweep_dir)
    meta, runs = read_sweep(root)
    try:
        spec = load_spec(meta["spec"])
    except ConfigError as exc:
        raise _sweep_error(root, f"{SPEC_FILE} holds a spec this version cannot read "
                           f"({exc})") from None
    factors = tuple(f.name for f in spec.factors)
    keys = set(factors) | set(spec.base)
    numeric = [c for c in runs.columns if c not in _RUN_COLUMNS and c not in keys
               and pd.api.types.is_numeric_dtype(runs[c])]
    all_kpis = [c for c in numeric if runs[c].nunique(dropna=True) > 1]
    constant = {c: runs[c].iloc[0] for c in numeric if c not in all_kpis}
    if kpis is None:
        headline = tuple(k for k in (*HEADLINE_KPIS, *(o.name for o in spec.outcomes))
                         if k in all_kpis)
    else:
        unknown = [k for k in kpis if k not in numeric]
        if unknown:
            raise ConfigError(f"--kpis: {', '.join(unknown)}: not a KPI of this sweep; "
                              f"its KPIs are {', '.join(numeric)}")
        headline = tuple(kpis)
    notes = []
    if spec.replications < 2:
        notes.append("One replication per point: no interval can be given (n/a); set "
                     "[sweep] replications to 2 or more.")

    if spec.outcomes:
        notes.append("Outcomes of the spec: " + "; ".join(
            f"{o.name} = {o.describe()}" for o in spec.outcomes) + ".")
    warning = static_policy(factors, [{**spec.base, **p} for p in meta["points"]])
    if warning:
        notes.append(f"Warning: {warning}.")
    labels = {f.name: _level_labels(f, runs[f.name]) for f in spec.factors}
    shown = all_kpis + [k for k in headline if k not in all_kpis]
    levels = _levels_table(runs, spec.factors, labels, shown)
    if spec.design != "factorial":  # categorical factors spread unevenly: within each level
        categorical = [f for f in spec.factors if f.levels is not None]
        mixed = confounding(labels, [c.name for c in categorical])
        notes += [f"Warning: {text}." for _, text in mixed]
        for c in dict.fromkeys(c for c, _ in mixed):
            others = tuple(f for f in spec.factors if f.name != c)
            for level in _ordered_levels(next(f for f in categorical if f.name == c),
                                         labels[c]):
                mask = (labels[c] == level).to_numpy()
                sub = _levels_table(runs[mask], others, {f: lab[mask] for f, lab in
                                                         labels.items()}, shown)
                levels = pd.concat([levels, sub.assign(within=f"{c}={level}")],
                                   ignore_index=True)
    pairs = ([(f.name, lv, ref) for f in spec.factors if f.levels is not None
              for ref, *rest in [_ordered_levels(f, labels[f.name])] for lv in rest]
             if spec.design == "factorial" else [])
    pairs += [p for p in (_contrast(c, spec.factors, labels) for c in contrasts)
              if p not in pairs]
    differences = _differences_table(runs, labels, pairs, shown)
    sobol = _empty_sobol()
    if spec.design == "sobol":
        sobol, sobol_notes = _sobol_table(runs, spec, shown, len(meta["points"]))
        notes += sobol_notes
    return SweepReport(root=root, design=spec.design, n_points=len(meta["points"]),
                       replications=spec.replications, n_runs=len(runs),
                       common_seeds=spec.common_seeds, factors=factors, kpis=tuple(shown),
                       headline=headline, constant=constant, levels=levels,
                       differences=differences, sobol=sobol, notes=tuple(notes))


def _level_labels(factor: Factor, values: pd.Series) -> pd.Series:
    """The level each run's factor value is reported under (ranges: equal bins)."""
    if factor.levels is not None:
        return values.map(_fmt_level)
    distinct = np.unique(values.to_numpy())
    if factor.integer and len(distinct) <= BINS:
        return values.map(_fmt_level)
    edges = np.linspace(float(factor.low), float(factor.high), BINS + 1)
    if factor.integer:  # bins of whole numbers, labelled by their first and last value
        edges = np.unique(np.round(edges))
    idx = np.clip(np.searchsorted(edges, values.to_numpy(float), side="right") - 1,
                  0, len(edges) - 2)
    names = [_bin_name(edges, i, factor.integer) for i in range(len(edges) - 1)]
    return pd.Series(pd.Categorical([names[i] for i in idx], categories=names,
                                    ordered=True), index=values.index)


def _bin_name(edges: np.ndarray, i: int, integer: bool) -> str:
    lo, hi = edges[i], edges[i + 1]
    if integer:
        last = int(hi) if i == len(edges) - 2 else int(hi) - 1
        return f"{int(lo)}–{last}"
    return f"[{lo:.4g}, {hi:.4g})"


def _fmt_level(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    return str(value)


def _ordered_levels(factor: Factor, labels: pd.Series) -> list[str]:
    if isinstance(labels.dtype, pd.CategoricalDtype):
        return [c for c in labels.cat.categories if (labels == c).any()]
    if factor.levels is not None:
        order = [_fmt_level(v) for v in factor.levels]
        return [lv for lv in dict.fromkeys(order) if (labels == lv).any()]
    return sorted(set(labels), key=float)  # an integer factor's few values


def _replication_means(runs: pd.DataFrame, mask: np.ndarray, kpis: list[str]) -> pd.DataFrame:
    """Replication r's mean KPI over the runs in ``mask``: one row per replication."""
    return runs.loc[mask].groupby("replication")[kpis].mean()


def _contrast(text: str, factors: tuple[Factor, ...],
               labels: dict[str, pd.Series]) -> tuple[str, str, str]:
    """``"A:B"`` or ``"factor=A:B"`` as (factor, A, B): levels by their label, else by a
    unique case-insensitive part of it (``penalty`` for ``imbalance_penalty``)."""
    name, _, pair = text.rpartition("=")
    a, sep, b = pair.partition(":")
    if not (sep and a.strip() and b.strip()):
        raise ConfigError(f"--contrast {text}: give two levels as A:B or factor=A:B")
    names = [f.name for f in factors if f.levels is not None]
    if name and name not in names:
        raise ConfigError(f"--contrast {text}: {name} is not a factor with levels of this "
                          f"sweep ({', '.join(names) or 'none'})")
    found = []
    for f in (n for n in names if not name or n == name):
        levels = [str(v) for v in dict.fromkeys(labels[f])]

        def pick(want: str, levels: list[str] = levels) -> str | None:
            if want in levels:
                return want
            hits = [lv for lv in levels if want.lower() in lv.lower()]
            return hits[0] if len(hits) == 1 else None

        la, lb = pick(a.strip()), pick(b.strip())
        if la and lb and la != lb:
            found.append((f, la, lb))
    if len(found) != 1:
        which = ("both are levels of " + " and of ".join(f for f, _, _ in found)
                 + "; write factor=A:B") if found else "no factor has both as levels"
        raise ConfigError(f"--contrast {text}: {which} (levels: " + "; ".join(
            f"{f} = {', '.join(map(str, dict.fromkeys(labels[f])))}" for f in names) + ")")
    return found[0]


def _levels_table(runs: pd.DataFrame, factors: tuple[Factor, ...],
                  labels: dict[str, pd.Series], kpis: list[str]) -> pd.DataFrame:
    rows = []
    groups: list[tuple[str, str, np.ndarray]] = []
    if not factors:
        groups.append(("(all runs)", "", np.ones(len(runs), bool)))
    for f in factors:
        lab = labels[f.name]
        for level in _ordered_levels(f, lab):
            groups.append((f.name, level, (lab == level).to_numpy()))
    for name, level, mask in groups:
        per_rep = _replication_means(runs, mask, kpis)
        for kpi in kpis:
            mean, half = t_interval(per_rep[kpi].to_numpy())
            rows.append({"within": "", "factor": name, "level": level, "kpi": kpi,
                         "mean": mean,
                         "half_width": half, "low": mean - half, "high": mean + half,
                         "replications": int(per_rep[kpi].notna().sum()),
                         "runs": int(mask.sum())})
    return pd.DataFrame(rows, columns=["within", "factor", "level", "kpi", "mean",
                                       "half_width", "low", "high", "replications", "runs"])


def _empty_differences() -> pd.DataFrame:
    return pd.DataFrame(columns=["factor", "level", "reference", "kpi", "difference",
                                 "half_width", "low", "high", "paired"])


def _differences_table(runs: pd.DataFrame, labels: dict[str, pd.Series],
                       pairs: list[tuple[str, str, str]], kpis: list[str]) -> pd.DataFrame:
    """Level minus reference for each (factor, level, reference): paired within
    replications where the two groups share seeds, Welch's interval otherwise."""
    rows = []
    for factor, level, ref in pairs:
        mask = (labels[factor] == level).to_numpy()
        ref_mask = (labels[factor] == ref).to_numpy()
        means = _replication_means(runs, mask, kpis)
        ref_means = _replication_means(runs, ref_mask, kpis)
        paired = _share_seeds(runs, mask, ref_mask)
        for kpi in kpis:
            if paired:
                diff, half = t_interval((means[kpi] - ref_means[kpi]).dropna().to_numpy())
            else:
                diff, half = welch_interval(means[kpi].to_numpy(), ref_means[kpi].to_numpy())
            rows.append({"factor": factor, "level": level, "reference": ref, "kpi": kpi,
                         "difference": diff, "half_width": half, "low": diff - half,
                         "high": diff + half, "paired": paired})
    return pd.DataFrame(rows, columns=_empty_differences().columns) if rows else \
        _empty_differences()


def _share_seeds(runs: pd.DataFrame, a: np.ndarray, b: np.ndarray) -> bool:
    """Replication by replication, do the two groups' runs use one and the same seed?"""
    seeds_a = runs.loc[a].groupby("replication")["seed"].unique()
    seeds_b = runs.loc[b].groupby("replication")["seed"].unique()
    if not seeds_a.index.equals(seeds_b.index):
        return False
    return all(len(sa) == 1 and set(sa) == set(sb)
               for sa, sb in zip(seeds_a, seeds_b, strict=True))


def _empty_sobol() -> pd.DataFrame:
    return pd.DataFrame(columns=["kpi", "factor", "S1", "S1_half_width", "S1_low", "S1_high",
                                 "ST", "ST_half_width", "ST_low", "ST_high"])


def _sobol_table(runs: pd.DataFrame, spec: Any, kpis: list[str],
                 n_points: int) -> tuple[pd.DataFrame, list[str]]:
    from SALib.analyze import sobol as sobol_analyze

    problem = sobol_problem(spec.factors)
    d = problem["num_vars"]
    notes = []
    if n_points % (d + 2):
        return _empty_sobol(), [f"{n_points} design points are not Saltelli's scheme for "
                                f"{d} factors (a multiple of {d + 2}): no Sobol indices "
                                "(a sweep made by an older version?)"]
    y_all = runs.groupby("point_id")[kpis].mean().reindex(range(n_points))
    rows = []
    skipped = []
    for kpi in kpis:
        y = y_all[kpi].to_numpy(float)
        if not np.isfinite(y).all() or np.ptp(y) == 0:
            skipped.append(kpi)
            continue
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            res = sobol_analyze.analyze(problem, y, calc_second_order=False,
                                        conf_level=CONFIDENCE, num_resamples=1000,
                                        seed=spec.seed, print_to_console=False)
        for j, name in enumerate(problem["names"]):
            s1, s1h = float(res["S1"][j]), float(res["S1_conf"][j])
            st, sth = float(res["ST"][j]), float(res["ST_conf"][j])
            rows.append({"kpi": kpi, "factor": name, "S1": s1, "S1_half_width": s1h,
                         "S1_low": s1 - s1h, "S1_high": s1 + s1h, "ST": st,
                         "ST_half_width": sth, "ST_low": st - sth, "ST_high": st + sth})
    if skipped:
        notes.append("No Sobol indices for " + ", ".join(skipped) + " (constant across the "
                     "design points, or undefined at some point).")
    n_base = n_points // (d + 2)
    notes.append(f"Sobol indices from {n_base} base samples ({n_points} points); the model "
                 f"output at a point is its mean over {spec.replications} replication"
                 f"{'s' if spec.replications != 1 else ''}. Run-to-run noise adds to the "
                 "indices' uncertainty; widen `samples` where the intervals are wide.")
    table = pd.DataFrame(rows, columns=_empty_sobol().columns) if rows else _empty_sobol()
    return table, notes


# --------------------------------------------------------------------------- text
def _pct() -> str:
    return f"{CONFIDENCE * 100:.0f} %"


def _num(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:.4g}" if abs(x) < 1e3 else f"{x:,.0f}"


def _pm(mean: float, half: float) -> str:
    return _num(mean) if not np.isfinite(half) else f"{_num(mean)} ± {_num(half)}"


def _level_grid(report: SweepReport, factor: str, kpis: Sequence[str],
                within: str = "") -> pd.DataFrame:
    """One row per level of ``factor``, one column per KPI: 'mean ± half-width'."""
    lv = report.levels
    t = lv[(lv["factor"] == factor) & lv["kpi"].isin(kpis) & (lv["within"] == within)]
    order = list(dict.fromkeys(t["level"]))
    cells = {(r.level, r.kpi): _pm(r.mean, r.half_width) for r in t.itertuples()}
    runs = t.groupby("level", sort=False)["runs"].first()
    data = {"level": order, "runs": [str(runs[lv]) for lv in order]}
    for k in kpis:
        data[k] = [cells.get((lv, k), "") for lv in order]
    return pd.DataFrame(data)


def _difference_grid(report: SweepReport, kpis: Sequence[str]) -> pd.DataFrame:
    t = report.differences[report.differences["kpi"].isin(kpis)]
    keys = list(dict.fromkeys(zip(t["factor"], t["level"], t["reference"], strict=True)))
    cells = {(r.factor, r.level, r.reference, r.kpi): _pm(r.difference, r.half_width)
             + (" *" if np.isfinite(r.low) and (r.low > 0 or r.high < 0) else "")
             for r in t.itertuples()}
    paired = {(r.factor, r.level, r.reference): r.paired for r in t.itertuples()}
    data: dict[str, list[str]] = {
        "comparison": [f"{f}: {lv} − {ref}" for f, lv, ref in keys],
        "pairing": ["paired" if paired[key] else "unpaired" for key in keys],
    }
    for k in kpis:
        data[k] = [cells.get((*key, k), "") for key in keys]
    return pd.DataFrame(data)


def _sobol_grid(report: SweepReport, kpis: Sequence[str]) -> pd.DataFrame:
    t = report.sobol[report.sobol["kpi"].isin(kpis)]
    t = t.iloc[np.argsort([list(kpis).index(k) for k in t["kpi"]], kind="stable")]
    return pd.DataFrame({
        "kpi": t["kpi"], "factor": t["factor"],
        "first-order S1": [_pm(a, b) for a, b in zip(t["S1"], t["S1_half_width"],
                                                     strict=True)],
        "total ST": [_pm(a, b) for a, b in zip(t["ST"], t["ST_half_width"], strict=True)],
    })


def _intro(report: SweepReport) -> list[str]:
    seeds = ("common seeds (replication r of every point has the same seed)"
             if report.common_seeds else "independent seeds per point and replication")
    lines = [f"{report.design} design: {report.n_points} points × {report.replications} "
             f"replications = {report.n_runs} runs; {seeds}."]
    if report.factors:
        lines.append(f"Factors: {', '.join(report.factors)}.")
    lines.append(f"Intervals: {_pct()} over replications (Student t); "
                 "'n/a' where there is no interval.")
    return lines


def _within(report: SweepReport) -> list[str]:
    return [w for w in dict.fromkeys(report.levels["within"]) if w]


def format_report(report: SweepReport, files: Sequence[Path] = ()) -> str:
    """A terminal summary of every headline KPI: level means, differences, Sobol (tables
    wider than :data:`TERMINAL_WIDTH` are split, each part repeating the row names)."""
    kpis = list(report.headline)
    out = [f"Sweep report: {report.root}", *("  " + s for s in _intro(report))]
    for f in report.factors or ("(all runs)",):
        out += ["", f"{f}: mean ± 95 % interval", _text_table(_level_grid(report, f, kpis), 2)]
    for w in _within(report):
        c = w.split("=")[0]
        for f in (f for f in report.factors if f != c):
            out += ["", f"{f}, only runs with {w}: mean ± 95 % interval",
                    _text_table(_level_grid(report, f, kpis, w), 2)]
    if not report.differences.empty:
        out += ["", "Differences between levels (* : interval excludes 0)",
                _text_table(_difference_grid(report, kpis), 2)]
    if not report.sobol.empty:
        out += ["", "Sobol indices (95 % bootstrap intervals)",
                _text_table(_sobol_grid(report, kpis), 2)]
    out += ["", *report.notes] if report.notes else []
    if files:
        names = ", ".join(p.name for p in files)
        out += ["", f"written to {report.root}/: {names}"]
    return "\n".join(out)


def _text_table(df: pd.DataFrame, keep: int = 1) -> str:
    """Aligned columns; beyond :data:`TERMINAL_WIDTH` the columns after the first
    ``keep`` go into further blocks, each repeating those ``keep`` columns."""
    cols = [str(c) for c in df.columns]
    cells = [[str(v) for v in row] for row in df.itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    blocks: list[list[int]] = [[]]
    for i in range(keep, len(cols)):
        used = sum(widths[j] + 2 for j in [*range(keep), *blocks[-1], i])
        if blocks[-1] and used > TERMINAL_WIDTH:
            blocks.append([])
        blocks[-1].append(i)
    parts = []
    for block in blocks:
        idx = [*range(min(keep, len(cols))), *block]
        parts += ["  " + "  ".join(row[i].ljust(widths[i]) if i < 1 else
                                   row[i].rjust(widths[i]) for i in idx)
                  for row in [cols, *cells]]
        parts.append("")
    return "\n".join(parts[:-1])


# --------------------------------------------------------------------------- figures
def _figure(n_panels: int, ncols: int, width: float = 3.2, height: float = 2.4,
            sharey: str | bool = False) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure  # no pyplot: no global state, any thread

    nrows = max(1, math.ceil(n_panels / ncols))
    fig = Figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _style(ax: Any) -> None:
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def plot_levels(report: SweepReport, path: Path) -> bool:
    """Main-effects plot: level means with 95 % intervals; one row per headline KPI and
    one column per factor, sharing the row's y axis so that the factors that matter
    stand out (one factor: a panel per KPI)."""
    kpis = list(report.headline)
    factors = list(report.factors) or ["(all runs)"]
    if not kpis:
        return False
    grid = len(factors) > 1
    ncols = len(factors) if grid else min(3, len(kpis))
    fig, axes = _figure(len(kpis) * len(factors), ncols, height=2.0,
                        sharey="row" if grid else False)
    for i, (kpi, f) in enumerate((k, f) for k in kpis for f in factors):
        ax = axes[i]
        t = report.levels[(report.levels["factor"] == f) & (report.levels["kpi"] == kpi)]
        x = np.arange(len(t))
        yerr = np.nan_to_num(t["half_width"].to_numpy(float))
        ax.errorbar(x, t["mean"], yerr=yerr, fmt="o-", color="#2166ac", ecolor="#2166ac",
                    capsize=4, lw=1.2, ms=5)
        ax.set_xticks(x, t["level"].tolist(), rotation=20 if len(t) > 3 else 0,
                      fontsize=8)
        ax.set_xlim(-0.5, len(t) - 0.5)
        ax.tick_params(axis="y", labelsize=8)
        if grid:
            if i < ncols:
                ax.set_title(f, fontsize=10)
            if i % ncols == 0:
                ax.set_ylabel(kpi, fontsize=8)
        else:
            ax.set_title(kpi, fontsize=9)
            ax.set_xlabel(f, fontsize=8)
        _style(ax)
    fig.suptitle(f"Mean per factor level, {_pct()} interval over {report.replications} "
                 "replications", fontsize=11)
    _save(fig, path)
    return True


def plot_differences(report: SweepReport, path: Path) -> bool:
    """Forest plot: each difference of the report, per headline KPI."""
    t = report.differences
    kpis = [k for k in report.headline if (t["kpi"] == k).any()]
    if not kpis:
        return False
    ncols = min(3, len(kpis))
    n_rows = int((t["kpi"] == kpis[0]).sum())
    fig, axes = _figure(len(kpis), ncols, width=3.2, height=0.5 + 0.45 * n_rows + 0.9,
                        sharey=True)
    for i, (ax, kpi) in enumerate(zip(axes, kpis, strict=True)):
        d = t[t["kpi"] == kpi].reset_index(drop=True)
        y = np.arange(len(d))[::-1]
        half = np.nan_to_num(d["half_width"].to_numpy(float))
        clear = (d["low"] > 0) | (d["high"] < 0)
        colors = np.where(clear, "#b2182b", "#7f7f7f")
        for yi, m, h, c, p in zip(y, d["difference"], half, colors, d["paired"],
                                  strict=True):
            ax.errorbar(m, yi, xerr=h, fmt="o" if p else "s", color=c, capsize=4, ms=5,
                        mfc=c if p else "white")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [f"{r.factor}: {r.level} − {r.reference}" for r in d.itertuples()],
                      fontsize=8)
        ax.tick_params(axis="y", labelleft=i % ncols == 0)
        ax.set_ylim(-0.6, len(d) - 0.4)
        ax.set_title(kpi, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        _style(ax)
    paired = bool(t["paired"].all())
    fig.suptitle(f"Differences between levels, {_pct()} interval "
                 f"({'paired: common seeds' if paired else 'open squares: unpaired'}; "
                 "red: excludes 0)", fontsize=10)
    _save(fig, path)
    return True


def plot_sobol(report: SweepReport, path: Path) -> bool:
    """Bars of first-order and total Sobol indices with 95 % intervals, per headline KPI."""
    t = report.sobol
    kpis = [k for k in report.headline if (t["kpi"] == k).any()]
    if not kpis:
        return False
    ncols = min(3, len(kpis))
    n_f = len(report.factors)
    fig, axes = _figure(len(kpis), ncols, width=3.2, height=0.8 + 0.5 * n_f, sharey=True)
    for i, (ax, kpi) in enumerate(zip(axes, kpis, strict=True)):
        d = t[t["kpi"] == kpi].reset_index(drop=True)
        y = np.arange(len(d))[::-1]
        ax.barh(y + 0.2, d["S1"], height=0.38, color="#2166ac", label="first-order S1",
                xerr=np.nan_to_num(d["S1_half_width"].to_numpy(float)), capsize=3)
        ax.barh(y - 0.2, d["ST"], height=0.38, color="#e08214", label="total ST",
                xerr=np.nan_to_num(d["ST_half_width"].to_numpy(float)), capsize=3)
        ax.set_yticks(y, d["factor"].tolist(), fontsize=8)
        ax.tick_params(axis="y", labelleft=i % ncols == 0)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlim(min(-0.05, float(d[["S1_low", "ST_low"]].min().min()) - 0.02),
                    max(1.05, float(d[["S1_high", "ST_high"]].max().max()) + 0.02))
        ax.set_title(kpi, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        if i == 0:
            ax.legend(fontsize=7, frameon=False, loc="lower right")
        _style(ax)
    fig.suptitle(f"Sobol indices (SALib), {_pct()} bootstrap intervals",
                 fontsize=11)
    _save(fig, path)
    return True


def _save(fig: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


# --------------------------------------------------------------------------- documents
def _md_table(df: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|")

    cols = [cell(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _blocks(report: SweepReport, figures: dict[str, Path]) -> list[tuple[str, Any]]:
    """The summary as (kind, content) blocks, rendered to Markdown and to HTML."""
    kpis = list(report.headline)
    b: list[tuple[str, Any]] = [("h1", f"Sweep report: {report.root.name}")]
    b += [("p", s) for s in _intro(report)]
    if report.constant:
        same = ", ".join(f"{k} = {_num(float(v))}" for k, v in report.constant.items())
        b.append(("p", f"The same in every run: {same}."))
    b.append(("h2", "KPIs per factor level"))
    b.append(("p", f"Mean over replications with its {_pct()} interval. Every KPI is "
                   f"in {_FILES['levels_csv']}."))
    if "levels" in figures:
        b.append(("img", figures["levels"]))
    for f in report.factors or ("(all runs)",):
        b += [("h3", f), ("table", _level_grid(report, f, kpis))]
    for w in _within(report):
        b += [x for f in report.factors if f != w.split("=")[0]
              for x in (("h3", f"{f}, only runs with {w}"),
                        ("table", _level_grid(report, f, kpis, w)))]
    if not report.differences.empty:
        b.append(("h2", "Differences between levels"))
        b.append(("p", "Each level minus the factor's first level, and every contrast asked "
                       "for; paired (within each replication, common seeds) where the runs "
                       "share their seeds, Welch's interval otherwise. * : the interval "
                       "excludes 0."))
        if "differences" in figures:
            b.append(("img", figures["differences"]))
        b.append(("table", _difference_grid(report, kpis)))
    if report.design == "sobol":
        b.append(("h2", "Sobol indices"))
        b.append(("p", "First-order S1: the share of the KPI's variance that the factor "
                       "explains alone; total ST: including its interactions (SALib, "
                       "Saltelli's scheme). ST near 0: the factor does not matter."))
        if "sobol" in figures:
            b.append(("img", figures["sobol"]))
        if not report.sobol.empty:
            b.append(("table", _sobol_grid(report, kpis)))
    if report.notes:
        b.append(("h2", "Notes"))
        b += [("p", n) for n in report.notes]
    return b


def _markdown(blocks: list[tuple[str, Any]]) -> str:
    parts = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + " " + content)
        elif kind == "p":
            parts.append(content)
        elif kind == "table":
            parts.append(_md_table(content))
        elif kind == "img":
            parts.append(f"![{content.stem}]({content.name})")
    return "\n\n".join(parts) + "\n"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em;color:#222}table{border-collapse:collapse;margin:0.5em 0 1.5em}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:0.9em}"
        "th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}"
        "img{max-width:100%}")


def _html(blocks: list[tuple[str, Any]], title: str) -> str:
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(content)}</p>")
        elif kind == "table":
            parts.append(_html_table(content))
        elif kind == "img":
            data = base64.b64encode(content.read_bytes()).decode("ascii")
            parts.append(f"<p><img alt=\"{html.escape(content.stem)}\" "
                         f"src=\"data:image/png;base64,{data}\"></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(sweep_dir: str | os.PathLike, report: SweepReport | None = None,
                 kpis: Sequence[str] | None = None, contrasts: Sequence[str] = ()
                 ) -> list[Path]:
    """Compute (unless given) and write the report next to ``runs.parquet``; returns the
    files written, the Markdown and HTML summaries last."""
    rep = report if report is not None else build_report(sweep_dir, kpis, contrasts)
    root = rep.root
    written: list[Path] = []

    def csv(df: pd.DataFrame, name: str) -> None:
        path = root / _FILES[name]
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
        written.append(path)

    csv(rep.levels, "levels_csv")
    if not rep.differences.empty:
        csv(rep.differences, "differences_csv")
    if rep.design == "sobol":
        csv(rep.sobol, "sobol_csv")
    figures: dict[str, Path] = {}
    for name, plot in (("levels", plot_levels), ("differences", plot_differences),
                       ("sobol", plot_sobol)):
        path = root / _FILES[f"{name}_png"]
        if plot(rep, path):
            figures[name] = path
            written.append(path)
    blocks = _blocks(rep, figures)
    for key, text in (("html", _html(blocks, f"Sweep report: {root.name}")),
                      ("md", _markdown(blocks))):
        path = root / _FILES[key]
        atomic_write(path, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
        written.append(path)
    return written
