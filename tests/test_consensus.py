"""Consensus rules (docs/model.md §7): weights, sampled vs hashed POCA, concentration, quorum."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dipi_abm import DIPIModel
from dipi_abm.rules.consensus import (
    CONSENSUS_RULES,
    BlockTally,
    Nodes,
    draw_producer,
    gini,
    hashed_race,
    matching_quorum,
    nakamoto,
    poca_targets,
    pow_hash,
    win_credit_correlation,
    win_probabilities,
)


def nodes(credit, hp=None, stake=None, **kw):
    c = np.asarray(credit, dtype=float)
    return Nodes(hash_power=np.ones(c.size) if hp is None else np.asarray(hp, float),
                 credit=c, stake=np.ones(c.size) if stake is None else np.asarray(stake, float),
                 **kw)


def test_registry_has_the_four_rules():
    assert {"poca", "pow", "dpos", "der_cbc"} <= set(CONSENSUS_RULES)


def test_poca_probability_is_softmax_of_credit_over_tau():
    c = np.array([90.0, 95.0, 100.0])
    p = win_probabilities("poca", nodes(c), tau=10.0)
    expected = np.exp(c / 10) / np.exp(c / 10).sum()
    np.testing.assert_allclose(p, expected)
    # tau = 10: credits 90 and 100 differ by a factor e
    assert p[2] / p[0] == pytest.approx(math.e)


def test_poca_scales_with_hash_power_and_pow_ignores_credit():
    p = win_probabilities("poca", nodes([100, 100], hp=[1, 3]), tau=10)
    np.testing.assert_allclose(p, [0.25, 0.75])
    p = win_probabilities("pow", nodes([0, 100], hp=[1, 1]))
    np.testing.assert_allclose(p, [0.5, 0.5])


def test_dpos_weights_by_stake_and_ignores_debt():
    p = win_probabilities("dpos", nodes([50, 50, 50], stake=[100, 300, -50]))
    np.testing.assert_allclose(p, [0.25, 0.75, 0.0])


def test_der_cbc_falls_with_distance_and_rises_with_cleanliness():
    d = np.array([0.1, 1.0, 3.0])
    p = win_probabilities("der_cbc", nodes([100] * 3, distance=d, cleanliness=np.full(3, 0.8)),
                          tau=10, distance_scale=1.0, q_exponent=2.0)
    assert p[0] > p[1] > p[2]
    q = np.array([0.3, 0.6, 0.8])
    p = win_probabilities("der_cbc", nodes([100] * 3, distance=np.ones(3), cleanliness=q),
                          tau=10, distance_scale=1.0, q_exponent=2.0)
    assert p[0] < p[1] < p[2]
    np.testing.assert_allclose(p, q**2 / (q**2).sum())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=1, max_size=30), st.floats(0.5, 50))
def test_probabilities_are_a_distribution(credit, tau):
    for rule in CONSENSUS_RULES:
        p = win_probabilities(rule, nodes(credit), tau=tau)
        assert np.all(p >= 0) and p.sum() == pytest.approx(1.0)


def test_sampled_draws_follow_the_probabilities():
    rng = np.random.default_rng(3)
    n = nodes([90, 94, 97, 100])
    counts = np.bincount([draw_producer("poca", n, rng, tau=10) for _ in range(20000)],
                         minlength=4)
    p = win_probabilities("poca", n, tau=10)
    assert stats.chisquare(counts, 20000 * p).pvalue > 0.001


def test_hashed_and_sampled_poca_agree_statistically():
    """A real SHA-256 nonce race wins with the same distribution as the sampled draw."""
    credit = np.array([90.0, 93.0, 96.0, 100.0])
    hp = np.array([1.0, 1.0, 2.0, 1.0])
    addresses = [f"node{i}" for i in range(4)]
    targets = poca_targets(credit, difficulty_bits=9, tau=10.0)
    blocks = 1500
    wins = np.zeros(4)
    for k in range(blocks):
        race = hashed_race(f"{k:064x}", addresses, hp, targets)
        assert race.verified
        assert pow_hash(f"{k:064x}", addresses[race.winner], race.nonce) <= race.target
        wins[race.winner] += 1
    p = win_probabilities("poca", nodes(credit, hp=hp), tau=10.0)
    assert stats.chisquare(wins, blocks * p).pvalue > 0.001
    rng = np.random.default_rng(1)
    sampled = np.bincount([draw_producer("poca", nodes(credit, hp=hp), rng, tau=10.0)
                           for _ in range(blocks)], minlength=4)
    # Two-sample test of homogeneity: the two modes' win counts come from one distribution.
    assert stats.chi2_contingency(np.vstack([wins, sampled])).pvalue > 0.001


def test_gini_and_nakamoto_known_values():
    assert gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)
    assert nakamoto([10, 0, 0]) == 1
    assert nakamoto([4, 3, 2, 1]) == 2  # 4 + 3 > 5
    assert nakamoto([1, 1, 1, 1]) == 3  # two is exactly half, not more


def test_quorum_tolerates_up_to_m_colluding_faulty_nodes():
    n, m = 10, 5
    for wrong in range(n + 1):
        faulty = np.arange(n) < wrong
        q = matching_quorum(n, faulty, m, collude=True)
        assert q.conflict == (wrong > m)
        assert q.committed == (n - wrong > m and wrong <= m)
    # Non-colluding faulty nodes never build a wrong quorum when m >= 1.
    q = matching_quorum(n, np.arange(n) < 4, 1, collude=False)
    assert q.committed and not q.conflict


def test_failed_quorum_voids_the_hours_trades():
    ok = DIPIModel(seed=5, n_dpgc=4, n_users=16, hours=6, faulty_share=0.2).run()
    bad = DIPIModel(seed=5, n_dpgc=4, n_users=16, hours=6, faulty_share=0.6).run()
    assert ok.summary()["p2p_volume_kwh"] > 0
    assert bad.summary()["p2p_volume_kwh"] == 0
    assert (bad.hourly_dataframe()["quorum_committed"] == 0).all()


def test_attack_miner_share_depends_on_rule():
    """A stand-alone miner with half the hash power and no credit history."""
    share = {}
    for rule in ("pow", "poca"):
        m = DIPIModel(seed=11, n_dpgc=4, n_users=16, hours=200, consensus=rule,
                      n_miners=1, miner_hash_power=20.0).run()
        share[rule] = m.summary()["standalone_block_share"]
    assert 0.35 < share["pow"] < 0.65
    assert share["poca"] < 0.01  # exp(-credit/tau) ~ e^-9.5 relative weight


def test_hashed_mode_runs_in_the_model_and_reports_hashes():
    m = DIPIModel(seed=2, n_dpgc=3, n_users=9, hours=5, poca_mode="hashed",
                  poca_difficulty_bits=6).run()
    h = m.hourly_dataframe()
    assert (h["block_hashes"] > 0).all()
    assert m.summary()["blocks"] == 5


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.lists(st.integers(0, 39), max_size=300),
       st.lists(st.integers(0, 39), max_size=3))
def test_block_tally_is_gini_and_nakamoto_to_the_bit(n, winners, jumps):
    """The running tally equals the sorting functions after every block, and after
    any other change of the counts (it then recounts)."""
    won = np.zeros(n, np.int64)
    tally = BlockTally()
    for i, w in enumerate(winners):
        won[w % n] += 1
        if i in jumps:
            won[(w * 7) % n] += 5  # not one block: the tally must notice and recount
        g, k = tally.update(won)
        assert g == gini(won)
        assert k == nakamoto(won[won > 0])
    assert tally.update(np.zeros(n, np.int64)) == (0.0, 0)


def _corrcoef_reference(counts, credit):
    """What win_credit_correlation computed before it replayed corrcoef's steps itself."""
    a, b = np.asarray(counts, dtype=np.float64), np.asarray(credit, dtype=np.float64)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3000), st.integers(0, 2**32 - 1), st.sampled_from(["uniform", "few", "flat",
                                                                        "tiny", "nan", "one"]))
def test_win_credit_correlation_is_corrcoef(n, seed, kind):
    """Pearson's r from its formula, within 1e-12 of np.corrcoef (the order of the sums
    differs); NaN where a spread is zero."""
    rng = np.random.default_rng(seed)
    won = np.where(rng.random(n) < 0.05, rng.integers(0, 9, n), 0).astype(np.int64)
    credit = {"uniform": lambda: rng.uniform(0.0, 100.0, n),
              "few": lambda: rng.choice([0.0, 37.5, 100.0], n),
              "flat": lambda: np.full(n, 0.1),
              "tiny": lambda: 0.1 + rng.uniform(0.0, 1e-160, n),
              "nan": lambda: np.where(rng.random(n) < 0.01, np.nan, rng.uniform(0, 100, n)),
              "one": lambda: np.where(np.arange(n) == n // 2, 99.0, 60.0)}[kind]()
    for a, b in ((won, credit), (credit, won)):
        got, want = win_credit_correlation(a, b), _corrcoef_reference(a, b)
        assert got == pytest.approx(want, rel=0, abs=1e-12, nan_ok=True)
