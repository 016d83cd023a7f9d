"""Order matching (docs/model.md section 4, step 3) and contract price rules."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipi_abm.rules.matching import (
    MATCHING_RULES,
    PRICE_RULES,
    MarketNetwork,
    OrderBook,
    match_centralized,
    match_price_time,
    price_midpoint,
)

TOL = 1e-6  # kWh
SELLER_ID0 = 1000  # seller party ids start here, buyers at 0

# ------------------------------------------------------------------ helpers


def make_book(sellers, buyers, time):
    """sellers / buyers: lists of (bus, volume, price); time: permutation of all orders."""
    ns = len(sellers)

    def col(rows, i, dtype):
        return np.array([r[i] for r in rows], dtype=dtype)

    return OrderBook(seller_party=np.arange(ns, dtype=np.intp) + SELLER_ID0,
                     seller_bus=col(sellers, 0, np.intp), seller_volume=col(sellers, 1, float),
                     seller_price=col(sellers, 2, float),
                     seller_time=np.asarray(time[:ns], dtype=np.int64),
                     buyer_party=np.arange(len(buyers), dtype=np.intp),
                     buyer_bus=col(buyers, 0, np.intp), buyer_volume=col(buyers, 1, float),
                     buyer_price=col(buyers, 2, float),
                     buyer_time=np.asarray(time[ns:], dtype=np.int64))


def flat_network(n_bus, w):
    return MarketNetwork.build(np.full((n_bus, n_bus), w), np.ones((n_bus, n_bus), bool))


def pair_volumes(c):
    out: dict[tuple[int, int], float] = defaultdict(float)
    for b, s, v in zip(c.buyer.tolist(), c.seller.tolist(), c.volume.tolist(), strict=True):
        out[(b, s)] += v
    return out


def reference_price_time(book: OrderBook, w: float) -> dict[tuple[int, int], float]:
    """Sequential price-time greedy, one queue: slow and obviously correct."""
    buyers = sorted(
        (
            [float(book.buyer_price[i]), int(book.buyer_time[i]), int(book.buyer_party[i]),
             float(book.buyer_volume[i])]
            for i in range(book.buyer_price.size)
        ),
        key=lambda r: (-r[0], r[1]),
    )
    sellers = sorted(
        (
            [float(book.seller_price[i]), int(book.seller_time[i]), int(book.seller_party[i]),
             float(book.seller_volume[i])]
            for i in range(book.seller_price.size)
        ),
        key=lambda r: (r[0], r[1]),
    )
    out: dict[tuple[int, int], float] = defaultdict(float)
    bi = si = 0
    while bi < len(buyers) and si < len(sellers):
        buyer, seller = buyers[bi], sellers[si]
        if buyer[0] < seller[0] + w - 1e-9:
            break
        q = min(buyer[3], seller[3])
        out[(buyer[2], seller[2])] += q
        buyer[3] -= q
        seller[3] -= q
        if buyer[3] <= 1e-9:
            bi += 1
        if seller[3] <= 1e-9:
            si += 1
    return out


cents = st.integers(40, 66).map(lambda c: c / 100.0)  # prices between F and R
volume = st.one_of(st.integers(1, 200).map(float), st.floats(0.5, 200.0))


@st.composite
def books(draw, n_bus=1, max_orders=12):
    ns = draw(st.integers(0, max_orders))
    nb = draw(st.integers(0, max_orders))
    bus = st.integers(0, n_bus - 1)
    sellers = draw(st.lists(st.tuples(bus, volume, cents), min_size=ns, max_size=ns))
    buyers = draw(st.lists(st.tuples(bus, volume, cents), min_size=nb, max_size=nb))
    time = draw(st.permutations(list(range(ns + nb))))
    return make_book(sellers, buyers, time)


# ------------------------------------------------------------------ single queue


def test_worked_example_price_then_time_priority():
    # Two sellers ask 0.45 (submission time decides between them), one asks 0.50. Two
    # buyers bid 0.60 (time decides), one bids 0.47, which only a 0.45 ask can serve
    # (0.45 + 0.02 wheeling), and those are sold out before its turn.
    sellers = [(0, 50.0, 0.50), (0, 30.0, 0.45), (0, 40.0, 0.45)]
    buyers = [(0, 60.0, 0.60), (0, 60.0, 0.60), (0, 100.0, 0.47)]
    time = [5, 1, 0, 4, 2, 3]  # seller 1002 is first among the 0.45 asks; buyer 1 before 0
    c = match_price_time(make_book(sellers, buyers, time), flat_network(1, 0.02))
    got = dict(pair_volumes(c))
    assert got == pytest.approx(
        {
            (1, 1002): 40.0,
            (1, 1001): 20.0,  # buyer 1 (earlier) takes the cheapest first
            (0, 1001): 10.0,
            (0, 1000): 50.0,  # buyer 0 next: rest of 1001, then 1000
        }
    )
    # buyer 2 bids 0.47 = 0.45 + 0.02 but the 0.45 asks are gone: no trade for it
    assert 2 not in set(c.buyer.tolist())


def test_one_queue_for_flat_wheeling_without_distance_limit():
    assert flat_network(5, 0.02).n_queues == 1


@settings(max_examples=300, deadline=None)
@given(books(n_bus=3), st.sampled_from([0.0, 0.01, 0.02, 0.05]))
def test_single_queue_equals_sequential_greedy(book, w):
    c = match_price_time(book, flat_network(3, w))
    got = {k: v for k, v in pair_volumes(c).items() if v > 1e-9}
    want = {k: v for k, v in reference_price_time(book, w).items() if v > 1e-9}
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=TOL)
    np.testing.assert_allclose(c.wheeling, w)


# ------------------------------------------------------------------ distance-dependent


@st.composite
def networks(draw):
    n_bus = draw(st.integers(2, 5))
    upper = draw(
        st.lists(st.integers(0, 40).map(lambda x: x / 10.0), min_size=n_bus * n_bus,
                 max_size=n_bus * n_bus)
    )
    d = np.array(upper).reshape(n_bus, n_bus)
    d = np.triu(d, 1)
    d = d + d.T  # symmetric, zero diagonal
    base = draw(st.sampled_from([0.0, 0.01, 0.02]))
    rate = draw(st.sampled_from([0.0, 0.01, 0.03]))
    max_d = draw(st.sampled_from([np.inf, 0.0, 1.0, 2.5]))
    w = base + rate * d
    return d, w, d <= max_d, n_bus


def check_contracts(book, net, c):
    """Every contract is feasible; nobody trades more than ordered; the result is maximal."""
    s_row = {int(p): i for i, p in enumerate(book.seller_party)}
    b_row = {int(p): i for i, p in enumerate(book.buyer_party)}
    s_left = book.seller_volume.astype(float).copy()
    b_left = book.buyer_volume.astype(float).copy()
    for b, s, v, ask, bid, w in zip(c.buyer, c.seller, c.volume, c.ask, c.bid, c.wheeling,
                                    strict=True):
        i, j = b_row[int(b)], s_row[int(s)]
        bb, sb = book.buyer_bus[i], book.seller_bus[j]
        assert v > 0
        assert ask == book.seller_price[j] and bid == book.buyer_price[i]
        assert w == pytest.approx(net.wheeling[bb, sb], abs=1e-12)
        assert net.allowed[bb, sb], "trade beyond the maximum distance"
        assert bid >= ask + w - 1e-9, "infeasible contract: bid < ask + wheeling"
        b_left[i] -= v
        s_left[j] -= v
    assert np.all(b_left >= -TOL), "a buyer got more than it bid for"
    assert np.all(s_left >= -TOL), "a seller sold more than it offered"
    for i in np.flatnonzero(b_left > TOL):
        for j in np.flatnonzero(s_left > TOL):
            bb, sb = book.buyer_bus[i], book.seller_bus[j]
            feasible = net.allowed[bb, sb] and (
                book.buyer_price[i] >= book.seller_price[j] + net.wheeling[bb, sb] - 1e-9
            )
            assert not feasible, (
                f"buyer {i} ({b_left[i]:.3f} left) and seller {j} ({s_left[j]:.3f} left) "
                "could still trade"
            )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_distance_wheeling_contracts_feasible_and_maximal(data):
    _, w, allowed, n_bus = data.draw(networks())
    book = data.draw(books(n_bus=n_bus))
    net = MarketNetwork.build(w, allowed)
    c = match_price_time(book, net)
    check_contracts(book, net, c)


@settings(max_examples=100, deadline=None)
@given(books(n_bus=4), st.sampled_from([0.0, 0.02]))
def test_flat_wheeling_contracts_feasible_and_maximal(book, w):
    net = flat_network(4, w)
    check_contracts(book, net, match_price_time(book, net))


def test_distance_limit_blocks_far_pairs():
    d = np.array([[0.0, 5.0], [5.0, 0.0]])
    net = MarketNetwork.build(np.full((2, 2), 0.02), d <= 1.0)
    book = make_book([(1, 100.0, 0.45)], [(0, 100.0, 0.65)], [0, 1])
    assert match_price_time(book, net).size == 0
    book = make_book([(0, 100.0, 0.45)], [(0, 100.0, 0.65)], [0, 1])
    assert match_price_time(book, net).volume.sum() == pytest.approx(100.0)


def test_distance_wheeling_prefers_the_cheaper_delivered_seller():
    # same ask, but the far seller costs 0.1 more to wheel: the buyer takes the near one
    d = np.array([[0.0, 10.0, 0.0], [10.0, 0.0, 10.0], [0.0, 10.0, 0.0]])
    net = MarketNetwork.build(0.0 + 0.01 * d, np.ones((3, 3), bool))
    book = make_book([(1, 100.0, 0.45), (2, 100.0, 0.45)], [(0, 100.0, 0.65)], [0, 1, 2])
    c = match_price_time(book, net)
    assert dict(pair_volumes(c)) == pytest.approx({(0, SELLER_ID0 + 1): 100.0})


# ------------------------------------------------------------------ price rules, other rules


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_price_rules_stay_between_ask_and_bid(data):
    _, w, allowed, n_bus = data.draw(networks())
    book = data.draw(books(n_bus=n_bus))
    c = match_price_time(book, MarketNetwork.build(w, allowed))
    p = price_midpoint(c.ask, c.bid, c.wheeling)
    assert np.all(p + c.wheeling <= c.bid + 1e-12)
    assert np.all(p >= c.ask - 1e-12)
    np.testing.assert_allclose(p, 0.5 * (c.ask + c.bid - c.wheeling))
    for name, rule in PRICE_RULES.items():
        q = rule(c.ask, c.bid, c.wheeling)
        assert np.all(q + c.wheeling <= c.bid + 1e-12), name
        assert np.all(q >= c.ask - 1e-12), name
        # orders lie in [F, R] = [0.40, 0.66] here, so contract prices do too
        assert np.all((q >= 0.40 - 1e-12) & (q <= 0.66 + 1e-12)), name


def test_price_rule_registry():
    assert {"midpoint", "ask", "bid"} <= set(PRICE_RULES)
    ask, bid, w = np.array([0.45]), np.array([0.61]), np.array([0.02])
    assert PRICE_RULES["midpoint"](ask, bid, w)[0] == pytest.approx(0.52)
    assert PRICE_RULES["ask"](ask, bid, w)[0] == pytest.approx(0.45)
    assert PRICE_RULES["bid"](ask, bid, w)[0] == pytest.approx(0.59)


@settings(max_examples=30, deadline=None)
@given(books(n_bus=2))
def test_centralized_gives_no_contracts(book):
    c = match_centralized(book, flat_network(2, 0.02))
    assert c.size == 0 and c.volume.sum() == 0.0
    assert MATCHING_RULES["centralized"].fn is match_centralized
    assert MATCHING_RULES["centralized"].has("grid_only")


def test_empty_books():
    net = flat_network(1, 0.02)
    assert match_price_time(make_book([], [(0, 10.0, 0.6)], [0]), net).size == 0
    assert match_price_time(make_book([(0, 10.0, 0.4)], [], [0]), net).size == 0
