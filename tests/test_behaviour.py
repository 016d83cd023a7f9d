"""Adaptive parties (docs/model.md section 8): action grids, learning rules, opportunists."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dipi_abm import ConfigError, DIPIModel
from dipi_abm.rules.learning import (
    LEARNING_RULES,
    PROPENSITY_FLOOR,
    START_PROBABILITY,
    ActionGrid,
    Learner,
    choose_epsilon_greedy,
    choose_roth_erev,
    update_epsilon_greedy,
    update_roth_erev,
)

GRID = ActionGrid.build(np.array([0.8, 1.0, 1.2]), np.array([0.2, 0.6]))


def test_action_grid_is_every_pair():
    assert GRID.size == 6
    assert set(zip(GRID.volume_ratio.tolist(), GRID.price_level.tolist(), strict=True)) == {
        (r, lv) for r in (0.8, 1.0, 1.2) for lv in (0.2, 0.6)}
    assert GRID.nearest(1.0, np.array([0.25, 0.5])).tolist() == [2, 3]


def test_start_action_has_the_start_probability():
    lr = Learner.new(1, GRID, np.array([3]))
    p = lr.propensity[0] / lr.propensity[0].sum()
    assert p[3] == pytest.approx(START_PROBABILITY)


def test_roth_erev_update_matches_the_formula():
    lr = Learner.new(2, GRID, np.array([0, 1]))
    before = lr.propensity.copy()
    lr.chosen[:] = [4, 1]
    lr.reference[:] = [0.2, 0.1]
    update_roth_erev(lr, np.array([0, 1]), np.array([0.5, -0.3]), recency=0.1,
                     experimentation=0.2, reference_rate=0.25)
    r = np.array([0.5 - 0.2, -0.3 - 0.1])  # payoff minus reference
    expected = before * 0.9
    expected += (r * 0.2 / 5)[:, None]
    expected[0, 4] += r[0] * 0.8 - r[0] * 0.2 / 5
    expected[1, 1] += r[1] * 0.8 - r[1] * 0.2 / 5
    np.testing.assert_allclose(lr.propensity, np.maximum(expected, PROPENSITY_FLOOR))
    # A worse hour than usual lowers what was done, a better one raises it.
    assert lr.propensity[1, 1] < 0.9 * before[1, 1]
    assert lr.propensity[0, 4] > 0.9 * before[0, 4]
    np.testing.assert_allclose(lr.reference, [0.2 + 0.25 * 0.3, 0.1 - 0.25 * 0.4])


def test_first_payoff_sets_the_reference_and_teaches_nothing():
    lr = Learner.new(1, GRID, np.array([2]))
    p0 = lr.propensity[0] / lr.propensity[0].sum()
    lr.chosen[:] = 2
    update_roth_erev(lr, np.array([0]), np.array([-7.0]), recency=0.05, experimentation=0.1)
    assert lr.reference[0] == -7.0
    np.testing.assert_allclose(lr.propensity[0] / lr.propensity[0].sum(), p0)


def test_roth_erev_draws_follow_the_propensities():
    lr = Learner.new(20000, GRID, np.zeros(20000, np.intp))
    lr.propensity[:] = [1, 2, 3, 4, 5, 5]
    a = choose_roth_erev(lr, np.arange(20000), np.random.default_rng(0))
    counts = np.bincount(a, minlength=6)
    assert stats.chisquare(counts, 20000 * np.array([1, 2, 3, 4, 5, 5]) / 20).pvalue > 0.001


def test_a_constant_payoff_is_no_signal_however_negative():
    """The same payoff every hour (here a steady loss) reinforces nothing: propensities
    only fade, alike, so the party slowly forgets its start and never locks in."""
    lr = Learner.new(1, GRID, np.array([2]))
    p0 = lr.propensity[0] / lr.propensity[0].sum()
    lr.chosen[:] = 2
    for _ in range(20):
        update_roth_erev(lr, np.array([0]), np.array([-3.0]), recency=0.05, experimentation=0.1)
    np.testing.assert_allclose(lr.propensity[0] / lr.propensity[0].sum(), p0)
    for _ in range(2000):
        update_roth_erev(lr, np.array([0]), np.array([-3.0]), recency=0.05, experimentation=0.1)
    np.testing.assert_allclose(lr.propensity[0] / lr.propensity[0].sum(), 1 / GRID.size)


PENALTY_GRID = ActionGrid.build(np.array([0.8, 0.9, 1.0, 1.1, 1.2, 1.3]), np.array([0.4]))


def _penalised_commitment(choose, update, *, penalty=0.5, hours=400, parties=300, seed=0):
    """Parties start on the largest commitment; every action loses money, and committing
    beyond 1 loses ``penalty`` more per unit of over-commitment. Returns the mean
    commitment ratio chosen over the last 100 hours."""
    rng = np.random.default_rng(seed)
    top = np.full(parties, PENALTY_GRID.size - 1)
    lr = Learner.new(parties, PENALTY_GRID, top)
    idx = np.arange(parties)
    chosen = []
    for _ in range(hours):
        a = choose(lr, idx, rng)
        lr.chosen[:] = a
        ratio = PENALTY_GRID.volume_ratio[a]
        payoff = -0.05 - penalty * np.maximum(ratio - 1.0, 0.0) + rng.normal(0.0, 0.02, parties)
        update(lr, idx, payoff)
        chosen.append(ratio)
    return float(np.mean(chosen[-100:]))


LEARN_KEYS = {"roth_erev_recency": 0.05, "roth_erev_experimentation": 0.1,
              "roth_erev_reference_rate": 0.05, "egreedy_epsilon": 0.1}


@pytest.mark.parametrize("rule", ["roth_erev", "epsilon_greedy"])
def test_a_party_facing_a_penalty_learns_to_commit_less(rule):
    """docs/model.md section 8: the rule must feel losses, even when every payoff is negative."""
    choose, update = LEARNING_RULES[rule].bind(LEARN_KEYS)()
    learnt = _penalised_commitment(choose, update)
    assert learnt < 1.0  # from 1.3 with probability 0.8
    # The penalty is what taught it: with the same losses but no penalty it does not
    # settle on committing at most its forecast.
    control = _penalised_commitment(choose, update, penalty=0.0)
    assert control > learnt + 0.05


def _floored_roth_erev(lr, idx, reward, recency=0.05, experimentation=0.1):
    """The form before losses were felt: reinforce max(payoff, 0)."""
    k = lr.actions.size
    x = np.maximum(reward, 0.0)
    q = lr.propensity[idx] * (1.0 - recency)
    q += (x * experimentation / (k - 1))[:, None]
    q[np.arange(idx.size), lr.chosen[idx]] += x * (1 - experimentation) - x * experimentation / (
        k - 1)
    lr.propensity[idx] = q


def test_a_floor_at_zero_learns_nothing_from_losses():
    stuck = _penalised_commitment(choose_roth_erev, _floored_roth_erev, hours=150)
    assert stuck > 1.15


def test_epsilon_greedy_tries_everything_then_exploits():
    lr = Learner.new(1, GRID, np.array([0]))
    rng = np.random.default_rng(1)
    payoff = np.array([0.1, 0.2, 0.9, 0.3, 0.0, 0.1])
    for _ in range(200):
        a = choose_epsilon_greedy(lr, np.array([0]), rng, epsilon=0.05)
        lr.chosen[0] = a[0]
        update_epsilon_greedy(lr, np.array([0]), payoff[a])
    assert (lr.count[0] > 0).all()
    assert np.argmax(lr.count[0]) == 2


def test_registry():
    assert {"roth_erev", "epsilon_greedy", "static"} <= set(LEARNING_RULES)


SMALL = dict(n_dpgc=6, n_users=30, seed=5)


def test_static_opportunists_over_commit_and_the_rest_do_not():
    m = DIPIModel(hours=24, learning="static", opportunist_share=0.2, commit_max=1.3, **SMALL)
    assert m.opportunist.sum() == 7
    np.testing.assert_allclose(m.state.commitment_ratio[m.opportunist], 1.3)
    np.testing.assert_allclose(m.state.commitment_ratio[~m.opportunist], 1.0)
    honest = DIPIModel(hours=48, learning="static", **SMALL).run().summary()["breach_rate"]
    greedy = DIPIModel(hours=48, learning="static", opportunist_share=1.0,
                       **SMALL).run().summary()["breach_rate"]
    assert greedy > honest


@pytest.mark.parametrize("rule", ["roth_erev", "epsilon_greedy"])
def test_learning_chooses_from_the_grid_and_is_reproducible(rule):
    runs = [DIPIModel(hours=48, learning=rule, opportunist_share=0.2, **SMALL).run()
            for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0].hourly_dataframe(), runs[1].hourly_dataframe())
    m = runs[0]
    levels = np.linspace(m.params.commit_min, m.params.commit_max, m.params.commit_levels)
    assert np.isin(np.round(m.state.commitment_ratio, 12), np.round(levels, 12)).all()
    # It actually moved: some party ended away from commitment 1.
    assert (np.abs(m.state.commitment_ratio - 1.0) > 1e-9).any()


def test_hourly_gain_over_the_grid_alternative_is_never_negative():
    m = DIPIModel(hours=1, learning="roth_erev", matching="cma", **SMALL)
    for _ in range(36):
        m.step()
        d, st = m.record.delivery, m.record.settlement
        gain = st.party_transfer - (d.surplus_kw * m.feed_in_price - d.need_kw * m.retail_price)
        assert gain.min() >= -1e-9


@pytest.mark.parametrize(("key", "value"), [("learning", "sarsa"), ("opportunist_share", 1.5),
                                            ("commit_levels", 0), ("roth_erev_recency", 1.0)])
def test_bad_learning_parameters_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        DIPIModel(**{key: value})


def test_commit_range_must_be_ordered():
    with pytest.raises(ConfigError, match="commit_min"):
        DIPIModel(commit_min=1.2, commit_max=1.0)
