"""Tests for dipi_abm.physics.grid (docs/model.md §2: the grid, electrical distance, wheeling)."""

from __future__ import annotations

import random

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipi_abm.errors import ConfigError
from dipi_abm.physics.grid import (
    DISTANCE_METRICS,
    IMPEDANCE_KEYS,
    WHEELING_RULES,
    Grid,
    build_grid,
    electrical_distance,
    find_root,
    graph_to_edge_list,
    ieee33,
    load_graph,
    save_graphml,
    synthetic_radial_feeder,
    validate_graph,
    wheeling_distance,
    wheeling_flat,
    wheeling_tariff,
)

# r (ohm) of lines 1-2, 2-3, ..., 17-18 of Baran & Wu (1989).
MAIN_TRUNK_R = [0.0922, 0.4930, 0.3660, 0.3811, 0.8190, 0.1872, 0.7114, 1.0300, 1.0440, 0.1966,
                0.3744, 1.4680, 0.5416, 0.5910, 0.7463, 1.2890, 0.7320]  # fmt: skip


def _line(edges, *, key="r_ohm", multi=False):
    g = nx.MultiGraph() if multi else nx.Graph()
    for u, v, r in edges:
        g.add_edge(u, v, **{key: r})
    return g


def _one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


# ------------------------------------------------------------------ IEEE 33-bus feeder


def test_ieee33_shape_and_loads():
    g = ieee33()
    assert g.number_of_nodes() == 33
    assert g.number_of_edges() == 32
    assert sorted(g.nodes) == list(range(1, 34))
    assert nx.is_tree(g)
    assert g.graph["root"] == 1
    assert sum(d["p_kw"] for _, d in g.nodes(data=True)) == pytest.approx(3715.0)
    assert sum(d["q_kvar"] for _, d in g.nodes(data=True)) == pytest.approx(2300.0)
    assert g.nodes[1]["p_kw"] == 0.0
    assert all("r_ohm" in d and "x_ohm" in d for _, _, d in g.edges(data=True))
    for a, b in [(8, 21), (9, 15), (12, 22), (18, 33), (25, 29)]:
        assert not g.has_edge(a, b)


def test_ieee33_with_ties_is_meshed():
    g = ieee33(with_ties=True)
    assert g.number_of_edges() == 37
    ties = {frozenset((u, v)) for u, v, d in g.edges(data=True) if d.get("switch")}
    assert ties == {frozenset(p) for p in [(8, 21), (9, 15), (12, 22), (18, 33), (25, 29)]}
    assert nx.is_connected(g) and not nx.is_tree(g)


def test_ieee33_known_path_resistance():
    grid = build_grid("ieee33")
    i, j = grid.index_of(1), grid.index_of(18)
    assert grid.distance[i, j] == pytest.approx(sum(MAIN_TRUNK_R), rel=1e-12)
    assert grid.distance[i, j] == pytest.approx(11.0628, rel=1e-10)
    buses, hops = electrical_distance(ieee33(), "hops")
    assert hops[buses.index(1), buses.index(18)] == 17
    assert hops[buses.index(18), buses.index(33)] == 12 + 8  # 18..6 then 6-26..33


def test_resistance_equals_path_impedance_on_ieee33():
    b1, res = electrical_distance(ieee33(), "resistance")
    b2, path = electrical_distance(ieee33(), "path_impedance")
    assert b1 == b2 == list(range(1, 34))
    np.testing.assert_allclose(res, path, rtol=1e-9, atol=1e-9)


def _check_distance_matrix(d):
    assert np.array_equal(d, d.T)
    assert np.all(np.diag(d) == 0)
    assert np.all(d >= 0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 200), seed=st.integers(0, 2**32 - 1))
def test_synthetic_feeder_radial_resistance_equals_path(n, seed):
    g = synthetic_radial_feeder(n, np.random.default_rng(seed))
    assert g.number_of_nodes() == n
    assert nx.is_tree(g) and nx.is_connected(g)
    assert g.graph["root"] == 0
    _, res = electrical_distance(g, "resistance")
    _, path = electrical_distance(g, "path_impedance")
    _check_distance_matrix(res)
    _check_distance_matrix(path)
    np.testing.assert_allclose(res, path, rtol=1e-9, atol=1e-9 * max(1.0, path.max()))


