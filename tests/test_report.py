"""Sweep reports: intervals over replications, pairing by shared seeds, Sobol indices that
SALib computes from the sweep's own design, the files, the command, the DuckDB
example of docs/cli.md."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dipi_abm import ConfigError
from dipi_abm.cli import main
from dipi_abm.sweep.caveats import confounding
from dipi_abm.sweep.engine import design_points, load_spec, plan_runs, replication_seed
from dipi_abm.sweep.report import (
    TERMINAL_WIDTH,
    build_report,
    format_report,
    t_interval,
    welch_interval,
    write_report,
)

CLI_DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
TINY = {"n_dpgc": 3, "n_users": 10, "hours": 12}


# ----------------------------------------------------------------------------- intervals
def test_t_interval_is_scipys_student_interval():
    x = np.array([0.12, 0.31, 0.18, 0.27, 0.22])
    mean, half = t_interval(x)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert mean == pytest.approx(x.mean())
    assert (mean - half, mean + half) == pytest.approx((low, high))
    assert np.isnan(t_interval([0.4])[1])  # one replication: no interval


def test_welch_interval_is_scipys():
    a, b = np.array([1.0, 1.4, 0.9, 1.3, 1.2, 1.6]), np.array([0.7, 0.8, 1.1, 0.6])
    diff, half = welch_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (diff - half, diff + half) == pytest.approx((ci.low, ci.high))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=30),
       st.floats(0.01, 100), st.floats(-100, 100))
def test_t_interval_moves_with_the_data(x, scale, shift):
    mean, half = t_interval(x)
    mean2, half2 = t_interval([scale * v + shift for v in x])
    assert half >= 0
    assert mean2 == pytest.approx(scale * mean + shift, abs=1e-6 * (1 + abs(mean2)))
    assert half2 == pytest.approx(scale * half, rel=1e-6, abs=1e-9)


# ----------------------------------------------------------------------------- synthetic
def _fake_sweep(root: Path, spec: dict, kpi) -> pd.DataFrame:
    """A sweep folder as `dipi-abm sweep` lays it out, its KPIs from ``kpi(params, seed)``:
    the report's statistics checked against known answers."""
    s = load_spec(spec)
    points, tasks = design_points(spec), plan_runs(spec)
    root.mkdir(parents=True)
    (root / "sweep.json").write_text(json.dumps(
        {"spec": s.normalized, "points": points, "n_runs": len(tasks)}, default=str))
    rows = [{"run_id": t.run_id, "point_id": t.point_id, "replication": t.replication,
             "seed": t.seed, **t.params, **kpi(t.params, t.seed)} for t in tasks]
    runs = pd.DataFrame(rows)
    runs.to_parquet(root / "runs.parquet", index=False)
    return runs


def _noise(seed: int) -> float:
    return float(np.random.default_rng(seed).normal(0.0, 0.05))


def _effect(params: dict, seed: int) -> dict:
    """breach_rate: the run's noise plus 0.1 under centralized matching."""
    return {"breach_rate": 0.2 + _noise(seed) + 0.1 * (params["matching"] == "centralized"),
            "price_mean": 0.5 + _noise(seed + 1)}


def _spec(common: bool, reps: int = 6) -> dict:
    return {"sweep": {"replications": reps, "seed": 5, "common_seeds": common},
            "base": TINY,
            "factors": {"matching": ["price_time", "centralized"],
                        "natural_factor": [0.0, 0.1, 0.2]}}


def test_common_seeds_pair_the_points_and_cancel_their_noise(tmp_path):
    _fake_sweep(tmp_path / "s", _spec(common=True), _effect)
    r = build_report(tmp_path / "s")
    assert r.common_seeds
    d = r.differences.set_index(["factor", "kpi"])
    row = d.loc[("matching", "breach_rate")]
    assert row["paired"] and row["level"] == "centralized" and row["reference"] == "price_time"
    # every replication's noise is the same at both levels: the paired difference is exact
    assert row["difference"] == pytest.approx(0.1)
    assert row["half_width"] == pytest.approx(0.0, abs=1e-12)
    nf = d.loc[("natural_factor", "breach_rate")]
    assert np.allclose(nf["difference"], 0.0, atol=1e-12) and nf["paired"].all()


