"""Block-producer rules (MODEL.md section 7), registered by name.

A rule maps the miner nodes' columns (hash power, credit, stake) to winning
weights; the producer of the period's block is drawn from the normalised
weights with the consensus stream of the run's SeedSequence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Nodes:
    """Miner nodes as columns: party-owned nodes first, then stand-alone miners."""

    hash_power: NDArray[np.float64]
    credit: NDArray[np.float64]  # 0..100; stand-alone miners have no credit history (0)
    stake: NDArray[np.float64]  # balance, yuan


def poca_weights(nodes: Nodes, *, tau: float = 10.0) -> NDArray[np.float64]:
    """POCA ([DIPI] eq. 10): P(win) proportional to hash power x exp(credit / tau).

    Shifted by the largest credit before exponentiating, so large credits over
    small tau neither overflow nor change the distribution.
    """
    c = nodes.credit
    top = float(c.max()) if c.size else 0.0
    return nodes.hash_power * np.exp((c - top) / tau)


def pow_weights(nodes: Nodes, **_: float) -> NDArray[np.float64]:
    """Proof of work: hash power alone."""
    return nodes.hash_power.astype(np.float64, copy=True)


def dpos_weights(nodes: Nodes, **_: float) -> NDArray[np.float64]:
    """Delegated proof of stake ([DIPI] eq. 9): weight by stake; negative balances hold none."""
    return np.maximum(nodes.stake, 0.0)


CONSENSUS_RULES: dict[str, Callable[..., NDArray[np.float64]]] = {
    "poca": poca_weights,
    "pow": pow_weights,
    "dpos": dpos_weights,
}


def win_probabilities(rule: str, nodes: Nodes, *, tau: float = 10.0) -> NDArray[np.float64]:
    """Each node's chance of producing the next block under ``rule``."""
    w = CONSENSUS_RULES[rule](nodes, tau=tau)
    total = float(w.sum())
    if not np.isfinite(total) or total <= 0.0:
        # Nobody holds weight (e.g. every stake is zero): every node is equally likely.
        return np.full(w.size, 1.0 / w.size)
    return w / total


def draw_producer(rule: str, nodes: Nodes, rng: np.random.Generator, *, tau: float = 10.0) -> int:
    """Draw the period's block producer (the `sampled` mode of POCA and the others)."""
    p = win_probabilities(rule, nodes, tau=tau)
    # Inverse-CDF draw: one uniform per block, O(n) and stable across numpy versions.
    u = rng.random()
    return int(min(np.searchsorted(np.cumsum(p), u * p.sum(), side="right"), p.size - 1))
