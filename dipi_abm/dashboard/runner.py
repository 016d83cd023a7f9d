"""One dashboard session's model: built, stepped and read on the session's own thread.

Solara calls event handlers and runs Play loops on different threads. The
model may hold thread-bound resources (the ledger's SQLite connection), so
everything that touches it (building, stepping, reading the ledger,
verifying it, exporting its records) runs on one worker thread, and the page
only ever sees :class:`~dipi_abm.dashboard.views.Snapshot` copies.

Each browser session has its own :class:`ModelRunner` and so its own worker
thread: two tabs step their models side by side and only share the CPU (a
10,000-party run in one tab does not queue a 60-party step in another).

Stopping: :meth:`ModelRunner.request_stop` is honoured between hours, so a
Pause during a 24-hour frame stops after the hour being computed, and the
snapshot returned is always the hour the model has reached.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import ConfigError
from ..model import DIPIModel
from .views import Snapshot, take_snapshot, verify_message

T = TypeVar("T")
log = logging.getLogger(__name__)

THREAD_PREFIX = "dipi-model"
_builds = iter(range(1, 1 << 62))
_builds_lock = threading.Lock()


def _next_build() -> int:
    with _builds_lock:
        return next(_builds)


class ModelRunner:
    """Holds a session's current model and its worker thread; a failed rebuild keeps
    the previous model."""

    def __init__(self) -> None:
        self.model: DIPIModel | None = None
        self.build = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_PREFIX)
        self._stop = threading.Event()
        self._drawn = threading.Condition()
        self._drawn_key: Any = None
        self._closed = False
        self._worker: threading.Thread | None = None
        # A session that ends without close() still releases its thread.
        self._finalizer = weakref.finalize(self, self._executor.shutdown, wait=False)

    # ------------------------------------------------------------------ the worker
    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on this session's model thread; returns its result (or raises)."""
        if threading.current_thread() is self._worker:  # already on it (nested call)
            return fn(*args)
        if self._closed:
            raise RuntimeError("this dashboard session is closed")
        return self._executor.submit(self._on_worker, fn, args).result()

    def _on_worker(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        self._worker = threading.current_thread()
        return fn(*args)

    def close(self) -> None:
        """End the session: release the model's ledger and the worker thread."""
        if self._closed:
            return
        self._stop.set()
        model, self.model = self.model, None
        if model is not None:
            try:
                self.call(_release, model)
            except RuntimeError:  # pragma: no cover - the executor is already gone
                pass
        self._closed = True
        self._executor.shutdown(wait=False)
        self._finalizer.detach()

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self.model is not None and bool(self.model.running)

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Stop the current multi-hour step after the hour being computed (Pause)."""
        self._stop.set()
        with self._drawn:
            self._drawn.notify_all()

    def clear_stop(self) -> None:
        self._stop.clear()

    def wait_for_stop(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once when a stop is requested; True if it was."""
        return self._stop.wait(max(0.0, seconds))

    def mark_drawn(self, key: Any) -> None:
        """The page has drawn the snapshot ``key`` (build, hour)."""
        with self._drawn:
            self._drawn_key = key
            self._drawn.notify_all()

    def wait_drawn(self, key: Any, seconds: float) -> bool:
        """Wait until snapshot ``key`` is drawn (or a stop is requested, or ``seconds``
        pass); True if it was drawn."""
        with self._drawn:
            self._drawn.wait_for(lambda: self._drawn_key == key or self._stop.is_set(),
                                 seconds)
            return self._drawn_key == key

    # ------------------------------------------------------------------ actions
    def rebuild(self, values: Mapping[str, Any]) -> Snapshot:
        """A new model from checked scenario values; raises ConfigError and keeps the
        current model if the model refuses them (a bad grid file, too many parties
        per bus, ...)."""
        build = _next_build()

        def make() -> tuple[DIPIModel, Snapshot]:
            model = DIPIModel(**dict(values))
            return model, take_snapshot(model, build)

        try:
            model, snap = self.call(make)
        except ConfigError:
            raise
        except Exception as exc:  # the page shows it; the server log keeps the traceback
            log.exception("building the model failed")
            raise ConfigError(f"the model could not be built: {type(exc).__name__}: {exc}") \
                from exc
        old, self.model, self.build = self.model, model, build
        if old is not None:
            self.call(_release, old)
        return snap

    def step(self, hours: int = 1, *, stoppable: bool = False) -> Snapshot:
        """Advance up to ``hours`` hours (not past the run's end) and snapshot.

        With ``stoppable``, a :meth:`request_stop` ends the frame after the hour
        being computed (Play frames); a Step click always completes its hours.
        """
        if self.model is None:
            raise RuntimeError("no model: rebuild first")
        model, build = self.model, self.build
        stop = self._stop

        def advance() -> Snapshot:
            if self.build != build:  # a Reset released this model meanwhile
                return take_snapshot(self.model, self.build)
            for _ in range(max(1, int(hours))):
                if not model.running or (stoppable and stop.is_set()):
                    break
                model.step()
            return take_snapshot(model, build)

        return self.call(advance)

    def snapshot(self) -> Snapshot | None:
        if self.model is None:
            return None
        model, build = self.model, self.build
        return self.call(take_snapshot, model, build)

    def read(self, fn: Callable[[DIPIModel], T]) -> T:
        """``fn(model)`` on the model thread (exports read the per-party records this way)."""
        if self.model is None:
            raise RuntimeError("no model: rebuild first")
        return self.call(fn, self.model)

    def verify(self) -> tuple[bool, str]:
        """(ok, message) from ``model.verify_ledger()``; says so when there is none."""
        model = self.model
        verify = getattr(model, "verify_ledger", None)
        if model is None or not callable(verify):
            return False, "This model has no verify_ledger(): the ledger is not available."
        if getattr(model, "ledger", None) is None:
            return False, "Ledger off: this model keeps no ledger to verify."
        try:
            report = self.call(verify)
        except Exception as exc:
            log.exception("verifying the ledger failed")
            return False, f"Verification failed to run: {type(exc).__name__}: {exc}"
        return verify_message(report)


def _release(model: DIPIModel) -> None:
    """Free a replaced or closed model (its ledger connection and memory) on the model
    thread; a Reset or a closed session must not keep the old model alive."""
    try:
        model.release()
    except Exception:  # releasing is best effort
        log.debug("releasing the old model failed", exc_info=True)
