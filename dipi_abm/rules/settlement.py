"""Settlement of contracts (docs/model.md section 5, [DER-CBC] Tables 1-2).

Pure, vectorised functions: every argument may be a scalar or an array of
contracts, and the result has one entry per contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


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


def settle(price: ArrayLike, agreed: ArrayLike, wheeling: ArrayLike, consumed: ArrayLike,
           generated: ArrayLike, retail: ArrayLike, feed_in: ArrayLike) -> Settlement:
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
    p, w, b, g, r, f = (np.asarray(x, dtype=np.float64)
                        for x in (price, wheeling, consumed, generated, retail, feed_in))
    direct = np.minimum(b, g)
    shortfall = np.maximum(0.0, b - g)
    surplus = np.maximum(0.0, g - b)
    seller_income = direct * p + surplus * f
    grid_income = direct * w + shortfall * r - surplus * f
    # Computed as the sum of the two receivers so that conservation is exact in floating point.
    buyer_pays = seller_income + grid_income
    return Settlement(direct, buyer_pays, seller_income, grid_income, shortfall, surplus)


def attribute_pro_rata(actual: NDArray[np.float64], matched: NDArray[np.float64],
                       party: NDArray[np.intp],
                       agreed: NDArray[np.float64]) -> NDArray[np.float64]:
    """Attribute each party's actual volume to its contracts pro rata to agreed volume.

    ``actual`` and ``matched`` are per party (``matched`` the party's total agreed
    volume); ``party`` and ``agreed`` are per contract. A party's volume counted
    against its contracts is ``min(actual, matched)``; what lies beyond its
    contracts is settled with the grid company instead (PPSC / OGSC).
    """
    party = np.asarray(party, np.intp)
    a = np.asarray(actual, np.float64)[party]
    m = np.asarray(matched, np.float64)[party]
    share = np.divide(np.minimum(a, m), m, out=np.zeros_like(m), where=m > 0)
    return share * np.asarray(agreed, np.float64)
