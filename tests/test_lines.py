"""Tests for dipi_abm.physics.flows: line flows and executability (docs/model.md §2, §4.3)."""

from __future__ import annotations

import time

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipi_abm.errors import ConfigError
from dipi_abm.physics.flows import LIMIT_KEYS, PTDF_METHODS, LineModel, ptdf_dc, ptdf_radial
from dipi_abm.physics.grid import build_grid, ieee33, synthetic_radial_feeder
from dipi_abm.physics.weather import load_shape


def _path(limits=None, n=4, x=0.1):
    """Path feeder 0-1-2-3 (root 0); ``limits[k]`` on the line k+1 -> k."""
    g = nx.Graph(root=0)
    for k in range(n - 1):
        attrs = {"r_ohm": x, "x_ohm": x}
        if limits is not None and limits[k] is not None:
            attrs["limit_kw"] = limits[k]
        g.add_edge(k, k + 1, **attrs)
    return build_grid(g)


def _incidence(lm: LineModel, grid) -> np.ndarray:
    """(L, B) incidence: +1 at the line's u bus, -1 at its v bus."""
    a = np.zeros((lm.n_lines, grid.n_buses))
    for row, (u, v, *_) in enumerate(lm.lines):
        a[row, grid.index_of(u)] += 1.0
        a[row, grid.index_of(v)] -= 1.0
    return a


def _assert_kcl(lm: LineModel, grid) -> None:
    """Net outflow at every bus equals the injection: +1 at k, -1 at the root."""
    expected = np.eye(grid.n_buses)
    expected[grid.root] -= 1.0
    np.testing.assert_allclose(_incidence(lm, grid).T @ lm.ptdf, expected, atol=1e-9)


# --------------------------------------------------------------------------------------
# PTDF
# --------------------------------------------------------------------------------------


def test_path_feeder_ptdf_by_hand():
    grid = _path()
    lm = LineModel.build(grid)
    assert lm.radial
    assert lm.lines == [(1, 0), (2, 1), (3, 2)]  # oriented towards the substation
    expected = np.array(
        [
            [0, 1, 1, 1],  # line 1 -> 0 carries whatever is injected at 1, 2 or 3
            [0, 0, 1, 1],
            [0, 0, 0, 1],
        ],
        dtype=float,
    )
    np.testing.assert_array_equal(lm.ptdf, expected)
    np.testing.assert_allclose(LineModel.build(grid, method="dc").ptdf, expected, atol=1e-12)
    assert np.all(np.isinf(lm.limit_kw))
    assert not lm.ptdf.flags.writeable and not lm.limit_kw.flags.writeable


def test_ieee33_radial_equals_dc():
    grid = build_grid("ieee33")
    radial = LineModel.build(grid)
    dc = LineModel.build(grid, method="dc")
    assert radial.radial and radial.n_lines == 32 and radial.ptdf.shape == (32, 33)
    assert radial.lines == dc.lines
    assert set(np.unique(radial.ptdf)) == {0.0, 1.0}
    np.testing.assert_allclose(dc.ptdf, radial.ptdf, atol=1e-9)
    # Line 2 -> 1 (the first line out of the substation) carries every injection.
    row = radial.lines.index((2, 1))
    assert radial.ptdf[row].sum() == 32


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 40), seed=st.integers(0, 2**32 - 1), shorts=st.floats(0.0, 0.4),
       relabel=st.booleans())
def test_radial_equals_dc_on_synthetic_feeders(n, seed, shorts, relabel):
    rng = np.random.default_rng(seed)
    g = synthetic_radial_feeder(n, rng)
    for _u, _v, d in g.edges(data=True):
        if rng.random() < shorts:
            d["x_ohm"] = 0.0  # a zero-impedance line: contracted by the DC path
    if relabel:  # the substation need not be the first bus
        perm = rng.permutation(n)
        g = nx.relabel_nodes(g, {k: int(perm[k]) for k in range(n)})
        g.graph["root"] = int(perm[0])
    grid = build_grid(g)
    radial = LineModel.build(grid)
    dc = LineModel.build(grid, method="dc")
    assert radial.radial
    np.testing.assert_allclose(dc.ptdf, radial.ptdf, atol=1e-9)
    assert np.all(radial.ptdf[:, grid.root] == 0.0)
    _assert_kcl(radial, grid)


