"""Foresight (docs/model.md section 8): a consequence that arrives only later moves
q_learning's choices when it looks ahead, and not when it does not.

The delayed consequence is ``credit_scaled_reward``: a rebate per delivered kWh scaled
by the credit a party already has, so a breach costs nothing in its own hour and only
lowers what later hours pay. The same learner with ``qlearn_discount = 0`` is the
myopic control: its state (the credit band) absorbs the effect of past conduct, so
within a band every action looks alike. 30 days, default market, 20 % opportunists;
breach rate of the last 10 days. Measured on this version, with the rebate minus
without (points): gamma = 0.98: -10.4 (seed 1), -7.6 (seed 2); gamma = 0: +1.1, -2.5.
(Roth-Erev and epsilon-greedy, myopic in form, also breached less with a rebate this
large when measured on an earlier version: a party that keeps an action sees that
action's later payoffs fall as its credit does; not re-measured on this one.)
"""

from __future__ import annotations

import numpy as np
import pytest

from dipi_abm import DIPIModel
from dipi_abm.rules.learning import LEARNING_RULES, Learner, credit_band

HOURS = 30 * 24
REBATE = {"reward_share_of_margin": 2.0, "reward_credit_floor": 40.0}


def _late_breach_rate(seed: int, discount: float, policy: str) -> float:
    m = DIPIModel(seed=seed, hours=HOURS, learning="q_learning", qlearn_discount=discount,
                  opportunist_share=0.2, ledger_detail="off", breach_policy=policy, **REBATE)
    committed = breached = 0
    for h in range(HOURS):
        m.step()
        if h >= HOURS - 10 * 24:
            committed += int((m.state.committed_kwh > 0).sum())
            breached += int(m.state.breach.sum())
    return breached / committed


@pytest.mark.parametrize("seed", [1, 2])
def test_a_delayed_rebate_deters_only_the_foresighted(seed):
    ahead = (_late_breach_rate(seed, 0.98, "credit_scaled_reward")
             - _late_breach_rate(seed, 0.98, "none"))
    myopic = (_late_breach_rate(seed, 0.0, "credit_scaled_reward")
              - _late_breach_rate(seed, 0.0, "none"))
    assert ahead < -0.05
    assert myopic > -0.04
    assert ahead < myopic - 0.04


def _learner(n: int = 3, levels: int = 2, commits: int = 3) -> Learner:
    from dipi_abm.rules.learning import ActionGrid

    grid = ActionGrid.build(np.linspace(0.8, 1.2, commits), np.linspace(0.2, 0.6, levels))
    return Learner.new(n, grid, np.array([1, 2, 5])[:n], np.full(n, 95.0))


def test_credit_bands_cover_0_to_100():
    assert credit_band(np.array([0.0, 9.99, 10.0, 55.0, 99.9, 100.0]), 10).tolist() == [
        0, 0, 1, 5, 9, 9]


def test_q_learning_starts_on_the_starting_commitment_at_the_starting_price():
    lr = _learner()
    choose, _ = LEARNING_RULES["q_learning"].bind(
        {"qlearn_epsilon": 0.0, "qlearn_credit_bands": 10, "qlearn_rate": 0.2,
         "qlearn_discount": 0.9})()
    a = choose(lr, np.arange(3), np.random.default_rng(0))
    assert a.tolist() == [1, 2, 5]


def test_q_learning_values_the_band_it_lands_in():
    """Same hour's payoff, but one action leaves the party in a band worth more: with
    foresight that action wins; without (gamma = 0) the two tie."""
    rules = LEARNING_RULES["q_learning"]
    for gamma, wins in ((0.9, True), (0.0, False)):
        lr = _learner(1)
        keys = {"qlearn_epsilon": 0.0, "qlearn_credit_bands": 10, "qlearn_rate": 0.2,
                "qlearn_discount": gamma}
        choose, update = rules.bind(keys)()
        idx = np.array([0])
        lr.q[...] = 0.0  # allocated by choose on first use; reset the start's tie-break
        choose(lr, idx, np.random.default_rng(0))
        lr.q[0, 5] = 2.0  # band 5 (credit 50-60) is known to be worth little
        lr.q[0, 9] = 10.0  # band 9 (credit 90-100) is worth much
        lr.visits[0, 5] = lr.visits[0, 9] = 1
        for action, credit in ((0, 95.0), (4, 55.0)):  # commitment 0 keeps credit, 2 lowers it
            lr.q[0, 9, action // 2] = 0.0
            lr.visits[0, 9, action // 2] = 0
            lr.band[0], lr.chosen[0] = 9, action
            lr.credit[0] = credit
            update(lr, idx, np.array([1.0]))
        q = lr.q[0, 9]
        assert (q[0] > q[2]) == wins
        if not wins:
            assert q[0] == q[2] == 1.0


def test_q_learning_is_vectorised_and_leaves_the_other_rules_alone():
    lr = _learner()
    choose, update = LEARNING_RULES["q_learning"].bind(
        {"qlearn_epsilon": 0.5, "qlearn_credit_bands": 4, "qlearn_rate": 0.2,
         "qlearn_discount": 0.9})()
    rng = np.random.default_rng(3)
    before = lr.propensity.copy()
    for _ in range(50):
        idx = np.flatnonzero(rng.random(3) < 0.8)
        lr.chosen[:] = -1
        lr.chosen[idx] = choose(lr, idx, rng)
        assert np.all(lr.chosen[idx] % 2 == lr.start[idx] % 2)  # the price level is kept
        update(lr, idx, rng.normal(size=idx.size))
    assert lr.q.shape == (3, 4, 3) and np.isfinite(lr.q).all()
    assert lr.visits.sum() > 0
    np.testing.assert_array_equal(lr.propensity, before)
