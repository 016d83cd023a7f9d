"""The matching rounds of :mod:`dipi_abm.rules.matching`, compiled by numba.

:func:`match_rounds` is :func:`~dipi_abm.rules.matching._match_in_rounds_numpy`
(the reference) in one compiled call: the same contracts, row for row, to the
last bit. It does every float operation the numpy engine does, in the same
order: cumulative sums are running sums from the left (``np.cumsum``), per-party
totals add segments in segment order onto 0.0 (``np.bincount``), and each
difference, sum and minimum is the one the numpy code takes. Only the
bookkeeping differs, where its result is exact whatever the method:

- sorts are stable radix and bucket sorts over keys that order as the floats
  do (``-0.0`` equal to ``0.0``, NaN last, ties in input order), so every
  permutation is ``np.lexsort``'s;
- the sorted unique segment points are a merge of three ascending runs (a full
  sort where a run is not ascending), the same values as ``np.unique``; of
  ``-0.0`` and ``0.0`` either may stand for the point, which changes no
  difference, midpoint or comparison taken from it;
- ``np.searchsorted(a, mid, side="right")`` is a walk along ``a`` when ``a``
  ascends (any binary search then finds the same place) and otherwise numpy's
  own binary search, step for step.

Imported only when the engine is first needed and numba is installed (see
:func:`dipi_abm.rules.matching._compiled`). Cached on disk: the first compile
takes a few seconds once per installation.
"""

from __future__ import annotations

import numba
import numpy as np

_njit = numba.njit(cache=True, nogil=True)

_SIGN = np.uint64(1) << np.uint64(63)
_SMALL_BUCKET = 32  # insertion sort up to this size, radix sort above


@_njit
def _float_keys(x):  # noqa: ANN001, ANN202
    """Unsigned keys ordered as numpy orders the floats: -0.0 equal to 0.0, NaN last."""
    n = x.size
    bits = x.view(np.uint64)
    keys = np.empty(n, np.uint64)
    for i in range(n):
        v = x[i]
        if v == 0.0:
            keys[i] = _SIGN
        elif v != v:
            keys[i] = ~np.uint64(0)
        else:
            b = bits[i]
            keys[i] = ~b if b & _SIGN else b | _SIGN
    return keys


@_njit
def _int_keys(x):  # noqa: ANN001, ANN202
    """Unsigned keys ordered as the int64 values."""
    return x.view(np.uint64) ^ _SIGN


@_njit
def _radix_sort_run(keys, out, s, e, base, n_bits):  # noqa: ANN001, ANN202
    """Stable LSD radix sort of ``out[s:e]`` (with ``keys`` alongside) by the low
    ``n_bits`` bits of ``keys - base``."""
    m = e - s
    tmp_o = np.empty(m, np.intp)
    tmp_k = np.empty(m, np.uint64)
    counts = np.empty(257, np.intp)
    shift = 0
    while shift < n_bits:
        sh = np.uint64(shift)
        counts[:] = 0
        for i in range(s, e):
            counts[np.intp(((keys[i] - base) >> sh) & np.uint64(255)) + 1] += 1
        for v in range(256):
            counts[v + 1] += counts[v]
        for i in range(s, e):
            d = np.intp(((keys[i] - base) >> sh) & np.uint64(255))
            p = counts[d]
            tmp_o[p] = out[i]
            tmp_k[p] = keys[i]
            counts[d] = p + 1
        out[s:e] = tmp_o
        keys[s:e] = tmp_k
        shift += 8


