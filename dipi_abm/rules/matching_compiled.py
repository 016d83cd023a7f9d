"""The matching rounds of :mod:`dipi_abm.rules.matching`, compiled by numba.

:func:`match_rounds` is :func:`~dipi_abm.rules.matching._match_in_rounds_numpy`
(the reference) in one compiled call: the same contracts, row for row, to the
last bit. It does every float operation the numpy engine does, in the same
order: cumulative sums are running sums from the left (``np.cumsum``), per-party
totals add segments in segment order onto 0.0 (``np.bincount``), and each
difference, sum and minimum is the one the numpy code takes. Only the
bookkeeping differs, where its result is exact whatever the method:

- sorts are stable bucket sorts over keys that order as the floats do
  (``-0.0`` equal to ``0.0``, NaN last), ties broken by submission time and then
  row, so every permutation is ``np.lexsort``'s; a round whose buyers all keep
  last round's queue and priority (price-time with one queue) keeps last
  round's order, less those that left, which is the same permutation;
- the sorted distinct segment points are a merge of three ascending runs (mended
  by an insertion sort where a rounding at a queue boundary put a value out of
  order), the values of ``np.unique``; of ``-0.0`` and ``0.0`` either may stand
  for the point, which changes no difference, midpoint or comparison taken from
  it;
- ``np.searchsorted(a, mid, side="right")`` is a walk along ``a`` when ``a``
  ascends up to roundings (see :func:`_disorder` for why the walk then finds
  numpy's answer wherever it matters) and otherwise numpy's own binary search,
  step for step.

Volumes are taken as finite and prices as finite; the CMA weight's ``price_ref``
as positive (the parameter's range), so no weight is NaN. The arrays a call
needs are carved from a :func:`workspace` the caller keeps (about 45 rows of
twice the buyers plus the sellers: some 8 MB at 10,000 parties), so an hour
allocates next to nothing: fresh arrays of this size cost more in page faults
than the matching itself.

Kernels of :mod:`dipi_abm.jit` (compiled on first call, cached on disk: the
first compile takes ten to fifteen seconds); :func:`dipi_abm.rules.matching._compiled`
uses them where numba is installed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..jit import kernel

_SIGN = np.uint64(1) << np.uint64(63)
_SMALL_BUCKET = 32  # insertion sort up to this size, radix sort above

# Workspace rows (see workspace()).
_F_ROWS, _I_ROWS, _U_ROWS = 19, 15, 4


def workspace(n_buy: int, n_sell: int,
              old: tuple[NDArray, ...] | None = None) -> tuple[NDArray, ...]:
    """Scratch arrays for :func:`match_rounds` with ``n_buy`` buyers and ``n_sell``
    sellers, and room for its contracts: ``old`` when it is large enough, else new
    ones with room to spare."""
    need = 2 * n_buy + n_sell + 260
    if old is not None and old[0].shape[1] >= need:
        return old
    width = need + need // 4
    return (np.zeros((_F_ROWS, width)), np.zeros((_I_ROWS, width), np.intp),
            np.zeros((_U_ROWS, width), np.uint64), np.zeros((2, width), np.intp),
            np.zeros((4, width)))


@kernel
def _float_keys(x, n, keys):  # noqa: ANN001, ANN202
    """Unsigned keys ordered as numpy orders the floats: -0.0 equal to 0.0, NaN last."""
    bits = x.view(np.uint64)
    for i in range(n):
        v = x[i]
        if v == 0.0:
            keys[i] = _SIGN
        elif v != v:
            keys[i] = ~np.uint64(0)
        else:
            b = bits[i]
            keys[i] = ~b if b & _SIGN else b | _SIGN


@kernel
def _int_keys(x, keys):  # noqa: ANN001, ANN202
    """Unsigned keys ordered as the int64 values."""
    bits = x.view(np.uint64)
    for i in range(x.size):
        keys[i] = bits[i] ^ _SIGN


@kernel
def _radix_sort_run(keys, out, s, e, base, n_bits, tmp_o, tmp_k, counts):  # noqa: ANN001, ANN202
    """Stable LSD radix sort of ``out[s:e]`` (``keys`` alongside) by the low ``n_bits``
    bits of ``keys - base``."""
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
        for i in range(s, e):
            out[i] = tmp_o[i - s]
            keys[i] = tmp_k[i - s]
        shift += 8


@kernel
def stable_argsort(keys, n, out, scratch_i, scratch_u):  # noqa: ANN001, ANN202
    """``np.argsort(keys[:n], kind="stable")`` into ``out`` for uint64 keys; returns
    whether two keys are equal.

    A stable scatter into fewer than ``2n`` buckets by the high bits of
    ``key - min``, then each bucket sorted on its own (insertion sort, or radix
    sort on the bits left when buckets are large): linear time for spread-out
    keys such as prices or submission times. ``scratch_i`` holds ``3n + 260``
    intp, ``scratch_u`` ``2n`` uint64.
    """
    for i in range(n):
        out[i] = i
    if n < 2:
        return False
    lo = keys[0]
    hi = keys[0]
    for i in range(1, n):
        k = keys[i]
        if k < lo:
            lo = k
        if k > hi:
            hi = k
    if lo == hi:
        return True
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
    start = scratch_i[:n_buckets + 1]
    start[:] = 0
    for i in range(n):
        start[np.intp((keys[i] - lo) >> sh) + 1] += 1
    for b in range(n_buckets):
        start[b + 1] += start[b]
    skeys = scratch_u[:n]
    for i in range(n):
        b = np.intp((keys[i] - lo) >> sh)
        p = start[b]
        out[p] = i
        skeys[p] = keys[i]
        start[b] = p + 1
    # Within a bucket the keys are out of order only among themselves: one insertion
    # sort over the whole array mends every bucket (stable: only greater keys move).
    # Past a budget of moves some bucket is large: sort each large one by radix.
    budget = 8 * n
    ties = False
    for i in range(1, n):
        k = skeys[i]
        if skeys[i - 1] <= k:
            if skeys[i - 1] == k:
                ties = True
            continue
        o = out[i]
        j = i - 1
        while j >= 0 and skeys[j] > k:
            skeys[j + 1] = skeys[j]
            out[j + 1] = out[j]
            j -= 1
            budget -= 1
        skeys[j + 1] = k
        out[j + 1] = o
        if j >= 0 and skeys[j] == k:
            ties = True
        if budget < 0:
            break
    if budget >= 0:
        return ties
    tmp_o = scratch_i[n_buckets + 1:n_buckets + 1 + n]
    counts = scratch_i[n_buckets + 1 + n:n_buckets + n + 258]
    tmp_k = scratch_u[n:2 * n]
    s = 0  # start[b] is now the end of bucket b
    for b in range(n_buckets):
        e = start[b]
        if e - s > _SMALL_BUCKET:
            _radix_sort_run(skeys, out, s, e, lo, shift, tmp_o, tmp_k, counts)
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
    for i in range(1, n):
        if skeys[i - 1] == skeys[i]:
            return True
    return False


@kernel
def _sort_keys(f_key, n, keys, rows, tq, prev_tq, prev_key):  # noqa: ANN001, ANN202
    """The round's sort keys (as _float_keys) into ``keys``, and whether every buyer
    ``rows[:n]`` has the queue and key it had last (then kept as the new last; rows
    never seen may match by chance: the caller checks that all are found)."""
    bits = f_key.view(np.uint64)
    same = True
    for a in range(n):
        v = f_key[a]
        if v == 0.0:
            k = _SIGN
        elif v != v:
            k = ~np.uint64(0)
        else:
            b = bits[a]
            k = ~b if b & _SIGN else b | _SIGN
        keys[a] = k
        i = rows[a]
        if prev_tq[i] != tq[a] or prev_key[i] != k:
            same = False
            prev_tq[i] = tq[a]
            prev_key[i] = k
    return same


@kernel
def _ties_by_time(o, n, keys, rows, time):  # noqa: ANN001, ANN202
    """Within each run of equal ``keys[o]`` (in row order, a stable sort's), order by
    submission time, then row: np.lexsort's order with time as the lesser key."""
    s = 0
    while s < n:
        e = s + 1
        while e < n and keys[o[e]] == keys[o[s]]:
            e += 1
        if e - s > _SMALL_BUCKET:
            m = e - s
            tk = np.empty(m, np.uint64)
            for t in range(m):
                tk[t] = np.uint64(time[rows[o[s + t]]]) ^ _SIGN
            p = np.empty(m, np.intp)
            stable_argsort(tk, m, p, np.empty(3 * m + 260, np.intp), np.empty(2 * m, np.uint64))
            run = o[s:e].copy()
            for t in range(m):
                o[s + t] = run[p[t]]
        elif e - s > 1:
            for t in range(s + 1, e):
                v = o[t]
                tv = time[rows[v]]
                u = t - 1
                while u >= s and time[rows[o[u]]] > tv:
                    o[u + 1] = o[u]
                    u -= 1
                o[u + 1] = v
        s = e


@kernel
def _by_queue(order, n, queue, n_q, out):  # noqa: ANN001, ANN202
    """``order[:n]`` re-sorted stably by ``queue[order]`` (ids below ``n_q``) into
    ``out``: a counting sort."""
    start = np.zeros(n_q + 1, np.intp)
    for i in range(n):
        start[queue[order[i]] + 1] += 1
    for q in range(n_q):
        start[q + 1] += start[q]
    for i in range(n):
        q = queue[order[i]]
        out[start[q]] = order[i]
        start[q] += 1


@kernel
def _ascending(x, n):  # noqa: ANN001, ANN202
    for i in range(1, n):
        if not x[i - 1] <= x[i]:
            return False
    return True


@kernel
def _disorder(a, n):  # noqa: ANN001, ANN202
    """How far ``a[:n]`` is from ascending: the largest ``a[i] - a[j]`` over ``i < j``
    (0.0 when ascending).

    A binary search for a key finds what a walk finds unless the key lies between
    such a pair; a segment's midpoint lies there only if the segment is shorter than
    the gap. With gaps under half a volume epsilon (rounding at queue boundaries),
    the segments whose buyer and seller matter (longer than the epsilon) have the
    same buyer and seller by a walk as by numpy's search.
    """
    top = -np.inf
    gap = 0.0
    for i in range(n):
        v = a[i]
        if top - v > gap:
            gap = top - v
        if v > top:
            top = v
    return gap


@kernel
def _walk(a, n, key, p):  # noqa: ANN001, ANN202
    """The count of entries of an ascending ``a[:n]`` that are <= ``key``, from ``p`` on."""
    while p < n and a[p] <= key:
        p += 1
    while p > 0 and not a[p - 1] <= key:
        p -= 1
    return p


@kernel
def _bisect(a, n, key, last, lo, hi):  # noqa: ANN001, ANN202
    """One key of numpy's ``searchsorted(side="right")`` binary search, which keeps
    its bounds (``lo``, ``hi``) from the previous key ``last``, as numpy 2.4 and earlier
    do it (on an ascending ``a`` any version gives the same; out of order, numpy 2.5's
    reuse of the bounds differs). Returns (lo, hi)."""
    if not key < last:
        hi = n
    else:
        lo = 0
        hi = hi + 1 if hi < n else n
    while lo < hi:
        mid = lo + ((hi - lo) >> 1)
        if not key < a[mid]:
            lo = mid + 1
        else:
            hi = mid
    return lo, hi


@kernel
def searchsorted_right(a, keys):  # noqa: ANN001, ANN202
    """``np.searchsorted(a, keys, side="right")`` as the rounds find it (for the tests)."""
    n = a.size
    out = np.empty(keys.size, np.intp)
    if _ascending(a, n):
        p = 0
        for t in range(keys.size):
            p = _walk(a, n, keys[t], p)
            out[t] = p
        return out
    lo, hi = 0, n
    for t in range(keys.size):
        lo, hi = _bisect(a, n, keys[t], keys[t - 1] if t else keys[0], lo, hi)
        out[t] = lo
    return out


@kernel
def _sorted_points(b_start, b_end, nf, s_end, alive, ns, sa, out):  # noqa: ANN001, ANN202
    """Sorted distinct values of b_start[:nf], b_end[:nf] and s_end[alive] into ``out``
    (``np.unique`` of the concatenation); returns their number."""
    n_alive = 0
    for p in range(ns):
        if alive[p]:
            sa[n_alive] = s_end[p]
            n_alive += 1
    n = 0
    i = 0
    j = 0
    k = 0
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
    if _ascending(out, n):
        return n
    # A run was out of order (by a rounding, at a queue boundary): sort what the merge
    # gave (insertion sort: a few steps for a few strays; a full sort past a budget).
    budget = 8 * n
    for t in range(1, n):
        v = out[t]
        u = t - 1
        while u >= 0 and out[u] > v:
            out[u + 1] = out[u]
            u -= 1
            budget -= 1
        out[u + 1] = v
        if budget < 0:
            out[:n].sort()
            break
    m = 0
    for t in range(n):
        v = out[t]
        if m == 0 or out[m - 1] != v:
            out[m] = v
            m += 1
    return m


@kernel
def _segments(points, n_pts, b_start, b_end, nf, s_end, ns, sq, stq, snb, ask, sb, sw,  # noqa: ANN001, ANN202, PLR0913
              b_party, s_party, bid, monotone, volume_eps, price_eps, out_i, out_f,
              n_out, sold, bought):
    """The round's contracts: for each segment between consecutive points, the buyer
    (``searchsorted(b_end, mid, "right")``) and the seller (in ``s_end``) over it,
    kept when both are in the same queue and the pair is feasible. Appended to the
    ``out_*`` columns from ``n_out`` on (room for ``n_pts`` more; ``b_party`` and
    ``bid`` are the sorted buyers'), each volume added
    onto its seller's ``sold`` and its buyer's ``bought`` in contract order (as
    np.bincount adds); returns the new count."""
    b_walk = _disorder(b_end, nf) <= 0.5 * volume_eps
    s_walk = _disorder(s_end, ns) <= 0.5 * volume_eps
    jp = kp = 0
    jlo, jhi, klo, khi = 0, nf, 0, ns
    last_mid = 0.5 * (points[0] + points[1]) if n_pts > 1 else 0.0
    bad_q = -1
    for t in range(n_pts - 1):
        lo = points[t]
        hi = points[t + 1]
        mid = 0.5 * (lo + hi)
        seg = hi - lo
        if b_walk:
            jp = _walk(b_end, nf, mid, jp)
            j = jp
        else:
            jlo, jhi = _bisect(b_end, nf, mid, last_mid, jlo, jhi)
            j = jlo
        if s_walk:
            kp = _walk(s_end, ns, mid, kp)
            k = kp
        else:
            klo, khi = _bisect(s_end, ns, mid, last_mid, klo, khi)
            k = klo
        last_mid = mid
        if not (seg > volume_eps and j < nf and k < ns):
            continue
        if not (b_start[j] <= mid and sq[k] == stq[j]):
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
        out_i[0, n_out] = b_party[j]
        out_i[1, n_out] = s_party[k]
        out_f[0, n_out] = seg
        out_f[1, n_out] = ask[k]
        out_f[2, n_out] = bid[j]
        out_f[3, n_out] = sw[j]
        sold[k] += seg
        bought[sb[j]] += seg
        n_out += 1
    return n_out


@kernel
def _choose_cheapest(buyers, nb, b_price, b_bus, q_wheeling, q_allowed, n_q, alive_q, head_pos,  # noqa: ANN001, ANN202, PLR0913
                     m, ask, price_eps, head_ask, best_q, best_cost,
                     f_buyers, f_tq, f_net, f_key, open_):
    """Price-time choice (matching._choose_cheapest): each bus's cheapest delivered queue
    head. Feasible buyers go to ``f_*`` (``f_key`` the negated priority); the others
    are closed. Returns their number."""
    head_ask[:n_q] = np.inf
    for a in range(m):
        head_ask[alive_q[a]] = ask[head_pos[a]]
    for bus in range(q_wheeling.shape[0]):
        bq = 0
        bc = head_ask[0] + q_wheeling[bus, 0] if q_allowed[bus, 0] else np.inf
        for q in range(1, n_q):
            cq = head_ask[q] + q_wheeling[bus, q] if q_allowed[bus, q] else np.inf
            if cq < bc:
                bq = q
                bc = cq
        best_q[bus] = bq
        best_cost[bus] = bc
    nf = 0
    for a in range(nb):
        i = buyers[a]
        bus = b_bus[i]
        if b_price[i] >= best_cost[bus] - price_eps:
            q = best_q[bus]
            x = b_price[i] - q_wheeling[bus, q]
            f_buyers[nf] = i
            f_tq[nf] = q
            f_net[nf] = x
            f_key[nf] = -x
            nf += 1
        else:
            open_[i] = False
    return nf


@kernel
def _choose_heaviest(buyers, nb, b_price, b_bus, b_own, q_wheeling, q_allowed, q_dist,  # noqa: ANN001, ANN202, PLR0913
                     alive_q, head_pos, m, ask, s_own, order, price_ref, price_scale,
                     price_eps, own, head_ask, limit, f_buyers, f_tq, f_net, f_key, open_):
    """CMA choice (matching._choose_heaviest and _heaviest_queue_loop, the same arithmetic):
    each buyer's heaviest feasible pair with a queue head, the first of equal weights.

    Each bus's reachable queue heads are laid out once a round (wheeling, own part,
    limit, ask side by side), so the weights of a buyer's pairs are one branch-free
    loop, then a first-maximum pass.
    """
    n_bus = q_wheeling.shape[0]
    n_reach = np.zeros(n_bus, np.intp)
    reach = np.empty((n_bus, m), np.intp)  # position among the alive queues
    wh = np.empty((n_bus, m), np.float64)
    own_b = np.empty((n_bus, m), np.float64)
    lim_b = np.empty((n_bus, m), np.float64)
    ask_b = np.empty((n_bus, m), np.float64)
    for t in range(m):
        p = head_pos[t]
        limit[t] = ask[p] - price_eps
        head_ask[t] = ask[p]
    for bus in range(n_bus):
        r = 0
        for t in range(m):
            q = alive_q[t]
            if q_allowed[bus, q]:
                reach[bus, r] = t
                wh[bus, r] = q_wheeling[bus, q]
                own_b[bus, r] = s_own[order[head_pos[t]]] + q_dist[bus, q]
                lim_b[bus, r] = limit[t]
                ask_b[bus, r] = head_ask[t]
                r += 1
        n_reach[bus] = r
    weight = np.empty(m, np.float64)
    nf = 0
    for a in range(nb):
        i = buyers[a]
        bus = b_bus[i]
        price = b_price[i]
        r = n_reach[bus]
        w_row = wh[bus]
        o_row = own_b[bus]
        l_row = lim_b[bus]
        a_row = ask_b[bus]
        for t in range(r):
            x = price - w_row[t]
            # np.divide: IEEE division without the zero check of "/" (none is zero:
            # price_ref > 0), which would keep this loop from vectorising
            wj = o_row[t] + np.divide(price_scale, price_ref + abs(x - a_row[t]))
            weight[t] = wj if x >= l_row[t] else -np.inf
        top = -1
        top_w = -np.inf
        for t in range(r):
            if weight[t] > top_w:
                top = t
                top_w = weight[t]
        if top >= 0:
            f_buyers[nf] = i
            f_tq[nf] = alive_q[reach[bus, top]]
            f_net[nf] = price - w_row[top]
            f_key[nf] = -(top_w + b_own[i])
            nf += 1
        else:
            open_[i] = False
    return nf


@kernel
def match_rounds(s_queue, s_time, s_fkeys, s_volume, s_price, s_party, n_q,  # noqa: ANN001, ANN202, C901, PLR0912, PLR0913, PLR0915
                 b_time, b_volume, b_price, b_bus, b_party,
                 q_wheeling, q_allowed, cma, s_own, b_own, q_dist, price_ref, price_scale,
                 monotone, max_rounds, volume_eps, price_eps, ws_f, ws_i, ws_u, out_i,
                 out_f):
    """All rounds of ``_match_in_rounds_numpy`` in one call (see the module docstring).

    Sellers sort by (queue, ``s_fkeys`` rows last first, time); ``cma`` picks the
    round's choice: the cheapest delivered queue head (price-time) or the
    heaviest CMA pair (``s_own``, ``b_own``, ``q_dist``, ``price_ref``,
    ``price_scale`` are the weight's parts). ``ws_*`` is a :func:`workspace`.
    The contracts go to ``out_i`` (buyer and seller party) and ``out_f`` (volume,
    ask, bid, wheeling), grown here when short. Returns (out_i, out_f, contracts,
    rounds).
    """
    ns = s_volume.size
    n_buy = b_volume.size
    n_bus = q_wheeling.shape[0]
    f_net, snb, sw, b_start, b_end, bought = ws_f[0], ws_f[1], ws_f[2], ws_f[3], ws_f[4], ws_f[5]
    s_end, rem, ask, sold, sa, key, points = (ws_f[6], ws_f[7], ws_f[8], ws_f[9], ws_f[10],
                                              ws_f[11], ws_f[12])
    f_key, b_rem, row_net, c_start, c_end = ws_f[13], ws_f[14], ws_f[15], ws_f[16], ws_f[17]
    s_bid = ws_f[18]  # bid and party of each sorted buyer
    buyers, f_buyers, f_tq, sb, stq, prev_tq, o = (ws_i[0], ws_i[1], ws_i[2], ws_i[3], ws_i[4],
                                                   ws_i[5], ws_i[6])
    order, sq, s_party_sorted, o2, sb_party = ws_i[7], ws_i[8], ws_i[9], ws_i[10], ws_i[11]
    width = ws_i.shape[1]
    sort_i = ws_i.reshape(ws_i.size)[12 * width:]  # the last rows: the sorts' scratch
    keys = ws_u[0]
    sort_u = ws_u.reshape(ws_u.size)[2 * width:]

    # Sellers by queue, then the rule's order (np.lexsort: least significant key first).
    _int_keys(s_time, keys)
    stable_argsort(keys, ns, order, sort_i, sort_u)
    for r in range(s_fkeys.shape[0]):
        for i in range(ns):
            key[i] = s_fkeys[r, order[i]]
        _float_keys(key, ns, keys)
        stable_argsort(keys, ns, o, sort_i, sort_u)
        for i in range(ns):
            o2[i] = order[o[i]]
        order[:ns] = o2[:ns]
    _by_queue(order, ns, s_queue, n_q, o2)
    order[:ns] = o2[:ns]
    first = np.zeros(n_q, np.intp)
    last = np.zeros(n_q, np.intp)
    for p in range(ns):
        s = order[p]
        sq[p] = s_queue[s]
        ask[p] = s_price[s]
        rem[p] = s_volume[s]
        s_party_sorted[p] = s_party[s]
        last[sq[p]] += 1
    c = 0
    for q in range(n_q):
        first[q] = c
        c += last[q]
        last[q] = c - 1
    head = first.copy()

    open_ = np.empty(n_buy, np.bool_)
    in_round = np.zeros(n_buy, np.bool_)
    prev_key = ws_u[1]  # the last full sort's key of each buyer row (with prev_tq)
    n_sorted = 0  # buyers in the last round's order (sb)
    for i in range(n_buy):
        b_rem[i] = b_volume[i]
        open_[i] = b_rem[i] > volume_eps
        bought[i] = 0.0
    sold[:ns] = 0.0

    alive = np.empty(ns, np.bool_)
    alive_q = np.empty(n_q, np.intp)
    head_pos = np.empty(n_q, np.intp)
    head_ask = np.empty(n_q, np.float64)
    best_q = np.empty(n_bus, np.intp)
    best_cost = np.empty(n_bus, np.float64)
    own = np.empty((n_bus, n_q), np.float64)
    limit = np.empty(n_q, np.float64)

    n_out = 0
    rounds = 0
    while True:
        nb = 0
        for i in range(n_buy):
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

        # The rule's choice for each open buyer; those with no feasible queue are done.
        if cma:
            nf = _choose_heaviest(buyers, nb, b_price, b_bus, b_own, q_wheeling, q_allowed,
                                  q_dist, alive_q, head_pos, m, ask, s_own, order, price_ref,
                                  price_scale, price_eps, own, head_ask, limit, f_buyers,
                                  f_tq, f_net, f_key, open_)
        else:
            nf = _choose_cheapest(buyers, nb, b_price, b_bus, q_wheeling, q_allowed, n_q,
                                  alive_q, head_pos, m, ask, price_eps, head_ask, best_q,
                                  best_cost, f_buyers, f_tq, f_net, f_key, open_)
        if nf == 0:
            break
        # Buyers by (queue, -priority), ties in submission order (np.lexsort).
        same = _sort_keys(f_key, nf, keys, f_buyers, f_tq, prev_tq, prev_key) and n_sorted > 0
        n = 0
        if same:
            # Every buyer has last round's queue and priority: the order is last round's,
            # less those that left (a round's buyers were all in the last one).
            for a in range(nf):
                i = f_buyers[a]
                in_round[i] = True
                row_net[i] = f_net[a]
            for a in range(n_sorted):
                i = sb[a]
                if in_round[i]:
                    in_round[i] = False
                    sb[n] = i
                    stq[n] = prev_tq[i]
                    snb[n] = row_net[i]
                    sw[n] = b_price[i] - row_net[i]
                    s_bid[n] = b_price[i]
                    sb_party[n] = b_party[i]
                    n += 1
            for a in range(nf):
                in_round[f_buyers[a]] = False
        if n != nf:
            if stable_argsort(keys, nf, o, sort_i, sort_u):
                _ties_by_time(o, nf, keys, f_buyers, b_time)
            if n_q > 1:
                _by_queue(o, nf, f_tq, n_q, o2)
                o[:nf] = o2[:nf]
            for a in range(nf):
                t = o[a]
                i = f_buyers[t]
                sb[a] = i
                stq[a] = f_tq[t]
                snb[a] = f_net[t]
                sw[a] = b_price[i] - f_net[t]
                s_bid[a] = b_price[i]
                sb_party[a] = b_party[i]
        n_sorted = nf

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
        nc = 0
        capped_q = -1
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
            # Buyers beyond the queue's supply all lie at q_hi: one of them is the point.
            if b_start[a] == q_hi:
                if capped_q == q:
                    continue
                capped_q = q
            c_start[nc] = b_start[a]
            c_end[nc] = b_end[a]
            nc += 1

        # Segments between consecutive points: the buyer and the seller over each.
        n_pts = _sorted_points(c_start, c_end, nc, s_end, alive, ns, sa, points)
        if n_out + n_pts > out_i.shape[1]:
            cap = 2 * (n_out + n_pts)
            grown_i = np.empty((2, cap), np.intp)
            grown_f = np.empty((4, cap), np.float64)
            grown_i[:, :n_out] = out_i[:, :n_out]
            grown_f[:, :n_out] = out_f[:, :n_out]
            out_i = grown_i
            out_f = grown_f
        n_round = n_out
        n_out = _segments(points, n_pts, b_start, b_end, nf, s_end, ns, sq, stq, snb, ask, sb,
                          sw, sb_party, s_party_sorted, s_bid, monotone, volume_eps,
                          price_eps, out_i, out_f, n_out, sold, bought)
        if n_out == n_round:
            # Only rounding slivers were left to trade: the targeted buyers are done.
            for a in range(nf):
                open_[sb[a]] = False
            continue

        # What is left: each party's segments added in order onto 0.0 (np.bincount, in
        # _segments), then subtracted and floored at zero.
        for p in range(ns):
            v = rem[p] - sold[p]
            rem[p] = v if v >= 0.0 else 0.0
            sold[p] = 0.0
        # Buyers: only those with segments change (a buyer without keeps what it had; one
        # with nothing left is closed next round either way).
        for a in range(nf):
            i = sb[a]
            if bought[i] != 0.0:  # segments are > 0
                v = b_rem[i] - bought[i]
                b_rem[i] = v if v >= 0.0 else 0.0
                bought[i] = 0.0
    return out_i, out_f, n_out, rounds