def test_meshed_triangle_splits_by_susceptance():
    g = nx.Graph(root=0)
    g.add_edge(0, 1, r_ohm=9.0, x_ohm=1.0)  # x is used, not r
    g.add_edge(1, 2, r_ohm=9.0, x_ohm=2.0)
    g.add_edge(2, 0, r_ohm=9.0, x_ohm=3.0)
    grid = build_grid(g)
    lm = LineModel.build(grid)
    assert not lm.radial
    # Buses 1 and 2 are both one hop out: the tie is oriented from the later bus.
    assert lm.lines == [(1, 0), (2, 0), (2, 1)]
    # 1 kW at bus 1: direct path x = 1, detour 1-2-0 x = 5 -> 5/6 and 1/6.
    np.testing.assert_allclose(lm.ptdf[:, 1], [5 / 6, 1 / 6, -1 / 6])
    # 1 kW at bus 2: direct x = 3, detour 2-1-0 x = 3 -> half each.
    np.testing.assert_allclose(lm.ptdf[:, 2], [0.5, 0.5, 0.5])
    _assert_kcl(lm, grid)


def test_meshed_ieee33_with_ties_satisfies_kcl():
    grid = build_grid(ieee33(with_ties=True))
    lm = LineModel.build(grid, default_limit_kw=400.0)
    assert not lm.radial and lm.n_lines == 37
    _assert_kcl(lm, grid)
    assert np.all(np.abs(lm.ptdf) <= 1.0 + 1e-12)
    # Closing the ties relieves the trunk: bus 18's power partly returns via tie 18-33.
    radial = LineModel.build(build_grid("ieee33"))
    bus18 = grid.index_of(18)
    meshed_flow = lm.ptdf[lm.lines.index((18, 17)), bus18]
    assert 0.0 < meshed_flow < radial.ptdf[radial.lines.index((18, 17)), bus18] == 1.0


def test_parallel_lines_are_separate_and_share_by_susceptance():
    g = nx.MultiGraph(root=0)
    g.add_edge(0, 1, r_ohm=1.0, limit_kw=30.0)  # no x_ohm: r is used
    g.add_edge(0, 1, r_ohm=3.0, limit_kw=10.0)
    g.add_edge(1, 2, weight=1.0)
    grid = build_grid(g)
    lm = LineModel.build(grid)
    assert not lm.radial
    assert lm.lines == [(1, 0, 0), (1, 0, 1), (2, 1, 0)]
    np.testing.assert_allclose(lm.ptdf[:, 2], [0.75, 0.25, 1.0])
    np.testing.assert_array_equal(lm.limit_kw, [30.0, 10.0, np.inf])
    _assert_kcl(lm, grid)
    # 60 kWh from 2 to 0 loads the lines 45 / 15: the weak line binds at 10 -> 40 kWh.
    out = lm.curtail(np.array([2]), np.array([0]), np.array([60.0]))
    np.testing.assert_allclose(out, [40.0])


def test_zero_impedance_lines_carry_flow_in_a_mesh():
    g = nx.Graph(root=0)
    g.add_edge(0, 1, r_ohm=1.0)
    g.add_edge(1, 2, r_ohm=0.0, limit_kw=5.0)  # a closed switch: a short with a limit
    g.add_edge(2, 0, r_ohm=1.0)
    g.add_edge(2, 3, r_ohm=1.0)
    grid = build_grid(g)
    lm = LineModel.build(grid)
    assert lm.lines == [(1, 0), (2, 0), (2, 1), (3, 2)]
    # 1 kW at bus 3 reaches the shorted pair {1, 2} and leaves over two equal lines.
    np.testing.assert_allclose(lm.ptdf[:, 3], [0.5, 0.5, 0.5, 1.0])
    _assert_kcl(lm, grid)
    # The short's limit binds: 20 kWh 3 -> 0 puts 10 kW on it; cut to 10.
    np.testing.assert_allclose(lm.curtail(np.array([3]), np.array([0]), np.array([20.0])), [10.0])
    # A trade inside the shorted pair runs over the short only (1 -> 2 is against u -> v).
    np.testing.assert_allclose(lm.flows(np.array([1]), np.array([2]), np.array([7.0])),
                               [0, 0, -7, 0])


