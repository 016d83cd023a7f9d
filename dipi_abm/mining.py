"""The miner nodes as one vectorised set: every trading party's own node, then the
stand-alone miners (docs/model.md section 7).

:class:`MinerSet` owns the nodes' columns (hash power, blocks won, the
stand-alone miners' balances, faulty flags) and produces the period's block
under the run's consensus rule, bound once: drawn from the rule's weights
(``sampled``) or, for a rule with the ``nonce_race`` trait and
``poca_mode = "hashed"``, found by a real SHA-256 nonce race that every other
node verifies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .hour import Block, ChainStats
from .ledger.coloredcoin import credit_as_recorded
from .rules.consensus import (
    CONSENSUS_RULES,
    BlockTally,
    Nodes,
    draw_from,
    hashed_race,
    normalise,
    poca_targets,
    win_credit_correlation,
)


@dataclass
class MinerSet:
    """Columnar state of the miner nodes and the block-production rule of the run."""

    hash_power: NDArray[np.float64]
    faulty: NDArray[np.bool_]
    standalone_balance: NDArray[np.float64]  # the stand-alone miners' own accounts
    addresses: list[str]
    params: Any
    blocks_won: NDArray[np.int64] = field(init=False)
    low_credit_blocks: int = field(init=False, default=0)
    minted_yuan: float = field(init=False, default=0.0)
    tally: BlockTally = field(init=False, default_factory=BlockTally)  # Gini, Nakamoto per block

    def __post_init__(self) -> None:
        p = self.params
        self.blocks_won = np.zeros(self.hash_power.size, np.int64)
        rule = CONSENSUS_RULES[p.consensus]
        self.weights = rule.bind(p)
        self.needs_distance = rule.has("needs_distance")
        self.needs_cleanliness = rule.has("needs_cleanliness")
        self.hashed = rule.has("nonce_race") and p.poca_mode == "hashed"

    @property
    def n(self) -> int:
        return int(self.hash_power.size)

    def produce(self, seed_hex: str, credit: NDArray, stake: NDArray, distance: NDArray | None,
                cleanliness: NDArray | None, rng: np.random.Generator) -> Block:
        """Consensus (docs/model.md section 7): find the period's block producer."""
        if self.hashed:
            p = self.params
            race = hashed_race(seed_hex, self.addresses, self.hash_power,
                               # from credit as LH1 records it: a verifier re-derives them
                               poca_targets(credit_as_recorded(credit), p.poca_difficulty_bits,
                                            p.poca_tau))
            if not race.verified:  # the other nodes reject it; cannot happen with honest hashing
                raise RuntimeError("hashed POCA: the winner's nonce failed verification")
            return Block(race.winner, race.nonce, race.target, race.hashes)
        nodes = Nodes(hash_power=self.hash_power, credit=credit, stake=stake,
                      distance=distance, cleanliness=cleanliness)
        return Block(draw_from(normalise(self.weights(nodes)), rng))

    def reward(self, block: Block, credit: NDArray, party_balance: NDArray) -> None:
        """The producer takes the block reward (a party's node pays into its account)."""
        p, n_parties = self.params, party_balance.size
        w = block.winner
        self.blocks_won[w] += 1
        if w < n_parties:
            party_balance[w] += p.block_reward_yuan
        else:
            self.standalone_balance[w - n_parties] += p.block_reward_yuan
        self.minted_yuan += p.block_reward_yuan
        self.low_credit_blocks += int(credit[w] < p.credit_threshold)

    def chain_stats(self, block: Block, credit: NDArray, node_ids: NDArray,
                    n_parties: int) -> ChainStats:
        """The block's KPIs, against the credit it was drawn on (docs/model.md section 9)."""
        won, w = self.blocks_won, block.winner
        blocks_gini, blocks_nakamoto = self.tally.update(won)
        return ChainStats(int(node_ids[w]), float(credit[w]), w >= n_parties, block.hashes,
                          blocks_gini, blocks_nakamoto,
                          self.low_credit_blocks / max(int(won.sum()), 1),
                          win_credit_correlation(won, credit))
