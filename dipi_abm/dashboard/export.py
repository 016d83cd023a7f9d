"""The dashboard's downloads: the run's tables, summary and figures as file bytes.

The files are the ones ``dipi-abm run --out`` writes (``model.parquet`` for
the hourly KPIs, ``agents.parquet`` for the per-party records,
``summary.json``), taken at the hour on screen, so a download always
matches the page; the hourly KPIs also come as CSV, and each figure as PNG
or SVG (:func:`dipi_abm.dashboard.figures.figure_file`).

The scenario on screen is saved as TOML that ``dipi-abm run --config`` reads
(:func:`scenario_toml`), or given as the equivalent command line
(:func:`scenario_command`): every key that differs from its default, plus the
run's seed, so the command line replays the dashboard's run.
"""

from __future__ import annotations

import io
import json
import math
import re
import shlex
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config as cfg
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


def scenario_values(params: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """The run's keys that differ from their defaults, in registry order, with its seed
    (the one drawn when the seed field was empty) and its length."""
    out: dict[str, Any] = {}
    for p in cfg.all_params():
        if p.name in params and (params[p.name] != p.default or p.name == "hours"):
            out[p.name] = params[p.name]
    # A key left empty by default is filled from the others (agent_report_every from the
    # run's size): it is part of the scenario only where it differs from that filled value.
    filled = [p.name for p in cfg.all_params() if p.default is None and p.name in out]
    if filled:
        derived = cfg.validate({k: v for k, v in out.items() if k not in filled})
        out = {k: v for k, v in out.items() if k not in filled or derived[k] != v}
    if seed is not None:
        out["seed"] = int(seed)
    out.pop("ledger", None)  # a ledger file is an output (--ledger), not part of the scenario
    return out


def toml_value(value: Any) -> str:
    """A scenario value as TOML (strings quoted; inf as TOML's inf)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def scenario_toml(params: dict[str, Any], seed: int | None) -> str:
    """The scenario as a ``dipi-abm run --config`` file."""
    lines = ["# dipi-abm scenario saved from the dashboard: dipi-abm run --config THIS.toml",
             "# (keys that differ from their defaults; `dipi-abm keys` lists them all)"]
    lines += [f"{k} = {toml_value(v)}" for k, v in scenario_values(params, seed).items()]
    return "\n".join(lines) + "\n"


def scenario_command(params: dict[str, Any], seed: int | None) -> str:
    """The same run as one ``dipi-abm run`` command line (shell-quoted)."""
    values = scenario_values(params, seed)
    args = ["dipi-abm", "run"]
    for key in ("hours", "seed"):
        if key in values:
            args += [f"--{key}", str(values.pop(key))]
    for key, value in values.items():
        bare = isinstance(value, str) and re.fullmatch(r"[A-Za-z_][\w+]*", value) and \
            value.lower() not in ("true", "false", "inf", "nan")  # --set reads it as text
        args += ["--set", f"{key}={value if bare else toml_value(value)}"]
    return shlex.join(args)
