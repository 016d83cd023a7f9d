"""Batch sweeps: designs, replication seeds, backends agree, resume, bad specs."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import mesa
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from dipi_abm import ConfigError, DIPIModel
from dipi_abm.hour import POLICY_KPIS
from dipi_abm.sweep import engine as sw
from dipi_abm.sweep import outcomes as sw_outcomes
from dipi_abm.sweep.engine import (
    RUNS_FILE,
    design_points,
    load_spec,
    plan_runs,
    replication_seed,
    run_sweep,
)

TINY = {"n_dpgc": 3, "n_users": 10, "hours": 12}
SPEC = {"sweep": {"design": "factorial", "replications": 2, "seed": 11}, "base": TINY,
        "factors": {"natural_factor": [0.0, 0.2], "matching": ["price_time", "centralized"]}}
N_RUNS = 8


def _write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip() if "\n" in text
                    else "\n".join(part.strip() for part in text.split("|")) + "\n")
    return path


# ----------------------------------------------------------------------------- designs
def test_factorial_is_every_combination_last_factor_fastest():
    spec = {"sweep": {"seed": 1}, "factors": {
        "natural_factor": [0.0, 0.1, 0.2], "matching": ["price_time", "centralized"],
        "credit_rule": ["paper", "ema"]}}
    points = design_points(spec)
    assert len(points) == 3 * 2 * 2
    assert points[0] == {"natural_factor": 0.0, "matching": "price_time", "credit_rule": "paper"}
    assert points[1] == {"natural_factor": 0.0, "matching": "price_time", "credit_rule": "ema"}
    assert points[-1] == {"natural_factor": 0.2, "matching": "centralized", "credit_rule": "ema"}
    assert len({tuple(p.values()) for p in points}) == len(points)


def test_factorial_evenly_spaced_levels_and_two_number_lists_are_levels():
    spec = {"sweep": {"seed": 1}, "factors": {
        "breach_tolerance": {"low": 0.0, "high": 0.2, "num": 3}, "n_users": {"low": 10,
                                                                             "high": 30,
                                                                             "num": 3},
        "poca_tau": [5, 10]}}
    points = design_points(spec)
    assert len(points) == 3 * 3 * 2
    assert sorted({p["breach_tolerance"] for p in points}) == [0.0, 0.1, 0.2]
    assert sorted({p["n_users"] for p in points}) == [10, 20, 30]
    assert all(type(p["n_users"]) is int for p in points)
    assert {p["poca_tau"] for p in points} == {5.0, 10.0}
    assert plan_runs(spec)[0].params["poca_tau"] == 5.0  # coerced to the key's type


@pytest.mark.parametrize("design", ["lhs", "sobol"])
def test_sampled_designs_stay_in_range_with_types_and_levels(design):
    n = 64
    spec = {"sweep": {"design": design, "samples": n, "seed": 3}, "factors": {
        "natural_factor": [0.05, 0.25],
        "n_users": {"low": 10, "high": 40},
        "matching": ["price_time", "centralized"],
        "poca_tau": {"values": [5.0, 10.0]},
        "consensus": ["poca", "pow", "dpos"],
    }}
    points = design_points(spec)
    # sobol: Saltelli's scheme, n base points and n * (D + 2) design points
    assert len(points) == (n if design == "lhs" else n * (5 + 2))
    nf = np.array([p["natural_factor"] for p in points])
    assert ((nf >= 0.05) & (nf < 0.25)).all()
    # one point per 1/n stratum of every axis (LHS by construction; Sobol for 2^m points,
    # in the base matrix A: every (D + 2)-th point of Saltelli's scheme)
    base = nf if design == "lhs" else nf[:: 5 + 2]
    strata = np.floor((base - 0.05) / 0.2 * n).astype(int)
    assert sorted(strata.tolist()) == list(range(n))
    users = [p["n_users"] for p in points]
    assert all(type(u) is int for u in users)
    assert set(users) <= set(range(10, 41)) and len(set(users)) >= 28
    assert {p["matching"] for p in points} == {"price_time", "centralized"}
    assert {p["poca_tau"] for p in points} == {5.0, 10.0}
    assert {p["consensus"] for p in points} == {"poca", "pow", "dpos"}
    assert all(isinstance(p["natural_factor"], float) for p in points)
    # reproducible from the seed, different with another seed
    assert design_points(spec) == points
    other = {**spec, "sweep": {**spec["sweep"], "seed": 4}}
    assert design_points(other) != points


def test_sobol_warns_when_samples_is_not_a_power_of_two():
    spec = {"sweep": {"design": "sobol", "samples": 10, "seed": 1},
            "factors": {"natural_factor": [0.0, 0.2]}}
    with pytest.warns(UserWarning, match="power of 2"):
        assert len(design_points(spec)) == 10 * (1 + 2)


def test_integer_range_gives_every_integer_an_equal_share():
    f = sw.Factor("n_users", low=10, high=12, integer=True)
    assert [f.from_unit(u) for u in (0.0, 0.33, 0.34, 0.66, 0.67, 0.999999)] == [
        10, 10, 11, 11, 12, 12]


def test_range_may_end_at_an_open_upper_bound():
    # natural_factor accepts [0, 0.3); samples fall in [low, high)
    spec = {"sweep": {"design": "lhs", "samples": 16, "seed": 2},
            "factors": {"natural_factor": [0.0, 0.3]}}
    assert all(0.0 <= p["natural_factor"] < 0.3 for p in design_points(spec))


# ----------------------------------------------------------------------------- seeds
def test_replication_seeds_are_distinct_stable_and_spawned_from_the_master():
    seeds = {replication_seed(2024, p, r) for p in range(50) for r in range(10)}
    assert len(seeds) == 500
    assert all(0 <= s < 2**63 for s in seeds)
    # the definition: SeedSequence(master).spawn(P)[p].spawn(R)[r], as a 63-bit integer
    child = np.random.SeedSequence(2024).spawn(5)[3].spawn(4)[2]
    assert replication_seed(2024, 3, 2) == int(child.generate_state(1, np.uint64)[0] >> 1)
    # stable across releases: results of old sweeps stay reproducible
    assert replication_seed(2024, 0, 0) == STABLE_SEED_2024_0_0
    # independent of how many points and replications the sweep has
    small = {t.seed for t in plan_runs({**SPEC, "sweep": {**SPEC["sweep"], "replications": 1}})}
    assert small <= {t.seed for t in plan_runs(SPEC)}


STABLE_SEED_2024_0_0 = 2976583197208752182


def test_run_ids_points_and_replications():
    tasks = plan_runs(SPEC)
    assert [t.run_id for t in tasks] == list(range(N_RUNS))
    assert [(t.point_id, t.replication) for t in tasks[:3]] == [(0, 0), (0, 1), (1, 0)]
    assert tasks[0].params == {"natural_factor": 0.0, "matching": "price_time", **TINY}


# ----------------------------------------------------------------------------- running
@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return out, run_sweep(SPEC, out, workers=1, progress=False)


def test_sweep_writes_one_row_per_run_and_the_hourly_dataset(serial):
    out, runs = serial
    assert len(runs) == N_RUNS
    assert runs["run_id"].tolist() == list(range(N_RUNS))
    assert_frame_equal(runs, pd.read_parquet(out / "runs.parquet"))
    for col in ["point_id", "replication", "seed", "natural_factor", "matching", "hours",
                "n_dpgc", "n_users", "breach_rate", "transaction_efficiency",
                "mean_credit_dpgc", "p2p_volume_kwh", "price_std", "blocks"]:
        assert col in runs.columns, col
    assert runs["seed"].nunique() == N_RUNS
    hourly = pd.read_parquet(out / "hourly")
    assert len(hourly) == N_RUNS * TINY["hours"]
    assert sorted(hourly["run_id"].astype(int).unique()) == list(range(N_RUNS))
    assert not list(out.rglob("*.part"))


def test_a_row_is_reproduced_by_its_seed_and_parameters(serial):
    out, runs = serial
    row = runs.iloc[5]
    params = {k: row[k] for k in ["natural_factor", "matching", *TINY]}
    model = DIPIModel(seed=int(row["seed"]), **params).run()
    summary = model.summary()
    for kpi in ["breach_rate", "transaction_efficiency", "mean_credit_dpgc", "p2p_volume_kwh",
                "user_cost_yuan", "blocks_gini"]:
        assert row[kpi] == summary[kpi] or (math.isnan(row[kpi]) and math.isnan(summary[kpi]))
    hourly = pd.read_parquet(out / "hourly", filters=[("run_id", "=", 5)])
    want = model.hourly_dataframe()
    assert_frame_equal(hourly[want.columns].reset_index(drop=True), want, check_exact=True)
    # One schema for every run: a breach policy's KPIs are null in a run without one.
    extra = set(hourly.columns) - set(want.columns) - {"run_id"}
    assert extra == set(POLICY_KPIS) and hourly[list(extra)].isna().all().all()


def _hourly(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "hourly")
    df["run_id"] = df["run_id"].astype(int)
    return df.sort_values(["run_id", "hour"]).reset_index(drop=True)


def test_two_workers_give_identical_results(serial, tmp_path):
    out, runs = serial
    env = dict(os.environ)
    again = run_sweep(SPEC, tmp_path / "pool", workers=2, progress=False)
    assert dict(os.environ) == env  # workers get one BLAS thread; the caller's env is restored
    assert_frame_equal(runs, again, check_exact=True)
    assert_frame_equal(_hourly(out), _hourly(tmp_path / "pool"), check_exact=True)


def test_dask_gives_identical_results(serial, tmp_path):
    distributed = pytest.importorskip("distributed")
    out, runs = serial
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        again = run_sweep(SPEC, tmp_path / "dask", scheduler=cluster.scheduler_address,
                          progress=False)
        with distributed.Client(cluster) as client:  # a Client works as well as an address
            half = {**SPEC, "sweep": {**SPEC["sweep"], "replications": 1}}
            by_client = run_sweep(half, tmp_path / "client", scheduler=client, progress=False)
    assert_frame_equal(runs, again, check_exact=True)
    assert_frame_equal(_hourly(out), _hourly(tmp_path / "dask"), check_exact=True)
    assert set(by_client["seed"]) <= set(runs["seed"])


def test_dask_local_cluster_of_processes(serial, tmp_path):
    pytest.importorskip("distributed")
    half = {**SPEC, "sweep": {**SPEC["sweep"], "replications": 1}}
    runs = run_sweep(half, tmp_path / "cluster", use_dask=True, workers=2, progress=False)
    want = serial[1][serial[1]["replication"] == 0]
    assert runs["seed"].tolist() == want["seed"].tolist()
    assert runs["breach_rate"].tolist() == want["breach_rate"].tolist()


# ----------------------------------------------------------------------------- resume
@pytest.fixture
def count_models(monkeypatch):
    built = []

    class Counting(DIPIModel):
        def __init__(self, *args, **kwargs):
            built.append(kwargs.get("seed"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(sw, "DIPIModel", Counting)
    return built


def test_rerun_skips_finished_runs_and_recovers_an_interruption(serial, tmp_path, count_models):
    out = tmp_path / "resume"
    runs = run_sweep(SPEC, out, workers=1, progress=False)
    assert len(count_models) == N_RUNS
    assert_frame_equal(runs, serial[1], check_exact=True)
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}

    again = run_sweep(SPEC, out, workers=1, progress=False)
    assert len(count_models) == N_RUNS  # nothing ran
    assert_frame_equal(again, runs, check_exact=True)

    # A sweep killed while writing run 3: no row marker, a stray temporary file.
    (out / "runs" / "000003.parquet").unlink()
    (out / "runs" / ".000003.parquet.x1y2.part").write_bytes(b"half a parquet")
    (out / "hourly" / "run_id=000003" / ".part.parquet.a7b8.part").write_bytes(b"PAR1")
    (out / "runs.parquet").unlink()
    resumed = run_sweep(SPEC, out, workers=1, progress=False)
    assert len(count_models) == N_RUNS + 1  # only run 3 again
    assert count_models[-1] == runs.loc[3, "seed"]
    assert_frame_equal(resumed, runs, check_exact=True)
    assert not list(out.rglob("*.part"))
    for path, mtime in mtimes.items():
        if path.name != "000003.parquet":
            assert path.stat().st_mtime_ns == mtime, path


def test_killed_sweep_loses_no_finished_run_and_resumes(tmp_path):
    spec = {"sweep": {"replications": 8, "seed": 5}, "base": {**TINY, "hours": 150}}
    out = tmp_path / "killed"
    code = (f"from dipi_abm.sweep.engine import run_sweep\n"
            f"run_sweep({spec!r}, {str(out)!r}, workers=1, progress=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = list((out / "runs").glob("*.parquet")) if (out / "runs").is_dir() else []
            if len(done) >= 2 or proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "runs.parquet").exists(), "the sweep finished before it was killed"
    finished = sorted((out / "runs").glob("[!.]*.parquet"))
    assert 2 <= len(finished) < 8
    for path in finished + sorted((out / "hourly").glob("*/[!.]*")):
        pq.read_table(path)  # every file under its final name is complete
    resumed = run_sweep(spec, out, workers=1, progress=False)
    fresh = run_sweep(spec, tmp_path / "fresh", workers=1, progress=False)
    assert_frame_equal(resumed, fresh, check_exact=True)


def test_a_different_spec_is_refused(serial):
    out, _ = serial
    changed = {**SPEC, "sweep": {**SPEC["sweep"], "replications": 3}}
    with pytest.raises(ConfigError, match=r"different spec.*replications: 2 there, 3 now"):
        run_sweep(changed, out, workers=1, progress=False)
    moved = {**SPEC, "base": {**TINY, "hours": 13}}
    with pytest.raises(ConfigError, match=r"different spec.*\[base\] hours"):
        run_sweep(moved, out, workers=1, progress=False)


def test_a_folder_that_is_not_a_sweep_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and not a sweep folder"):
        run_sweep(SPEC, tmp_path, workers=1, progress=False)


def test_spec_file_and_dict_are_the_same_sweep(tmp_path):
    path = _write(tmp_path, """
        [sweep]
        replications = 2   # two per point
        seed = 11

        [base]
        n_dpgc = 3
        n_users = 10
        hours = 12

        [factors]
        natural_factor = [0.0, 0.2]
        matching = ["price_time", "centralized"]
    """)
    assert load_spec(path).hash == load_spec(SPEC).hash
    assert plan_runs(path) == plan_runs(SPEC)
    numpy_spec = {"sweep": {"replications": np.int64(2), "seed": 11}, "base": TINY,
                  "factors": {"natural_factor": np.array([0.0, 0.2]),
                              "matching": ("price_time", "centralized")}}
    assert load_spec(numpy_spec).hash == load_spec(SPEC).hash


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        run_sweep(SPEC, tmp_path / "f", workers=1, progress=False)


# ----------------------------------------------------------------------------- bad specs
BAD_SPECS = {  # name: (the spec, its lines joined by " | "; what the message must say)
    "toml_syntax": ('[sweep] | seed = 1 | design = "lhs', ["line 3", "not valid TOML"]),
    "unknown_base_key": ("[sweep] | seed = 1 | [base] | hours = 12 | natural_factr = 0.1",
                         ["line 5", "[base] natural_factr", "did you mean 'natural_factor'"]),
    "unknown_factor_key": ('[sweep] | seed = 1 | [factors] | matchng = ["price_time"]',
                           ["line 4", "[factors] matchng", "unknown key"]),
    "range_out_of_bounds": (
        '[sweep] | design = "lhs" | samples = 8 | seed = 1 |  | [factors]'
        ' | breach_tolerance = [0.0, 0.2] | natural_factor = [0.0, 0.5]',
        ["line 8", "[factors] natural_factor", "[0, 0.3)"]),
    "level_out_of_bounds": ("[sweep] | seed = 1 | [factors] | n_users = [10, -5]",
                            ["line 4", "n_users = -5", "[1, "]),
    "unknown_design": ('[sweep] | design = "random" | seed = 1',
                       ["line 2", "[sweep] design", "factorial, lhs, sobol"]),
    "unknown_sweep_key": ("[sweep] | seed = 1 | replicates = 3",
                          ["line 3", "replicates", "did you mean 'replications'"]),
    "unknown_table": ("[sweep] | seed = 1 | [factor] | natural_factor = [0.1]",
                      ["line 3", "[factor]", "did you mean 'factors'"]),
    "missing_seed": ("[sweep] | replications = 2", ["line 1", "seed is missing"]),
    "seed_in_base": ("[sweep] | seed = 1 | [base] | seed = 4",
                     ["line 4", "[base] seed", "[sweep] seed"]),
    "both_base_and_factor": (
        "[sweep] | seed = 1 | [base] | hours = 12 | [factors] | hours = [12, 24]",
        ["line 6", "[factors] hours", "also set in [base]"]),
    "low_above_high": (
        '[sweep] | design = "sobol" | samples = 8 | seed = 1 | [factors]'
        ' | natural_factor = {low = 0.2, high = 0.1}',
        ["line 6", "low must be below high"]),
    "range_of_a_string_key": (
        '[sweep] | design = "lhs" | samples = 8 | seed = 1 | [factors]'
        ' | matching = {low = 0, high = 1}',
        ["line 6", "[factors] matching", "list its levels"]),
    "range_in_factorial": (
        "[sweep] | seed = 1 | [factors] | natural_factor = {low = 0.0, high = 0.2}",
        ["line 4", "factorial design needs levels"]),
    "empty_levels": ("[sweep] | seed = 1 | [factors] | matching = []", ["line 4", "empty list"]),
    "samples_in_factorial": ("[sweep] | seed = 1 | samples = 10",
                             ["line 3", "samples is for design = lhs or sobol"]),
    "lhs_without_samples": (
        '[sweep] | design = "lhs" | seed = 1 | [factors] | natural_factor = [0.0, 0.2]',
        ["line 1", "samples is missing"]),
    "bad_replications": ("[sweep] | seed = 1 | replications = 0",
                         ["line 3", "replications = 0", "integer >= 1"]),
    "point_breaks_a_cross_key_rule": (
        "[sweep] | seed = 1 | [base] | share_wind = 0.3 | [factors] | share_solar = [0.4, 0.6]",
        ["line 6", "design point 1", "share_solar = 0.6", "must sum to 1"]),
    "missing_grid_file": ('[sweep] | seed = 1 | [base] | grid = "no/such/feeder.csv"',
                          ["line 4", "[base] grid", "no such file"]),
    "outcome_unknown_kpi": (
        '[sweep] | seed = 1 | [outcomes] | late = { kpi = "breach_rat", last_hours = 6 }',
        ["line 4", "[outcomes] late", "'breach_rat': not an hourly KPI"]),
    "outcome_kpi_and_ratio": (
        '[sweep] | seed = 1 | [outcomes]'
        ' | x = { kpi = "breach_rate", ratio = ["breaches", "committed_parties"] }',
        ["[outcomes] x", "either kpi (with agg) or ratio"]),
    "outcome_bad_agg": (
        '[sweep] | seed = 1 | [outcomes] | x = { kpi = "breach_rate", agg = "average" }',
        ["[outcomes] x", "agg = 'average': must be one of mean, sum"]),
    "outcome_two_windows": (
        '[sweep] | seed = 1 | [outcomes]'
        ' | x = { kpi = "breach_rate", last_hours = 2, first_days = 1 }',
        ["[outcomes] x", "last_hours and first_days: give at most one window"]),
    "outcome_window_longer_than_run": (
        '[sweep] | seed = 1 | [base] | hours = 12 | [outcomes]'
        ' | late_breach_rate = { kpi = "breach_rate", last_hours = 168, agg = "mean" }',
        ["line 6", "[outcomes] late_breach_rate", "168 h is longer than the run " "(hours = 12)"]),
    "outcome_name_taken": (
        '[sweep] | seed = 1 | [outcomes] | breach_rate = { kpi = "breach_rate", last_days = 1 }',
        ["[outcomes] breach_rate", "already a column of runs.parquet"]),
    "outcome_ratio_shape": (
        '[sweep] | seed = 1 | [outcomes] | cost = { ratio = ["user_cost_yuan"] }',
        ["[outcomes] cost", "must be [numerator, denominator]"]),
    "outcome_bad_window": (
        '[sweep] | seed = 1 | [outcomes] | x = { kpi = "breach_rate", last_hours = 0 }',
        ["[outcomes] x", "last_hours = 0: must be an integer >= 1"]),
}


@pytest.mark.parametrize("name", sorted(BAD_SPECS))
def test_bad_spec_is_refused_before_anything_is_written(name, tmp_path):
    text, needles = BAD_SPECS[name]
    path = _write(tmp_path, text)
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as info:
        run_sweep(path, out, workers=1, progress=False)
    message = str(info.value)
    assert f"sweep spec '{path}'" in message
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)
    assert not out.exists()


def test_bad_dict_spec_names_table_and_key():
    with pytest.raises(ConfigError, match=r"^sweep spec: \[factors\] natural_factor: .*0\.5"):
        design_points({"sweep": {"seed": 1}, "factors": {"natural_factor": [0.1, 0.5]}})


def test_bad_workers_and_missing_spec_file(tmp_path):
    with pytest.raises(ConfigError, match="workers = 0"):
        run_sweep(SPEC, tmp_path / "o", workers=0, progress=False)
    with pytest.raises(ConfigError, match="no such file"):
        run_sweep(tmp_path / "nope.toml", tmp_path / "o", workers=1, progress=False)


# ----------------------------------------------------------------------------- neighbours
def test_mesa_batch_run_with_two_processes():
    rows = pd.DataFrame(mesa.batch_run(
        DIPIModel, parameters={**TINY, "seed": [1, 2]}, max_steps=12,
        number_processes=2, data_collection_period=-1, display_progress=False))
    assert set(rows["seed"]) == {1, 2}
    for seed, at in rows.groupby("seed"):
        want = DIPIModel(seed=int(seed), **TINY).run().datacollector.get_model_vars_dataframe()
        assert (at["hour"] == TINY["hours"]).all()  # the last hour
        np.testing.assert_allclose(at["mean_credit_dpgc"], want["mean_credit_dpgc"].iloc[-1])
        np.testing.assert_allclose(at["p2p_volume_kwh"], want["p2p_volume_kwh"].iloc[-1])


def test_ema_model_function_returns_the_outcomes():
    out = sw.ema_model_function(seed=3, **TINY, natural_factor=0.2)
    assert set(out) == set(sw.EMA_OUTCOMES)
    assert all(isinstance(v, float) for v in out.values())
    assert 0.0 <= out["breach_rate"] <= 1.0
    assert out == sw.ema_model_function(seed=3, **TINY, natural_factor=np.float64(0.2))


# ----------------------------------------------------------------------------- faults
def _children(pid: int) -> dict[int, str]:
    """Live (not zombie) child processes of ``pid`` and their command lines (Linux /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out[int(entry.name)] = cmd
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def _wait_for(condition, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


FAULT_SPEC = """
[sweep]
seed = 3
replications = 12
[base]
n_dpgc = 3
n_users = 10
hours = 1500
"""
FAULT_RUNS = 12  # long enough that runs are left when the spawned workers are up


def _start_sweep(tmp_path: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    spec = _write(tmp_path, FAULT_SPEC)
    cmd = [sys.executable, "-m", "dipi_abm.cli", "sweep", str(spec), "--out", str(out),
           "--workers", "3", "--quiet"]
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True), spec


def _workers(pid: int) -> dict[int, str]:
    return {k: v for k, v in _children(pid).items() if "spawn_main" in v}


def _rows(out: Path) -> list[Path]:
    return sorted((out / "runs").glob("[!.]*.parquet")) if (out / "runs").is_dir() else []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkilled_sweep_leaves_no_worker_and_resumes(tmp_path):
    """Issue 14: a SIGKILLed `dipi-abm sweep --workers 2` took its workers with it.
    (``--workers 3``: the sweep's process runs too, next to two spawned workers.)"""
    out = tmp_path / "out"
    proc, spec = _start_sweep(tmp_path, out)
    try:
        _wait_for(lambda: len(_workers(proc.pid)) == 2 and _rows(out), what="two busy workers")
        family = _children(proc.pid)  # the workers and multiprocessing's resource tracker
        proc.kill()
        proc.wait()
        _wait_for(lambda: not any(_alive(p) for p in family), timeout=30,
                  what=f"the orphans {family} to end")
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert not (out / RUNS_FILE).exists()
    again = subprocess.run([sys.executable, "-m", "dipi_abm.cli", "sweep", str(spec),
                            "--out", str(out), "--workers", "3", "--quiet"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert len(pd.read_parquet(out / RUNS_FILE)) == FAULT_RUNS


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_dead_worker_gives_one_line_exit_1_and_a_resumable_folder(tmp_path):
    out = tmp_path / "out"
    proc, spec = _start_sweep(tmp_path, out)
    try:
        _wait_for(lambda: len(_workers(proc.pid)) == 2 and _rows(out), what="two busy workers")
        victim = min(_workers(proc.pid))
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "worker process died" in lines[0] and "resume" in lines[0] and str(out) in lines[0]
    _wait_for(lambda: not _children(proc.pid), timeout=30, what="the other worker to end")
    finished = len(_rows(out))
    again = subprocess.run([sys.executable, "-m", "dipi_abm.cli", "sweep", str(spec),
                            "--out", str(out), "--workers", "3", "--quiet"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    runs = pd.read_parquet(out / RUNS_FILE)
    assert len(runs) == FAULT_RUNS and finished >= 1


def test_oversized_designs_are_refused_before_they_are_generated(tmp_path):
    """Issue 14: 10^5 x 10^5 factorial levels, 10^9 samples or replications."""
    big = {"low": 0.0, "high": 0.2, "num": 100_000}
    cases = [
        ({"sweep": {"seed": 1}, "factors": {"natural_factor": big,
                                            "breach_tolerance": {**big, "high": 0.5}}},
         "[factors]"),
        ({"sweep": {"seed": 1, "design": "lhs", "samples": 10**9},
          "factors": {"natural_factor": [0.0, 0.2]}}, "[sweep] samples"),
        ({"sweep": {"seed": 1, "replications": 10**9}}, "[sweep] replications"),
        ({"sweep": {"seed": 1}, "factors": {"natural_factor": {**big, "num": 10**9}}},
         "num"),
    ]
    for spec, needle in cases:
        with pytest.raises(ConfigError) as info:
            run_sweep(spec, tmp_path / "o", workers=1, progress=False)
        assert needle in str(info.value) and str(sw.MAX_RUNS) in str(info.value)
        assert not (tmp_path / "o").exists()


def mean_credit_probe(model: DIPIModel) -> dict[str, float]:
    return {"mean_credit": float(model.state.credit.credit.mean()), "hour": model.hour}


def test_a_probe_adds_hourly_columns_and_policy_factors_combine(tmp_path, monkeypatch):
    """probe: extra hourly columns from a function called after every hour; a
    breach_policy factor may list combinations; common seeds pair the points."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    spec = {"sweep": {"seed": 5, "replications": 2, "common_seeds": True,
                      "probe": "test_sweep:mean_credit_probe"},
            "base": {"hours": 3, "n_dpgc": 3, "n_users": 6, "ledger_detail": "off"},
            "factors": {"breach_policy": ["none", ["make_whole", "credit_gate"]]}}
    tasks = plan_runs(spec)
    seeds = {(t.point_id, t.replication): t.seed for t in tasks}
    assert seeds[0, 0] == seeds[1, 0] != seeds[0, 1] == seeds[1, 1]
    runs = run_sweep(spec, tmp_path / "s", workers=1, progress=False)
    assert list(runs.breach_policy) == ["none"] * 2 + ["make_whole+credit_gate"] * 2
    hourly = pd.concat([pd.read_parquet(p) for p in
                        sorted((tmp_path / "s" / "hourly").glob("*/part.parquet"))])
    assert len(hourly) == 4 * 3 and "gated_share" in hourly
    np.testing.assert_array_equal(hourly.probe_hour, hourly.hour)
    assert hourly.probe_mean_credit.between(0, 100).all()
    with pytest.raises(ConfigError, match="probe"):
        plan_runs({**spec, "sweep": {"seed": 5, "probe": "not a function"}})


# ----------------------------------------------------------------------------- outcomes
def _hours_frame(n: int, runs: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"run": np.repeat(np.arange(runs), n), "hour": np.tile(np.arange(n), runs),
                         "breach_rate": rng.random(n * runs),
                         "user_cost_yuan": rng.random(n * runs) * 100,
                         "load_kwh": rng.random(n * runs) * 50 + 1})


def test_outcomes_compute_windows_aggregations_and_ratios():
    h = _hours_frame(72)
    spec = load_spec({"sweep": {"seed": 1}, "outcomes": {
        "late": {"kpi": "breach_rate", "last_hours": 24, "agg": "mean"},
        "early_peak": {"kpi": "breach_rate", "first_days": 1, "agg": "max"},
        "cost": {"ratio": ["user_cost_yuan", "load_kwh"]},
        "late_cost": {"ratio": ["user_cost_yuan", "load_kwh"], "last_days": 2},
        "final": {"kpi": "breach_rate", "agg": "last"}}})
    got = {o.name: o.of(h) for o in spec.outcomes}
    assert got["late"] == pytest.approx(h["breach_rate"].iloc[48:].mean())
    assert got["early_peak"] == pytest.approx(h["breach_rate"].iloc[:24].max())
    assert got["cost"] == pytest.approx(h["user_cost_yuan"].sum() / h["load_kwh"].sum())
    assert got["late_cost"] == pytest.approx(h["user_cost_yuan"].iloc[24:].sum()
                                              / h["load_kwh"].iloc[24:].sum())
    assert got["final"] == h["breach_rate"].iloc[-1]
    zero = h.assign(load_kwh=0.0)
    assert math.isnan(spec.outcomes[2].of(zero))  # no denominator: no ratio


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(1, 4), st.sampled_from(sw_outcomes.AGGREGATIONS),
       st.sampled_from(["first_hours", "last_hours"]))
def test_grouped_outcomes_equal_one_run_at_a_time(n, runs, agg, window):
    """An experiment's per-(arm, replication) outcome is the sweep's per-run outcome."""
    h = _hours_frame(30, runs)
    for o in load_spec({"sweep": {"seed": 1}, "outcomes": {
            "a": {"kpi": "breach_rate", "agg": agg, window: n},
            "r": {"ratio": ["user_cost_yuan", "load_kwh"], window: n}}}).outcomes:
        grouped = o.of(h, by=["run"])
        for run, part in h.groupby("run"):
            assert grouped[run] == pytest.approx(o.of(part), nan_ok=True)


ISSUE_OUTCOMES = """
    [sweep]
    seed = 3
    replications = 2
    common_seeds = true
    hourly = false
    [base]
    hours = 170
    n_dpgc = 3
    n_users = 10
    learning = "roth_erev"
    [factors]
    breach_policy = ["none", "imbalance_penalty"]
    [outcomes]
    late_breach_rate = { kpi = "breach_rate", last_hours = 168, agg = "mean" }
    cost_per_kwh = { ratio = ["user_cost_yuan", "load_kwh"] }
    """


def test_the_issues_outcomes_reach_runs_parquet_and_the_report(tmp_path, capsys):
    from dipi_abm.cli import main

    out = tmp_path / "out"
    assert main(["sweep", str(_write(tmp_path, ISSUE_OUTCOMES)), "--out", str(out),
                 "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "late_breach_rate" in printed and "cost_per_kwh" in printed
    runs = pd.read_parquet(out / RUNS_FILE)
    assert not (out / "hourly").exists()  # computed in the worker, without hourly files
    row = runs.iloc[3]
    params = {k: row[k] for k in ["breach_policy", "hours", "n_dpgc", "n_users", "learning"]}
    h = DIPIModel(seed=int(row["seed"]), **params).run().hourly_dataframe()
    assert row["late_breach_rate"] == pytest.approx(h["breach_rate"].iloc[2:].mean())
    assert row["cost_per_kwh"] == pytest.approx(h["user_cost_yuan"].sum() / h["load_kwh"].sum())
    # a changed outcome is a different spec: the folder refuses it
    other = ISSUE_OUTCOMES.replace("last_hours = 168", "last_hours = 24")
    assert main(["sweep", str(_write(tmp_path, other, "b.toml")), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "[outcomes] late_breach_rate" in err and len(err.strip().splitlines()) == 1


def test_bad_outcome_is_exit_2_before_any_run(tmp_path, capsys):
    from dipi_abm.cli import main

    spec = _write(tmp_path, BAD_SPECS["outcome_unknown_kpi"][0])
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not an hourly KPI" in err
    assert not (tmp_path / "o").exists()


def test_a_rule_varied_among_static_parties_warns_naming_learning():
    spec = {"sweep": {"seed": 1}, "base": TINY,
            "factors": {"breach_policy": ["none", "deposit"]}}
    with pytest.warns(UserWarning, match="breach_policy .* learning = 'roth_erev'"):
        plan_runs(spec)
    for responsive in ({"base": {**TINY, "learning": "roth_erev"}},
                       {"factors": {"breach_policy": ["none", "deposit"],
                                    "learning": ["static", "epsilon_greedy"]}}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plan_runs({**spec, **responsive})


def test_a_run_with_a_policy_and_static_parties_warns_in_one_line(tmp_path, capsys):
    from dipi_abm.cli import main

    args = ["run", "--hours", "2", "--seed", "1", "--set", "n_dpgc=2", "--set", "n_users=4",
            "--set", "breach_policy=deposit", "--no-plots", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dipi-abm: warning: breach_policy = 'deposit'")
    assert "learning = 'roth_erev'" in err[0]
    assert main([*args, "--set", "learning=roth_erev", "--out", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().err == ""
