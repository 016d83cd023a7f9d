"""The compiled piece of the matching engine (:mod:`dipi_abm.rules.matching`).

CMA's choice of queue, each round, for every open buyer: a pass over the queue
heads it may reach. In numpy this is a buyer x queue array per round; compiled,
it makes the ``cma`` year at 10,000 parties about twice as fast
(docs/performance.md). Kept in a module of its own so that editing the matching
rules does not invalidate its cache.
"""

from __future__ import annotations

import numpy as np

from ..jit import kernel

PRICE_EPS = 1e-12  # yuan/kWh: a pair is feasible if bid - wheeling >= ask - PRICE_EPS


@kernel("the matching engine")
def heaviest_queue(price, bus, wheeling, allowed, ask, own, price_ref,  # noqa: ANN001, ANN202
                    price_scale):
    """Each buyer's heaviest feasible queue head (the CMA round's choice), compiled: one
    pass per buyer, so the round's buyer x queue arrays are never built.

    ``wheeling``, ``allowed`` and ``own`` (the seller's part plus the distance term) are
    per (buyer bus, queue). The weight is
    :func:`~dipi_abm.rules.matching.cma_weight`'s. Returns (queue position,
    feasible, weight, bid net of wheeling), the first of equal weights winning."""
    n, m = price.size, ask.size
    best = np.zeros(n, np.intp)
    feasible = np.zeros(n, np.bool_)
    weight = np.full(n, -np.inf)
    net_bid = np.zeros(n)
    limit = ask - PRICE_EPS
    for i in range(n):
        b = bus[i]
        top, top_w, top_x, found = 0, -np.inf, price[i] - wheeling[b, 0], False
        for j in range(m):
            x = price[i] - wheeling[b, j]
            if x < limit[j] or (allowed is not None and not allowed[b, j]):
                continue
            wj = own[b, j] + price_scale / (price_ref + abs(x - ask[j]))
            if not found or wj > top_w:
                top, top_w, top_x, found = j, wj, x, True
        best[i], feasible[i], weight[i], net_bid[i] = top, found, top_w, top_x
    return best, feasible, weight, net_bid
