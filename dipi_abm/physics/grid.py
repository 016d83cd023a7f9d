"""The distribution grid: buses, lines, electrical distance and wheeling (docs/model.md §2).

The grid is a :mod:`networkx` graph whose nodes are buses and whose edges are lines
carrying an impedance (``r_ohm``, else a generic ``weight``; ``x_ohm`` is kept but not
used for distance).  Agents sit on buses, several may share one.  This module

* builds grids: the IEEE 33-bus feeder (:func:`ieee33`), a seeded synthetic radial
  feeder (:func:`synthetic_radial_feeder`), or a user graph read from GraphML or an edge
  list (:func:`load_graph`) or passed in as a ``networkx`` graph;
* rejects bad grids with a one-line :class:`~dipi_abm.errors.ConfigError`
  (:func:`validate_graph`);
* computes the bus-to-bus electrical distance once per grid
  (:func:`electrical_distance`, rules in :data:`DISTANCE_METRICS`);
* prices wheeling from that distance (:func:`wheeling_tariff`, rules in
  :data:`WHEELING_RULES`).

Policies fixed here (callers must know them)
--------------------------------------------

* **Impedance** of an edge: the first attribute of :data:`IMPEDANCE_KEYS` present on it
  (``r_ohm``, then ``weight``).  It must be a finite real number ``>= 0``; zero is allowed
  (switches, ideal transformer edges).
* **Parallel lines** (a ``MultiGraph``, or the same bus pair listed twice in an edge list)
  are combined *in parallel*: their conductances ``1/r`` add, for every metric that uses
  impedance.  A zero-impedance line short-circuits its pair.
* **Directed graphs** are read as undirected: every directed edge is one line, so an edge
  given in both directions counts as two parallel lines.
* **Substation (root)**: the graph attribute ``G.graph["root"]`` if present, else the one
  node with node attribute ``root=True``, else the *first bus in sorted label order*.
* **Bus order**: distance matrices and :attr:`Grid.buses` use the bus labels in sorted
  order (labels of mixed, unorderable types are sorted by ``(type name, str(label))``).
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

from dipi_abm.errors import ConfigError
from dipi_abm.rules.registry import Rule

__all__ = ["DISTANCE_METRICS", "IMPEDANCE_KEYS", "WHEELING_RULES", "Grid", "build_grid",
           "electrical_distance", "find_root", "graph_to_edge_list", "ieee33", "load_graph",
           "save_graphml", "synthetic_radial_feeder", "validate_graph", "wheeling_distance",
           "wheeling_flat", "wheeling_tariff"]

IMPEDANCE_KEYS: tuple[str, ...] = ("r_ohm", "weight")
"""Edge attributes read as a line's impedance in ohms; the first one present wins (§2)."""

BUILTIN_GRIDS: tuple[str, ...] = ("ieee33", "synthetic")
"""Names :func:`build_grid` accepts as a built-in grid source."""

GRAPHML_SUFFIXES: tuple[str, ...] = (".graphml", ".xml")
"""File suffixes read as GraphML; any other suffix is read as an edge list."""

MAX_IMPEDANCE_OHM = 1e6
"""Largest line impedance accepted (a megohm: far beyond any feeder; 1e308 made the
Laplacian singular)."""

MIN_IMPEDANCE_OHM = 1e-9
"""Smallest non-zero impedance; below it the conductance swamps the Laplacian (use 0 for
a switch, which is contracted exactly)."""

MAX_BUSES = 20_000
"""Most buses a grid may have: the dense distance matrix grows with the square."""

MAX_GRID_FILE_BYTES = 100 * 2**20
"""Largest grid file read (a 20,000-bus edge list is about 1 MB)."""

# --------------------------------------------------------------------------------------
# IEEE 33-bus feeder (Baran & Wu 1989), as in MATPOWER's case33bw.m.
# --------------------------------------------------------------------------------------

# (from bus, to bus, r ohm, x ohm): the 32 sectionalising (normally closed) lines.
_IEEE33_LINES: tuple[tuple[int, int, float, float], ...] = ((1, 2, 0.0922, 0.0470),
                                                            (2, 3, 0.4930, 0.2511),
                                                            (3, 4, 0.3660, 0.1864),
                                                            (4, 5, 0.3811, 0.1941),
                                                            (5, 6, 0.8190, 0.7070),
                                                            (6, 7, 0.1872, 0.6188),
                                                            (7, 8, 0.7114, 0.2351),
                                                            (8, 9, 1.0300, 0.7400),
                                                            (9, 10, 1.0440, 0.7400),
                                                            (10, 11, 0.1966, 0.0650),
                                                            (11, 12, 0.3744, 0.1238),
                                                            (12, 13, 1.4680, 1.1550),
                                                            (13, 14, 0.5416, 0.7129),
                                                            (14, 15, 0.5910, 0.5260),
                                                            (15, 16, 0.7463, 0.5450),
                                                            (16, 17, 1.2890, 1.7210),
                                                            (17, 18, 0.7320, 0.5740),
                                                            (2, 19, 0.1640, 0.1565),
                                                            (19, 20, 1.5042, 1.3554),
                                                            (20, 21, 0.4095, 0.4784),
                                                            (21, 22, 0.7089, 0.9373),
                                                            (3, 23, 0.4512, 0.3083),
                                                            (23, 24, 0.8980, 0.7091),
                                                            (24, 25, 0.8960, 0.7011),
                                                            (6, 26, 0.2030, 0.1034),
                                                            (26, 27, 0.2842, 0.1447),
                                                            (27, 28, 1.0590, 0.9337),
                                                            (28, 29, 0.8042, 0.7006),
                                                            (29, 30, 0.5075, 0.2585),
                                                            (30, 31, 0.9744, 0.9630),
                                                            (31, 32, 0.3105, 0.3619),
                                                            (32, 33, 0.3410, 0.5302))

