"""Line flows and DU1's executability check of matched trades (docs/model.md §2, §4 step 3).

After matching, the grid company (DU1) checks that the hour's trades can be carried:
"trades whose flows would exceed a line limit are curtailed; curtailed volume is
reported".  This module holds the linear flow model of the feeder, :class:`LineModel`,
and the curtailment rule, :meth:`LineModel.curtail`.

A contract of ``q`` kWh in the delivery hour is an average ``q`` kW injected at the
seller's bus and withdrawn at the buyer's bus; with the substation (root) as slack its
flow on line ``l`` is ``q * (ptdf[l, s] - ptdf[l, b])``.  Flows are lossless and linear,
so the flows of many trades add.

Policies fixed here (callers must know them)
--------------------------------------------

* **Lines**: every edge of the grid graph is one line; parallel edges of a multigraph are
  separate lines (each has its own limit, they share flow by susceptance).  A line is
  ``(u, v)`` (``(u, v, key)`` in a multigraph), oriented so that ``u`` is the end *farther*
  from the substation in hops (ties: the end later in :attr:`Grid.buses`).  Positive flow
  runs from ``u`` to ``v``, i.e. towards the substation on a radial feeder.  Lines are
  ordered by ``(index of u, index of v)``, parallel lines in the graph's edge order.
* **Limits** (kW, both directions): the first of the edge attributes ``limit_attr``
  (default :data:`LIMIT_KEYS`: ``limit_kw``, ``rate_a_kw``, ``thermal_limit_kw``) present
  on the edge, else ``default_limit_kw`` (``inf``: no limit).  A limit must be a real
  number ``>= 0``; ``inf`` is allowed.
* **PTDF** (rules in :data:`PTDF_METHODS`): on a radial feeder (the graph is a tree)
  the flow of a kW injected at bus ``k`` runs over every line of the path ``k -> root``,
  ``+1`` towards the root: found by one breadth-first search, no impedance needed.  On a
  meshed grid, the DC power-flow PTDF with susceptance ``1/x`` from the reduced Laplacian
  with the root as slack; ``x`` is the first of :data:`FLOW_IMPEDANCE_KEYS` (``x_ohm``,
  then ``r_ohm``, then ``weight``) present on the edge.  On a tree both give the same
  matrix.
* **Zero-impedance lines** (switches, ideal transformers) are exact shorts, as in
  :mod:`dipi_abm.physics.grid`: the buses they join are contracted to one super-bus for the power
  flow, and the flow crossing the short is recovered by Kirchhoff's current law inside
  the super-bus (if shorts form a loop, they share flow equally, the limit of equally
  stiff lines).  A short carries flow and has no limit unless the edge gives one.  A
  non-zero line in parallel with a short carries nothing.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace

import networkx as nx
import numpy as np
import scipy.linalg
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, shortest_path

from dipi_abm.errors import ConfigError
from dipi_abm.physics.grid import Grid

__all__ = ["FLOW_IMPEDANCE_KEYS", "LIMIT_KEYS", "PTDF_METHODS", "LineModel", "ptdf_dc",
           "ptdf_radial"]

LIMIT_KEYS: tuple[str, ...] = ("limit_kw", "rate_a_kw", "thermal_limit_kw")
"""Edge attributes read as a line's thermal limit in kW; the first one present wins."""

FLOW_IMPEDANCE_KEYS: tuple[str, ...] = ("x_ohm", "r_ohm", "weight")
"""Edge attributes read as the reactance of the DC power flow; the first one present wins."""

PTDF_EPS = 1e-12
"""PTDF entries (and per-trade line loadings) below this are rounding noise, set to 0, so a
trade whose path misses a line never counts as loading it."""

OVERLOAD_RTOL = 1e-9
"""A line is overloaded when ``|flow| > limit + OVERLOAD_RTOL * max(limit, 1 kW)``."""


# --------------------------------------------------------------------------------------
# PTDF rules (pure functions of the oriented line list)
# --------------------------------------------------------------------------------------


