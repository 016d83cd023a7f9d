"""One dashboard session's model: built, stepped and read on one worker thread.

Solara calls event handlers and runs Play loops on different threads. The
model may hold thread-bound resources (the ledger's SQLite connection), so
everything that touches it — building, stepping, reading the ledger,
verifying it — runs on a single worker thread, and the page only ever sees
:class:`~dipi_abm.dashboard.views.Snapshot` copies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import ConfigError
from ..model import DIPIModel
from .views import Snapshot, take_snapshot, verify_message

T = TypeVar("T")
log = logging.getLogger(__name__)

_MODEL_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dipi-model")
_builds = iter(range(1, 1 << 62))
_builds_lock = threading.Lock()


def on_model_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on the model thread and return its result (or raise its error)."""
    if threading.current_thread().name.startswith("dipi-model"):
        return fn(*args)
    return _MODEL_THREAD.submit(fn, *args).result()


def _next_build() -> int:
    with _builds_lock:
        return next(_builds)


class ModelRunner:
    """Holds a session's current model; a failed rebuild keeps the previous one."""

    def __init__(self) -> None:
        self.model: DIPIModel | None = None
        self.build = 0

    @property
    def running(self) -> bool:
        return self.model is not None and bool(self.model.running)

    def rebuild(self, values: Mapping[str, Any]) -> Snapshot:
        """A new model from checked scenario values; raises ConfigError and keeps the
        current model if the model refuses them (a bad grid file, too many parties
        per bus, ...)."""
        build = _next_build()

        def make() -> tuple[DIPIModel, Snapshot]:
            model = DIPIModel(**dict(values))
            return model, take_snapshot(model, build)

        try:
            model, snap = on_model_thread(make)
        except ConfigError:
            raise
        except Exception as exc:  # the page shows it; the server log keeps the traceback
            log.exception("building the model failed")
            raise ConfigError(f"the model could not be built: {type(exc).__name__}: {exc}") \
                from exc
        old, self.model, self.build = self.model, model, build
        if old is not None:
            on_model_thread(_close_ledger, old)
        return snap

    def step(self, hours: int = 1) -> Snapshot:
        """Advance up to ``hours`` hours (not past the run's end) and snapshot."""
        if self.model is None:
            raise RuntimeError("no model: rebuild first")
        model, build = self.model, self.build

        def advance() -> Snapshot:
            for _ in range(max(1, int(hours))):
                if not model.running:
                    break
                model.step()
            return take_snapshot(model, build)

        return on_model_thread(advance)

    def snapshot(self) -> Snapshot | None:
        if self.model is None:
            return None
        model, build = self.model, self.build
        return on_model_thread(take_snapshot, model, build)

    def verify(self) -> tuple[bool, str]:
        """(ok, message) from ``model.verify_ledger()``; says so when there is none."""
        model = self.model
        verify = getattr(model, "verify_ledger", None)
        if model is None or not callable(verify):
            return False, "This model has no verify_ledger(): the ledger is not available."
        if getattr(model, "ledger", None) is None:
            return False, "Ledger off: this model keeps no ledger to verify."
        try:
            report = on_model_thread(verify)
        except Exception as exc:
            log.exception("verifying the ledger failed")
            return False, f"Verification failed to run: {type(exc).__name__}: {exc}"
        return verify_message(report)


def _close_ledger(model: DIPIModel) -> None:
    """Release a replaced model's ledger (its SQLite connection) on the model thread."""
    ledger = getattr(model, "ledger", None)
    close = getattr(ledger, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # closing is best effort
            log.debug("closing the old ledger failed", exc_info=True)
