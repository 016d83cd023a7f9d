"""Result files: agents.parquet streamed as the run goes, agents_dataframe(), the plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

from dipi_abm import DIPIModel
from dipi_abm.results import output, plots
from dipi_abm.results.collect import DAILY_AFTER_HOURS, PARTY_TABLE_COLUMNS, CreditBand
from dipi_abm.results.output import ResultsWriter, write_results

SMALL = {"n_dpgc": 5, "n_users": 20}


def _streamed(tmp_path, **kw):
    model = DIPIModel(**kw)
    out = ResultsWriter(model, tmp_path / "streamed", plots=False)
    model.run()
    return model, out.finish()


def test_streamed_file_is_the_in_memory_table_byte_for_byte(tmp_path):
    kw = dict(seed=5, hours=30, agent_report_every=4, **SMALL)
    streamed, summary = _streamed(tmp_path, **kw)
    held = DIPIModel(**kw).run()
    write_results(held, tmp_path / "held", plots=False)
    for name in ("agents.parquet", "model.parquet"):
        streamed_bytes = (tmp_path / "streamed" / name).read_bytes()
        assert streamed_bytes == (tmp_path / "held" / name).read_bytes()
    frame = held.agents_dataframe()
    assert list(frame.columns) == list(PARTY_TABLE_COLUMNS)
    assert_frame_equal(pd.read_parquet(tmp_path / "streamed" / "agents.parquet"), frame,
                       check_exact=True)
    assert sorted(frame["hour"].unique()) == [4, 8, 12, 16, 20, 24, 28, 30]
    assert set(frame["kind"]) == {"dpgc", "user"}
    dpgc = frame["kind"] == "dpgc"
    assert dpgc.sum() == 8 * 5 and frame["bus"].notna().all()
    assert summary["files"][-1] == "summary.json"


def test_streaming_holds_one_row_group_at_most(tmp_path, monkeypatch):
    monkeypatch.setattr(output, "ROW_GROUP_ROWS", 60)
    model = DIPIModel(seed=2, hours=20, **SMALL)
    out = ResultsWriter(model, tmp_path, plots=False)
    most = 0
    for _ in range(20):
        model.step()
        most = max(most, out._stream._rows)
        assert model.party_log.snapshots == []  # nothing kept in memory
    assert most < 60 + 25
    out.finish()
    meta = pq.ParquetFile(tmp_path / "agents.parquet").metadata
    assert meta.num_rows == 20 * 25
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [60] * 8 + [20]
    ref = DIPIModel(seed=2, hours=20, **SMALL).run().agents_dataframe()
    assert_frame_equal(pd.read_parquet(tmp_path / "agents.parquet"), ref, check_exact=True)
    with pytest.raises(RuntimeError, match="agents.parquet"):
        model.agents_dataframe()


def test_a_failed_run_leaves_no_partial_file(tmp_path):
    model = DIPIModel(seed=1, hours=5, **SMALL)
    out = ResultsWriter(model, tmp_path, plots=False)
    model.run(2)
    assert list(tmp_path.glob(".agents.parquet.*.part"))
    out.discard()
    assert list(tmp_path.iterdir()) == []


def test_no_hours_run_gives_an_empty_table_with_the_columns(tmp_path):
    model = DIPIModel(seed=1, hours=5, **SMALL)  # not run
    write_results(model, tmp_path, plots=False)
    df = pd.read_parquet(tmp_path / "agents.parquet")
    assert list(df.columns) == list(PARTY_TABLE_COLUMNS) and len(df) == 0
    assert_frame_equal(df, model.agents_dataframe())


def test_credit_band_is_daily_for_long_runs():
    kind = np.array([0, 0, 1, 1, 1])
    credit = np.array([90.0, 100.0, 50.0, 60.0, 70.0], np.float32)
    short = CreditBand(kind, hours=48)
    long = CreditBand(kind, hours=DAILY_AFTER_HOURS + 1)
    for hour in range(1, 49):
        short.add(hour, credit)
        long.add(hour, credit)
    assert len(short.rows) == 48 and [r[0] for r in long.rows] == [24, 48]
    row = short.dataframe().iloc[0]
    assert row["dpgc_mean"] == 95.0 and row["dpgc_p10"] == 91.0 and row["dpgc_p90"] == 99.0
    assert row["user_p10"] == pytest.approx(52.0) and row["user_p90"] == pytest.approx(68.0)


def test_credit_axis_fits_the_data():
    band = pd.DataFrame({"hour": [1, 2], "dpgc_mean": [97.0, 98.0], "dpgc_p10": [92.0, 93.0],
                         "dpgc_p90": [100.0, 100.0], "user_mean": [96.0, 97.0],
                         "user_p10": [93.0, 94.0], "user_p90": [99.0, 100.0]})
    lo, hi = plots.credit_limits(band)
    assert 90.0 < lo < 92.0 and 100.0 <= hi <= 100.5
    # at the scale's ends the axis stops there
    band[["dpgc_p10", "user_p10"]] = 0.0
    assert plots.credit_limits(band)[0] == 0.0


@pytest.fixture(scope="module")
def hourly_48():
    return DIPIModel(seed=3, hours=48, **SMALL).run().hourly_dataframe()


def _long(hourly: pd.DataFrame, days: int) -> pd.DataFrame:
    reps = -(-days * 24 // len(hourly))
    df = pd.concat([hourly] * reps, ignore_index=True).iloc[: days * 24].copy()
    df["hour"] = np.arange(1, len(df) + 1)
    return df


@pytest.fixture
def figures(monkeypatch):
    figs: list = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig))
    yield figs
    for fig in figs:
        plots.plt.close(fig)


def _points(fig) -> int:
    n = 0
    for ax in fig.axes:
        n += sum(len(line.get_xdata()) for line in ax.lines)
        n += sum(len(p.vertices) for c in ax.collections for p in c.get_paths())
    return n


def test_plots_draw_one_artist_per_series_and_per_day_in_long_runs(figures, hourly_48):
    figs = figures
    band = pd.DataFrame([(24.0 * d, 97, 95, 99, 96, 93, 99) for d in range(1, 366)],
                        columns=list(CreditBand.FIELDS))
    for days in (30, 365):
        plots.plot_run(_long(hourly_48, days), band, Path("unused"))
    month, year = figs[:4], figs[4:]
    for a, b in zip(month, year, strict=True):
        artists = [(len(ax.lines), len(ax.collections), len(ax.patches)) for ax in a.axes]
        assert artists == [(len(ax.lines), len(ax.collections), len(ax.patches))
                           for ax in b.axes]
        assert _points(b) < 40 * 365  # per day, not per hour (8,760 hours)
    # breaches: both panels have a legend
    assert all(ax.get_legend() is not None for ax in month[0].axes)


def test_legends_do_not_cover_the_data(figures, hourly_48):
    figs = figures
    band = pd.DataFrame([(h, 97, 95, 99, 96, 93, 99) for h in range(1, 721)],
                        columns=list(CreditBand.FIELDS))
    hourly = _long(hourly_48, 30)
    plots.plot_volumes(hourly, None)
    plots.plot_credit(band, None)
    plots.plot_prices(hourly, None)
    plots.plot_breaches(hourly, None)
    for fig in figs:
        fig.canvas.draw()
        for ax in fig.axes:
            legend = ax.get_legend().get_window_extent()
            box = ax.get_window_extent()
            assert legend.y1 <= box.y0 or legend.x0 >= box.x1  # below or right of the axes
