"""Where the parties sit on the feeder, and what its lines are rated (docs/model.md §2, §3).

A feeder with a **design load** (node attribute ``p_kw``; the IEEE 33-bus case carries
Baran & Wu's 3715 kW) has fixed line ratings: ``margin`` times the active power each
line carries when the substation serves the design load (linear flows,
:mod:`dipi_abm.physics.flows`). The population is then sited to fit them: users on
buses in proportion to the design load, generators uniformly, each party (largest
first) only on a bus where its peak load (users) or its capacity (generators and
rooftop PV) keeps every line within its rating in the two worst cases, all the peak
load with no generation and all the capacity with no load. A party that fits nowhere
(a population larger than its feeder) is sited as if there were no ratings; the run
then reports a peak line loading above 1 and curtails what the lines cannot carry.

A feeder **without** a design load (the synthetic feeder, a graph without ``p_kw``) is
rated after the population is placed (uniformly at random): ``margin`` times the larger
of the peak load and the generating capacity each line serves, so a synthetic grid's
ratings scale with the load it carries.

A limit the grid gives (a ``limit_kw`` edge attribute, or a finite ``line_limit_kw``)
wins over a derived rating in the run; the siting still fits the derived ratings, so
an explicit limit stresses the feeder the population was sized for.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dipi_abm.errors import ConfigError
from dipi_abm.physics.flows import OVERLOAD_RTOL, LineModel
from dipi_abm.physics.grid import Grid

__all__ = ["design_load_kw", "site_parties"]


def design_load_kw(grid: Grid) -> NDArray[np.float64] | None:
    """``(B,)`` design load per bus (node attribute ``p_kw``, kW), or None if the grid has
    none (no node carries a positive ``p_kw``)."""
    p = np.array([float(grid.graph.nodes[b].get("p_kw", 0.0) or 0.0) for b in grid.buses])
    if not np.isfinite(p).all() or (p < 0).any():
        raise ConfigError("grid: node attribute p_kw (design load) must be finite and >= 0 "
                          "(or set line_rating_margin = inf: no ratings derived from it)")
    return p if p.sum() > 0 else None


def site_parties(grid: Grid, lines: LineModel, peak_load_kw: NDArray[np.float64],
                 capacity_kw: NDArray[np.float64], rng: np.random.Generator, *,
                 margin: float, max_per_bus: int = 0) -> tuple[NDArray[np.intp], LineModel]:
    """Bus index per party, and the line model with its ratings (module docstring).

    Args:
        peak_load_kw, capacity_kw: ``(N,)`` per party (0 where it has none).
        margin: rating over the design (or served) flow; ``inf`` leaves the lines as
            ``lines`` has them (no derived rating) and places parties uniformly.
        max_per_bus: most parties per bus (0: no limit).

    Raises:
        ConfigError: more parties than ``max_per_bus`` lets the load buses hold.
    """
    n = peak_load_kw.size
    buses = np.array([i for i in range(grid.n_buses) if i != grid.root], np.intp)
    if buses.size == 0:
        buses = np.array([grid.root], np.intp)
    if max_per_bus and n > max_per_bus * buses.size:
        raise ConfigError(
            f"n_dpgc + n_users = {n}: the grid's {buses.size} load buses hold at most "
            f"{max_per_bus * buses.size} parties at max_parties_per_bus = {max_per_bus}")
    given = np.isfinite(lines.limit_kw)
    design = design_load_kw(grid) if math.isfinite(margin) else None
    if design is None:
        bus = _uniform(buses, n, max_per_bus, rng)
        if math.isfinite(margin):
            served = np.maximum(np.abs(_flows(lines, bus, -peak_load_kw)),
                                np.abs(_flows(lines, bus, capacity_kw)))
            lines = lines.with_limits(np.where(given, lines.limit_kw, margin * served))
        return bus, lines
    rated = lines.with_limits(margin * np.abs(lines.ptdf @ -design))
    bus = _fit(rated, buses, design[buses], peak_load_kw, capacity_kw, rng, max_per_bus)
    return bus, lines.with_limits(np.where(given, lines.limit_kw, rated.limit_kw))


def _uniform(buses: NDArray[np.intp], n: int, limit: int,
             rng: np.random.Generator) -> NDArray[np.intp]:
    if limit == 0:
        return buses[rng.integers(0, buses.size, n)]
    slots = np.repeat(buses, limit)
    return slots[rng.permutation(slots.size)[:n]]


def _flows(lines: LineModel, bus: NDArray[np.intp], kw: NDArray[np.float64]) -> NDArray:
    return lines.ptdf @ np.bincount(bus, weights=kw, minlength=lines.n_buses)


def _fit(lines: LineModel, buses: NDArray[np.intp], user_weight: NDArray[np.float64],
         peak: NDArray[np.float64], cap: NDArray[np.float64], rng: np.random.Generator,
         limit: int) -> NDArray[np.intp]:
    """Greedy siting, largest party first (at construction only, never in the hour).

    Party by party, the buses where it keeps every line within its rating in both worst
    cases are drawn from (weighted by design load for users, uniformly for generators);
    a party that fits nowhere is sited as if there were no ratings (users by design
    load, generators uniformly): piling every overflow on the bus that loads the lines
    least would put a population larger than its feeder next to the substation.

    The parties are sequential (each one's flows constrain the next), but the choices
    are computed for a window of parties at once from guessed earlier choices; the
    first choice that differs from its guess ends what is confirmed, and the window
    moves on from there. The result is the party-by-party loop's, to the bit."""
    order = np.argsort(-np.maximum(peak, cap), kind="stable")
    draws = rng.random(peak.size)[order]
    peak, cap = peak[order], cap[order]
    rating = lines.limit_kw[None, :, None]
    tol = OVERLOAD_RTOL * np.maximum(rating, 1.0)
    p = lines.ptdf[:, buses]  # (L, candidate buses)
    by_load = (peak > 0) & (user_weight.sum() > 0)  # users by design load, others uniformly
    flows = np.zeros((2, lines.n_lines))  # load and generation flows of the parties sited
    count = np.zeros(buses.size, np.int64)
    out = np.empty(peak.size, np.intp)
    width = int(max(1, min(128, 2**22 // max(p.size, 1))))
    guess = np.zeros(0, np.intp)
    i = 0
    while i < peak.size:
        j = np.arange(i, min(i + width, peak.size))
        k = np.zeros(j.size, np.intp)
        k[:guess.size] = guess[:j.size]
        # Flows and counts each party of the window sees, if the guesses before it hold.
        step = np.stack([-peak[j, None] * p[:, k].T, cap[j, None] * p[:, k].T], axis=1)
        seen = np.cumsum(np.concatenate([flows[None], step[:-1]]), axis=0)  # (W, 2, L)
        placed = np.eye(buses.size, dtype=np.int64)[k]  # one row per party of the window
        before = count + np.cumsum(placed, axis=0) - placed
        with np.errstate(divide="ignore", invalid="ignore"):
            worst = np.maximum(np.abs(seen[:, 0, :, None] - peak[j, None, None] * p),
                               np.abs(seen[:, 1, :, None] + cap[j, None, None] * p))
            ratio = np.where(worst > tol, worst / rating, 0.0).max(axis=1)  # (W, B)
        room = before < limit if limit else np.ones(ratio.shape, bool)
        ok = room & (ratio <= 1.0 + OVERLOAD_RTOL)
        where = np.where(ok.any(axis=1, keepdims=True), ok, room)
        w = np.where(where, np.where(by_load[j, None], user_weight, 1.0), 0.0)
        w = np.where(w.any(axis=1, keepdims=True), w, where.astype(float))
        target = draws[j] * w.sum(axis=1)
        chosen = np.minimum((np.cumsum(w, axis=1) <= target[:, None]).sum(axis=1),
                            buses.size - 1)
        wrong = np.flatnonzero(chosen != k)
        done = j.size if wrong.size == 0 else wrong[0] + 1  # chosen[:done] is confirmed
        out[j[:done]] = chosen[:done]
        np.add.at(count, chosen[:done], 1)
        flows = seen[done - 1] + np.stack([-peak[j[done - 1]] * p[:, chosen[done - 1]],
                                           cap[j[done - 1]] * p[:, chosen[done - 1]]])
        guess = chosen[done:]
        i += done
    bus = np.empty_like(out)
    bus[order] = buses[out]
    return bus