# The 5 normally-open tie switches (from bus, to bus, r ohm, x ohm).
_IEEE33_TIES: tuple[tuple[int, int, float, float], ...] = ((8, 21, 2.0, 2.0), (9, 15, 2.0, 2.0),
                                                           (12, 22, 2.0, 2.0), (18, 33, 0.5, 0.5),
                                                           (25, 29, 0.5, 0.5))

# Bus loads (p_kw, q_kvar) for buses 1..33; bus 1 is the substation.  Totals 3715 / 2300.
_IEEE33_LOADS: tuple[tuple[float, float], ...] = (
    (0, 0), (100, 60), (90, 40), (120, 80), (60, 30), (60, 20), (200, 100), (200, 100),
    (60, 20), (60, 20), (45, 30), (60, 35), (60, 35), (120, 80), (60, 10), (60, 20),
    (60, 20), (90, 40), (90, 40), (90, 40), (90, 40), (90, 40), (90, 50), (420, 200),
    (420, 200), (60, 25), (60, 25), (60, 20), (120, 70), (200, 600), (150, 70),
    (210, 100), (60, 40),
)  # fmt: skip


def ieee33(with_ties: bool = False) -> nx.Graph:
    """Return the IEEE 33-bus radial distribution feeder (docs/model.md §2).

    Line and load data of Baran & Wu (1989), "Network reconfiguration in distribution
    systems for loss reduction and load balancing", IEEE Trans. Power Delivery 4(2),
    as distributed in MATPOWER's ``case33bw.m`` (12.66 kV).

    Buses are labelled ``1..33``; bus 1 is the substation (``G.graph["root"] == 1``).
    Edges carry ``r_ohm`` and ``x_ohm`` (ohms); nodes carry the case's loads ``p_kw`` and
    ``q_kvar`` (totals 3715 kW / 2300 kvar).  The graph holds the 32 sectionalising
    lines, i.e. it is a tree.

    Args:
        with_ties: also add the 5 normally-open tie switches 8-21, 9-15, 12-22, 18-33 and
            25-29 as closed lines with attribute ``switch=True`` (a meshed graph).
    """
    g = nx.Graph(name="ieee33", root=1)
    for bus, (p_kw, q_kvar) in enumerate(_IEEE33_LOADS, start=1):
        g.add_node(bus, p_kw=float(p_kw), q_kvar=float(q_kvar))
    for u, v, r, x in _IEEE33_LINES:
        g.add_edge(u, v, r_ohm=r, x_ohm=x)
    if with_ties:
        for u, v, r, x in _IEEE33_TIES:
            g.add_edge(u, v, r_ohm=r, x_ohm=x, switch=True)
    return g


# --------------------------------------------------------------------------------------
# Synthetic radial feeder
# --------------------------------------------------------------------------------------


def synthetic_radial_feeder(n_buses: int, rng: np.random.Generator,
                            r_ohm_range: tuple[float, float] = (0.05, 0.8),
                            x_over_r: tuple[float, float] = (0.5, 1.5), *,
                            p_extend: float = 0.75) -> nx.Graph:
    """Return a seeded random radial feeder (a tree) of ``n_buses`` buses (docs/model.md §2).

    Bus 0 is the substation (``G.graph["root"] == 0``); buses are labelled ``0..n-1`` in
    the order they were attached, so every bus's parent has a smaller label.  Bus ``k``
    attaches to bus ``k-1`` with probability ``p_extend`` (extending the current trunk or
    lateral) and otherwise to a uniformly drawn earlier bus ``0..k-2`` (starting a new
    lateral).  This gives a trunk with laterals: neither a star nor a path.

    Each line has ``r_ohm ~ U(r_ohm_range)`` and ``x_ohm = r_ohm * U(x_over_r)``.
    All randomness comes from ``rng``: the same generator state gives the identical graph;
    no global random state is read or advanced.

    Raises:
        ConfigError: ``n_buses`` not an integer >= 2, ``rng`` not a numpy Generator, or a
            range that is not ``0 <= low <= high`` (finite).
    """
    if isinstance(n_buses, bool) or not isinstance(n_buses, numbers.Integral) or n_buses < 2:
        raise ConfigError(
            f"synthetic grid: n_buses={n_buses!r} is invalid; it must be an integer >= 2"
        )
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            "synthetic grid: rng must be a numpy.random.Generator "
            f"(e.g. numpy.random.default_rng(seed)), got {type(rng).__name__}"
        )
    r_lo, r_hi = _check_range("r_ohm_range", r_ohm_range)
    xr_lo, xr_hi = _check_range("x_over_r", x_over_r)
    if not (isinstance(p_extend, numbers.Real) and 0.0 <= float(p_extend) <= 1.0):
        raise ConfigError(f"synthetic grid: p_extend={p_extend!r} must be in [0, 1]")

    n = int(n_buses)
    m = n - 1  # one line per non-root bus
    extend = rng.random(m) < p_extend
    pick = rng.random(m)
    r = rng.uniform(r_lo, r_hi, m)
    xr = rng.uniform(xr_lo, xr_hi, m)

    g = nx.Graph(name="synthetic", root=0)
    g.add_nodes_from(range(n))
    for k in range(1, n):
        e = k - 1
        if k == 1 or extend[e]:
            parent = k - 1
        else:  # a uniformly drawn earlier bus 0..k-2
            parent = min(int(pick[e] * (k - 1)), k - 2)
        g.add_edge(parent, k, r_ohm=float(r[e]), x_ohm=float(r[e] * xr[e]))
    return g


