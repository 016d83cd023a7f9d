"""Order matching rules (MODEL.md section 4, step 3) and contract price rules.

A rule takes one hour's :class:`OrderBook` and the :class:`MarketNetwork`
(wheeling and distance limits between buses) and returns :class:`Contracts`.
Rules are registered by name in :data:`MATCHING_RULES`; adding one is one entry.

Everything is vectorised over orders: the loop in :func:`match_price_time`
runs over *matching rounds*, not over parties, and a round is a handful of
sorts and searches over all open orders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

VOLUME_EPS = 1e-7  # kWh: volumes below this are treated as nothing left
PRICE_EPS = 1e-12


@dataclass(frozen=True)
class OrderBook:
    """One hour's orders: the [DIPI] <TradeIntention, ID, t, q, l, p> as columns.

    ``*_party`` are party rows, ``*_bus`` bus indices, ``*_volume`` kWh,
    ``*_price`` yuan/kWh, ``*_time`` submission order (lower is earlier).
    """

    seller_party: NDArray[np.intp]
    seller_bus: NDArray[np.intp]
    seller_volume: NDArray[np.float64]
    seller_price: NDArray[np.float64]
    seller_time: NDArray[np.int64]
    buyer_party: NDArray[np.intp]
    buyer_bus: NDArray[np.intp]
    buyer_volume: NDArray[np.float64]
    buyer_price: NDArray[np.float64]
    buyer_time: NDArray[np.int64]


@dataclass(frozen=True)
class Contracts:
    """Matched trades as columns (one row per contract)."""

    buyer: NDArray[np.intp]  # party rows
    seller: NDArray[np.intp]
    volume: NDArray[np.float64]  # agreed q, kWh
    ask: NDArray[np.float64]
    bid: NDArray[np.float64]
    wheeling: NDArray[np.float64]  # yuan/kWh for this pair's distance
    rounds: int = 0  # matching rounds the rule needed (diagnostic)

    @property
    def size(self) -> int:
        return int(self.volume.size)

    @classmethod
    def empty(cls) -> Contracts:
        i = np.zeros(0, np.intp)
        f = np.zeros(0)
        return cls(i, i, f, f, f, f)


@dataclass(frozen=True)
class MarketNetwork:
    """Bus-to-bus trading terms, computed once per grid.

    Sellers on buses whose wheeling and reachability are the same towards every
    buyer bus are interchangeable for price priority: they share one *queue*.
    With a flat tariff and no distance limit the whole market is one queue and
    price-time matching is a single merge of the two sorted books.
    """

    wheeling: NDArray[np.float64]  # (B, B) yuan/kWh, buyer bus x seller bus
    allowed: NDArray[np.bool_]  # (B, B) distance within the trading limit
    queue_of_bus: NDArray[np.intp]  # (B,) queue id of each seller bus
    queue_wheeling: NDArray[np.float64]  # (B, Q) buyer bus x queue
    queue_allowed: NDArray[np.bool_]  # (B, Q)

    @classmethod
    def build(cls, wheeling: NDArray[np.float64], allowed: NDArray[np.bool_]) -> MarketNetwork:
        w = np.asarray(wheeling, dtype=np.float64)
        a = np.asarray(allowed, dtype=bool)
        columns = np.concatenate([w.T, a.T.astype(np.float64)], axis=1)
        uniq, first, inverse = np.unique(columns, axis=0, return_index=True, return_inverse=True)
        # Number queues in order of first appearance so queue ids are stable.
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        queue_of_bus = rank[np.asarray(inverse).reshape(-1)]
        reps = first[order]
        return cls(w, a, queue_of_bus.astype(np.intp), w[:, reps].copy(), a[:, reps].copy())

    @property
    def n_queues(self) -> int:
        return int(self.queue_wheeling.shape[1])


def match_price_time(book: OrderBook, net: MarketNetwork) -> Contracts:
    """Continuous double auction with price then time priority ([DIPI] step 3).

    Sellers wait in price-ordered queues (ask, then submission time). Buyers
    take priority by the price they offer the seller, i.e. their bid net of the
    pair's wheeling fee, then by time. A pair is feasible only if
    ``bid >= ask + wheeling`` and the buses are within the trading distance.

    Each round, every open buyer turns to the queue whose next seller is the
    cheapest delivered (ask + wheeling) among those it may reach; in each queue
    the buyers are served in priority order from the cheapest sellers, and the
    queue stops at the first buyer-seller pair that is not feasible (bids fall
    and asks rise along the merge, so nothing after it is feasible either).
    Buyers left unfilled try again next round; a buyer with no feasible queue
    is done. Within one queue this is exactly the sequential price-time
    greedy; with one queue (flat wheeling, no distance limit) the whole hour is.
    """
    n_buy = book.buyer_volume.size
    if n_buy == 0 or book.seller_volume.size == 0:
        return Contracts.empty()
    s_queue = net.queue_of_bus[book.seller_bus]
    order = np.lexsort((book.seller_time, book.seller_price, s_queue))
    sq = s_queue[order]
    s_ask = book.seller_price[order]
    s_party = book.seller_party[order]
    s_rem = book.seller_volume[order].astype(np.float64).copy()
    n_q = net.n_queues
    q_first = np.searchsorted(sq, np.arange(n_q), side="left")
    q_last = np.searchsorted(sq, np.arange(n_q), side="right") - 1
    b_rem = book.buyer_volume.astype(np.float64).copy()
    b_bus = book.buyer_bus
    b_bid = book.buyer_price
    open_ = b_rem > VOLUME_EPS
    rows = np.arange(net.queue_wheeling.shape[0])
    parts: list[tuple[NDArray, ...]] = []
    rounds = 0
    while True:
        rounds += 1
        alive = np.flatnonzero(s_rem > VOLUME_EPS)
        open_ &= b_rem > VOLUME_EPS
        buyers = np.flatnonzero(open_)
        if alive.size == 0 or buyers.size == 0:
            break
        queues, first = np.unique(sq[alive], return_index=True)
        head_ask = np.full(n_q, np.inf)
        head_ask[queues] = s_ask[alive[first]]
        cost = np.where(net.queue_allowed, head_ask[None, :] + net.queue_wheeling, np.inf)
        best_q = np.argmin(cost, axis=1)
        best_cost = cost[rows, best_q]
        feasible = b_bid[buyers] >= best_cost[b_bus[buyers]] - PRICE_EPS
        open_[buyers[~feasible]] = False
        buyers = buyers[feasible]
        if buyers.size == 0:
            break
        tq = best_q[b_bus[buyers]]
        w = net.queue_wheeling[b_bus[buyers], tq]
        net_bid = b_bid[buyers] - w
        o = np.lexsort((book.buyer_time[buyers], -net_bid, tq))
        buyers, tq, w, net_bid = buyers[o], tq[o], w[o], net_bid[o]

        # Lay every queue's remaining supply on one axis, and each queue's buyers on its stretch.
        s_end = np.cumsum(s_rem)
        s_start = s_end - s_rem
        q_lo = s_start[q_first[tq]]
        q_hi = s_end[q_last[tq]]
        demand = b_rem[buyers]
        d_end = np.cumsum(demand)
        new_group = np.empty(tq.size, bool)
        new_group[0] = True
        np.not_equal(tq[1:], tq[:-1], out=new_group[1:])
        group = np.cumsum(new_group) - 1
        before = (d_end - demand)[new_group]
        within_end = d_end - before[group]
        b_end = np.minimum(q_lo + within_end, q_hi)
        b_start = np.minimum(q_lo + within_end - demand, q_hi)

        points = np.unique(np.concatenate([b_start, b_end, s_end[alive]]))
        lo, hi = points[:-1], points[1:]
        mid = 0.5 * (lo + hi)
        seg = hi - lo
        j = np.searchsorted(b_end, mid, side="right")
        k = np.searchsorted(s_end, mid, side="right")
        ok = (seg > VOLUME_EPS) & (j < b_end.size) & (k < s_end.size)
        j, k, seg = j[ok], k[ok], seg[ok]
        ok = (b_start[j] <= mid[ok]) & (sq[k] == tq[j]) & (net_bid[j] >= s_ask[k] - PRICE_EPS)
        j, k, seg = j[ok], k[ok], seg[ok]
        if seg.size == 0:
            # Only rounding slivers were left to trade: the targeted buyers are done.
            open_[buyers] = False
            continue
        b_rows = buyers[j]
        parts.append((book.buyer_party[b_rows], s_party[k], seg, s_ask[k], b_bid[b_rows], w[j]))
        s_rem -= np.bincount(k, weights=seg, minlength=s_rem.size)
        b_rem -= np.bincount(b_rows, weights=seg, minlength=n_buy)
        np.maximum(s_rem, 0.0, out=s_rem)
        np.maximum(b_rem, 0.0, out=b_rem)
    if not parts:
        return Contracts.empty()
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return Contracts(cols[0].astype(np.intp), cols[1].astype(np.intp), *cols[2:],
                     rounds=rounds)


def match_centralized(book: OrderBook, net: MarketNetwork) -> Contracts:
    """The traditional mode the papers compare against: no direct trade at all.

    The grid company buys every offer at the feed-in price and sells every
    demand at retail; the model settles that with the grid.
    """
    return Contracts.empty()


MatchingRule = Callable[[OrderBook, MarketNetwork], Contracts]
MATCHING_RULES: dict[str, MatchingRule] = {
    "price_time": match_price_time,
    "centralized": match_centralized,
}

#: Rules in which no party trades directly: breaches are counted against what it
#: offered the grid company, and credit does not change.
GRID_ONLY_RULES = frozenset({"centralized"})


def price_midpoint(ask: NDArray, bid: NDArray, wheeling: NDArray) -> NDArray[np.float64]:
    """Split the surplus: midpoint of the ask and the bid net of wheeling.

    The buyer pays price + wheeling <= bid and the seller gets price >= ask.
    """
    return 0.5 * (ask + bid - wheeling)


def price_ask(ask: NDArray, bid: NDArray, wheeling: NDArray) -> NDArray[np.float64]:
    """Pay-as-ask: the seller's price."""
    return np.asarray(ask, dtype=np.float64).copy()


def price_bid(ask: NDArray, bid: NDArray, wheeling: NDArray) -> NDArray[np.float64]:
    """Pay-as-bid: the buyer's bid net of wheeling."""
    return np.asarray(bid, dtype=np.float64) - wheeling


PRICE_RULES: dict[str, Callable[[NDArray, NDArray, NDArray], NDArray]] = {
    "midpoint": price_midpoint,
    "ask": price_ask,
    "bid": price_bid,
}
