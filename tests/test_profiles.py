"""Measured profiles in place of the stochastic actual output (docs/profiles.md)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dipi_abm import DIPIModel, cli
from dipi_abm.errors import ConfigError
from dipi_abm.physics.profiles import Profiles
from dipi_abm.physics.weather import SOLAR, WIND, Weather, WeatherParams, load_shape

ROOT = Path(__file__).resolve().parents[1]
OPSD = ROOT / "experiments" / "data" / "opsd_de_2015_january.csv"
SMALL = dict(n_dpgc=8, n_users=20, hours=48, seed=5, ledger_detail="off")


def _file(tmp_path, hours=48, name="p.csv", **cols):
    h = np.arange(hours)
    df = pd.DataFrame({"hour": h, "solar_cf": np.clip(np.sin(np.pi * (h % 24 - 6) / 12), 0, 1),
                       "wind_cf": 0.2 + 0.6 * (h % 7) / 7, **cols})
    path = tmp_path / name
    df.to_parquet(path) if name.endswith(".parquet") else df.to_csv(path, index=False)
    return path, df


@pytest.mark.parametrize("name", ["p.csv", "p.parquet"])
def test_actual_output_is_capacity_times_the_files_factor(tmp_path, name):
    path, df = _file(tmp_path, name=name)
    m = DIPIModel(profiles=str(path), **SMALL)
    s = m.state
    for h in range(SMALL["hours"]):
        m.step()
        out = m.record.delivery.surplus_kw + m.record.delivery.need_kw  # |gen - load|
        for tech, col in ((SOLAR, "solar_cf"), (WIND, "wind_cf")):
            dpgc = (s.tech == tech) & (s.kind == 0)  # DPGCs have no load
            np.testing.assert_allclose(out[dpgc], s.capacity_kw[dpgc] * df[col][h], rtol=1e-12)
    su = m.summary()
    assert su["capacity_factor_solar"] == pytest.approx(df.solar_cf.mean(), rel=1e-12)
    assert su["capacity_factor_wind"] == pytest.approx(df.wind_cf.mean(), rel=1e-12)


def test_forecasts_keep_the_weathers_error_and_load_follows_the_load_factor(tmp_path):
    lf = 0.5 + 0.5 * np.cos(np.arange(48) / 5.0) ** 2
    path, df = _file(tmp_path, load_factor=lf)
    prof = Profiles.read(path, 0, 48)
    tech = np.array([SOLAR, WIND, 2, -1, SOLAR], np.int8)
    cap = np.array([100.0, 200.0, 50.0, 0.0, 10.0])
    lc = np.array([-1, -1, -1, 0, 3], np.int8)
    load = np.array([0.0, 0.0, 0.0, 40.0, 30.0])
    seed = np.random.SeedSequence(7)
    w = Weather(tech=tech, capacity_kw=cap, load_class=lc, mean_load_kw=load,
                params=WeatherParams(), seed=seed)
    for _ in range(48):
        d0 = w.step()
        d1 = prof.apply(d0, tech, cap, lc)
        k = d0.hour
        cf = np.array([df.solar_cf[k], df.wind_cf[k], np.nan, np.nan, df.solar_cf[k]])
        meas = ~np.isnan(cf)
        np.testing.assert_allclose(d1.gen_actual_kw[meas], (cap * cf)[meas], rtol=1e-12)
        err = (d0.gen_forecast_kw - d0.gen_actual_kw)[meas]
        np.testing.assert_allclose(d1.gen_forecast_kw[meas],
                                   np.clip(cap[meas] * cf[meas] + err, 0, cap[meas]))
        assert d1.gen_actual_kw[2] == d0.gen_actual_kw[2]  # hydro as drawn
        scale = lf[k] / lf.mean() / load_shape(lc[3:], d0.hour_of_day)
        np.testing.assert_allclose(d1.load_actual_kw[3:], d0.load_actual_kw[3:] * scale)
        np.testing.assert_allclose(d1.load_forecast_kw[3:], d0.load_forecast_kw[3:] * scale)


BAD = {
    "missing hours": (lambda df: df.drop(index=[5, 6, 7]), "hours 5-7 are missing"),
    "above one": (lambda df: df.assign(wind_cf=df.wind_cf.where(df.hour != 3, 1.2)),
                  "wind_cf = 1.2 at hour 3"),
    "negative": (lambda df: df.assign(solar_cf=-df.solar_cf - 0.1), "solar_cf = -0.1 at hour 0"),
    "nan": (lambda df: df.assign(solar_cf=df.solar_cf.where(df.hour != 9)),
            "solar_cf = nan at hour 9"),
    "too short": (lambda df: df[df.hour < 40], "covers hours 0-39, fewer than the run's 0-47"),
    "no column": (lambda df: df.drop(columns="wind_cf"), "missing column(s) wind_cf"),
    "twice": (lambda df: pd.concat([df, df[df.hour == 4]]), "hour 4 appears twice"),
    "fractional hour": (lambda df: df.assign(hour=df.hour + 0.5), "whole numbers"),
    "load factor": (lambda df: df.assign(load_factor=2.0), "load_factor = 2.0 at hour 0"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_are_one_line_config_errors(tmp_path, case):
    path, df = _file(tmp_path)
    change, needle = BAD[case]
    change(df).to_csv(path, index=False)
    with pytest.raises(ConfigError) as exc:
        DIPIModel(profiles=str(path), **SMALL)
    assert needle in str(exc.value) and "\n" not in str(exc.value)
    assert str(path) in str(exc.value)


def test_cli_exits_2_on_a_missing_file(tmp_path, capsys):
    try:
        rc = cli.main(["run", "--hours", "24", "--set", f"profiles={tmp_path / 'nope.csv'}",
                       "--out", str(tmp_path / "out")])
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no such file" in err[0]


def test_the_shipped_opsd_week_matches_its_source_and_docs():
    df = pd.read_csv(OPSD, comment="#")
    assert len(df) == 192 and df.hour.tolist() == list(range(192))
    # spot values of the source (OPSD DE_wind_profile / DE_solar_profile, 2015-01-01 UTC)
    assert df.wind_cf[0] == 0.2308 and df.solar_cf[11] == 0.1116 and df.solar_cf[0] == 0
    week = df[df.hour < 168]
    text = (ROOT / "docs" / "profiles.md").read_text()
    for col in ("solar_cf", "wind_cf"):
        assert re.search(rf"{col}[^\n]*{100 * week[col].mean():.2f} %", text), col
    Profiles.read(OPSD, 0, 168)  # a default week fits