@_njit
def stable_argsort(keys):  # noqa: ANN001, ANN202
    """``np.argsort(keys, kind="stable")`` for uint64 keys: ties keep input order.

    A stable scatter into about ``n`` buckets by the high bits of ``key - min``,
    then each bucket sorted on its own (insertion sort when small, radix sort on
    the bits left otherwise): linear time for spread-out keys such as prices or
    submission times.
    """
    n = keys.size
    out = np.arange(n)
    if n < 2:
        return out
    lo = keys[0]
    hi = keys[0]
    for i in range(1, n):
        k = keys[i]
        if k < lo:
            lo = k
        if k > hi:
            hi = k
    if lo == hi:
        return out
    span = hi - lo
    n_bits = 1
    while (1 << n_bits) < n and n_bits < 24:
        n_bits += 1
    limit = np.uint64(1) << np.uint64(n_bits)
    shift = 0
    while (span >> np.uint64(shift)) >= limit:
        shift += 1
    sh = np.uint64(shift)
    n_buckets = np.intp(span >> sh) + 1
    start = np.zeros(n_buckets + 1, np.intp)
    for i in range(n):
        start[np.intp((keys[i] - lo) >> sh) + 1] += 1
    for b in range(n_buckets):
        start[b + 1] += start[b]
    skeys = np.empty(n, np.uint64)
    for i in range(n):
        b = np.intp((keys[i] - lo) >> sh)
        p = start[b]
        out[p] = i
        skeys[p] = keys[i]
        start[b] = p + 1
    # start[b] is now the end of bucket b
    s = 0
    for b in range(n_buckets):
        e = start[b]
        if e - s > _SMALL_BUCKET:
            _radix_sort_run(skeys, out, s, e, lo, shift)
        elif e - s > 1:
            for i in range(s + 1, e):
                k = skeys[i]
                o = out[i]
                j = i - 1
                while j >= s and skeys[j] > k:
                    skeys[j + 1] = skeys[j]
                    out[j + 1] = out[j]
                    j -= 1
                skeys[j + 1] = k
                out[j + 1] = o
        s = e
    return out


@_njit
def _by_queue(order, queue, n_q):  # noqa: ANN001, ANN202
    """``order`` re-sorted stably by ``queue[order]`` (ids below ``n_q``): a counting sort."""
    n = order.size
    start = np.zeros(n_q + 1, np.intp)
    for i in range(n):
        start[queue[order[i]] + 1] += 1
    for q in range(n_q):
        start[q + 1] += start[q]
    out = np.empty(n, np.intp)
    for i in range(n):
        q = queue[order[i]]
        out[start[q]] = order[i]
        start[q] += 1
    return out


@_njit
def _ascending(x, n):  # noqa: ANN001, ANN202
    for i in range(1, n):
        if not x[i - 1] <= x[i]:
            return False
    return True


@_njit
def searchsorted_right(a, n, keys, m, out):  # noqa: ANN001, ANN202
    """``np.searchsorted(a[:n], keys[:m], side="right")`` into ``out``.

    Along an ascending ``a`` a walk gives the count of entries <= each key,
    which every binary search finds too; otherwise numpy's own binary search is
    repeated step for step (it carries its bounds from one key to the next), so
    even an array out of order by a rounding gives numpy's answer.
    """
    if _ascending(a, n):
        p = 0
        for t in range(m):
            key = keys[t]
            while p < n and a[p] <= key:
                p += 1
            while p > 0 and not a[p - 1] <= key:
                p -= 1
            out[t] = p
        return
    lo = 0
    hi = n
    if m == 0:
        return
    last = keys[0]
    for t in range(m):
        key = keys[t]
        if not key < last:  # numpy: last <= key with NaN-aware order; no NaN here
            hi = n
        else:
            lo = 0
            hi = hi + 1 if hi < n else n
        last = key
        while lo < hi:
            mid = lo + ((hi - lo) >> 1)
            if not key < a[mid]:
                lo = mid + 1
            else:
                hi = mid
        out[t] = lo


@_njit
def _sorted_points(b_start, b_end, nf, s_end, alive, ns, out):  # noqa: ANN001, ANN202
    """Sorted distinct values of b_start[:nf], b_end[:nf] and s_end[alive] into ``out``;
    returns their number (``np.unique`` of the concatenation)."""
    n_alive = 0
    sa = np.empty(ns, np.float64)
    for p in range(ns):
        if alive[p]:
            sa[n_alive] = s_end[p]
            n_alive += 1
    if _ascending(b_start, nf) and _ascending(b_end, nf) and _ascending(sa, n_alive):
        i = 0
        j = 0
        k = 0
        n = 0
        inf = np.inf
        while i < nf or j < nf or k < n_alive:
            x = b_start[i] if i < nf else inf
            y = b_end[j] if j < nf else inf
            z = sa[k] if k < n_alive else inf
            if i < nf and x <= y and (k >= n_alive or x <= z):
                v = x
                i += 1
            elif j < nf and (k >= n_alive or y <= z):
                v = y
                j += 1
            else:
                v = z
                k += 1
            if n == 0 or out[n - 1] != v:
                out[n] = v
                n += 1
        return n
    allv = np.empty(2 * nf + n_alive, np.float64)
    allv[:nf] = b_start[:nf]
    allv[nf:2 * nf] = b_end[:nf]
    allv[2 * nf:] = sa[:n_alive]
    allv.sort()
    n = 0
    for t in range(allv.size):
        v = allv[t]
        if n == 0 or out[n - 1] != v:
            out[n] = v
            n += 1
    return n


