"""The dashboard's figures, drawn from a :class:`~dipi_abm.dashboard.views.Snapshot`.

Figures are :class:`matplotlib.figure.Figure` objects (no pyplot state) kept
per browser session (:class:`FigureView`): built once per model (and per
baseline and zoom), then only their data artists are redrawn over a cached
frame. :func:`figure_file` draws a figure afresh for a download, as PNG or
SVG.

- :class:`GridView`: the feeder with the hour aggregated per bus (net P2P
  position, volume traded within the bus, credit bands, DPGCs), and the P2P
  flow on each line from the linear flow model (docs/model.md sections 2 and 4),
  width proportional to kWh. Its cost does not grow with the number of
  parties.
- :class:`CreditView`: credit distribution by party type (and the
  baseline's), blocks won against credit per miner node.
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from numpy.typing import NDArray

from ..results.plots import COLORS
from .views import (
    CREDIT_BAND_LABELS,
    DPGC_KIND,
    USER_KIND,
    Baseline,
    Snapshot,
    format_kpi,
    grid_layout,
    time_label,
)

DPI = 80
CREDIT_CMAP = mpl.colormaps["RdYlBu"]
NET_CMAP = mpl.colormaps["PiYG"]
BAND_COLORS = tuple(CREDIT_CMAP(x) for x in (0.05, 0.3, 0.62, 0.92))
DPGC_MARK = "#fdb72b"
#: Zoom factors of the grid view.
ZOOMS = (1, 2, 4, 8)
#: At most this many bus labels are drawn in the grid view (every k-th bus beyond).
MAX_LABELS = 60


@dataclass(frozen=True)
class ViewOptions:
    """What besides the snapshot shapes a figure: the pinned baseline and the grid's zoom."""

    baseline: Baseline | None = None
    zoom: int = 1
    centre: int | None = None  # bus row the zoomed grid view centres on (None: the middle)

    def key(self) -> tuple[Any, ...]:
        return (id(self.baseline) if self.baseline is not None else None, self.zoom,
                self.centre if self.zoom > 1 else None)


NO_OPTIONS = ViewOptions()


# ------------------------------------------------------------------------------ helpers
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


def grow_scale(current: float, value: float) -> float:
    """A positive scale (kWh) that only grows, to round values with head room."""
    if not math.isfinite(value) or value <= current:
        return current
    return nice_ceil(1.25 * value)


def _style(ax: Any) -> None:
    ax.grid(alpha=0.3, linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))


# ------------------------------------------------------------------------------ base
class FigureView:
    """One figure of the page, built once per model and redrawn cheaply every hour.

    The static frame (axes, ticks, labels, legend, grid lines, a baseline) is
    drawn once and kept as a bitmap; each hour only the *animated* artists
    (data, changing text) are drawn over it, then the bitmap is PNG-encoded.
    A view calls :meth:`invalidate` when the frame itself changes (axis limits
    grew). ``render`` is thread-safe and returns PNG bytes.
    """

    size: tuple[float, float] = (6.0, 4.0)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._background: Any = None
        self.fig: Figure | None = None
        self.opts = NO_OPTIONS
        self.animated: list[Any] = []

    def render(self, snap: Snapshot, opts: ViewOptions = NO_OPTIONS) -> bytes:
        with self._lock:
            self._prepare(snap, opts)
            self.update(snap)
            return self._draw()

    def file(self, snap: Snapshot, opts: ViewOptions, fmt: str, dpi: int = 150) -> bytes:
        """The figure as a file (``png`` or ``svg``), every artist drawn, with the caption
        the page shows next to it as its title."""
        with self._lock:
            self._prepare(snap, opts)
            self.update(snap)
            for artist in self.animated:
                artist.set_animated(False)
            title = self.fig.text(0.01, 0.995, self.caption(snap), fontsize=9, va="top")
            try:
                buf = io.BytesIO()
                self.fig.savefig(buf, format=fmt, dpi=dpi, metadata=_metadata(fmt))
                return buf.getvalue()
            finally:
                title.remove()
                for artist in self.animated:
                    artist.set_animated(True)

    def caption(self, snap: Snapshot) -> str:
        """A line about the hour drawn, shown as HTML above the image (text is the most
        expensive artist to draw every hour)."""
        return f"Hour {snap.hour} ({time_label(snap.hour, snap.clock_offset)})"

    def _prepare(self, snap: Snapshot, opts: ViewOptions) -> None:
        key = (snap.build, id(snap.grid), *opts.key())
        if self.fig is None or key != self._key:
            self.fig = Figure(figsize=self.size, dpi=DPI)
            FigureCanvasAgg(self.fig)
            self.animated = []
            self._background = None
            self.opts = opts
            self.setup(self.fig, snap)
            for artist in self.animated:
                artist.set_animated(True)
            self._key = key

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


