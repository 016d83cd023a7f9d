"""Disk a run or sweep will write, checked against the free space of each target before
the first hour (docs/robustness.md). Memory estimates live with the scenario keys
(:func:`dipi_abm.config.estimate_resources`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

# Bytes on disk, measured on `dipi-abm run --hours 168 --set n_users=2000` (2,060 parties)
# and the 100,000-party year of issue 23; generous rounding up.
AGENT_RECORD_BYTES = 24  # agents.parquet per party record (measured 15 and 23.4)
HOUR_BYTES = 600  # model.parquet per hour (measured 435)
FIXED_BYTES = 4 * 2**20  # summary.json and the PNG plots
LEDGER_HOUR_BYTES = {"off": 0, "digest": 6_000, "full": 6_000}  # measured 4.8 kB
LEDGER_PARTY_HOUR_BYTES = {"off": 0, "digest": 0, "full": 350}  # full: measured 304
#: Left free on every file system (the system and other programs need it too).
RESERVE_BYTES = 64 * 2**20


def run_disk_needs(p: Mapping[str, Any], out: str | os.PathLike,
                   ledger: str | os.PathLike | None = None) -> list[tuple[Path, str, float]]:
    """(target, what, bytes) of every output of one run."""
    n, hours = p["n_dpgc"] + p["n_users"], p["hours"]
    snapshots = hours // p["agent_report_every"] + 2
    needs = [(Path(out), "agents.parquet, model.parquet and plots",
              AGENT_RECORD_BYTES * n * snapshots + HOUR_BYTES * hours + FIXED_BYTES)]
    if ledger:
        detail = p["ledger_detail"]
        # Twice the ledger: its periods wait in the -wal until close folds them into the file.
        needs.append((Path(ledger), f"the {detail} ledger and its log",
                      2 * hours * (LEDGER_HOUR_BYTES[detail]
                                   + LEDGER_PARTY_HOUR_BYTES[detail] * n)))
    return needs


def sweep_disk_needs(runs: list[Mapping[str, Any]], out: str | os.PathLike,
                     hourly: bool) -> list[tuple[Path, str, float]]:
    """(target, what, bytes) of a sweep's rows and hourly KPIs (runs keep no per-party
    records)."""
    per_run = [4096 + (HOUR_BYTES * r["hours"] if hourly else 0) for r in runs]
    return [(Path(out), f"{len(runs)} runs' rows and hourly KPIs", 2.0 * sum(per_run))]


def check_disk(needs: list[tuple[Path, str, float]]) -> None:
    """Refuse, in one line naming the target, when a file system lacks the room for what
    will be written to it (targets on one file system add up)."""
    by_device: dict[int, list[tuple[Path, str, float]]] = {}
    for target, what, amount in needs:
        base = _existing_ancestor(target)
        by_device.setdefault(base.stat().st_dev, []).append((base, what, amount))
    for items in by_device.values():
        base = items[0][0]
        free = shutil.disk_usage(base).free - RESERVE_BYTES
        total = sum(a for _, _, a in items)
        if total > free:
            what = " and ".join(w for _, w, _ in items)
            raise ConfigError(
                f"'{base}': {what} would need about {_size(total)} but the file system has "
                f"{_size(max(free, 0))} free; free some space, choose another location, "
                "or raise agent_report_every (fewer per-party records)")


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return candidate
        except OSError:  # a name too long, a loop: the caller's own check reports it
            continue
    return Path(path.anchor or "/")


def _size(x: float) -> str:
    return f"{x / 2**30:.3g} GiB" if x >= 2**30 else f"{x / 2**20:.3g} MiB"
