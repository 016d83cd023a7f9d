"""The matching engine's fast internals against slow, obvious references: the sort
order of np.lexsort, and the CMA round's compiled choice of queue against a loop
over every (buyer, queue) pair weighed by cma_weight."""

from __future__ import annotations

import os
import subprocess
import sys

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


def _heaviest_reference(price, bus, wheeling, allowed, ask, own, price_ref, price_scale):
    """Every (buyer, queue) pair, weighed one at a time; the first heaviest feasible wins."""
    w = m.CMAWeights(credit=0.0, distance=0.0, price=price_scale / price_ref, green=0.0,
                     price_ref=price_ref)
    out = []
    for p, b in zip(price, bus, strict=True):
        pairs = [(float(own[b, j] + m.cma_weight(w, 0.0, 0.0, 0.0, p - wheeling[b, j], ask[j],
                                                 0.0)), j)
                 for j in range(ask.size)
                 if p - wheeling[b, j] >= ask[j] - m.PRICE_EPS
                 and (allowed is None or allowed[b, j])]
        if not pairs:
            out.append((False, -np.inf, None))
            continue
        top = max(x for x, _ in pairs)
        out.append((True, top, next(j for x, j in pairs if x == top)))
    return out


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 30), st.integers(1, 4), st.integers(1, 6), st.booleans(), st.data())
def test_cma_choice_is_the_heaviest_feasible_pair(n_buyers, n_bus, n_q, restricted, data):
    """Compiled and as plain Python (``py_func``), within 1e-12 of the reference weight
    (the sum's order may differ); a choice may differ only between weights that close."""
    args = _choice_inputs(data, n_buyers, n_bus, n_q, restricted)
    price, bus, wheeling, _, ask, own, price_ref, price_scale = args
    want = _heaviest_reference(*args)
    for impl in (m.heaviest_queue, m.heaviest_queue.py_func):
        best, feasible, weight, net_bid = impl(*args)
        for i, (ok, top, j) in enumerate(want):
            assert feasible[i] == ok
            if ok:
                assert weight[i] == pytest.approx(top, rel=0, abs=1e-12)
                q = best[i]
                assert net_bid[i] == price[i] - wheeling[bus[i], q]
                chosen = own[bus[i], q] + price_scale / (price_ref + abs(net_bid[i] - ask[q]))
                assert chosen == pytest.approx(top, rel=0, abs=1e-12)
                assert q == j or abs(chosen - top) <= 1e-12


def test_default_scenario_compiles_nothing():
    """The default run never calls a kernel, so it never imports numba (first run: no wait)."""
    code = ("import sys; from dipi_abm.model import DIPIModel; "
            "DIPIModel(seed=1, n_dpgc=2, n_users=8, hours=3).run(); "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def _cma_run(env: dict) -> subprocess.CompletedProcess:
    code = ("from dipi_abm.model import DIPIModel; "
            "DIPIModel(seed=1, n_dpgc=2, n_users=8, hours=2, matching='cma').run()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_the_compiled_engine_is_cached_per_user_and_announced_once(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path), "NUMBA_CACHE_DIR": ""}
    first, second = _cma_run(env), _cma_run(env)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stderr.count("compiling the matching engine, one time") == 1
    assert "compiling" not in second.stderr  # loaded from the cache
    assert list((tmp_path / "dipi_abm" / "numba").rglob("*.nbi"))


def test_nowhere_writable_runs_uncached_without_a_traceback(tmp_path):
    blocked = tmp_path / "a-file"  # no directory can be made below a file, even by root
    blocked.write_text("")
    run = _cma_run({"NUMBA_CACHE_DIR": str(blocked / "numba"), "HOME": str(blocked),
                    "XDG_CACHE_HOME": str(blocked)})
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert "compiling the matching engine" in run.stderr