def _check_range(name: str, rng_range: Iterable[float]) -> tuple[float, float]:
    """Validate a ``(low, high)`` pair with ``0 <= low <= high`` finite."""
    try:
        lo, hi = (float(v) for v in rng_range)
    except (TypeError, ValueError):
        raise ConfigError(
            f"synthetic grid: {name}={rng_range!r} must be a pair (low, high) of numbers"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo <= hi):
        raise ConfigError(
            f"synthetic grid: {name}=({lo}, {hi}) is invalid; need finite 0 <= low <= high"
        )
    return lo, hi


# --------------------------------------------------------------------------------------
# Reading and writing grid files
# --------------------------------------------------------------------------------------

_ROOT_DIRECTIVE = re.compile(r"^\s*#\s*root\s*[:=]\s*(\S+)\s*$", re.IGNORECASE)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def load_graph(path: str | os.PathLike) -> nx.Graph:
    """Read a grid graph from a GraphML file or an edge list (docs/model.md §2).

    * ``.graphml`` / ``.xml``: GraphML via :func:`networkx.read_graphml`.  Every edge and
      node attribute that is a number or a string spelling a number becomes a ``float``
      (booleans are kept, and so is the ``id`` attribute).
    * any other suffix (``.csv``, ``.txt``, ``.edges``, ...): an edge list, one line per
      line of the grid, fields separated by commas or whitespace::

          # comments start with '#'; blank lines are ignored
          # root: 1            <- optional directive naming the substation
          from,to,r_ohm,x_ohm  <- optional header naming the columns
          1,2,0.0922,0.0470

      Without a header a line is ``u v r_ohm [x_ohm]``.  With a header, the first two
      columns are the end buses, the rest are numeric edge attributes, and one of them must
      be ``r_ohm`` or ``weight``.  The same pair listed twice gives parallel lines (a
      ``MultiGraph``; they combine in parallel).

    Node labels stay strings unless every label is an integer (then ``int``).  The
    substation is resolved with :func:`find_root` and stored in ``G.graph["root"]``.
    The graph is *not* validated here; :func:`build_grid` calls :func:`validate_graph`.

    Raises:
        ConfigError: a missing or unreadable file, corrupt GraphML, an edge-list line with
            the wrong number of fields or a non-number (the message names the file and the
            line number), a file with no edges, or a bad root.
    """
    p = Path(path)
    label = f"grid file {str(path)!r}"
    if not p.exists():
        raise ConfigError(f"{label}: no such file; give an existing GraphML or edge-list file")
    if not p.is_file():
        raise ConfigError(f"{label}: not a regular file; give a GraphML or edge-list file")
    size = p.stat().st_size
    if size > MAX_GRID_FILE_BYTES:
        raise ConfigError(f"{label}: {size} bytes, more than the {MAX_GRID_FILE_BYTES} a grid "
                          "file may have; is it the right file?")
    if p.suffix.lower() in GRAPHML_SUFFIXES:
        g = _read_graphml(p, label)
    else:
        g = _read_edge_list(p, label)
    if g.number_of_nodes() > 0:
        g.graph["root"] = find_root(g, label)
    return g


def _one_line(text: object) -> str:
    """Collapse whitespace (including newlines) so an error message stays on one line."""
    return " ".join(str(text).split())


def _read_graphml(p: Path, label: str) -> nx.Graph:
    try:
        g = nx.read_graphml(p, node_type=str)
    except Exception as exc:  # any parse failure is a bad file
        raise ConfigError(
            f"{label}: cannot be read as GraphML ({type(exc).__name__}: {_one_line(exc)}); "
            "expected a valid GraphML file"
        ) from None
    g = _undirected(g)
    for _u, _v, data in g.edges(data=True):
        _floatify(data)
    for _n, data in g.nodes(data=True):
        _floatify(data)
    return _relabel_ints(g)


def _floatify(data: dict) -> None:
    """Turn numeric attribute values (and numeric strings) into floats, in place."""
    for key, value in list(data.items()):
        if key in ("id", "root") or isinstance(value, bool | np.bool_):
            continue
        if isinstance(value, numbers.Real):
            data[key] = float(value)
        elif isinstance(value, str):
            try:
                data[key] = float(value.strip())
            except ValueError:
                pass


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split(line: str) -> list[str]:
    if "," in line:
        return [f.strip() for f in line.split(",")]
    return line.split()