def ptdf_radial(n_buses: int, root: int, u: NDArray[np.intp], v: NDArray[np.intp],
                x_ohm: NDArray) -> NDArray[np.float64]:
    """PTDF of a radial feeder by subtree membership (docs/model.md §2).

    Line ``l`` must join a bus ``u[l]`` to its parent ``v[l]`` (one line per non-root
    bus).  A kW injected at bus ``k`` and withdrawn at the root flows over every line of
    the path from ``k`` to the root, ``+1`` in the direction ``u -> v``: column ``k`` is
    column ``parent(k)`` plus line ``k -> parent(k)``, filled in breadth-first order.
    Impedances are not needed (``x_ohm`` is ignored).

    Raises:
        ConfigError: the lines do not form a tree oriented towards ``root``.
    """
    n_lines = len(u)
    if n_lines != n_buses - 1:
        raise ConfigError(
            f"radial PTDF: {n_lines} lines for {n_buses} buses; a radial feeder has "
            "one line per non-root bus (use method='dc' for a meshed grid)"
        )
    line_to_parent = np.full(n_buses, -1, dtype=np.intp)
    parent = np.full(n_buses, -1, dtype=np.intp)
    line_to_parent[u] = np.arange(n_lines)
    parent[u] = v
    adj = coo_matrix((np.ones(n_lines), (u, v)), shape=(n_buses, n_buses))
    order, pred = breadth_first_order(adj, root, directed=False, return_predecessors=True)
    if (
        order.size != n_buses
        or np.unique(u).size != n_lines
        or root in set(u.tolist())
        or not np.array_equal(pred[order[1:]], parent[order[1:]])
    ):
        raise ConfigError(
            "radial PTDF: the lines are not a tree oriented towards the substation "
            "(use method='dc' for a meshed grid)"
        )
    ptdf = np.zeros((n_lines, n_buses))
    for k in order[1:]:  # parents come before children
        ptdf[:, k] = ptdf[:, parent[k]]
        ptdf[line_to_parent[k], k] = 1.0
    return ptdf


def ptdf_dc(n_buses: int, root: int, u: NDArray[np.intp], v: NDArray[np.intp],
            x_ohm: NDArray) -> NDArray[np.float64]:
    """DC power-flow PTDF with susceptance ``1/x``, the root as slack (docs/model.md §2).

    Line ``l`` runs ``u[l] -> v[l]`` with reactance ``x_ohm[l] >= 0``.  Buses joined by
    zero-reactance lines are contracted to one super-bus; the reduced Laplacian of the
    super-buses (root's super-bus removed) gives the angles ``theta = B_red^-1 e_k`` and
    the flow of a non-zero line is ``(theta_u - theta_v) / x``.  The flow on the shorts is
    then the one that balances every bus inside its super-bus (Kirchhoff's current law),
    shared equally around loops of shorts.  Dense, ``O(m^3)`` in the number of super-buses.
    """
    n_lines = len(u)
    x = np.asarray(x_ohm, dtype=float)
    short = x == 0.0
    zadj = coo_matrix((np.ones(int(short.sum())), (u[short], v[short])), shape=(n_buses,) * 2)
    m, group = connected_components(zadj, directed=False)
    g_root = group[root]

    # Angles of the super-buses per kW injected at each bus (root's super-bus at 0).
    gu, gv = group[u], group[v]
    live = ~short & (gu != gv)
    b = np.zeros(n_lines)
    b[live] = 1.0 / x[live]
    lap = np.zeros((m, m))
    np.add.at(lap, (gu[live], gv[live]), -b[live])
    np.add.at(lap, (gv[live], gu[live]), -b[live])
    np.add.at(lap, (gu[live], gu[live]), b[live])
    np.add.at(lap, (gv[live], gv[live]), b[live])
    keep = np.flatnonzero(np.arange(m) != g_root)
    x_super = np.zeros((m, m))
    if keep.size:
        reduced = lap[np.ix_(keep, keep)]
        x_super[np.ix_(keep, keep)] = scipy.linalg.cho_solve(scipy.linalg.cho_factor(reduced),
                                                             np.eye(keep.size))
    theta = x_super[:, group]  # (m, n): column k is the injection at bus k
    ptdf = b[:, None] * (theta[gu] - theta[gv])

    if short.any():
        # Net injection left at each bus after its non-zero lines: it must cross the shorts.
        inj = np.eye(n_buses)
        inj[root] -= 1.0
        nz = np.flatnonzero(~short)
        np.subtract.at(inj, u[nz], ptdf[nz])
        np.add.at(inj, v[nz], ptdf[nz])
        ptdf[short] = _short_flows(n_buses, u[short], v[short], inj)
    ptdf[np.abs(ptdf) < PTDF_EPS] = 0.0
    return ptdf