def test_meshed_resistance_is_below_path_and_a_metric():
    g = ieee33(with_ties=True)
    _, res = electrical_distance(g, "resistance")
    _, path = electrical_distance(g, "path_impedance")
    _check_distance_matrix(res)
    assert np.all(res <= path + 1e-9)
    assert np.any(res < path - 1e-3)
    # triangle inequality D[i,k] <= D[i,j] + D[j,k] for all i, j, k
    via = res[:, :, None] + res[None, :, :]  # [i, j, k] = D[i,j] + D[j,k]
    assert np.all(res[:, None, :] <= via + 1e-9)
    # distinct buses are at positive distance
    assert np.all(res[~np.eye(33, dtype=bool)] > 0)


def test_two_parallel_one_ohm_paths_give_half_an_ohm():
    square = _line([("a", "c", 0.5), ("c", "b", 0.5), ("a", "d", 0.5), ("d", "b", 0.5)])
    buses, d = electrical_distance(square)
    assert d[buses.index("a"), buses.index("b")] == pytest.approx(0.5)
    multi = _line([(0, 1, 1.0), (0, 1, 1.0)], multi=True)
    for metric in ("resistance", "path_impedance"):
        _, d = electrical_distance(multi, metric)
        assert d[0, 1] == pytest.approx(0.5)
    _, hops = electrical_distance(multi, "hops")
    assert hops[0, 1] == 1


def test_weight_key_used_when_no_r_ohm():
    assert IMPEDANCE_KEYS == ("r_ohm", "weight")
    g = _line([(0, 1, 2.0), (1, 2, 3.0)], key="weight")
    _, d = electrical_distance(g)
    assert d[0, 2] == pytest.approx(5.0)
    g.add_edge(2, 3, r_ohm=1.0, weight=100.0)  # r_ohm wins
    _, d = electrical_distance(g)
    assert d[0, 3] == pytest.approx(6.0)


@pytest.mark.parametrize("metric", ["resistance", "path_impedance"])
def test_zero_impedance_switch_contracts(metric):
    g = _line([(0, 1, 1.0), (1, 2, 0.0), (2, 3, 2.0), (2, 4, 0.0), (4, 5, 0.5), (5, 0, 0.7)])
    buses, d = electrical_distance(g, metric)
    _check_distance_matrix(d)
    assert d[1, 2] == 0 and d[2, 4] == 0 and d[1, 4] == 0
    np.testing.assert_array_equal(d[1], d[2])
    np.testing.assert_array_equal(d[2], d[4])
    assert d[2, 3] == pytest.approx(2.0)
    if metric == "resistance":  # loop 1-0-5-{2,4}: 1.0 in parallel with 1.2
        assert d[0, 1] == pytest.approx(1.0 * 1.2 / 2.2)
    else:
        assert d[0, 1] == pytest.approx(1.0)
    _, hops = electrical_distance(g, "hops")
    assert hops[1, 2] == 1  # a switch is still one line


def test_all_zero_impedance_graph():
    g = _line([(0, 1, 0.0), (1, 2, 0.0)])
    for metric in DISTANCE_METRICS:
        _, d = electrical_distance(g, metric)
        assert d.shape == (3, 3)
        if metric != "hops":
            assert np.all(d == 0)


def test_directed_graph_read_as_undirected():
    g = nx.DiGraph()
    g.add_edge(0, 1, r_ohm=1.0)
    g.add_edge(2, 1, r_ohm=2.0)
    _, d = electrical_distance(g)
    assert d[0, 2] == pytest.approx(3.0)
    g.add_edge(1, 0, r_ohm=1.0)  # both directions: two parallel lines
    _, d = electrical_distance(g)
    assert d[0, 1] == pytest.approx(0.5)


# ------------------------------------------------------------------ synthetic feeder


def test_synthetic_feeder_reproducible_and_realistic():
    a = synthetic_radial_feeder(60, np.random.default_rng(7))
    b = synthetic_radial_feeder(60, np.random.default_rng(7))
    c = synthetic_radial_feeder(60, np.random.default_rng(8))
    assert list(a.edges(data=True)) == list(b.edges(data=True))
    assert list(a.edges(data=True)) != list(c.edges(data=True))
    for g in (a, c):
        degrees = [deg for _, deg in g.degree()]
        assert 3 <= max(degrees) < 59  # has laterals, not a star
        assert sum(1 for x in degrees if x == 1) > 2  # not a path
        assert nx.eccentricity(g, 0) > 10  # a trunk, not a bush
        for _, _, d in g.edges(data=True):
            assert 0.05 <= d["r_ohm"] <= 0.8
            assert 0.5 - 1e-12 <= d["x_ohm"] / d["r_ohm"] <= 1.5 + 1e-12


