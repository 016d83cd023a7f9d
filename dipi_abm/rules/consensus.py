"""Block-producer rules (docs/model.md section 7), registered by name.

A rule maps the miner nodes' columns (hash power, credit, stake, distance,
cleanliness) to winning weights. The producer of the period's block is then
either drawn from the normalised weights (`sampled`: fast) or, for POCA,
found by a real SHA-256 nonce search (`hashed`: faithful to [DIPI] eq. 10).
Both give the same distribution; a test checks it with a chi-square test.

Also here: the concentration measures of block production (Gini, Nakamoto
coefficient) and the credit-matching quorum ([DIPI] section 4.2 step 5).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .credit import CREDIT_MAX
from .registry import Param, Rule

HASH_SPACE = 2**256


@dataclass(frozen=True)
class Nodes:
    """Miner nodes as columns: party-owned nodes first, then stand-alone miners."""

    hash_power: NDArray[np.float64]
    credit: NDArray[np.float64]  # 0..100; stand-alone miners have no credit history (0)
    stake: NDArray[np.float64]  # balance, yuan
    distance: NDArray[np.float64] | None = None  # electrical distance to counterparties, ohm
    cleanliness: NDArray[np.float64] | None = None  # Q of the node's energy, 0..1


def poca_weights(nodes: Nodes, *, tau: float = 10.0) -> NDArray[np.float64]:
    """POCA ([DIPI] eq. 10): P(win) proportional to hash power x exp(credit / tau).

    Shifted by the largest credit before exponentiating, so large credits over
    small tau neither overflow nor change the distribution.
    """
    c = nodes.credit
    top = float(c.max()) if c.size else 0.0
    return nodes.hash_power * np.exp((c - top) / tau)


def pow_weights(nodes: Nodes) -> NDArray[np.float64]:
    """Proof of work: hash power alone."""
    return nodes.hash_power.astype(np.float64, copy=True)


def dpos_weights(nodes: Nodes) -> NDArray[np.float64]:
    """Delegated proof of stake ([DIPI] eq. 9): weight by stake; negative balances hold none."""
    return np.maximum(nodes.stake, 0.0)


def der_cbc_weights(nodes: Nodes, *, tau: float = 10.0, distance_scale: float = 1.0,
                    q_exponent: float = 2.0) -> NDArray[np.float64]:
    """[DER-CBC]: the POCA weight times Q^beta times exp(-D / D0).

    The chance falls with the node's electrical distance to its counterparties
    (negligible a few D0 away, [DER-CBC] Fig. 8) and rises with the
    cleanliness Q of its energy ([DER-CBC] Fig. 9).
    """
    w = poca_weights(nodes, tau=tau)
    if nodes.cleanliness is not None:
        w = w * np.power(np.clip(nodes.cleanliness, 0.0, 1.0), q_exponent)
    if nodes.distance is not None:
        w = w * np.exp(-np.maximum(nodes.distance, 0.0) / distance_scale)
    return w


#: How the producer of a ``nonce_race`` rule is found: drawn from the weights
#: (``sampled``, fast) or by a real nonce search (``hashed``, faithful).
POCA_MODES = ("sampled", "hashed")
POCA_TAU = Param("poca_tau", 10.0, float, "credit", "POCA temperature: weight exp(credit/tau); 10 "
    "makes credits 90 and 100 differ by a factor e.", "consensus", low=0.01, high=1e6)
POCA_MODE = Param(
    "poca_mode", "sampled", str, "-",
    "POCA producer: drawn from the weights (sampled, "
    "fast) or found by a real SHA-256 nonce search that the other nodes verify (hashed).",
    "consensus", choices=POCA_MODES)
POCA_DIFFICULTY = Param(
    "poca_difficulty_bits", 10.0, float, "bits",
    "Hashed POCA: a credit-100 node succeeds "
    "with probability 2^-bits per hash (target N_diff exp(credit/tau)).", "consensus",
    low=1.0, high=32.0)
DER_CBC_DISTANCE = Param(
    "der_cbc_distance_scale_ohm", 1.0, float, "ohm",
    "der_cbc: weight falls as "
    "exp(-D/D0) with the node's electrical distance to its counterparties.", "consensus",
    low=0.0, high=1e6, low_open=True)
DER_CBC_Q = Param("der_cbc_q_exponent", 2.0, float, "-", "der_cbc: weight grows as Q^beta with the "
    "cleanliness of the node's energy.", "consensus", low=0.0, high=20.0)



#: Consensus rules: ``rule(nodes) -> weights``. ``nonce_race``: the producer may
#: also be found by a real SHA-256 nonce race (``poca_mode = "hashed"``);
#: ``needs_distance`` / ``needs_cleanliness``: the nodes carry those columns.
CONSENSUS_RULES: dict[str, Rule] = {
    "poca": Rule(poca_weights, keys={"tau": "poca_tau"}, traits=frozenset({"nonce_race"}),
                 params=(POCA_TAU, POCA_MODE, POCA_DIFFICULTY)),
    "pow": Rule(pow_weights),
    "dpos": Rule(dpos_weights),
    "der_cbc": Rule(der_cbc_weights,
                    keys={"tau": "poca_tau", "distance_scale": "der_cbc_distance_scale_ohm",
                          "q_exponent": "der_cbc_q_exponent"},
                    traits=frozenset({"needs_distance", "needs_cleanliness"}),
                    params=(POCA_TAU, DER_CBC_DISTANCE, DER_CBC_Q)),
}



def normalise(w: NDArray[np.float64]) -> NDArray[np.float64]:
    """Winning weights as probabilities."""
    total = float(w.sum())
    if not np.isfinite(total) or total <= 0.0:
        # Nobody holds weight (e.g. every stake is zero): every node is equally likely.
        return np.full(w.size, 1.0 / w.size)
    return w / total


def win_probabilities(rule: str, nodes: Nodes, **kw: float) -> NDArray[np.float64]:
    """Each node's chance of producing the next block under ``rule`` (``kw``: settings;
    each rule takes the ones its entry declares)."""
    return normalise(CONSENSUS_RULES[rule](nodes, **kw))


def draw_from(p: NDArray[np.float64], rng: np.random.Generator) -> int:
    """Inverse-CDF draw of one node from probabilities ``p``: one uniform, O(n).

    The node is the first whose cumulative probability exceeds ``u * p.sum()``."""
    u = rng.random()
    p = np.asarray(p, dtype=np.float64)
    return int(min(np.searchsorted(np.cumsum(p), u * p.sum(), side="right"), p.size - 1))


def draw_producer(rule: str, nodes: Nodes, rng: np.random.Generator, **kw: float) -> int:
    """Draw the period's block producer (the `sampled` mode)."""
    return draw_from(win_probabilities(rule, nodes, **kw), rng)


