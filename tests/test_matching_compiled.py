"""The compiled matching rounds give exactly the numpy engine's contracts.

Random order books on random small grids (1-6 buses, random wheeling, pairs beyond
the distance limit, ties in prices and submission times, volumes about
VOLUME_EPS, empty sides), every matching rule: the same rows in the same order,
the same bits in every column, the same number of rounds. Then the compiled
engine's building blocks against the numpy functions they stand for.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dipi_abm.rules import matching as m

mc = pytest.importorskip("dipi_abm.rules.matching_compiled")

COLUMNS = ("buyer", "seller", "volume", "ask", "bid", "wheeling")
EPS = m.VOLUME_EPS
NUMPY_BEFORE_2_5 = tuple(int(x) for x in np.__version__.split(".")[:2]) < (2, 5)


def _volumes(data, n: int) -> np.ndarray:
    kind = st.sampled_from(["tiny", "small", "any", "grid", "zero"])
    out = []
    for _ in range(n):
        k = data.draw(kind)
        if k == "tiny":  # about VOLUME_EPS: open or not by a hair
            out.append(data.draw(st.sampled_from([EPS, EPS * 1.0000001, EPS * 0.9999999,
                                                  2 * EPS, 0.5 * EPS, 3e-7])))
        elif k == "small":
            out.append(data.draw(st.floats(1e-7, 1e-3)))
        elif k == "any":
            out.append(data.draw(st.floats(1e-3, 50.0)))
        elif k == "grid":
            out.append(data.draw(st.sampled_from([0.1, 0.2, 0.3, 1.0, 2.5])))
        else:
            out.append(0.0)
    return np.asarray(out, np.float64)


def _prices(data, n: int, grid: bool) -> np.ndarray:
    if grid:  # ties
        return np.asarray(data.draw(st.lists(st.sampled_from([0.3, 0.35, 0.4, 0.45, 0.5, 0.55]),
                                             min_size=n, max_size=n)), np.float64)
    return np.asarray(data.draw(st.lists(st.floats(0.25, 0.65), min_size=n, max_size=n)),
                      np.float64)


def _market(data) -> tuple[m.OrderBook, m.MarketNetwork]:
    n_bus = data.draw(st.integers(1, 6))
    grid = data.draw(st.booleans())
    flat = data.draw(st.booleans())
    if flat:
        wheeling = np.full((n_bus, n_bus), data.draw(st.sampled_from([0.0, 0.02, 0.05])))
    elif grid:
        wheeling = np.asarray(data.draw(hnp.arrays(
            np.float64, (n_bus, n_bus), elements=st.sampled_from([0.0, 0.01, 0.02, 0.05]))))
    else:
        wheeling = np.asarray(data.draw(hnp.arrays(
            np.float64, (n_bus, n_bus), elements=st.floats(0.0, 0.1))))
    if data.draw(st.booleans()):
        allowed = np.ones((n_bus, n_bus), bool)
    else:
        allowed = np.asarray(data.draw(hnp.arrays(np.bool_, (n_bus, n_bus))))
        np.fill_diagonal(allowed, True)
    distance = np.asarray(data.draw(hnp.arrays(
        np.float64, (n_bus, n_bus), elements=st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0, 3.7]))))
    rounds = data.draw(st.sampled_from([0, 1, 2, 6]))
    net = m.MarketNetwork.build(wheeling, allowed, distance, m.CMAWeights(rounds=rounds))

    n_s = data.draw(st.integers(0, 25))
    n_b = data.draw(st.integers(0, 25))
    if data.draw(st.booleans()):  # distinct submission times, as the model makes them
        times = np.asarray(data.draw(st.permutations(list(range(n_s + n_b)))), np.int64)
    else:  # ties
        times = np.asarray(data.draw(st.lists(st.integers(0, 5), min_size=n_s + n_b,
                                              max_size=n_s + n_b)), np.int64)
    ids = np.asarray(data.draw(st.permutations(list(range(n_s + n_b)))), np.intp)

    def credits(n: int) -> np.ndarray:
        return np.asarray(data.draw(st.lists(st.sampled_from([0.0, 40.0, 89.9, 90.0, 100.0]),
                                             min_size=n, max_size=n)), np.float64)

    book = m.OrderBook(
        seller_party=ids[:n_s],
        seller_bus=np.asarray(data.draw(st.lists(st.integers(0, n_bus - 1), min_size=n_s,
                                                 max_size=n_s)), np.intp),
        seller_volume=_volumes(data, n_s),
        seller_price=_prices(data, n_s, grid),
        seller_time=times[:n_s],
        buyer_party=ids[n_s:],
        buyer_bus=np.asarray(data.draw(st.lists(st.integers(0, n_bus - 1), min_size=n_b,
                                                max_size=n_b)), np.intp),
        buyer_volume=_volumes(data, n_b),
        buyer_price=_prices(data, n_b, grid),
        buyer_time=times[n_s:],
        seller_credit=credits(n_s),
        buyer_credit=credits(n_b),
        seller_cleanliness=np.asarray(data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]),
                                                         min_size=n_s, max_size=n_s))),
    )
    return book, net


def _with_engine(compiled: bool, fn, *args):  # noqa: ANN001, ANN202
    saved = m._compiled
    m._compiled = saved if compiled else (lambda: None)
    try:
        return fn(*args)
    finally:
        m._compiled = saved


def _assert_same(a: m.Contracts, b: m.Contracts) -> None:
    assert a.rounds == b.rounds
    for f in COLUMNS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype.kind == y.dtype.kind, f
        assert np.array_equal(x, y), f


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_compiled_rounds_give_the_numpy_engines_contracts(data):
    book, net = _market(data)
    for name, rule in m.MATCHING_RULES.items():
        for network in (net, net.by_price) if name == "price_time" else (net,):
            want = _with_engine(False, rule.fn, book, network)
            got = _with_engine(True, rule.fn, book, network)
            _assert_same(got, want)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_compiled_rounds_with_many_orders_and_queues(data):
    """Larger books: many sellers per queue, several rounds, distance-dependent wheeling."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n_bus = int(rng.integers(1, 7))
    wheeling = rng.choice([0.0, 0.01, 0.02, 0.03], (n_bus, n_bus))
    allowed = rng.random((n_bus, n_bus)) < 0.8
    np.fill_diagonal(allowed, True)
    net = m.MarketNetwork.build(wheeling, allowed, rng.random((n_bus, n_bus)) * 3,
                                m.CMAWeights(rounds=int(rng.integers(0, 8))))
    n_s, n_b = int(rng.integers(0, 300)), int(rng.integers(0, 600))
    times = rng.permutation(n_s + n_b + int(rng.integers(0, 50)))[:n_s + n_b].astype(np.int64)
    ids = rng.permutation(n_s + n_b).astype(np.intp)
    quantum = rng.choice([0.0, 0.01])  # prices on a grid: ties

    def price(n: int) -> np.ndarray:
        p = rng.uniform(0.3, 0.6, n)
        return np.round(p / quantum) * quantum if quantum else p

    book = m.OrderBook(
        ids[:n_s], rng.integers(0, n_bus, n_s).astype(np.intp), rng.exponential(3, n_s),
        price(n_s), times[:n_s], ids[n_s:], rng.integers(0, n_bus, n_b).astype(np.intp),
        rng.exponential(1, n_b) * (rng.random(n_b) < 0.9), price(n_b), times[n_s:],
        rng.uniform(0, 100, n_s), rng.uniform(0, 100, n_b), rng.random(n_s))
    for rule in m.MATCHING_RULES.values():
        _assert_same(_with_engine(True, rule.fn, book, net),
                     _with_engine(False, rule.fn, book, net))


