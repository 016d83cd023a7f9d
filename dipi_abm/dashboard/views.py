"""What the dashboard shows, as plain Python: a snapshot of the model and its figures.

:func:`take_snapshot` copies, after each step, everything the page draws
(party columns, the hour's P2P flows per bus pair, the hourly KPIs, the
summary, the newest ledger blocks). The figures and KPI tiles are pure
functions of a :class:`Snapshot`, so they are tested without a browser and
drawn on any thread while the model is stepped on its own.

Figures are :class:`matplotlib.figure.Figure` objects (no pyplot state),
small and drawn at a low dpi: one step at 1,000 parties draws in well under
half a second.
"""

from __future__ import annotations

import hashlib
import io
import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import networkx as nx
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import NDArray

from ..plots import COLORS

if TYPE_CHECKING:
    import pandas as pd

    from ..grid import Grid
    from ..model import DIPIModel

try:  # the ledger is optional: the page says "ledger off" without it
    from ..ledger import CHAINS as LEDGER_CHAINS
except ImportError:  # pragma: no cover - before dipi_abm.ledger exists
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


@dataclass(frozen=True)
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
        hour=int(model.steps),
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
    grid = p["grid"] if p["grid"] in ("ieee33", "synthetic", "graph") else "uploaded grid"
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
    """The newest blocks as table rows (hashes shortened)."""
    return [
        {"chain": b.chain, "block": str(b.index), "hour": str(b.hour),
         "producer": str(b.producer)[:14], "nonce": str(b.nonce),
         "hash": f"{b.hash[:12]}…", "prev": f"{b.prev_hash[:12]}…",
         "merkle root": f"{b.merkle_root[:12]}…"}
        for b in view.recent
    ]


def verify_message(report: Any) -> tuple[bool, str]:
    """(ok, text) for a ``verify_ledger()`` report (.ok, .blocks, .chain, .index, .problem)."""
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
    spacing: float  # median line length in layout units


_LAYOUT_BY_GRAPH: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LAYOUT_BY_SHAPE: OrderedDict[str, GridLayout] = OrderedDict()
_LAYOUT_CACHE_SIZE = 8


def _shape_key(grid: Grid) -> str:
    """The same buses and lines give the same key (Reset on a built-in feeder reuses it)."""
    index = {b: k for k, b in enumerate(grid.buses)}
    edges = sorted((min(index[u], index[v]), max(index[u], index[v]))
                   for u, v in grid.graph.edges())
    h = hashlib.sha256(repr((grid.n_buses, grid.root, edges)).encode())
    return h.hexdigest()


def _compute_layout(grid: Grid) -> GridLayout:
    g = nx.Graph(grid.graph)  # plain graph: parallel lines drawn once
    n = grid.n_buses
    if n <= 1:
        pos = {b: (0.0, 0.0) for b in grid.buses}
    elif n <= 400:
        # Kamada-Kawai on hop distance reads like a feeder diagram for radial grids.
        pos = nx.kamada_kawai_layout(g, weight=None)
    else:
        start = nx.kamada_kawai_layout(g, weight=None) if n <= 1200 else None
        pos = nx.spring_layout(g, pos=start, seed=7, iterations=30 if start else 60)
    xy = np.array([pos[b] for b in grid.buses], dtype=np.float64)
    index = {b: k for k, b in enumerate(grid.buses)}
    seg = np.array([[xy[index[u]], xy[index[v]]] for u, v in g.edges()], dtype=np.float64)
    seg = seg.reshape(-1, 2, 2)
    lengths = np.linalg.norm(seg[:, 0] - seg[:, 1], axis=1) if len(seg) else np.ones(1)
    spacing = float(np.median(lengths)) if lengths.size and np.median(lengths) > 0 else 0.05
    return GridLayout(xy, seg, spacing)


def grid_layout(grid: Grid) -> GridLayout:
    """The networkx layout of ``grid.graph``, computed once per grid and cached."""
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
    jitter = np.random.default_rng(0).normal(0.0, 0.18 * layout.spacing, (bus.size, 2))
    return layout.pos[bus] + jitter


