"""Compiled code (numba), only where it pays on a whole run: compiled on first call.

A kernel is *the* definition of its computation (there is no numpy twin); the
tests hold it to a slow, obviously correct reference. Importing the package does
not import numba, and a run that calls no kernel (the default scenario) compiles
nothing. The first call compiles once and says so (:data:`notice`, stderr by
default); the compiled code is cached in a per-user directory, never inside the
installed package: ``NUMBA_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/dipi_abm/numba`` (by default ``~/.cache/dipi_abm/numba``).
Where nothing is writable the kernel compiles in memory, for the process only.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


#: Called with one line before a kernel compiles (the dashboard shows it on its page).
notice: Callable[[str], None] = _to_stderr

#: CPU seconds a cold compile of each kernel takes, numba import included (docs/performance.md).
COMPILE_S = {"the matching engine": 4}


def cache_dir() -> Path | None:
    """The directory kernels are cached in (created), or None if it is not writable."""
    env = os.environ.get("NUMBA_CACHE_DIR")
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    path = Path(env) if env else Path(base) / "dipi_abm" / "numba"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError:
        return None
    return path


@functools.cache
def _numba() -> tuple[Any, Path | None]:
    """numba, its cache pointed at :func:`cache_dir` (None: nothing is cached)."""
    import numba

    where = cache_dir()
    if where is not None:
        numba.config.CACHE_DIR = str(where)
    return numba, where


def kernel(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``fn`` compiled by numba (``njit(nogil=True)``, no fast-math) on its first call and
    cached on disk where possible; ``what`` names it in the one-line notice of a cold
    compile. ``.py_func`` is the plain-Python function (for tests)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        compiled: list[Callable[..., Any]] = []

        def first_call(*args: Any) -> Any:
            numba, where = _numba()
            stamp = None if where is None else where / f"{fn.__module__}.{_digest(fn)}.stamp"
            if stamp is None or not stamp.exists():
                notice(f"dipi-abm: compiling {what}, one time, about "
                       f"{COMPILE_S.get(what, 5)} s")
            dispatcher = numba.njit(cache=where is not None, nogil=True)(fn)
            result = dispatcher(*args)
            compiled.append(dispatcher)
            if stamp is not None:
                stamp.touch()
            return result

        @functools.wraps(fn)
        def run(*args: Any) -> Any:
            return compiled[0](*args) if compiled else first_call(*args)

        run.py_func = fn  # type: ignore[attr-defined]
        return run

    return wrap


def _digest(fn: Callable[..., Any]) -> str:
    """What numba's cache is keyed by: the kernel's source file (path, size, time)."""
    code = fn.__code__.co_filename
    st = os.stat(code)
    key = f"{code}:{st.st_size}:{st.st_mtime_ns}:{fn.__name__}:{sys.version_info[:2]}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
