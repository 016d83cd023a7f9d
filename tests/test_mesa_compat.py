"""Mesa 3.3 and Mesa >= 3.4 (CI runs this suite on both): mesa.batch_run records every
hour, the last included, with the seeds it was given, and nothing we call is deprecated
(the model uses Mesa's public API only: a plain DataCollector for the hourly KPIs).

Mesa 3.3 labels hour h of a run ``Step`` h - 1, Mesa >= 3.4 ``Step`` h; the ``hour``
column of every row says which hour it is on both.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import mesa
import numpy as np
import pandas as pd
import pytest

from dipi_abm import ConfigError, DIPIModel
from dipi_abm.model import HOURLY_KPIS

README = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"  # its Python examples
SMALL = {"n_dpgc": 3, "n_users": 8, "hours": 10}
MESA = tuple(int(x) for x in re.findall(r"\d+", mesa.__version__)[:2])


def _strict_batch_run(**kwargs) -> pd.DataFrame:
    """batch_run in this process with Mesa's deprecations as errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        rows = mesa.batch_run(DIPIModel, number_processes=1, display_progress=False,
                              max_steps=100, **kwargs)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def every_hour():
    return _strict_batch_run(parameters={**SMALL, "seed": [1, 2]}, data_collection_period=1)


@pytest.fixture(scope="module")
def direct():
    return {s: DIPIModel(seed=s, **SMALL).run() for s in (1, 2)}


def test_batch_run_keeps_the_seeds_of_parameters(every_hour, direct):
    assert set(every_hour["seed"]) == {1, 2}
    assert every_hour.groupby("seed")["RunId"].nunique().tolist() == [1, 1]


def test_batch_run_records_every_hour_including_the_last(every_hour, direct):
    """One row per hour (per-party records are the model's own: ``agents_dataframe()``),
    each KPI the model-level value of that hour."""
    for seed, rows in every_hour.groupby("seed"):
        assert rows["hour"].tolist() == list(range(1, SMALL["hours"] + 1))
        assert rows["Step"].nunique() == SMALL["hours"] and "AgentID" not in rows
        want = direct[seed].hourly_dataframe()
        for kpi in HOURLY_KPIS:
            np.testing.assert_allclose(rows[kpi].to_numpy(float), want[kpi].to_numpy(float),
                                       rtol=1e-12, equal_nan=True, err_msg=f"{kpi}, {seed}")


def test_end_of_run_collection_is_the_last_hour(direct):
    rows = _strict_batch_run(parameters={**SMALL, "seed": 1}, data_collection_period=-1)
    assert (rows["hour"] == SMALL["hours"]).all()
    last = direct[1].hourly_dataframe().iloc[-1]
    np.testing.assert_allclose(rows["p2p_volume_kwh"].iloc[0], last["p2p_volume_kwh"])
    np.testing.assert_allclose(rows["breach_rate"].iloc[0], last["breach_rate"], equal_nan=True)


def test_the_model_uses_no_deprecated_mesa_api():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", PendingDeprecationWarning)
        model = DIPIModel(seed=3, **SMALL)
        model.step()
        model.run()
        model.summary()
        model.hourly_dataframe()
        model.agents_dataframe()
    assert model.hour == SMALL["hours"] and not model.running


def test_rng_is_the_seed():
    a = DIPIModel(rng=5, **SMALL).run().hourly_dataframe()
    b = DIPIModel(seed=5, **SMALL).run().hourly_dataframe()
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ConfigError, match="rng = 5 and seed = 6"):
        DIPIModel(rng=5, seed=6, **SMALL)


@pytest.mark.skipif(MESA < (3, 4), reason="batch_run takes rng= from Mesa 3.4 on")
def test_batch_run_rng_seeds_the_runs(every_hour):
    rows = _strict_batch_run(parameters=SMALL, rng=[1, 2], data_collection_period=1)
    assert set(rows["rng"]) == {1, 2}
    for seed in (1, 2):
        got = rows[rows["rng"] == seed].drop_duplicates("hour").set_index("hour")
        want = every_hour[every_hour["seed"] == seed].drop_duplicates("hour").set_index("hour")
        np.testing.assert_allclose(got["p2p_volume_kwh"], want["p2p_volume_kwh"])


def _readme_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"one README python block with {marker!r}"
    return found[0]


def test_readme_batch_run_example_runs_with_two_processes(tmp_path):
    """The README's example, as a script, with its ``__main__`` guard and two processes
    (spawned workers import the script: without the guard they would run it again)."""
    code = _readme_block("mesa.batch_run(")
    assert 'if __name__ == "__main__":' in code and "number_processes=2" in code
    script = tmp_path / "batch.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-W",
                           "error::DeprecationWarning", str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    out = pd.read_csv(tmp_path / "batch_hourly.csv")
    assert set(out["seed"]) == {1, 2}
    # every run has every hour, the last included
    assert (out.groupby("RunId")["hour"].agg(lambda h: sorted(set(h))).map(
        lambda h: h == list(range(1, 49)))).all()


def test_fifty_closed_models_leave_memory_flat():
    """Mesa 3.3 keeps every model in a class-level id table (mesa issue #3179):
    ``release()`` (or ``with DIPIModel(...)``) must free what the model holds anyway.
    """
    import gc
    import os

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    sizes = []
    for i in range(50):
        with DIPIModel(seed=i, hours=2, n_users=1000, ledger_detail="off") as model:
            model.run()
        gc.collect()
        sizes.append(rss())
    # After warm-up (allocator arenas, caches), 40 more models may not add 10 MB:
    # unreleased, about 6.5 MB per 2,000 users.
    assert sizes[-1] - sizes[9] < 10 * 2**20, [s // 2**20 for s in sizes]
