"""Adaptive parties (docs/model.md section 8): how much to commit and at what price.

Each hour a party that sells chooses an action (commitment ratio, ask markup)
and a party that buys chooses (bid-volume ratio, bid discount), from small
grids. After the hour is settled it is paid its realised profit, and a
learning rule (registry :data:`LEARNING_RULES`) updates its propensities:

- ``roth_erev``: modified Roth-Erev reinforcement (Erev & Roth 1998) with a
  reference point, so that losses are felt: the reinforcement is the payoff
  minus the party's running reference payoff, R = x - rho, and
  q_j <- (1 - phi) q_j + R (1 - eps) for the chosen action and
  q_j <- (1 - phi) q_j + R eps / (K - 1) for the others, each propensity kept
  above a small floor nu; P(j) = q_j / sum q; then rho <- rho + w (x - rho).
  An hour worse than usual (a penalty, a forfeit, a lost match) *lowers* the
  propensity of what the party did, however negative the payoff; the floored
  form max(x, 0) would learn every loss as "nothing" (docs/model.md section 8).
- ``epsilon_greedy``: the action with the best running mean profit, a random
  one with probability eps.
- ``static``: no learning; everyone keeps the configured commitment and the
  markups drawn at the start.

The profit signal is what the hour earned the party over the grid-only
alternative (selling everything at F, buying everything at R), per kWh of
its forecast net position, plus any block reward it won (also per kWh): so
matched volume, lost matches, and the credit that buys matching priority and
block rewards all count. Every party starts with probability 0.8 on its starting
action (commit its forecast at its drawn markup); opportunists start on the
largest commitment. Everything is vectorised over parties.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .registry import Param, Rule

#: Probability of a party's starting action before it has learnt anything.
START_PROBABILITY = 0.8

#: Roth-Erev's propensity floor nu (Erev & Roth 1998 use 1e-4), in the payoff's units
#: (yuan per kWh): no action's propensity falls below it, so none is abandoned for ever.
PROPENSITY_FLOOR = 1e-4


@dataclass
class ActionGrid:
    """The actions of one side: every (volume ratio, price level) pair."""

    volume_ratio: NDArray[np.float64]  # (K,)
    price_level: NDArray[np.float64]  # (K,) markup (sellers) or discount (buyers), in [0, 1]

    @classmethod
    def build(cls, ratios: NDArray[np.float64], levels: NDArray[np.float64]) -> ActionGrid:
        r, lv = np.meshgrid(ratios, levels, indexing="ij")
        return cls(r.ravel(), lv.ravel())

    @property
    def size(self) -> int:
        return int(self.volume_ratio.size)

    def nearest(self, ratio: float, level: NDArray[np.float64]) -> NDArray[np.intp]:
        """The action closest to (ratio, level) for each party."""
        d = (np.abs(self.volume_ratio[None, :] - ratio)
             + np.abs(self.price_level[None, :] - level[:, None]))
        return np.argmin(d, axis=1)


@dataclass
class Learner:
    """Per-party learning state for one side (sellers or buyers)."""

    actions: ActionGrid
    propensity: NDArray[np.float64]  # (n, K) Roth-Erev propensities
    value: NDArray[np.float64]  # (n, K) running mean profit (epsilon-greedy)
    count: NDArray[np.int64]  # (n, K)
    chosen: NDArray[np.intp]  # (n,) action taken this hour (-1: none)
    reference: NDArray[np.float64]  # (n,) Roth-Erev reference payoff rho (nan: none yet)

    @classmethod
    def new(cls, n: int, actions: ActionGrid, start: NDArray[np.intp]) -> Learner:
        k = actions.size
        prop = np.ones((n, k))
        # The starting action has START_PROBABILITY, the others share the rest.
        prop[np.arange(n), start] = START_PROBABILITY / (1 - START_PROBABILITY) * max(k - 1, 1)
        value = np.zeros((n, k))
        return cls(actions, prop, value, np.zeros((n, k), np.int64), np.full(n, -1, np.intp),
                   np.full(n, np.nan))


def choose_roth_erev(lr: Learner, idx: NDArray[np.intp], rng: np.random.Generator,
                     **_: float) -> NDArray[np.intp]:
    """Draw an action per party with probability proportional to its propensities."""
    p = lr.propensity[idx]
    cum = np.cumsum(p, axis=1)
    u = rng.random(idx.size) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), lr.actions.size - 1)


def update_roth_erev(lr: Learner, idx: NDArray[np.intp], reward: NDArray[np.float64], *,
                     recency: float, experimentation: float, reference_rate: float = 0.05,
                     **_: float) -> None:
    """Roth-Erev with a reference point: reinforce by payoff minus the running reference.

    The first payoff a party sees sets its reference (that hour teaches it nothing);
    afterwards rho <- rho + w (x - rho) with w = ``reference_rate``. Propensities are
    floored at :data:`PROPENSITY_FLOOR`, so a punished action keeps a small chance.
    """
    k = lr.actions.size
    x = np.asarray(reward, dtype=np.float64)
    ref = lr.reference[idx]
    ref = np.where(np.isnan(ref), x, ref)
    r = x - ref
    a = lr.chosen[idx]
    spill = r * experimentation / max(k - 1, 1)
    q = lr.propensity[idx] * (1.0 - recency)
    q += spill[:, None]
    q[np.arange(idx.size), a] += r * (1.0 - experimentation) - spill
    lr.propensity[idx] = np.maximum(q, PROPENSITY_FLOOR)
    lr.reference[idx] = ref + reference_rate * r


def choose_epsilon_greedy(lr: Learner, idx: NDArray[np.intp], rng: np.random.Generator, *,
                          epsilon: float, **_: float) -> NDArray[np.intp]:
    """Best running mean profit (untried actions first), a random action with probability eps."""
    v = np.where(lr.count[idx] > 0, lr.value[idx], np.inf)
    best = np.argmax(v, axis=1)
    explore = rng.random(idx.size) < epsilon
    return np.where(explore, rng.integers(0, lr.actions.size, idx.size), best)


def update_epsilon_greedy(lr: Learner, idx: NDArray[np.intp], reward: NDArray[np.float64],
                          **_: float) -> None:
    """Running mean profit of the chosen action."""
    a = lr.chosen[idx]
    lr.count[idx, a] += 1
    lr.value[idx, a] += (reward - lr.value[idx, a]) / lr.count[idx, a]


def choose_static(lr: Learner, idx: NDArray[np.intp], rng: np.random.Generator,
                  **_: float) -> NDArray[np.intp]:
    """No choice: parties keep their starting commitment and price."""
    return np.full(idx.size, -1, np.intp)


def update_static(lr: Learner, idx: NDArray[np.intp], reward: NDArray[np.float64],
                  **_: float) -> None:
    """No learning."""
    return None


def learning(choose: Callable[..., NDArray[np.intp]], update: Callable[..., None]
             ) -> Callable[..., tuple[Callable[..., NDArray[np.intp]], Callable[..., None]]]:
    """A learning rule's function: its settings in, ``(choose, update)`` out, bound to them:
    ``choose(lr, idx, rng)`` picks this hour's actions, ``update(lr, idx, reward)`` learns."""

    def bound(**settings: float) -> tuple[Callable[..., NDArray[np.intp]], Callable[..., None]]:
        return (functools.partial(choose, **settings), functools.partial(update, **settings))

    bound.__doc__ = f"{choose.__doc__}\n\n{update.__doc__}"
    return bound


