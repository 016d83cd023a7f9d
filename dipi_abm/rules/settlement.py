"""Settlement of contracts (docs/model.md section 5, [DER-CBC] Tables 1-2).

Pure, vectorised functions: every argument may be a scalar or an array of
contracts, and the result has one entry per contract. The hour's arrays of
contracts go through compiled kernels (:mod:`dipi_abm.jit`), one pass each;
``_settle_numpy`` and ``_attribute_pro_rata_numpy`` are their references.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..jit import kernel


@dataclass(frozen=True)
class Settlement:
    """Money flows of one or many contracts (yuan).

    ``buyer_pays == seller_income + grid_income`` holds per contract.
    """

    direct: NDArray[np.float64]
    buyer_pays: NDArray[np.float64]
    seller_income: NDArray[np.float64]
    grid_income: NDArray[np.float64]
    shortfall: NDArray[np.float64]  # max(0, b - g): bought from the grid at retail
    surplus: NDArray[np.float64]  # max(0, g - b): sold to the grid at feed-in


def settle(
    price: ArrayLike,
    agreed: ArrayLike,
    wheeling: ArrayLike,
    consumed: ArrayLike,
    generated: ArrayLike,
    retail: ArrayLike,
    feed_in: ArrayLike,
) -> Settlement:
    """Settle contracts by the [DER-CBC] smart-contract rule (docs/model.md section 5).

    ``consumed`` (b) and ``generated`` (g) are the buyer's and seller's actual
    volumes attributed to the contract. ``agreed`` (q) does not enter the money
    flows, only the breach and credit accounting; it is accepted so the call
    reads like the contract it settles::

        direct        = min(b, g)
        buyer pays    = direct (p + w) + max(0, b - g) R
        seller income = direct p       + max(0, g - b) F
        grid income   = direct w       + max(0, b - g) R - max(0, g - b) F
    """
    p, w, b, g = (np.asarray(x, dtype=np.float64) for x in (price, wheeling, consumed, generated))
    if (p.ndim == w.ndim == b.ndim == g.ndim == 1 and p.size == w.size == b.size == g.size
            and np.ndim(retail) == 0 and np.ndim(feed_in) == 0):
        return Settlement(*_settle_loop(p, w, b, g, float(retail), float(feed_in)))
    return _settle_numpy(p, w, b, g, np.asarray(retail, dtype=np.float64),
                         np.asarray(feed_in, dtype=np.float64))


def _settle_numpy(p: NDArray, w: NDArray, b: NDArray, g: NDArray, r: NDArray,
                  f: NDArray) -> Settlement:
    """:func:`settle` for any broadcastable shapes (and the reference of its kernel)."""
    direct = np.minimum(b, g)
    shortfall = np.maximum(0.0, b - g)
    surplus = np.maximum(0.0, g - b)
    seller_income = direct * p + surplus * f
    grid_income = direct * w + shortfall * r - surplus * f
    # Computed as the sum of the two receivers so that conservation is exact in floating point.
    buyer_pays = seller_income + grid_income
    return Settlement(direct, buyer_pays, seller_income, grid_income, shortfall, surplus)


@kernel
def _settle_loop(p, w, b, g, r, f):  # noqa: ANN001, ANN202 - numba kernel
    """:func:`_settle_numpy` over 1-D contract arrays, one pass, the same operations.

    np.minimum(a, b) is ``a if a < b or a is NaN else b`` (so min(0.0, -0.0) is -0.0)
    and np.maximum(a, b) ``a if a > b or a is NaN else b``: written out so here."""
    n = p.size
    direct, buyer_pays = np.empty(n), np.empty(n)
    seller_income, grid_income = np.empty(n), np.empty(n)
    shortfall, surplus = np.empty(n), np.empty(n)
    for i in range(n):
        bi, gi = b[i], g[i]
        d = bi if (bi < gi or bi != bi) else gi
        x = bi - gi
        short = 0.0 if 0.0 > x else x
        x = gi - bi
        sur = 0.0 if 0.0 > x else x
        si = d * p[i] + sur * f
        gr = d * w[i] + short * r - sur * f
        direct[i], shortfall[i], surplus[i] = d, short, sur
        seller_income[i], grid_income[i], buyer_pays[i] = si, gr, si + gr
    return direct, buyer_pays, seller_income, grid_income, shortfall, surplus


def attribute_pro_rata(
    actual: NDArray[np.float64], matched: NDArray[np.float64], party: NDArray[np.intp],
    agreed: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Attribute each party's actual volume to its contracts pro rata to agreed volume.

    ``actual`` and ``matched`` are per party (``matched`` the party's total agreed
    volume); ``party`` and ``agreed`` are per contract. A party's volume counted
    against its contracts is ``min(actual, matched)``; what lies beyond its
    contracts is settled with the grid company instead (PPSC / OGSC).
    """
    return _attribute_loop(np.asarray(actual, dtype=np.float64),
                           np.asarray(matched, dtype=np.float64), np.asarray(party, dtype=np.intp),
                           np.asarray(agreed, dtype=np.float64))


def _attribute_pro_rata_numpy(actual: NDArray[np.float64], matched: NDArray[np.float64],
                              party: NDArray[np.intp], agreed: NDArray[np.float64]
                              ) -> NDArray[np.float64]:
    """The reference of :func:`attribute_pro_rata`'s kernel."""
    counted = np.minimum(actual, matched)
    share = np.divide(counted, matched, out=np.zeros_like(counted), where=matched > 0)
    return share[party] * agreed


@kernel
def _attribute_loop(actual, matched, party, agreed):  # noqa: ANN001, ANN202 - numba kernel
    """:func:`_attribute_pro_rata_numpy`, the share computed only for the contracts' parties
    (np.minimum written out as in :func:`_settle_loop`)."""
    out = np.empty(party.size)
    for i in range(party.size):
        j = party[i]
        m = matched[j]
        share = 0.0
        if m > 0:
            a = actual[j]
            share = (a if (a < m or a != a) else m) / m
        out[i] = share * agreed[i]
    return out