# ------------------------------------------------------------------------------ figures
def credit_norm(credit: NDArray[np.float64]) -> Normalize:
    """Credit colour scale: 90-100 while credits stay there, widened in steps of 10."""
    low = float(credit.min()) if credit.size else 100.0
    vmin = min(90.0, 10.0 * math.floor(low / 10.0))
    return Normalize(vmin=max(0.0, min(vmin, 90.0)), vmax=100.0)


def _style(ax: Any) -> None:
    ax.grid(alpha=0.3, linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)


def network_figure(snap: Snapshot) -> Figure:
    """The grid as a network: lines, buses, parties by credit and size, this hour's P2P flows."""
    layout = grid_layout(snap.grid)
    fig = Figure(figsize=(7.2, 5.4), dpi=DPI)
    ax = fig.subplots()
    ax.add_collection(LineCollection(layout.segments, colors="#b8b8b8", linewidths=1.2,
                                     zorder=1))
    if snap.flow_kwh.size:
        seg = layout.pos[snap.flow_buses]
        width = 0.6 + 5.0 * snap.flow_kwh / snap.flow_kwh.max()
        ax.add_collection(LineCollection(seg, colors=COLORS["p2p"], linewidths=width,
                                         alpha=0.55, zorder=2))
    ax.scatter(layout.pos[:, 0], layout.pos[:, 1], s=6, c="#8c8c8c", zorder=3)
    root = layout.pos[snap.grid.root]
    ax.scatter([root[0]], [root[1]], s=70, marker="s", c="black", zorder=5)
    xy = party_positions(layout, snap.bus)
    norm = credit_norm(snap.credit)
    size = 6.0 + 110.0 * np.sqrt(snap.size_kw / max(float(snap.size_kw.max()), 1e-9))
    sc = None
    for kind, marker in ((USER_KIND, "o"), (DPGC_KIND, "^")):
        m = snap.kind == kind
        sc = ax.scatter(xy[m, 0], xy[m, 1], s=size[m], c=snap.credit[m], cmap=CREDIT_CMAP,
                        norm=norm, marker=marker, edgecolors="#333333", linewidths=0.4,
                        alpha=0.9, zorder=4)
    cbar = fig.colorbar(sc, ax=ax, shrink=0.8, pad=0.01,
                        extend="min" if norm.vmin > 0 else "neither")
    cbar.set_label("party credit (0–100)", fontsize=9)
    cbar.ax.tick_params(labelsize=8)
    handles = [
        Line2D([], [], marker="^", ls="", mfc="#dddddd", mec="#333333", ms=8, label="DPGC"),
        Line2D([], [], marker="o", ls="", mfc="#dddddd", mec="#333333", ms=6, label="user"),
        Line2D([], [], marker="s", ls="", color="black", ms=6, label="substation"),
        Line2D([], [], color=COLORS["p2p"], lw=3, alpha=0.7, label="P2P flow (width ∝ kWh)"),
    ]
    ax.legend(handles=handles, loc="lower left", fontsize=8, frameon=True, framealpha=0.8)
    total = float(snap.flow_kwh.sum()) + snap.local_kwh
    ax.set_title(f"Hour {snap.hour}: {snap.n_contracts} P2P contracts, {total:,.0f} kWh "
                 f"({snap.local_kwh:,.0f} kWh within a bus); size ∝ √kW",
                 fontsize=10)
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    ax.set_axis_off()
    return fig


