"""The hour's market: clearing (docs/model.md section 4.3) and the smart contract (4.4, 5).

:class:`Market` is built once per run with its chosen matching and trade-price
rules bound; :meth:`Market.clear` takes the hour's :class:`~dipi_abm.hour.Orders`
and returns what stands after matching, the quorum on the matching result and
DU1's executability check; :meth:`Market.settle` settles every contract
(section 5), then what lies outside contracts with the grid company: PPSC
(unmatched need bought at retail) and OGSC (surplus taken at feed-in, cleaner
sources first). The market owns the grid-only mode (a matching rule with the
``grid_only`` trait): nobody else is told of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from .hour import Cleared, Delivery, HourSettlement, Orders, Schedule
from .parties import per_party
from .physics.flows import LineModel
from .rules.consensus import matching_quorum
from .rules.consequences import Consequences, Hour
from .rules.matching import Contracts, MarketNetwork, OrderBook
from .rules.settlement import attribute_pro_rata, settle
from .rules.tariffs import grid_intake


@dataclass
class Market:
    """Matching, quorum and executability for one run, rules bound once."""

    match: Callable[[OrderBook, MarketNetwork], Contracts]
    price: Callable[[NDArray, NDArray, NDArray], NDArray[np.float64]]
    network: MarketNetwork
    lines: LineModel | None  # None: no finite line limit anywhere, the check never binds
    bus: NDArray[np.intp]  # party rows -> bus
    faulty: NDArray[np.bool_]  # per miner node
    quorum_m: int
    collude: bool
    grid_only: bool  # the matching rule clears through the grid company only
    ogsc_priority: NDArray[np.float64]  # per party: OGSC takes higher first
    intake_limit_kw: float  # most surplus the grid company takes in an hour

    def commitments(self, orders: Orders, contracts: Contracts) -> NDArray[np.float64]:
        """Each party's agreed volume: its contracts as seller plus as buyer. In grid-only
        mode everything offered is "committed" to the grid company: breaches are still
        measured against it, but settle at F and R with no contract."""
        if self.grid_only:
            return orders.offered_kwh.copy()
        n = orders.offered_kwh.size
        return per_party(contracts.seller, contracts.volume, n) + per_party(
            contracts.buyer, contracts.volume, n)

    def clear(self, orders: Orders) -> Cleared:
        """Match the book, keep the result only if a quorum reports it ([DIPI] 4.2 step 5),
        curtail trades whose line flows would exceed a limit (DU1), price the contracts."""
        contracts = self.match(orders.book, self.network)
        quorum = matching_quorum(self.faulty.size, self.faulty, self.quorum_m,
                                 collude=self.collude)
        if not quorum.committed and contracts.size:
            # No agreed TradeResult: no contract executes; parties settle with the grid.
            contracts = Contracts.empty()
        contracts, curtailed = self._executable(contracts)
        return Cleared(contracts, self.price(contracts.ask, contracts.bid, contracts.wheeling),
                       quorum, curtailed)

    def settle(self, schedule: Schedule, cleared: Cleared, delivery: Delivery) -> HourSettlement:
        """Settle the hour (docs/model.md sections 4.4-5): contracts by the [DER-CBC] rule
        with actual volumes attributed pro rata, then PPSC and OGSC with the grid company.
        Money is conserved: the parties' transfers and the grid's income sum to zero."""
        c, d = cleared.contracts, delivery
        r, f = schedule.retail, schedule.feed_in
        n = d.committed_kwh.size
        g = attribute_pro_rata(d.deliverable_kw, d.committed_kwh, c.seller, c.volume)
        b = attribute_pro_rata(d.need_kw, d.committed_kwh, c.buyer, c.volume)
        st = settle(cleared.price, c.volume, c.wheeling, b, g, r, f)
        if self.grid_only:
            extra_need, extra_surplus = d.need_kw, d.deliverable_kw
        else:
            # Need and surplus beyond what counted against contracts.
            extra_need = d.need_kw - np.where(d.is_seller, 0.0, d.counted_kwh)
            extra_surplus = d.deliverable_kw - np.where(d.is_seller, d.counted_kwh, 0.0)
        taken = grid_intake(extra_surplus, self.ogsc_priority, self.intake_limit_kw)
        transfer = per_party(c.seller, st.seller_income, n) - per_party(c.buyer, st.buyer_pays, n)
        transfer += taken * f - extra_need * r
        grid_in = float(st.grid_income.sum() + extra_need.sum() * r - taken.sum() * f)
        return HourSettlement(st, transfer, grid_in, extra_need, extra_surplus, taken)

    def _executable(self, c: Contracts) -> tuple[Contracts, float]:
        if self.lines is None or c.size == 0:
            return c, 0.0
        ok = self.lines.curtail(self.bus[c.seller], self.bus[c.buyer], c.volume)
        curtailed = float((c.volume - ok).sum())
        if curtailed > 0:
            keep = ok > 1e-9
            c = Contracts(c.buyer[keep], c.seller[keep], ok[keep], c.ask[keep], c.bid[keep],
                          c.wheeling[keep], rounds=c.rounds)
        return c, curtailed


def apply_consequences(consequences: Consequences, settlement: HourSettlement,
                       schedule: Schedule, cleared: Cleared, credit: NDArray[np.float64],
                       tech: NDArray[np.int8], tolerance: float) -> HourSettlement:
    """Consequence phase (docs/model.md section 6b), right after settlement: the bound
    breach_policy's payments, from each contract's agreed and attributed volumes and the
    credit matching saw, added to the parties' transfers and the grid company's income
    (so balances, learning, KPIs and the JY1 records all see them). Every payment
    leaves one account and enters another: money stays conserved."""
    c, st = cleared.contracts, settlement.contracts
    flows = consequences.transfers(Hour(
        buyer=c.buyer, seller=c.seller, volume=c.volume, price=cleared.price,
        wheeling=c.wheeling, consumed=st.direct + st.shortfall,
        generated=st.direct + st.surplus, credit=credit, tech=tech,
        retail=schedule.retail, feed_in=schedule.feed_in, breach_tolerance=tolerance))
    n = settlement.party_transfer.size
    return replace(settlement, party_transfer=settlement.party_transfer + flows.party_net(n),
                   grid_income=settlement.grid_income + flows.grid_net(), consequences=flows)