@_njit
def _grow_f(a, n):  # noqa: ANN001, ANN202
    b = np.empty(n, a.dtype)
    b[:a.size] = a
    return b


@_njit
def match_rounds(s_queue, s_time, s_fkeys, s_volume, s_price, s_party, n_q,  # noqa: ANN001, ANN202, C901, PLR0912, PLR0913, PLR0915
                 b_time, b_volume, b_price, b_bus, b_party,
                 q_wheeling, q_allowed, cma, s_own, b_own, q_dist, price_ref, price_scale,
                 monotone, max_rounds, volume_eps, price_eps):
    """All rounds of ``_match_in_rounds_numpy`` in one call (see the module docstring).

    Sellers sort by (queue, ``s_fkeys`` rows last first, time); ``cma`` picks the
    round's choice: the cheapest delivered queue head (price-time) or the
    heaviest CMA pair (``s_own``, ``b_own``, ``q_dist``, ``price_ref``,
    ``price_scale`` are the weight's parts). Returns the contract columns
    (buyer party, seller party, volume, ask, bid, wheeling) and the rounds.
    """
    ns = s_volume.size
    n_buy = b_volume.size
    n_bus = q_wheeling.shape[0]
    # Sellers by queue, then the rule's order (np.lexsort: least significant key first).
    order = stable_argsort(_int_keys(s_time))
    for r in range(s_fkeys.shape[0]):
        key = np.empty(ns, np.float64)
        for i in range(ns):
            key[i] = s_fkeys[r, order[i]]
        order = order[stable_argsort(_float_keys(key))]
    order = _by_queue(order, s_queue, n_q)
    sq = np.empty(ns, np.intp)
    ask = np.empty(ns, np.float64)
    rem = np.empty(ns, np.float64)
    s_party_sorted = np.empty(ns, np.intp)
    for p in range(ns):
        o = order[p]
        sq[p] = s_queue[o]
        ask[p] = s_price[o]
        rem[p] = s_volume[o]
        s_party_sorted[p] = s_party[o]
    first = np.zeros(n_q, np.intp)
    last = np.zeros(n_q, np.intp)
    count = np.zeros(n_q, np.intp)
    for p in range(ns):
        count[sq[p]] += 1
    c = 0
    for q in range(n_q):
        first[q] = c
        c += count[q]
        last[q] = c - 1
    head = first.copy()

    by_time = stable_argsort(_int_keys(b_time))
    b_rem = b_volume.copy()
    open_ = np.empty(n_buy, np.bool_)
    for i in range(n_buy):
        open_[i] = b_rem[i] > volume_eps

    # Round buffers.
    buyers = np.empty(n_buy, np.intp)
    tq = np.empty(n_buy, np.intp)
    feasible = np.empty(n_buy, np.bool_)
    priority = np.empty(n_buy, np.float64)
    net_bid = np.empty(n_buy, np.float64)
    f_buyers = np.empty(n_buy, np.intp)
    f_tq = np.empty(n_buy, np.intp)
    f_net = np.empty(n_buy, np.float64)
    sb = np.empty(n_buy, np.intp)
    stq = np.empty(n_buy, np.intp)
    snb = np.empty(n_buy, np.float64)
    sw = np.empty(n_buy, np.float64)
    b_start = np.empty(n_buy, np.float64)
    b_end = np.empty(n_buy, np.float64)
    s_end = np.empty(ns, np.float64)
    alive = np.empty(ns, np.bool_)
    points = np.empty(2 * n_buy + ns, np.float64)
    mids = np.empty(2 * n_buy + ns, np.float64)
    segs = np.empty(2 * n_buy + ns, np.float64)
    jj = np.empty(2 * n_buy + ns, np.intp)
    kk = np.empty(2 * n_buy + ns, np.intp)
    seg_j = np.empty(2 * n_buy + ns, np.intp)
    seg_k = np.empty(2 * n_buy + ns, np.intp)
    seg_v = np.empty(2 * n_buy + ns, np.float64)
    sold = np.zeros(ns, np.float64)
    bought = np.zeros(n_buy, np.float64)
    alive_q = np.empty(n_q, np.intp)
    head_pos = np.empty(n_q, np.intp)
    head_ask = np.empty(n_q, np.float64)
    best_q = np.empty(n_bus, np.intp)
    best_cost = np.empty(n_bus, np.float64)
    own = np.empty((n_bus, n_q), np.float64)
    limit = np.empty(n_q, np.float64)

    cap = n_buy + ns + 16
    o_buyer = np.empty(cap, np.intp)
    o_seller = np.empty(cap, np.intp)
    o_volume = np.empty(cap, np.float64)
    o_ask = np.empty(cap, np.float64)
    o_bid = np.empty(cap, np.float64)
    o_wheeling = np.empty(cap, np.float64)
    n_out = 0
    rounds = 0
    while True:
        nb = 0
        for t in range(n_buy):
            i = by_time[t]
            if open_[i]:
                if b_rem[i] > volume_eps:
                    buyers[nb] = i
                    nb += 1
                else:
                    open_[i] = False
        any_alive = False
        for p in range(ns):
            if rem[p] > volume_eps:
                any_alive = True
                break
        if nb == 0 or not any_alive or (max_rounds > 0 and rounds == max_rounds):
            break
        rounds += 1

        # Each queue's next seller (the first with volume left; volume never comes back).
        m = 0
        for q in range(n_q):
            p = head[q]
            while p <= last[q] and not rem[p] > volume_eps:
                p += 1
            head[q] = p
            if p <= last[q]:
                alive_q[m] = q
                head_pos[m] = p
                m += 1

        # The rule's choice for each open buyer.
        if not cma:
            head_ask[:] = np.inf
            for a in range(m):
                head_ask[alive_q[a]] = ask[head_pos[a]]
            for bus in range(n_bus):
                bq = 0
                bc = head_ask[0] + q_wheeling[bus, 0] if q_allowed[bus, 0] else np.inf
                for q in range(1, n_q):
                    cq = head_ask[q] + q_wheeling[bus, q] if q_allowed[bus, q] else np.inf
                    if cq < bc:
                        bq = q
                        bc = cq
                best_q[bus] = bq
                best_cost[bus] = bc
            for a in range(nb):
                i = buyers[a]
                bus = b_bus[i]
                q = best_q[bus]
                tq[a] = q
                feasible[a] = b_price[i] >= best_cost[bus] - price_eps
                x = b_price[i] - q_wheeling[bus, q]
                net_bid[a] = x
                priority[a] = x
        else:
            for a in range(m):
                p = head_pos[a]
                limit[a] = ask[p] - price_eps
                head_ask[a] = ask[p]
                so = s_own[order[p]]
                for bus in range(n_bus):
                    own[bus, a] = so + q_dist[bus, alive_q[a]]
            for a in range(nb):
                i = buyers[a]
                bus = b_bus[i]
                price = b_price[i]
                top = 0
                top_w = -np.inf
                top_x = price - q_wheeling[bus, alive_q[0]]
                found = False
                for t in range(m):
                    q = alive_q[t]
                    x = price - q_wheeling[bus, q]
                    if x < limit[t] or not q_allowed[bus, q]:
                        continue
                    wj = own[bus, t] + price_scale / (price_ref + abs(x - head_ask[t]))
                    if not found or wj > top_w:
                        top = t
                        top_w = wj
                        top_x = x
                        found = True
                tq[a] = alive_q[top]
                feasible[a] = found
                priority[a] = top_w + b_own[i]
                net_bid[a] = top_x

        nf = 0
        for a in range(nb):
            if feasible[a]:
                f_buyers[nf] = buyers[a]
                f_tq[nf] = tq[a]
                f_net[nf] = net_bid[a]
                priority[nf] = -priority[a]
                nf += 1
            else:
                open_[buyers[a]] = False
        if nf == 0:
            break
        # Buyers by (queue, -priority), ties in submission order (np.lexsort).
        o = stable_argsort(_float_keys(priority[:nf]))
        if n_q > 1:
            o = _by_queue(o, f_tq, n_q)
        for a in range(nf):
            t = o[a]
            i = f_buyers[t]
            sb[a] = i
            stq[a] = f_tq[t]
            snb[a] = f_net[t]
            sw[a] = b_price[i] - f_net[t]

        # Lay every queue's remaining supply on one axis, each queue's buyers on its stretch.
        acc = rem[0]
        s_end[0] = acc
        for p in range(1, ns):
            acc = acc + rem[p]
            s_end[p] = acc
        for p in range(ns):
            alive[p] = rem[p] > volume_eps
        d_end = 0.0
        before = 0.0
        for a in range(nf):
            demand = b_rem[sb[a]]
            d_end = demand if a == 0 else d_end + demand
            q = stq[a]
            if a == 0 or q != stq[a - 1]:
                before = d_end - demand
            within_end = d_end - before
            f = first[q]
            q_lo = s_end[f] - rem[f]
            q_hi = s_end[last[q]]
            top = q_lo + within_end
            b_end[a] = top if top <= q_hi else q_hi
            bot = top - demand
            b_start[a] = bot if bot <= q_hi else q_hi

        n_pts = _sorted_points(b_start, b_end, nf, s_end, alive, ns, points)
        n_mid = max(n_pts - 1, 0)
        for t in range(n_mid):
            lo = points[t]
            hi = points[t + 1]
            mids[t] = 0.5 * (lo + hi)
            segs[t] = hi - lo
        searchsorted_right(b_end, nf, mids, n_mid, jj)
        searchsorted_right(s_end, ns, mids, n_mid, kk)
        n_seg = 0
        bad_q = -1
        for t in range(n_mid):
            j = jj[t]
            k = kk[t]
            seg = segs[t]
            if not (seg > volume_eps and j < nf and k < ns):
                continue
            if not (b_start[j] <= mids[t] and sq[k] == stq[j]):
                continue
            ok = snb[j] >= ask[k] - price_eps
            if monotone:
                # Bids fall and asks rise along a queue: it stops at its first infeasible pair.
                if not ok:
                    bad_q = stq[j]
                    continue
                if bad_q == stq[j]:
                    continue
            elif not ok:
                continue
            seg_j[n_seg] = j
            seg_k[n_seg] = k
            seg_v[n_seg] = seg
            n_seg += 1
        if n_seg == 0:
            # Only rounding slivers were left to trade: the targeted buyers are done.
            for a in range(nf):
                open_[sb[a]] = False
            continue

        if n_out + n_seg > cap:
            cap = 2 * (n_out + n_seg)
            o_buyer = _grow_f(o_buyer, cap)
            o_seller = _grow_f(o_seller, cap)
            o_volume = _grow_f(o_volume, cap)
            o_ask = _grow_f(o_ask, cap)
            o_bid = _grow_f(o_bid, cap)
            o_wheeling = _grow_f(o_wheeling, cap)
        for t in range(n_seg):
            j = seg_j[t]
            k = seg_k[t]
            i = sb[j]
            o_buyer[n_out] = b_party[i]
            o_seller[n_out] = s_party_sorted[k]
            o_volume[n_out] = seg_v[t]
            o_ask[n_out] = ask[k]
            o_bid[n_out] = b_price[i]
            o_wheeling[n_out] = sw[j]
            n_out += 1
        # What is left: each party's segments added in order onto 0.0 (np.bincount), then
        # subtracted and floored at zero.
        sold[:] = 0.0
        for t in range(n_seg):
            sold[seg_k[t]] += seg_v[t]
        for p in range(ns):
            v = rem[p] - sold[p]
            rem[p] = v if v >= 0.0 else 0.0
        # Buyers: only those with segments change (a buyer without keeps what it had; one
        # with nothing left is closed next round either way).
        for t in range(n_seg):
            bought[sb[seg_j[t]]] += seg_v[t]
        for t in range(n_seg):
            i = sb[seg_j[t]]
            if bought[i] != 0.0:  # segments are > 0: not yet subtracted
                v = b_rem[i] - bought[i]
                b_rem[i] = v if v >= 0.0 else 0.0
                bought[i] = 0.0
    return (o_buyer[:n_out], o_seller[:n_out], o_volume[:n_out], o_ask[:n_out], o_bid[:n_out],
            o_wheeling[:n_out], rounds)

