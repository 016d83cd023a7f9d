"""Performance scores and credit-update rules (docs/model.md section 6, [DIPI]).

Each rule is a pure function over columns of parties, registered by name in
:data:`CREDIT_RULES`. A party that settled ``k`` contracts this hour, all
with the same score (volumes are attributed pro rata, so every contract of a
party performs alike), is updated as if the contracts were settled one by one.

The rules differ in their memory, and memory is what decides whether credit
tracks conduct:

- ``paper`` ([DIPI] eq. 1 read literally) averages the party's own past
  *credit values*; it telescopes to C_n = C_(n-1) + (s_n - s_(n-1))/n, so
  credit moves only when the score *changes* and by 1/n of the change. A party
  with a long record is frozen: five perfect contracts then a thousand scores
  of 80 leave it at 96.7 for ever. Kept for fidelity, never the default.
- ``mean``: the running mean of per-contract scores (the other reading of
  eq. 1). It moves with every score, but its memory is the whole record: after
  a year of good conduct a week of breaches barely shows.
- ``ema`` and ``window``: memory counted in contracts, so a DPGC with 17
  contracts an hour forgets in an hour what a household remembers for a week.
- ``decay`` (default): memory set in *time*. Each hour's contracts enter a
  weighted mean of scores with weight k, and all past weight halves every
  ``credit_half_life_h`` hours, so every party, busy or not, remembers alike. A new
  party starts from a prior worth ``credit_prior_contracts`` contracts at
  ``credit_initial`` (a pseudo-count that fades with the same half-life), not from
  whatever its first contract scored.

What a contract scores is a rule too (:data:`CREDIT_SCORES`, key ``credit_score``):
``kept`` (default) scores 100 for a contract side kept and 0 for a breach, by the very
flag the breach count uses, so credit is the recent share of contracts kept (how
often); ``dipi`` is [DIPI]'s graded s (how badly), under which a seller's shortfall
within lambda q scores 100 even when it counts as a breach.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .registry import Param, Rule

CREDIT_MAX = 100.0


def buyer_score(consumed: NDArray, agreed: NDArray) -> NDArray[np.float64]:
    """s = 100 min(1, b / q) ([DIPI] buyer performance)."""
    b = np.asarray(consumed, dtype=np.float64)
    q = np.asarray(agreed, dtype=np.float64)
    ratio = np.divide(b, q, out=np.ones_like(b), where=q > 0)
    return CREDIT_MAX * np.clip(ratio, 0.0, 1.0)


def seller_score(generated: NDArray, agreed: NDArray, natural_factor: float) -> NDArray[np.float64]:
    """s = 100 min(1, g / ((1 - lambda) q)): lambda forgives weather shortfalls ([DIPI])."""
    if not 0.0 <= natural_factor < 0.3:
        raise ValueError(f"natural_factor = {natural_factor}: must be in [0, 0.3)")
    g = np.asarray(generated, dtype=np.float64)
    q = np.asarray(agreed, dtype=np.float64) * (1.0 - natural_factor)
    ratio = np.divide(g, q, out=np.ones_like(g), where=q > 0)
    return CREDIT_MAX * np.clip(ratio, 0.0, 1.0)


def score_kept(breach: NDArray[np.bool_], ratio: NDArray, is_seller: NDArray[np.bool_],
               **_: float) -> NDArray[np.float64]:
    """100 for a kept contract side, 0 for a breach: the breach count's own definition."""
    return np.where(breach, 0.0, CREDIT_MAX)


def score_dipi(breach: NDArray[np.bool_], ratio: NDArray, is_seller: NDArray[np.bool_], *,
               natural_factor: float, **_: float) -> NDArray[np.float64]:
    """[DIPI]'s graded score of the delivered share ``ratio`` = b/q or g/q (see
    :func:`buyer_score`, :func:`seller_score`)."""
    return np.where(is_seller, seller_score(ratio, 1.0, natural_factor), buyer_score(ratio, 1.0))


#: Contract scores: ``score(breach, ratio, is_seller)`` per scored party (docs/model.md §6).
CREDIT_SCORES: dict[str, Rule] = {
    "kept": Rule(score_kept),
    "dipi": Rule(score_dipi, keys={"natural_factor": "natural_factor"}),
}


