"""Performance scores and credit-update rules (MODEL.md section 6, [DIPI]).

Each rule is a pure function over columns of parties, registered by name in
:data:`CREDIT_RULES`. A party that settled ``k`` contracts this hour, all
with the same score (volumes are attributed pro rata, so every contract of a
party performs alike), is updated as if the contracts were settled one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .registry import Rule

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


@dataclass
class CreditState:
    """Per-party memory the rules need, as columns."""

    credit: NDArray[np.float64]
    count: NDArray[np.int64]  # settled contracts (or trading periods) so far
    credit_sum: NDArray[np.float64]  # C_1 + ... + C_n, for the paper rule
    window: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    window_pos: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def new(cls, n: int, initial: float, window: int) -> CreditState:
        return cls(
            credit=np.full(n, float(initial)),
            count=np.zeros(n, np.int64),
            credit_sum=np.zeros(n),
            window=np.full((n, window), np.nan),
            window_pos=np.zeros(n, np.int64),
        )


def update_paper(state: CreditState, idx: NDArray[np.intp], score: NDArray, k: NDArray,
                 **_: object) -> None:
    """[DIPI]: C_n = (C_1 + ... + C_{n-1} + s_n) / n, applied k times with the same score.

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


#: Credit rules: ``rule(state, idx, score, k)`` updates parties ``idx`` in place.
CREDIT_RULES: dict[str, Rule] = {
    "paper": Rule(update_paper),
    "ema": Rule(update_ema, keys={"alpha": "credit_ema_alpha"}),
    "window": Rule(update_window),
}


def update_credit(rule: str, state: CreditState, idx: NDArray[np.intp], score: NDArray,
                  k: NDArray, *, alpha: float = 0.1) -> None:
    """Apply the named rule to parties ``idx`` that settled ``k`` contracts scoring ``score``
    (for studies and tests; the model binds its rule once)."""
    if rule not in CREDIT_RULES:
        raise ValueError(f"credit_rule = {rule!r}: must be one of {', '.join(CREDIT_RULES)}")
    if idx.size:
        CREDIT_RULES[rule](state, idx, score, np.asarray(k, dtype=np.int64), alpha=alpha)
