"""Errors raised for bad input, and how every failure ends: one line and an exit status."""

from __future__ import annotations

import errno
import re
import sqlite3

#: Exit statuses of the command line (documented in docs/robustness.md).
EXIT_FAILED = 1  # the run could not finish: disk full, I/O error, out of memory, a run failed
EXIT_BAD_INPUT = 2  # a key, value, file or path was refused before anything was written
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

#: errno values that mean the machine, not the input, stopped the work.
_RESOURCE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.ENOMEM})


class ConfigError(ValueError):
    """A parameter, grid or file is invalid.

    The message is one line that names the key or file and what is allowed;
    the command line prints it and exits with status 2.
    """


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def one_line(text: object, limit: int = 1000) -> str:
    """``text`` as one printable line: control characters (ANSI escapes included) shown
    escaped, line breaks folded, and at most ``limit`` characters."""
    flat = " ".join(str(text).split("\n"))
    flat = _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode(), flat)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def was_interrupted(exc: BaseException) -> bool:
    """True if ``exc`` is, or was raised while handling, a KeyboardInterrupt (numba turns a
    Ctrl-C during compilation into a SystemError whose context is the interrupt)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def fault(exc: BaseException) -> tuple[int, str] | None:
    """The exit status and one-line message for a failure the command line reports
    without a traceback; None for a bug (which keeps its traceback)."""
    if was_interrupted(exc):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, ConfigError):
        return EXIT_BAD_INPUT, f"error: {one_line(exc)}"
    if isinstance(exc, RecursionError):
        return EXIT_BAD_INPUT, ("error: a value is nested too deeply to be read (a TOML array "
                                "or table inside itself hundreds of times)")
    if isinstance(exc, MemoryError):
        return EXIT_FAILED, ("error: out of memory; lower hours or the number of parties or "
                             "buses, or set memory_limit_gb so the run is refused before it starts")
    if isinstance(exc, sqlite3.Error):  # the ledger file: full disk, read-only, locked
        full = "full" in str(exc)
        return (EXIT_FAILED if full else EXIT_BAD_INPUT), f"error: ledger: {one_line(exc)}"
    if isinstance(exc, RuntimeError) and str(exc).startswith("Symlink loop"):  # resolve()
        return EXIT_BAD_INPUT, f"error: {one_line(exc)}"
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else ""
        where = f"'{one_line(name, 120)}': " if name != "" else ""
        what = exc.strerror or one_line(exc)
        status = EXIT_FAILED if exc.errno in _RESOURCE_ERRNOS else EXIT_BAD_INPUT
        return status, f"error: {where}{what}"
    return None