def test_loop_of_shorts_shares_equally():
    g = nx.MultiGraph(root=0)
    g.add_edge(0, 1, r_ohm=0.0)
    g.add_edge(0, 1, r_ohm=0.0)
    g.add_edge(0, 1, r_ohm=2.0)  # parallel to a short: carries nothing
    g.add_edge(1, 2, r_ohm=1.0)
    grid = build_grid(g)
    lm = LineModel.build(grid)
    np.testing.assert_allclose(lm.ptdf[:, 2], [0.5, 0.5, 0.0, 1.0])
    _assert_kcl(lm, grid)


def test_pure_ptdf_functions_are_registered():
    assert PTDF_METHODS == {"radial": ptdf_radial, "dc": ptdf_dc}
    u, v = np.array([1, 2]), np.array([0, 1])
    np.testing.assert_array_equal(ptdf_radial(3, 0, u, v, np.ones(2)), [[0, 1, 1], [0, 0, 1]])
    with pytest.raises(ConfigError, match="not a tree"):
        ptdf_radial(3, 0, np.array([0, 2]), np.array([1, 1]), np.ones(2))  # wrong direction


# --------------------------------------------------------------------------------------
# Limits and validation
# --------------------------------------------------------------------------------------


def test_limits_from_attributes_aliases_and_default():
    g = nx.Graph(root=0)
    g.add_edge(0, 1, r_ohm=1.0, limit_kw=100.0, rate_a_kw=1.0)  # first key wins
    g.add_edge(1, 2, r_ohm=1.0, rate_a_kw=80.0)
    g.add_edge(2, 3, r_ohm=1.0, thermal_limit_kw=60.0)
    g.add_edge(3, 4, r_ohm=1.0, my_rating=7.0)
    g.add_edge(4, 5, r_ohm=1.0, limit_kw=float("inf"))
    grid = build_grid(g)
    assert LIMIT_KEYS == ("limit_kw", "rate_a_kw", "thermal_limit_kw")
    lm = LineModel.build(grid, default_limit_kw=50.0)
    np.testing.assert_array_equal(lm.limit_kw, [100.0, 80.0, 60.0, 50.0, np.inf])
    lm = LineModel.build(grid, limit_attr="my_rating")
    np.testing.assert_array_equal(lm.limit_kw, [np.inf, np.inf, np.inf, 7.0, np.inf])


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "big", True])
def test_bad_limit_is_rejected(bad):
    g = nx.Graph(root=0)
    g.add_edge(0, 1, r_ohm=1.0, limit_kw=bad)
    with pytest.raises(ConfigError, match=r"edge \(0, 1\) limit_kw"):
        LineModel.build(build_grid(g))


def test_bad_build_arguments_are_rejected():
    grid = build_grid("ieee33")
    with pytest.raises(ConfigError, match="default_limit_kw"):
        LineModel.build(grid, default_limit_kw=-5.0)
    with pytest.raises(ConfigError, match="unknown; allowed: auto, radial, dc"):
        LineModel.build(grid, method="ac")
    with pytest.raises(ConfigError, match="needs a tree"):
        LineModel.build(build_grid(ieee33(with_ties=True)), method="radial")
    g = nx.Graph(root=0)
    g.add_edge(0, 1, r_ohm=1.0, x_ohm=-0.5)
    with pytest.raises(ConfigError, match="x_ohm"):
        LineModel.build(build_grid(g))


