"""What the dashboard shows, as plain Python: a snapshot of the model and the text drawn from it.

:func:`take_snapshot` copies, after each step, everything the page draws
(the hourly KPIs, the summary, the party credit, the newest ledger blocks,
and the hour aggregated per bus: parties, P2P sold and bought, volume
traded within the bus, credit bands). Text, KPI tiles and figures
(:mod:`.figures`) are drawn from a :class:`Snapshot` only, so they are
tested without a browser and drawn on any thread while the model is
stepped on its own.

Per-bus aggregation is what lets the grid view scale: whatever the number
of parties, the figure draws one marker per bus and one width per line.
"""

from __future__ import annotations

import hashlib
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import scipy.sparse
from numpy.typing import NDArray

from ..errors import ConfigError
from ..physics.flows import LineModel

if TYPE_CHECKING:
    import pandas as pd

    from ..model import DIPIModel
    from ..physics.grid import Grid

try:  # the ledger is optional: the page says "ledger off" without it
    from ..ledger.store import CHAINS as LEDGER_CHAINS
except ImportError:  # pragma: no cover - before dipi_abm.ledger.store exists
    LEDGER_CHAINS = ("DU1", "JY1", "LH1")

DPGC_KIND, USER_KIND = 0, 1
RECENT_BLOCKS = 6

#: Credit bands of the grid view's per-bus credit bars: [0, 90), [90, 95), [95, 99), [99, 100].
CREDIT_BAND_EDGES = (90.0, 95.0, 99.0)
CREDIT_BAND_LABELS = ("credit < 90", "90–95", "95–99", "≥ 99")

#: The summary KPIs shown as numbers: key, label, format, unit/explanation, higher is better.
KPI_TILES: tuple[tuple[str, str, str, str, bool | None], ...] = (
    ("breach_rate", "Breach rate", "pct", "of committed contract sides", False),
    ("p2p_volume_kwh", "P2P traded", "mwh", "MWh agreed peer to peer", True),
    ("grid_purchase_kwh", "Bought from grid", "mwh", "MWh at retail price", False),
    ("transaction_efficiency", "Transaction efficiency", "pct",
     "P2P / min(offered, demanded)", True),
    ("mean_credit_dpgc", "Mean credit, DPGCs", "credit", "0–100", True),
    ("mean_credit_user", "Mean credit, users", "credit", "0–100", True),
    ("user_cost_yuan", "Users' cost", "yuan", "yuan paid for energy, net", False),
    ("price_std", "Price spread", "price", "yuan/kWh, sd of contract prices", None),
    ("blocks_gini", "Block Gini", "ratio", "0 equal … 1 one producer", False),
    ("blocks_nakamoto", "Nakamoto coefficient", "int", "producers holding > 50 % of blocks",
     True),
)


# ------------------------------------------------------------------------------ snapshot
@dataclass(frozen=True)
class LedgerView:
    """The ledger as the page shows it: off, unreadable, or its newest blocks."""

    status: str  # "off", "on" or "error"
    message: str = ""
    total_blocks: int = 0
    recent: tuple[Any, ...] = ()  # Block objects, newest first
    can_verify: bool = False


@dataclass(frozen=True, eq=False)
class BusStats:
    """The hour aggregated per bus (rows in ``grid.buses`` order), docs/model.md sections 2 and 9.

    ``sold_kwh``/``bought_kwh`` are the P2P volumes agreed this hour by the bus's
    sellers and buyers (trades within the bus count on both sides); ``local_kwh``
    is the part agreed between two parties of the same bus. The net position
    ``sold - bought`` is what the bus injects into the feeder for P2P trade.
    """

    n_dpgc: NDArray[np.int64]
    n_user: NDArray[np.int64]
    capacity_kw: NDArray[np.float64]  # DPGC capacity on the bus
    load_kw: NDArray[np.float64]  # mean load of the bus's users
    sold_kwh: NDArray[np.float64]
    bought_kwh: NDArray[np.float64]
    local_kwh: NDArray[np.float64]
    breaches: NDArray[np.int64]  # parties short of their contracts this hour
    credit_bands: NDArray[np.int64]  # (n_buses, 4) parties per CREDIT_BAND_LABELS band
    credit_mean: NDArray[np.float64]  # NaN on a bus without parties
    credit_min: NDArray[np.float64]
    credit_mean_dpgc: NDArray[np.float64]
    credit_mean_user: NDArray[np.float64]

    @property
    def net_kwh(self) -> NDArray[np.float64]:
        return self.sold_kwh - self.bought_kwh

    @property
    def n_parties(self) -> NDArray[np.int64]:
        return self.n_dpgc + self.n_user


