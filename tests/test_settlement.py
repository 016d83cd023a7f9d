"""Settlement of contracts (docs/model.md section 5, [DER-CBC] Tables 1-2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipi_abm.rules.settlement import attribute_pro_rata, settle

R, F = 0.657, 0.4  # [DER-CBC] retail and feed-in prices, yuan/kWh
START = 200.0  # every account starts at 200 yuan in [DER-CBC]'s tests

# p, q, w, b, g, buyer pays, seller income, grid income ([DER-CBC] Table 1 -> Table 2)
GOLDEN = [(0.55, 200.0, 0.02, 200.0, 200.0, 114.00, 110.00, 4.00),
          (0.54, 200.0, 0.02, 220.0, 200.0, 125.14, 108.00, 17.14),
          (0.56, 200.0, 0.02, 180.0, 200.0, 104.40, 108.80, -4.40)]
# balances of buyer / seller / grid company after each case taken alone
GOLDEN_BALANCES = [(86.0, 310.0, 204.0), (74.86, 308.0, 217.14), (95.6, 308.8, 195.6)]
GOLDEN_CUMULATIVE_VOLUME = [200.0, 420.0, 600.0]


@pytest.mark.parametrize("case", GOLDEN, ids=["equal", "over-consumption", "under-consumption"])
def test_golden_cases_money_flows(case):
    p, q, w, b, g, pays, income, grid = case
    s = settle(p, q, w, b, g, R, F)
    assert float(s.buyer_pays) == pytest.approx(pays, abs=1e-9)
    assert float(s.seller_income) == pytest.approx(income, abs=1e-9)
    assert float(s.grid_income) == pytest.approx(grid, abs=1e-9)


@pytest.mark.parametrize(("case", "balances"), list(zip(GOLDEN, GOLDEN_BALANCES, strict=True)))
def test_golden_cases_balances_from_200(case, balances):
    p, q, w, b, g, *_ = case
    s = settle(p, q, w, b, g, R, F)
    buyer, seller, grid = START - s.buyer_pays, START + s.seller_income, START + s.grid_income
    assert (float(buyer), float(seller), float(grid)) == pytest.approx(balances, abs=1e-9)


def test_golden_cases_cumulative_volume_in_sequence():
    volume = 0.0
    seen = []
    for p, q, w, b, g, *_ in GOLDEN:
        s = settle(p, q, w, b, g, R, F)
        # what the buyer received: direct from the seller plus the shortfall bought at retail
        volume += float(s.direct + s.shortfall)
        seen.append(volume)
    assert seen == pytest.approx(GOLDEN_CUMULATIVE_VOLUME, abs=1e-9)


def test_golden_cases_volume_split():
    s = settle(*np.array([c[:5] for c in GOLDEN]).T, R, F)
    np.testing.assert_allclose(s.direct, [200.0, 200.0, 180.0])
    np.testing.assert_allclose(s.shortfall, [0.0, 20.0, 0.0])
    np.testing.assert_allclose(s.surplus, [0.0, 0.0, 20.0])


def test_vectorised_equals_scalar_calls():
    cols = np.array([c[:5] for c in GOLDEN]).T
    vec = settle(*cols, R, F)
    assert vec.buyer_pays.shape == (3,)
    for i, (p, q, w, b, g, *_) in enumerate(GOLDEN):
        one = settle(p, q, w, b, g, R, F)
        for name in ("direct", "buyer_pays", "seller_income", "grid_income", "shortfall",
                     "surplus"):
            assert float(getattr(vec, name)[i]) == float(getattr(one, name)), name


def test_agreed_volume_does_not_enter_money():
    a = settle(0.5, 100.0, 0.02, 90.0, 110.0, R, F)
    b = settle(0.5, 300.0, 0.02, 90.0, 110.0, R, F)
    assert float(a.buyer_pays) == float(b.buyer_pays)
    assert float(a.seller_income) == float(b.seller_income)


vol = st.floats(0.0, 5_000.0, allow_nan=False)
price = st.floats(0.0, 2.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(price, vol, st.floats(0.0, 0.2), vol, vol), min_size=1, max_size=20),
       st.floats(0.3, 1.5), st.floats(0.0, 0.3))
def test_settlement_formula_and_conservation(rows, retail, feed_in):
    p, q, w, b, g = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    s = settle(p, q, w, b, g, retail, feed_in)
    for i in range(len(rows)):
        direct = min(b[i], g[i])
        short = max(0.0, b[i] - g[i])
        surplus = max(0.0, g[i] - b[i])
        pays = direct * (p[i] + w[i]) + short * retail
        income = direct * p[i] + surplus * feed_in
        grid = direct * w[i] + short * retail - surplus * feed_in
        assert s.direct[i] == direct
        assert s.buyer_pays[i] == pytest.approx(pays, rel=1e-12, abs=1e-9)
        assert s.seller_income[i] == pytest.approx(income, rel=1e-12, abs=1e-9)
        assert s.grid_income[i] == pytest.approx(grid, rel=1e-12, abs=1e-9)
        assert s.buyer_pays[i] == pytest.approx(s.seller_income[i] + s.grid_income[i], rel=1e-12,
                                                abs=1e-9)
        assert s.shortfall[i] == short and s.surplus[i] == surplus
        # every kWh the buyer took is either direct or bought from the grid
        assert s.direct[i] + s.shortfall[i] == pytest.approx(b[i])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_attribute_pro_rata_shares_sum_to_counted_volume(data):
    n_party = data.draw(st.integers(1, 8))
    n_contract = data.draw(st.integers(0, 25))
    party = np.array(
        data.draw(st.lists(st.integers(0, n_party - 1), min_size=n_contract, max_size=n_contract)),
        dtype=np.intp,
    )
    agreed = np.array(
        data.draw(st.lists(st.floats(0.01, 1_000.0), min_size=n_contract, max_size=n_contract)),
        dtype=float,
    )
    actual = np.array(
        data.draw(st.lists(st.floats(0.0, 2_000.0), min_size=n_party, max_size=n_party)),
        dtype=float,
    )
    matched = np.bincount(party, weights=agreed, minlength=n_party)
    got = attribute_pro_rata(actual, matched, party, agreed)
    assert got.shape == agreed.shape
    per_party = np.bincount(party, weights=got, minlength=n_party)
    np.testing.assert_allclose(per_party, np.minimum(actual, matched), rtol=1e-9, atol=1e-9)
    # pro rata: nothing above the agreed volume, and one share per party
    assert np.all(got <= agreed * (1 + 1e-12))
    assert np.all(got >= 0.0)
    for k in range(n_party):
        mine = party == k
        if mine.any():
            ratio = got[mine] / agreed[mine]
            np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9, atol=1e-12)


def test_attribute_pro_rata_example():
    # party 0 agreed 100 + 300 and delivered 200 -> half of each; party 1 over-delivered
    got = attribute_pro_rata(np.array([200.0, 80.0]), np.array([400.0, 50.0]), np.array([0, 0, 1]),
                             np.array([100.0, 300.0, 50.0]))
    np.testing.assert_allclose(got, [50.0, 150.0, 50.0])
