"""Forecast error against persistence in the model's own weather (docs/model.md section 3).

A forecast is only as good as what it beats: at a lead of an hour, real wind
and solar forecasts are little better than persistence (the value now), and the
gap opens with lead time as weather prediction takes over. This script measures
that in the model: one seeded population of solar and wind units (1 kW each)
and of loads of every class, simulated with ``dipi_abm.physics.weather`` once
per lead time (the actual weather is identical across leads; only the
forecasts differ), and prints, for leads of 1, 2, 6 and 24 h:

- wind: mean absolute error in % of capacity over all hours (NMAE), against
  persistence P(t - L);
- solar: NMAE in % of capacity over daylight hours, against clear-sky-index
  ("smart") persistence P(t - L) * cs(t) / cs(t - L), the same hour of the day
  before when the sun was down at t - L;
- load: mean absolute percentage error (MAPE), against profile persistence
  L(t - L) * shape(t) / shape(t - L) (the day's class shape is known);

and the skill 1 - error / persistence error. ``--reps`` is the number of units of each
kind (each with its own weather and load streams). One seeded measurement over many
units and hours, not a Monte Carlo mean: no intervals. Writes ``forecast_skill.csv``
and ``forecast_skill.png``.

    python experiments/forecast_skill.py            # one year, 50 units of each kind
    python experiments/forecast_skill.py --quick    # 60 days, 20 units
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from _common import PALETTE, parse, parser, save_csv, save_png, style

from dipi_abm.physics.weather import (
    LOAD_CLASSES,
    SOLAR,
    WIND,
    Weather,
    WeatherParams,
    load_shape,
)

LEADS_H = (1, 2, 6, 24)
CSV_COLUMNS = ["quantity", "lead_h", "metric", "forecast_error_pct", "persistence_error_pct",
               "skill"]


def _population(n: int) -> dict[str, np.ndarray]:
    """n solar units, n wind units (1 kW each) and n loads per class (1 kW mean)."""
    n_load = n * len(LOAD_CLASSES)
    tech = np.concatenate([np.full(n, SOLAR), np.full(n, WIND), np.full(n_load, -1)])
    load_class = np.concatenate([np.full(2 * n, -1), np.tile(np.arange(len(LOAD_CLASSES)), n)])
    return {
        "tech": tech.astype(np.int8),
        "capacity_kw": (tech >= 0).astype(np.float64),
        "load_class": load_class.astype(np.int8),
        "mean_load_kw": (load_class >= 0).astype(np.float64),
    }


def simulate(lead_h: float, hours: int, n: int, seed: int,
             params: WeatherParams | None = None) -> dict[str, np.ndarray]:
    """Actual and forecast series (hours x parties) at one lead time."""
    parties = _population(n)
    w = Weather(**parties, params=replace(params or WeatherParams(), forecast_lead_h=lead_h),
                seed=np.random.SeedSequence(seed))
    draws = [w.step() for _ in range(hours)]
    return {
        "gen_actual": np.array([d.gen_actual_kw for d in draws]),
        "gen_forecast": np.array([d.gen_forecast_kw for d in draws]),
        "load_actual": np.array([d.load_actual_kw for d in draws]),
        "load_forecast": np.array([d.load_forecast_kw for d in draws]),
        "clear_sky": np.array([d.clear_sky for d in draws]),
        "hour_of_day": np.array([d.hour_of_day for d in draws]),
        **parties,
    }


def skill_table(hours: int, n: int, seed: int, params: WeatherParams | None = None,
                leads: Sequence[int] = LEADS_H) -> pd.DataFrame:
    """Forecast and persistence errors at each lead (see the module docstring)."""
    rows = []
    reference = None
    for lead in leads:
        d = simulate(float(lead), hours, n, seed, params)
        if reference is None:
            reference = d["gen_actual"]
        elif not np.array_equal(reference, d["gen_actual"]):
            raise RuntimeError("the actual weather must not depend on the forecast lead")
        t = np.arange(max(leads), hours)  # the same hours for every lead
        past = t - lead
        solar = d["tech"] == SOLAR
        wind = d["tech"] == WIND
        load = d["load_class"] >= 0

        act, fc = d["gen_actual"][:, wind], d["gen_forecast"][:, wind]
        rows.append(("wind", lead, "NMAE % of capacity",
                     np.abs(fc[t] - act[t]).mean(), np.abs(act[past] - act[t]).mean()))

        cs = d["clear_sky"]
        act, fc = d["gen_actual"][:, solar], d["gen_forecast"][:, solar]
        day = t[cs[t] > 0.0]
        back = day - lead
        sun_then = cs[back] > 0.1
        ratio = np.where(sun_then, cs[day] / np.where(sun_then, cs[back], 1.0), 0.0)
        smart = np.where(sun_then[:, None], act[back] * ratio[:, None], act[day - 24])
        smart = np.clip(smart, 0.0, 1.0)
        rows.append(("solar", lead, "NMAE % of capacity, daylight",
                     np.abs(fc[day] - act[day]).mean(), np.abs(smart - act[day]).mean()))

        act, fc = d["load_actual"][:, load], d["load_forecast"][:, load]
        cls = d["load_class"][load]
        hod = d["hour_of_day"]
        shape_now = load_shape(cls[None, :], hod[t][:, None])
        shape_then = load_shape(cls[None, :], hod[past][:, None])
        persist = act[past] * shape_now / shape_then
        ok = act[t] > 1e-6
        rows.append(("load", lead, "MAPE %",
                     (np.abs(fc[t] - act[t])[ok] / act[t][ok]).mean(),
                     (np.abs(persist - act[t])[ok] / act[t][ok]).mean()))
    df = pd.DataFrame(rows, columns=CSV_COLUMNS[:-1])
    df["forecast_error_pct"] *= 100.0
    df["persistence_error_pct"] *= 100.0
    df["skill"] = 1.0 - df["forecast_error_pct"] / df["persistence_error_pct"]
    return df.sort_values(["quantity", "lead_h"], key=_order).reset_index(drop=True)


def _order(col: pd.Series) -> pd.Series:
    if col.name == "quantity":
        return col.map({"wind": 0, "solar": 1, "load": 2})
    return col


def markdown(df: pd.DataFrame) -> str:
    """The table as the README shows it."""
    out = ["| quantity | metric | lead | forecast | persistence | skill |",
           "|---|---|---|---|---|---|"]
    for r in df.itertuples(index=False):
        out.append(f"| {r.quantity} | {r.metric} | {r.lead_h} h | {r.forecast_error_pct:.1f} "
                   f"| {r.persistence_error_pct:.1f} | {r.skill:+.0%} |")
    return "\n".join(out)


def plot(df: pd.DataFrame, path: Path) -> None:
    """Forecast and persistence error against lead time, one panel per quantity."""
    style()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")
    for ax, (q, d) in zip(axes, df.groupby("quantity", sort=False), strict=True):
        for col, name, c in (("forecast_error_pct", "model forecast", PALETTE[0]),
                             ("persistence_error_pct", "persistence", PALETTE[1])):
            ax.plot(d.lead_h, d[col], "o-", color=c, label=name)
        ax.set_xscale("log")
        ax.set_xticks(d.lead_h, [f"{h} h" for h in d.lead_h])
        ax.set_xlabel("lead time")
        ax.set_ylabel(d.metric.iloc[0])
        ax.set_title(q)
        ax.set_ylim(bottom=0)
    axes[0].legend(frameon=False)
    fig.suptitle("Forecast error against persistence in the model's weather")
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = parser(__doc__, out="results/forecast_skill", reps=50, quick_reps=20, seed=2024,
                reps_help="units of each kind")
    args = parse(ap, argv)
    hours, n = (24 * 60 if args.quick else 24 * 365), args.reps
    df = skill_table(hours, n, args.seed)
    out = Path(args.out)
    save_csv(df, out / "forecast_skill.csv")
    plot(df, out / "forecast_skill.png")
    print(markdown(df))
    print(f"({hours} h, {n} units of each kind, seed {args.seed}; written to {out}/)")
    return df


if __name__ == "__main__":
    main()
