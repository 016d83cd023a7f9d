"""Writing a run's results: Parquet tables, summary.json and plots, atomically.

Every file is written to a temporary name in the same folder and renamed into
place, so a reader never sees a half-written file. ``summary.json`` is
written last: its presence marks a complete output folder.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from ..model import DIPIModel

SUMMARY_FILE = "summary.json"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` and move ``tmp`` onto ``path`` only if it succeeded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):
        return _json_safe(value.item())
    return value


def write_json(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(_json_safe(data), indent=2, sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def party_table(model: DIPIModel) -> pd.DataFrame:
    """agents.parquet: per party and reported hour, with the party's type and bus."""
    df = model.agents_dataframe().rename(columns={"Step": "hour", "AgentID": "agent_id"})
    df = df[df["hour"] > 0].reset_index(drop=True)
    meta = pd.DataFrame({
        "agent_id": model.party_ids,
        "kind": pd.Categorical(["dpgc" if k == 0 else "user" for k in model.state.kind]),
        "bus": [model.grid.buses[b] for b in model.state.bus],
    })
    meta["bus"] = meta["bus"].astype(str)
    return df.merge(meta, on="agent_id", how="left")


def write_results(model: DIPIModel, out: str | os.PathLike, *, plots: bool = True) -> dict:
    """Write model.parquet, agents.parquet, the plots and summary.json into ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    # A stale summary would mark a half-rewritten folder as complete.
    (folder / SUMMARY_FILE).unlink(missing_ok=True)
    hourly = model.hourly_dataframe()
    write_parquet(hourly, folder / "model.parquet")
    write_parquet(party_table(model), folder / "agents.parquet")
    files = ["model.parquet", "agents.parquet"]
    if plots:
        from .plots import plot_run

        files += plot_run(hourly, model.agents_dataframe(), model, folder)
    summary = model.summary()
    summary["files"] = files + [SUMMARY_FILE]
    write_json(summary, folder / SUMMARY_FILE)
    return summary
