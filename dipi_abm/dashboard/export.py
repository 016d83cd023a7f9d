"""The dashboard's downloads: the run's tables, summary and figures as file bytes.

The files are the ones ``dipi-abm run --out`` writes (``model.parquet`` for
the hourly KPIs, ``agents.parquet`` for the per-party records,
``summary.json``), taken at the hour on screen, so a download always
matches the page; the hourly KPIs also come as CSV, and each figure as PNG
or SVG (:func:`dipi_abm.dashboard.figures.figure_file`).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..results.files import write_json
from ..results.output import SUMMARY_FILE

if TYPE_CHECKING:
    import pandas as pd

    from ..model import DIPIModel
    from .views import Snapshot

#: (file name, button label, MIME type) of the table downloads, in the order shown.
TABLES: tuple[tuple[str, str, str], ...] = (
    ("model.csv", "Hourly KPIs (CSV)", "text/csv"),
    ("model.parquet", "Hourly KPIs (Parquet)", "application/vnd.apache.parquet"),
    ("agents.parquet", "Per-party records (Parquet)", "application/vnd.apache.parquet"),
    (SUMMARY_FILE, "summary.json", "application/json"),
)
FIGURE_MIME = {"png": "image/png", "svg": "image/svg+xml"}


def hourly_csv(snap: Snapshot) -> bytes:
    """The hourly KPIs up to the hour shown, as CSV (one row per hour, docs/model.md section 9)."""
    return snap.hourly.to_csv(index=False).encode("utf-8")


def hourly_parquet(snap: Snapshot) -> bytes:
    return parquet_bytes(snap.hourly)


def summary_json(snap: Snapshot) -> bytes:
    """summary.json as the command line writes it (non-finite numbers made JSON-safe)."""
    with tempfile.TemporaryDirectory(prefix="dipi-summary-") as tmp:
        path = Path(tmp) / SUMMARY_FILE
        write_json(snap.summary, path)
        return path.read_bytes()


def party_records(model: DIPIModel, upto_hour: int) -> pd.DataFrame:
    """Per party and reported hour up to ``upto_hour``: agents.parquet's columns (hour,
    agent_id, the party reporters, kind, bus). Call it on the model's thread."""
    df = model.agents_dataframe()
    df = df[(df["hour"] > 0) & (df["hour"] <= upto_hour)]
    return df.reset_index(drop=True)


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()