def test_independent_seeds_give_welchs_interval_of_replication_means(tmp_path):
    runs = _fake_sweep(tmp_path / "s", _spec(common=False), _effect)
    r = build_report(tmp_path / "s")
    row = r.differences.set_index(["factor", "kpi"]).loc[("matching", "breach_rate")]
    assert not row["paired"]
    means = runs.groupby(["matching", "replication"])["breach_rate"].mean()
    diff, half = welch_interval(means["centralized"], means["price_time"])
    assert (row["difference"], row["half_width"]) == pytest.approx((diff, half))
    assert half > 0.01  # the noise no longer cancels
    assert row["low"] < 0.1 < row["high"]


def test_level_means_are_over_replications(tmp_path):
    runs = _fake_sweep(tmp_path / "s", _spec(common=False, reps=4), _effect)
    r = build_report(tmp_path / "s")
    lv = r.levels.set_index(["factor", "level", "kpi"])
    for level in ("0", "0.1", "0.2"):
        at = runs[runs["natural_factor"].map(lambda v, lv=level: f"{v:.6g}" == lv)]
        per_rep = at.groupby("replication")["breach_rate"].mean()
        mean, half = t_interval(per_rep)
        got = lv.loc[("natural_factor", level, "breach_rate")]
        assert (got["mean"], got["half_width"]) == pytest.approx((mean, half))
        assert got["replications"] == 4 and got["runs"] == 2 * 4
    assert list(r.levels.query("factor == 'matching'")["level"].unique()) == [
        "price_time", "centralized"]  # the spec's order


def test_one_replication_has_no_interval(tmp_path):
    _fake_sweep(tmp_path / "s", _spec(common=False, reps=1), _effect)
    r = build_report(tmp_path / "s")
    assert r.levels["half_width"].isna().all()
    assert any("replications to 2 or more" in n for n in r.notes)
    files = write_report(tmp_path / "s", r)
    assert "n/a" in (tmp_path / "s" / "report.md").read_text()
    assert {f.name for f in files} >= {"report.md", "report.html", "report_levels.png"}


def test_ranges_are_shown_in_equal_bins(tmp_path):
    spec = {"sweep": {"design": "lhs", "samples": 32, "replications": 2, "seed": 2},
            "base": {"hours": 12}, "factors": {"natural_factor": [0.0, 0.2],
                                               "n_users": [10, 12]}}
    _fake_sweep(tmp_path / "s", spec, lambda p, s: {"breach_rate": p["natural_factor"]})
    r = build_report(tmp_path / "s")
    nf = r.levels.query("factor == 'natural_factor' and kpi == 'breach_rate'")
    assert nf["level"].tolist() == ["[0, 0.05)", "[0.05, 0.1)", "[0.1, 0.15)", "[0.15, 0.2)"]
    assert nf["runs"].sum() == 32 * 2
    assert (np.diff(nf["mean"]) > 0).all()
    # an integer factor with few values keeps them
    assert r.levels.query("factor == 'n_users'")["level"].unique().tolist() == ["10", "11", "12"]
    assert r.differences.empty and r.sobol.empty  # differences: factorial designs only


def test_sobol_indices_of_a_known_function(tmp_path):
    """y = 2 a + b with a, b uniform, and a factor without effect: S1 = ST = 0.8, 0.2, 0.
    SALib reproduces them only if the design is in the order its analyzer reads."""
    spec = {"sweep": {"design": "sobol", "samples": 512, "replications": 1, "seed": 9},
            "base": TINY, "factors": {"natural_factor": [0.0, 0.2],
                                      "breach_tolerance": [0.0, 0.1],
                                      "matching": ["price_time", "centralized", "cma"]}}

    def kpi(p: dict, seed: int) -> dict:
        return {"breach_rate": 2 * p["natural_factor"] / 0.2 + p["breach_tolerance"] / 0.1}

    runs = _fake_sweep(tmp_path / "s", spec, kpi)
    assert len(runs) == 512 * (3 + 2)
    r = build_report(tmp_path / "s")
    got = r.sobol.set_index("factor")
    for factor, truth in (("natural_factor", 0.8), ("breach_tolerance", 0.2), ("matching", 0)):
        assert got.loc[factor, "S1"] == pytest.approx(truth, abs=0.05), factor
        assert got.loc[factor, "ST"] == pytest.approx(truth, abs=0.05), factor
        assert got.loc[factor, "ST_low"] <= truth + 0.01 and got.loc[factor, "ST_high"] >= \
            truth - 0.01
    files = write_report(tmp_path / "s", r)
    assert "report_sobol.png" in {f.name for f in files}
    md = (tmp_path / "s" / "report.md").read_text()
    assert "## Sobol indices" in md and "natural_factor" in md