def bus_stats(n_buses: int, kind: NDArray[np.int8], bus: NDArray[np.intp],
              capacity_kw: NDArray[np.float64], mean_load_kw: NDArray[np.float64],
              credit: NDArray[np.float64], breach: NDArray[np.bool_], seller: NDArray[np.intp],
              buyer: NDArray[np.intp], volume: NDArray[np.float64]) -> BusStats:
    """Aggregate party columns and this hour's contracts (party rows) per bus (vectorised)."""
    nb = int(n_buses)
    d = kind == DPGC_KIND
    u = ~d
    n_dpgc = np.bincount(bus[d], minlength=nb)
    n_user = np.bincount(bus[u], minlength=nb)
    n_all = n_dpgc + n_user
    sb, bb = bus[seller], bus[buyer]
    same = sb == bb
    band = np.digitize(credit, CREDIT_BAND_EDGES)
    bands = np.bincount(bus * 4 + band, minlength=nb * 4).reshape(nb, 4)
    cmin = np.full(nb, np.inf)
    np.minimum.at(cmin, bus, credit)
    cmin[n_all == 0] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(bus, credit, nb) / n_all
        mean_d = np.bincount(bus[d], credit[d], nb) / n_dpgc
        mean_u = np.bincount(bus[u], credit[u], nb) / n_user
    return BusStats(n_dpgc=n_dpgc, n_user=n_user,
                    capacity_kw=np.bincount(bus[d], capacity_kw[d], nb),
                    load_kw=np.bincount(bus[u], mean_load_kw[u], nb),
                    sold_kwh=np.bincount(sb, volume, nb), bought_kwh=np.bincount(bb, volume, nb),
                    local_kwh=np.bincount(sb[same], volume[same], nb),
                    breaches=np.bincount(bus[breach], minlength=nb), credit_bands=bands,
                    credit_mean=mean, credit_min=cmin, credit_mean_dpgc=mean_d,
                    credit_mean_user=mean_u)


@dataclass(frozen=True, eq=False)  # compared by identity: one snapshot per hour drawn
class Snapshot:
    """Everything the page draws for one hour of one model (copied, read-only)."""

    build: int  # which model this is (changes on every Reset)
    hour: int  # hours computed (rows of the hourly table)
    hours: int
    running: bool
    clock_offset: int  # hour h ends at clock time clock_offset + h (hours from day 1, 00:00)
    params: dict[str, Any]
    n_buses: int
    grid: Grid
    kind: NDArray[np.int8]
    credit: NDArray[np.float64]
    buses: BusStats
    n_contracts: int
    blocks_won: NDArray[np.int64]  # per miner node: parties first, then stand-alone miners
    node_credit: NDArray[np.float64]
    hourly: pd.DataFrame  # every hourly KPI column (docs/model.md section 9)
    summary: dict[str, Any]
    ledger: LedgerView = field(default_factory=lambda: LedgerView("off"))

    @property
    def n_parties(self) -> int:
        return int(self.kind.size)

    @property
    def n_dpgc(self) -> int:
        return int((self.kind == DPGC_KIND).sum())

    @property
    def n_users(self) -> int:
        return int((self.kind == USER_KIND).sum())

    @property
    def p2p_kwh(self) -> float:
        return float(self.buses.sold_kwh.sum())

    @property
    def local_kwh(self) -> float:
        return float(self.buses.local_kwh.sum())


