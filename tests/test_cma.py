"""The credit matching algorithm (docs/model.md section 4, [DIPI] 4.2 step 4)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dipi_abm import DIPIModel
from dipi_abm.rules.matching import CMAWeights, MarketNetwork, OrderBook, cma_weight, match_cma

EPS = 1e-7


def network(n_bus, rng, *, rate=0.01, max_d=np.inf, weights=None):
    weights = weights or CMAWeights()
    pts = rng.uniform(0, 3, n_bus)
    d = np.abs(pts[:, None] - pts[None, :])
    return MarketNetwork.build(0.02 + rate * d, d <= max_d, distance=d, cma=weights), d


def book(rng, n_s, n_b, n_bus, *, credit=None):
    s_credit = rng.uniform(60, 100, n_s) if credit is None else credit
    return OrderBook(seller_party=np.arange(n_s), seller_bus=rng.integers(0, n_bus, n_s),
                     seller_volume=rng.uniform(1, 50, n_s),
                     seller_price=rng.uniform(0.40, 0.60, n_s), seller_time=rng.permutation(n_s),
                     buyer_party=n_s + np.arange(n_b), buyer_bus=rng.integers(0, n_bus, n_b),
                     buyer_volume=rng.uniform(1, 50, n_b),
                     buyer_price=rng.uniform(0.45, 0.657, n_b), buyer_time=rng.permutation(n_b),
                     seller_credit=s_credit, buyer_credit=rng.uniform(60, 100, n_b),
                     seller_cleanliness=rng.choice([0.3, 0.6, 0.8], n_s))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 25), st.integers(1, 40), st.integers(1, 6),
       st.sampled_from([np.inf, 0.8, 2.0]), st.integers(1, 8))
def test_contracts_feasible_within_orders_and_maximal(seed, n_s, n_b, n_bus, max_d, rounds):
    rng = np.random.default_rng(seed)
    net, d = network(n_bus, rng, max_d=max_d, weights=CMAWeights(rounds=rounds))
    b = book(rng, n_s, n_b, n_bus)
    c = match_cma(b, net)
    s_bus = b.seller_bus[c.seller]
    b_bus = b.buyer_bus[c.buyer - n_s]
    assert np.all(c.bid >= c.ask + c.wheeling - 1e-12)
    np.testing.assert_allclose(c.wheeling, net.wheeling[b_bus, s_bus])
    assert np.all(d[b_bus, s_bus] <= max_d)
    sold = np.bincount(c.seller, c.volume, n_s)
    bought = np.bincount(c.buyer - n_s, c.volume, n_b)
    assert np.all(sold <= b.seller_volume + EPS) and np.all(bought <= b.buyer_volume + EPS)
    # Maximal: no feasible pair with volume left on both sides.
    s_left = b.seller_volume - sold > 1e-6
    b_left = b.buyer_volume - bought > 1e-6
    for i in np.flatnonzero(b_left):
        w = net.wheeling[b.buyer_bus[i], b.seller_bus]
        ok = (b.buyer_price[i] >= b.seller_price + w) & net.allowed[b.buyer_bus[i], b.seller_bus]
        assert not np.any(ok & s_left)


def test_scarce_supply_goes_to_the_heavier_pair_first():
    """One buyer, two identical sellers but for credit: the high-credit seller sells."""
    net = MarketNetwork.build(np.full((1, 1), 0.02), np.ones((1, 1), bool),
                              distance=np.zeros((1, 1)))
    ob = OrderBook(seller_party=np.array([0, 1]), seller_bus=np.array([0, 0]),
                   seller_volume=np.array([10.0, 10.0]), seller_price=np.array([0.50, 0.50]),
                   seller_time=np.array([0, 1]), buyer_party=np.array([2]),
                   buyer_bus=np.array([0]), buyer_volume=np.array([10.0]),
                   buyer_price=np.array([0.60]), buyer_time=np.array([2]),
                   seller_credit=np.array([70.0, 99.0]), buyer_credit=np.array([90.0]),
                   seller_cleanliness=np.array([0.8, 0.8]))
    c = match_cma(ob, net)
    assert c.size == 1 and c.seller[0] == 1 and c.volume[0] == 10.0


def test_nearer_and_greener_sellers_are_preferred():
    d = np.array([[0.0, 3.0], [3.0, 0.0]])
    net = MarketNetwork.build(np.full((2, 2), 0.02), np.ones((2, 2), bool), distance=d)
    ob = OrderBook(seller_party=np.array([0, 1]), seller_bus=np.array([0, 1]),
                   seller_volume=np.array([5.0, 5.0]), seller_price=np.array([0.5, 0.5]),
                   seller_time=np.array([0, 1]), buyer_party=np.array([2]),
                   buyer_bus=np.array([1]), buyer_volume=np.array([5.0]),
                   buyer_price=np.array([0.6]), buyer_time=np.array([2]),
                   seller_credit=np.array([95.0, 95.0]), buyer_credit=np.array([95.0]),
                   seller_cleanliness=np.array([0.8, 0.8]))
    assert match_cma(ob, net).seller.tolist() == [1]  # same bus as the buyer
    ob2 = OrderBook(**{**ob.__dict__, "seller_bus": np.array([1, 1]),
                       "seller_cleanliness": np.array([0.8, 0.3])})
    assert match_cma(ob2, net).seller.tolist() == [0]  # the cleaner one


def test_weight_formula():
    w = CMAWeights(credit=0.4, distance=0.2, price=0.2, green=0.2, distance_ref_ohm=1.0,
                   price_ref=0.01)
    v = cma_weight(w, np.array([100.0]), np.array([80.0]), np.array([1.0]), np.array([0.55]),
                   np.array([0.53]), np.array([0.8]))
    expected = 0.4 * 180 / 200 + 0.2 * 0.5 + 0.2 * 0.01 / 0.03 + 0.2 * 0.8
    np.testing.assert_allclose(v, expected)


def test_cma_runs_in_the_model_with_its_invariants():
    m = DIPIModel(seed=3, n_dpgc=8, n_users=40, hours=48, matching="cma",
                  wheeling="distance").run()
    h = m.hourly_dataframe()
    np.testing.assert_allclose(h.generation_kwh + h.grid_purchase_kwh,
                               h.load_kwh + h.grid_sale_kwh + h.curtailed_kwh, rtol=1e-9)
    assert m.summary()["p2p_volume_kwh"] > 0
    assert m.verify_ledger().ok