def _metadata(fmt: str) -> dict[str, Any]:
    # No creation date: the same snapshot gives the same file.
    if fmt == "svg":
        return {"Date": None, "Creator": "dipi_abm"}
    return {"Software": "dipi_abm"}


# ------------------------------------------------------------------------------ grid
@dataclass(frozen=True)
class Hotspot:
    """Where a bus is drawn, as a share of the image (for the page's hover details)."""

    bus: int
    left: float  # % of the image width
    top: float  # % of the image height


class GridView(FigureView):
    """The feeder with the hour aggregated per bus and the P2P flow on each line."""

    size = (10.0, 5.6)
    MAX_WIDTH = 8.0  # line width (points) of a flow at the top of the scale
    HALO_AREA = 500.0  # marker area (points²) of within-bus trade at the top of its scale

    def setup(self, fig: Figure, snap: Snapshot) -> None:
        layout = self.layout = grid_layout(snap.grid)
        b = snap.buses
        fig.subplots_adjust(left=0.01, right=0.9, bottom=0.19, top=0.97)
        ax = self.ax = fig.add_subplot()
        ax.set_axis_off()
        self._set_view(ax, layout.pos)
        # Pixel sizes in data units, for the per-bus glyphs (bars, triangles, labels).
        (x0, y0), (x1, y1) = ax.transData.inverted().transform([(0, 0), (1, 1)])
        self.px = (x1 - x0, y1 - y0)
        pos = layout.pos
        ax.add_collection(LineCollection(layout.segments, colors="#b0b0b0", linewidths=1.2,
                                         zorder=1))
        self.flow_scale = 0.0
        self.local_scale = 0.0
        self.net_limit = 0.0
        self.flows = self.animate(LineCollection([], colors=COLORS["p2p"], zorder=2,
                                                 capstyle="round"))
        ax.add_collection(self.flows)
        mid = layout.segments.mean(axis=1) if len(layout.segments) else np.zeros((0, 2))
        self.arrows = self.animate(ax.quiver(
            mid[:, 0], mid[:, 1], np.zeros(len(mid)), np.zeros(len(mid)), angles="uv",
            scale_units="inches", scale=9.0, pivot="mid", width=0.004, headwidth=4.0,
            headlength=4.5, headaxislength=4.0, color="#8c4a00", zorder=3))
        self.halos = self.animate(ax.scatter(pos[:, 0], pos[:, 1], s=np.zeros(len(pos)),
                                             c=COLORS["p2p"], alpha=0.35, linewidths=0,
                                             zorder=2.5))
        n_parties = b.n_parties
        size = 14.0 + 110.0 * np.sqrt(n_parties / max(float(n_parties.max()), 1.0))
        self.norm = Normalize(-1.0, 1.0)
        self.nodes = self.animate(ax.scatter(pos[:, 0], pos[:, 1], s=size,
                                             c=np.zeros(len(pos)), cmap=NET_CMAP,
                                             norm=self.norm, edgecolors="#333333",
                                             linewidths=0.6, zorder=4))
        has_dpgc = b.n_dpgc > 0
        if has_dpgc.any():
            cap = b.capacity_kw[has_dpgc]
            tri = 18.0 + 90.0 * np.sqrt(cap / max(float(cap.max()), 1e-9))
            ax.scatter(pos[has_dpgc, 0], pos[has_dpgc, 1] + 11 * self.px[1], s=tri,
                       marker="^", c=DPGC_MARK, edgecolors="#333333", linewidths=0.6,
                       zorder=5)
        root = pos[snap.grid.root]
        ax.scatter([root[0]], [root[1]], s=90, marker="s", c="black", zorder=6)
        self.bars = self.animate(PolyCollection([], facecolors=[], linewidths=0, zorder=4))
        ax.add_collection(self.bars)
        self._label_buses(ax, snap, pos)
        self.hotspots = self._hotspots(fig, ax, pos)
        cax = fig.add_axes((0.915, 0.24, 0.016, 0.62))
        self.cbar = fig.colorbar(self.nodes, cax=cax)
        self.cbar.set_label("bus net P2P position, kWh (+ sells, − buys)", fontsize=8)
        cax.tick_params(labelsize=7)
        self.legend = None

    def _set_view(self, ax: Any, pos: NDArray[np.float64]) -> None:
        lo, hi = pos.min(axis=0), pos.max(axis=0)
        span = np.maximum(hi - lo, 1e-9)
        lo, hi = lo - [0.04 * span[0], 0.12 * span[1]], hi + [0.04 * span[0], 0.1 * span[1]]
        zoom = max(1, int(self.opts.zoom))
        if zoom > 1:  # the box of the n / zoom buses nearest the centre: no empty space
            centre = pos[self.opts.centre] if self.opts.centre is not None else (lo + hi) / 2
            near = np.argsort(np.hypot(*((pos - centre) / span).T))[:max(2, len(pos) // zoom)]
            pad = max(self.layout.spacing, 1e-9)
            lo = pos[near].min(axis=0) - [0.6 * pad, 0.9 * pad]
            hi = pos[near].max(axis=0) + [0.6 * pad, 0.6 * pad]
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])

    def _in_view(self, pos: NDArray[np.float64]) -> NDArray[np.bool_]:
        (x0, x1), (y0, y1) = self.ax.get_xlim(), self.ax.get_ylim()
        return (pos[:, 0] >= x0) & (pos[:, 0] <= x1) & (pos[:, 1] >= y0) & (pos[:, 1] <= y1)

    def _label_buses(self, ax: Any, snap: Snapshot, pos: NDArray[np.float64]) -> None:
        shown = np.flatnonzero(self._in_view(pos))
        every = max(1, math.ceil(shown.size / MAX_LABELS))
        for k in shown[::every]:
            ax.text(pos[k, 0] - 7 * self.px[0], pos[k, 1] + 7 * self.px[1],
                    str(snap.grid.buses[k]), fontsize=6.5, color="#37474f", ha="right",
                    va="bottom", zorder=6)

    def _hotspots(self, fig: Figure, ax: Any, pos: NDArray[np.float64]) -> list[Hotspot]:
        xy = ax.transData.transform(pos)
        w, h = fig.bbox.width, fig.bbox.height
        return [Hotspot(int(k), 100.0 * xy[k, 0] / w, 100.0 * (1.0 - xy[k, 1] / h))
                for k in np.flatnonzero(self._in_view(pos))]

    def _legend(self) -> None:
        if self.legend is not None:
            self.legend.remove()
        s = self.flow_scale
        widths = [s / 4, s / 2, s] if s > 0 else []
        handles = [
            Line2D([], [], marker="o", ls="", mfc="#dddddd", mec="#333333", ms=8,
                   label="bus (size ∝ √parties, colour: net P2P)"),
            Line2D([], [], marker="^", ls="", mfc=DPGC_MARK, mec="#333333", ms=8,
                   label="DPGCs on the bus (size ∝ √capacity)"),
            Line2D([], [], marker="s", ls="", color="black", ms=6, label="substation"),
            Line2D([], [], marker="o", ls="", color=COLORS["p2p"], alpha=0.35,
                   ms=math.sqrt(self.HALO_AREA / 4), label=f"{self.local_scale / 4:,.4g} kWh "
                   "traded within a bus (area ∝ kWh)"),
            *[Line2D([], [], color=COLORS["p2p"], lw=float(self._width(w)),
                     label=f"line flow {w:,.0f} kWh" if w >= 10 else f"line flow {w:.3g} kWh")
              for w in widths],
            *[Patch(facecolor=c, label=label) for c, label in
              zip(BAND_COLORS, CREDIT_BAND_LABELS, strict=True)],
        ]
        self.legend = self.fig.legend(
            handles=handles, loc="lower center", fontsize=7, frameon=False, ncols=5,
            columnspacing=1.0, handletextpad=0.5, handlelength=2.6,
            title="bars under each bus: share of its parties by credit", title_fontsize=7)

    def _width(self, kwh: NDArray[np.float64] | float) -> Any:
        return 0.8 + (self.MAX_WIDTH - 0.8) * np.asarray(kwh) / self.flow_scale

    def update(self, snap: Snapshot) -> None:
        layout, b = self.layout, snap.buses
        net = b.net_kwh
        flows = layout.line_flows(net)
        mag = np.abs(flows)
        scale = grow_scale(self.flow_scale, float(mag.max(initial=0.0))) or 1.0
        local = grow_scale(self.local_scale, float(b.local_kwh.max(initial=0.0))) or 1.0
        limit = grow_scale(self.net_limit, float(np.abs(net).max(initial=0.0)))
        if scale != self.flow_scale or local != self.local_scale or self.legend is None:
            self.flow_scale, self.local_scale = scale, local
            self._legend()
            self.invalidate()
        if limit != self.net_limit and limit > 0:
            self.net_limit = limit
            self.norm.vmin, self.norm.vmax = -limit, limit
            self.nodes.set_norm(self.norm)
            self.cbar.update_normal(self.nodes)
            self.invalidate()
        live = mag > 1e-6 * self.flow_scale
        order = np.flatnonzero(live)[np.argsort(mag[live])]  # the biggest flows on top
        share = mag[order] / self.flow_scale
        self.flows.set_segments(layout.segments[order])
        self.flows.set_linewidths(self._width(mag[order]))
        colors = np.tile(mpl.colors.to_rgba(COLORS["p2p"]), (order.size, 1))
        colors[:, 3] = 0.45 + 0.5 * np.minimum(share, 1.0)
        self.flows.set_colors(colors)
        self._arrows(flows, mag)
        self.halos.set_sizes(self.HALO_AREA * b.local_kwh / self.local_scale)
        self.nodes.set_array(net)
        self._bars(b)

    def caption(self, snap: Snapshot) -> str:
        day_time = time_label(snap.hour, snap.clock_offset)
        return (f"Hour {snap.hour} ({day_time}): {snap.n_contracts:,} P2P contracts, "
                f"{snap.p2p_kwh:,.0f} kWh agreed, {snap.local_kwh:,.0f} kWh of it within a bus")

    def _arrows(self, flows: NDArray[np.float64], mag: NDArray[np.float64]) -> None:
        seg = self.layout.segments
        if not len(seg):
            return
        d = (seg[:, 1] - seg[:, 0]) / np.asarray(self.px)  # direction u -> v in pixels
        norm = np.linalg.norm(d, axis=1)
        show = (mag > 0.02 * self.flow_scale) & (norm > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.where(show, np.sign(flows) * d[:, 0] / norm, 0.0)
            v = np.where(show, np.sign(flows) * d[:, 1] / norm, 0.0)
        self.arrows.set_UVC(np.ma.masked_where(~show, u), np.ma.masked_where(~show, v))

    def _bars(self, b: Any) -> None:
        pos = self.layout.pos
        total = b.credit_bands.sum(axis=1)
        has = total > 0
        frac = np.zeros(b.credit_bands.shape)
        frac[has] = b.credit_bands[has] / total[has, None]
        w, h = 26 * self.px[0], 5 * self.px[1]
        left = pos[:, :1] - w / 2 + w * np.cumsum(frac, axis=1) - w * frac
        right = left + w * frac
        top = pos[:, 1] - 9 * self.px[1]
        bottom = top - h
        rows, bands = np.nonzero((frac > 0) & has[:, None])
        verts = np.stack([np.stack([left[rows, bands], bottom[rows]], axis=1),
                          np.stack([left[rows, bands], top[rows]], axis=1),
                          np.stack([right[rows, bands], top[rows]], axis=1),
                          np.stack([right[rows, bands], bottom[rows]], axis=1)], axis=1)
        self.bars.set_verts(verts)
        self.bars.set_facecolors(np.asarray(BAND_COLORS)[bands] if bands.size else [])


def bus_details(snap: Snapshot, k: int) -> list[str]:
    """The hover details of bus row ``k``: parties, this hour's P2P, credit, breaches."""
    b = snap.buses
    name = snap.grid.buses[k]
    root = " (substation)" if k == snap.grid.root else ""
    net = float(b.net_kwh[k])
    side = "sells" if net > 0 else ("buys" if net < 0 else "balanced")
    lines = [
        f"Bus {name}{root}",
        f"{int(b.n_dpgc[k])} DPGCs ({b.capacity_kw[k]:,.0f} kW), {int(b.n_user[k])} users "
        f"({b.load_kw[k]:,.0f} kW mean load)",
        f"P2P this hour: sold {b.sold_kwh[k]:,.1f} kWh, bought {b.bought_kwh[k]:,.1f} kWh, "
        f"net {net:+,.1f} kWh ({side})",
        f"traded within the bus: {b.local_kwh[k]:,.1f} kWh",
    ]
    if b.n_parties[k] > 0:
        bands = ", ".join(f"{label} {int(n)}" for label, n in
                          zip(CREDIT_BAND_LABELS, b.credit_bands[k], strict=True) if n)
        lines.append(f"credit mean {b.credit_mean[k]:.2f}, min {b.credit_min[k]:.2f} "
                     f"({bands})")
        lines.append(f"breaches this hour: {int(b.breaches[k])} of {int(b.n_parties[k])} "
                     f"parties ({100 * b.breaches[k] / b.n_parties[k]:.1f} %)")
    return lines


# ------------------------------------------------------------------------------ credit
class CreditView(FigureView):
    """Credit histogram by party type (and the baseline's), and blocks won against credit
    per miner node."""

    size = (10.0, 3.3)
    BINS = 20

    def setup(self, fig: Figure, snap: Snapshot) -> None:
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.88, wspace=0.16)
        a, b = self.axes = fig.subplots(1, 2)
        self.lo = None
        self.hist_top: tuple[float, float] | None = None
        self.blocks_top: tuple[float, float] | None = None
        self.hists = [
            self.animate(a.stairs(np.zeros(self.BINS), np.linspace(90, 100, self.BINS + 1),
                                  fill=True, alpha=0.45, color=COLORS[name], label=label))
            for name, label in (("dpgc", "DPGCs"), ("user", "users"))
        ]
        self.base_hists = []
        if self.opts.baseline is not None:
            self.base_hists = [
                self.animate(a.stairs(np.zeros(self.BINS), np.linspace(90, 100, self.BINS + 1),
                                      color=COLORS[name], lw=1.2, ls=(0, (4, 2)),
                                      label=f"{label}, baseline"))
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
        b.set_title("Block producers vs credit (nodes that won a block)", fontsize=10)
        b.set_xlabel("node credit now (stand-alone miners: 0)", fontsize=9)
        b.set_ylabel("blocks won so far", fontsize=9)
        b.legend(handles=[p for p, m in zip(self.points, self.node_masks, strict=True)
                          if m.any()], fontsize=8, frameon=False, loc="upper left")
        for ax in self.axes:
            _style(ax)
        b.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))

    def _shares(self, snap: Snapshot, edges: NDArray[np.float64], lo: float) -> list[Any]:
        out = []
        for kind in (DPGC_KIND, USER_KIND):
            credit = snap.credit[snap.kind == kind]
            counts, _ = np.histogram(np.clip(credit, lo, 100.0), bins=edges)
            out.append(100.0 * counts / max(credit.size, 1))
        return out

    def update(self, snap: Snapshot) -> None:
        a, b = self.axes
        lo, _ = credit_limits(snap.credit)
        base = self.opts.baseline
        if base is not None:
            lo = min(lo, credit_limits(base.snap.credit)[0])
        edges = np.linspace(lo, 100.0, self.BINS + 1)
        top = 1.0
        for hist, share in zip(self.hists, self._shares(snap, edges, lo), strict=True):
            hist.set_data(share, edges)
            top = max(top, float(share.max()) if share.size else 0.0)
        if base is not None:
            for hist, share in zip(self.base_hists, self._shares(base.snap, edges, lo),
                                   strict=True):
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
                ax.set_ylim(0.0 if ax is a else 0.5, new[1])
                self.invalidate()
        # Only the nodes that won a block: at 10,000 parties the rest is one line at 0.
        for sc, mask in zip(self.points, self.node_masks, strict=True):
            m = mask & (won > 0)
            sc.set_offsets(np.column_stack([np.maximum(credit[m], b.get_xlim()[0] + 1.0),
                                            won[m]]))

    def caption(self, snap: Snapshot) -> str:
        won, s = snap.blocks_won, snap.summary
        return (f"Hour {snap.hour}: {int(won.sum())} blocks by {int((won > 0).sum())} of "
                f"{won.size:,} nodes · Gini {format_kpi(s.get('blocks_gini'), 'ratio')}"
                f" · Nakamoto {format_kpi(s.get('blocks_nakamoto'), 'int')}")


VIEWS: dict[str, type[FigureView]] = {"grid": GridView, "credit": CreditView}


def make_views() -> dict[str, FigureView]:
    """One set of figure views (a browser session keeps its own)."""
    return {name: cls() for name, cls in VIEWS.items()}


def render_all(snap: Snapshot, views: dict[str, FigureView] | None = None,
               opts: ViewOptions = NO_OPTIONS) -> dict[str, bytes]:
    """Every figure of the page as PNG bytes (what one step costs to draw)."""
    views = make_views() if views is None else views
    return {name: view.render(snap, opts) for name, view in views.items()}


def figure_file(name: str, snap: Snapshot, fmt: str, opts: ViewOptions = NO_OPTIONS) -> bytes:
    """Figure ``name`` of ``snap`` as a ``png`` (150 dpi) or ``svg`` file, drawn afresh
    (the page's own figure objects keep drawing meanwhile)."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"figure format {fmt!r}: must be png or svg")
    return VIEWS[name]().file(snap, opts, fmt)