# ----------------------------------------------------------------------------- hashed POCA
def pow_hash(seed_hex: str, address: str, nonce: int) -> int:
    """SHA-256(W || address || nonce) as an integer ([DIPI] eq. 10's left side)."""
    data = bytes.fromhex(seed_hex) + address.encode() + int(nonce).to_bytes(8, "big")
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def poca_targets(credit: NDArray[np.float64], difficulty_bits: float,
                 tau: float) -> list[int]:
    """Targets N_diff * exp(c / tau), with N_diff set so that credit 100 succeeds with
    probability 2^-difficulty_bits per hash."""
    out = []
    for c in np.asarray(credit, dtype=np.float64):
        p = 2.0 ** (-difficulty_bits) * math.exp((float(c) - CREDIT_MAX) / tau)
        out.append(max(1, int(p * HASH_SPACE)))
    return out


@dataclass(frozen=True)
class HashedResult:
    winner: int
    nonce: int
    target: int
    hashes: int  # SHA-256 evaluations spent by all nodes in the race
    verified: bool  # the other nodes recomputed the winner's hash and accepted it


def hashed_race(seed_hex: str, addresses: list[str], hash_power: NDArray[np.float64],
                targets: list[int], *, max_rounds: int = 1_000_000) -> HashedResult:
    """A real POCA nonce race: node j tries nonces 0, 1, 2, ... at a rate of
    ``hash_power[j]`` hashes per time unit; the first hash at or below its own
    target wins. Then the other nodes verify the winner's hash.

    Node j's k-th hash happens at time (k + 1) / h_j; in each unit round every
    node makes the hashes that fall in that round, and the earliest success
    wins (ties: the lower hash).
    """
    h = np.asarray(hash_power, dtype=np.float64)
    done = np.zeros(h.size, np.int64)  # hashes made so far per node
    active = np.flatnonzero(h > 0)
    total = 0
    for r in range(1, max_rounds + 1):
        due = np.floor(r * h[active]).astype(np.int64)
        best: tuple[float, int, int, int] | None = None
        for j, upto in zip(active.tolist(), due.tolist(), strict=True):
            addr, tgt, hj = addresses[j], targets[j], h[j]
            for nonce in range(int(done[j]), upto):
                total += 1
                v = pow_hash(seed_hex, addr, nonce)
                if v <= tgt:
                    t = (nonce + 1) / hj
                    if best is None or (t, v) < (best[0], best[3]):
                        best = (t, j, nonce, v)
                    break
            done[j] = upto
        if best is not None:
            _, j, nonce, _ = best
            ok = pow_hash(seed_hex, addresses[j], nonce) <= targets[j]
            return HashedResult(j, nonce, targets[j], total, ok)
    raise RuntimeError("no node found a nonce; lower poca_difficulty_bits")


# ----------------------------------------------------------------------------- concentration
def gini(counts: NDArray) -> float:
    """Gini coefficient of block production over all nodes (0: equal, ->1: one node).

    Block counts are non-negative and mostly zero, so only the nodes that won
    anything are sorted: the zeros take the lowest ranks (it runs every hour).
    """
    x = np.asarray(counts, dtype=np.float64)
    won = np.sort(x[x > 0])
    n, k = x.size, won.size
    total = won.sum()
    if total <= 0:
        return 0.0
    ranks = np.arange(n - k + 1, n + 1)
    return float(2.0 * (ranks * won).sum() / (n * total) - (n + 1.0) / n)


