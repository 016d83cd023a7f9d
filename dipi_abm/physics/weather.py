"""Stochastic weather, generator output, load and forecasts, hour by hour (docs/model.md §3).

One :class:`Weather` owns the hourly random state of every trading party in
columnar form (one row per party, numpy arrays) and, on each :meth:`Weather.step`,
draws the *actual* output and load of the next delivery hour and the *forecast*
each party made of it ``forecast_lead_h`` hours ahead ([DIPI]: the market for
hour h clears at h − 2).

- **Solar**: capacity × performance ratio × clear-sky shape (solar geometry,
  Haurwitz clear-sky model) × clearness index. The clearness index is a bounded,
  persistent AR(1): a unit-variance Gaussian AR(1) made of a regional part shared
  by all units and a unit part, mapped to ``clip(mean + sd·x, 0.05, 1)``.
- **Wind**: a latent unit-variance Gaussian AR(1) (regional + unit part) mapped
  to a Weibull wind speed by the probability integral transform, then through a
  cubic turbine power curve.
- **Hydro / thermal**: capacity × availability (hydro inflow) or dispatch level
  (thermal) × 1 if the unit is up; each unit has a two-state Markov forced outage.
- **Load**: mean load × daily class shape × multiplicative AR(1) noise (≥ 0).
- **Forecasts**: the actual value is drawn first; the forecast is
  actual + error, the error a persistent, unit-specific AR(1) whose SD grows with
  lead time along :func:`forecast_sd`. A dispatchable unit forecasts from the
  outage state it knew at forecast time, so a forced outage that starts within
  the lead time is a surprise (the seller-breach mechanism of docs/model.md §3).

All randomness comes from the ``numpy.random.SeedSequence`` handed in; one child
stream per component (solar, wind, outages, load, forecast errors), derived
without changing the seed, so one seed always replays the same weather.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from scipy.special import ndtr

from dipi_abm.errors import ConfigError

TECHNOLOGIES = ("solar", "wind", "hydro", "thermal")
"""Generator technology names; the index is the int8 tech code used in arrays (−1: none)."""

LOAD_CLASSES = ("residential", "commercial", "industrial", "ev")
"""Load class names; the index is the int8 load-class code used in arrays (−1: no load)."""

SOLAR, WIND, HYDRO, THERMAL = range(len(TECHNOLOGIES))
RESIDENTIAL, COMMERCIAL, INDUSTRIAL, EV = range(len(LOAD_CLASSES))

HOURS_PER_DAY = 24
DAYS_PER_YEAR = 365

# The clearness index is bounded: heavy overcast still lets a few percent of the
# clear-sky irradiance through, and hourly means above clear sky are rare.
CLEARNESS_MIN = 0.05
CLEARNESS_MAX = 1.0

# Child streams live under this tag in the seed's spawn key, so they cannot
# collide with children the caller itself spawns from the same seed.
_STREAM_TAG = 0x57454154  # "WEAT"
_STREAMS = ("solar", "wind", "outage", "load", "forecast")


_SHARE = {"low": 0.0, "high": 1.0}
_PERSIST = {"low": 0.0, "high": 1.0, "high_open": True}
_SPEED = {"low": 0.0, "high": 200.0}  # m/s
_SPEED_POS = {**_SPEED, "low_open": True}
_SD = {"low": 0.0, "high": 10.0}  # a spread or forecast error, as a share
_HOURS = {"low": 0.0, "high": 8760.0}


def _key(default: float, unit: str, doc: str, **bounds: float | bool) -> Any:
    """A :class:`WeatherParams` field that is also a scenario key: its unit, meaning and
    allowed range live here once; ``dipi_abm.config.WEATHER_PARAMS`` is built from them."""
    return field(default=default, metadata={"unit": unit, "doc": doc, **bounds})


@dataclass(frozen=True)
class WeatherParams:
    """Parameters of the weather, output, load and forecast processes (docs/model.md §3).

    Every field is a scenario key (the README's key table and ``dipi-abm run
    --help-keys`` show its unit, range and meaning from the metadata below). Why
    the defaults are what they are:

    - Site: Shanghai (31.2° N), eastern China, the setting of both source papers;
      the run starts on the June solstice, a long PV day.
    - Solar: ``clearness_mean`` 0.65 (Shanghai's observed mean clearness is about
      0.56, ≈1,300 kWh/m² a year against ≈2,300 clear-sky; 0.65 also folds in the
      ≈10 % gain of a south-tilted panel and the loss to clipping at 1) gives a PV
      capacity factor of ≈13.5 % over a year (target 12–16 %; measured 13.2–13.9 %
      over 16 seeded years); performance ratio 0.8 (IEC 61724: 0.75–0.85); hourly
      clear-sky indices in humid subtropical climates spread with SD ≈ 0.25–0.3.
    - Wind: Weibull shape 2 (onshore), scale 7.35 m/s (mean ≈ 6.5 m/s) for a
      capacity factor of ≈25 % (good Chinese coastal onshore sites; measured 25.0 %
      over 16 seeded years, single years 21–28 %: the shared regional factor gives
      the observed ≈ ±10 % interannual variability); a generic 2–3 MW turbine.
      With persistence 0.95 the hour-to-hour variability of one farm's output is
      that of published single-farm persistence errors: NMAE ≈ 6 % of capacity an
      hour ahead, ≈ 25 % a day ahead (``experiments/forecast_skill.py``).
    - Hydro/thermal: Chinese run-of-river hydro runs at a capacity factor ≈ 0.5;
      a running thermal unit at its dispatch level; outages every ≈3 weeks of
      running, repaired in ≈20 h (availability ≈ 96 %).
    - Forecasts: the error SD at lead L is ``sd · √(1 − exp(−L/T))`` (see
      :func:`forecast_sd`), calibrated so that the model's forecasts beat
      persistence in its own weather by what published forecasts do: a few
      percent to ≈15 % an hour ahead, ≈50 % (wind) and ≈20 % (solar) a day ahead,
      with day-ahead errors of ≈12 % of capacity for a wind farm (literature
      10–15 %) and ≈10 % RMSE for a PV plant (10–14 %). The README's forecast
      section has the measured table and the sources. The solar error scales with
      the hour's clear-sky shape (a night forecast is exact); clipping forecasts to
      [0, capacity] trims the wind error at calm and rated hours. Errors persist
      from hour to hour with correlation exp(−1/T) ≈ 0.85: they come in runs.
    - A dispatchable unit forecasts from the outage state it knew at forecast
      time, so a forced outage within the lead time is a surprise.
    """

    latitude_deg: float = _key(31.2, "deg", "Latitude for solar geometry (31.2: Shanghai).",
                               low=-90.0, high=90.0)
    start_day_of_year: int = _key(172, "day", "Day of year of the first step (172: 21 June).",
                                  low=1, high=DAYS_PER_YEAR)
    solar_performance_ratio: float = _key(0.8, "-", "PV system losses (inverter, soiling, "
                                          "heat).", **_SHARE)
    clearness_mean: float = _key(0.65, "-", "Mean clearness index (calibrated: PV capacity "
                                 "factor about 13.5 %).", **_SHARE)
    clearness_persistence: float = _key(0.9, "-", "Hour-to-hour AR(1) coefficient of "
                                        "clearness.", **_PERSIST)
    clearness_sd: float = _key(0.25, "-", "Spread of the hourly clearness index.", **_SD)
    solar_regional_share: float = _key(0.7, "-", "Share of clearness variance common to all "
                                       "PV units (regional weather).", **_SHARE)
    wind_weibull_shape: float = _key(2.0, "-", "Weibull shape k of hourly wind speed.",
                                     low=0.0, high=100.0, low_open=True)
    wind_weibull_scale_ms: float = _key(7.35, "m/s", "Weibull scale (calibrated: wind "
                                        "capacity factor about 25 %).", **_SPEED_POS)
    wind_persistence: float = _key(0.95, "-", "Hour-to-hour AR(1) coefficient of the latent "
                                   "wind-speed process.", **_PERSIST)
    wind_regional_share: float = _key(0.8, "-", "Share of wind variance common to all units.",
                                      **_SHARE)
    wind_cut_in_ms: float = _key(3.0, "m/s", "Turbine cut-in speed.", **_SPEED)
    wind_rated_ms: float = _key(12.0, "m/s", "Turbine rated speed.", **_SPEED_POS)
    wind_cut_out_ms: float = _key(25.0, "m/s", "Turbine cut-out speed.", **_SPEED_POS)
    hydro_availability: float = _key(0.55, "-", "Mean share of hydro capacity the inflow "
                                     "allows.", **_SHARE)
    thermal_dispatch: float = _key(0.85, "-", "Share of thermal capacity offered when up.",
                                   **_SHARE)
    outage_rate_per_h: float = _key(0.002, "1/h", "Forced-outage rate of hydro and thermal "
                                    "units (up to down).", **_SHARE)
    repair_rate_per_h: float = _key(0.05, "1/h", "Repair rate (down to up).", **_SHARE)
    load_noise_sd: float = _key(0.08, "-", "Multiplicative hourly load noise.", **_SD)
    load_noise_persistence: float = _key(0.7, "-", "AR(1) coefficient of the load noise.",
                                         **_PERSIST)
    forecast_lead_h: float = _key(2.0, "h", "Lead time of the forecasts ([DIPI]: orders "
                                  "close 2 h ahead of delivery).", **_HOURS)
    forecast_sd_solar: float = _key(0.20, "share of capacity", "Day-ahead solar forecast "
                                    "error SD at clear-sky peak; at lead L it is "
                                    "sd sqrt(1 - exp(-L/T)).", **_SD)
    forecast_sd_wind: float = _key(0.22, "share of capacity", "Day-ahead wind forecast error "
                                   "SD (NMAE about 12 % after clipping); 2 h ahead about "
                                   "half of it.", **_SD)
    forecast_sd_load: float = _key(0.10, "share of load", "Day-ahead load forecast error SD "
                                   "(MAPE about 8 %; 3 % an hour ahead).", **_SD)
    forecast_sd_dispatchable: float = _key(0.01, "share of capacity", "Forecast error of "
                                           "hydro and thermal units.", **_SD)
    forecast_timescale_h: float = _key(6.0, "h", "Time scale T of the forecast-error growth "
                                       "with lead time (and of its hour-to-hour "
                                       "persistence).", **_HOURS, low_open=True)

    def __post_init__(self) -> None:
        for f in fields(self):
            _require(f.name, getattr(self, f.name), f.metadata)
        if not 0.0 <= self.wind_cut_in_ms < self.wind_rated_ms < self.wind_cut_out_ms:
            raise ConfigError(
                "wind speeds must satisfy 0 <= wind_cut_in_ms < wind_rated_ms < wind_cut_out_ms,"
                f" got {self.wind_cut_in_ms}, {self.wind_rated_ms}, {self.wind_cut_out_ms}"
            )
        if self.outage_rate_per_h + self.repair_rate_per_h <= 0.0:
            raise ConfigError("outage_rate_per_h and repair_rate_per_h cannot both be 0")


def _require(name: str, value: float, bounds: Mapping[str, Any]) -> None:
    low, high = bounds.get("low"), bounds.get("high")
    low_open, high_open = bounds.get("low_open", False), bounds.get("high_open", False)
    if (low is not None and (value < low or (low_open and value == low))) or (
        high is not None and (value > high or (high_open and value == high))
    ) or value != value:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ConfigError(f"{name} must lie in {left}{lo}, {hi}{right}, got {value}")


@dataclass(frozen=True, slots=True)
class HourDraw:
    """One delivery hour: actual and forecast output and load of every party.

    Arrays are float64 over all parties (row = party), in kW, which equals kWh
    for the one-hour period; a party without a generator (or without a load) has
    0 there. A prosumer row has both a load and a (solar) generator.
    """

    hour: int
    """Absolute hour index drawn (hours since 00:00 of ``start_day_of_year``)."""
    hour_of_day: int
    """0..23, local solar time at the start of the hour."""
    day_of_year: int
    """1..365."""
    clear_sky: float
    """Normalised clear-sky irradiance at the middle of the hour (:func:`solar_clear_sky`)."""
    clearness_regional: float
    """Regional clearness index (the value of a unit with no own-site component)."""
    wind_speed_regional_ms: float
    """Regional hub-height wind speed, m/s (a unit with no own-site component)."""
    gen_forecast_kw: np.ndarray
    gen_actual_kw: np.ndarray
    load_forecast_kw: np.ndarray
    load_actual_kw: np.ndarray


def forecast_sd(lead_h: float, sd_long: float, timescale_h: float) -> float:
    """Forecast-error SD at lead ``lead_h``: ``sd_long · √(1 − exp(−lead_h / timescale_h))``.

    The error of predicting a stationary process whose memory decays over
    ``timescale_h``: its variance grows as 1 − e^(−L/T), so the SD rises steeply
    over the first hours (an hour ahead is already well short of perfect, as
    published forecasts are) and saturates at ``sd_long`` a day ahead (docs/model.md
    §3: an hour ahead is much better than a day ahead). Zero for a forecast of
    the present. Units are those of ``sd_long``.
    """
    if lead_h < 0.0:
        raise ConfigError(f"lead_h must be >= 0, got {lead_h}")
    if timescale_h <= 0.0:
        raise ConfigError(f"timescale_h must be > 0, got {timescale_h}")
    return float(sd_long * math.sqrt(-math.expm1(-lead_h / timescale_h)))


def solar_clear_sky(hour_of_day, day_of_year, latitude_deg: float):
    """Clear-sky global horizontal irradiance normalised to 1 kW/m² (docs/model.md §3).

    ``hour_of_day`` is local solar time in hours (a float: 12.5 is half past
    noon); Cooper's declination ``δ = 23.45° · sin(360° · (284 + n) / 365)``, hour
    angle ``ω = 15° · (t − 12)``, ``cos θz = sin φ sin δ + cos φ cos δ cos ω``, and
    the Haurwitz (1945) clear-sky model ``GHI = 1.098 cos θz · exp(−0.057 / cos θz)``
    kW/m². Zero when the sun is below the horizon. Scalars give a float;
    arrays broadcast.
    """
    decl = np.radians(23.45) * np.sin(2.0 * np.pi * (284.0 + np.asarray(day_of_year)) / 365.0)
    omega = np.radians(15.0 * (np.asarray(hour_of_day, dtype=float) - 12.0))
    lat = math.radians(latitude_deg)
    cos_z = math.sin(lat) * np.sin(decl) + math.cos(lat) * np.cos(decl) * np.cos(omega)
    up = cos_z > 0.0
    safe = np.where(up, cos_z, 1.0)
    ghi = np.where(up, 1.098 * safe * np.exp(-0.057 / safe), 0.0)
    return float(ghi) if ghi.ndim == 0 else ghi


def wind_power_curve(speed_ms, cut_in: float, rated: float, cut_out: float) -> np.ndarray:
    """Turbine output as a share of capacity at hub-height speed ``speed_ms`` (m/s).

    ``(v³ − v_in³) / (v_rated³ − v_in³)`` for cut-in ≤ v < rated, 1 for
    rated ≤ v < cut-out (storm shutdown at and above cut-out), 0 otherwise.
    """
    v = np.asarray(speed_ms, dtype=float)
    cubic = (v**3 - cut_in**3) / (rated**3 - cut_in**3)
    out = np.where(v < rated, cubic, 1.0)
    return np.where((v >= cut_in) & (v < cut_out), out, 0.0)


# Hourly shapes (hour 0 = 00:00–01:00), normalised to mean 1 below. Residential:
# morning and larger evening peak; commercial: office/shop hours; industrial:
# shift work, nearly flat; EV: home charging after the evening commute.
_RAW_LOAD_SHAPES = np.array(
    [
        [0.55, 0.48, 0.45, 0.44, 0.45, 0.55, 0.85, 1.15, 1.05, 0.85, 0.80, 0.90,
         0.95, 0.85, 0.80, 0.82, 0.95, 1.20, 1.55, 1.75, 1.80, 1.60, 1.20, 0.80],
        [0.45, 0.42, 0.40, 0.40, 0.40, 0.45, 0.55, 0.80, 1.20, 1.45, 1.55, 1.55,
         1.45, 1.50, 1.55, 1.55, 1.50, 1.40, 1.20, 1.00, 0.85, 0.70, 0.55, 0.50],
        [0.90, 0.88, 0.87, 0.87, 0.88, 0.90, 0.95, 1.02, 1.08, 1.10, 1.10, 1.08,
         1.02, 1.06, 1.10, 1.10, 1.08, 1.04, 1.00, 0.98, 0.97, 0.95, 0.93, 0.92],
        [0.75, 0.55, 0.40, 0.30, 0.25, 0.25, 0.30, 0.40, 0.50, 0.55, 0.60, 0.65,
         0.70, 0.65, 0.60, 0.65, 0.80, 1.20, 1.90, 2.40, 2.60, 2.30, 1.80, 1.20],
    ]
)  # fmt: skip
# One extra row of zeros, so that load-class code −1 (no load) indexes it.
_LOAD_SHAPE_TABLE = np.vstack(
    [_RAW_LOAD_SHAPES / _RAW_LOAD_SHAPES.mean(axis=1, keepdims=True), np.zeros(HOURS_PER_DAY)]
)
_LOAD_SHAPE_TABLE.setflags(write=False)


def load_shape(load_class_codes, hour_of_day) -> np.ndarray:
    """Daily load shape (mean 1 over the day) per load class code at ``hour_of_day``.

    Codes index :data:`LOAD_CLASSES`; code −1 (no load) gives 0. Arguments
    broadcast; ``hour_of_day`` is taken modulo 24.
    """
    codes = np.asarray(load_class_codes, dtype=np.intp)
    if codes.size and (codes.min() < -1 or codes.max() >= len(LOAD_CLASSES)):
        raise ConfigError(f"load class codes must lie in -1..{len(LOAD_CLASSES) - 1}")
    return _LOAD_SHAPE_TABLE[codes, np.asarray(hour_of_day, dtype=np.intp) % HOURS_PER_DAY]


def _ar1_advance(state: np.ndarray, phi: float, shocks: np.ndarray) -> None:
    """Advance a unit-variance Gaussian AR(1) in place with standard-normal shocks."""
    state *= phi
    state += math.sqrt(1.0 - phi * phi) * shocks


class Weather:
    """Hourly actual and forecast output and load of every party (docs/model.md §3).

    Parameters are per-party arrays (one row per trading party): ``tech`` (int8
    code into :data:`TECHNOLOGIES`, −1 without a generator), ``capacity_kw``
    (0 without one; a prosumer's rooftop PV has ``tech`` solar), ``load_class``
    (int8 code into :data:`LOAD_CLASSES`, −1 without a load, as for a DPGC) and
    ``mean_load_kw`` (0 without a load). ``start_hour`` is the absolute hour the
    first :meth:`step` draws (hour 0 is 00:00 of ``params.start_day_of_year``).
    """

    def __init__(self, *, tech: np.ndarray, capacity_kw: np.ndarray, load_class: np.ndarray,
                 mean_load_kw: np.ndarray, params: WeatherParams, seed: np.random.SeedSequence,
                 start_hour: int = 0) -> None:
        tech = np.asarray(tech)
        capacity_kw = np.asarray(capacity_kw, dtype=np.float64)
        load_class = np.asarray(load_class)
        mean_load_kw = np.asarray(mean_load_kw, dtype=np.float64)
        _check_party_arrays(tech, capacity_kw, load_class, mean_load_kw)
        if start_hour < 0:
            raise ConfigError(f"start_hour must be >= 0, got {start_hour}")

        p = params
        self.params = p
        self.n_parties = int(tech.shape[0])
        self._hour = int(start_hour)
        rngs = {
            name: np.random.Generator(
                np.random.PCG64(
                    np.random.SeedSequence(entropy=seed.entropy,
                                           spawn_key=(*seed.spawn_key, _STREAM_TAG, k),
                                           pool_size=seed.pool_size)
                )
            )
            for k, name in enumerate(_STREAMS)
        }
        self._rng_solar = rngs["solar"]
        self._rng_wind = rngs["wind"]
        self._rng_outage = rngs["outage"]
        self._rng_load = rngs["load"]
        self._rng_forecast = rngs["forecast"]

        # Generator rows, grouped by technology; every per-generator array below
        # follows the order of self._gen_idx (solar, wind, hydro, thermal).
        self._solar_idx = np.flatnonzero(tech == SOLAR)
        self._wind_idx = np.flatnonzero(tech == WIND)
        disp_idx = np.flatnonzero((tech == HYDRO) | (tech == THERMAL))
        self._disp_idx = disp_idx
        self._gen_idx = np.concatenate([self._solar_idx, self._wind_idx, disp_idx])
        n_solar, n_wind, n_disp = self._solar_idx.size, self._wind_idx.size, disp_idx.size
        self._n_solar, self._n_wind = n_solar, n_wind
        self._gen_cap_kw = capacity_kw[self._gen_idx]
        self._solar_cap_kw = capacity_kw[self._solar_idx]
        self._wind_cap_kw = capacity_kw[self._wind_idx]
        level = np.where(tech[disp_idx] == HYDRO, p.hydro_availability, p.thermal_dispatch)
        self._disp_level_kw = capacity_kw[disp_idx] * level

        # Latent AR(1) states, drawn from their stationary N(0, 1) law.
        self._solar_regional = float(self._rng_solar.standard_normal())
        self._solar_unit = self._rng_solar.standard_normal(n_solar)
        self._wind_regional = float(self._rng_wind.standard_normal())
        self._wind_unit = self._rng_wind.standard_normal(n_wind)
        availability = p.repair_rate_per_h / (p.outage_rate_per_h + p.repair_rate_per_h)
        up = self._rng_outage.random(n_disp) < availability
        # The forecast of hour h was made at h − lead, from the outage state known
        # then; keep the last `lag` states (a ring buffer indexed by hour).
        self._outage_lag = max(0, round(p.forecast_lead_h))
        self._up_history = np.tile(up, (self._outage_lag + 1, 1))

        self._load_idx = np.flatnonzero(load_class >= 0)
        n_load = self._load_idx.size
        # Shaped mean load per hour of day: (24, n_load), read one row per step.
        self._shaped_load_kw = (
            _LOAD_SHAPE_TABLE[load_class[self._load_idx].astype(np.intp)].T
            * mean_load_kw[self._load_idx]
        )
        self._load_noise = self._rng_load.standard_normal(n_load)

        # Forecast errors: unit-specific AR(1)s whose hour-to-hour persistence is
        # exp(−1/timescale), scaled to the SD at the lead time.
        lead, tau = p.forecast_lead_h, p.forecast_timescale_h
        self._err_phi = math.exp(-1.0 / tau)
        sd_by_gen = np.concatenate(
            [np.full(n_solar, forecast_sd(lead, p.forecast_sd_solar, tau)),
             np.full(n_wind, forecast_sd(lead, p.forecast_sd_wind, tau)),
             np.full(n_disp, forecast_sd(lead, p.forecast_sd_dispatchable, tau))]
        )
        self._gen_err_sd_kw = sd_by_gen * self._gen_cap_kw
        self._load_err_sd = forecast_sd(lead, p.forecast_sd_load, tau)
        self._gen_err = self._rng_forecast.standard_normal(self._gen_idx.size)
        self._load_err = self._rng_forecast.standard_normal(n_load)

        # Constants of the hourly path.
        self._solar_sqrt_regional = math.sqrt(p.solar_regional_share)
        self._solar_sqrt_unit = math.sqrt(1.0 - p.solar_regional_share)
        self._wind_sqrt_regional = math.sqrt(p.wind_regional_share)
        self._wind_sqrt_unit = math.sqrt(1.0 - p.wind_regional_share)
        self._inv_weibull_shape = 1.0 / p.wind_weibull_shape

    @property
    def hour(self) -> int:
        """Absolute hour index the next :meth:`step` will draw."""
        return self._hour

    def step(self) -> HourDraw:
        """Draw the actual and forecast output and load of the next delivery hour."""
        p = self.params
        h = self._hour
        hour_of_day = h % HOURS_PER_DAY
        day_of_year = (p.start_day_of_year - 1 + h // HOURS_PER_DAY) % DAYS_PER_YEAR + 1
        # Evaluated at mid-hour: the hour's energy follows the sun's mean height.
        clear_sky = solar_clear_sky(hour_of_day + 0.5, day_of_year, p.latitude_deg)

        n = self.n_parties
        gen_actual = np.zeros(n)
        gen_forecast = np.zeros(n)
        load_actual = np.zeros(n)
        load_forecast = np.zeros(n)

        # Solar: bounded clearness from a regional + unit Gaussian AR(1).
        shocks = self._rng_solar.standard_normal(self._n_solar + 1)
        phi = p.clearness_persistence
        self._solar_regional = phi * self._solar_regional + math.sqrt(1.0 - phi * phi) * float(
            shocks[0]
        )
        _ar1_advance(self._solar_unit, phi, shocks[1:])
        latent = self._solar_sqrt_unit * self._solar_unit
        latent += self._solar_sqrt_regional * self._solar_regional
        clearness = np.clip(p.clearness_mean + p.clearness_sd * latent, CLEARNESS_MIN,
                            CLEARNESS_MAX)
        clearness_regional = min(
            max(p.clearness_mean + p.clearness_sd * self._solar_regional, CLEARNESS_MIN),
            CLEARNESS_MAX,
        )
        solar_kw = clearness
        solar_kw *= p.solar_performance_ratio * clear_sky
        np.minimum(solar_kw, 1.0, out=solar_kw)
        solar_kw *= self._solar_cap_kw

        # Wind: Gaussian AR(1) → uniform → Weibull speed → power curve.
        shocks = self._rng_wind.standard_normal(self._n_wind + 1)
        phi = p.wind_persistence
        self._wind_regional = phi * self._wind_regional + math.sqrt(1.0 - phi * phi) * float(
            shocks[0]
        )
        _ar1_advance(self._wind_unit, phi, shocks[1:])
        latent = self._wind_sqrt_unit * self._wind_unit
        latent += self._wind_sqrt_regional * self._wind_regional
        speed_ms = self._weibull_speed(latent)
        wind_kw = wind_power_curve(speed_ms, p.wind_cut_in_ms, p.wind_rated_ms, p.wind_cut_out_ms)
        wind_kw *= self._wind_cap_kw
        wind_speed_regional_ms = float(self._weibull_speed(np.array([self._wind_regional]))[0])

        # Hydro / thermal: two-state Markov forced outage per unit.
        lag_rows = self._up_history.shape[0]
        was_up = self._up_history[(h - 1) % lag_rows]
        u = self._rng_outage.random(was_up.size)
        up = np.where(was_up, u >= p.outage_rate_per_h, u < p.repair_rate_per_h)
        self._up_history[h % lag_rows] = up
        up_at_forecast = self._up_history[(h - self._outage_lag) % lag_rows]
        disp_kw = self._disp_level_kw * up

        gen_actual_g = np.concatenate([solar_kw, wind_kw, disp_kw])
        gen_actual[self._gen_idx] = gen_actual_g

        # Generator forecasts: what the unit expected + a persistent error.
        _ar1_advance(self._gen_err, self._err_phi,
                     self._rng_forecast.standard_normal(self._gen_idx.size))
        err_kw = self._gen_err_sd_kw * self._gen_err
        # Solar error scales with the hour's clear-sky shape: a night forecast is exact.
        err_kw[: self._n_solar] *= min(clear_sky, 1.0)
        # What each unit expected at forecast time: the actual output, except that a
        # dispatchable unit knew only its outage state of `lead` hours before.
        # (gen_actual_g is already copied into gen_actual; reuse its buffer.)
        expected = gen_actual_g
        expected[self._n_solar + self._n_wind :] = self._disp_level_kw * up_at_forecast
        expected += err_kw
        np.clip(expected, 0.0, self._gen_cap_kw, out=expected)
        gen_forecast[self._gen_idx] = expected

        # Load: class shape × multiplicative AR(1) noise; forecast error ∝ actual.
        _ar1_advance(self._load_noise, p.load_noise_persistence,
                     self._rng_load.standard_normal(self._load_noise.size))
        factor = p.load_noise_sd * self._load_noise
        factor += 1.0
        np.maximum(factor, 0.0, out=factor)
        load_kw = self._shaped_load_kw[hour_of_day] * factor
        load_actual[self._load_idx] = load_kw
        _ar1_advance(self._load_err, self._err_phi,
                     self._rng_forecast.standard_normal(self._load_err.size))
        factor = self._load_err_sd * self._load_err
        factor += 1.0
        np.maximum(factor, 0.0, out=factor)
        load_forecast[self._load_idx] = load_kw * factor

        self._hour = h + 1
        return HourDraw(hour=h, hour_of_day=hour_of_day, day_of_year=day_of_year,
                        clear_sky=clear_sky, clearness_regional=clearness_regional,
                        wind_speed_regional_ms=wind_speed_regional_ms,
                        gen_forecast_kw=gen_forecast, gen_actual_kw=gen_actual,
                        load_forecast_kw=load_forecast, load_actual_kw=load_actual)

    def _weibull_speed(self, latent: np.ndarray) -> np.ndarray:
        """Weibull quantile of ndtr(latent): ``scale · (−ln(1 − u))^(1/shape)``.

        ``1 − ndtr(x)`` is computed as ``ndtr(−x)``, exact in the upper tail.
        """
        speed = np.log(ndtr(-latent))
        np.negative(speed, out=speed)
        np.power(speed, self._inv_weibull_shape, out=speed)
        speed *= self.params.wind_weibull_scale_ms
        return speed


def _check_party_arrays(tech: np.ndarray, capacity_kw: np.ndarray, load_class: np.ndarray,
                        mean_load_kw: np.ndarray) -> None:
    n = tech.shape[0] if tech.ndim == 1 else -1
    for name, arr in (("tech", tech), ("capacity_kw", capacity_kw), ("load_class", load_class),
                      ("mean_load_kw", mean_load_kw)):
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ConfigError(f"{name} must be a 1-D array with one row per party")
    for name, arr in (("tech", tech), ("load_class", load_class)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ConfigError(f"{name} must hold integer codes, got dtype {arr.dtype}")
    if n and (tech.min() < -1 or tech.max() >= len(TECHNOLOGIES)):
        raise ConfigError(f"tech codes must lie in -1..{len(TECHNOLOGIES) - 1}")
    if n and (load_class.min() < -1 or load_class.max() >= len(LOAD_CLASSES)):
        raise ConfigError(f"load_class codes must lie in -1..{len(LOAD_CLASSES) - 1}")
    for name, arr, code in (("capacity_kw", capacity_kw, tech),
                            ("mean_load_kw", mean_load_kw, load_class)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0.0):
            raise ConfigError(f"{name} must be finite and >= 0")
        if np.any(arr[code < 0] != 0.0):
            raise ConfigError(f"{name} must be 0 on rows whose code is -1")