def timeseries_figure(snap: Snapshot) -> Figure:
    """Breaches, credit, P2P vs grid volume and prices per hour (2 x 2 panels)."""
    h = snap.hourly
    fig = Figure(figsize=(10.0, 5.2), dpi=DPI)
    (a, b), (c, d) = fig.subplots(2, 2, sharex=True)
    x = h["hour"].to_numpy()
    kw = {"lw": 1.3, "drawstyle": "steps-mid"}
    a.plot(x, h["breaches_dpgc"], color=COLORS["dpgc"], label="DPGCs", **kw)
    a.plot(x, h["breaches_user"], color=COLORS["user"], label="users", **kw)
    a.set_title("Breaches per hour (parties short of their contracts)", fontsize=10)
    a.set_ylabel("breaches", fontsize=9)
    b.plot(x, h["mean_credit_dpgc"], color=COLORS["dpgc"], label="DPGCs", lw=1.5)
    b.plot(x, h["mean_credit_user"], color=COLORS["user"], label="users", lw=1.5)
    b.set_title("Mean credit by party type", fontsize=10)
    b.set_ylabel("credit (0–100)", fontsize=9)
    c.plot(x, h["p2p_volume_kwh"] / 1e3, color=COLORS["p2p"], label="P2P agreed", **kw)
    c.plot(x, h["grid_purchase_kwh"] / 1e3, color=COLORS["grid"], label="bought from grid", **kw)
    c.plot(x, h["grid_sale_kwh"] / 1e3, color=COLORS["sale"], label="sold to grid", **kw)
    c.set_title("Energy per hour: P2P vs grid", fontsize=10)
    c.set_ylabel("MWh", fontsize=9)
    d.plot(x, h["retail_price"], color="#555555", ls="--", lw=1, label="retail R")
    d.plot(x, h["feed_in_price"], color="#999999", ls=":", lw=1.2, label="feed-in F")
    d.plot(x, h["price_mean"], color=COLORS["p2p"], lw=1.5, label="P2P mean")
    d.set_title("Prices", fontsize=10)
    d.set_ylabel("yuan/kWh", fontsize=9)
    for ax in (a, b, c, d):
        _style(ax)
        if len(x):
            ax.legend(fontsize=7, frameon=False)
    a.set_ylim(bottom=0)
    c.set_ylim(bottom=0)
    for ax in (c, d):
        ax.set_xlabel("hour", fontsize=9)
    if len(x) == 0:
        a.text(0.5, 0.5, "press Step or Play", transform=a.transAxes, ha="center",
               color="#777777")
    return fig


def credit_figure(snap: Snapshot) -> Figure:
    """Credit histogram by party type, and blocks won against credit per miner node."""
    fig = Figure(figsize=(10.0, 3.3), dpi=DPI)
    a, b = fig.subplots(1, 2)
    norm = credit_norm(snap.credit)
    bins = np.linspace(norm.vmin, 100.0, 26)
    for kind, label in ((DPGC_KIND, "DPGCs"), (USER_KIND, "users")):
        cr = np.clip(snap.credit[snap.kind == kind], norm.vmin, 100.0)
        a.hist(cr, bins=bins, histtype="stepfilled", alpha=0.45, label=label,
               color=COLORS["dpgc" if kind == DPGC_KIND else "user"])
    a.set_title("Credit distribution now", fontsize=10)
    a.set_xlabel("credit" + (f" (below {norm.vmin:g} shown at {norm.vmin:g})"
                             if norm.vmin > 0 else ""), fontsize=9)
    a.set_ylabel("parties", fontsize=9)
    a.legend(fontsize=8, frameon=False)

    n_party = snap.n_parties
    won, credit = snap.blocks_won, snap.node_credit
    for mask, label, color, marker in (
        (np.r_[snap.kind == DPGC_KIND, np.zeros(won.size - n_party, bool)], "DPGC nodes",
         COLORS["dpgc"], "^"),
        (np.r_[snap.kind == USER_KIND, np.zeros(won.size - n_party, bool)], "user nodes",
         COLORS["user"], "o"),
        (np.r_[np.zeros(n_party, bool), np.ones(won.size - n_party, bool)],
         "stand-alone miners", "black", "x"),
    ):
        if mask.any():
            b.scatter(credit[mask], won[mask], s=14, alpha=0.6, c=color, marker=marker,
                      label=label, linewidths=0.8)
    s = snap.summary
    b.set_title(f"Block producers vs credit: {int(won.sum())} blocks, "
                f"Gini {format_kpi(s.get('blocks_gini'), 'ratio')}, "
                f"Nakamoto {format_kpi(s.get('blocks_nakamoto'), 'int')}", fontsize=10)
    b.set_xlabel("node credit (stand-alone miners: 0)", fontsize=9)
    b.set_ylabel("blocks won", fontsize=9)
    b.set_ylim(bottom=-0.3)
    b.legend(fontsize=8, frameon=False, loc="upper left")
    for ax in (a, b):
        _style(ax)
    return fig


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (what the page shows)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


FIGURES = {"network": network_figure, "timeseries": timeseries_figure,
           "credit": credit_figure}


def render_all(snap: Snapshot) -> dict[str, bytes]:
    """Every figure of the page as PNG bytes (used to time a step's drawing)."""
    return {name: png(make(snap)) for name, make in FIGURES.items()}
