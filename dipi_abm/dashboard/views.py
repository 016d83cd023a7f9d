"""What the dashboard shows, as plain Python: a snapshot of the model and its figures.

:func:`take_snapshot` copies, after each step, everything the page draws
(party columns, the hour's P2P flows per bus pair, the hourly KPIs, the
summary, the newest ledger blocks). Text, KPI tiles and figures are drawn
from a :class:`Snapshot` only, so they are tested without a browser and
drawn on any thread while the model is stepped on its own.

Figures are :class:`matplotlib.figure.Figure` objects (no pyplot state) kept
per browser session (:class:`FigureView`): built once per model, then only
their data artists are redrawn over a cached frame. One step at 1,000
parties is drawn in about 50 ms.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import networkx as nx
import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from numpy.typing import NDArray

from ..results.plots import COLORS

if TYPE_CHECKING:
    import pandas as pd

    from ..model import DIPIModel
    from ..physics.grid import Grid

try:  # the ledger is optional: the page says "ledger off" without it
    from ..ledger.store import CHAINS as LEDGER_CHAINS
except ImportError:  # pragma: no cover - before dipi_abm.ledger.store exists
    LEDGER_CHAINS = ("DU1", "JY1", "LH1")

DPGC_KIND, USER_KIND = 0, 1
CREDIT_CMAP = mpl.colormaps["RdYlBu"]
DPI = 80
RECENT_BLOCKS = 6

#: Hourly KPI columns the time series draw (MODEL.md section 9).
SERIES = ("breaches_dpgc", "breaches_user", "mean_credit_dpgc", "mean_credit_user",
          "p2p_volume_kwh", "grid_purchase_kwh", "grid_sale_kwh", "price_mean",
          "retail_price", "feed_in_price")

#: The summary KPIs shown as numbers: key, label, format, unit/explanation.
KPI_TILES: tuple[tuple[str, str, str, str], ...] = (
    ("breach_rate", "Breach rate", "pct", "of committed contract sides"),
    ("p2p_volume_kwh", "P2P traded", "mwh", "MWh agreed peer to peer"),
    ("grid_purchase_kwh", "Bought from grid", "mwh", "MWh at retail price"),
    ("transaction_efficiency", "Transaction efficiency", "pct",
     "P2P / min(offered, demanded)"),
    ("mean_credit_dpgc", "Mean credit, DPGCs", "credit", "0–100"),
    ("mean_credit_user", "Mean credit, users", "credit", "0–100"),
    ("price_std", "Price spread", "price", "yuan/kWh, sd of contract prices"),
    ("blocks_gini", "Block Gini", "ratio", "0 equal … 1 one producer"),
    ("blocks_nakamoto", "Nakamoto coefficient", "int", "producers holding > 50 % of blocks"),
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


@dataclass(frozen=True, eq=False)  # compared by identity: one snapshot per hour drawn
class Snapshot:
    """Everything the page draws for one hour of one model (copied, read-only)."""

    build: int  # which model this is (changes on every Reset)
    hour: int
    hours: int
    running: bool
    hour_of_day: int
    params: dict[str, Any]
    n_buses: int
    grid: Grid
    kind: NDArray[np.int8]
    bus: NDArray[np.intp]
    size_kw: NDArray[np.float64]  # DPGC capacity, user mean load
    credit: NDArray[np.float64]
    flow_buses: NDArray[np.intp]  # (k, 2) seller bus, buyer bus; one row per bus pair
    flow_kwh: NDArray[np.float64]  # agreed volume per bus pair this hour
    local_kwh: float  # agreed volume between parties on the same bus
    n_contracts: int
    blocks_won: NDArray[np.int64]  # per miner node: parties first, then stand-alone miners
    node_credit: NDArray[np.float64]
    hourly: pd.DataFrame
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


def flows_by_bus_pair(
    seller_bus: NDArray[np.intp], buyer_bus: NDArray[np.intp], volume: NDArray[np.float64]
) -> tuple[NDArray[np.intp], NDArray[np.float64], float]:
    """Sum contract volumes per (seller bus, buyer bus); same-bus volume apart.

    Returns the pairs ``(k, 2)``, their volumes and the volume traded within a bus.
    Pairs are unordered for drawing: A->B and B->A add up on one line.
    """
    same = seller_bus == buyer_bus
    local = float(volume[same].sum())
    a = np.minimum(seller_bus, buyer_bus)[~same]
    b = np.maximum(seller_bus, buyer_bus)[~same]
    if a.size == 0:
        return np.zeros((0, 2), np.intp), np.zeros(0), local
    pairs, inverse = np.unique(np.stack([a, b], axis=1), axis=0, return_inverse=True)
    kwh = np.bincount(inverse.ravel(), volume[~same], len(pairs))
    return pairs.astype(np.intp), kwh, local


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
    """Copy what the page draws from ``model`` (call it on the thread that steps it)."""
    s = model.state
    kind = s.kind.copy()
    size = np.where(kind == DPGC_KIND, s.capacity_kw, s.mean_load_kw)
    c = model.contracts
    pairs, kwh, local = flows_by_bus_pair(s.bus[c.seller], s.bus[c.buyer], c.volume)
    credit = s.credit.credit.copy()
    n_miners = model.node_blocks_won.size - credit.size
    hourly = model.hourly_dataframe()
    return Snapshot(
        build=build,
        hour=int(model.hour),
        hours=int(model.params.hours),
        running=bool(model.running),
        hour_of_day=int(model.hour_of_day),
        params=model.params.to_dict(),
        n_buses=int(model.grid.n_buses),
        grid=model.grid,
        kind=kind,
        bus=s.bus.copy(),
        size_kw=size,
        credit=credit,
        flow_buses=pairs,
        flow_kwh=kwh,
        local_kwh=local,
        n_contracts=int(c.size),
        blocks_won=model.node_blocks_won.copy(),
        node_credit=np.concatenate([credit, np.zeros(n_miners)]),
        hourly=hourly[["hour", *[k for k in SERIES if k in hourly]]],
        summary=model.summary(),
        ledger=ledger_view(model),
    )


# ------------------------------------------------------------------------------ text
def headline(snap: Snapshot) -> str:
    """One line: hour, population, grid and the rules in force."""
    p = snap.params
    grid = p["grid"] if p["grid"] in ("ieee33", "synthetic", "graph") else \
        f"file {PurePath(str(p['grid'])).name}"
    return (f"{snap.n_parties} parties ({snap.n_dpgc} DPGCs + {snap.n_users} users) on "
            f"{snap.n_buses} buses ({grid}) · matching {p['matching']} · credit "
            f"{p['credit_rule']} (λ = {format_number(p['natural_factor'])}) · consensus "
            f"{p['consensus']} (τ = {format_number(p['poca_tau'])}) · seed "
            f"{snap.summary['seed']}")


def hour_label(snap: Snapshot) -> str:
    done = "" if snap.running else " (run complete)"
    return f"Hour {snap.hour} of {snap.hours}{done}"


def format_number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def format_kpi(value: Any, how: str) -> str:
    """A summary KPI as the tile shows it ('–' for a missing or undefined value)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if how == "pct":
        return f"{100 * value:.1f} %"
    if how == "mwh":
        return f"{value / 1e3:,.1f}"
    if how == "credit":
        return f"{value:.2f}"
    if how == "price":
        return f"{value:.4f}"
    if how == "ratio":
        return f"{value:.2f}"
    if how == "int":
        return f"{int(value):d}"
    return str(value)