def test_synthetic_feeder_leaves_global_random_state_alone():
    np.random.seed(123)  # noqa: NPY002 (the legacy global state is what we check)
    random.seed(123)
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    synthetic_radial_feeder(40, np.random.default_rng(1))
    build_grid("synthetic", n_buses=40, rng=np.random.default_rng(1))
    after = np.random.get_state()  # noqa: NPY002
    assert all(np.array_equal(x, y) for x, y in zip(np_state, after, strict=True))
    assert random.getstate() == py_state


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"n_buses": 1}, "n_buses"), ({"n_buses": 2.5}, "n_buses"),
     ({"n_buses": 10, "rng": 42}, "rng"),
     ({"n_buses": 10, "r_ohm_range": (0.5, 0.1)}, "r_ohm_range"),
     ({"n_buses": 10, "x_over_r": (-1, 1)}, "x_over_r")],
)
def test_synthetic_feeder_rejects_bad_input(kwargs, needle):
    kwargs.setdefault("rng", np.random.default_rng(0))
    with pytest.raises(ConfigError) as excinfo:
        synthetic_radial_feeder(**kwargs)
    _one_line_error(excinfo, needle)


# ------------------------------------------------------------------ files


def test_graphml_round_trip(tmp_path):
    g = ieee33(with_ties=True)
    path = tmp_path / "feeder.graphml"
    save_graphml(g, path)
    h = load_graph(path)
    assert sorted(h.nodes) == list(range(1, 34))
    assert h.graph["root"] == 1
    assert all(isinstance(d["r_ohm"], float) for _, _, d in h.edges(data=True))
    assert sum(d.get("switch", False) for _, _, d in h.edges(data=True)) == 5
    for metric in DISTANCE_METRICS:
        np.testing.assert_array_equal(electrical_distance(g, metric)[1],
                                      electrical_distance(h, metric)[1])
    grid = build_grid(path)
    assert grid.root_bus == 1 and grid.n_buses == 33


def test_edge_list_round_trip(tmp_path):
    g = synthetic_radial_feeder(30, np.random.default_rng(3))
    g.graph["root"] = 5
    path = tmp_path / "feeder.csv"
    graph_to_edge_list(g, path)
    h = load_graph(path)
    assert h.graph["root"] == 5
    assert sorted(h.nodes) == list(range(30))
    b1, d1 = electrical_distance(g)
    b2, d2 = electrical_distance(h)
    assert b1 == b2
    np.testing.assert_array_equal(d1, d2)
    grid = build_grid(str(path))
    assert grid.root_bus == 5 and grid.root == 5


def test_edge_list_formats(tmp_path):
    path = tmp_path / "grid.txt"
    path.write_text("# a feeder\n\nsub  a   0.5  0.2   # trunk\na b 0.25\nb\tc\t0.0\n",
                    encoding="utf-8")
    g = load_graph(path)
    assert set(g.nodes) == {"sub", "a", "b", "c"}
    assert g.graph["root"] == "a"  # first in sorted order
    assert g.edges["sub", "a"] == {"r_ohm": 0.5, "x_ohm": 0.2}
    path2 = tmp_path / "grid.csv"
    path2.write_text("From, To, Weight\n1, 2, 3\n2, 3, 4\n1, 2, 3\n", encoding="utf-8")
    g2 = load_graph(path2)
    assert g2.is_multigraph() and sorted(g2.nodes) == [1, 2, 3]
    buses, d = electrical_distance(g2)
    assert d[0, 2] == pytest.approx(1.5 + 4)