def ledger_view(model: DIPIModel, recent: int = RECENT_BLOCKS) -> LedgerView:
    """The ledger's newest blocks across chains, or why there are none.

    Coded against ``model.ledger`` (None, or an object with ``blocks(chain)``)
    and ``model.verify_ledger()``; either may be missing.
    """
    ledger = getattr(model, "ledger", None)
    can_verify = callable(getattr(model, "verify_ledger", None))
    if ledger is None:
        return LedgerView("off", "this model keeps no ledger", can_verify=False)
    try:
        chains = {c: list(ledger.blocks(c)) for c in LEDGER_CHAINS}
    except Exception as exc:  # an unreadable ledger must not take the page down
        return LedgerView("error", f"cannot read the ledger: {type(exc).__name__}: {exc}",
                          can_verify=can_verify)
    total = sum(len(b) for b in chains.values())
    newest = sorted((b for blocks in chains.values() for b in blocks[-recent:]),
                    key=lambda b: (b.hour, b.index, LEDGER_CHAINS.index(b.chain)), reverse=True)
    return LedgerView("on", "", total, tuple(newest[:recent]), can_verify)


def take_snapshot(model: DIPIModel, build: int = 0) -> Snapshot:
    """Copy what the page draws from ``model`` (call it on the thread that steps it).

    Reads the model's public surface only: ``state`` (kind, bus, capacity_kw,
    mean_load_kw, credit.credit, breach), ``contracts`` (seller, buyer, volume),
    ``grid``, ``params``, ``running``, ``hour``, ``node_blocks_won``,
    ``hourly_dataframe()``, ``summary()``, and ``ledger``/``verify_ledger()`` when present.
    """
    s = model.state
    kind = s.kind.copy()
    credit = s.credit.credit.copy()
    c = model.contracts
    n_miners = model.node_blocks_won.size - credit.size
    hourly = model.hourly_dataframe()
    hour = int(model.hour)  # the model's own hour counter: the hour computed
    if len(hourly) and "hour_of_day" in hourly:
        last = hourly.iloc[-1]
        # hour_of_day is the delivery hour's start; the page shows its end (hour 1 of a run
        # starting at 00:00 is labelled 01:00).
        offset = int((int(last["hour_of_day"]) + 1 - int(last["hour"])) % 24)
    else:
        offset = int(model.params.to_dict().get("start_hour", 0)) % 24
    return Snapshot(
        build=build,
        hour=hour,
        hours=int(model.params.hours),
        running=bool(model.running),
        clock_offset=offset,
        params=model.params.to_dict(),
        n_buses=int(model.grid.n_buses),
        grid=model.grid,
        kind=kind,
        credit=credit,
        buses=bus_stats(model.grid.n_buses, kind, s.bus, s.capacity_kw, s.mean_load_kw, credit,
                        s.breach, c.seller, c.buyer, c.volume),
        n_contracts=int(c.size),
        blocks_won=model.node_blocks_won.copy(),
        node_credit=np.concatenate([credit, np.zeros(n_miners)]),
        hourly=hourly,
        summary=model.summary(),
        ledger=ledger_view(model),
    )


# ------------------------------------------------------------------------------ time
def clock(hour: int, offset: int) -> tuple[int, int]:
    """(day, hour of day) of simulated hour ``hour``; day 1 is the first day."""
    t = int(offset) + int(hour)
    return t // 24 + 1, t % 24


def time_label(hour: int, offset: int) -> str:
    """'day 2, 06:00': the clock time of a simulated hour."""
    day, hh = clock(hour, offset)
    return f"day {day}, {hh:02d}:00"


# ------------------------------------------------------------------------------ text
def headline(snap: Snapshot) -> str:
    """One line: population, grid and the rules in force."""
    return f"{population(snap)} · {rules(snap.params, snap.summary.get('seed'))}"


def population(snap: Snapshot) -> str:
    p = snap.params
    grid = p["grid"] if p["grid"] in ("ieee33", "synthetic", "graph") else \
        f"file {PurePath(str(p['grid'])).name}"
    return (f"{snap.n_parties} parties ({snap.n_dpgc} DPGCs + {snap.n_users} users) on "
            f"{snap.n_buses} buses ({grid})")


def rules(p: dict[str, Any], seed: Any) -> str:
    return (f"matching {p['matching']} · credit {p['credit_rule']} (λ = "
            f"{format_number(p['natural_factor'])}) · consensus {p['consensus']} (τ = "
            f"{format_number(p['poca_tau'])}) · seed {seed}")