def _read_edge_list(p: Path, label: str) -> nx.Graph:
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{label}: not a UTF-8 text file; an edge list has lines 'u v r_ohm [x_ohm]'"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot be read ({_one_line(exc.strerror or exc)})") from None

    columns: list[str] | None = None  # numeric column names after the two end buses
    root: str | None = None
    edges: list[tuple[str, str, dict[str, float]]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        directive = _ROOT_DIRECTIVE.match(raw)
        if directive:
            root = directive.group(1)
            continue
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = _split(line)
        if columns is None and not edges and len(fields) >= 3 and not _is_number(fields[2]):
            columns = _parse_header(fields, label, lineno)
            continue
        if columns is None:
            if len(fields) not in (3, 4):
                raise ConfigError(
                    f"{label}: line {lineno} has {len(fields)} fields; expected 3 or 4 "
                    "('u v r_ohm [x_ohm]') or a header line naming the columns"
                )
            names = ["r_ohm", "x_ohm"][: len(fields) - 2]
        else:
            if len(fields) != len(columns) + 2:
                raise ConfigError(
                    f"{label}: line {lineno} has {len(fields)} fields; the header names "
                    f"{len(columns) + 2} ({', '.join(['from', 'to', *columns])})"
                )
            names = columns
        attrs: dict[str, float] = {}
        for name, value in zip(names, fields[2:], strict=True):
            try:
                attrs[name] = float(value)
            except ValueError:
                raise ConfigError(
                    f"{label}: line {lineno}: {name}={value!r} is not a number; "
                    "impedance columns must be numbers"
                ) from None
        u, v = fields[0], fields[1]
        if not u or not v:
            raise ConfigError(f"{label}: line {lineno}: an end bus label is empty")
        edges.append((u, v, attrs))

    if not edges:
        raise ConfigError(
            f"{label}: no edges found; an edge list has lines 'u v r_ohm [x_ohm]' "
            "(or a header such as 'from,to,r_ohm,x_ohm')"
        )
    pairs = [frozenset((u, v)) for u, v, _ in edges]
    g: nx.Graph = nx.MultiGraph() if len(set(pairs)) < len(pairs) else nx.Graph()
    g.add_edges_from(edges)
    if root is not None:
        if root not in g:
            raise ConfigError(
                f"{label}: the '# root: {root}' directive names no bus of the edge list"
            )
        g.graph["root"] = root
    return _relabel_ints(g)


def _parse_header(fields: list[str], label: str, lineno: int) -> list[str]:
    names = [f.strip().lower() for f in fields]
    bad = [f for f in names if not _IDENTIFIER.match(f)]
    if bad:
        raise ConfigError(
            f"{label}: line {lineno}: {bad[0]!r} is neither a number nor a column name; "
            "expected 'u v r_ohm [x_ohm]' lines or a header such as 'from,to,r_ohm,x_ohm'"
        )
    cols = names[2:]
    if len(set(cols)) != len(cols) or any(c in names[:2] for c in cols):
        raise ConfigError(f"{label}: line {lineno}: the header repeats a column name")
    if not any(k in cols for k in IMPEDANCE_KEYS):
        raise ConfigError(
            f"{label}: line {lineno}: header {','.join(names)!r} names no impedance column; "
            f"it must include one of {', '.join(IMPEDANCE_KEYS)}"
        )
    return cols


def _relabel_ints(g: nx.Graph) -> nx.Graph:
    """Relabel string nodes to ``int`` when every label is an integer (and stays unique)."""
    mapping: dict[Hashable, int] = {}
    for node in g.nodes:
        if isinstance(node, bool) or not isinstance(node, str | int):
            return g
        try:
            mapping[node] = int(node)
        except ValueError:
            return g
    if len(set(mapping.values())) != len(mapping):
        return g  # e.g. "01" and "1": keep the strings rather than merge buses
    root = g.graph.get("root")
    out = nx.relabel_nodes(g, mapping, copy=True)
    if isinstance(root, str) and root in mapping:
        out.graph["root"] = mapping[root]
    return out


def save_graphml(g: nx.Graph, path: str | os.PathLike) -> None:
    """Write ``g`` as GraphML (readable back by :func:`load_graph`, root included)."""
    nx.write_graphml(g, os.fspath(path))


def graph_to_edge_list(g: nx.Graph, path: str | os.PathLike) -> None:
    """Write ``g`` as a comma-separated edge list readable by :func:`load_graph`.

    The file has a ``# root: <label>`` directive (if the graph names a root), a header
    ``from,to,<columns>`` and one line per edge (parallel edges included).  The columns are
    the numeric, non-boolean edge attributes present on *every* edge, impedance keys
    first; other attributes (e.g. ``switch``) are dropped.  Floats are written with
    ``repr`` so they read back exactly.

    Raises:
        ConfigError: a bus label containing a comma, whitespace or ``#``, or no impedance
            attribute common to all edges.
    """
    edges = list(g.edges(data=True))
    common: set[str] | None = None
    for _u, _v, d in edges:
        keys = {k for k, v in d.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}
        common = keys if common is None else common & keys
    common = common or set()
    cols = [k for k in IMPEDANCE_KEYS if k in common]
    if not cols:
        raise ConfigError(
            f"edge list {os.fspath(path)!r}: the graph has no impedance attribute common to "
            f"all edges; each edge needs one of {', '.join(IMPEDANCE_KEYS)}"
        )
    cols += ["x_ohm"] if "x_ohm" in common else []
    cols += sorted(common - set(cols))
    for node in g.nodes:
        s = str(node)
        if not s or re.search(r"[\s,#]", s):
            raise ConfigError(
                f"edge list {os.fspath(path)!r}: bus label {node!r} cannot be written; "
                "labels in an edge list must not contain commas, whitespace or '#'"
            )
    lines = []
    if g.graph.get("root") is not None:
        lines.append(f"# root: {g.graph['root']}")
    lines.append(",".join(["from", "to", *cols]))
    for u, v, d in edges:
        lines.append(",".join([str(u), str(v), *(repr(float(d[c])) for c in cols)]))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------
# Validation and the substation
# --------------------------------------------------------------------------------------


def _undirected(g: nx.Graph) -> nx.Graph:
    """Return ``g`` itself if undirected, else an undirected copy keeping every edge.

    Each directed edge becomes one line; a pair linked in both directions becomes two
    parallel lines (a ``MultiGraph``).
    """
    if not g.is_directed():
        return g
    pairs = [frozenset((u, v)) for u, v in g.edges()]
    multi = g.is_multigraph() or len(set(pairs)) < len(pairs)
    h: nx.Graph = nx.MultiGraph() if multi else nx.Graph()
    h.graph.update(g.graph)
    h.add_nodes_from(g.nodes(data=True))
    h.add_edges_from((u, v, dict(d)) for u, v, d in g.edges(data=True))
    return h


def _impedance_of(data: dict) -> tuple[str | None, object]:
    """Return ``(key, value)`` of the first impedance attribute present, else ``(None, None)``."""
    for key in IMPEDANCE_KEYS:
        if key in data and data[key] is not None:
            return key, data[key]
    return None, None


def validate_graph(g: nx.Graph, source: str) -> None:
    """Reject a graph that cannot be a grid (docs/model.md §2).

    ``source`` is the prefix of every error message, e.g. ``"grid file 'x.graphml'"``.

    Rejected: not a ``networkx`` graph; no buses or a single bus; a self-loop; an edge with
    neither ``r_ohm`` nor ``weight``; an impedance that is not a real number (strings and
    booleans included), NaN, infinite or negative; a disconnected graph.  Zero impedance is
    allowed.  Parallel edges (multigraphs) are allowed and combine in parallel; directed
    graphs are read as undirected.

    Raises:
        ConfigError: one line, naming ``source`` and the offending edge or count.
    """
    if not isinstance(g, nx.Graph):
        raise ConfigError(f"{source}: expected a networkx graph, got {type(g).__name__}")
    n = g.number_of_nodes()
    if n < 2:
        raise ConfigError(
            f"{source}: the graph has {n} bus{'es' if n != 1 else ''}; a grid needs at least "
            "2 buses connected by lines"
        )
    if n > MAX_BUSES:
        raise ConfigError(
            f"{source}: the graph has {n} buses, more than {MAX_BUSES}; the bus-to-bus "
            "distance matrix grows with the square of the buses"
        )
    for u, v in nx.selfloop_edges(g):
        raise ConfigError(
            f"{source}: edge ({u!r}, {v!r}) is a self-loop; a line must join two different buses"
        )
    for u, v, data in g.edges(data=True):
        key, value = _impedance_of(data)
        edge = f"edge ({u!r}, {v!r})"
        if key is None:
            raise ConfigError(
                f"{source}: {edge} has no impedance; each edge needs a numeric "
                f"{' or '.join(IMPEDANCE_KEYS)} attribute (ohms, >= 0)"
            )
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise ConfigError(
                f"{source}: {edge} has non-numeric impedance {key}={value!r}; "
                "impedance must be a finite number >= 0"
            )
        fval = float(value)
        if not math.isfinite(fval):
            raise ConfigError(
                f"{source}: {edge} has impedance {key}={fval}; "
                "impedance must be a finite number >= 0"
            )
        if fval < 0:
            raise ConfigError(
                f"{source}: {edge} has negative impedance {key}={fval}; impedance must be >= 0"
            )
        if fval > MAX_IMPEDANCE_OHM or 0 < fval < MIN_IMPEDANCE_OHM:
            raise ConfigError(
                f"{source}: {edge} has impedance {key}={fval:g}; it must be 0 (a switch) or "
                f"in [{MIN_IMPEDANCE_OHM:g}, {MAX_IMPEDANCE_OHM:g}] ohm"
            )
        x = data.get("x_ohm")
        if x is not None and (isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real)
                              or not abs(float(x)) <= MAX_IMPEDANCE_OHM):
            raise ConfigError(
                f"{source}: {edge} has reactance x_ohm={x!r}; it must be a finite number "
                f"in [-{MAX_IMPEDANCE_OHM:g}, {MAX_IMPEDANCE_OHM:g}] ohm"
            )
    h = _undirected(g)
    if not nx.is_connected(h):
        comps = sorted((len(c) for c in nx.connected_components(h)), reverse=True)
        shown = ", ".join(str(s) for s in comps[:5]) + (", ..." if len(comps) > 5 else "")
        raise ConfigError(
            f"{source}: the graph is disconnected ({len(comps)} components of sizes "
            f"{shown} buses); every bus must be connected to the substation"
        )


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, bool | np.bool_ | numbers.Real):
        return bool(value)
    return False


