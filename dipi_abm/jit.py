"""Compiled kernels for the hourly path: numba, compiled on first call.

A phase that is a chain of many small numpy calls over the same rows (each a
pass over memory and a temporary) runs as one loop in a kernel instead. The
kernel does the same IEEE arithmetic as the numpy code it replaces, operation
for operation (no fast-math, no reassociation: a sum that numpy takes pairwise
stays with numpy; ``np.bincount`` is sequential and a loop matches it), so
results are identical to the last bit. The numpy version stays next to each
kernel as its reference, and the tests hold the two equal.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def kernel(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled by numba (``njit(cache=True, nogil=True)``, no fast-math) on its first
    call, so importing the package does not import numba; the compiled code is cached on
    disk. ``.py_func`` is the plain-Python loop (for tests and debugging)."""
    compiled: list[Callable[..., Any]] = []

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        if not compiled:
            import numba

            compiled.append(numba.njit(cache=True, nogil=True)(fn))
        return compiled[0](*args)

    run.py_func = fn  # type: ignore[attr-defined]
    return run
