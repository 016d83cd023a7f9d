"""Measured hourly profiles in place of the stochastic actual output (docs/profiles.md).

A profiles file (CSV, or Parquet by its suffix) has one row per hour with the columns
``hour`` (the weather's absolute hour: 0 is 00:00 of ``start_day_of_year``),
``solar_cf`` and ``wind_cf`` (capacity factors in [0, 1]) and optionally
``load_factor`` (the hour's load as a share of the file's peak, in [0, 1]). It must
cover every hour the run draws, ``start_hour`` to ``start_hour + hours - 1``, without
gaps.

:meth:`Profiles.apply` rewrites one :class:`~dipi_abm.physics.weather.HourDraw`:

* every solar unit (DPGCs and rooftop PV) and every wind unit delivers ``capacity x cf``;
  its forecast keeps the calibrated error the weather drew for it (forecast minus
  actual of the stochastic draw), added to the file's value and clipped to
  ``[0, capacity]``;
* with ``load_factor``, each user's load follows the file instead of its class's daily
  shape: the stochastic load divided by the class shape of the hour, times
  ``load_factor`` normalised to mean 1 over the file; the forecast is scaled alike, so
  its relative error is kept. Hydro and thermal stay as drawn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from dipi_abm.errors import ConfigError
from dipi_abm.physics.weather import SOLAR, WIND, HourDraw, load_shape

__all__ = ["PROFILE_COLUMNS", "Profiles"]

PROFILE_COLUMNS = ("hour", "solar_cf", "wind_cf")
"""Columns a profiles file must have; ``load_factor`` is optional."""


@dataclass(frozen=True)
class Profiles:
    """Hourly capacity factors (and load factor) indexed from ``first_hour``."""

    first_hour: int
    solar_cf: NDArray[np.float64]
    wind_cf: NDArray[np.float64]
    load_factor: NDArray[np.float64] | None = None  # normalised to mean 1

    @classmethod
    def read(cls, path: str | os.PathLike, first_hour: int, hours: int) -> Profiles:
        """Read and check a profiles file for a run of ``hours`` hours from ``first_hour``.

        Raises:
            ConfigError (one line, naming the file): no such file, unreadable, a missing
                column, a hour that is not an integer, repeated or missing hours, a NaN or
                a value outside [0, 1], or fewer hours than the run draws.
        """
        label = f"profiles file {str(path)!r}"
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{label}: no such file; give a CSV or Parquet file with columns "
                              f"{', '.join(PROFILE_COLUMNS)} (optional load_factor)")
        try:
            df = (pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq")
                  else pd.read_csv(p, comment="#"))
        except Exception as exc:  # any parse failure is a bad file
            msg = " ".join(str(exc).split())[:120]
            raise ConfigError(f"{label}: cannot be read ({type(exc).__name__}: {msg})") from None
        missing = [c for c in PROFILE_COLUMNS if c not in df.columns]
        if missing:
            raise ConfigError(f"{label}: missing column(s) {', '.join(missing)}; needs "
                              f"{', '.join(PROFILE_COLUMNS)} (optional load_factor)")
        hour = pd.to_numeric(df["hour"], errors="coerce").to_numpy(float)
        if df.empty or not np.isfinite(hour).all() or (hour != np.round(hour)).any():
            raise ConfigError(f"{label}: column hour must hold whole numbers (0 is 00:00 of "
                              "start_day_of_year)")
        order = np.argsort(hour, kind="stable")
        hour = hour[order].astype(np.int64)
        if (np.diff(hour) == 0).any():
            raise ConfigError(f"{label}: hour {hour[1:][np.diff(hour) == 0][0]} appears twice")
        gap = np.flatnonzero(np.diff(hour) > 1)
        if gap.size:
            a, b = hour[gap[0]] + 1, hour[gap[0] + 1] - 1
            raise ConfigError(f"{label}: hours {a}-{b} are missing; every hour must have a row")
        last = first_hour + hours - 1
        if hour[0] > first_hour or hour[-1] < last:
            raise ConfigError(f"{label}: covers hours {hour[0]}-{hour[-1]}, fewer than the "
                              f"run's {first_hour}-{last} (start_hour, hours)")
        cols = [c for c in (*PROFILE_COLUMNS[1:], "load_factor") if c in df.columns]
        values = {}
        for c in cols:
            v = pd.to_numeric(df[c], errors="coerce").to_numpy(float)[order]
            bad = np.flatnonzero(~((v >= 0.0) & (v <= 1.0)))  # NaN fails both
            if bad.size:
                raise ConfigError(f"{label}: {c} = {v[bad[0]]} at hour {hour[bad[0]]}; "
                                  "values must be numbers in [0, 1]")
            values[c] = v[first_hour - hour[0]:]
        lf = values.get("load_factor")
        if lf is not None:
            if not lf.mean() > 0:
                raise ConfigError(f"{label}: load_factor is 0 everywhere; give the hour's "
                                  "load as a share of its peak")
            lf = lf / lf.mean()
        return cls(first_hour, values["solar_cf"], values["wind_cf"], lf)

    def apply(self, draw: HourDraw, tech: NDArray[np.int8], capacity_kw: NDArray[np.float64],
              load_class: NDArray[np.int8]) -> HourDraw:
        """The draw with the file's actual output (and load) for its hour (module docstring)."""
        k = draw.hour - self.first_hour
        cf = np.where(tech == SOLAR, self.solar_cf[k], np.where(tech == WIND, self.wind_cf[k],
                                                                 np.nan))
        measured = ~np.isnan(cf)
        actual = np.where(measured, capacity_kw * np.nan_to_num(cf), draw.gen_actual_kw)
        error = draw.gen_forecast_kw - draw.gen_actual_kw
        forecast = np.where(measured, np.clip(actual + error, 0.0, capacity_kw),
                            draw.gen_forecast_kw)
        out = replace(draw, gen_actual_kw=actual, gen_forecast_kw=forecast)
        if self.load_factor is None:
            return out
        shape = load_shape(load_class, draw.hour_of_day)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(shape > 0, self.load_factor[k] / shape, 0.0)
        return replace(out, load_actual_kw=draw.load_actual_kw * scale,
                       load_forecast_kw=draw.load_forecast_kw * scale)