def hour_label(snap: Snapshot) -> str:
    """'Hour 30 of 168 · day 2, 06:00' (the hour the model has computed)."""
    done = " (run complete)" if not snap.running else ""
    return f"Hour {snap.hour} of {snap.hours} · {time_label(snap.hour, snap.clock_offset)}{done}"


def format_number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


#: How each kind of KPI is shown: scale, number format, unit of a value, unit of a
#: difference (percentage points for shares).
_KPI_FORMATS: dict[str, tuple[float, str, str, str]] = {"pct": (100.0, ".1f", " %", " pp"),
                                                        "mwh": (1e-3, ",.1f", "", " MWh"),
                                                        "credit": (1.0, ".2f", "", ""),
                                                        "price": (1.0, ".4f", "", ""),
                                                        "yuan": (1.0, ",.0f", "", " yuan"),
                                                        "ratio": (1.0, ".2f", "", "")}


def _kpi_text(x: float, how: str, delta: bool) -> str:
    if how == "int":
        return f"{int(round(x)) if delta else int(x):d}"
    if how not in _KPI_FORMATS:
        return f"{x:g}" if delta else str(x)
    scale, fmt, unit, delta_unit = _KPI_FORMATS[how]
    return f"{x * scale:{fmt}}" + (delta_unit if delta else unit)


def format_kpi(value: Any, how: str) -> str:
    """A summary KPI as the tile shows it ('–' for a missing or undefined value)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return _kpi_text(value, how, delta=False)


def format_delta(delta: float, how: str) -> str:
    """A difference of two KPI values, signed, in the tile's unit (percentage points
    for shares)."""
    if not math.isfinite(delta):
        return "–"
    sign = "+" if delta > 0 else ("−" if delta < 0 else "±")
    return sign + _kpi_text(abs(delta), how, delta=True)


@dataclass(frozen=True)
class Tile:
    """One KPI tile: its value now and, with a baseline pinned, the difference to it."""

    key: str
    label: str
    value: str
    unit: str
    delta: str = ""  # "" without a baseline
    baseline: str = ""
    trend: str = ""  # "better"/"worse" (the interval excludes 0), "same" (it does not), ""
    interval: str = ""  # "[low, high]" of the difference over replications, "" without


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def kpi_tiles(summary: dict[str, Any], baseline: dict[str, Any] | None = None,
              intervals: Callable[[str], tuple[float, float, float]] | None = None
              ) -> list[Tile]:
    """A tile per summary KPI the model reports. With a baseline summary, each tile also
    gives the difference now - baseline; with ``intervals`` (key -> mean, low, high of
    the paired differences over replications), the mean difference and its interval.

    Only a difference whose interval excludes 0 is marked better or worse; one inside
    its interval is "same", and a single pair (no interval) is not marked at all."""
    tiles = []
    for key, label, how, unit, higher_better in KPI_TILES:
        if key not in summary:
            continue
        value = format_kpi(summary.get(key), how)
        if baseline is None or key not in baseline:
            tiles.append(Tile(key, label, value, unit))
            continue
        delta, lo, hi = (intervals(key) if intervals is not None else
                         (_number(summary.get(key)) - _number(baseline.get(key)),
                          math.nan, math.nan))
        trend, interval = "", ""
        if math.isfinite(lo) and math.isfinite(hi):
            interval = f"[{format_delta(lo, how)}, {format_delta(hi, how)}]"
            found = lo > 0 or hi < 0
            trend = "same" if not found or higher_better is None else \
                ("better" if (delta > 0) == higher_better else "worse")
        tiles.append(Tile(key, label, value, unit, format_delta(delta, how),
                          format_kpi(baseline.get(key), how), trend, interval))
    return tiles


def block_rows(view: LedgerView) -> list[dict[str, str]]:
    """The newest blocks as table rows (hashes and producer addresses shortened)."""
    return [
        {"chain": b.chain, "block": str(b.index), "hour": str(b.hour),
         "producer": f"{str(b.producer)[:10]}…" if len(str(b.producer)) > 11 else str(b.producer),
         "nonce": str(b.nonce), "hash": f"{b.hash[:10]}…", "prev": f"{b.prev_hash[:10]}…",
         "merkle root": f"{b.merkle_root[:10]}…"}
        for b in view.recent
    ]


def verify_message(report: Any) -> tuple[bool, str]:
    """(ok, text) for a ``verify_ledger()`` report (.ok, .blocks, .chain, .index, .problem);
    None means the model keeps no ledger."""
    if report is None:
        return False, "Ledger off: this model keeps no ledger to verify."
    if report.ok:
        return True, f"Ledger intact: all {report.blocks} blocks verified (hashes, links, " \
                     "Merkle roots)."
    return False, (f"Ledger broken at {report.chain} block {report.index}: {report.problem} "
                   f"({report.blocks} blocks verified before it).")


# ------------------------------------------------------------------------------ baseline
@dataclass(frozen=True, eq=False)
class Baseline:
    """A pinned run (A/B comparison): its hourly series and summary at the hour it was
    pinned, and a one-line description of how its settings differ from a later run's."""

    snap: Snapshot

    @property
    def hourly(self) -> pd.DataFrame:
        return self.snap.hourly

    @property
    def summary(self) -> dict[str, Any]:
        return self.snap.summary

    def describe(self) -> str:
        s = self.snap
        return (f"hour {s.hour} of {s.hours} · {population(s)} · "
                f"{rules(s.params, s.summary.get('seed'))}")

    def differences(self, snap: Snapshot) -> list[str]:
        """'matching: price_time → cma' for each scenario key that differs (seed included)."""
        a, b = dict(self.snap.params), dict(snap.params)
        a["seed"], b["seed"] = self.snap.summary.get("seed"), snap.summary.get("seed")
        out = []
        for key in a:
            if key in b and a[key] != b[key]:
                out.append(f"{key}: {format_number(a[key])} → {format_number(b[key])}")
        return out