def kpi_tiles(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, unit) for each summary KPI the model reports."""
    return [(label, format_kpi(summary.get(key), how), unit)
            for key, label, how, unit in KPI_TILES if key in summary]


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


# ------------------------------------------------------------------------------ grid layout
@dataclass(frozen=True)
class GridLayout:
    """Bus positions (rows in ``grid.buses`` order) and line segments, computed once per grid."""

    pos: NDArray[np.float64]  # (n_buses, 2)
    segments: NDArray[np.float64]  # (n_lines, 2, 2)
    spacing: float  # typical distance between neighbouring buses, layout units


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
    seg = np.array([[xy[index[u]], xy[index[v]]] for u, v in g.edges()],
                   dtype=np.float64).reshape(-1, 2, 2)
    lengths = np.linalg.norm(seg[:, 0] - seg[:, 1], axis=1)
    lengths = lengths[lengths > 0]
    spacing = float(np.median(lengths)) if lengths.size else 0.05
    return GridLayout(xy, seg, spacing)


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


def party_positions(layout: GridLayout, bus: NDArray[np.intp]) -> NDArray[np.float64]:
    """Parties on their bus with a small fixed jitter (the same every hour)."""
    jitter = np.random.default_rng(0).normal(0.0, 0.16 * layout.spacing, (bus.size, 2))
    return layout.pos[bus] + jitter


# ------------------------------------------------------------------------------ figures
def credit_limits(credit: NDArray[np.float64]) -> tuple[float, float]:
    """The credit axis and colour scale: [lo, 100], lo = 90 while nearly all credit is
    above it, lowered in steps of 5 to keep 98 % of parties in view (outliers sit at lo)."""
    low = float(np.percentile(credit, 2)) if credit.size else 100.0
    return max(0.0, min(90.0, 5.0 * math.floor(low / 5.0))), 100.0


def nice_ceil(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= x (x > 0)."""
    if x <= 0:
        return 0.0
    e = 10.0 ** math.floor(math.log10(x))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * e >= x * (1 - 1e-12):
            return m * e
    return 10.0 * e  # pragma: no cover - unreachable


