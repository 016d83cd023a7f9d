"""Adaptive parties (MODEL.md section 8): action grids, learning rules, opportunists."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dipi_abm import ConfigError, DIPIModel
from dipi_abm.rules.learning import (
    LEARNING_RULES,
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
    update_roth_erev(lr, np.array([0, 1]), np.array([0.5, 0.0]), recency=0.1,
                     experimentation=0.2)
    expected = before * 0.9
    expected[0] += 0.5 * 0.2 / 5
    expected[0, 4] += 0.5 * 0.8 - 0.5 * 0.2 / 5
    np.testing.assert_allclose(lr.propensity, expected)


def test_roth_erev_draws_follow_the_propensities():
    lr = Learner.new(20000, GRID, np.zeros(20000, np.intp))
    lr.propensity[:] = [1, 2, 3, 4, 5, 5]
    a = choose_roth_erev(lr, np.arange(20000), np.random.default_rng(0))
    counts = np.bincount(a, minlength=6)
    assert stats.chisquare(counts, 20000 * np.array([1, 2, 3, 4, 5, 5]) / 20).pvalue > 0.001


def test_no_reward_leaves_choice_probabilities_unchanged_for_ever():
    lr = Learner.new(1, GRID, np.array([2]))
    p0 = lr.propensity[0] / lr.propensity[0].sum()
    lr.chosen[:] = 2
    for _ in range(20000):
        update_roth_erev(lr, np.array([0]), np.array([0.0]), recency=0.05, experimentation=0.1)
    np.testing.assert_allclose(lr.propensity[0] / lr.propensity[0].sum(), p0)


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
