"""Compiled kernels for the hourly path: numba, compiled on first call.

A phase that is a chain of many small numpy calls over the same rows (each a
pass over memory and a temporary) runs as one loop in a kernel instead. The
kernel does the same IEEE arithmetic as the numpy code it replaces, operation
for operation (no fast-math, no reassociation), so results are identical to the
last bit: ``np.bincount`` sums in order and a loop matches it; numpy's ``sum``
is pairwise, and :func:`pairwise_sum` is that summation, step for step. The numpy
version stays next to each kernel as its reference, and the tests hold the two
equal (tests/test_kernels.py).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_CACHE_CHECKED = False
_STAMP = "dipi_kernels.stamp"


def _drop_stale_caches(root: Path | None = None) -> bool:
    """numba's disk cache keys a kernel by its own source file only, so a cached caller
    would keep an edited callee (another module's kernel) compiled in. Once per process,
    before the first compile: if a module holding kernels changed since the caches were
    written (a fingerprint of the sources that hold kernels), the package's cached
    kernels are deleted and compiled afresh. Returns whether it deleted them."""
    global _CACHE_CHECKED
    if root is None:
        if _CACHE_CHECKED:
            return False
        _CACHE_CHECKED = True
        root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        text = path.read_bytes()
        if b"@kernel" in text or b"numba" in text:  # the modules that hold kernels
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + text)
    stamp = root / "__pycache__" / _STAMP
    try:
        if stamp.exists() and stamp.read_text() == digest.hexdigest():
            return False
        for cached in root.rglob("__pycache__/*.nb[ic]"):
            cached.unlink(missing_ok=True)
        stamp.parent.mkdir(exist_ok=True)
        tmp = stamp.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(digest.hexdigest())
        tmp.replace(stamp)
    except OSError:  # a read-only install: numba keeps its caches elsewhere, per version
        return False
    return True


def kernel(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled by numba (``njit(cache=True, nogil=True)``, no fast-math) on its first
    call, so importing the package does not import numba; the compiled code is cached on
    disk. A kernel may call other (non-recursive) kernels by their module-level names: they
    are compiled first and bound in its module in their place. (numba's cache does not
    see a callee's edits; :func:`_drop_stale_caches` clears the package's caches when
    any of its sources changed.) ``.py_func`` is the plain-Python function (for tests
    and debugging)."""
    compiled: list[Callable[..., Any]] = []

    def dispatcher() -> Callable[..., Any]:
        if not compiled:
            import numba

            _drop_stale_caches()

            names = fn.__globals__
            for name in fn.__code__.co_names:
                callee = names.get(name)
                if hasattr(callee, "kernel_dispatcher"):
                    names[name] = callee.kernel_dispatcher()
            compiled.append(numba.njit(cache=True, nogil=True)(fn))
        return compiled[0]

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        return (compiled[0] if compiled else dispatcher())(*args)

    run.kernel_dispatcher = dispatcher  # type: ignore[attr-defined]
    run.py_func = fn  # type: ignore[attr-defined]
    return run


#: numpy's pairwise summation works in blocks of this many items (PW_BLOCKSIZE).
PAIRWISE_BLOCK = 128


@kernel
def pairwise_sum(a, start, n):  # noqa: ANN001, ANN201 - numba kernel
    """``a[start:start + n].sum()`` as numpy computes it for a contiguous float64 array:
    its pairwise summation (``pairwise_sum`` in numpy/_core/src/umath/loops_utils.h.src),
    added to the reduction's identity 0.0 (so a sum of -0.0s is +0.0).

    numpy recurses: a range of more than :data:`PAIRWISE_BLOCK` items is split after
    its first half rounded down to a multiple of 8, and the two sums are added. Here
    the same tree is walked depth first with an explicit stack (numba's disk cache
    does not keep recursive functions), adding the same pairs in the same order."""
    if n <= PAIRWISE_BLOCK:
        return 0.0 + _pairwise_block(a, start, n)
    starts, sizes = np.empty(64, np.int64), np.empty(64, np.int64)
    left, has_left = np.empty(64), np.zeros(64, np.bool_)
    depth = 0
    starts[0], sizes[0] = start, n
    while True:
        m = sizes[depth]
        if m > PAIRWISE_BLOCK:  # descend into the left half
            half = m // 2
            half -= half % 8
            depth += 1
            starts[depth], sizes[depth], has_left[depth] = starts[depth - 1], half, False
            continue
        value = _pairwise_block(a, starts[depth], m)
        while True:  # hand the sum up: a left half waits for its right, a right completes
            depth -= 1
            if depth < 0:
                return 0.0 + value
            if not has_left[depth]:
                has_left[depth], left[depth] = True, value
                half = sizes[depth] // 2
                half -= half % 8
                depth += 1
                starts[depth] = starts[depth - 1] + half
                sizes[depth], has_left[depth] = sizes[depth - 1] - half, False
                break
            value = left[depth] + value


@kernel
def _pairwise_block(a, start, n):  # noqa: ANN001, ANN202 - numba kernel
    """One leaf of numpy's pairwise sum (n <= 128): sequential below 8 items, else eight
    running sums over the whole multiples of 8, added in a fixed tree, then the rest.
    (Unsigned indices spare numba's negative-index check, so LLVM can vectorise the
    eight independent sums; the additions are the same.)"""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    u = np.uintp
    i = u(start)
    r0, r1, r2, r3 = a[i], a[i + u(1)], a[i + u(2)], a[i + u(3)]
    r4, r5, r6, r7 = a[i + u(4)], a[i + u(5)], a[i + u(6)], a[i + u(7)]
    i += u(8)
    whole = u(start + n - n % 8)
    while i < whole:
        r0 += a[i]
        r1 += a[i + u(1)]
        r2 += a[i + u(2)]
        r3 += a[i + u(3)]
        r4 += a[i + u(4)]
        r5 += a[i + u(5)]
        r6 += a[i + u(6)]
        r7 += a[i + u(7)]
        i += u(8)
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    end = u(start + n)
    while i < end:
        res += a[i]
        i += u(1)
    return res