def grow_limits(current: tuple[float, float] | None, lo: float, hi: float, *,
                floor: float | None = None,
                ceiling: float | None = None) -> tuple[float, float]:
    """Axis limits that only grow, in generous steps, so the static frame of a figure
    is redrawn a handful of times per run rather than every hour.

    Keeps ``current`` while [lo, hi] fits in it; otherwise widens it (never
    narrows) to round numbers with head room; ``floor``/``ceiling`` pin the
    ends (e.g. 0 breaches, credit 100).
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return current or (0.0, 1.0)
    if current is not None and current[0] <= lo and hi <= current[1]:
        return current
    span = max(hi - lo, abs(hi) * 0.02, 1e-3)
    new_hi = hi + 0.6 * span
    new_lo = lo - 0.3 * span
    if floor is not None:
        new_lo = floor if lo >= floor else lo
        new_hi = floor + nice_ceil(new_hi - floor) if new_hi > floor else floor + 1.0
    if ceiling is not None:
        new_hi = min(new_hi, ceiling)
    if current is not None:
        new_lo, new_hi = min(new_lo, current[0]), max(new_hi, current[1])
    return new_lo, new_hi


def _style(ax: Any) -> None:
    ax.grid(alpha=0.3, linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))


class FigureView:
    """One figure of the page, built once per model and redrawn cheaply every hour.

    The static frame (axes, ticks, labels, legend, grid lines) is drawn once and
    kept as a bitmap; each hour only the *animated* artists (data, changing
    text) are drawn over it, then the bitmap is PNG-encoded. A view calls
    :meth:`invalidate` when the frame itself changes (axis limits grew).
    ``render`` is thread-safe and returns PNG bytes.
    """

    size: tuple[float, float] = (6.0, 4.0)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._background: Any = None
        self.fig: Figure | None = None
        self.animated: list[Any] = []

    def render(self, snap: Snapshot) -> bytes:
        with self._lock:
            key = (snap.build, id(snap.grid))
            if self.fig is None or key != self._key:
                self.fig = Figure(figsize=self.size, dpi=DPI)
                FigureCanvasAgg(self.fig)
                self.animated = []
                self._background = None
                self.setup(self.fig, snap)
                for artist in self.animated:
                    artist.set_animated(True)
                self._key = key
            self.update(snap)
            return self._draw()

    def animate(self, artist: Any) -> Any:
        """Mark an artist as redrawn every hour; returns it."""
        self.animated.append(artist)
        return artist

    def invalidate(self) -> None:
        self._background = None

    def _draw(self) -> bytes:
        canvas = self.fig.canvas
        if self._background is None:
            canvas.draw()  # animated artists are skipped
            self._background = canvas.copy_from_bbox(self.fig.bbox)
        else:
            canvas.restore_region(self._background)
        for artist in self.animated:
            self.fig.draw_artist(artist)
        width, height = canvas.get_width_height()
        image = PIL.Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw",
                                     "RGBA", 0, 1)
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def setup(self, fig: Figure, snap: Snapshot) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, snap: Snapshot) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class NetworkView(FigureView):
    """The grid: lines, buses, parties coloured by credit and sized by kW, this hour's flows."""

    size = (7.6, 5.0)

    def setup(self, fig: Figure, snap: Snapshot) -> None:
        layout = self.layout = grid_layout(snap.grid)
        fig.subplots_adjust(left=0.01, right=0.89, bottom=0.13, top=0.93)
        ax = self.ax = fig.add_subplot()
        ax.add_collection(LineCollection(layout.segments, colors="#bdbdbd", linewidths=1.4,
                                         zorder=1))
        self.flows = self.animate(LineCollection([], colors=COLORS["p2p"], zorder=2,
                                                 capstyle="round"))
        ax.add_collection(self.flows)
        ax.scatter(layout.pos[:, 0], layout.pos[:, 1], s=7, c="#8c8c8c", zorder=3)
        root = layout.pos[snap.grid.root]
        ax.scatter([root[0]], [root[1]], s=80, marker="s", c="black", zorder=5)
        xy = party_positions(layout, snap.bus)
        size = 5.0 + 100.0 * np.sqrt(snap.size_kw / max(float(snap.size_kw.max()), 1e-9))
        self.norm = Normalize(*credit_limits(snap.credit))
        self.masks = [snap.kind == USER_KIND, snap.kind == DPGC_KIND]
        self.parties = [
            self.animate(ax.scatter(xy[m, 0], xy[m, 1], s=size[m], c=snap.credit[m],
                                    cmap=CREDIT_CMAP, norm=self.norm, marker=marker,
                                    edgecolors="#333333", linewidths=0.35, alpha=0.9,
                                    zorder=4))
            for m, marker in zip(self.masks, ("o", "^"), strict=True)
        ]
        cax = fig.add_axes((0.905, 0.17, 0.018, 0.7))
        self.cbar = fig.colorbar(self.parties[0], cax=cax, extend="min")
        self.cbar.set_label("party credit (0–100)", fontsize=9)
        self.cbar.locator = MaxNLocator(nbins=5, integer=True)
        cax.tick_params(labelsize=8)
        handles = [
            Line2D([], [], marker="^", ls="", mfc="#dddddd", mec="#333333", ms=8,
                   label="DPGC (size ∝ √capacity)"),
            Line2D([], [], marker="o", ls="", mfc="#dddddd", mec="#333333", ms=6,
                   label="user (size ∝ √mean load)"),
            Line2D([], [], marker="s", ls="", color="black", ms=6, label="substation"),
            Line2D([], [], color="#bdbdbd", lw=1.5, label="line"),
            Line2D([], [], color=COLORS["p2p"], lw=3, alpha=0.7,
                   label="P2P trade this hour (width ∝ kWh)"),
        ]
        fig.legend(handles=handles, loc="lower center", fontsize=7.5, frameon=False,
                   ncols=3, columnspacing=1.2, handletextpad=0.4)
        self.title = self.animate(fig.text(0.01, 0.965, "", fontsize=10, va="center"))
        pts = np.vstack([layout.pos, xy])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.03 * float((hi - lo).max() or 1.0)
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(lo[1] - pad, hi[1] + pad)
        ax.set_axis_off()

    def update(self, snap: Snapshot) -> None:
        limits = credit_limits(snap.credit)
        if limits != (self.norm.vmin, self.norm.vmax):  # rare: credit fell below the scale
            self.norm = Normalize(*limits)
            for sc in self.parties:
                sc.set_norm(self.norm)
            self.cbar.update_normal(self.parties[0])
            self.cbar.locator = MaxNLocator(nbins=5, integer=True)
            self.invalidate()
        for sc, m in zip(self.parties, self.masks, strict=True):
            sc.set_array(snap.credit[m])
        if snap.flow_kwh.size:
            share = snap.flow_kwh / snap.flow_kwh.max()
            order = np.argsort(share)  # the biggest flows on top
            colors = np.tile(mpl.colors.to_rgba(COLORS["p2p"]), (share.size, 1))
            colors[:, 3] = 0.15 + 0.6 * share[order]
            self.flows.set_segments(self.layout.pos[snap.flow_buses[order]])
            self.flows.set_linewidths(0.4 + 5.0 * share[order])
            self.flows.set_colors(colors)
        else:
            self.flows.set_segments([])
        total = float(snap.flow_kwh.sum()) + snap.local_kwh
        self.title.set_text(f"Hour {snap.hour}: {snap.n_contracts} P2P contracts, "
                            f"{total:,.0f} kWh agreed ({snap.local_kwh:,.0f} kWh within a bus)")


