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
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from ..model import DIPIModel

SUMMARY_FILE = "summary.json"
#: What a run writes into its folder (``summary.json`` lists the files of each run too).
RESULT_FILES = ("model.parquet", "agents.parquet", "breaches.png", "credit.png",
                "volumes.png", "prices.png", SUMMARY_FILE)


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
