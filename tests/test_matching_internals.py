"""The matching engine's fast internals give exactly what the plain numpy forms give:
the sort order of np.lexsort, and the CMA round's choice with or without numba."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dipi_abm.rules import matching as m


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.data())
def test_lexsort_is_numpys_lexsort(n, data):
    """Ties, repeated values, negative zero, NaN, big and small integers: the same
    permutation as np.lexsort, key by key."""
    floats = st.sampled_from([0.0, -0.0, 1.5, -2.25, 3.0, np.nan, np.inf, 1e-300])
    keys = []
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["small int", "int", "float", "unique float",
                                          "times"]))
        if kind == "times":  # distinct in a dense range (submission times), or one tie
            span = data.draw(st.integers(n, 4 * n + 2))
            values = data.draw(st.lists(st.integers(-3, span - 3), min_size=n, max_size=n,
                                        unique=data.draw(st.booleans())))
            keys.append(np.asarray(values, np.int64))
        elif kind == "small int":
            keys.append(np.asarray(data.draw(st.lists(st.integers(0, 5), min_size=n,
                                                      max_size=n)), np.intp))
        elif kind == "int":
            keys.append(np.asarray(data.draw(st.lists(st.integers(-2**40, 2**40), min_size=n,
                                                      max_size=n)), np.int64))
        elif kind == "float":
            keys.append(np.asarray(data.draw(st.lists(floats, min_size=n, max_size=n)),
                                   np.float64))
        else:
            keys.append(np.asarray(data.draw(st.permutations(list(range(n))))) * 0.37 - 3)
    np.testing.assert_array_equal(m._lexsort(tuple(keys)), np.lexsort(tuple(keys)))


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 40),
                  elements=st.floats(0.0, 2.0, allow_nan=False)))
def test_sorted_unique_is_numpys_unique(x):
    runs = np.concatenate([np.sort(x), np.sort(x[::2]), np.sort(x[1::3])])
    np.testing.assert_array_equal(m._sorted_unique(runs.copy()), np.unique(runs))


def _choice_inputs(data, n_buyers: int, n_bus: int, n_q: int, restricted: bool):
    def arr(shape, lo, hi, grid=None):
        if grid is not None:  # few distinct values: equal weights happen
            return np.asarray(data.draw(hnp.arrays(np.float64, shape,
                                                   elements=st.sampled_from(grid))))
        return np.asarray(data.draw(hnp.arrays(np.float64, shape,
                                               elements=st.floats(lo, hi))))

    grid = [0.0, 0.01, 0.02, 0.05] if data.draw(st.booleans()) else None
    price = arr((n_buyers,), 0.3, 0.7, None if grid is None else [0.4, 0.45, 0.5])
    bus = np.asarray(data.draw(hnp.arrays(np.intp, (n_buyers,),
                                          elements=st.integers(0, n_bus - 1))))
    wheeling = arr((n_bus, n_q), 0.0, 0.1, grid)
    ask = arr((n_q,), 0.3, 0.6, None if grid is None else [0.35, 0.4, 0.45])
    own = arr((n_bus, n_q), 0.0, 0.6, None if grid is None else [0.2, 0.3])
    allowed = (np.asarray(data.draw(hnp.arrays(np.bool_, (n_bus, n_q))))
               if restricted else None)
    return price, bus, wheeling, allowed, ask, own, 0.01, 0.2 * 0.01


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 30), st.integers(1, 4), st.integers(1, 6), st.booleans(), st.data())
def test_cma_choice_is_the_same_with_and_without_numba(n_buyers, n_bus, n_q, restricted,
                                                        data):
    args = _choice_inputs(data, n_buyers, n_bus, n_q, restricted)
    want = m._heaviest_queue_numpy(*args)
    implementations = [m._heaviest_queue_loop.py_func]  # the loop as plain Python
    if m._numba():
        implementations.append(m._heaviest_queue_loop)
    for impl in implementations:
        got = impl(*args)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(np.asarray(a), b)


def test_numba_is_used_when_installed():
    pytest.importorskip("numba")
    assert m._numba()