class SeriesView(FigureView):
    """Breaches, credit, P2P vs grid volume and prices per hour (2 x 2 panels)."""

    size = (10.0, 5.0)
    #: title, y label, y floor, y ceiling, legend position, series (key, label, colour, style)
    PANELS = (
        ("Breaches per hour (parties short of their contracts)", "breaches", 0.0, None,
         "upper left",
         (("breaches_dpgc", "DPGCs", COLORS["dpgc"], "-"),
          ("breaches_user", "users", COLORS["user"], "-"))),
        ("Mean credit by party type", "credit (0–100)", None, 100.0, "lower left",
         (("mean_credit_dpgc", "DPGCs", COLORS["dpgc"], "-"),
          ("mean_credit_user", "users", COLORS["user"], "-"))),
        ("Energy per hour: P2P vs grid", "MWh", 0.0, None, "upper left",
         (("p2p_volume_kwh", "P2P agreed", COLORS["p2p"], "-"),
          ("grid_purchase_kwh", "bought from grid", COLORS["grid"], "-"),
          ("grid_sale_kwh", "sold to grid", COLORS["sale"], "-"))),
        ("Prices", "yuan/kWh", None, None, "upper center",
         (("retail_price", "retail R", "#555555", "--"),
          ("feed_in_price", "feed-in F", "#999999", ":"),
          ("price_mean", "P2P mean (volume-weighted)", COLORS["p2p"], "-"))),
    )
    PRICES = 3
    MWH = ("p2p_volume_kwh", "grid_purchase_kwh", "grid_sale_kwh")
    FIRST_WINDOW_H = 48

    def setup(self, fig: Figure, snap: Snapshot) -> None:
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.09, top=0.94, hspace=0.34,
                            wspace=0.14)
        self.axes = fig.subplots(2, 2, sharex=True).ravel()
        self.lines: list[list[tuple[str, Line2D]]] = []
        self.ylim: list[tuple[float, float] | None] = [None] * 4
        for ax, (title, ylabel, _, _, where, series) in zip(self.axes, self.PANELS,
                                                             strict=True):
            lines = []
            for key, label, color, ls in series:
                (line,) = ax.plot([], [], color=color, ls=ls, lw=1.4, label=label)
                lines.append((key, self.animate(line)))
            self.lines.append(lines)
            ax.set_title(title, fontsize=10)
            ax.set_ylabel(ylabel, fontsize=9)
            ax.legend(fontsize=7, loc=where, frameon=False, ncols=len(series))
            _style(ax)
        # Every price lies between feed-in F and the highest retail price: fixed limits.
        p = snap.params
        f = p["feed_in_yuan_per_kwh"]
        r = max(p["retail_yuan_per_kwh"],
                p["tou_peak_yuan_per_kwh"] if p["tariff"] == "tou" else 0.0)
        gap = max(r - f, 0.01)
        self.ylim[self.PRICES] = (f - 0.3 * gap, r + 0.45 * gap)
        self.axes[self.PRICES].set_ylim(*self.ylim[self.PRICES])
        for ax in self.axes[2:]:
            ax.set_xlabel("hour", fontsize=9)
        self.axes[0].yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        # Until the first hour: plausible empty frames (the first data sets the limits).
        for ax, limits in zip(self.axes[:3], ((0, 10), (90, 100), (0, 1)), strict=True):
            ax.set_ylim(*limits)
        self.xmax = float(min(snap.hours, self.FIRST_WINDOW_H))
        self.axes[0].set_xlim(0, self.xmax)
        self.empty = self.animate(self.axes[0].text(0.5, 0.45, "press Step or Play",
                                                    transform=self.axes[0].transAxes,
                                                    ha="center", color="#777777"))

    def update(self, snap: Snapshot) -> None:
        h = snap.hourly
        x = h["hour"].to_numpy(np.float64)
        self.empty.set_visible(len(x) == 0)
        if len(x) and x[-1] > self.xmax:  # double the window, up to the run's length
            while self.xmax < x[-1]:
                self.xmax *= 2
            self.xmax = float(max(min(self.xmax, snap.hours), x[-1]))
            self.axes[0].set_xlim(0, self.xmax)
            self.invalidate()
        for i, (ax, lines) in enumerate(zip(self.axes, self.lines, strict=True)):
            ys = []
            for key, line in lines:
                if key not in h:  # a KPI this model does not report
                    continue
                y = h[key].to_numpy(np.float64)
                y = y / 1e3 if key in self.MWH else y
                line.set_data(x, y)
                ys.append(y[np.isfinite(y)])
            ys = np.concatenate(ys) if ys else np.zeros(0)
            if ys.size == 0:
                continue
            floor, ceiling = self.PANELS[i][2], self.PANELS[i][3]
            limits = grow_limits(self.ylim[i], float(ys.min()), float(ys.max()),
                                 floor=floor, ceiling=ceiling)
            if limits != self.ylim[i]:
                self.ylim[i] = limits
                ax.set_ylim(*limits)
                self.invalidate()


