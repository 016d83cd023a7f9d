"""experiments/incentive_experiment.py runs end to end in --quick mode (a few seconds)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_incentive_experiment_quick(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    mod = importlib.import_module("incentive_experiment")
    arms = set(mod.ARMS)
    assert arms == {"cma_live", "cma_frozen", "centralized", "gate", "reward"}

    top2, top1 = tmp_path / "two_workers", tmp_path / "one_worker"
    rules = ["--learning", "roth_erev", "q_learning"]
    table = mod.main(["--quick", "--out", str(top2), "--workers", "2", *rules])
    out2, out1 = top2 / "q_learning", top1 / "q_learning"
    runs = pd.read_csv(out2 / "incentive_experiment_runs.csv")
    daily = pd.read_csv(out2 / "incentive_experiment_daily.csv")
    summary = pd.read_csv(out2 / "incentive_experiment.csv")
    assert (out2 / "incentive_experiment.png").stat().st_size > 10_000
    assert (top2 / "incentive_deterrence.png").stat().st_size > 10_000
    assert not list(top2.rglob(".*.part"))  # atomic writes left no temporary file behind

    # The deterrence table: each learning rule's paired differences, arm minus control.
    det = pd.read_csv(top2 / "incentive_deterrence.csv")
    pd.testing.assert_frame_equal(det, table.reset_index(drop=True), check_dtype=False)
    assert set(det.learning) == {"roth_erev", "q_learning"}
    assert set(det.comparison) == {f"{a} - {b}" for a, b in mod.COMPARISONS}
    assert (det.ci_low <= det["mean"] + 1e-12).all()

    # One row per (arm, replication) with the summary KPIs; the same seeds in every arm.
    assert list(runs.columns) == mod.RUN_COLUMNS
    assert set(runs.arm) == arms and len(runs) == 5 * 2
    assert runs.groupby("replication").seed.nunique().eq(1).all()
    for col in ("breach_rate", "transaction_efficiency", "price_std", "user_cost_yuan",
                "clean_share", "mean_credit_dpgc", "mean_credit_user",
                "commitment_ratio_first", "bid_volume_ratio_last"):
        assert col in runs.columns
    assert runs.breach_rate.between(0, 1).all()
    frozen = runs[runs.arm.isin(["cma_frozen", "centralized"])]
    assert (frozen.mean_credit_dpgc == 100).all() and (frozen.mean_credit_user == 100).all()
    central = runs[runs.arm == "centralized"]
    assert (central.transaction_efficiency == 0).all() and (central.clean_share == 0).all()

    # Per day and arm: mean and 95 % CI of every series, CI around the mean.
    assert list(daily.columns) == mod.DAILY_COLUMNS
    assert set(daily.arm) == arms and sorted(set(daily.day)) == [1, 2, 3]
    ok = daily.breach_rate_ci_low.notna()
    assert ok.any()
    assert (daily.breach_rate_ci_low[ok] <= daily.breach_rate_mean[ok] + 1e-12).all()
    assert (daily.breach_rate_mean[ok] <= daily.breach_rate_ci_high[ok] + 1e-12).all()
    assert list(summary.columns) == mod.SUMMARY_COLUMNS
    assert arms | {f"{a} - {b}" for a, b in mod.COMPARISONS} == set(summary.arm)

    # The results do not depend on the number of worker processes.
    mod.main(["--quick", "--out", str(top1), "--workers", "1", "--learning", "q_learning"])
    pd.testing.assert_frame_equal(runs, pd.read_csv(out1 / "incentive_experiment_runs.csv"))
    pd.testing.assert_frame_equal(daily, pd.read_csv(out1 / "incentive_experiment_daily.csv"))

    # Bad input is rejected before anything runs.
    with pytest.raises(SystemExit):
        mod.main(["--quick", "--out", str(tmp_path / "bad"), "--set", "matching=cma"])
    with pytest.raises(SystemExit):
        mod.main(["--quick", "--out", str(tmp_path / "bad"), "--set", "learning=static"])
    with pytest.raises(SystemExit):
        mod.main(["--quick", "--out", str(tmp_path / "bad"), "--set", "natural_factor=0.4"])
    assert not (tmp_path / "bad").exists()
    assert np.isfinite(runs.seed).all()
