"""Appending a ledger's periods off the hour's path, in order, on one background thread.

Hashing a period's records (about 1 MB an hour at 10,000 parties: every order,
contract, transfer and credit update), signing its three blocks and writing
them to SQLite does not decide anything the market needs next, unless the
block's producer is found by a nonce race over the LH1 Merkle root (hashed
POCA), which the model then does inline. So the model hands each period to a
:class:`PeriodWriter` and goes on with the next hour while a worker thread
appends it. ``hashlib`` and ``sqlite3`` release the GIL while they work on a
period's buffers, so on a machine with a free core the two overlap.

What is written does not depend on timing: periods are appended one at a time,
in the order they were handed over, by the same code as an inline append, so
the chains are identical block for block (signatures included: Ed25519 is
deterministic). The queue is short (``depth`` periods), so memory stays flat if
the worker falls behind: the hour then waits. An exception in the worker is
raised again in the caller at its next call, and the failed period's
transaction is rolled back, so the ledger keeps whole periods only.

The worker stops after ``idle`` seconds without work, so a model dropped without
``close()`` does not leave a thread behind.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["PeriodWriter"]


class PeriodWriter:
    """An ordered queue of jobs run by one worker thread, started on demand."""

    def __init__(self, work: Callable[[Any], None], *, depth: int = 4, idle: float = 0.5,
                 name: str = "dipi-ledger") -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._work = work
        self._depth = depth
        self._idle = idle
        self._name = name
        self._jobs: deque[Any] = deque()
        self._busy = False
        self._error: BaseException | None = None
        self._reported = False
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()

    def submit(self, job: Any) -> None:
        """Queue ``job`` (waits while ``depth`` jobs are already waiting); raises the
        exception of an earlier job that failed."""
        with self._cond:
            while len(self._jobs) >= self._depth and self._error is None:
                self._cond.wait()
            self._raise()
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            else:
                self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every queued job is done; raises the exception of a job that failed."""
        with self._cond:
            while (self._jobs or self._busy) and self._error is None:
                self._cond.wait()
            self._raise()

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        with self._cond:
            return len(self._jobs) + int(self._busy)

    @property
    def reported(self) -> bool:
        """A job failed and its exception has been raised to a caller."""
        return self._reported

    def _raise(self) -> None:
        if self._error is not None:
            self._reported = True
            raise self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    if not self._cond.wait(timeout=self._idle) and not self._jobs:
                        self._thread = None
                        return
                job = self._jobs.popleft()
                self._busy = True
                self._cond.notify_all()
            try:
                self._work(job)
            except BaseException as exc:  # handed to the caller, which re-raises it
                with self._cond:
                    self._error = exc
                    self._jobs.clear()
                    self._busy = False
                    self._thread = None
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy = False
                self._cond.notify_all()