class CreditView(FigureView):
    """Credit histogram by party type, and blocks won against credit per miner node."""

    size = (10.0, 3.3)
    BINS = 20

    def setup(self, fig: Figure, snap: Snapshot) -> None:
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.9, wspace=0.16)
        a, b = self.axes = fig.subplots(1, 2)
        self.lo = None
        self.hist_top: tuple[float, float] | None = None
        self.blocks_top: tuple[float, float] | None = None
        self.hists = [
            self.animate(a.stairs(np.zeros(self.BINS), np.linspace(90, 100, self.BINS + 1),
                                  fill=True, alpha=0.45, color=COLORS[name], label=label))
            for name, label in (("dpgc", "DPGCs"), ("user", "users"))
        ]
        a.set_title("Credit distribution now, by party type", fontsize=10)
        a.set_ylabel("share of the type's parties, %", fontsize=9)
        self.hist_xlabel = a.set_xlabel("credit", fontsize=9)
        a.legend(fontsize=8, frameon=False, loc="upper left")
        n_party, n_nodes = snap.n_parties, snap.blocks_won.size
        kind = np.r_[snap.kind, np.full(n_nodes - n_party, -1)]
        self.node_masks = [kind == DPGC_KIND, kind == USER_KIND, kind == -1]
        self.points = []
        for mask, label, color, marker in zip(
            self.node_masks, ("DPGC nodes", "user nodes", "stand-alone miners"),
            (COLORS["dpgc"], COLORS["user"], "black"), ("^", "o", "x"), strict=True,
        ):
            sc = b.scatter(np.zeros(int(mask.sum())), np.zeros(int(mask.sum())), s=14,
                           alpha=0.6, c=color, marker=marker, label=label, linewidths=0.8)
            self.points.append(self.animate(sc))
        b.set_title("Block producers vs credit", fontsize=10)
        self.blocks_note = self.animate(b.text(0.99, 0.97, "", transform=b.transAxes,
                                               ha="right", va="top", fontsize=8,
                                               color="#333333"))
        b.set_xlabel("node credit now (stand-alone miners: 0)", fontsize=9)
        b.set_ylabel("blocks won so far", fontsize=9)
        b.legend(handles=[p for p, m in zip(self.points, self.node_masks, strict=True)
                          if m.any()], fontsize=8, frameon=False, loc="upper left")
        for ax in self.axes:
            _style(ax)
        b.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))

    def update(self, snap: Snapshot) -> None:
        a, b = self.axes
        lo, _ = credit_limits(snap.credit)
        edges = np.linspace(lo, 100.0, self.BINS + 1)
        top = 1.0
        for hist, kind in zip(self.hists, (DPGC_KIND, USER_KIND), strict=True):
            credit = snap.credit[snap.kind == kind]
            counts, _ = np.histogram(np.clip(credit, lo, 100.0), bins=edges)
            share = 100.0 * counts / max(credit.size, 1)
            hist.set_data(share, edges)
            top = max(top, float(share.max()) if share.size else 0.0)
        if lo != self.lo:
            self.lo = lo
            a.set_xlim(lo, 100.0)
            self.hist_xlabel.set_text("credit" + (f" (parties below {lo:g} counted at {lo:g})"
                                                  if lo > 0 else ""))
            miners = bool(self.node_masks[2].any())
            b.set_xlim((0.0 if miners else lo) - 1.0, 101.0)
            self.invalidate()
        won, credit = snap.blocks_won, snap.node_credit
        for limits_name, ax, value, ceiling in (
            ("hist_top", a, top, 100.0),
            ("blocks_top", b, float(won.max(initial=0)) + 1.0, None),
        ):
            current = getattr(self, limits_name)
            new = grow_limits(current, 0.0, value, floor=0.0, ceiling=ceiling)
            if new != current:
                setattr(self, limits_name, new)
                ax.set_ylim(0.0 if ax is a else -0.3, new[1])
                self.invalidate()
        for sc, mask in zip(self.points, self.node_masks, strict=True):
            sc.set_offsets(np.column_stack([np.maximum(credit[mask], b.get_xlim()[0] + 1.0),
                                            won[mask]]))
        s = snap.summary
        self.blocks_note.set_text(
            f"{int(won.sum())} blocks · Gini {format_kpi(s.get('blocks_gini'), 'ratio')}"
            f" · Nakamoto {format_kpi(s.get('blocks_nakamoto'), 'int')}")


VIEWS = {"network": NetworkView, "timeseries": SeriesView, "credit": CreditView}


def make_views() -> dict[str, FigureView]:
    """One set of figure views (a browser session keeps its own)."""
    return {name: cls() for name, cls in VIEWS.items()}


def render_all(snap: Snapshot, views: dict[str, FigureView] | None = None) -> dict[str, bytes]:
    """Every figure of the page as PNG bytes (what one step costs to draw)."""
    views = make_views() if views is None else views
    return {name: view.render(snap) for name, view in views.items()}