@dataclass
class CreditState:
    """Per-party memory the rules need, as columns."""

    credit: NDArray[np.float64]
    count: NDArray[np.int64]  # settled contracts (or trading periods) so far
    credit_sum: NDArray[np.float64]  # C_1 + ... + C_n, for the paper rule
    window: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    window_pos: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    weight: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))  # decay rule
    last_hour: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))  # decay rule

    @classmethod
    def new(cls, n: int, initial: float, window: int, prior: float = 0.0) -> CreditState:
        """``prior``: the weight, in contracts, of ``initial`` in the decay rule's mean."""
        return cls(credit=np.full(n, float(initial)), count=np.zeros(n, np.int64),
                   credit_sum=np.zeros(n), window=np.full((n, window), np.nan),
                   window_pos=np.zeros(n, np.int64), weight=np.full(n, float(prior)),
                   last_hour=np.zeros(n))


def update_paper(state: CreditState, idx: NDArray[np.intp], score: NDArray, k: NDArray,
                 **_: object) -> None:
    """[DIPI]: C_n = (C_1 + ... + C_{n-1} + s_n) / n, applied k times with the same score.

    Subtracting (n - 1) C_(n-1) = C_1 + ... + C_(n-2) + s_(n-1) gives the telescoped
    form C_n = C_(n-1) + (s_n - s_(n-1)) / n: credit moves only when the score
    changes, by 1/n of the change, and a steady score of any level leaves it
    where it is. That is why the rule freezes over a long run (docs/model.md section 6).

    With S_n = C_1 + ... + C_n and T_n = S_n / (n + 1) the recursion telescopes:
    T_{n+k} = T_n + s (1/(n+1) - 1/(n+k+1)) and C_{n+k} = T_{n+k-1} + s/(n+k).
    """
    n = state.count[idx].astype(np.float64)
    kk = k.astype(np.float64)
    s = np.asarray(score, dtype=np.float64)
    t_n = state.credit_sum[idx] / (n + 1.0)
    t_last_minus1 = t_n + s * (1.0 / (n + 1.0) - 1.0 / (n + kk))
    new_credit = t_last_minus1 + s / (n + kk)
    t_end = t_n + s * (1.0 / (n + 1.0) - 1.0 / (n + kk + 1.0))
    state.credit_sum[idx] = t_end * (n + kk + 1.0)
    state.count[idx] += k
    state.credit[idx] = np.clip(new_credit, 0.0, CREDIT_MAX)


def update_mean(state: CreditState, idx: NDArray[np.intp], score: NDArray, k: NDArray,
                **_: object) -> None:
    """C_n = (s_1 + ... + s_n) / n: the running mean of per-contract scores.

    The other reading of [DIPI] eq. 1 (its Table 2 credit columns look like
    per-transaction scores). A new party shows ``credit_initial`` until its first
    contract; from then on its record alone speaks.
    """
    n = state.count[idx].astype(np.float64)
    kk = k.astype(np.float64)
    c = (state.credit[idx] * n + kk * np.asarray(score, dtype=np.float64)) / (n + kk)
    state.credit[idx] = np.clip(c, 0.0, CREDIT_MAX)
    state.count[idx] += k


def update_decay(state: CreditState, idx: NDArray[np.intp], score: NDArray, k: NDArray, *,
                 half_life_h: float, hour: float | None = None, **_: object) -> None:
    """Time-decayed mean of scores: C = sum_t w_t s_t / sum_t w_t, w_t = k_t 2^(-age_t / h).

    The memory is set in hours, not contracts: the k contracts of this hour enter
    with weight k, and every past weight has halved once per ``half_life_h`` hours
    since it entered. A party's credit is therefore the mean score of its recent
    contracts with a fixed time horizon, whether it settles 17 contracts an hour
    or one a day (docs/model.md section 6). Between a party's trades nothing changes
    (numerator and denominator decay alike); the next score then weighs more.

    ``hour`` is the absolute hour of this update (the model's step count); ``None``
    counts every update as one hour after the party's previous one. The state's
    starting weight is the prior: ``credit_initial`` worth that many contracts at hour 0
    (:meth:`CreditState.new`), decaying like any score; with none, the first contract
    sets the credit.
    """
    if not half_life_h > 0.0:
        raise ValueError(f"credit_half_life_h = {half_life_h}: must be > 0")
    idx = np.asarray(idx, dtype=np.intp)
    k = np.asarray(k, dtype=np.int64)
    kk = k.astype(np.float64)
    now = state.last_hour[idx] + 1.0 if hour is None else np.full(idx.size, float(hour))
    elapsed = np.maximum(now - state.last_hour[idx], 0.0)
    w_old = state.weight[idx] * np.exp2(-elapsed / half_life_h)
    w_new = w_old + kk
    c = (state.credit[idx] * w_old + kk * np.asarray(score, dtype=np.float64)) / w_new
    state.weight[idx] = w_new
    state.last_hour[idx] = now
    state.credit[idx] = np.clip(c, 0.0, CREDIT_MAX)
    state.count[idx] += k


