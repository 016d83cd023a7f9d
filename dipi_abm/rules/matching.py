"""Order matching rules (docs/model.md section 4, step 3) and contract price rules.

A rule takes one hour's :class:`OrderBook` and the :class:`MarketNetwork`
(wheeling and distance limits between buses) and returns :class:`Contracts`.
Rules are registered by name in :data:`MATCHING_RULES`; adding one is one entry.

Everything is vectorised over orders: the loop in :func:`_match_in_rounds`
runs over *matching rounds*, not over parties, and a round is a handful of
sorts and searches over all open orders. The one compiled piece is CMA's
choice of queue (:func:`.matching_compiled.heaviest_queue`, numba): a pass per buyer over the
queue heads instead of a buyer x queue array per round.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from .matching_compiled import PRICE_EPS, heaviest_queue
from .registry import Param, Rule

VOLUME_EPS = 1e-7  # kWh: volumes below this are treated as nothing left


@dataclass(frozen=True)
class OrderBook:
    """One hour's orders: the [DIPI] <TradeIntention, ID, t, q, l, p> as columns.

    ``*_party`` are party rows, ``*_bus`` bus indices, ``*_volume`` kWh,
    ``*_price`` yuan/kWh, ``*_time`` submission order (lower is earlier),
    ``*_credit`` the party's public credit, ``seller_cleanliness`` Q of the
    seller's energy.
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
    seller_credit: NDArray[np.float64] | None = None
    buyer_credit: NDArray[np.float64] | None = None
    seller_cleanliness: NDArray[np.float64] | None = None


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
class CMAWeights:
    """[DIPI] Table 1 parameter weights of the credit matching algorithm.

    A feasible pair's weight is the weighted sum of four coefficients in (0, 1]:
    credit (C_b + C_s) / 200; distance D0 / (D0 + D) (the paper's w_D / D, kept
    finite at D = 0); price consensus p0 / (p0 + |P_N - P_S|) (the paper's
    w_I / |P_N - P_S|; P_N the buyer's bid net of wheeling, P_S the ask); green Q_s.
    """

    credit: float = 0.4
    distance: float = 0.2
    price: float = 0.2
    green: float = 0.2
    distance_ref_ohm: float = 1.0
    price_ref: float = 0.01
    rounds: int = 6  # weighted rounds before the rest clears by price-time priority


@dataclass(frozen=True)
class MarketNetwork:
    """Bus-to-bus trading terms, computed once per grid.

    Sellers on buses whose terms are the same towards every buyer bus are
    interchangeable: they share one *queue*. For price-time matching the terms
    are wheeling and reachability (a flat tariff with no distance limit makes
    the whole market one queue and matching a single merge of the two sorted
    books); for CMA electrical distance is a term too.
    """

    wheeling: NDArray[np.float64]  # (B, B) yuan/kWh, buyer bus x seller bus
    allowed: NDArray[np.bool_]  # (B, B) distance within the trading limit
    queue_of_bus: NDArray[np.intp]  # (B,) queue id of each seller bus
    queue_wheeling: NDArray[np.float64]  # (B, Q) buyer bus x queue
    queue_allowed: NDArray[np.bool_]  # (B, Q)
    queue_distance: NDArray[np.float64] | None = None  # (B, Q) ohm, when distance is a term
    cma: CMAWeights = CMAWeights()
    by_price: MarketNetwork | None = None  # the same grid grouped for price-time matching

    @classmethod
    def build(cls, wheeling: NDArray[np.float64], allowed: NDArray[np.bool_],
              distance: NDArray[np.float64] | None = None,
              cma: CMAWeights | None = None) -> MarketNetwork:
        w = np.asarray(wheeling, dtype=np.float64)
        a = np.asarray(allowed, dtype=bool)
        parts = [w.T, a.T.astype(np.float64)]
        if distance is not None:
            parts.append(np.asarray(distance, dtype=np.float64).T)
        columns = np.concatenate(parts, axis=1)
        _, first, inverse = np.unique(columns, axis=0, return_index=True, return_inverse=True)
        # Number queues in order of first appearance so queue ids are stable.
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        queue_of_bus = rank[np.asarray(inverse).reshape(-1)]
        reps = first[order]
        if distance is None:
            return cls(w, a, queue_of_bus.astype(np.intp), w[:, reps].copy(), a[:, reps].copy(),
                       None, cma or CMAWeights())
        qd = np.asarray(distance, dtype=np.float64)[:, reps].copy()
        return cls(w, a, queue_of_bus.astype(np.intp), w[:, reps].copy(), a[:, reps].copy(), qd,
                   cma or CMAWeights(), cls.build(w, a))

    @property
    def n_queues(self) -> int:
        return int(self.queue_wheeling.shape[1])