def test_graphml_string_attributes_become_floats(tmp_path):
    g = nx.Graph()
    g.add_edge("x", "y", r_ohm="0.75", x_ohm="0.5")
    g.add_edge("y", "z", r_ohm="1.25", x_ohm="0.5")
    g.nodes["z"]["root"] = True
    path = tmp_path / "grid.xml"
    nx.write_graphml(g, path)
    h = load_graph(path)
    assert h.edges["x", "y"]["r_ohm"] == 0.75
    assert h.graph["root"] == "z"
    grid = build_grid(path)
    assert grid.root_bus == "z"
    assert grid.distance[grid.index_of("x"), grid.index_of("z")] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("name", "content", "needles"),
    [("bad.csv", "1 2 0.5\n2 3\n", ["bad.csv", "line 2", "2 fields"]),
     ("bad.csv", "1 2 0.5\n2 3 4 5 6\n", ["bad.csv", "line 2"]),
     ("bad.txt", "# c\n1 2 0.5\n2 3 abc\n", ["bad.txt", "line 3", "'abc'", "not a number"]),
     ("bad.csv", "from,to,r_ohm\n1,2,0.5\n2,3,0.1,0.3\n", ["bad.csv", "line 3"]),
     ("bad.csv", "from,to,length\n1,2,0.5\n", ["bad.csv", "r_ohm"]),
     ("bad.csv", "# nothing\n", ["bad.csv", "no edges"]),
     ("bad.csv", "# root: 9\n1 2 0.5\n", ["bad.csv", "root"]),
     ("bad.graphml", "<graphml><graph>oops", ["bad.graphml", "GraphML"]),
     ("bad.graphml", "not xml at all", ["bad.graphml", "GraphML"])],
)
def test_bad_files_rejected(tmp_path, name, content, needles):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as excinfo:
        load_graph(path)
    _one_line_error(excinfo, *needles)