def test_the_compiled_engine_is_used_when_numba_is_installed():
    assert m._compiled() is mc


# ------------------------------------------------------------------ building blocks


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), st.data())
def test_stable_argsort_is_numpys_stable_argsort(n, data):
    kind = data.draw(st.sampled_from(["few", "spread", "clustered", "huge"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    if kind == "few":  # many ties
        keys = rng.integers(0, 4, n).astype(np.uint64)
    elif kind == "spread":
        keys = rng.integers(0, 2**63, n, dtype=np.uint64)
    elif kind == "clustered":  # one outlier: nearly everything in one bucket
        keys = (rng.integers(0, 2**20, n) + 2**40).astype(np.uint64)
        if n:
            keys[0] = 0
    else:
        keys = rng.integers(2**64 - 10, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    ws_f, ws_i, ws_u, *_ = mc.workspace(n, 0)
    out = np.empty(n, np.intp)
    mc.stable_argsort(keys, n, out, ws_i.reshape(-1), ws_u.reshape(-1))
    np.testing.assert_array_equal(out, np.argsort(keys, kind="stable"))


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 60),
                  elements=st.sampled_from([0.0, -0.0, 1.5, -2.25, 3.0, np.nan, -np.nan,
                                            np.inf, -np.inf, 1e-300, -1e-300, 0.3])))
def test_float_keys_order_as_numpy_sorts(x):
    keys = np.empty(x.size, np.uint64)
    mc._float_keys(x, x.size, keys)
    np.testing.assert_array_equal(np.argsort(keys, kind="stable"), np.lexsort((x,)))
    t = (x * 1e6).astype(np.int64) if np.isfinite(x).all() else np.arange(x.size)
    mc._int_keys(t, keys)
    np.testing.assert_array_equal(np.argsort(keys, kind="stable"), np.lexsort((t,)))


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 30), elements=st.sampled_from([0.0, 1.0, 2.0, 2.5,
                                                                            3.0, 7.0])),
       hnp.arrays(np.float64, st.integers(0, 30), elements=st.floats(-1.0, 8.0)),
       st.booleans(), st.booleans())
def test_searchsorted_is_numpys(a, keys, sort_a, sort_keys):
    """On an ascending array: numpy's searchsorted, in every numpy version. Out of order
    (the rounds meet that only with volumes so large that rounding exceeds half the
    volume epsilon): numpy's binary search step for step as numpy 2.4 and earlier do it
    (numpy 2.5 changed how a search reuses the previous key's bounds, which only shows
    on unsorted input)."""
    if sort_a:
        a = np.sort(a)
    if sort_keys:
        keys = np.sort(keys)
    if not (np.all(a[1:] >= a[:-1]) or NUMPY_BEFORE_2_5):
        return
    np.testing.assert_array_equal(mc.searchsorted_right(a, keys),
                                  np.searchsorted(a, keys, side="right"))


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 20), elements=st.floats(0.0, 5.0)),
       hnp.arrays(np.float64, st.integers(0, 20), elements=st.floats(0.0, 5.0)),
       st.booleans())
def test_sorted_points_are_numpys_unique(b, s, ascending):
    nf = b.size
    b_start, b_end = (np.sort(b), np.sort(b) + 0.5) if ascending else (b, b[::-1].copy())
    s_end = np.sort(s) if ascending else s
    alive = s_end > 1.0
    out = np.empty(2 * nf + s.size + 1)
    n = mc._sorted_points(b_start, b_end, nf, s_end, alive, s.size, np.empty(s.size), out)
    np.testing.assert_array_equal(out[:n],
                                  np.unique(np.concatenate([b_start, b_end, s_end[alive]])))
