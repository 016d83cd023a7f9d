"""Outcomes an analyst defines over a run's hourly KPIs (a sweep spec's ``[outcomes]``).

::

    [outcomes]
    late_breach_rate = { kpi = "breach_rate", last_hours = 168, agg = "mean" }
    cost_per_kwh = { ratio = ["user_cost_yuan", "load_kwh"] }
    first_day_peak = { kpi = "grid_purchase_kwh", first_days = 1, agg = "max" }

An outcome is either ``kpi`` with an ``agg`` (:data:`AGGREGATIONS`, default ``mean``),
or ``ratio = [num, den]``: sum(num) / sum(den) over the window (NaN where the
denominator sums to 0). The window is the whole run unless one of ``first_hours``,
``last_hours``, ``first_days``, ``last_days`` (a positive integer) cuts it. The KPIs
are the hourly columns of model.parquet (``dipi-abm keys`` documents none of them;
docs/outputs.md lists them) and a probe's ``probe_*`` columns.

Each outcome becomes a column of ``runs.parquet`` (computed in the worker from the
run's hourly KPIs, also with ``hourly = false``) and a KPI of ``dipi-abm report``.
The experiment scripts define their metrics with the same :class:`Outcome`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..hour import HOURLY_KPIS, POLICY_KPIS

#: Aggregations of one KPI over the window.
AGGREGATIONS = ("mean", "sum", "max", "min", "median", "std", "first", "last")
#: Window keys: (which end, hours per unit).
WINDOWS = {"first_hours": ("first", 1), "last_hours": ("last", 1),
           "first_days": ("first", 24), "last_days": ("last", 24)}
#: The hourly columns an outcome may read (a probe adds ``probe_*``).
HOURLY_COLUMNS = tuple(dict.fromkeys(("hour", "hour_of_day", *HOURLY_KPIS, *POLICY_KPIS)))
_KEYS = ("kpi", "agg", "ratio", *WINDOWS)


@dataclass(frozen=True)
class Outcome:
    """One scalar of a run from its hourly KPIs: ``agg`` of ``kpi``, or the ratio of the
    sums of ``ratio[0]`` and ``ratio[1]``, over the first or last ``hours`` (all if None)."""

    name: str
    kpi: str | None = None
    agg: str = "mean"
    ratio: tuple[str, str] | None = None
    end: str = "last"
    hours: int | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return self.ratio if self.ratio is not None else (self.kpi,)

    def of(self, hourly: pd.DataFrame, by: Sequence[str] = ()) -> Any:
        """The outcome of one run's hourly frame (a float), or per group of ``by``
        columns (a Series indexed by them); rows in hour order within each group."""
        cols = list(self.columns)
        missing = [c for c in cols if c not in hourly.columns]
        if missing:  # a KPI this run does not report (a policy KPI without a policy)
            hourly = hourly.assign(**{c: np.nan for c in missing})
        keys = list(by) or [np.zeros(len(hourly), np.int8)]  # no groups: the whole run
        part = hourly
        if self.hours is not None:
            g = hourly.groupby(keys, sort=False)
            part = g.head(self.hours) if self.end == "first" else g.tail(self.hours)
            keys = list(by) or [np.zeros(len(part), np.int8)]
        g = part.groupby(keys, sort=False)
        if self.ratio is None:
            out = g[self.kpi].agg(self.agg)
        else:
            s = g[cols].sum(min_count=1)
            num, den = s[self.ratio[0]], s[self.ratio[1]]
            out = num / den.where(den != 0)
        return out if by else float(out.iloc[0])

    def describe(self) -> str:
        """What the outcome is, in words (for reports)."""
        what = (f"sum({self.ratio[0]}) / sum({self.ratio[1]})" if self.ratio
                else f"{self.agg} of {self.kpi}")
        return what + ("" if self.hours is None else f", {self.end} {self.hours} h")


def parse_outcomes(raw: Any, err: Callable[[str, str | None, str], ConfigError],
                   taken: Sequence[str] = (), probe: bool = False) -> tuple[Outcome, ...]:
    """Check an ``[outcomes]`` table; ``err(table, key, message)`` builds the error,
    ``taken`` are names the outcomes may not reuse (the spec's keys)."""
    if not isinstance(raw, Mapping):
        raise err("outcomes", None, f"must be a table, got {raw!r}")
    reserved = set(HOURLY_COLUMNS) | set(taken) | {"run_id", "point_id", "replication", "seed"}
    return tuple(_outcome(name, spec, lambda m, n=name: err("outcomes", n, m), reserved, probe)
                 for name, spec in raw.items())


def _outcome(name: str, spec: Any, err: Callable[[str], ConfigError], reserved: set[str],
             probe: bool) -> Outcome:
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise err("an outcome name is letters, digits and _ (not starting with a digit)")
    if name in reserved:
        raise err("is already a column of runs.parquet (a KPI or a key); choose another name")
    if not isinstance(spec, Mapping):
        raise err(f"{spec!r}: must be a table such as {{ kpi = \"breach_rate\", "
                  "last_hours = 168, agg = \"mean\" } or { ratio = [\"user_cost_yuan\", "
                  "\"load_kwh\"] }")
    unknown = [k for k in spec if k not in _KEYS]
    if unknown:
        raise err(f"unknown key {unknown[0]!r}; an outcome takes {', '.join(_KEYS)}")

    def column(value: Any, what: str) -> str:
        if isinstance(value, str) and (value in HOURLY_COLUMNS
                                       or (probe and value.startswith("probe_"))):
            return value
        raise err(f"{what} = {value!r}: not an hourly KPI; one of "
                  f"{', '.join(HOURLY_COLUMNS[2:])}" + (", probe_*" if probe else ""))

    if ("kpi" in spec) == ("ratio" in spec):
        raise err("give either kpi (with agg) or ratio = [numerator, denominator]")
    kw: dict[str, Any] = {}
    if "ratio" in spec:
        r = spec["ratio"]
        if not (isinstance(r, list | tuple) and len(r) == 2):
            raise err(f"ratio = {r!r}: must be [numerator, denominator], two hourly KPIs")
        if "agg" in spec:
            raise err("a ratio is sum(numerator) / sum(denominator) over the window; agg is "
                      "for kpi")
        kw["ratio"] = (column(r[0], "ratio"), column(r[1], "ratio"))
    else:
        kw["kpi"] = column(spec["kpi"], "kpi")
        agg = spec.get("agg", "mean")
        if agg not in AGGREGATIONS:
            raise err(f"agg = {agg!r}: must be one of {', '.join(AGGREGATIONS)}")
        kw["agg"] = agg
    windows = [k for k in WINDOWS if k in spec]
    if len(windows) > 1:
        raise err(f"{' and '.join(windows)}: give at most one window")
    if windows:
        n = spec[windows[0]]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise err(f"{windows[0]} = {n!r}: must be an integer >= 1")
        end, unit = WINDOWS[windows[0]]
        kw.update(end=end, hours=n * unit)
    return Outcome(name, **kw)


def evaluate(outcomes: Sequence[Outcome], hourly: pd.DataFrame) -> dict[str, float]:
    """Every outcome of one run's hourly KPIs."""
    return {o.name: o.of(hourly) for o in outcomes}
