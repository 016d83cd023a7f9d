"""Accounts: users' budgets per period and bills paid from them (docs/model.md, Accounts)."""

import numpy as np
import pytest

from dipi_abm import DIPIModel
from dipi_abm.ledger.records import node_attributes_from_ledger

SMALL = dict(n_dpgc=6, n_users=24, seed=8)


def _money(m):
    return m.state.balance.sum() + m.grid_company_balance + m.miner_balance.sum()


@pytest.mark.parametrize("tariff", ["flat", "tou"])
def test_budget_is_the_expected_bill_and_money_is_conserved_every_hour(tariff):
    m = DIPIModel(hours=30, tariff=tariff, budget_ratio=0.8, ledger_detail="off", **SMALL)
    p, s = m.params, m.state
    start = _money(m)
    user = s.kind == 1
    for _ in range(30):
        m.step()
        assert _money(m) == pytest.approx(start + m.minted_yuan + m.endowed_yuan, rel=1e-12)
        assert (m.record.budget_yuan is not None) == (m.hour in (1, 25))
        if m.hour == 25:
            b = m.record.budget_yuan
    # flat: the class shapes average 1 over a day, so a day's bill is mean load x 24 x R
    if tariff == "flat":
        expected = 0.8 * s.mean_load_kw * 24 * p.retail_yuan_per_kwh
        np.testing.assert_allclose(m.endowed_yuan, 2 * expected.sum(), rtol=1e-12)
        np.testing.assert_allclose(b[user], expected[user], rtol=1e-12)
    assert np.all(b[~user] == 0) and np.all(b[user] > 0)


def test_balances_are_budget_less_bills_and_recompute_from_the_ledger():
    m = DIPIModel(hours=48, ledger_detail="full", **SMALL).run()
    users = m.state.kind == 1
    budgets = m.state.balance[users]
    # a user pays at most its expected bill at retail: it ends near or above zero
    assert np.all(budgets > -0.1 * m.endowed_yuan / users.sum())
    attrs = node_attributes_from_ledger(m.ledger)
    np.testing.assert_allclose(attrs["balance"][: m.state.n], m.state.balance, atol=1e-6)
    tally = DIPIModel(hours=48, budget_period_h=0, ledger_detail="off", **SMALL).run()
    assert tally.endowed_yuan == 0 and np.all(tally.state.balance[users] < 0)
