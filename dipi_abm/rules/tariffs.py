"""The grid company's published terms (DU1) and its surplus intake (OGSC).

Tariffs are registered by name in :data:`TARIFFS`; each maps the hour of day
to the retail price for that hour.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .registry import Rule

# Cleanliness Q ([DER-CBC]), stability S and energy-consumption index L per technology
# (solar, wind, hydro, thermal). S and L are this model's reading of OGSC's
# C_max = M/L * S * Q: dispatchable plants are steadier, thermal burns fuel.
CLEANLINESS_Q = np.array([0.8, 0.8, 0.6, 0.3])
STABILITY_S = np.array([0.6, 0.5, 0.9, 0.95])
CONSUMPTION_L = np.array([0.2, 0.2, 0.3, 1.0])

TOU_PEAK_HOURS = frozenset({8, 9, 10, 18, 19, 20})
TOU_VALLEY_HOURS = frozenset({23, 0, 1, 2, 3, 4, 5, 6})


def tariff_flat(hour_of_day: int, retail: float, peak: float, valley: float) -> float:
    """One retail price at every hour (the papers' R = 0.657 yuan/kWh)."""
    return retail


def tariff_tou(hour_of_day: int, retail: float, peak: float, valley: float) -> float:
    """Time of use: peak 8-11 h and 18-21 h, valley 23-7 h, the retail price otherwise."""
    if hour_of_day in TOU_PEAK_HOURS:
        return peak
    if hour_of_day in TOU_VALLEY_HOURS:
        return valley
    return retail


TARIFFS: dict[str, Rule] = {"flat": Rule(tariff_flat),
                            "tou": Rule(tariff_tou, traits=frozenset({"time_of_use"}))}


def ogsc_priority(tech: NDArray[np.int8]) -> NDArray[np.float64]:
    """OGSC order key C = S * Q / L per party (higher is taken first); -inf without a generator."""
    t = np.asarray(tech)
    key = np.full(t.shape, -np.inf)
    has = t >= 0
    key[has] = STABILITY_S[t[has]] * CLEANLINESS_Q[t[has]] / CONSUMPTION_L[t[has]]
    return key


def grid_intake(surplus_kw: NDArray[np.float64], priority: NDArray[np.float64],
                limit_kw: float) -> NDArray[np.float64]:
    """How much of each party's surplus the grid company takes (OGSC).

    Up to ``limit_kw`` in total, parties with the higher priority first; ties
    share pro rata. What is not taken is curtailed.
    """
    total = float(surplus_kw.sum())
    if total <= limit_kw:
        return surplus_kw.copy()
    order = np.argsort(-priority, kind="stable")
    s = surplus_kw[order]
    p = priority[order]
    # Take whole priority classes while they fit; the class that doesn't fit shares pro rata.
    classes, start = np.unique(-p, return_index=True)
    class_total = np.add.reduceat(s, start) if s.size else s
    before = np.concatenate([[0.0], np.cumsum(class_total)[:-1]])
    room = np.clip(limit_kw - before, 0.0, None)
    fraction = np.divide(np.minimum(room, class_total), class_total,
                         out=np.zeros_like(class_total), where=class_total > 0)
    class_of = np.repeat(np.arange(classes.size), np.diff(np.append(start, s.size)))
    taken = np.empty_like(surplus_kw)
    taken[order] = s * fraction[class_of]
    return taken