def test_binary_and_missing_files_rejected(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        load_graph(tmp_path / "missing.csv")
    _one_line_error(excinfo, "missing.csv", "no such file")
    with pytest.raises(ConfigError) as excinfo:
        build_grid(str(tmp_path / "missing.graphml"))
    _one_line_error(excinfo, "missing.graphml")
    binary = tmp_path / "blob.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError) as excinfo:
        load_graph(binary)
    _one_line_error(excinfo, "blob.csv")
    with pytest.raises(ConfigError) as excinfo:
        load_graph(tmp_path)
    _one_line_error(excinfo, "not a regular file")


def test_invalid_graph_file_names_file(tmp_path):
    path = tmp_path / "neg.csv"
    path.write_text("1 2 0.5\n3 4 -0.2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as excinfo:
        build_grid(path)
    _one_line_error(excinfo, "grid file", "neg.csv", "(3, 4)", "r_ohm=-0.2", ">= 0")
    path.write_text("1 2 0.5\n3 4 0.2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as excinfo:
        build_grid(path)
    _one_line_error(excinfo, "neg.csv", "disconnected", "2 components")


# ------------------------------------------------------------------ validation


def _graph_with(**attrs):
    g = nx.Graph()
    g.add_edge(0, 1, r_ohm=1.0)
    g.add_edge(1, 2, **attrs)
    return g


@pytest.mark.parametrize(
    ("g", "needles"),
    [(nx.Graph(), ["0 buses"]), (nx.path_graph(1), ["1 bus", "at least 2"]),
     (_graph_with(x_ohm=1.0), ["(1, 2)", "no impedance", "r_ohm or weight"]),
     (_graph_with(r_ohm="abc"), ["(1, 2)", "non-numeric", "'abc'"]),
     (_graph_with(r_ohm="0.5"), ["(1, 2)", "non-numeric"]),
     (_graph_with(r_ohm=True), ["(1, 2)", "non-numeric"]),
     (_graph_with(weight=float("nan")), ["(1, 2)", "weight=nan", "finite"]),
     (_graph_with(r_ohm=float("inf")), ["(1, 2)", "r_ohm=inf", "finite"]),
     (_graph_with(r_ohm=-0.2), ["(1, 2)", "negative", "r_ohm=-0.2", ">= 0"]),
     (_line([(0, 1, 1.0), (1, 1, 1.0)]), ["(1, 1)", "self-loop"]),
     (_line([(0, 1, 1.0), (2, 3, 1.0), (4, 5, 1.0)]), ["disconnected", "3 components"]),
     ("not a graph", ["networkx graph"])],
)
def test_validate_graph_rejections(g, needles):
    with pytest.raises(ConfigError) as excinfo:
        validate_graph(g, "grid 'mine.graphml'")
    _one_line_error(excinfo, "grid 'mine.graphml'", *needles)


def test_validate_graph_accepts_zero_impedance_and_multigraph():
    validate_graph(_graph_with(r_ohm=0.0), "g")
    validate_graph(_line([(0, 1, 1.0), (0, 1, 0.0)], multi=True), "g")
    validate_graph(ieee33(with_ties=True), "g")


def test_find_root_rules():
    g = _line([(3, 1, 1.0), (1, 2, 1.0)])
    assert find_root(g) == 1
    g.nodes[2]["root"] = True
    assert find_root(g) == 2
    g.graph["root"] = 3
    assert find_root(g) == 3
    g.graph["root"] = 99
    with pytest.raises(ConfigError) as excinfo:
        find_root(g, "grid 'x'")
    _one_line_error(excinfo, "grid 'x'", "root=99")
    del g.graph["root"]
    g.nodes[3]["root"] = True
    with pytest.raises(ConfigError) as excinfo:
        find_root(g, "grid 'x'")
    _one_line_error(excinfo, "2 buses", "root=True")


# ------------------------------------------------------------------ build_grid / Grid


def test_build_grid_default_ieee33():
    grid = build_grid()
    assert isinstance(grid, Grid)
    assert grid.n_buses == 33 and grid.metric == "resistance"
    assert grid.buses == list(range(1, 34))
    assert grid.root == 0 and grid.root_bus == 1
    assert grid.index_of(18) == 17
    assert grid.distance.shape == (33, 33)
    with pytest.raises(ValueError):
        grid.distance[0, 1] = 5.0
    with pytest.raises(nx.NetworkXError):
        grid.graph.add_edge(1, 40, r_ohm=1.0)
    with pytest.raises(ConfigError) as excinfo:
        grid.index_of(99)
    _one_line_error(excinfo, "bus 99")


def test_build_grid_sources_and_metrics():
    syn = build_grid("synthetic", n_buses=50, rng=np.random.default_rng(5), metric="hops")
    assert syn.n_buses == 50 and syn.root_bus == 0 and syn.metric == "hops"
    assert syn.distance.max() >= 5
    g = _line([("b", "a", 1.0), ("b", "c", 2.0)])
    grid = build_grid(g, metric="path_impedance")
    assert grid.buses == ["a", "b", "c"] and grid.root_bus == "a"
    g.add_edge("c", "d", r_ohm=1.0)  # the grid holds its own copy
    assert grid.n_buses == 3
    assert grid.distance[0, 2] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("args", "kwargs", "needles"),
    [(("ieee33",), {"metric": "euclid"}, ["'euclid'", "resistance", "path_impedance", "hops"]),
     (("synthetic",), {"n_buses": 10}, ["synthetic", "rng"]),
     (("synthetic",), {"n_buses": 1, "rng": np.random.default_rng(0)}, ["n_buses"]),
     (("ieee-34",), {}, ["'ieee-34'", "ieee33", "synthetic"]),
     ((42,), {}, ["int", "networkx graph"]), ((nx.Graph(),), {}, ["grid graph", "0 buses"])],
)
def test_build_grid_rejections(args, kwargs, needles):
    with pytest.raises(ConfigError) as excinfo:
        build_grid(*args, **kwargs)
    _one_line_error(excinfo, *needles)


def test_unknown_metric_in_electrical_distance():
    with pytest.raises(ConfigError) as excinfo:
        electrical_distance(ieee33(), "euclid")
    _one_line_error(excinfo, "allowed: resistance, path_impedance, hops")


# ------------------------------------------------------------------ wheeling


def test_wheeling_rules():
    assert set(WHEELING_RULES) == {"flat", "distance"}
    d = np.array([[0.0, 2.0], [2.0, 0.0]])
    flat = wheeling_tariff("flat", d, 0.02, 0.5)
    assert flat.shape == d.shape and np.all(flat == 0.02)
    np.testing.assert_allclose(wheeling_tariff("distance", d, 0.01, 0.005), 0.01 + 0.005 * d)
    assert wheeling_flat(np.zeros(4), 0.02, 1.0).shape == (4,)
    assert float(wheeling_distance(3.0, 1.0, 2.0)) == 7.0
    grid = build_grid()
    w = wheeling_tariff("distance", grid.distance, 0.0, 0.01)
    assert w.shape == (33, 33) and np.all(w >= 0)


@pytest.mark.parametrize(
    ("rule", "base", "rate", "needles"),
    [("toll", 0.02, 0.0, ["'toll'", "flat", "distance"]), ("flat", float("nan"), 0.0, ["base"]),
     ("distance", 0.02, "x", ["rate"])],
)
def test_wheeling_rejections(rule, base, rate, needles):
    with pytest.raises(ConfigError) as excinfo:
        wheeling_tariff(rule, np.zeros(3), base, rate)
    _one_line_error(excinfo, *needles)
