"""Batch parameter sweeps: designs over any scenario key, seeded replications, a
process pool or a Dask cluster, resumable output (docs/model.md section 9: "for sweeps,
one row per run with its parameters").

Spec
----
A sweep is described by a TOML file (or the same structure as a ``dict``)::

    [sweep]
    design = "lhs"              # factorial (default) | lhs | sobol
    replications = 5            # seeded runs per design point (default 1)
    seed = 2024                 # master seed (required)
    samples = 64                # lhs: design points; sobol: base samples N (see below)
    hourly = true               # also write every run's hourly KPIs (default true)
    common_seeds = false        # true: replication r of every point has the same seed
    probe = "module:function"   # extra hourly columns (optional; see below)

    [base]                      # fixed scenario keys of every run
    hours = 168
    n_dpgc = 10

    [factors]                   # the keys that vary
    natural_factor = [0.0, 0.25]            # lhs/sobol: a [low, high] range
    forecast_sd_wind = {low = 0.1, high = 0.4}
    n_users = [20, 80]                      # integer key: integers low..high, equally likely
    matching = ["price_time", "centralized"]  # strings, booleans, 3+ values: levels
    poca_tau = {values = [5.0, 10.0]}       # two numeric levels, not a range

    [outcomes]                  # optional: scalars of the hourly KPIs, columns of runs.parquet
    late_breach_rate = { kpi = "breach_rate", last_hours = 168, agg = "mean" }
    cost_per_kwh = { ratio = ["user_cost_yuan", "load_kwh"] }

Every key in ``[base]`` and ``[factors]`` is a scenario key (``dipi-abm keys``);
``seed`` is not, since the sweep derives every run's seed from ``[sweep] seed``.

- ``factorial``: every factor is a list of levels (``[a, b, c]``, ``{values =
  [...]}``, or ``{low, high, num}`` for ``num`` evenly spaced levels); the points
  are all combinations, in spec order with the last factor varying fastest.
- ``lhs`` / ``sobol``: points in the unit cube, one dimension per factor. ``lhs``:
  ``samples`` points of a Latin hypercube (:class:`scipy.stats.qmc.LatinHypercube`).
  ``sobol``: Saltelli's scheme on a scrambled Sobol sequence
  (:func:`SALib.sample.sobol.sample`, first-order and total indices): ``samples`` =
  N base points (use a power of 2) give ``N * (D + 2)`` design points for D
  factors, in the order SALib's analyzer reads them, so that ``dipi-abm report``
  computes the Sobol indices. Each coordinate is mapped to its factor: a range
  ``[low, high]`` of a real
  key uniformly to ``[low, high)``; of an integer key to the integers ``low ..
  high``, each equally likely; a list of levels (categorical) picks each level
  with equal probability. A two-number list is a range; anything else is levels.

``[outcomes]``: see :mod:`dipi_abm.sweep.outcomes` (windows, aggregations, ratios).
A spec that varies a breach or credit rule while every party is static warns
(:func:`dipi_abm.sweep.caveats.static_policy`).

Every point's scenario is validated with :func:`dipi_abm.config.validate` before
any run starts; a bad spec raises :class:`~dipi_abm.errors.ConfigError` naming
the table, the key and, for a file, its line.

Seeds
-----
Design draws come from ``numpy.random.SeedSequence(seed)``. Run ``(point p,
replication r)`` uses the child ``SeedSequence(seed, spawn_key=(p, r))`` (that is,
``SeedSequence(seed).spawn(P)[p].spawn(R)[r]``), reduced to a 63-bit integer
seed for :class:`~dipi_abm.model.DIPIModel`. A run's seed therefore depends only on
the master seed and its (point, replication), never on workers or completion
order, and ``DIPIModel(seed=row.seed, **params)`` reproduces any row.

With ``common_seeds = true`` every point uses point 0's seeds (replication r of
every point runs with ``SeedSequence(seed, spawn_key=(0, r))``): common random
numbers, so that points differ only in their factors and ``dipi-abm report``
pairs them (paired differences, much narrower intervals).

Probe
-----
``probe = "module:function"`` names a function ``probe(model) -> {name: number}``
that is called after every hour; its values become extra columns of the run's
hourly KPIs (prefixed ``probe_``). Experiments use it for what the model does not
report (opportunists' breaches, chosen commitment ratios). The module must be
importable in the workers (process-pool workers inherit ``sys.path``).

Output folder
-------------
::

    DIR/sweep.json                        the spec, its hash and the design points (first)
    DIR/runs/000017.parquet               one row per finished run (its completion marker)
    DIR/hourly/run_id=000017/part.parquet that run's hourly KPIs (written before its row)
    DIR/runs.parquet                      every row, sorted by run_id (last; marks a complete sweep)

``runs.parquet`` has ``run_id``, ``point_id``, ``replication``, ``seed``, the
spec's keys (factors, then base) and every scalar KPI of
:meth:`DIPIModel.summary` (``breach_rate``, ``transaction_efficiency``,
``mean_credit_dpgc``, ...). ``pandas.read_parquet(DIR / "hourly")`` reads the
hourly KPIs of all runs with ``run_id`` as a (categorical) column; every run's file has
the same columns (a breach policy's KPIs are null in runs without one).

Every file is written to a temporary ``.*.part`` name and renamed into place
(:func:`dipi_abm.results.output.atomic_write`), and a run counts as finished only once
its row file exists. Rerunning the same spec into the same folder skips finished
runs and deletes stray temporary files; a folder made from a different spec is
refused. A killed sweep therefore loses at most the runs in flight.

Python::

    from dipi_abm.sweep.engine import run_sweep, design_points
    runs = run_sweep("sweep.toml", "out", workers=2)          # local process pool
    runs = run_sweep("sweep.toml", "out", use_dask=True)       # Dask LocalCluster
    runs = run_sweep(spec_dict, "out", scheduler="tcp://host:8786")  # a Dask cluster

On a Dask cluster the workers need ``dipi_abm`` installed (and any grid file the
spec names, at the same path); they return their results to the calling process,
which writes every file, so no shared file system is needed.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import itertools
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import config as cfg
from ..errors import ConfigError, one_line
from ..hour import POLICY_KPIS
from ..model import DIPIModel, package_version
from ..physics.grid import BUILTIN_GRIDS, build_grid, check_grid_source
from ..resources import check_disk, sweep_disk_needs
from ..results.files import atomic_write, write_json, write_parquet
from .caveats import static_policy
from .outcomes import Outcome, evaluate, parse_outcomes

#: Layout version of a sweep folder (part of the spec hash).
FORMAT = 1
SPEC_FILE = "sweep.json"
RUNS_FILE = "runs.parquet"
RUNS_DIR = "runs"
HOURLY_DIR = "hourly"
HOURLY_PART = "part.parquet"

TABLES = ("sweep", "base", "factors", "outcomes")
#: Most runs (points x replications) one sweep may plan: checked from the spec's numbers
#: before any design point is generated (10^5 runs of a minute each is ten weeks).
MAX_RUNS = 100_000
SWEEP_KEYS = ("design", "replications", "seed", "samples", "hourly", "common_seeds",
              "probe")

#: Summary entries that are not KPIs of a row (the row has its own seed and parameters).
_NOT_KPIS = frozenset({"package", "version", "hours", "seed", "params"})

#: Outcomes of :func:`ema_model_function` (summary KPIs of one run).
EMA_OUTCOMES = ("breach_rate", "transaction_efficiency", "mean_credit_dpgc", "mean_credit_user",
                "price_mean", "price_std", "p2p_volume_kwh", "clean_share",
                "low_credit_block_share", "system_cost_yuan", "balancing_cost_yuan",
                "welfare_yuan")

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


# --------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class Factor:
    """One varying key: a list of levels, or a [low, high] range (lhs/sobol)."""

    name: str
    levels: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = False

    def from_unit(self, u: float) -> Any:
        """Map a coordinate in [0, 1) of the unit cube to a value of this factor."""
        if self.levels is not None:
            return self.levels[min(int(u * len(self.levels)), len(self.levels) - 1)]
        lo, hi = self.low, self.high
        if self.integer:  # each integer lo..hi gets an equal share of [0, 1)
            return int(min(lo + math.floor(u * (hi - lo + 1)), hi))
        return float(lo + u * (hi - lo))


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, checked sweep spec (see the module docstring for the format)."""

    design: str
    replications: int
    seed: int
    samples: int | None
    hourly: bool
    base: dict[str, Any]
    factors: tuple[Factor, ...]
    normalized: dict[str, Any]
    source: str | None = None
    lines: dict[tuple[str, ...], int] = field(default_factory=dict, repr=False)
    common_seeds: bool = False
    probe: str | None = None
    outcomes: tuple[Outcome, ...] = ()

    @property
    def hash(self) -> str:
        """SHA-256 of the normalized spec: same hash, same runs."""
        text = json.dumps({"format": FORMAT, **self.normalized}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def keys(self) -> list[str]:
        """The scenario keys the spec sets: factors first, then base."""
        return [f.name for f in self.factors] + [k for k in self.base]

    def error(self, table: str, key: str | None, message: str) -> ConfigError:
        """A ConfigError naming the table, key and (for a file) the line."""
        return _spec_error(self.source, self.lines, table, key, message)


def _spec_error(source: str | None, lines: dict[tuple[str, ...], int], table: str,
                key: str | None, message: str) -> ConfigError:
    where = "sweep spec" if source is None else f"sweep spec '{source}'"
    line = _line_of(lines, table, key)
    if line is not None:
        where += f", line {line}"
    name = f"[{table}]" + (f" {key}" if key else "")
    return ConfigError(f"{where}: {name}: {message}")


@dataclass(frozen=True)
class RunTask:
    """One run of the sweep: what a worker needs and nothing more."""

    run_id: int
    point_id: int
    replication: int
    seed: int
    params: dict[str, Any]
    hourly: bool = True
    probe: str | None = None
    outcomes: tuple[Outcome, ...] = ()


@dataclass(frozen=True)
class RunOutput:
    """A finished run as Parquet bytes, encoded in the worker."""

    run_id: int
    row: bytes
    hourly: bytes | None


def load_spec(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike) -> SweepSpec:
    """Read and check a sweep spec from a TOML file or a mapping."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return _parse(_plain(spec), None, {})
    path = Path(spec)
    raw, text = cfg.read_toml(path, f"sweep spec '{path}'")
    return _parse(raw, str(path), cfg.toml_key_lines(text))


def _parse(raw: dict[str, Any], source: str | None, lines: dict) -> SweepSpec:
    def err(table: str, key: str | None, message: str) -> ConfigError:
        return _spec_error(source, lines, table, key, message)

    for name in raw:
        if name not in TABLES:
            raise err(name, None, f"unknown table{_did_you_mean(name, TABLES)}; a sweep spec "
                      "has [sweep], [base], [factors] and [outcomes]")
    tables = {}
    for name in TABLES:
        value = raw.get(name, {})
        if not isinstance(value, Mapping):
            raise err(name, None, f"must be a table, got {value!r}")
        tables[name] = dict(value)
    sweep, base, factors_raw = tables["sweep"], tables["base"], tables["factors"]
    outcomes_raw = tables["outcomes"]

    for key in sweep:
        if key not in SWEEP_KEYS:
            raise err("sweep", key, f"unknown key{_did_you_mean(key, SWEEP_KEYS)}; "
                      f"[sweep] takes {', '.join(SWEEP_KEYS)}")
    design = sweep.get("design", "factorial")
    if not isinstance(design, str) or design not in DESIGNS:
        raise err("sweep", "design", f"design = {design!r}: must be one of "
                  f"{', '.join(DESIGNS)}")
    replications = sweep.get("replications", 1)
    if not _is_int(replications) or replications < 1:
        raise err("sweep", "replications", f"replications = {replications!r}: must be an "
                  "integer >= 1")
    if "seed" not in sweep:
        raise err("sweep", None, "seed is missing: a sweep needs a master seed (an integer "
                  ">= 0) so that its runs are reproducible and resumable")
    seed = sweep["seed"]
    if not _is_int(seed) or seed < 0:
        raise err("sweep", "seed", f"seed = {seed!r}: must be an integer >= 0")
    samples = sweep.get("samples")
    if design == "factorial":
        if samples is not None:
            raise err("sweep", "samples", "a factorial design takes every combination of "
                      "its levels; samples is for design = lhs or sobol")
    elif samples is None:
        raise err("sweep", None, f"samples is missing: design = {design!r} needs the number "
                  "of design points")
    elif not _is_int(samples) or samples < 1:
        raise err("sweep", "samples", f"samples = {samples!r}: must be an integer >= 1")
    if samples is not None and samples * replications > MAX_RUNS:
        key = "samples" if samples > replications else "replications"
        raise err("sweep", key, f"samples x replications = {samples} x {replications} "
                  f"= {samples * replications:.3g} runs, more than {MAX_RUNS}")
    if replications > MAX_RUNS:
        raise err("sweep", "replications", f"replications = {replications}: more than "
                  f"{MAX_RUNS} runs")
    hourly = sweep.get("hourly", True)
    if not isinstance(hourly, bool):
        raise err("sweep", "hourly", f"hourly = {hourly!r}: must be true or false")
    common_seeds = sweep.get("common_seeds", False)
    if not isinstance(common_seeds, bool):
        raise err("sweep", "common_seeds", f"common_seeds = {common_seeds!r}: must be true "
                  "or false")
    probe = sweep.get("probe")
    if probe is not None:
        if not isinstance(probe, str) or not re.fullmatch(r"[\w.]+:\w+", probe):
            raise err("sweep", "probe", f"probe = {probe!r}: must be 'module:function'")
        if not hourly:
            raise err("sweep", "probe", "a probe adds hourly columns: it needs hourly = true")

    for table, keys in (("base", base), ("factors", factors_raw)):
        for key in keys:
            if key == "seed":
                raise err(table, key, "every run's seed comes from [sweep] seed; set the "
                          "master seed there")
            try:
                cfg.param(key)
            except ConfigError as exc:
                raise err(table, key, str(exc)) from None
    for key in base:
        if key in factors_raw:
            raise err("factors", key, "is also set in [base]; a key is either fixed or "
                      "varied")
        try:
            cfg.param(key).check(base[key])
        except ConfigError as exc:
            raise err("base", key, str(exc)) from None
    if design != "factorial" and not factors_raw:
        raise err("factors", None, f"design = {design!r} needs at least one factor")
    factors = tuple(_parse_factor(k, v, design, err) for k, v in factors_raw.items())
    if design == "factorial":
        n_points = math.prod(len(f.levels or ()) for f in factors)
        if n_points * replications > MAX_RUNS:
            sizes = " x ".join(str(len(f.levels or ())) for f in factors)
            raise err("factors", None, f"a factorial design of {sizes} levels = "
                      f"{n_points:.3g} points x {replications} replications = "
                      f"{n_points * replications:.3g} runs, more than {MAX_RUNS}")
    elif design == "sobol":
        n_points = samples * (len(factors) + 2)  # Saltelli: N (D + 2) points
        if n_points * replications > MAX_RUNS:
            raise err("sweep", "samples", f"a sobol design of samples = {samples} over "
                      f"{len(factors)} factors = {n_points:.3g} points x {replications} "
                      f"replications = {n_points * replications:.3g} runs, more than "
                      f"{MAX_RUNS}")

    normalized = {
        "sweep": {"design": design, "replications": int(replications), "seed": int(seed),
                  "samples": None if samples is None else int(samples), "hourly": hourly},
        "base": base,
        "factors": factors_raw,
    }
    if common_seeds:  # only when set: specs written before the key keep their hash
        normalized["sweep"]["common_seeds"] = True
    if probe is not None:
        normalized["sweep"]["probe"] = probe
    outcomes = parse_outcomes(outcomes_raw, err, [*base, *factors_raw], probe is not None)
    if outcomes:  # only when set: specs without outcomes keep their hash
        normalized["outcomes"] = outcomes_raw
    return SweepSpec(design, int(replications), int(seed),
                     None if samples is None else int(samples), hourly, base, factors,
                     normalized, source, lines, common_seeds, probe, outcomes)


def _parse_factor(name: str, raw: Any, design: str,
                  err: Callable[[str, str | None, str], ConfigError]) -> Factor:
    p = cfg.param(name)
    numeric = p.kind in (int, float) and p.choices is None
    shape = ("a list of levels, a [low, high] range, {low = , high = } or {values = [...]}"
             if design != "factorial" else "a list of levels, {values = [...]} or "
             "{low = , high = , num = }")

    def check(value: Any) -> Any:
        try:
            return p.check(value)
        except ConfigError as exc:
            raise err("factors", name, str(exc)) from None

    if isinstance(raw, Mapping):
        keys = set(raw)
        if keys == {"values"}:
            raw = raw["values"]
            if not isinstance(raw, list):
                raise err("factors", name, f"values = {raw!r}: must be a list")
            levels: list[Any] | None = list(raw)
            low = high = None
        elif {"low", "high"} <= keys <= {"low", "high", "num"}:
            levels = None
            low, high = raw["low"], raw["high"]
            if "num" in raw and design != "factorial":
                raise err("factors", name, f"num is for factorial designs; design = {design!r} "
                          "samples the range")
            if "num" not in raw and design == "factorial":
                raise err("factors", name, "a factorial design needs levels: give num = "
                          "(evenly spaced levels) or a list; ranges are for lhs or sobol")
        else:
            raise err("factors", name, f"{raw!r}: must be {shape}")
    elif isinstance(raw, list):
        if (design != "factorial" and len(raw) == 2 and numeric
                and all(_is_number(v) for v in raw)):
            levels, (low, high) = None, raw
        else:
            levels, low, high = list(raw), None, None
    else:
        raise err("factors", name, f"{raw!r}: must be {shape} (a single value belongs in "
                  "[base])")

    if levels is not None:
        if not levels:
            raise err("factors", name, "empty list: give at least one level")
        if len(levels) > MAX_RUNS:
            raise err("factors", name, f"{len(levels)} levels: more than {MAX_RUNS} runs")
        return Factor(name, levels=tuple(check(v) for v in levels))

    if not numeric:
        raise err("factors", name, f"a range needs a numeric key; {name} is "
                  f"{p.allowed()}: list its levels instead")
    if not (_is_number(low) and _is_number(high)):
        raise err("factors", name, f"range [{low!r}, {high!r}]: low and high must be numbers")
    if not (_finite(low) and _finite(high)):
        raise err("factors", name, f"range [{low!r}, {high!r}]: both ends must be finite")
    if not low < high:
        raise err("factors", name, f"range [{low!r}, {high!r}]: low must be below high")
    lo = check(low)
    try:
        hi = p.check(high)
    except ConfigError:
        # Samples fall in [low, high): an open upper bound may be the range's end.
        if not (p.high_open and high == p.high):
            raise err("factors", name, f"range [{low!r}, {high!r}] goes beyond what {name} "
                      f"accepts ({p.allowed()})") from None
        hi = float(high)
    if "num" in (raw if isinstance(raw, Mapping) else {}):
        num = raw["num"]
        if not _is_int(num) or not 2 <= num <= MAX_RUNS:
            raise err("factors", name, f"num = {num!r}: must be an integer in [2, {MAX_RUNS}]")
        values = np.linspace(lo, hi, int(num)).tolist()
        if p.kind is int:
            if any(not float(v).is_integer() for v in values):
                raise err("factors", name, f"{num} evenly spaced levels from {low} to {high} "
                          f"are not all integers, and {name} is {p.allowed()}")
            values = [int(v) for v in values]
        return Factor(name, levels=tuple(check(v) for v in values))
    return Factor(name, low=lo, high=hi, integer=p.kind is int)


# --------------------------------------------------------------------------- designs
def factorial_design(factors: tuple[Factor, ...], samples: int | None,
                     rng: np.random.Generator) -> list[dict[str, Any]]:
    """Every combination of the factors' levels; the last factor varies fastest."""
    names = [f.name for f in factors]
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(f.levels for f in factors))]


