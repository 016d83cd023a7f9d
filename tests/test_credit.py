"""Performance scores and credit-update rules (docs/model.md section 6, [DIPI])."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipi_abm.rules.credit import (
    CREDIT_RULES,
    CreditState,
    buyer_score,
    seller_score,
    update_credit,
)

# ------------------------------------------------------------------ scores


def test_buyer_score_formula():
    b = np.array([0.0, 50.0, 90.0, 100.0, 130.0])
    np.testing.assert_allclose(buyer_score(b, np.full(5, 100.0)), [0.0, 50.0, 90.0, 100.0, 100.0])


def test_seller_score_unweighted():
    g = np.array([0.0, 50.0, 90.0, 100.0, 130.0])
    np.testing.assert_allclose(seller_score(g, np.full(5, 100.0), 0.0),
                               [0.0, 50.0, 90.0, 100.0, 100.0])


@pytest.mark.parametrize("lam", [0.05, 0.1, 0.2, 0.29])
def test_natural_factor_forgives_shortfall_up_to_lambda_q(lam):
    q = 200.0
    # a shortfall of exactly lambda*q (or less) is forgiven
    assert float(seller_score(np.array([(1 - lam) * q]), np.array([q]), lam)[0]) == (
        pytest.approx(100.0)
    )
    assert float(seller_score(np.array([(1 - lam / 2) * q]), np.array([q]), lam)[0]) == 100.0
    # beyond it the score falls, against (1 - lambda) q
    g = (1 - lam) * q - 20.0
    expected = 100.0 * g / ((1 - lam) * q)
    assert float(seller_score(np.array([g]), np.array([q]), lam)[0]) == pytest.approx(expected)
    # and is never below the unweighted score
    assert expected > 100.0 * g / q


@pytest.mark.parametrize("lam", [0.3, 0.5, -0.1, -1e-9])
def test_natural_factor_outside_range_rejected(lam):
    with pytest.raises(ValueError, match="natural_factor"):
        seller_score(np.array([1.0]), np.array([1.0]), lam)


volume = st.one_of(st.just(0.0), st.floats(1e-3, 1e4))  # agreed kWh


@settings(max_examples=100, deadline=None)
@given(st.floats(0.0, 1e4), volume, st.floats(0.0, 0.299))
def test_scores_formula_and_range(b, q, lam):
    sb = float(buyer_score(np.array([b]), np.array([q]))[0])
    ss = float(seller_score(np.array([b]), np.array([q]), lam)[0])
    assert 0.0 <= sb <= 100.0 and 0.0 <= ss <= 100.0
    if q > 0:
        assert sb == pytest.approx(100.0 * min(1.0, b / q))
        assert ss == pytest.approx(100.0 * min(1.0, b / ((1 - lam) * q)))
        assert ss >= sb


# ------------------------------------------------------------------ references


def paper_reference(history: list[tuple[int, float]]) -> float:
    """C_n = (C_1 + ... + C_{n-1} + s_n) / n, contract by contract; a new party has 100."""
    credits: list[float] = []
    for k, s in history:
        for _ in range(k):
            n = len(credits) + 1
            credits.append((sum(credits) + s) / n)
    return credits[-1] if credits else 100.0


def ema_reference(history, alpha, initial):
    c = initial
    for k, s in history:
        for _ in range(k):
            c = (1 - alpha) * c + alpha * s
    return c


def window_reference(history, width, initial):
    scores = [s for k, s in history for _ in range(k)]
    if not scores:
        return initial
    last = scores[-width:]
    return sum(last) / len(last)


def mean_reference(history, initial):
    scores = [s for k, s in history for _ in range(k)]
    return sum(scores) / len(scores) if scores else initial


def decay_reference(history, half_life, initial, hours=None):
    """sum_t k_t 2^(-(now - t)/h) s_t / sum_t k_t 2^(-(now - t)/h), hour by hour."""
    if not history:
        return initial
    hours = list(range(1, len(history) + 1)) if hours is None else hours
    now = hours[-1]
    w = [k * 2.0 ** (-(now - t) / half_life) for (k, _), t in zip(history, hours, strict=True)]
    return sum(wi * s for wi, (_, s) in zip(w, history, strict=True)) / sum(w)


def run_rule(rule, history, *, n=1, party=0, initial=100.0, window=24, alpha=0.1,
             half_life=24.0, hours=None):
    state = CreditState.new(n, initial, window)
    for j, (k, s) in enumerate(history):
        update_credit(rule, state, np.array([party]), np.array([s]), np.array([k]), alpha=alpha,
                      half_life_h=half_life, hour=None if hours is None else hours[j])
    return state


steps = st.lists(st.tuples(st.integers(1, 6), st.floats(0.0, 100.0)), min_size=1, max_size=25)


def test_registry_names():
    assert {"decay", "mean", "paper", "ema", "window"} <= set(CREDIT_RULES)


def test_paper_rule_telescopes_and_freezes():
    """C_n = C_(n-1) + (s_n - s_(n-1))/n: five perfect contracts then any number of 80s
    leave credit at 100 - 20/6 = 96.67 for ever (the issue's measurement)."""
    state = run_rule("paper", [(5, 100.0), (1, 80.0)])
    assert state.credit[0] == pytest.approx(100.0 - 20.0 / 6)
    for _ in range(50):
        update_credit("paper", state, np.array([0]), np.array([80.0]), np.array([20]))
    assert state.credit[0] == pytest.approx(100.0 - 20.0 / 6)
    # Each step moves by 1/n of the score's change, whatever the level.
    history = [(1, 90.0), (1, 40.0), (1, 70.0), (1, 70.0), (1, 10.0)]
    credits = [run_rule("paper", history[: i + 1]).credit[0] for i in range(len(history))]
    for n in range(2, len(history) + 1):
        step = (history[n - 1][1] - history[n - 2][1]) / n
        assert credits[n - 1] == pytest.approx(credits[n - 2] + step)


@settings(max_examples=100, deadline=None)
@given(steps, st.floats(0.0, 100.0))
def test_mean_is_the_running_mean_of_contract_scores(history, initial):
    state = run_rule("mean", history, initial=initial)
    assert state.credit[0] == pytest.approx(mean_reference(history, initial), rel=1e-9,
                                            abs=1e-9)
    assert run_rule("mean", [], initial=initial).credit[0] == initial


@settings(max_examples=100, deadline=None)
@given(steps, st.floats(0.5, 500.0), st.floats(0.0, 100.0), st.data())
def test_decay_is_the_time_weighted_mean_of_scores(history, half_life, initial, data):
    gaps = data.draw(st.lists(st.integers(1, 100), min_size=len(history),
                              max_size=len(history)))
    hours = list(np.cumsum(gaps))
    state = run_rule("decay", history, half_life=half_life, initial=initial, hours=hours)
    want = decay_reference(history, half_life, initial, hours)
    assert state.credit[0] == pytest.approx(want, rel=1e-9, abs=1e-9)
    # Without an hour, every update is one hour after the previous one.
    state = run_rule("decay", history, half_life=half_life, initial=initial)
    assert state.credit[0] == pytest.approx(decay_reference(history, half_life, initial),
                                            rel=1e-9, abs=1e-9)


def test_decay_memory_is_set_in_time_not_in_contracts():
    """A DPGC with 17 contracts an hour and a household with one remember alike."""
    state = CreditState.new(2, 100.0, 4)
    rng = np.random.default_rng(0)
    for hour in range(1, 200):
        s = rng.uniform(40.0, 100.0)
        update_credit("decay", state, np.array([0, 1]), np.array([s, s]), np.array([17, 1]),
                      half_life_h=24.0, hour=hour)
    assert state.credit[0] == pytest.approx(state.credit[1], rel=1e-12)
    # ema, counted in contracts, makes the busy party forget 17 times faster.
    ema = CreditState.new(2, 100.0, 4)
    for s in (100.0, 50.0):
        update_credit("ema", ema, np.array([0, 1]), np.array([s, s]), np.array([17, 1]),
                      alpha=0.1)
    assert ema.credit[0] < ema.credit[1] - 20.0


def test_decay_half_life_halves_the_weight_of_the_past():
    """After a long record of 100 at a steady pace, T hours of 0 leave 100 * 2^(-T/h)
    (up to the record's finite length)."""
    h = 48.0
    state = CreditState.new(1, 100.0, 4)
    hour = 0
    for hour in range(1, 48 * 40):
        update_credit("decay", state, np.array([0]), np.array([100.0]), np.array([3]),
                      half_life_h=h, hour=hour)
    for t in range(1, 97):
        update_credit("decay", state, np.array([0]), np.array([0.0]), np.array([3]),
                      half_life_h=h, hour=hour + t)
        assert state.credit[0] == pytest.approx(100.0 * 2.0 ** (-t / h), rel=1e-9)
    assert state.credit[0] == pytest.approx(25.0)  # two half-lives


def test_decay_credit_waits_between_trades():
    state = CreditState.new(1, 100.0, 4)
    for hour, s in ((1, 100.0), (2, 100.0), (3, 60.0)):
        update_credit("decay", state, np.array([0]), np.array([s]), np.array([1]),
                      half_life_h=10.0, hour=hour)
    # After a week without trading the old scores have faded: the next one weighs most.
    update_credit("decay", state, np.array([0]), np.array([100.0]), np.array([1]),
                  half_life_h=10.0, hour=3 + 168)
    assert state.credit[0] == pytest.approx(decay_reference(
        [(1, 100.0), (1, 100.0), (1, 60.0), (1, 100.0)], 10.0, 100.0, [1, 2, 3, 171]))
    assert state.credit[0] > 99.9


def test_decay_half_life_must_be_positive():
    state = CreditState.new(1, 100.0, 4)
    with pytest.raises(ValueError, match="credit_half_life_h"):
        update_credit("decay", state, np.array([0]), np.array([50.0]), np.array([1]),
                      half_life_h=0.0, hour=1)


def test_unknown_rule_rejected():
    state = CreditState.new(1, 100.0, 4)
    with pytest.raises(ValueError, match="credit_rule"):
        update_credit("nosuch", state, np.array([0]), np.array([50.0]), np.array([1]))


def test_paper_rule_worked_example():
    # s = 80, 100, 60 one contract each: C1 = 80, C2 = (80 + 100)/2 = 90,
    # C3 = (80 + 90 + 60)/3 = 76.666...
    state = run_rule("paper", [(1, 80.0)])
    assert state.credit[0] == pytest.approx(80.0)
    state = run_rule("paper", [(1, 80.0), (1, 100.0)])
    assert state.credit[0] == pytest.approx(90.0)
    state = run_rule("paper", [(1, 80.0), (1, 100.0), (1, 60.0)])
    assert state.credit[0] == pytest.approx(230.0 / 3)
    # two contracts at once with the same score = two single updates
    state = run_rule("paper", [(1, 80.0), (2, 60.0)])
    assert state.credit[0] == pytest.approx(paper_reference([(1, 80.0), (1, 60.0), (1, 60.0)]))
    assert state.count[0] == 3


@settings(max_examples=150, deadline=None)
@given(steps)
def test_paper_rule_equals_explicit_recursion(history):
    state = run_rule("paper", history)
    assert state.credit[0] == pytest.approx(paper_reference(history), rel=1e-9, abs=1e-9)
    assert state.count[0] == sum(k for k, _ in history)


@settings(max_examples=100, deadline=None)
@given(steps, st.floats(0.01, 1.0), st.floats(0.0, 100.0))
def test_ema_equals_k_fold_application(history, alpha, initial):
    state = run_rule("ema", history, alpha=alpha, initial=initial)
    assert state.credit[0] == pytest.approx(ema_reference(history, alpha, initial), rel=1e-9,
                                            abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(steps, st.integers(1, 10), st.floats(0.0, 100.0))
def test_window_equals_mean_of_last_k_scores(history, width, initial):
    state = run_rule("window", history, window=width, initial=initial)
    assert state.credit[0] == pytest.approx(window_reference(history, width, initial), rel=1e-9,
                                            abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["decay", "mean", "paper", "ema", "window"]),
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4), st.floats(0.0, 100.0)), min_size=1,
             max_size=30),
    st.integers(1, 8),
)
def test_vectorised_update_matches_per_party_history(rule, events, width):
    """Several parties updated in one call behave as each party alone."""
    n = 4
    state = CreditState.new(n, 100.0, width)
    histories: dict[int, list] = {i: [] for i in range(n)}
    # group events into hours where each party appears at most once
    hour: dict[int, tuple[int, float]] = {}
    hours = []
    for party, k, s in events:
        if party in hour:
            hours.append(hour)
            hour = {}
        hour[party] = (k, s)
    hours.append(hour)
    for h in hours:
        idx = np.array(sorted(h), dtype=np.intp)
        update_credit(rule, state, idx, np.array([h[i][1] for i in idx]),
                      np.array([h[i][0] for i in idx]), alpha=0.2, half_life_h=6.0)
        for i in idx:
            histories[int(i)].append(h[int(i)])
    for i in range(n):
        if rule == "paper":
            want = paper_reference(histories[i])
        elif rule == "ema":
            want = ema_reference(histories[i], 0.2, 100.0)
        elif rule == "mean":
            want = mean_reference(histories[i], 100.0)
        elif rule == "decay":
            # hour=None: every update of a party is one hour after its previous one
            want = decay_reference(histories[i], 6.0, 100.0)
        else:
            want = window_reference(histories[i], width, 100.0)
        assert state.credit[i] == pytest.approx(want, rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["decay", "mean", "paper", "ema", "window"]),
    st.lists(st.tuples(st.integers(1, 50), st.floats(-1e4, 1e5), volume, st.booleans()),
             min_size=1, max_size=30),
    st.floats(0.0, 100.0),
    st.floats(0.001, 1.0),
    st.floats(0.0, 0.299),
)
def test_credit_always_within_0_100(rule, events, initial, alpha, lam):
    state = CreditState.new(1, initial, 5)
    assert 0.0 <= state.credit[0] <= 100.0
    for k, actual, agreed, is_seller in events:
        a, q = np.array([max(actual, 0.0)]), np.array([agreed])
        s = seller_score(a, q, lam) if is_seller else buyer_score(a, q)
        update_credit(rule, state, np.array([0]), s, np.array([k]), alpha=alpha,
                      half_life_h=1.0 + 100.0 * alpha)
        assert 0.0 <= state.credit[0] <= 100.0