RECENCY = Param("roth_erev_recency", 0.05, float, "-", "Roth-Erev forgetting phi.", "behaviour",
    low=0.0, high=1.0, high_open=True)
EXPERIMENTATION = Param(
    "roth_erev_experimentation", 0.1, float, "-",
    "Roth-Erev spill-over eps to the "
    "actions not taken.", "behaviour", low=0.0, high=1.0, high_open=True)
REFERENCE_RATE = Param(
    "roth_erev_reference_rate", 0.05, float, "-",
    "Roth-Erev: weight w of the newest "
    "payoff in the running reference payoff; reinforcement is payoff minus reference, "
    "so losses are felt.", "behaviour", low=0.0, high=1.0, low_open=True)
EPSILON = Param("egreedy_epsilon", 0.1, float, "-", "epsilon-greedy exploration probability.",
    "behaviour", low=0.0, high=1.0)

_RE_KEYS = {"recency": "roth_erev_recency", "experimentation": "roth_erev_experimentation",
            "reference_rate": "roth_erev_reference_rate"}
#: Learning rules: ``rule(**settings) -> (choose, update)``. ``adaptive``: parties
#: choose their actions each hour (without it they keep their starting ones).
LEARNING_RULES: dict[str, Rule] = {
    "roth_erev": Rule(learning(choose_roth_erev, update_roth_erev), keys=_RE_KEYS,
                      traits=frozenset({"adaptive"}),
                      params=(RECENCY, EXPERIMENTATION, REFERENCE_RATE)),
    "epsilon_greedy": Rule(learning(choose_epsilon_greedy, update_epsilon_greedy),
                           keys={"epsilon": "egreedy_epsilon"}, traits=frozenset({"adaptive"}),
                           params=(EPSILON,)),
    "static": Rule(learning(choose_static, update_static)),
}