def _match_label(g: nx.Graph, label: object) -> Hashable | None:
    """Return the node equal to ``label`` (or, failing that, with the same ``str``)."""
    try:
        if label in g:
            return label  # type: ignore[return-value]
    except TypeError:  # unhashable
        return None
    matches = [n for n in g.nodes if str(n) == str(label)]
    return matches[0] if len(matches) == 1 else None


def find_root(g: nx.Graph, source: str = "grid") -> Hashable:
    """Return the substation bus label of ``g`` (docs/model.md §2).

    In order: the graph attribute ``g.graph["root"]`` (matched by value, or by ``str``
    when a file changed the label type); else the single node whose attribute ``root`` is
    true; else the first bus in sorted label order (a documented default, not a guess from
    the topology).

    Raises:
        ConfigError: the graph is empty, ``root`` names no bus, or several nodes have
            ``root=True``.
    """
    if g.number_of_nodes() == 0:
        raise ConfigError(f"{source}: the graph has no buses, so no substation")
    if g.graph.get("root") is not None:
        root = g.graph["root"]
        node = _match_label(g, root)
        if node is None:
            raise ConfigError(
                f"{source}: graph attribute root={root!r} is not a bus of the graph; "
                "it must name the substation bus"
            )
        return node
    flagged = [n for n, d in g.nodes(data=True) if _truthy(d.get("root", False))]
    if len(flagged) > 1:
        shown = ", ".join(repr(n) for n in _sorted_labels(flagged)[:5])
        raise ConfigError(
            f"{source}: {len(flagged)} buses have node attribute root=True ({shown}); "
            "exactly one bus may be the substation"
        )
    if flagged:
        return flagged[0]
    return _sorted_labels(g.nodes)[0]


