"""Writing a run's results: Parquet tables, summary.json and plots, atomically.

Every file is written to a temporary name in the same folder and renamed into
place, so a reader never sees a half-written file. ``summary.json`` is
written last: its presence marks a complete output folder.

The command line writes a run into a new hidden sibling folder and swaps it in
for ``--out`` only once complete (:func:`replacing_folder`), so a killed run never
leaves an earlier run's files looking like its own result.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .collect import CreditBand, PartyRecords
from .files import commit_temp, temp_beside, write_json, write_parquet

if TYPE_CHECKING:
    import pyarrow as pa

    from ..model import DIPIModel

SUMMARY_FILE = "summary.json"
#: What a run writes into its folder (``summary.json`` lists the files of each run too).
RESULT_FILES = ("model.parquet", "agents.parquet", "breaches.png", "credit.png",
                "volumes.png", "prices.png", SUMMARY_FILE)


#: Rows per row group of agents.parquet: pyarrow's default, so a file written as the
#: run goes has the row groups (and bytes) that ``DataFrame.to_parquet`` would give it.
ROW_GROUP_ROWS = 1024 * 1024


class PartyParquetStream:
    """agents.parquet written as the run goes, one row group at a time.

    Memory holds at most three row groups (the one being written, the next, and
    the snapshots gathering for the one after) whatever the number of hours.
    The encoding runs on a thread of its own: Arrow releases the GIL while it
    compresses and writes, so on a second core it overlaps the simulation.
    Each record also feeds the plots' :class:`CreditBand`, so the plots need no
    per-party frame.
    """

    def __init__(self, path: Path, records: PartyRecords, band: CreditBand) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.records, self.band = records, band
        # Dictionary pages only where values repeat (hours, ids, kinds, buses, flags): a
        # float column's trial dictionary is thrown away anyway, and trying it doubled
        # the encoding time (a year at 10,000 parties is 87.6 million rows).
        repeating = [f.name for f in records.schema if not pa.types.is_floating(f.type)]
        self._writer = pq.ParquetWriter(path, records.schema, compression="snappy",
                                        use_dictionary=repeating)
        self._pending: list[pa.Table] = []  # the rows a row group left over
        self._hours: list[int] = []  # snapshots not yet made into a table: one table
        self._snaps: list[Mapping[str, np.ndarray]] = []  # per row group, not per hour
        self._rows = 0
        self.rows_written = 0
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write_row_groups, daemon=True,
                                        name="agents.parquet")
        self._thread.start()

    def write(self, hour: int, columns: Mapping[str, np.ndarray]) -> None:
        self.band.add(hour, columns["credit"])
        self._hours.append(hour)
        self._snaps.append(columns)
        self._rows += self.records.n
        while self._rows >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _flush(self, rows: int) -> None:
        import pyarrow as pa

        if self._error is not None:
            raise self._error
        if self._snaps:
            self._pending.append(self.records.table(self._hours, self._snaps))
            self._hours, self._snaps = [], []
        table = pa.concat_tables(self._pending)
        self._queue.put(table.slice(0, rows))
        rest = table.slice(rows)
        self._pending = [rest] if rest.num_rows else []
        self._rows = rest.num_rows
        self.rows_written += rows

    def _write_row_groups(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._error is None:
                try:
                    # One chunk per column, as a DataFrame's table has: the same pages.
                    self._writer.write_table(table.combine_chunks())
                except BaseException as exc:  # noqa: BLE001 - raised in the run's thread
                    self._error = exc

    def close(self) -> None:
        """Write what is left and close the file (raises what the writer met)."""
        if self._rows or not self.rows_written:
            if self._pending or self._snaps:
                self._flush(self._rows)
            else:  # no record at all: an empty table with the schema, as pandas writes it
                self._queue.put(self.records.schema.empty_table())
        self._queue.put(None)
        self._thread.join()
        self._writer.close()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop writing (the caller removes the file)."""
        self._pending, self._hours, self._snaps = [], [], []
        self._error = self._error or RuntimeError("aborted")
        self._queue.put(None)
        self._thread.join()
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - a half-written file is removed anyway
            pass