# ------------------------------------------------------------------------------ grid layout
@dataclass(frozen=True, eq=False)
class GridLayout:
    """Bus positions (rows in ``grid.buses`` order), the feeder's lines and their flow
    factors, computed once per grid.

    ``ends[l]`` are the buses ``(u, v)`` of line ``l`` in the order of
    :class:`~dipi_abm.physics.flows.LineModel` (positive flow runs ``u -> v``,
    towards the substation), and ``ptdf`` its power transfer distribution
    factors (sparse): the P2P flow on the lines is ``ptdf @ net`` for the buses'
    net P2P positions, the same linear flow model the executability check uses
    (docs/model.md sections 2 and 4).
    """

    pos: NDArray[np.float64]  # (n_buses, 2)
    segments: NDArray[np.float64]  # (n_lines, 2, 2), from u to v
    spacing: float  # typical distance between neighbouring buses, layout units
    ends: NDArray[np.intp] = field(default_factory=lambda: np.zeros((0, 2), np.intp))
    ptdf: Any = None  # scipy.sparse (n_lines, n_buses), or None if it cannot be built

    def line_flows(self, net_kwh: NDArray[np.float64]) -> NDArray[np.float64]:
        """Flow on each line (kWh in the hour, + from u to v) of the buses' net positions."""
        if self.ptdf is None:
            return np.zeros(len(self.segments))
        return np.asarray(self.ptdf @ net_kwh, dtype=np.float64).ravel()


_LAYOUT_BY_GRAPH: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LAYOUT_BY_SHAPE: OrderedDict[str, GridLayout] = OrderedDict()
_LAYOUT_CACHE_SIZE = 8
_LAYOUT_LOCK = threading.Lock()


def _shape_key(grid: Grid) -> str:
    """The same buses and lines give the same key (a Reset on the same feeder reuses it)."""
    index = {b: k for k, b in enumerate(grid.buses)}
    edges = sorted((min(index[u], index[v]), max(index[u], index[v]))
                   for u, v in grid.graph.edges())
    return hashlib.sha256(repr((grid.n_buses, grid.root, edges)).encode()).hexdigest()