def test_bad_trade_arrays_are_rejected():
    lm = LineModel.build(_path([100.0, None, None]))
    one = np.array([1])
    with pytest.raises(ValueError, match="one length"):
        lm.flows(np.array([1, 2]), one, np.array([1.0]))
    with pytest.raises(ValueError, match="bus indices"):
        lm.flows(np.array([4]), one, np.array([1.0]))
    with pytest.raises(ValueError, match="bus indices"):
        lm.flows(np.array([1.0]), one, np.array([1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        lm.curtail(one, np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError, match="base_flow"):
        lm.curtail(one, np.array([0]), np.array([1.0]), base_flow=np.zeros(2))


# --------------------------------------------------------------------------------------
# Flows
# --------------------------------------------------------------------------------------


def test_flows_add_up_per_contract():
    grid = build_grid(ieee33(with_ties=True))
    lm = LineModel.build(grid)
    rng = np.random.default_rng(3)
    s, b = rng.integers(0, 33, 50), rng.integers(0, 33, 50)
    q = rng.uniform(0, 10, 50)
    expected = sum(q[c] * (lm.ptdf[:, s[c]] - lm.ptdf[:, b[c]]) for c in range(50))
    np.testing.assert_allclose(lm.flows(s, b, q), expected, atol=1e-9)
    np.testing.assert_array_equal(lm.flows(s[:0], b[:0], q[:0]), np.zeros(lm.n_lines))
    # A purchase from the grid is an injection at the root, a withdrawal at the bus.
    inj = np.zeros(33)
    inj[5] = -12.0
    np.testing.assert_allclose(lm.injection_flows(inj), lm.flows([grid.root], [5], [12.0]))


# --------------------------------------------------------------------------------------
# Curtailment
# --------------------------------------------------------------------------------------


def test_nothing_changes_when_no_limit_binds():
    lm = LineModel.build(build_grid("ieee33"), default_limit_kw=1e6)
    rng = np.random.default_rng(0)
    s, b, q = rng.integers(0, 33, 200), rng.integers(0, 33, 200), rng.uniform(0, 50, 200)
    np.testing.assert_array_equal(lm.curtail(s, b, q), q)
    unlimited = LineModel.build(build_grid("ieee33"))
    np.testing.assert_array_equal(unlimited.curtail(s, b, q), q)
    assert lm.curtail(s[:0], b[:0], q[:0]).shape == (0,)


def test_single_trade_over_a_100_kw_line_is_cut_to_100():
    lm = LineModel.build(_path([None, 100.0, None]))
    out = lm.curtail(np.array([3]), np.array([0]), np.array([150.0]))
    np.testing.assert_allclose(out, [100.0], rtol=1e-12)
    assert out[0] <= 150.0
    # The same trade the other way round is cut alike (limits hold in both directions).
    np.testing.assert_allclose(lm.curtail(np.array([0]), np.array([3]), np.array([150.0])), [100.0])


def test_opposite_trades_net_out_and_are_not_cut():
    lm = LineModel.build(_path([None, 100.0, None]))
    s, b, q = np.array([3, 0]), np.array([0, 2]), np.array([150.0, 120.0])
    np.testing.assert_allclose(lm.flows(s, b, q)[1], 30.0)
    np.testing.assert_array_equal(lm.curtail(s, b, q), q)


def test_only_trades_loading_the_overloaded_line_are_cut_pro_rata():
    lm = LineModel.build(_path([100.0, None, None]))
    s, b = np.array([3, 2, 1, 2, 3]), np.array([2, 0, 0, 0, 1])
    q = np.array([50.0, 80.0, 60.0, 20.0, 500.0])
    out = lm.curtail(s, b, q)
    # Line 1 -> 0 carries 160: the three trades into bus 0 scale by 100/160.
    np.testing.assert_allclose(out, [50.0, 50.0, 37.5, 12.5, 500.0])
    assert lm.flows(s, b, out)[0] == pytest.approx(100.0)


def test_base_flow_counts_and_an_unfixable_base_overload_is_left():
    lm = LineModel.build(_path([100.0, None, None]))
    s, b, q = np.array([1, 0]), np.array([0, 1]), np.array([50.0, 10.0])
    base = np.array([70.0, 0.0, 0.0])
    np.testing.assert_allclose(lm.curtail(s, b, q, base_flow=base), [40.0, 10.0])
    # The base flow alone overloads the line: the loading trade goes, the counter-flow stays.
    base = np.array([130.0, 0.0, 0.0])
    np.testing.assert_allclose(lm.curtail(s, b, q, base_flow=base), [0.0, 10.0])


def test_counter_flows_need_a_second_round():
    # Limits: 45 kW on 1 -> 0, 50 kW on 3 -> 2.  A = 3 -> 0 (100), B = 0 -> 2 (60),
    # D = 0 -> 1 (100).  Round 1 halves A (line 3 -> 2), which removes counter-flow from
    # line 1 -> 0, so the factor found there for B and D is not enough: round 2.
    lm = LineModel.build(_path([45.0, None, 50.0]))
    s, b = np.array([3, 0, 0]), np.array([0, 2, 1])
    q = np.array([100.0, 60.0, 100.0])
    out = lm.curtail(s, b, q)
    np.testing.assert_allclose(out, [50.0, 35.625, 59.375])
    flow = lm.flows(s, b, out)
    np.testing.assert_allclose(flow[[0, 2]], [-45.0, 50.0])
    assert not lm.overloaded(flow).any()
    # With one round only, the fallback cuts every trade loading an overloaded line.
    out = lm.curtail(s, b, q, max_iter=1)
    assert not lm.overloaded(lm.flows(s, b, out)).any()
    assert np.all((out >= 0) & (out <= q))
    out = lm.curtail(s, b, q, max_iter=0)
    assert not lm.overloaded(lm.flows(s, b, out)).any()


def _feeder(kind: str, n: int, seed: int):
    if kind == "ieee33":
        return build_grid(ieee33(with_ties=True))
    return build_grid("synthetic", n_buses=n, rng=np.random.default_rng(seed))


@settings(max_examples=80, deadline=None)
@given(kind=st.sampled_from(["radial", "ieee33"]), n=st.integers(2, 30),
       seed=st.integers(0, 2**32 - 1), n_trades=st.integers(0, 60), with_base=st.booleans(),
       max_iter=st.sampled_from([0, 1, 3, 50]))
def test_curtail_invariants(kind, n, seed, n_trades, with_base, max_iter):
    grid = _feeder(kind, n, seed)
    rng = np.random.default_rng(seed)
    lm = LineModel.build(grid)
    limit = np.where(rng.random(lm.n_lines) < 0.6, rng.uniform(0, 80, lm.n_lines), np.inf)
    limit[rng.random(lm.n_lines) < 0.05] = 0.0
    lm = LineModel(lines=lm.lines, limit_kw=limit, ptdf=lm.ptdf, radial=lm.radial)
    s = rng.integers(0, grid.n_buses, n_trades)
    b = rng.integers(0, grid.n_buses, n_trades)
    q = rng.uniform(0, 60, n_trades) * (rng.random(n_trades) < 0.9)
    base = None
    if with_base:
        base = np.where(np.isfinite(limit), limit, 100.0) * rng.uniform(-1, 1, lm.n_lines)

    out = lm.curtail(s, b, q, base_flow=base, max_iter=max_iter)

    assert out.shape == q.shape
    assert np.all(out >= 0.0) and np.all(out <= q)
    flow = lm.flows(s, b, out) + (0.0 if base is None else base)
    assert not lm.overloaded(flow).any()
    # A line can only ever be overloaded if its worst-case loading exceeds its limit; a
    # trade that touches none of those lines keeps its volume exactly.
    loading = lm.ptdf[:, s] - lm.ptdf[:, b]
    worst = np.abs(loading) @ q + (0.0 if base is None else np.abs(base))
    risky = worst > limit
    safe = ~(np.abs(loading[risky]) > 1e-12).any(axis=0)
    np.testing.assert_array_equal(out[safe], q[safe])
    # Trades between the same pair of buses are scaled alike.
    both = q > 0
    ratio = np.divide(out, q, out=np.ones_like(q), where=both)
    key = s * grid.n_buses + b
    for k in np.unique(key[both]):
        np.testing.assert_allclose(ratio[both & (key == k)], ratio[both & (key == k)][0])


def test_curtail_time_for_5000_contracts(capsys):
    rng = np.random.default_rng(0)
    grids = {"ieee33": build_grid("ieee33"),
             "synthetic-300": build_grid("synthetic", n_buses=300, rng=np.random.default_rng(1))}
    for name, grid in grids.items():
        lm = LineModel.build(grid, default_limit_kw=300.0)
        s = rng.integers(0, grid.n_buses, 5000)
        b = rng.integers(0, grid.n_buses, 5000)
        q = rng.uniform(0, 20, 5000)
        lm.curtail(s, b, q)  # warm up
        t0 = time.perf_counter()
        repeats = 10
        for _ in range(repeats):
            out = lm.curtail(s, b, q)
        ms = (time.perf_counter() - t0) / repeats * 1e3
        assert not lm.overloaded(lm.flows(s, b, out)).any()
        with capsys.disabled():
            print(
                f"\ncurtail, 5000 contracts on {name}: {ms:.2f} ms "
                f"({q.sum() - out.sum():.0f} of {q.sum():.0f} kWh curtailed)"
            )


# --------------------------------------------------------------------------------------
# Ratings, siting and the peak line loading (docs/model.md section 2)
# --------------------------------------------------------------------------------------


def test_loading_is_the_largest_flow_over_rating_hand_computed():
    lm = LineModel.build(_path([100.0, None, 40.0]))  # lines 1->0, 2->1, 3->2
    # 30 kW injected at bus 3, 50 kW drawn at bus 1: flows 3->2 +30, 2->1 +30, 1->0 -20
    assert lm.loading(np.array([0.0, -50.0, 0.0, 30.0])) == pytest.approx(30.0 / 40.0)
    assert lm.with_limits(np.full(3, np.inf)).loading(np.ones(4)) == 0.0
    with pytest.raises(ValueError, match="limit_kw"):
        lm.with_limits(np.array([1.0, -1.0, 1.0]))


def _model(**kw):
    from dipi_abm import DIPIModel

    return DIPIModel(**{"seed": 1, "ledger_detail": "off", **kw})


def test_ieee33_ratings_are_the_design_flow_with_the_margin_and_the_population_fits():
    m = _model()
    lm, g = m.line_model, m.grid
    design = np.array([g.graph.nodes[b]["p_kw"] for b in g.buses])
    np.testing.assert_allclose(lm.limit_kw, 1.5 * np.abs(lm.ptdf @ design))
    assert lm.limit_kw.max() == pytest.approx(1.5 * 3715.0)  # the substation's line
    s = m.state
    # worst cases the siting guarantees: all peak load and no output, all capacity, no load
    shape_peak = load_shape(s.load_class[:, None], np.arange(24)).max(axis=1)
    peak = s.mean_load_kw * shape_peak * (1 + 3 * m.params.load_noise_sd)
    for kw in (-peak, s.capacity_kw):
        flow = lm.injection_flows(np.bincount(s.bus, kw, g.n_buses))
        assert np.all(np.abs(flow) <= lm.limit_kw * (1 + 1e-9))
    m.run()
    h = m.hourly_dataframe()
    assert h.load_kwh.max() < 1.1 * 3715.0  # the design load, within the feeder's rating
    assert 0 < h.peak_line_loading.max() == m.summary()["peak_line_loading"] <= 1.0


def test_a_synthetic_grid_scales_its_ratings_with_its_load():
    keys = dict(grid="synthetic", grid_buses=40, hours=1)
    one = _model(**keys).line_model.limit_kw
    big = {f"load_{c}_kw": 2 * v for c, v in (("residential", 30.0), ("commercial", 55.0),
                                               ("industrial", 150.0), ("ev", 35.0))}
    big |= {f"capacity_{t}_kw": 2 * v for t, v in (("solar", 400.0), ("wind", 450.0),
                                                 ("hydro", 300.0), ("thermal", 350.0))}
    np.testing.assert_allclose(_model(**keys, **big).line_model.limit_kw, 2 * one)
    assert np.isfinite(one).all() and one.max() > 0


def test_explicit_limits_win_over_derived_ratings_and_max_parties_per_bus_holds():
    m = _model(line_limit_kw=700.0, max_parties_per_bus=2)
    assert np.all(m.line_model.limit_kw == 700.0)
    assert np.bincount(m.state.bus).max() <= 2
    assert np.isinf(_model(line_rating_margin=np.inf).line_model.limit_kw).all()


def _fit_one_by_one(lines, buses, user_weight, peak, cap, rng, limit):
    """The siting's definition, party by party (docs/model.md §3): the reference the
    windowed siting must equal to the bit."""
    from dipi_abm.physics.flows import OVERLOAD_RTOL

    rating = lines.limit_kw[:, None]
    tol = OVERLOAD_RTOL * np.maximum(rating, 1.0)
    p = lines.ptdf[:, buses]
    load_flow, gen_flow = np.zeros((lines.n_lines, 1)), np.zeros((lines.n_lines, 1))
    count, out = np.zeros(buses.size, np.int64), np.empty(peak.size, np.intp)
    draws = rng.random(peak.size)
    for i in np.argsort(-np.maximum(peak, cap), kind="stable"):
        with np.errstate(divide="ignore", invalid="ignore"):
            worst = np.maximum(np.abs(load_flow - peak[i] * p), np.abs(gen_flow + cap[i] * p))
            ratio = np.where(worst > tol, worst / rating, 0.0).max(axis=0)
        room = count < limit if limit else np.ones(buses.size, bool)
        ok = room & (ratio <= 1.0 + OVERLOAD_RTOL)
        where = ok if ok.any() else room
        w = np.where(where, user_weight if peak[i] > 0 and user_weight.sum() else 1.0, 0.0)
        if not w.any():
            w = where.astype(float)
        k = min(int(np.searchsorted(np.cumsum(w), draws[i] * w.sum(), side="right")),
                buses.size - 1)
        out[i], count[k] = buses[k], count[k] + 1
        load_flow -= peak[i] * p[:, k : k + 1]
        gen_flow += cap[i] * p[:, k : k + 1]
    return out


@settings(max_examples=40, deadline=None)
@given(n_users=st.integers(1, 3000), n_gen=st.integers(0, 400), seed=st.integers(0, 2**31),
       margin=st.sampled_from([0.3, 1.0, 1.5, 4.0]), limit=st.sampled_from([0, 3, 200]))
def test_the_windowed_siting_is_the_party_by_party_one(n_users, n_gen, seed, margin, limit):
    """Full feeders, overflowing ones, capped buses, users only: the same buses."""
    from dipi_abm.physics.siting import _fit, design_load_kw

    grid = build_grid("ieee33")
    rng = np.random.default_rng(seed)
    design = design_load_kw(grid)
    buses = np.array([b for b in range(grid.n_buses) if b != grid.root], np.intp)
    if limit and limit * buses.size < n_users + n_gen:
        limit = 0
    lines = LineModel.build(grid).with_limits(margin * np.abs(LineModel.build(grid).ptdf
                                                              @ -design))
    peak = np.concatenate([rng.lognormal(3, 1, n_users), np.zeros(n_gen)])
    cap = np.concatenate([np.where(rng.random(n_users) < 0.3, rng.uniform(3, 10, n_users), 0),
                          rng.uniform(50, 600, n_gen)])
    args = (lines, buses, design[buses], peak, cap)
    np.testing.assert_array_equal(
        _fit(*args, np.random.default_rng(seed), limit),
        _fit_one_by_one(*args, np.random.default_rng(seed), limit))