class ResultsWriter:
    """A run's output folder: agents.parquet streamed as the run goes, the rest at the end.

    Open it before running (``stream=True``): the model's per-party snapshots
    then go to disk as they are taken instead of into memory. ``finish()``
    writes model.parquet, the plots and summary.json (last: its presence
    marks a complete folder); ``discard()`` removes the partial file of a
    run that failed. Every file appears under its name only once complete.
    """

    def __init__(self, model: DIPIModel, out: str | os.PathLike, *, plots: bool = True,
                 stream: bool = True) -> None:
        self.model = model
        self.folder = Path(out)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.plots = plots
        # A stale summary would mark a half-rewritten folder as complete.
        (self.folder / SUMMARY_FILE).unlink(missing_ok=True)
        self.band = CreditBand(model.state.kind, model.params.hours)
        self._tmp: Path | None = temp_beside(self.folder / "agents.parquet")
        try:
            self._stream = PartyParquetStream(self._tmp, PartyRecords(model), self.band)
            if stream:
                model.party_log.stream(self._stream)
            else:  # a run already held in memory: the same writer, fed from the snapshots
                for hour, columns in zip(*model.party_log.held(), strict=True):
                    self._stream.write(hour, columns)
        except BaseException:
            self.discard()
            raise

    def finish(self) -> dict:
        """Write the remaining files; return the summary (as written to summary.json)."""
        if self._tmp is None:
            raise RuntimeError("this output was already finished or discarded")
        model, folder = self.model, self.folder
        self._stream.close()
        commit_temp(self._tmp, folder / "agents.parquet")
        self._tmp = None
        hourly = model.hourly_dataframe()
        write_parquet(hourly, folder / "model.parquet")
        files = ["model.parquet", "agents.parquet"]
        if self.plots:
            from .plots import plot_run

            files += plot_run(hourly, self.band.dataframe(), folder)
        summary = model.summary()
        summary["files"] = files + [SUMMARY_FILE]
        write_json(summary, folder / SUMMARY_FILE)
        return summary

    def discard(self) -> None:
        """Remove the partial agents.parquet of a run that did not finish."""
        if self._tmp is not None:
            stream = getattr(self, "_stream", None)
            if stream is not None:
                stream.abort()
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def write_results(model: DIPIModel, out: str | os.PathLike, *, plots: bool = True) -> dict:
    """Write model.parquet, agents.parquet, the plots and summary.json into ``out``
    for a run whose party records are held in memory (see :class:`ResultsWriter` to
    stream them as the run goes)."""
    return ResultsWriter(model, out, plots=plots, stream=False).finish()


# --------------------------------------------------------------------------- the folder swap
_PART = re.compile(r"^\..+\.part$")


def _sibling(folder: Path, kind: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(folder.name)}\.{kind}-(\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(folder: Path) -> None:
    """Delete what killed runs left: ``.*.part`` files in ``folder`` and the hidden
    sibling folders of runs whose process is gone (a live run's are kept)."""
    if folder.is_dir():
        for entry in folder.iterdir():
            if _PART.match(entry.name) and entry.is_file():
                entry.unlink(missing_ok=True)
    parent = folder.parent
    if not parent.is_dir():
        return
    patterns = [_sibling(folder, kind) for kind in ("partial", "old")]
    for entry in parent.iterdir():
        for pattern in patterns:
            m = pattern.match(entry.name)
            if m and entry.is_dir() and not _alive(int(m[1])):
                shutil.rmtree(entry, ignore_errors=True)


def result_files(folder: Path) -> set[str]:
    """Names a dipi-abm run may have written in ``folder`` (its summary's list included)."""
    known = set(RESULT_FILES)
    try:
        listed = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))["files"]
        known.update(str(f) for f in listed if "/" not in str(f))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return known


def foreign_entries(folder: Path) -> list[str]:
    """Entries of ``folder`` that no dipi-abm run wrote (empty: a result, or nothing)."""
    if not folder.is_dir():
        return []
    known = result_files(folder)
    return sorted(e.name for e in folder.iterdir()
                  if not (e.name in known and e.is_file()) and not _PART.match(e.name))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if not
    available here."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


@contextmanager
def replacing_folder(out: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Yield a new, empty sibling folder to write a run into; swap it in for ``out``
    only when the block completes (issue 14).

    - ``out`` absent or empty, or holding an earlier run's results: the new folder
      replaces it whole (an atomic exchange on Linux).
    - ``out`` holding other files: refused (:class:`ConfigError`) unless ``force``;
      with ``force`` the results are moved in next to those files, ``summary.json``
      last, and an earlier run's result files are removed.

    The earlier ``summary.json`` is removed on entry, so an interrupted run never
    leaves the earlier run looking complete. Temporary files and folders of killed
    runs are removed on entry; the block's own on an exception.
    """
    from ..errors import ConfigError

    target = Path(out).resolve()  # "." and symlinks: swap the real folder, beside it
    if target.parent == target:
        raise ConfigError(f"--out '{out}': the file system root cannot be an output folder")
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--out '{out}': exists and is not a folder")
    foreign = foreign_entries(target)
    if foreign and not force:
        shown = ", ".join(repr(f) for f in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ConfigError(f"--out '{out}': not empty and not a dipi-abm result (it holds "
                          f"{shown}); choose a new or empty folder, or add --force")
    try:
        # The earlier result is being replaced: from now on it must not read as complete.
        (target / SUMMARY_FILE).unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{os.getpid()}-",
                                    dir=target.parent))
    except OSError as exc:
        raise ConfigError(f"--out '{out}': cannot write next to it "
                          f"({exc.strerror or exc})") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; results are an ordinary folder
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_in(tmp, target, foreign)


def _swap_in(tmp: Path, target: Path, foreign: list[str]) -> None:
    if not target.exists():
        os.rename(tmp, target)
        return
    if not foreign:
        if _exchange(tmp, target):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the earlier run
            return
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-",
                                    dir=target.parent))
        os.rename(target, old / "previous")
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
        return
    # --force into a folder with other files: keep them, replace the results.
    for name in result_files(target):
        if (target / name).is_file():
            (target / name).unlink()
    names = sorted(p.name for p in tmp.iterdir())
    for name in [n for n in names if n != SUMMARY_FILE] + [SUMMARY_FILE]:
        if (tmp / name).exists():
            os.replace(tmp / name, target / name)
    shutil.rmtree(tmp, ignore_errors=True)