def update_ema(state: CreditState, idx: NDArray[np.intp], score: NDArray, k: NDArray, *,
               alpha: float, **_: object) -> None:
    """C_n = (1 - alpha) C_{n-1} + alpha s_n, applied k times: weight (1 - alpha)^k."""
    keep = (1.0 - alpha) ** k.astype(np.float64)
    c = keep * state.credit[idx] + (1.0 - keep) * np.asarray(score, dtype=np.float64)
    state.credit[idx] = np.clip(c, 0.0, CREDIT_MAX)
    state.count[idx] += k


def update_window(state: CreditState, idx: NDArray[np.intp], score: NDArray, k: NDArray,
                  **_: object) -> None:
    """Mean score over the party's last ``credit_window`` contracts.

    The window is a ring of per-contract scores; k contracts with one score
    fill k slots (at most the whole ring).
    """
    width = state.window.shape[1]
    s = np.asarray(score, dtype=np.float64)
    kk = np.minimum(k, width)
    # Slots j = 0..width-1 after the write position, for each party: fill where j < k.
    j = np.arange(width)
    cols = (state.window_pos[idx, None] + j[None, :]) % width
    fill = j[None, :] < kk[:, None]
    rows = np.broadcast_to(idx[:, None], cols.shape)
    state.window[rows[fill], cols[fill]] = np.broadcast_to(s[:, None], cols.shape)[fill]
    state.window_pos[idx] = (state.window_pos[idx] + kk) % width
    state.count[idx] += k
    state.credit[idx] = np.clip(np.nanmean(state.window[idx], axis=1), 0.0, CREDIT_MAX)


HALF_LIFE = Param(
    "credit_half_life_h", 72.0, float, "h",
    "decay rule: past scores' weight halves every "
    "this many hours, whatever the party's number of contracts.", "credit", low=0.0,
    high=1e6, low_open=True)
PRIOR = Param("credit_prior_contracts", 10.0, float, "contracts", "decay rule: the prior's "
    "weight, in contracts scored credit_initial at hour 0 (fading with the half-life); 0: "
    "the first contract sets the credit.", "credit", low=0.0, high=1e6)
EMA_ALPHA = Param("credit_ema_alpha", 0.1, float, "-", "Weight of the newest score (ema rule).",
    "credit", low=0.0, high=1.0, low_open=True)
WINDOW = Param("credit_window", 24, int, "-", "Scores averaged (window rule).", "credit", low=1,
    high=10_000)

#: Credit rules: ``rule(state, idx, score, k, hour=...)`` updates parties ``idx`` in place;
#: ``hour`` is the model's hour (the decay rule's clock; the others ignore it).
CREDIT_RULES: dict[str, Rule] = {
    "decay": Rule(update_decay, keys={"half_life_h": "credit_half_life_h"},
                  params=(HALF_LIFE, PRIOR)),
    "mean": Rule(update_mean),
    "paper": Rule(update_paper),
    "ema": Rule(update_ema, keys={"alpha": "credit_ema_alpha"}, params=(EMA_ALPHA,)),
    "window": Rule(update_window, params=(WINDOW,)),
}


def update_credit(rule: str, state: CreditState, idx: NDArray[np.intp], score: NDArray,
                  k: NDArray, *, alpha: float = 0.1, half_life_h: float | None = None,
                  hour: float | None = None) -> None:
    """Apply the named rule to parties ``idx`` that settled ``k`` contracts scoring ``score``
    (for studies and tests; the model binds its rule once).

    ``alpha`` is the ema weight, ``half_life_h`` the decay rule's half-life (None:
    the scenario default, ``credit_half_life_h``) and ``hour`` the absolute hour of
    the update (the decay rule's clock; see :func:`update_decay`); rules ignore what
    they do not use.
    """
    if half_life_h is None:
        half_life_h = HALF_LIFE.default
    if rule not in CREDIT_RULES:
        raise ValueError(f"credit_rule = {rule!r}: must be one of {', '.join(CREDIT_RULES)}")
    update = CREDIT_RULES[rule].bind({"credit_ema_alpha": alpha,
                                      "credit_half_life_h": half_life_h})
    if idx.size:
        update(state, idx, score, np.asarray(k, dtype=np.int64), hour=hour)