def test_a_design_that_is_not_saltellis_gets_no_indices(tmp_path):
    spec = {"sweep": {"design": "sobol", "samples": 8, "replications": 1, "seed": 9},
            "base": TINY, "factors": {"natural_factor": [0.0, 0.2]}}
    _fake_sweep(tmp_path / "s", spec, lambda p, s: {"breach_rate": p["natural_factor"]})
    meta = json.loads((tmp_path / "s" / "sweep.json").read_text())
    meta["points"] = meta["points"][:-1]  # 23 points: not 8 * (1 + 2)
    (tmp_path / "s" / "sweep.json").write_text(json.dumps(meta))
    runs = pd.read_parquet(tmp_path / "s" / "runs.parquet")
    runs[runs["point_id"] < 23].to_parquet(tmp_path / "s" / "runs.parquet")
    r = build_report(tmp_path / "s")
    assert r.sobol.empty and any("not Saltelli's scheme" in n for n in r.notes)


# ----------------------------------------------------------------------------- seeds
def test_common_seeds_give_every_point_the_same_replication_seeds():
    tasks = plan_runs(_spec(common=True, reps=3))
    by_rep = pd.DataFrame([(t.replication, t.seed) for t in tasks], columns=["r", "seed"])
    assert (by_rep.groupby("r")["seed"].nunique() == 1).all()
    assert [tasks[r].seed for r in range(3)] == [replication_seed(5, 0, r) for r in range(3)]
    independent = plan_runs(_spec(common=False, reps=3))
    assert len({t.seed for t in independent}) == len(independent)
    # a spec without the key keeps its hash (and its sweep folder); true is another sweep
    base = _spec(common=False)
    del base["sweep"]["common_seeds"]
    assert load_spec(base).hash == load_spec(_spec(common=False)).hash
    assert load_spec(base).hash != load_spec(_spec(common=True)).hash
    bad = _spec(common=False)
    bad["sweep"]["common_seeds"] = "yes"
    with pytest.raises(ConfigError, match=r"\[sweep\] common_seeds: common_seeds = 'yes'"):
        load_spec(bad)


# ----------------------------------------------------------------------------- real sweep
SPEC_TOML = """
    [sweep]
    replications = 3
    seed = 4
    common_seeds = true
    [base]
    hours = 12
    n_dpgc = 3
    n_users = 10
    [factors]
    matching = ["price_time", "centralized"]
    """


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    """A real sweep by the command, into a folder named as in the README."""
    root = tmp_path_factory.mktemp("real")
    spec = root / "sweep.toml"
    spec.write_text(textwrap.dedent(SPEC_TOML))
    out = root / "sweep_results"
    rc = main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--quiet"])
    assert rc == 0
    return out