def feeder_layout(tree: nx.Graph, root: Any) -> dict[Any, tuple[float, float]]:
    """A single-line diagram of a radial feeder: depth to the right, laterals below.

    From each bus the branch with the most buses continues on the same row;
    every other branch opens the next free row. The IEEE 33-bus feeder comes
    out as its textbook drawing (trunk 1-18, laterals at 2, 3 and 6).
    """
    size: dict[Any, int] = {}
    children: dict[Any, list[Any]] = {}
    order = list(nx.dfs_preorder_nodes(tree, root))
    parent = {root: None}
    for u in order:
        children[u] = [v for v in tree[u] if v != parent[u]]
        for v in children[u]:
            parent[v] = u
    for u in reversed(order):
        size[u] = 1 + sum(size[v] for v in children[u])
    pos: dict[Any, tuple[float, float]] = {}
    next_row = 1
    stack: list[tuple[Any, int, int | None]] = [(root, 0, 0)]
    while stack:
        u, depth, row = stack.pop()
        if row is None:  # a side branch opens the next free row when it is reached
            row, next_row = next_row, next_row + 1
        pos[u] = (float(depth), -float(row))
        kids = sorted(children[u], key=lambda v: -size[v])
        # The heaviest branch is popped first, so the laterals far down the trunk
        # take the rows closest to it and no two branches cross.
        stack.extend((v, depth + 1, None) for v in reversed(kids[1:]))
        if kids:
            stack.append((kids[0], depth + 1, row))
    return pos


def _compute_layout(grid: Grid) -> GridLayout:
    g = nx.Graph(grid.graph)  # parallel lines drawn once
    n = grid.n_buses
    root = grid.buses[grid.root]
    cycles = g.number_of_edges() - n + 1
    if n <= 1:
        pos = {b: (0.0, 0.0) for b in grid.buses}
    elif cycles <= max(5, n // 20):
        # Radial (or nearly radial, e.g. a few closed ties): draw it as a feeder diagram.
        pos = feeder_layout(nx.bfs_tree(g, root).to_undirected(), root)
    elif n <= 400:
        pos = nx.kamada_kawai_layout(g, weight=None)
    else:
        pos = nx.spring_layout(g, seed=7, iterations=50)
    xy = np.array([pos[b] for b in grid.buses], dtype=np.float64)
    span = xy.max(axis=0) - xy.min(axis=0)
    xy = (xy - xy.min(axis=0)) / np.where(span > 0, span, 1.0)  # unit square
    index = {b: k for k, b in enumerate(grid.buses)}
    ptdf = None
    try:
        lines = LineModel.build(grid)
        ends = np.array([(index[line[0]], index[line[1]]) for line in lines.lines],
                        dtype=np.intp).reshape(-1, 2)
        ptdf = scipy.sparse.csr_matrix(lines.ptdf)
    except (ConfigError, np.linalg.LinAlgError, MemoryError):  # draw the lines, no flows
        ends = np.array([(index[u], index[v]) for u, v in g.edges()],
                        dtype=np.intp).reshape(-1, 2)
    seg = xy[ends]
    lengths = np.linalg.norm(seg[:, 0] - seg[:, 1], axis=1)
    lengths = lengths[lengths > 0]
    spacing = float(np.median(lengths)) if lengths.size else 0.05
    return GridLayout(xy, seg.reshape(-1, 2, 2), spacing, ends, ptdf)


def grid_layout(grid: Grid) -> GridLayout:
    """The layout of ``grid.graph`` (networkx), computed once per grid and cached."""
    with _LAYOUT_LOCK:
        hit = _LAYOUT_BY_GRAPH.get(grid.graph)
        if hit is not None:
            return hit
        key = _shape_key(grid)
        layout = _LAYOUT_BY_SHAPE.get(key)
        if layout is None:
            layout = _compute_layout(grid)
            _LAYOUT_BY_SHAPE[key] = layout
            while len(_LAYOUT_BY_SHAPE) > _LAYOUT_CACHE_SIZE:
                _LAYOUT_BY_SHAPE.popitem(last=False)
        else:
            _LAYOUT_BY_SHAPE.move_to_end(key)
        _LAYOUT_BY_GRAPH[grid.graph] = layout
        return layout