@dataclass
class _Queues:
    """Sellers sorted into queues (queue, then the rule's seller order) with what is left."""

    queue: NDArray[np.intp]
    order: NDArray[np.intp]  # book row of each sorted seller
    ask: NDArray[np.float64]
    rem: NDArray[np.float64]
    first: NDArray[np.intp]  # first sorted position of each queue
    last: NDArray[np.intp]  # last sorted position of each queue

    def heads(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(queues with a seller left, sorted position of each such queue's next seller)."""
        alive = np.flatnonzero(self.rem > VOLUME_EPS)
        queue = self.queue[alive]  # sorted: sellers are sorted by queue first
        first = np.empty(queue.size, bool)
        first[:1] = True
        np.not_equal(queue[1:], queue[:-1], out=first[1:])
        return queue[first], alive[first]


# A rule's choice for each open buyer: (target queue, feasible?, priority within the queue,
# net price offered to the target queue's sellers).
Choice = tuple[NDArray[np.intp], NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64]]


@dataclass(frozen=True)
class _CMAParts:
    """The parts of :func:`cma_weight` that do not depend on the pair's prices."""

    seller: NDArray[np.float64]  # per seller row: credit and cleanliness
    buyer: NDArray[np.float64]  # per buyer row: credit
    distance: NDArray[np.float64]  # (B, Q): the distance term, buyer bus x queue
    price_ref: float
    price_scale: float  # w.price * w.price_ref


def _match_in_rounds(book: OrderBook, net: MarketNetwork, monotone: bool,
                           max_rounds: int = 0, cma: _CMAParts | None = None) -> Contracts:
    """Match in vectorised rounds over seller queues (the engine of every rule).

    Sellers are sorted by their queue, then by the rule's order (CMA: their
    own part of the weight, best first; then ask, then submission time). Each
    round every open buyer turns to one queue (price-time: the cheapest
    delivered queue head, :func:`_choose_cheapest`; CMA: the heaviest pair,
    :func:`_choose_heaviest`); in each queue its buyers, by priority, are
    served from the queue's sellers in order, by laying the
    queues' remaining supply on one axis and each queue's buyers' demand on
    its stretch (a merge of cumulative volumes). Pairs that are not feasible
    (bid < ask + wheeling) are skipped; with ``monotone`` the queue also stops
    there, as nothing after it can be feasible. A round trades at least once
    in every queue it targets, so the loop ends; ``max_rounds`` > 0 stops it
    after that many rounds.
    """
    seller_queue = net.queue_of_bus[book.seller_bus]
    n_q = net.n_queues
    seller_keys: tuple[NDArray, ...] = (book.seller_time, book.seller_price)
    if cma is not None:
        seller_keys = (*seller_keys, -cma.seller)

    def choose(buyers: NDArray[np.intp], qs: _Queues) -> Choice:
        if cma is None:
            return _choose_cheapest(book, net, buyers, qs)
        return _choose_heaviest(book, net, cma, buyers, qs)

    n_buy = book.buyer_volume.size
    if n_buy == 0 or book.seller_volume.size == 0:
        return Contracts.empty()
    order = _lexsort((*seller_keys, seller_queue))
    sq = seller_queue[order]
    qs = _Queues(sq, order, book.seller_price[order],
                 book.seller_volume[order].astype(np.float64).copy(),
                 np.searchsorted(sq, np.arange(n_q), side="left"),
                 np.searchsorted(sq, np.arange(n_q), side="right") - 1)
    s_party = book.seller_party[order]
    b_rem = book.buyer_volume.astype(np.float64).copy()
    open_ = b_rem > VOLUME_EPS
    # Buyers are visited in submission order, so sorting a round's buyers by (queue,
    # priority) with sorts that keep that order among equals is the full lexsort
    # (queue, -priority, time) without sorting by time every round.
    by_time = _lexsort((book.buyer_time,))
    parts: list[tuple[NDArray, ...]] = []
    rounds = 0
    while True:
        open_ &= b_rem > VOLUME_EPS
        buyers = by_time[open_[by_time]]
        if buyers.size == 0 or not np.any(qs.rem > VOLUME_EPS) or rounds == max_rounds > 0:
            break
        rounds += 1
        tq, feasible, priority, net_bid = choose(buyers, qs)
        open_[buyers[~feasible]] = False
        buyers, tq, priority, net_bid = (x[feasible] for x in (buyers, tq, priority, net_bid))
        if buyers.size == 0:
            break
        o = _lexsort((-priority, tq))
        buyers, tq, net_bid = buyers[o], tq[o], net_bid[o]
        w = book.buyer_price[buyers] - net_bid

        # Lay every queue's remaining supply on one axis, and each queue's buyers on its stretch.
        s_end = np.cumsum(qs.rem)
        s_start = s_end - qs.rem
        q_lo = s_start[qs.first[tq]]
        q_hi = s_end[qs.last[tq]]
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

        alive = qs.rem > VOLUME_EPS
        points = _sorted_unique(np.concatenate([b_start, b_end, s_end[alive]]))
        lo, hi = points[:-1], points[1:]
        mid = 0.5 * (lo + hi)
        seg = hi - lo
        j = np.searchsorted(b_end, mid, side="right")
        k = np.searchsorted(s_end, mid, side="right")
        ok = (seg > VOLUME_EPS) & (j < b_end.size) & (k < s_end.size)
        j, k, seg, mid = j[ok], k[ok], seg[ok], mid[ok]
        ok = (b_start[j] <= mid) & (sq[k] == tq[j])
        j, k, seg = j[ok], k[ok], seg[ok]
        feasible_pair = net_bid[j] >= qs.ask[k] - PRICE_EPS
        if monotone:
            # Bids fall and asks rise along a queue: stop each queue at its first infeasible pair.
            bad_before = np.maximum.accumulate(np.where(feasible_pair, -1, np.arange(j.size)))
            first_bad_group = np.where(bad_before >= 0, tq[j[np.maximum(bad_before, 0)]], -1)
            feasible_pair &= first_bad_group != tq[j]
        j, k, seg = j[feasible_pair], k[feasible_pair], seg[feasible_pair]
        if seg.size == 0:
            # Only rounding slivers were left to trade: the targeted buyers are done.
            open_[buyers] = False
            continue
        b_rows = buyers[j]
        parts.append((book.buyer_party[b_rows], s_party[k], seg, qs.ask[k],
                      book.buyer_price[b_rows], w[j]))
        qs.rem -= np.bincount(k, weights=seg, minlength=qs.rem.size)
        b_rem -= np.bincount(b_rows, weights=seg, minlength=n_buy)
        np.maximum(qs.rem, 0.0, out=qs.rem)
        np.maximum(b_rem, 0.0, out=b_rem)
    if not parts:
        return Contracts.empty()
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return Contracts(cols[0].astype(np.intp), cols[1].astype(np.intp), *cols[2:],
                     rounds=rounds)


def _lexsort(keys: tuple[NDArray, ...]) -> NDArray[np.intp]:
    """The permutation ``np.lexsort(keys)`` gives (last key most significant, ties in
    input order), found key by key with the fastest sort that keeps it exact.

    Sorting by each key in turn with a stable sort is what lexsort does. A key
    without ties has one order, so an unstable sort (several times faster: it
    uses SIMD) gives it, checked by a single pass; distinct integers in a dense
    range (submission times) are placed by value without sorting; with ties the
    key falls back to a stable sort, a radix sort for small non-negative
    integers (queue ids).
    """
    order: NDArray[np.intp] | None = None
    for key in keys:
        k = key if order is None else key[order]
        p = _stable_argsort(k)
        order = p if order is None else order[p]
    if order is None:
        raise ValueError("no sort keys")
    return order


def _sorted_unique(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``np.unique(x)`` for a concatenation of a few ascending runs (no NaN): a stable
    sort merges the runs in linear time."""
    x.sort(kind="stable")
    keep = np.empty(x.size, bool)
    keep[:1] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def _stable_argsort(key: NDArray) -> NDArray[np.intp]:
    if key.size > 1 and key.dtype.kind in "iu":
        lo, hi = int(key.min()), int(key.max())
        if lo == hi:  # one value (one queue): the order is the input's
            return np.arange(key.size)
        if key.size <= hi - lo + 1 <= 4 * key.size:  # maybe distinct (submission times)
            # Distinct integers have one order: place each at its value, read them off.
            slot = np.full(hi - lo + 1, -1, np.intp)
            slot[key - lo] = np.arange(key.size)
            order = slot[slot >= 0]
            if order.size == key.size:
                return order
        if lo >= 0 and hi < 2**15 and hi - lo < key.size:  # many ties: radix sort
            return np.argsort(key.astype(np.int16), kind="stable")
    p = np.argsort(key)
    s = key[p]
    if np.all(s[1:] > s[:-1]):  # strictly increasing: no ties (and no NaN)
        return p
    return np.argsort(key, kind="stable")


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
    return _match_in_rounds(book, net, monotone=True)


def _choose_cheapest(book: OrderBook, net: MarketNetwork, buyers: NDArray[np.intp],
                     qs: _Queues) -> Choice:
    """Price-time choice: the queue whose next seller is the cheapest delivered."""
    queues, head = qs.heads()
    head_ask = np.full(net.n_queues, np.inf)
    head_ask[queues] = qs.ask[head]
    cost = np.where(net.queue_allowed, head_ask[None, :] + net.queue_wheeling, np.inf)
    best_q = np.argmin(cost, axis=1)  # per buyer bus
    bus = book.buyer_bus[buyers]
    tq = best_q[bus]
    rows = np.arange(cost.shape[0])
    feasible = book.buyer_price[buyers] >= cost[rows, best_q][bus] - PRICE_EPS
    net_bid = book.buyer_price[buyers] - net.queue_wheeling[bus, tq]
    return tq, feasible, net_bid, net_bid


def _choose_heaviest(book: OrderBook, net: MarketNetwork, cma: _CMAParts,
                     buyers: NDArray[np.intp], qs: _Queues) -> Choice:
    """CMA choice: the queue whose next seller makes the heaviest feasible pair."""
    queues, head = qs.heads()
    everywhere = bool(net.queue_allowed.all())
    allowed = None if everywhere else np.ascontiguousarray(net.queue_allowed[:, queues])
    best, feasible, weight, net_bid = heaviest_queue(
        book.buyer_price[buyers], book.buyer_bus[buyers],
        np.ascontiguousarray(net.queue_wheeling[:, queues]), allowed, qs.ask[head],
        cma.seller[qs.order[head]][None, :] + cma.distance[:, queues],
        cma.price_ref, cma.price_scale)
    return queues[best], feasible, weight + cma.buyer[buyers], net_bid


def cma_weight(w: CMAWeights, buyer_credit: NDArray, seller_credit: NDArray,
               distance: NDArray, net_bid: NDArray, ask: NDArray,
               cleanliness: NDArray) -> NDArray[np.float64]:
    """The [DIPI]/[DER-CBC] pair weight of the credit matching algorithm (see CMAWeights)."""
    return (w.credit * (buyer_credit + seller_credit) / 200.0
            + w.distance * w.distance_ref_ohm / (w.distance_ref_ohm + distance)
            + w.price * w.price_ref / (w.price_ref + np.abs(net_bid - ask))
            + w.green * cleanliness)


def match_cma(book: OrderBook, net: MarketNetwork, fallback: bool = True) -> Contracts:
    """Credit matching algorithm ([DIPI] section 4.2 step 4 with [DER-CBC]'s coefficients).

    Every feasible buyer-seller pair has the weight of :func:`cma_weight`, and
    pairs are taken in descending weight. Without enumerating pairs: sellers
    wait in one queue per bus (distance is between buses), best first by their
    own part of the weight (credit and cleanliness; then ask, then time). Each
    round every open buyer computes the exact pair weight with the next seller
    of every queue it may reach and turns to the heaviest feasible one; in each
    queue the buyers are served in descending weight from the queue's sellers
    in order, skipping pairs that are not feasible. After ``CMAWeights.rounds``
    rounds, or when no buyer has a feasible queue head left, the remaining
    orders clear by price-time priority, so no feasible pair is left
    unmatched (``fallback=False``: no price-time clearing, see
    :func:`match_cma_strict`). A round costs the number of orders times the number
    of bus queues, so the hour costs O(rounds x orders x buses + orders log orders).
    """
    if net.queue_distance is None:
        raise ValueError("cma matching needs a MarketNetwork built with distances")
    w = net.cma
    s_credit = _or_full(book.seller_credit, book.seller_volume.size, 100.0)
    b_credit = _or_full(book.buyer_credit, book.buyer_volume.size, 100.0)
    s_q = _or_full(book.seller_cleanliness, book.seller_volume.size, 0.0)
    cma = _CMAParts(
        seller=w.credit * s_credit / 200.0 + w.green * s_q,
        buyer=w.credit * b_credit / 200.0,
        distance=w.distance * w.distance_ref_ohm / (w.distance_ref_ohm + net.queue_distance),
        price_ref=w.price_ref, price_scale=w.price * w.price_ref)
    weighted = _match_in_rounds(book, net, monotone=False, max_rounds=w.rounds, cma=cma)
    if not fallback:
        return weighted
    rest = _remaining(book, weighted)
    leftover = match_price_time(rest, net.by_price or net)
    return _concat(weighted, leftover)


def match_cma_strict(book: OrderBook, net: MarketNetwork,
                     strict_credit: float = 90.0) -> Contracts:
    """Strict credit matching: priority that price-time clearing cannot erase (docs/model.md 6b).

    In :func:`match_cma` everything still feasible after ``CMAWeights.rounds``
    weighted rounds clears by price-time priority, so a low-credit party ends up
    matched much as a high-credit one. Here the orders of parties whose credit is
    at least ``strict_credit`` (scenario key ``cma_strict_credit``) clear first,
    among themselves, by CMA weight until no feasible pair is left; only then do the
    low-credit parties get what is left, again by weight. There is no price-time round.
    """
    w = replace(net.cma, rounds=0)  # 0: weighted rounds until nothing feasible is left
    unlimited = replace(net, cma=w)
    s_ok = _or_full(book.seller_credit, book.seller_volume.size, 100.0) >= strict_credit
    b_ok = _or_full(book.buyer_credit, book.buyer_volume.size, 100.0) >= strict_credit
    first_tier = replace(book, seller_volume=np.where(s_ok, book.seller_volume, 0.0),
                         buyer_volume=np.where(b_ok, book.buyer_volume, 0.0))
    trusted = match_cma(first_tier, unlimited, fallback=False)
    rest = match_cma(_remaining(book, trusted), unlimited, fallback=False)
    return _concat(trusted, rest)


def _remaining(book: OrderBook, done: Contracts) -> OrderBook:
    """The order book less what ``done`` already matched (party rows are unique per side)."""
    n = int(max(book.seller_party.max(initial=-1), book.buyer_party.max(initial=-1))) + 1
    sold = np.bincount(done.seller, done.volume, n)
    bought = np.bincount(done.buyer, done.volume, n)
    return replace(book,
                   seller_volume=np.maximum(book.seller_volume - sold[book.seller_party], 0.0),
                   buyer_volume=np.maximum(book.buyer_volume - bought[book.buyer_party], 0.0))


def _concat(a: Contracts, b: Contracts) -> Contracts:
    if b.size == 0:
        return a
    cols = [np.concatenate([getattr(a, f), getattr(b, f)])
            for f in ("buyer", "seller", "volume", "ask", "bid", "wheeling")]
    return Contracts(*cols, rounds=a.rounds + b.rounds)


def _or_full(a: NDArray | None, n: int, value: float) -> NDArray[np.float64]:
    return np.full(n, value) if a is None else np.asarray(a, dtype=np.float64)


def match_centralized(book: OrderBook, net: MarketNetwork) -> Contracts:
    """The traditional mode the papers compare against: no direct trade at all.

    The grid company buys every offer at the feed-in price and sells every
    demand at retail; the model settles that with the grid.
    """
    return Contracts.empty()


CMA_W_CREDIT = Param("cma_w_credit", 0.4, float, "-", "CMA weight of the credit coefficient "
    "(C_b + C_s)/200.", "market", low=0.0, high=100.0)
CMA_W_DISTANCE = Param("cma_w_distance", 0.2, float, "-", "CMA weight of the distance coefficient "
    "D0/(D0 + D) (the paper's w_D/D).", "market", low=0.0, high=100.0)
CMA_W_PRICE = Param("cma_w_price", 0.2, float, "-", "CMA weight of the price-consensus coefficient "
    "p0/(p0 + |P_N - P_S|) (the paper's w_I/|P_N - P_S|).", "market", low=0.0, high=100.0)
CMA_W_GREEN = Param("cma_w_green", 0.2, float, "-", "CMA weight of the green coefficient Q of the "
    "seller's energy.", "market", low=0.0, high=100.0)
CMA_DISTANCE_REF_OHM = Param("cma_distance_ref_ohm", 1.0, float, "ohm",
                             "CMA: D0 of the distance coefficient.", "market", low=0.0, high=1e6,
                             low_open=True)
CMA_PRICE_REF_YUAN = Param(
    "cma_price_ref_yuan", 0.01, float, "yuan/kWh",
    "CMA: p0 of the price-consensus "
    "coefficient.", "market", low=0.0, high=1000.0, low_open=True)
CMA_ROUNDS = Param(
    "cma_rounds", 6, int, "-",
    "CMA: weighted matching rounds per hour; what is still "
    "feasible afterwards clears by price-time priority.", "market", low=1, high=1000)
CMA_STRICT_CREDIT = Param(
    "cma_strict_credit", 90.0, float, "-",
    "cma_strict: parties with at least this credit "
    "clear first, among themselves, by CMA weight; the others get only what is left "
    "(no price-time round).", "market", low=0.0, high=100.0)
_CMA = (CMA_W_CREDIT, CMA_W_DISTANCE, CMA_W_PRICE, CMA_W_GREEN, CMA_DISTANCE_REF_OHM,
        CMA_PRICE_REF_YUAN, CMA_ROUNDS)  # the CMA weights (CMAWeights), read by both rules


#: Matching rules: ``rule(book, network) -> Contracts``. ``needs_distance``: the
#: network keeps per-bus queues with electrical distances (the rule weighs
#: distance). ``grid_only``: no party trades directly; breaches are counted
#: against what it offered the grid company, and credit does not change.
MATCHING_RULES: dict[str, Rule] = {
    "price_time": Rule(match_price_time),
    "cma": Rule(match_cma, traits=frozenset({"needs_distance"}), params=_CMA),
    "cma_strict": Rule(match_cma_strict, keys={"strict_credit": "cma_strict_credit"},
                       traits=frozenset({"needs_distance"}), params=(*_CMA, CMA_STRICT_CREDIT)),
    "centralized": Rule(match_centralized, traits=frozenset({"grid_only"})),
}


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


PRICE_RULES: dict[str, Rule] = {"midpoint": Rule(price_midpoint), "ask": Rule(price_ask),
                                "bid": Rule(price_bid)}