def _qmc_points(engine: type, factors: tuple[Factor, ...], n: int,
                rng: np.random.Generator, draw: Callable[[Any, int], np.ndarray]
                ) -> list[dict[str, Any]]:
    try:
        sampler = engine(len(factors), rng=rng)
    except TypeError:  # SciPy < 1.15 calls it seed
        sampler = engine(len(factors), seed=rng)
    unit = draw(sampler, n)
    return [{f.name: f.from_unit(float(u)) for f, u in zip(factors, row, strict=True)}
            for row in unit]


def lhs_design(factors: tuple[Factor, ...], samples: int | None,
               rng: np.random.Generator) -> list[dict[str, Any]]:
    """``samples`` points of a Latin hypercube (one stratum per point on every axis)."""
    from scipy.stats import qmc

    return _qmc_points(qmc.LatinHypercube, factors, int(samples), rng,
                       lambda s, n: s.random(n))


def sobol_problem(factors: tuple[Factor, ...]) -> dict[str, Any]:
    """SALib's problem for a sobol design: one unit-interval input per factor (each factor
    maps its coordinate with :meth:`Factor.from_unit`)."""
    return {"num_vars": len(factors), "names": [f.name for f in factors],
            "bounds": [[0.0, 1.0]] * len(factors)}


def sobol_design(factors: tuple[Factor, ...], samples: int | None,
                 rng: np.random.Generator) -> list[dict[str, Any]]:
    """Saltelli's scheme (SALib) on a scrambled Sobol sequence: ``samples`` base points,
    ``samples * (D + 2)`` design points for D factors, in the order
    :func:`SALib.analyze.sobol.analyze` expects (first-order and total indices)."""
    from SALib.sample import sobol as saltelli

    n = int(samples)
    if n & (n - 1):
        lower = 1 << (n.bit_length() - 1)
        warnings.warn(f"sobol design: samples = {n} is not a power of 2; the Sobol "
                      f"sequence is balanced only for 2^m points ({lower} or {lower * 2})",
                      UserWarning, stacklevel=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # SciPy's balance warning, said above
        unit = saltelli.sample(sobol_problem(factors), n, calc_second_order=False, seed=rng)
    return [{f.name: f.from_unit(float(u)) for f, u in zip(factors, row, strict=True)}
            for row in unit]


#: Design generators by name: ``(factors, samples, rng) -> [point, ...]``.
DESIGNS: dict[str, Callable[..., list[dict[str, Any]]]] = {"factorial": factorial_design,
                                                           "lhs": lhs_design,
                                                           "sobol": sobol_design}


def design_points(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike
                  ) -> list[dict[str, Any]]:
    """The factor values of every design point, in point order (``[base]`` not included).

    Reproducible: the same spec gives the same points.
    """
    s = load_spec(spec)
    rng = np.random.default_rng(np.random.SeedSequence(s.seed))
    return DESIGNS[s.design](s.factors, s.samples, rng)


def replication_seed(master_seed: int, point_id: int, replication: int) -> int:
    """The model seed of run (point, replication): a 63-bit integer drawn from
    ``SeedSequence(master_seed, spawn_key=(point_id, replication))``."""
    child = np.random.SeedSequence(master_seed, spawn_key=(point_id, replication))
    return int(child.generate_state(1, np.uint64)[0] >> np.uint64(1))


def plan_runs(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike) -> list[RunTask]:
    """Every run of the sweep, each point's scenario validated (all before any run)."""
    return _plan(load_spec(spec))[1]


#: Extra probe modules allowed besides the project's own and the user's files:
#: ``module`` names separated by commas.
PROBE_ALLOW_ENV = "DIPI_ABM_PROBE_MODULES"


def check_probe(s: SweepSpec) -> None:
    """A probe runs in every worker: it must be a Python function of the project
    (``dipi_abm``), of a file under the current folder or the spec's folder (the user's
    own experiment), or of a module listed in ``$DIPI_ABM_PROBE_MODULES`` - never any
    importable callable (``builtins:print``, ``os:system``)."""
    import importlib
    import importlib.util
    import inspect

    if s.probe is None:
        return
    module, _, name = s.probe.partition(":")
    allowed = {m.strip() for m in os.environ.get(PROBE_ALLOW_ENV, "").split(",")}
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise s.error("sweep", "probe", f"probe = {s.probe!r}: no module {module!r}")
    origin = Path(spec.origin).resolve()
    homes = [Path(__file__).resolve().parents[1], Path.cwd().resolve()]
    if s.source:
        homes.append(Path(s.source).resolve().parent)
    if module not in allowed and not any(origin.is_relative_to(h) for h in homes):
        raise s.error("sweep", "probe", f"probe = {s.probe!r}: {module} is not part of "
                      "dipi_abm or of a file in this folder; list it in "
                      f"${PROBE_ALLOW_ENV} to allow it")
    fn = getattr(importlib.import_module(module), name, None)
    if not inspect.isfunction(fn):
        raise s.error("sweep", "probe", f"probe = {s.probe!r}: not a Python function of "
                      f"{module}")


def _plan(s: SweepSpec) -> tuple[list[dict[str, Any]], list[RunTask]]:
    check_probe(s)
    points = design_points(s)
    tasks = []
    buses_of: dict[str, int] = {}
    scenarios = []
    for point_id, point in enumerate(points):
        values = {**s.base, **point}
        try:
            params = cfg.validate(values)
        except ConfigError as exc:
            raise _point_error(s, point_id, point, exc) from None
        scenarios.append(params)
        for o in s.outcomes:
            if o.hours is not None and o.hours > params["hours"]:
                raise s.error("outcomes", o.name, f"a window of {o.hours} h is longer than "
                              f"the run (hours = {params['hours']})")
        try:  # what a run would refuse only once built, refused before any run starts
            _check_grid_fits(params, buses_of)
        except ConfigError as exc:
            raise _point_error(s, point_id, point, exc) from None
        run_params = {k: params[k] for k in s.keys}
        for rep in range(s.replications):
            tasks.append(RunTask(
                run_id=point_id * s.replications + rep, point_id=point_id, replication=rep,
                seed=replication_seed(s.seed, 0 if s.common_seeds else point_id, rep),
                params=run_params, hourly=s.hourly, probe=s.probe, outcomes=s.outcomes,
            ))
    warning = static_policy([f.name for f in s.factors], scenarios)
    if warning:
        warnings.warn(f"sweep spec: [factors] {warning}", UserWarning, stacklevel=3)
    return points, tasks


def _check_grid_fits(params: Mapping[str, Any], buses_of: dict[str, int]) -> None:
    """The grid exists and reads (each file once), and the parties fit on its load buses
    at ``max_parties_per_bus`` (the check the model makes when it places them)."""
    grid = params["grid"]
    if grid == "synthetic":
        n_buses = params["grid_buses"]
    elif grid in buses_of:
        n_buses = buses_of[grid]
    else:
        check_grid_source(grid)
        n_buses = buses_of[grid] = build_grid(grid).n_buses
    limit, n = params["max_parties_per_bus"], params["n_dpgc"] + params["n_users"]
    load_buses = max(n_buses - 1, 1)
    if limit and n > limit * load_buses:
        raise ConfigError(f"n_dpgc + n_users = {n}: the grid's {load_buses} load buses hold "
                          f"at most {limit * load_buses} parties at max_parties_per_bus = "
                          f"{limit}")


def _point_error(s: SweepSpec, point_id: int, point: dict, exc: ConfigError) -> ConfigError:
    """Name the factor (or base key) the message is about, and the point's values."""
    msg = str(exc)
    table, key = ("factors", None) if point else ("base", None)
    for name in s.keys:
        if re.search(rf"\b{re.escape(name)}\b", msg):
            table, key = ("factors", name) if name in point else ("base", name)
            break
    values = ", ".join(f"{k} = {v!r}" for k, v in point.items())
    where = f"design point {point_id} ({values}): " if point else ""
    return s.error(table, key, where + msg)


# --------------------------------------------------------------------------- one run
def run_one(task: RunTask) -> RunOutput:
    """Run one task and encode its row (and hourly KPIs) as Parquet bytes."""
    params = dict(task.params)
    # A sweep keeps no per-party records; reporting does not change the dynamics.
    params.setdefault("agent_report_every", params.get("hours", cfg.param("hours").default))
    try:
        model = DIPIModel(seed=task.seed, **params)
        probed = None
        if task.probe:
            probed = _run_probed(model, task.probe)
        else:
            model.run()
    except ConfigError as exc:
        raise ConfigError(f"run {task.run_id} (point {task.point_id}, replication "
                          f"{task.replication}, seed {task.seed}): {exc}") from None
    except Exception as exc:
        raise SweepRunError(f"run {task.run_id} (point {task.point_id}, replication "
                            f"{task.replication}, seed {task.seed}, {task.params}) failed: "
                            f"{type(exc).__name__}: {exc}") from exc
    with model:  # a worker runs many models: each is freed when its row is made
        df = model.hourly_dataframe()
        if probed is not None:
            df = pd.concat([df, probed.add_prefix("probe_")], axis=1)
        # Every run's hourly file has the policy columns (null without a policy): one schema.
        df = df.assign(**{k: np.nan for k in POLICY_KPIS if k not in df})
        row = {"run_id": task.run_id, "point_id": task.point_id,
               "replication": task.replication, "seed": task.seed, **task.params,
               **summary_kpis(model.summary()), **evaluate(task.outcomes, df)}
        hourly = _parquet_bytes(df) if task.hourly else None
    return RunOutput(task.run_id, _parquet_bytes(pd.DataFrame([row])), hourly)


def _run_probed(model: DIPIModel, probe: str) -> pd.DataFrame:
    """Step the model hour by hour, calling ``module:function`` after each hour."""
    import importlib

    module, _, name = probe.partition(":")
    fn = getattr(importlib.import_module(module), name)
    rows = []
    for _ in range(model.params.hours):
        model.step()
        rows.append(dict(fn(model)))
    return pd.DataFrame(rows)


def summary_kpis(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar KPIs of :meth:`DIPIModel.summary` (parameters and nested lists dropped)."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if key in _NOT_KPIS:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool):
            out[key] = value
        elif isinstance(value, int | float):
            out[key] = value
    return out


def ema_model_function(**params: Any) -> dict[str, float]:
    """Run one model with any scenario keys (``seed`` included) and return the outcomes
    in :data:`EMA_OUTCOMES`; hand it to ``ema_workbench.Model(name, function=...)``."""
    params.setdefault("agent_report_every", params.get("hours", cfg.param("hours").default))
    with DIPIModel(**params) as model:
        summary = model.run().summary()
    return {k: float(summary[k]) for k in EMA_OUTCOMES}


class SweepRunError(RuntimeError):
    """A run of the sweep raised; finished runs are kept and a rerun resumes."""


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


# --------------------------------------------------------------------------- the folder
class SweepFolder:
    """The output folder of one sweep: paths, the spec check, atomic writes."""

    def __init__(self, root: str | os.PathLike, n_runs: int) -> None:
        self.root = Path(root)
        self.width = max(6, len(str(max(n_runs - 1, 0))))

    def run_name(self, run_id: int) -> str:
        return f"{run_id:0{self.width}d}"

    def row_path(self, run_id: int) -> Path:
        return self.root / RUNS_DIR / f"{self.run_name(run_id)}.parquet"

    def hourly_path(self, run_id: int) -> Path:
        return self.root / HOURLY_DIR / f"run_id={self.run_name(run_id)}" / HOURLY_PART

    def open(self, spec: SweepSpec, tasks: list[RunTask], points: list[dict]) -> None:
        """Create the folder for this spec, or check that it holds this spec."""
        root = self.root
        meta = root / SPEC_FILE
        points_hash = hashlib.sha256(
            json.dumps(points, sort_keys=True, default=str).encode()).hexdigest()
        inputs = input_files_hash(tasks)
        if not meta.exists():
            if root.exists() and any(p.name != ".lock" for p in root.iterdir()):
                raise ConfigError(f"out folder '{root}': not empty and not a sweep folder "
                                  f"(no {SPEC_FILE}); choose a new or empty folder")
            root.mkdir(parents=True, exist_ok=True)
            write_json({"format": FORMAT, "spec_hash": spec.hash, "points_hash": points_hash,
                        "inputs_hash": inputs, "package_version": package_version(),
                        "source": spec.source, "n_points": len(points), "n_runs": len(tasks),
                        "spec": spec.normalized, "points": points}, meta)
            return
        try:
            stored = json.loads(meta.read_text(encoding="utf-8"))
            stored_hash = stored["spec_hash"]
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"out folder '{root}': {SPEC_FILE} cannot be read ({exc}); "
                              "choose a new folder") from None
        if stored_hash != spec.hash:
            diff = _spec_diff(stored.get("spec", {}), json.loads(json.dumps(
                spec.normalized, default=str)))
            raise ConfigError(
                f"out folder '{root}' holds a sweep of a different spec (hash "
                f"{stored_hash[:12]} there, {spec.hash[:12]} now"
                + (f"; {diff}" if diff else "") + "): resuming would mix their runs; "
                "use another --out folder, or delete this one to start over")
        if stored.get("package_version") != package_version():
            raise ConfigError(
                f"out folder '{root}': its runs were made by dipi-abm "
                f"{one_line(stored.get('package_version'), 40)}, this is {package_version()}; "
                "resuming would mix their results: use another --out folder")
        if "inputs_hash" not in stored:
            raise ConfigError(
                f"out folder '{root}': made by an earlier version that did not record its "
                "input files' hashes, so resuming could mix results: use another --out folder")
        if stored["inputs_hash"] != inputs:
            raise ConfigError(
                f"out folder '{root}': a grid file of the sweep has changed since its runs "
                "were made (content hash differs); resuming would mix their results: "
                "use another --out folder, or restore the file")
        if stored.get("points_hash") != points_hash:
            raise ConfigError(
                f"out folder '{root}': the same spec now gives different design points "
                f"than those stored in {SPEC_FILE} (a different SciPy or NumPy version?); "
                "use another --out folder")

    def finished(self, run_id: int) -> bool:
        """Whether the run's row is written and readable; a damaged one (a disk that
        filled, a copy cut short) is deleted, with its hourly KPIs, and the run redone."""
        import pyarrow.parquet as pq

        row = self.row_path(run_id)
        if not row.exists():
            return False
        try:
            pq.read_metadata(row)
            return True
        except (OSError, ValueError):  # pyarrow: ArrowInvalid is a ValueError
            row.unlink(missing_ok=True)
            self.hourly_path(run_id).unlink(missing_ok=True)
            return False

    def clean(self) -> None:
        """Delete temporary files left by an interrupted writer."""
        dirs = [self.root, self.root / RUNS_DIR]
        hourly = self.root / HOURLY_DIR
        if hourly.is_dir():
            dirs += [d for d in hourly.iterdir() if d.is_dir()]
        for d in dirs:
            if d.is_dir():
                for tmp in d.glob(".*.part"):
                    tmp.unlink(missing_ok=True)

    def write(self, out: RunOutput) -> None:
        """Hourly KPIs first, the row last: the row marks the run as finished."""
        if out.hourly is not None:
            atomic_write(self.hourly_path(out.run_id), _bytes_writer(out.hourly))
        atomic_write(self.row_path(out.run_id), _bytes_writer(out.row))

    def collect(self, tasks: list[RunTask]) -> pd.DataFrame:
        """Rebuild runs.parquet from the per-run rows, sorted by run_id."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [pq.read_table(self.row_path(t.run_id)) for t in tasks]
        if tables:
            table = pa.concat_tables(tables, promote_options="permissive")
            df = table.sort_by("run_id").to_pandas().reset_index(drop=True)
        else:
            df = pd.DataFrame()
        write_parquet(df, self.root / RUNS_FILE)
        return df

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold DIR/.lock: two sweeps writing one folder would undo each other's work."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"out folder '{self.root}': another sweep is writing to it "
                                  "(its .lock is held)") from None
            except OSError:  # a file system without locks (some NFS mounts): go on unlocked
                yield
                return
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def input_files_hash(tasks: list[RunTask]) -> str:
    """SHA-256 over the contents of every file the runs read (grid files), in name order:
    the spec names a file, this pins what was in it."""
    h = hashlib.sha256()
    files = sorted({str(t.params["grid"]) for t in tasks if "grid" in t.params}
                   - set(BUILTIN_GRIDS))
    for name in files:
        h.update(name.encode() + b"\0")
        with open(name, "rb") as fh:
            for chunk in iter(lambda: fh.read(2**20), b""):
                h.update(chunk)
    return h.hexdigest()


def _bytes_writer(data: bytes) -> Callable[[Path], None]:
    return lambda tmp: tmp.write_bytes(data)


def _spec_diff(old: dict, new: dict) -> str:
    parts = []
    for table in TABLES:
        a, b = old.get(table) or {}, new.get(table) or {}
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key, "(unset)") != b.get(key, "(unset)"):
                parts.append(f"[{table}] {key}: {a.get(key, '(unset)')!r} there, "
                             f"{b.get(key, '(unset)')!r} now")
    more = f" and {len(parts) - 3} more" if len(parts) > 3 else ""
    return "; ".join(parts[:3]) + more


# --------------------------------------------------------------------------- backends
def _serial(tasks: list[RunTask], workers: int, scheduler: Any) -> Iterator[RunOutput]:
    for task in tasks:
        yield run_one(task)


def _die_with_parent(parent_pid: int) -> None:
    """End this pool worker when the sweep's process dies, whatever killed it.

    Linux: the kernel sends SIGKILL on the parent's death (``PR_SET_PDEATHSIG``). Everywhere:
    a daemon thread polls ``os.getppid()`` (a dead parent's children are re-parented) and
    leaves at once. Without this a SIGKILLed sweep left its workers running for good.
    """
    import signal
    import sys
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(0.5)

    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="dipi-parent-watch", daemon=True).start()


def _worker_init(parent_pid: int | None = None) -> None:
    """Pool worker start-up: die with the parent; one BLAS/OpenMP thread per worker
    (workers are the parallelism)."""
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    for var in _THREAD_VARS:
        os.environ.setdefault(var, "1")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Spawned workers read these before importing NumPy; the caller's values win."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    for var in _THREAD_VARS:
        os.environ.setdefault(var, "1")
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _process_pool(tasks: list[RunTask], workers: int, scheduler: Any) -> Iterator[RunOutput]:
    """``workers`` runs at once: this process and ``workers - 1`` spawned pool workers.

    The calling process has everything imported already, so it starts at once and takes
    runs from the end of the list while the pool's workers start (an interpreter, the
    imports and the compiled kernels: about 1.4 s) and take runs from the front; with
    one-week runs of 1,000 parties (0.16 s each) that start-up was a tenth of a
    100-run sweep. A pool worker that dies ends the sweep (finished runs are kept)."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED
    from concurrent.futures import wait as futures_wait

    todo = deque(tasks)
    n_pool = min(workers, len(tasks)) - 1
    if n_pool < 1:
        yield from _serial(list(todo), 1, scheduler)
        return
    # spawn: a clean interpreter per worker, whatever threads the caller runs (as Mesa does)
    ctx = multiprocessing.get_context("spawn")
    with _single_threaded_children():
        pool = ProcessPoolExecutor(max_workers=n_pool, mp_context=ctx,
                                   initializer=_worker_init, initargs=(os.getpid(),))
        try:
            running: set = set()

            def feed() -> None:
                # Every pool worker busy, with one run queued behind it while many are left;
                # near the end none queued, so no one waits on a run another could take.
                limit = 2 * n_pool if len(todo) > 4 * n_pool else n_pool
                while todo and len(running) < limit:
                    running.add(pool.submit(run_one, todo.popleft()))

            def finished(block: bool) -> Iterator[RunOutput]:
                done, _ = futures_wait(running, timeout=None if block else 0,
                                       return_when=FIRST_COMPLETED)
                for fut in done:
                    running.discard(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        raise SweepRunError(
                            "a worker process died (out of memory, killed, or the calling "
                            "script lacks `if __name__ == '__main__':`; workers are spawned "
                            "and import it); finished runs are kept, rerun the same command "
                            "to resume") from None
                    yield result

            feed()
            while todo:
                yield from finished(block=False)
                feed()
                if todo:
                    yield run_one(todo.pop())  # this process's share, from the end
            while running:
                yield from finished(block=True)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        # Every run is in: the idle workers wind down (an interpreter's teardown, about
        # 0.4 s) while this process collects the results.
        pool.shutdown(wait=False)


def _dask(tasks: list[RunTask], workers: int, scheduler: Any) -> Iterator[RunOutput]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError("the Dask backend needs dask.distributed: pip install "
                          "'dipi-abm[dask]'") from None
    cluster = None
    if isinstance(scheduler, Client):
        client, own = scheduler, False
    elif scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise ConfigError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        own = True
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client, own = Client(cluster), True
    futures = []
    try:
        # Keys name the task's content: distinct sweeps never share a key on one cluster.
        futures = [client.submit(run_one, t, pure=False, key=f"dipi-run-{t.run_id}-"
                                 f"{hashlib.sha256(repr(t).encode()).hexdigest()[:16]}")
                   for t in tasks]
        for fut, result in as_completed(futures, with_results=True):
            fut.release()
            yield result
    finally:
        if futures:
            client.cancel(futures)
        if own:
            client.close()
        if cluster is not None:
            cluster.close()


#: Execution backends by name: ``(tasks, workers, scheduler) -> iterator of RunOutput``.
BACKENDS: dict[str, Callable[..., Iterator[RunOutput]]] = {"serial": _serial,
                                                           "processes": _process_pool,
                                                           "dask": _dask}


def _reach_scheduler(address: str, timeout_s: float = 5.0) -> None:
    """Refuse a Dask scheduler address that no server answers on within ``timeout_s``."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):  # inproc://, ucx://: Dask itself checks them
        return
    try:
        host, port = parts.hostname, parts.port or 8786
    except ValueError:
        host = None
    if not host:
        raise ConfigError(f"--scheduler {one_line(address, 80)}: must be tcp://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"--scheduler {one_line(address, 80)}: cannot connect "
                          f"({exc.strerror or exc})") from None


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_sweep(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike,
              out: str | os.PathLike, workers: int | None = None, scheduler: Any = None,
              use_dask: bool = False, progress: bool = True) -> pd.DataFrame:
    """Run every (point, replication) of ``spec`` not yet finished in ``out``.

    ``workers``: runs at once (default: every core): this process and ``workers - 1``
    spawned pool workers, or the processes of the Dask LocalCluster; 1 runs in this
    process only. ``scheduler``: a Dask scheduler address
    (``tcp://host:8786``) or a ``distributed.Client``; ``use_dask`` without one
    starts a LocalCluster. Returns ``out/runs.parquet`` as a DataFrame.
    """
    s = load_spec(spec)
    if workers is not None and (not _is_int(workers) or workers < 1):
        raise ConfigError(f"workers = {workers!r}: must be an integer >= 1")
    n_workers = default_workers() if workers is None else int(workers)
    points, tasks = _plan(s)  # every point validated before any file is touched
    folder = SweepFolder(out, len(tasks))
    if folder.root.exists() and not folder.root.is_dir():
        raise ConfigError(f"out folder '{folder.root}': is a file, expected a folder")
    if isinstance(scheduler, str):
        _reach_scheduler(scheduler)  # before the folder is made: an unreachable one fails fast
    if scheduler is not None or use_dask:
        backend = "dask"
    else:
        backend = "serial" if n_workers == 1 else "processes"

    from tqdm import tqdm

    with folder.lock():
        folder.open(s, tasks, points)
        folder.clean()
        todo = [t for t in tasks if not folder.finished(t.run_id)]
        hours = cfg.param("hours").default
        check_disk(sweep_disk_needs([{"hours": hours, **t.params} for t in todo],
                                    folder.root, s.hourly))
        if todo:
            # Present only for a complete sweep.
            (folder.root / RUNS_FILE).unlink(missing_ok=True)
            with tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="run",
                      desc="sweep", disable=not progress, dynamic_ncols=True) as bar, \
                    closing(BACKENDS[backend](todo, n_workers, scheduler)) as results:
                for result in results:
                    folder.write(result)
                    bar.update(1)
        return folder.collect(tasks)


# --------------------------------------------------------------------------- helpers
def _plain(value: Any) -> Any:
    """A dict spec as TOML would give it (tuples and arrays as lists, NumPy scalars as
    Python numbers), so that it checks and hashes like the same spec in a file."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer beyond the float range
        return False


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_)


def _did_you_mean(name: str, options: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _line_of(lines: dict[tuple[str, ...], int], table: str, key: str | None) -> int | None:
    if key is not None and (table, key) in lines:
        return lines[(table, key)]
    return lines.get((table,))