def test_sweep_writes_its_report_next_to_runs_parquet(real_sweep):
    out = real_sweep
    for name in ("report.md", "report.html", "report_levels.png", "report_differences.png",
                 "report_levels.csv", "report_differences.csv"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.part"))
    image = matplotlib.image.imread(out / "report_levels.png")
    assert image.shape[0] > 300 and image.shape[1] > 300
    levels = pd.read_csv(out / "report_levels.csv")
    runs = pd.read_parquet(out / "runs.parquet")
    ref = runs.groupby(["matching", "replication"])["p2p_volume_kwh"].mean()
    got = levels.query("factor == 'matching' and kpi == 'p2p_volume_kwh'").set_index("level")
    for level in ("price_time", "centralized"):
        mean, half = t_interval(ref[level])
        assert (got.loc[level, "mean"], got.loc[level, "half_width"]) == pytest.approx(
            (mean, half), nan_ok=True)
    diffs = pd.read_csv(out / "report_differences.csv")
    assert diffs["paired"].all()  # common seeds
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html
    md = (out / "report.md").read_text()
    assert "![report_levels](report_levels.png)" in md
    assert re.search(r"\| price_time \| 3 \| [0-9.]+ ± [0-9.]+ \|", md)


def test_report_command_prints_the_tables(real_sweep, capsys):
    before = (real_sweep / "report.md").read_text()
    assert main(["report", str(real_sweep)]) == 0
    out = capsys.readouterr().out
    assert "matching: mean ± 95 % interval" in out
    assert re.search(r"price_time\s+3\s+[0-9.]+ ± [0-9.]+", out)
    assert "matching: centralized − price_time   paired" in out
    assert (real_sweep / "report.md").read_text() == before  # same sweep, same report
    assert main(["report", str(real_sweep), "--kpis", "breach_rate", "--quiet"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("case, message", [
    ("missing", "no such folder"),
    ("not_a_sweep", "no sweep.json: not a folder written by `dipi-abm sweep`"),
    ("incomplete", "no runs.parquet: the sweep is not complete (6 of 6 runs finished)"),
    ("bad_kpi", "--kpis: nope: not a KPI of this sweep"),
])
def test_bad_report_input_is_one_line(real_sweep, tmp_path, capsys, case, message):
    args = ["report", str(tmp_path / "missing")]
    if case == "not_a_sweep":
        args = ["report", str(tmp_path)]
    elif case == "incomplete":
        import shutil

        shutil.copytree(real_sweep, tmp_path / "s")
        (tmp_path / "s" / "runs.parquet").unlink()
        args = ["report", str(tmp_path / "s")]
    elif case == "bad_kpi":
        args = ["report", str(real_sweep), "--kpis", "nope"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_docs_duckdb_example_runs(real_sweep, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", CLI_DOC.read_text(encoding="utf-8"), re.S)
    code = [b for b in blocks if "import duckdb" in b]
    assert len(code) == 1
    monkeypatch.chdir(real_sweep.parent)
    namespace: dict = {}
    exec(compile(code[0], "cli.md", "exec"), namespace)  # noqa: S102 - the docs' own code
    out = capsys.readouterr().out
    assert "price_time" in out and "centralized" in out
    by_hour = namespace["by_hour"]
    runs = pd.read_parquet(real_sweep / "runs.parquet")
    hourly = pd.read_parquet(real_sweep / "hourly")
    hourly["run_id"] = hourly["run_id"].astype(int)
    joined = hourly.merge(runs[["run_id", "matching"]], on="run_id")
    want = joined.groupby(["matching", "hour_of_day"])["p2p_volume_kwh"].mean()
    got = by_hour.set_index(["matching", "hour_of_day"])["p2p_kwh"]
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False,
                                   check_index_type=False)


# ----------------------------------------------------------------------------- contrasts
def _three_policies(common: bool) -> dict:
    return {"sweep": {"replications": 6, "seed": 5, "common_seeds": common},
            "base": {**TINY, "learning": "roth_erev"},
            "factors": {"breach_policy": ["none", "imbalance_penalty", "deposit"]}}


def _policy_effect(params: dict, seed: int) -> dict:
    shift = {"none": 0.0, "imbalance_penalty": -0.08, "deposit": -0.03}
    return {"breach_rate": 0.3 + _noise(seed) + shift[params["breach_policy"]],
            "user_cost_yuan": 1000 + 100 * _noise(seed + 2)}


@pytest.mark.parametrize("contrast", ["penalty:deposit", "breach_policy=imbalance_penalty:deposit"])
def test_a_contrast_between_any_two_levels_is_paired_on_seeds(tmp_path, contrast):
    _fake_sweep(tmp_path / "s", _three_policies(common=True), _policy_effect)
    r = build_report(tmp_path / "s", contrasts=[contrast])
    d = r.differences.set_index(["level", "reference", "kpi"])
    row = d.loc[("imbalance_penalty", "deposit", "breach_rate")]
    assert row["paired"] and row["difference"] == pytest.approx(-0.05)
    assert row["half_width"] == pytest.approx(0.0, abs=1e-12)
    assert ("deposit", "none", "breach_rate") in d.index  # each level against the first too


def test_an_unpaired_contrast_is_welchs(tmp_path):
    runs = _fake_sweep(tmp_path / "s", _three_policies(common=False), _policy_effect)
    r = build_report(tmp_path / "s", contrasts=["deposit:penalty"])
    row = r.differences.set_index(["level", "reference", "kpi"]).loc[
        ("deposit", "imbalance_penalty", "breach_rate")]
    means = runs.groupby(["breach_policy", "replication"])["breach_rate"].mean()
    want = welch_interval(means["deposit"], means["imbalance_penalty"])
    assert not row["paired"] and (row["difference"], row["half_width"]) == pytest.approx(want)


@pytest.mark.parametrize("contrast, message", [
    ("penalty", "give two levels as A:B"),
    ("nope:deposit", "no factor has both as levels (levels: breach_policy = none, "
                     "imbalance_penalty, deposit)"),
    ("matching=none:deposit", "matching is not a factor with levels of this sweep"),
])
def test_a_bad_contrast_is_one_line(tmp_path, capsys, contrast, message):
    _fake_sweep(tmp_path / "s", _three_policies(common=True), _policy_effect)
    assert main(["report", str(tmp_path / "s"), "--contrast", contrast]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_the_terminal_shows_every_kpi_asked_for(tmp_path):
    kpis = [f"kpi_number_{i}" for i in range(9)]
    _fake_sweep(tmp_path / "s", _three_policies(common=True),
                lambda p, s: {k: i + _noise(s + i) for i, k in enumerate(kpis)})
    r = build_report(tmp_path / "s", kpis, contrasts=["penalty:deposit"])
    text = format_report(r)
    assert all(text.count(k) >= 2 for k in kpis)  # in the level and the difference tables
    table_lines = [ln for ln in text.splitlines() if ln.startswith("  ") and "±" in ln]
    assert table_lines and max(map(len, table_lines)) <= TERMINAL_WIDTH
    assert text.count("breach_policy: imbalance_penalty − deposit") >= 2  # repeated per part


# ----------------------------------------------------------------------------- warnings
def test_a_report_warns_when_every_party_is_static(tmp_path):
    spec = _three_policies(common=True)
    del spec["base"]["learning"]
    with pytest.warns(UserWarning, match="learning"):
        _fake_sweep(tmp_path / "s", spec, _policy_effect)
    assert any("learning = 'roth_erev'" in n for n in build_report(tmp_path / "s").notes)
    _fake_sweep(tmp_path / "t", _three_policies(common=True), _policy_effect)
    assert not any("learning" in n for n in build_report(tmp_path / "t").notes)


def test_confounding_is_a_crosstab_off_balance():
    bins = pd.Series(["a", "a", "b", "b"] * 10)
    even = pd.Series(["x", "y"] * 20)
    assert confounding({"f": bins, "c": even}, ["c"]) == []
    skewed = pd.Series(["x", "x", "x", "y"] * 10)
    skewed[bins == "b"] = "y"
    [(name, msg)] = confounding({"f": bins, "c": skewed}, ["c"])
    assert name == "c"
    assert "c is spread unevenly over the levels of f" in msg and "a: 20/0; b: 0/20" in msg


def test_an_lhs_with_a_categorical_factor_shows_effects_within_its_levels(tmp_path):
    """The issue's case: matching alone moves the KPI, but spread unevenly over the
    natural_factor bins it makes natural_factor look as if it mattered."""
    spec = {"sweep": {"design": "lhs", "samples": 24, "replications": 2, "seed": 3},
            "base": TINY, "factors": {"natural_factor": [0.0, 0.2],
                                      "matching": ["price_time", "centralized", "cma"]}}
    _fake_sweep(tmp_path / "s", spec, lambda p, s: {
        "transaction_efficiency": 0.8 - 0.5 * (p["matching"] == "centralized")})
    r = build_report(tmp_path / "s", ["transaction_efficiency"])
    assert any("matching is spread unevenly over the levels of natural_factor" in n
               for n in r.notes)
    within = r.levels[r.levels["within"] == "matching=centralized"]
    assert set(within["factor"]) == {"natural_factor"}
    assert np.allclose(within["mean"], 0.3)  # within a level, natural_factor is flat
    overall = r.levels.query("within == '' and factor == 'natural_factor'")["mean"]
    assert np.ptp(overall) > 0.05  # while across levels it seems to swing
    assert "natural_factor, only runs with matching=centralized" in format_report(r)