def _short_flows(n_buses: int, u: NDArray[np.intp], v: NDArray[np.intp],
                 inj: NDArray[np.float64]) -> NDArray[np.float64]:
    """Flows on unit-conductance lines ``u -> v`` that carry the injections ``inj``.

    Each connected piece of the short network has balanced injections; one bus per piece
    is grounded and the rest solved from the piece's Laplacian.
    """
    touched = np.unique(np.concatenate([u, v]))
    local = np.full(n_buses, -1, dtype=np.intp)
    local[touched] = np.arange(touched.size)
    lu, lv = local[u], local[v]
    t = touched.size
    lap = np.zeros((t, t))
    np.add.at(lap, (lu, lv), -1.0)
    np.add.at(lap, (lv, lu), -1.0)
    np.add.at(lap, (lu, lu), 1.0)
    np.add.at(lap, (lv, lv), 1.0)
    _, piece = connected_components(coo_matrix((np.ones(lu.size), (lu, lv)), shape=(t, t)))
    _, first = np.unique(piece, return_index=True)
    free = np.setdiff1d(np.arange(t), first)
    theta = np.zeros((t, inj.shape[1]))
    if free.size:
        theta[free] = np.linalg.solve(lap[np.ix_(free, free)], inj[touched[free]])
    return theta[lu] - theta[lv]


PTDF_METHODS: dict[
    str, Callable[[int, int, NDArray[np.intp], NDArray[np.intp], NDArray], NDArray]
] = {"radial": ptdf_radial, "dc": ptdf_dc}
"""Registry of PTDF rules: ``(n_buses, root, u, v, x_ohm) -> (L, B)`` PTDF.
:meth:`LineModel.build` picks ``"radial"`` for a tree and ``"dc"`` otherwise."""