def _sorted_labels(labels: Iterable[Hashable]) -> list:
    """Sort bus labels; labels of mixed types sort by ``(type name, str(label))``."""
    items = list(labels)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=lambda x: (type(x).__name__, str(x)))


# --------------------------------------------------------------------------------------
# Electrical distance
# --------------------------------------------------------------------------------------


def _edge_arrays(g: nx.Graph, index: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return endpoint indices and impedances of every edge (parallel edges included)."""
    m = g.number_of_edges()
    i = np.empty(m, dtype=np.int64)
    j = np.empty(m, dtype=np.int64)
    r = np.empty(m, dtype=float)
    for k, (u, v, data) in enumerate(g.edges(data=True)):
        i[k], j[k] = index[u], index[v]
        r[k] = float(_impedance_of(data)[1])  # type: ignore[arg-type]
    return i, j, r


def _contract(g: nx.Graph,
              buses: list) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """Contract zero-impedance groups and combine parallel lines.

    Returns ``(group, m, a, b, c)``: ``group[k]`` is the super-bus of bus ``k`` (buses
    joined by zero-impedance edges share one), ``m`` the number of super-buses, and
    ``(a, b, c)`` the distinct super-bus pairs ``a < b`` with their total conductance
    ``c > 0`` (conductances ``1/r`` of all lines between the pair added).
    """
    n = len(buses)
    index = {bus: k for k, bus in enumerate(buses)}
    i, j, r = _edge_arrays(g, index)
    zero = r == 0.0
    zadj = coo_matrix((np.ones(int(zero.sum())), (i[zero], j[zero])), shape=(n, n))
    m, group = connected_components(zadj, directed=False)
    gi, gj = group[i[~zero]], group[j[~zero]]
    cond = 1.0 / r[~zero]
    keep = gi != gj  # lines inside a zero-impedance group carry no distance
    a, b = np.minimum(gi, gj)[keep], np.maximum(gi, gj)[keep]
    c = coo_matrix((cond[keep], (a, b)), shape=(m, m)).tocsr()  # duplicates add
    c.sum_duplicates()
    cc = c.tocoo()
    return group, int(m), cc.row.astype(np.int64), cc.col.astype(np.int64), cc.data


def _expand(group: np.ndarray, d_super: np.ndarray) -> np.ndarray:
    d = d_super[np.ix_(group, group)]
    return np.ascontiguousarray(d, dtype=float)


def _distance_resistance(g: nx.Graph, buses: list) -> np.ndarray:
    """Effective resistance ``L+_ii + L+_jj - 2 L+_ij`` with conductance ``1/r`` (§2).

    Zero-impedance groups are contracted to one super-bus first; ``L+`` is computed as
    ``inv(L + J/m) - J/m`` (dense, ``O(m^3)``), fine up to a few thousand buses.
    """
    group, m, a, b, c = _contract(g, buses)
    if m == 1:
        return np.zeros((len(buses), len(buses)))
    lap = np.zeros((m, m))
    np.add.at(lap, (a, b), -c)
    np.add.at(lap, (b, a), -c)
    np.add.at(lap, (a, a), c)
    np.add.at(lap, (b, b), c)
    pinv = np.linalg.inv(lap + 1.0 / m) - 1.0 / m
    pinv = 0.5 * (pinv + pinv.T)
    diag = np.diag(pinv)
    res = diag[:, None] + diag[None, :] - 2.0 * pinv
    np.clip(res, 0.0, None, out=res)
    np.fill_diagonal(res, 0.0)
    return _expand(group, res)


def _distance_path_impedance(g: nx.Graph, buses: list) -> np.ndarray:
    """Shortest-path sum of impedance (Dijkstra), parallel lines combined in parallel (§2)."""
    group, m, a, b, c = _contract(g, buses)
    if m == 1:
        return np.zeros((len(buses), len(buses)))
    w = coo_matrix((1.0 / c, (a, b)), shape=(m, m)).tocsr()
    d = shortest_path(w, method="D", directed=False)
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    return _expand(group, d)


def _distance_hops(g: nx.Graph, buses: list) -> np.ndarray:
    """Unweighted shortest-path length (number of lines, zero-impedance ones included)."""
    n = len(buses)
    index = {bus: k for k, bus in enumerate(buses)}
    i = np.fromiter((index[u] for u, _ in g.edges()), dtype=np.int64, count=g.number_of_edges())
    j = np.fromiter((index[v] for _, v in g.edges()), dtype=np.int64, count=g.number_of_edges())
    adj = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    d = shortest_path(adj, method="D", directed=False, unweighted=True)
    return np.ascontiguousarray(d, dtype=float)


DISTANCE_METRICS: dict[str, Rule] = {"resistance": Rule(_distance_resistance),
                                     "path_impedance": Rule(_distance_path_impedance),
                                     "hops": Rule(_distance_hops)}
"""Registry of electrical-distance rules (docs/model.md §2).

Each maps ``(G, buses)`` — a validated undirected graph and its bus labels in sorted order
— to the ``(n, n)`` distance matrix in that order.  ``"resistance"`` (default) is the
effective resistance; ``"path_impedance"`` the summed impedance of the least-impedance
path; ``"hops"`` the number of lines.  On a radial feeder the first two are equal.
A new rule can be added by inserting a function here.
"""


def _check_metric(metric: str) -> None:
    if metric not in DISTANCE_METRICS:
        raise ConfigError(
            f"grid metric {metric!r} is unknown; allowed: {', '.join(DISTANCE_METRICS)}"
        )


def electrical_distance(g: nx.Graph, metric: str = "resistance") -> tuple[list, np.ndarray]:
    """Return ``(buses, D)``: bus labels in sorted order and their distance matrix (§2).

    ``D[i, j]`` is in ohms (hops for ``"hops"``); ``D`` is symmetric, ``>= 0`` with a zero
    diagonal.  Buses joined by zero-impedance edges are at distance 0 from each other and
    have equal rows.  The graph is validated first (source ``"grid graph"``).

    Raises:
        ConfigError: unknown ``metric`` (the message lists the allowed ones) or an invalid
            graph (see :func:`validate_graph`).
    """
    _check_metric(metric)
    validate_graph(g, "grid graph")
    h = _undirected(g)
    buses = _sorted_labels(h.nodes)
    return buses, DISTANCE_METRICS[metric](h, buses)


# --------------------------------------------------------------------------------------
# The Grid object
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Grid:
    """A validated grid with its bus-to-bus distance matrix, computed once (docs/model.md §2).

    Attributes:
        graph: the (undirected, frozen) grid graph.
        buses: bus labels in sorted order; row/column ``k`` of ``distance`` is ``buses[k]``.
        root: index in ``buses`` of the substation bus.
        distance: ``(n, n)`` read-only electrical distance matrix (ohms, or hops).
        metric: the distance rule used (a key of :data:`DISTANCE_METRICS`).
    """

    graph: nx.Graph
    buses: list
    root: int
    distance: np.ndarray
    metric: str
    _index: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {bus: k for k, bus in enumerate(self.buses)})

    @property
    def n_buses(self) -> int:
        """Number of buses."""
        return len(self.buses)

    @property
    def root_bus(self) -> Hashable:
        """Label of the substation bus."""
        return self.buses[self.root]

    def index_of(self, label: Hashable) -> int:
        """Return the row of bus ``label`` in :attr:`distance`.

        Raises:
            ConfigError: ``label`` is not a bus of the grid.
        """
        try:
            return self._index[label]
        except (KeyError, TypeError):
            shown = ", ".join(repr(b) for b in self.buses[:3])
            raise ConfigError(
                f"grid: bus {label!r} does not exist; buses are {shown}, ... "
                f"({self.n_buses} in all)"
            ) from None


def check_grid_source(source: str | os.PathLike[str]) -> None:
    """The one check that a ``grid`` value names a built-in grid or an existing file, for
    entry points that must refuse a run before any work starts (the file's contents are
    checked when the grid is built)."""
    if isinstance(source, str) and source.strip().lower() in BUILTIN_GRIDS:
        return
    if not Path(source).exists():
        raise ConfigError(
            f"grid file {os.fspath(source)!r}: no such file; give "
            f"{', '.join(BUILTIN_GRIDS)} or an existing GraphML or edge-list file"
        )


def build_grid(source: str | os.PathLike | nx.Graph = "ieee33", *, n_buses: int = 33,
               metric: str = "resistance", rng: np.random.Generator | None = None,
               memory_limit_bytes: float | None = None) -> Grid:
    """Build a :class:`Grid` from a built-in name, a file or a graph (docs/model.md §2).

    Args:
        source: ``"ieee33"`` (:func:`ieee33`), ``"synthetic"``
            (:func:`synthetic_radial_feeder` with ``n_buses`` and ``rng``), a path to a
            GraphML or edge-list file (:func:`load_graph`), or a ``networkx`` graph (copied).
            Built-in names win over a file of the same name.
        n_buses: number of buses of the synthetic feeder (ignored otherwise).
        metric: distance rule, a key of :data:`DISTANCE_METRICS`.
        rng: generator for the synthetic feeder (required for ``"synthetic"``).
        memory_limit_bytes: refuse a grid whose distance matrices need more (default:
            :func:`memory_limit_bytes`, 75 % of physical memory).

    The graph is validated (:func:`validate_graph`) before distances are computed; the
    substation is found with :func:`find_root`.  The stored graph is frozen and the
    distance matrix read-only.

    Raises:
        ConfigError: unknown metric or source, missing ``rng``, or an invalid graph/file.
    """
    _check_metric(metric)
    if isinstance(source, nx.Graph):
        label = "grid graph"
        g = _undirected(source)
        g = g.copy() if g is source else g
    elif isinstance(source, str) and source.strip().lower() in BUILTIN_GRIDS:
        name = source.strip().lower()
        label = f"grid {name!r}"
        if name == "ieee33":
            g = ieee33()
        else:
            if rng is None:
                raise ConfigError(
                    "grid 'synthetic': needs rng (a numpy.random.Generator, e.g. "
                    "numpy.random.default_rng(seed)); global random state is never used"
                )
            g = synthetic_radial_feeder(n_buses, rng)
    elif isinstance(source, str | os.PathLike):
        label = f"grid file {os.fspath(source)!r}"
        check_grid_source(source)
        g = load_graph(source)
    else:
        raise ConfigError(
            f"grid source of type {type(source).__name__} is not allowed; use "
            f"{' or '.join(repr(b) for b in BUILTIN_GRIDS)}, a file path or a networkx graph"
        )
    validate_graph(g, label)
    root_label = find_root(g, label)
    g.graph["root"] = root_label
    buses = _sorted_labels(g.nodes)
    _check_memory(label, len(buses), memory_limit_bytes)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            dist = DISTANCE_METRICS[metric](g, buses)
        ok = bool(np.isfinite(dist).all())
    except np.linalg.LinAlgError:
        ok = False
    if not ok:
        raise ConfigError(
            f"{label}: the {metric} distance cannot be computed (singular or overflowing "
            "Laplacian); the impedances span too many orders of magnitude"
        )
    dist.setflags(write=False)
    root = buses.index(root_label)
    return Grid(graph=nx.freeze(g), buses=buses, root=root, distance=dist, metric=metric)


#: Bus-by-bus float64 arrays alive at once (Laplacian, inverse, wheeling, reach, ...):
#: a whole run on a radial grid file peaks at 90-99 bytes per bus squared (2,000 and
#: 4,000 buses; docs/robustness.md), reading the grid alone at 41-49.
DISTANCE_MATRICES = 12
#: Address space a run maps but does not use (libraries, thread stacks, numba's LLVM):
#: VmPeak - VmHWM measured 490-620 MiB on default runs (docs/robustness.md).
ADDRESS_SPACE_OVERHEAD = 640 * 2**20


def physical_memory_bytes() -> int:
    """This machine's physical memory (0 if the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 0


def process_memory_limit() -> tuple[float, str] | None:
    """The tightest memory limit set on this process, as the resident bytes a run may
    use: its address-space limit (``ulimit -v``, ``prlimit --as``) less the address
    space a run maps without using (:data:`ADDRESS_SPACE_OVERHEAD`), or its cgroup's
    ``memory.max`` (a container's limit); None if neither is set."""
    found: list[tuple[float, str]] = []
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            found.append((max(soft - ADDRESS_SPACE_OVERHEAD, 0.0),
                          f"the process's address-space limit of {soft / 2**30:.3g} GiB "
                          "(ulimit -v) less what a run maps without using"))
    except (ImportError, OSError, ValueError):  # not POSIX
        pass
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            found.append((float(text), f"this container's memory.max of "
                                       f"{int(text) / 2**30:.3g} GiB"))
    except OSError:
        pass
    return min(found) if found else None


def memory_limit(memory_limit_gb: float | None) -> tuple[float, str]:
    """The effective memory limit in bytes and where it comes from: ``memory_limit_gb``
    (unset: 75 % of physical memory, 16 GiB if unknown), lowered to the process's own
    limit (:func:`process_memory_limit`) when that is tighter."""
    if memory_limit_gb is not None:
        limit, src = memory_limit_gb * 2**30, "memory_limit_gb"
    else:
        phys = physical_memory_bytes()
        limit = 0.75 * phys if phys > 0 else 16 * 2**30
        src = "75 % of this machine's memory; set memory_limit_gb to change it"
    own = process_memory_limit()
    return own if own is not None and own[0] < limit else (limit, src)


def memory_limit_bytes(memory_limit_gb: float | None) -> float:
    """:func:`memory_limit` in bytes."""
    return memory_limit(memory_limit_gb)[0]


def distance_matrix_bytes(n_buses: int, n_parties: int = 0) -> float:
    """Bus-by-bus distance, wheeling and reach matrices, and the party-by-bus distances."""
    return DISTANCE_MATRICES * 8.0 * n_buses**2 + 8.0 * n_buses * n_parties


def _check_memory(label: str, n_buses: int, limit: float | None) -> None:
    """Refuse before allocating: a grid file's size is known only once it is read."""
    need = distance_matrix_bytes(n_buses)
    limit, src = memory_limit(None) if limit is None else (limit, "memory_limit_gb")
    if need > limit:
        raise ConfigError(
            f"{label}: {n_buses} buses need about {need / 2**30:.3g} GiB for the distance "
            f"matrices, above the limit of {limit / 2**30:.3g} GiB ({src})"
        )


# --------------------------------------------------------------------------------------
# Wheeling tariff
# --------------------------------------------------------------------------------------


def wheeling_flat(distance: np.ndarray, base: float, rate: float) -> np.ndarray:
    """Flat wheeling tariff: ``base`` per kWh whatever the distance (docs/model.md §2).

    The papers' default is 0.02 yuan/kWh.  ``rate`` is ignored.  Returns an array of the
    shape of ``distance``.
    """
    return np.full(np.shape(distance), float(base))


def wheeling_distance(distance: np.ndarray, base: float, rate: float) -> np.ndarray:
    """Distance-proportional wheeling tariff ``base + rate * D`` per kWh (docs/model.md §2)."""
    return float(base) + float(rate) * np.asarray(distance, dtype=float)


WHEELING_RULES: dict[str, Rule] = {"flat": Rule(wheeling_flat),
                                   "distance": Rule(wheeling_distance)}
"""Registry of wheeling-tariff rules (docs/model.md §2): ``(distance, base, rate) -> tariff``,
vectorised over distance arrays."""


def wheeling_tariff(rule: str, distance: np.ndarray, base: float, rate: float) -> np.ndarray:
    """Return the wheeling tariff per kWh for each distance under ``rule`` (docs/model.md §2).

    Raises:
        ConfigError: unknown ``rule`` (the message lists the allowed ones), or ``base`` /
            ``rate`` not finite numbers.
    """
    if rule not in WHEELING_RULES:
        raise ConfigError(
            f"wheeling rule {rule!r} is unknown; allowed: {', '.join(WHEELING_RULES)}"
        )
    for name, value in (("base", base), ("rate", rate)):
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(float(value))
        ):
            raise ConfigError(f"wheeling {name}={value!r} is invalid; it must be a finite number")
    return WHEELING_RULES[rule](distance, base, rate)