def nakamoto(counts: NDArray) -> int:
    """Fewest nodes that together produced more than half of the blocks."""
    x = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    total = x.sum()
    if total <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(x), total / 2.0, side="right") + 1)


class BlockTally:
    """:func:`gini` and :func:`nakamoto` of the block counts, kept up to date block by block.

    Both sort the nodes' counts, and the model asks for them every hour. One more
    block for a node with c blocks keeps the sorted order (the node moves from the
    top of the c tier to the bottom of the c + 1 tier, at the same rank), so Gini's
    rank-weighted sum grows by that rank, the number of nodes with at most c blocks,
    and Nakamoto's count follows from the histogram of counts: O(n) compare and
    O(max count) per hour instead of a sort. Every sum is of integers, exact in
    float64, so the values are those of gini() and nakamoto() to the last bit.
    """

    def __init__(self) -> None:
        self._seen: NDArray[np.int64] | None = None

    def _rebuild(self, counts: NDArray[np.int64]) -> None:
        self._seen = counts.copy()
        self._hist = np.bincount(counts, minlength=2).astype(np.int64)
        ranked = np.sort(counts)
        self._rank_sum = int((np.arange(1, counts.size + 1, dtype=np.int64) * ranked).sum())
        self._total = int(counts.sum())

    def update(self, counts: NDArray) -> tuple[float, int]:
        """(Gini, Nakamoto coefficient) of ``counts``, the nodes' blocks won so far."""
        c = np.asarray(counts, dtype=np.int64)
        seen = self._seen
        if seen is None or seen.size != c.size:
            self._rebuild(c)
        else:
            changed = np.flatnonzero(c != seen)[:2]
            node = int(changed[0]) if changed.size else -1
            if changed.size == 1 and c[node] == seen[node] + 1:
                before = int(seen[node])
                self._rank_sum += int(self._hist[: before + 1].sum())
                self._hist[before] -= 1
                if before + 1 >= self._hist.size:
                    self._hist = np.concatenate([self._hist, np.zeros(self._hist.size,
                                                                       np.int64)])
                self._hist[before + 1] += 1
                self._total += 1
                seen[node] += 1
            elif changed.size:
                self._rebuild(c)
        return self._gini(c.size), self._nakamoto()

    def _gini(self, n: int) -> float:
        if self._total <= 0:
            return 0.0
        return float(2.0 * float(self._rank_sum) / (n * float(self._total)) - (n + 1.0) / n)

    def _nakamoto(self) -> int:
        total = self._total
        if total <= 0:
            return 0
        return _nakamoto_from_histogram(self._hist, total / 2.0)


def _nakamoto_from_histogram(hist: NDArray[np.int64], half: float) -> int:
    """Fewest nodes holding more than ``half`` of the blocks, from the histogram of counts:
    whole tiers from the largest count down while their blocks stay <= half, then as many
    nodes of the next tier as still fit, plus one (integer sums: exact)."""
    value = np.arange(hist.size - 1, 0, -1)
    end = np.cumsum(value * hist[value])
    t = int(np.searchsorted(end, half, side="right"))
    before = int(end[t - 1]) if t else 0
    return int(hist[value[:t]].sum()) + int((half - before) // value[t]) + 1


def win_credit_correlation(counts: NDArray, credit: NDArray) -> float:
    """Pearson correlation between blocks won and credit, over nodes (nan if undefined)."""
    a, b = np.asarray(counts, np.float64), np.asarray(credit, np.float64)
    if a.ndim != 1 or b.shape != a.shape:
        raise ValueError(f"counts {a.shape} and credit {b.shape}: one value per node each")
    if a.size < 2:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    spread = math.sqrt(float(a @ a) * float(b @ b))
    if not spread > 0.0:  # no spread in one of them (or NaN): undefined
        return float("nan")
    return float(np.clip(float(a @ b) / spread, -1.0, 1.0))


# ----------------------------------------------------------------------------- quorum
@dataclass(frozen=True)
class QuorumOutcome:
    committed: bool  # more than m nodes reported the true TradeResult
    conflict: bool  # a wrong result also gathered more than m identical reports
    honest_reports: int
    wrong_reports: int


def matching_quorum(n_nodes: int, faulty: NDArray[np.bool_], m: int, *,
                    collude: bool = True) -> QuorumOutcome:
    """[DIPI] section 4.2 step 5: a matching result is committed once more than m
    nodes report the identical TradeResult.

    Honest nodes report the true result. Faulty nodes report a wrong one:
    all the same wrong result when they collude (the worst case), otherwise
    each its own. The true result is committed if more than m honest reports
    agree and no wrong result also passes the quorum (a conflict is no commit:
    the period's trades do not execute).
    """
    wrong = int(np.count_nonzero(faulty))
    honest = n_nodes - wrong
    biggest_wrong = wrong if collude else min(wrong, 1)
    conflict = biggest_wrong > m
    return QuorumOutcome(honest > m and not conflict, conflict, honest, wrong)