# --------------------------------------------------------------------------------------
# The line model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LineModel:
    """Linear flow model of the feeder: flow on each line per kWh traded from bus s to bus b.

    Attributes:
        lines: ``(u_label, v_label)`` per line (``(u, v, key)`` in a multigraph), in the
            fixed order of the rows of :attr:`ptdf`; positive flow runs ``u -> v``.
        limit_kw: ``(L,)`` read-only thermal limit per line (kW, either direction),
            ``inf`` where none.
        ptdf: ``(L, B)`` read-only flow on line ``l`` per kW injected at bus ``k`` (column
            order of :attr:`Grid.buses`) and withdrawn at the root (slack).
        radial: whether the grid is a tree (the PTDF then has entries 0 and 1 only).
    """

    lines: list[tuple]
    limit_kw: NDArray[np.float64]
    ptdf: NDArray[np.float64]
    radial: bool

    @classmethod
    def build(cls, grid: Grid, default_limit_kw: float = math.inf,
              limit_attr: str | Sequence[str] = LIMIT_KEYS, *, method: str = "auto") -> LineModel:
        """Build the line model of ``grid`` (module docstring: lines, limits, PTDF).

        Args:
            grid: a validated :class:`~dipi_abm.physics.grid.Grid`.
            default_limit_kw: limit of a line whose edge names none (``inf``: no limit).
            limit_attr: edge attribute(s) read as the limit, the first present wins.
            method: ``"auto"`` (``"radial"`` on a tree, else ``"dc"``) or a key of
                :data:`PTDF_METHODS`.

        Raises:
            ConfigError: unknown ``method``; ``"radial"`` on a grid that is not a tree; a
                limit or reactance that is not a real number ``>= 0`` (NaN included).
        """
        if method != "auto" and method not in PTDF_METHODS:
            raise ConfigError(
                f"line model: PTDF method {method!r} is unknown; allowed: auto, "
                f"{', '.join(PTDF_METHODS)}"
            )
        default = _check_kw("line model: default_limit_kw", default_limit_kw)
        keys = (limit_attr,) if isinstance(limit_attr, str) else tuple(limit_attr)
        g = grid.graph
        index = {bus: k for k, bus in enumerate(grid.buses)}
        n = len(grid.buses)
        radial = g.number_of_edges() == n - 1  # connected (validated) with n-1 edges: a tree

        edges = _edge_list(g)
        iu = np.fromiter((index[e[0]] for e in edges), dtype=np.intp, count=len(edges))
        iv = np.fromiter((index[e[1]] for e in edges), dtype=np.intp, count=len(edges))
        # Orient each line from the end farther from the substation (hops) towards it.
        adj = coo_matrix((np.ones(iu.size), (iu, iv)), shape=(n, n))
        hops = shortest_path(adj, directed=False, unweighted=True, indices=grid.root)
        flip = (hops[iu] < hops[iv]) | ((hops[iu] == hops[iv]) & (iu < iv))
        iu, iv = np.where(flip, iv, iu), np.where(flip, iu, iv)
        order = np.lexsort((np.arange(iu.size), iv, iu))
        iu, iv = iu[order], iv[order]
        edges = [edges[k] for k in order]

        x_ohm = np.array([_reactance(e) for e in edges], dtype=float)
        limit = np.array([_limit(e, keys, default) for e in edges], dtype=float)
        lines = [(grid.buses[a], grid.buses[b], *e[2:-1]) for a, b,
                 e in zip(iu, iv, edges, strict=True)]

        chosen = ("radial" if radial else "dc") if method == "auto" else method
        if chosen == "radial" and not radial:
            raise ConfigError(
                f"line model: method 'radial' needs a tree, but the grid has "
                f"{g.number_of_edges()} lines for {n} buses; use 'dc' or 'auto'"
            )
        ptdf = PTDF_METHODS[chosen](n, grid.root, iu, iv, x_ohm)
        ptdf.setflags(write=False)
        limit.setflags(write=False)
        return cls(lines=lines, limit_kw=limit, ptdf=ptdf, radial=radial)

    @property
    def n_lines(self) -> int:
        """Number of lines ``L``."""
        return int(self.ptdf.shape[0])

    @property
    def n_buses(self) -> int:
        """Number of buses ``B``."""
        return int(self.ptdf.shape[1])

    def with_limits(self, limit_kw: NDArray[np.float64]) -> LineModel:
        """The same lines with these ``(L,)`` limits (kW, ``inf``: none)."""
        limit = np.array(limit_kw, dtype=float)
        if limit.shape != (self.n_lines,) or np.isnan(limit).any() or (limit < 0).any():
            raise ValueError(f"limit_kw must be {self.n_lines} numbers >= 0 (inf allowed)")
        limit.setflags(write=False)
        return replace(self, limit_kw=limit)

    def loading(self, injection_kw: NDArray[np.float64]) -> float:
        """Peak line loading of net bus injections ``(B,)`` (kW): the largest
        ``|flow| / limit`` over the lines with a finite limit (0 without one)."""
        bound = np.isfinite(self.limit_kw)
        if not bound.any():
            return 0.0
        flow = np.abs(self.injection_flows(injection_kw)[bound])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(flow > 0, flow / self.limit_kw[bound], 0.0)
        return float(ratio.max())

    def injection_flows(self, injection_kw: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(L,)`` flows of net bus injections ``(B,)`` (kW), balanced at the root.

        E.g. grid purchases: ``-purchase_kw`` at the buyer's bus (the root supplies it);
        the result can be passed to :meth:`curtail` as ``base_flow``.
        """
        inj = np.asarray(injection_kw, dtype=float)
        if inj.shape != (self.n_buses,):
            raise ValueError(f"injection_kw has shape {inj.shape}; expected ({self.n_buses},)")
        return self.ptdf @ inj

    def flows(self, seller_bus: NDArray[np.intp], buyer_bus: NDArray[np.intp],
              volume: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(L,)`` net flow of these trades: ``sum_c volume_c * (ptdf[:, s_c] - ptdf[:, b_c])``.

        Bus arguments are bus indices (rows of :attr:`Grid.buses`), one per contract;
        volumes in kWh per hour, i.e. average kW.
        """
        s, b, q = self._trades(seller_bus, buyer_bus, volume)
        net = np.bincount(s, weights=q, minlength=self.n_buses) - np.bincount(
            b, weights=q, minlength=self.n_buses
        )
        return self.ptdf @ net

    def overloaded(self, flow: NDArray[np.float64]) -> NDArray[np.bool_]:
        """``(L,)`` mask of lines whose ``|flow|`` exceeds the limit (tolerance
        :data:`OVERLOAD_RTOL` relative, 1e-9 kW at least)."""
        flow = np.asarray(flow, dtype=float)
        return np.abs(flow) > self.limit_kw + OVERLOAD_RTOL * np.maximum(self.limit_kw, 1.0)

    def curtail(self, seller_bus: NDArray[np.intp], buyer_bus: NDArray[np.intp],
                volume: NDArray[np.float64], base_flow: NDArray[np.float64] | None = None,
                max_iter: int = 50) -> NDArray[np.float64]:
        """Executable volume per contract: DU1's executability check (docs/model.md §4 step 3).

        Rule (proportional curtailment of the trades that cause an overload):

        1. Flows are ``base_flow`` (existing flow, default zero) plus the trades' flows.
        2. For every overloaded line (:meth:`overloaded`), the contracts that *load* it
           push flow in the overloading direction; everything else on it (base flow,
           counter-flows) is the rest ``R``.  The line's factor ``phi = (limit - R) / S``
           (``S`` the loading contracts' flow, clipped to ``[0, 1]``) scales them all so
           that the line would sit exactly at its limit.
        3. Each contract is scaled by the smallest factor among the overloaded lines it
           loads (the tightest one); contracts loading no overloaded line keep their
           volume.  Contracts between the same pair of buses have the same flows, so
           they are always scaled alike (pro rata).
        4. Curtailing a contract also removes its counter-flow on other lines, which can
           overload them: repeat 2-3 until no line is overloaded, or ``max_iter`` rounds.
        5. If a line is still overloaded then, every contract that loads an overloaded
           line is cut to zero, repeatedly, until no overloaded line is loaded by a trade.

        Volumes only ever decrease and stay ``>= 0``.  Afterwards every line satisfies
        ``|flow| <= max(limit, |base_flow|)`` (within the tolerance): an overload that the
        base flow alone causes cannot be removed by curtailing trades, and is left.

        Returns:
            ``(C,)`` executable volume per contract, ``0 <= out <= volume``; curtailed
            volume is ``volume - out``.

        Raises:
            ValueError: mismatched shapes, a bus index out of range, a negative or
                non-finite volume, or a ``base_flow`` of the wrong shape.
        """
        s, b, q = self._trades(seller_bus, buyer_bus, volume)
        if q.size and (not np.isfinite(q).all() or (q < 0).any()):
            raise ValueError("curtail: volumes must be finite and >= 0")
        if base_flow is None:
            base = np.zeros(self.n_lines)
        else:
            base = np.asarray(base_flow, dtype=float)
            if base.shape != (self.n_lines,):
                raise ValueError(f"base_flow has shape {base.shape}; expected ({self.n_lines},)")
        bound = np.isfinite(self.limit_kw)
        if q.size == 0 or not bound.any():
            return q.copy()

        # Contracts of one bus pair share their flows: work on the distinct pairs.
        n = self.n_buses
        pairs, pair_of = np.unique(s * n + b, return_inverse=True)
        seller_of_pair, buyer_of_pair = np.divmod(pairs, n)
        factor, _ = _pair_factors(self.ptdf[bound], seller_of_pair, buyer_of_pair,
                                  np.bincount(pair_of, weights=q, minlength=pairs.size),
                                  base[bound], self.limit_kw[bound], max_iter)
        return np.minimum(q * factor[pair_of], q)

    def _trades(self, seller_bus: NDArray, buyer_bus: NDArray,
                volume: NDArray) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
        s = np.asarray(seller_bus)
        b = np.asarray(buyer_bus)
        q = np.asarray(volume, dtype=float)
        if not (s.ndim == b.ndim == q.ndim == 1 and s.size == b.size == q.size):
            raise ValueError(
                f"seller_bus, buyer_bus and volume must be 1-d of one length; got shapes "
                f"{s.shape}, {b.shape}, {q.shape}"
            )
        for name, arr in (("seller_bus", s), ("buyer_bus", b)):
            if arr.size and (
                arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() >= self.n_buses
            ):
                raise ValueError(f"{name} must hold bus indices in [0, {self.n_buses})")
        return s.astype(np.intp, copy=False), b.astype(np.intp, copy=False), q


def _pair_factors(ptdf: NDArray[np.float64], seller_bus: NDArray[np.intp],
                  buyer_bus: NDArray[np.intp], volume: NDArray[np.float64],
                  base: NDArray[np.float64], limit: NDArray[np.float64],
                  max_iter: int) -> tuple[NDArray[np.float64], int]:
    """Scale factor in ``[0, 1]`` per bus pair under the rule of :meth:`LineModel.curtail`,
    and the number of proportional rounds it took (``max_iter + 1``: the fallback ran).

    ``ptdf`` holds the rows of the lines with a finite ``limit``; pair ``p`` trades
    ``volume[p]`` from ``seller_bus[p]`` to ``buyer_bus[p]``.  Each round costs one
    ``(L, B)`` product plus the loadings of the overloaded lines only.
    """
    n_buses = ptdf.shape[1]
    tol = OVERLOAD_RTOL * np.maximum(limit, 1.0)
    factor = np.ones(volume.size)
    pair_loading = ptdf[:, seller_bus] - ptdf[:, buyer_bus]  # kW per kWh of each pair
    pair_loading[np.abs(pair_loading) < PTDF_EPS] = 0.0

    def overloads() -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
        v = factor * volume
        net = np.bincount(seller_bus, v, n_buses) - np.bincount(buyer_bus, v, n_buses)
        flow = base + ptdf @ net
        rows = np.flatnonzero(np.abs(flow) > limit + tol)
        # in the overloading direction
        push = np.sign(flow[rows])[:, None] * pair_loading[rows] * v
        return rows, flow[rows], push

    for rounds in range(max_iter):
        rows, flow, push = overloads()
        loads = push > 0.0
        if not loads.any():
            return factor, rounds  # no overload, or only ones the base flow causes
        s = np.where(loads, push, 0.0).sum(axis=1)
        rest = np.abs(flow) - s
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = np.clip((limit[rows] - rest) / s, 0.0, 1.0)
        factor *= np.where(loads, phi[:, None], 1.0).min(axis=0)

    # Fallback: cut every trade that still loads an overloaded line, until none does.
    for _ in range(volume.size + 1):
        _, _, push = overloads()
        hit = (push > 0.0).any(axis=0)
        if not hit.any():
            break
        factor[hit] = 0.0
    return factor, max_iter + 1


# --------------------------------------------------------------------------------------
# Reading edges
# --------------------------------------------------------------------------------------


def _edge_list(g: nx.Graph) -> list[tuple]:
    """``(u, v, data)`` per edge, ``(u, v, key, data)`` in a multigraph, in edge order."""
    if g.is_multigraph():
        return list(g.edges(keys=True, data=True))
    return list(g.edges(data=True))


def _edge_name(edge: tuple) -> str:
    return f"edge ({', '.join(repr(p) for p in edge[:-1])})"


def _check_kw(label: str, value: object) -> float:
    if (
        isinstance(value, bool | np.bool_)
        or not isinstance(value, numbers.Real)
        or math.isnan(float(value))
        or float(value) < 0
    ):
        raise ConfigError(f"{label}={value!r} is invalid; it must be a number >= 0 (inf allowed)")
    return float(value)


def _first_present(data: dict, keys: Sequence[Hashable]) -> tuple[Hashable | None, object]:
    for key in keys:
        if data.get(key) is not None:
            return key, data[key]
    return None, None


def _limit(edge: tuple, keys: Sequence[str], default: float) -> float:
    key, value = _first_present(edge[-1], keys)
    if key is None:
        return default
    return _check_kw(f"line model: {_edge_name(edge)} {key}", value)


def _reactance(edge: tuple) -> float:
    key, value = _first_present(edge[-1], FLOW_IMPEDANCE_KEYS)
    label = f"line model: {_edge_name(edge)} {key}"
    if key is None:
        raise ConfigError(
            f"line model: {_edge_name(edge)} has no impedance; it needs one of "
            f"{', '.join(FLOW_IMPEDANCE_KEYS)}"
        )
    x = _check_kw(label, value)
    if not math.isfinite(x):
        raise ConfigError(f"{label}={value!r} is invalid; an impedance must be finite")
    return x
