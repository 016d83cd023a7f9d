"""The dashboard without a browser: controls, snapshot, figures, runner, server command."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
import threading
from pathlib import Path
from types import SimpleNamespace

import networkx as nx
import numpy as np
import pytest

from dipi_abm import ConfigError, DIPIModel
from dipi_abm import config as cfg
from dipi_abm.dashboard import charts, compare, export, figures, server, views
from dipi_abm.dashboard import controls as ctl
from dipi_abm.dashboard import runner as runner_mod
from dipi_abm.physics.grid import build_grid, save_graphml

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model():
    m = DIPIModel(seed=3, n_dpgc=10, n_users=50, hours=48)
    m.run(5)
    return m


# ------------------------------------------------------------------------------ controls
def test_controls_come_from_the_registry():
    keys = [c.key for c in ctl.controls()]
    for key in ("n_dpgc", "n_users", "share_solar", "share_wind", "share_hydro",
                "share_thermal", "grid", "grid_buses", "matching", "credit_rule",
                "natural_factor", "poca_tau", "consensus", "poca_mode", "seed", "hours"):
        assert key in keys
    assert all(k in cfg.PARAMS_BY_NAME for k in keys)
    by_key = {c.key: c for c in ctl.controls()}
    assert by_key["matching"].choices == cfg.PARAMS_BY_NAME["matching"].choice_values()
    assert by_key["consensus"].widget == "select"
    assert by_key["natural_factor"].hint == "a number in [0, 0.3)"
    assert by_key["hours"].default == "168"
    assert by_key["seed"].default == ""  # no seed: fresh entropy
    assert by_key["grid"].choices == ("ieee33", "synthetic")
    assert by_key["poca_tau"].label == "poca_tau [credit] (τ)"
    # Every rule key (a registry of names) is a select of its names; breach_policy takes
    # several, and a list of them reads as the stored form.
    for p in cfg.PARAMS:
        if p.choices is not None and p.name != "grid":
            assert by_key[p.name].choices == p.choice_values(), p.name
            assert by_key[p.name].widget == ("multiselect" if p.combine else "select")
    assert by_key["breach_policy"].default == ["none"]
    assert ctl.parse_control("breach_policy", ["credit_gate", "deposit"]) == \
        "deposit+credit_gate"
    with pytest.raises(ConfigError, match="breach_policy"):
        ctl.parse_control("breach_policy", ["none", "deposit"])
    assert ctl.pick_names(["none"], ["none", "deposit"]) == ["deposit"]
    assert ctl.pick_names(["deposit"], ["deposit", "none"]) == ["none"]
    assert ctl.pick_names(["deposit"], []) == ["none"]
    # a second click sent before the first one's answer arrived still lists "none"
    assert ctl.pick_names(["deposit"], ["none", "deposit", "credit_gate"]) == \
        ["deposit", "credit_gate"]


def test_keys_not_in_the_registry_get_no_control_until_added():
    registry = dict(cfg.PARAMS_BY_NAME)
    for key in ("cma_w_credit", "cma_w_distance", "cma_w_price", "cma_w_green",
                "opportunist_share"):
        registry.pop(key, None)
    keys = [c.key for c in ctl.controls(registry)]
    assert "cma_w_credit" not in keys and "opportunist_share" not in keys
    registry["cma_w_credit"] = cfg.Param("cma_w_credit", 1.0, float, "-", "CMA credit weight",
                                         "market", low=0.0)
    registry["opportunist_share"] = cfg.Param("opportunist_share", 0.1, float, "-",
                                              "share", "population", low=0.0, high=1.0)
    groups = dict(ctl.control_groups(registry))
    market = [c.key for c in groups["Market"]]
    assert market == ["matching", "price_rule", "tariff", "cma_w_credit"]
    behaviour = [c.key for c in groups["Behaviour"]]
    assert behaviour == ["learning", "opportunist_share"]
    assert ctl.default_values(registry)["cma_w_credit"] == "1"


@pytest.mark.parametrize(("value", "text"), [(None, ""), (True, "true"), (168, "168"),
                                             (0.1, "0.1"), (1500.0, "1500"), (math.inf, "inf"),
                                             (1e-7, "1e-07"), ("ieee33", "ieee33")])
def test_format_value_reads_back(value, text):
    assert ctl.format_value(value) == text
    if value is not None and not isinstance(value, bool | str):
        assert cfg.parse_value(text) == value


def test_parse_control_uses_the_registry_checks():
    assert ctl.parse_control("n_users", " 90 ") == 90
    assert ctl.parse_control("natural_factor", "0.25") == 0.25
    assert ctl.parse_control("seed", "") is None
    assert ctl.parse_control("seed", "42") == 42
    assert ctl.parse_control("matching", "centralized") == "centralized"
    with pytest.raises(ConfigError, match=r"natural_factor = 0.4: must be a number in \[0, 0.3\)"):
        ctl.parse_control("natural_factor", "0.4")
    with pytest.raises(ConfigError, match="n_users = 'ninety'"):
        ctl.parse_control("n_users", "ninety")
    with pytest.raises(ConfigError, match="n_users is empty"):
        ctl.parse_control("n_users", "")
    with pytest.raises(ConfigError, match="n_users = 2.5"):
        ctl.parse_control("n_users", "2.5")


def test_field_errors_name_each_refused_field():
    entries = {**ctl.default_values(), "n_users": "0", "poca_tau": "-1", "hours": "24"}
    errors = ctl.field_errors(entries)
    assert set(errors) == {"n_users", "poca_tau"}
    assert errors["n_users"] == "n_users = 0: must be an integer in [1, 10000000]"
    assert ctl.field_errors(ctl.default_values()) == {}


def test_scenario_from_controls_checks_everything():
    values = ctl.scenario_from_controls({**ctl.default_values(), "n_users": "90"})
    assert values["n_users"] == 90 and values["seed"] is None and values["grid"] == "ieee33"
    DIPIModel(**values)  # what Reset does
    with pytest.raises(ConfigError, match="shares must sum to 1"):
        ctl.scenario_from_controls({**ctl.default_values(), "share_solar": "0.5"})
    with pytest.raises(ConfigError, match="natural_factor = 0.4"):
        ctl.scenario_from_controls({**ctl.default_values(), "natural_factor": "0.4"})
    with pytest.raises(ConfigError, match="drop a GraphML file first"):
        ctl.scenario_from_controls({**ctl.default_values(), "grid": ctl.UPLOADED})
    path = "/some/grid.graphml"
    got = ctl.scenario_from_controls({**ctl.default_values(), "grid": ctl.UPLOADED},
                                     uploaded_grid=path)
    assert got["grid"] == path


def test_other_keys_box_reads_like_set():
    extra = "# comment\nmatching = centralized\n\nmax_distance_ohm=inf  # no limit\n"
    assert ctl.parse_extra(extra) == {"matching": "centralized", "max_distance_ohm": math.inf}
    values = ctl.scenario_from_controls(ctl.default_values(), extra="tariff = tou")
    assert values["tariff"] == "tou"
    with pytest.raises(ConfigError, match="unknown key 'tarif'"):
        ctl.scenario_from_controls(ctl.default_values(), extra="tarif = tou")
    with pytest.raises(ConfigError, match="must be KEY=VALUE"):
        ctl.parse_extra("tariff")


# ------------------------------------------------------------------------------ snapshot
def test_bus_stats_aggregate_parties_and_trades_per_bus():
    kind = np.array([0, 0, 1, 1, 1], np.int8)
    bus = np.array([0, 2, 2, 1, 2])
    capacity = np.array([100.0, 50.0, 0.0, 0.0, 0.0])
    load = np.array([0.0, 0.0, 2.0, 3.0, 4.0])
    credit = np.array([99.5, 89.0, 96.0, 100.0, 92.0])
    breach = np.array([False, True, False, False, True])
    # Contracts (party rows): 0 -> 2 (bus 0 -> 2), 1 -> 4 (within bus 2), 1 -> 3 (2 -> 1).
    seller, buyer = np.array([0, 1, 1]), np.array([2, 4, 3])
    volume = np.array([10.0, 4.0, 6.0])
    b = views.bus_stats(4, kind, bus, capacity, load, credit, breach, seller, buyer, volume)
    assert b.n_dpgc.tolist() == [1, 0, 1, 0] and b.n_user.tolist() == [0, 1, 2, 0]
    assert b.capacity_kw.tolist() == [100.0, 0.0, 50.0, 0.0]
    assert b.load_kw.tolist() == [0.0, 3.0, 6.0, 0.0]
    assert b.sold_kwh.tolist() == [10.0, 0.0, 10.0, 0.0]
    assert b.bought_kwh.tolist() == [0.0, 6.0, 14.0, 0.0]
    assert b.local_kwh.tolist() == [0.0, 0.0, 4.0, 0.0]
    assert b.net_kwh.tolist() == [10.0, -6.0, -4.0, 0.0]
    assert b.net_kwh.sum() == 0.0  # every kWh sold is bought
    assert b.breaches.tolist() == [0, 0, 2, 0]
    # Bands [0, 90), [90, 95), [95, 99), [99, 100].
    assert b.credit_bands.tolist() == [[0, 0, 0, 1], [0, 0, 0, 1], [1, 1, 1, 0], [0, 0, 0, 0]]
    assert b.credit_min[2] == 89.0 and b.credit_mean[2] == pytest.approx((89 + 96 + 92) / 3)
    assert b.credit_mean_dpgc[2] == 89.0 and b.credit_mean_user[2] == 94.0
    assert np.isnan(b.credit_mean[3]) and np.isnan(b.credit_min[3])


def test_snapshot_copies_what_the_page_draws(model):
    snap = views.take_snapshot(model, build=7)
    assert snap.build == 7 and snap.hour == 5 and snap.hours == 48 and snap.running
    assert (snap.n_parties, snap.n_dpgc, snap.n_users) == (60, 10, 50)
    assert snap.p2p_kwh == pytest.approx(model.contracts.volume.sum())
    assert snap.buses.n_parties.sum() == 60 and snap.buses.credit_bands.sum() == 60
    assert snap.blocks_won.sum() == 5
    assert list(snap.hourly["hour"]) == [1, 2, 3, 4, 5]
    assert snap.credit is not model.state.credit.credit  # a copy
    assert snap.ledger.status in ("off", "on")
    assert views.hour_label(snap) == "Hour 5 of 48 · day 1, 05:00"
    assert views.headline(snap).startswith("60 parties (10 DPGCs + 50 users) on 33 buses "
                                           "(ieee33) · matching price_time")


def test_time_is_shown_as_day_and_hour_of_day():
    m = DIPIModel(seed=1, n_dpgc=2, n_users=5, start_hour=20, hours=30)
    m.run(6)
    snap = views.take_snapshot(m)
    hourly = snap.hourly
    # An hour is labelled by the end of its delivery hour (hour_of_day is its start, the
    # hour of day the weather drew: hour 1 of a run starting at 20:00 is 20:00-21:00).
    for h, hh in zip(hourly["hour"], hourly["hour_of_day"], strict=True):
        assert views.clock(h, snap.clock_offset)[1] == (hh + 1) % 24
    assert hourly["hour_of_day"].iloc[0] == 20
    assert views.time_label(4, snap.clock_offset) == "day 2, 00:00"
    assert views.time_label(3, snap.clock_offset) == "day 1, 23:00"
    assert views.hour_label(snap).startswith("Hour 6 of 30 · day 2, 02:00")


def test_kpi_tiles_format_the_summary(model):
    tiles = views.kpi_tiles(model.summary())
    assert [t.label for t in tiles] == [t[1] for t in views.KPI_TILES]
    assert all(t.delta == "" for t in tiles)
    assert views.format_kpi(0.0512, "pct") == "5.1 %"
    assert views.format_kpi(38472.2, "mwh") == "38.5"
    assert views.format_kpi(float("nan"), "price") == "–"
    assert views.format_kpi(None, "int") == "–"
    assert views.format_kpi(3, "int") == "3"


def test_ledger_view_and_verify_messages():
    assert views.ledger_view(SimpleNamespace()).status == "off"

    def block(chain, index, hour):
        return SimpleNamespace(chain=chain, index=index, prev_hash="a" * 64, hour=hour,
                               merkle_root="b" * 64, producer="node-3", nonce=11, target=0,
                               hash=f"{index:064x}")

    class Ledger:
        def blocks(self, chain):
            return [block(chain, i, i) for i in range(4)]

    m = SimpleNamespace(ledger=Ledger(), verify_ledger=lambda: None)
    view = views.ledger_view(m, recent=5)
    assert view.status == "on" and view.total_blocks == 12 and view.can_verify
    assert [b.hour for b in view.recent] == [3, 3, 3, 2, 2]
    assert [b.chain for b in view.recent[:3]] == ["LH1", "JY1", "DU1"]
    row = views.block_rows(view)[0]
    assert row["chain"] == "LH1" and row["block"] == "3" and row["hash"].endswith("…")

    class Broken:
        def blocks(self, chain):
            raise RuntimeError("database is locked")

    bad = views.ledger_view(SimpleNamespace(ledger=Broken()))
    assert bad.status == "error" and "database is locked" in bad.message

    ok = SimpleNamespace(ok=True, blocks=30, chain=None, index=None, problem="")
    assert views.verify_message(ok) == (True, "Ledger intact: all 30 blocks verified "
                                              "(hashes, links, Merkle roots).")
    broken = SimpleNamespace(ok=False, blocks=12, chain="JY1", index=4,
                             problem="Merkle root does not match its records")
    good, text = views.verify_message(broken)
    assert not good and text.startswith("Ledger broken at JY1 block 4: Merkle root")


# ------------------------------------------------------------------------------ layout
def test_feeder_layout_draws_ieee33_as_its_single_line_diagram():
    grid = build_grid("ieee33")
    pos = views.feeder_layout(grid.graph, grid.root_bus)
    assert {pos[b][1] for b in range(1, 19)} == {0.0}  # the trunk 1-18 on one row
    assert pos[18][0] == 17.0
    assert len({pos[b][1] for b in (19, 23, 26)}) == 3  # three laterals, three rows
    assert all(pos[b][1] == pos[19][1] for b in (20, 21, 22))


def test_grid_layout_is_computed_once_per_grid(monkeypatch):
    calls = []
    real = views._compute_layout
    monkeypatch.setattr(views, "_compute_layout", lambda g: calls.append(g) or real(g))
    monkeypatch.setattr(views, "_LAYOUT_BY_SHAPE", views.OrderedDict())
    grid = build_grid("synthetic", n_buses=40, rng=np.random.default_rng(1))
    first = views.grid_layout(grid)
    assert views.grid_layout(grid) is first
    # The same feeder built again (a Reset) reuses the layout without recomputing it.
    again = build_grid("synthetic", n_buses=40, rng=np.random.default_rng(1))
    assert views.grid_layout(again) is first
    assert len(calls) == 1
    assert first.pos.shape == (40, 2) and first.segments.shape == (39, 2, 2)
    assert first.pos.min() >= 0.0 and first.pos.max() <= 1.0


def test_meshed_grids_get_a_networkx_layout():
    g = nx.grid_2d_graph(6, 6)
    g = nx.convert_node_labels_to_integers(g)
    nx.set_edge_attributes(g, 0.1, "r_ohm")
    layout = views.grid_layout(build_grid(g))
    assert layout.pos.shape == (36, 2) and np.isfinite(layout.pos).all()


def test_limits_only_grow():
    assert figures.nice_ceil(7.3) == 10.0 and figures.nice_ceil(0.21) == 0.25
    lim = figures.grow_limits(None, 0.0, 12.0, floor=0.0)
    assert lim[0] == 0.0 and lim[1] >= 12.0
    assert figures.grow_limits(lim, 0.0, 11.0, floor=0.0) is lim  # fits: unchanged
    wider = figures.grow_limits(lim, 0.0, lim[1] + 1, floor=0.0)
    assert wider[1] > lim[1]
    assert figures.grow_limits(None, 95.0, 99.5, ceiling=100.0)[1] == 100.0
    assert figures.credit_limits(np.array([99.0, 100.0])) == (90.0, 100.0)
    assert figures.credit_limits(np.r_[np.full(98, 100.0), 12.0, 13.0])[0] == 90.0
    assert figures.credit_limits(np.r_[np.full(50, 100.0), np.full(50, 71.0)])[0] == 70.0


def test_grid_layout_carries_the_line_flow_model():
    grid = build_grid("ieee33")
    layout = views.grid_layout(grid)
    assert layout.ends.shape == (32, 2) and layout.segments.shape == (32, 2, 2)
    # A kWh sold at bus 18 (row 17) and bought at bus 2 (row 1) runs over lines 2-3 ... 17-18,
    # towards the substation (+), and nowhere else.
    net = np.zeros(33)
    net[17], net[1] = 1.0, -1.0
    flows = layout.line_flows(net)
    assert sorted(np.round(flows, 9).tolist()).count(1.0) == 16
    assert np.count_nonzero(np.round(flows, 9)) == 16
    # Trades within a bus (net 0) put nothing on the lines.
    assert not layout.line_flows(np.zeros(33)).any()


# ------------------------------------------------------------------------------ figures
def test_figures_render_and_change_with_the_hour():
    m = DIPIModel(seed=5, n_dpgc=10, n_users=50)
    views_ = figures.make_views()
    first = figures.render_all(views.take_snapshot(m, build=1), views_)
    assert set(first) == {"grid", "credit"}
    assert all(png.startswith(PNG_MAGIC) for png in first.values())
    m.run(3)
    later = figures.render_all(views.take_snapshot(m, build=1), views_)
    assert all(later[k] != first[k] for k in first)
    # A new model (a new build) gets freshly built figures.
    other = DIPIModel(seed=6, n_dpgc=3, n_users=7, grid="synthetic", grid_buses=12,
                      n_miners=2)
    other.run(2)
    pngs = figures.render_all(views.take_snapshot(other, build=2), views_)
    assert all(png.startswith(PNG_MAGIC) for png in pngs.values())


def test_figures_cope_with_centralized_mode_and_no_trades():
    m = DIPIModel(seed=2, n_dpgc=2, n_users=3, matching="centralized")
    m.run(2)
    snap = views.take_snapshot(m)
    assert snap.n_contracts == 0 and snap.p2p_kwh == 0.0
    assert all(p.startswith(PNG_MAGIC) for p in figures.render_all(snap).values())


def test_grid_view_draws_buses_not_parties(model):
    """The grid figure's artists do not grow with the number of parties (one glyph per bus)."""
    small = views.take_snapshot(model)
    big_model = DIPIModel(seed=3, n_dpgc=100, n_users=900, hours=48)
    big_model.run(2)
    big = views.take_snapshot(big_model)
    counts = []
    for snap in (small, big):
        view = figures.GridView()
        view.render(snap)
        counts.append(len(view.nodes.get_offsets()))
        assert len(view.hotspots) == 33  # every bus gets its hover spot at 1x
    assert counts == [33, 33]
    details = figures.bus_details(big, 5)
    assert details[0] == "Bus 6" and "DPGCs" in details[1] and "net" in details[2]


def test_grid_view_zooms_on_a_bus(model):
    snap = views.take_snapshot(model)
    view = figures.GridView()
    view.render(snap)
    whole = len(view.hotspots)
    view.render(snap, figures.ViewOptions(zoom=4, centre=17))
    zoomed = [s.bus for s in view.hotspots]
    assert 17 in zoomed and len(zoomed) < whole
    # The view is the box of the buses around the centre: they fill it, at every zoom.
    for zoom in figures.ZOOMS[1:]:
        view.render(snap, figures.ViewOptions(zoom=zoom, centre=17))
        left = [s.left for s in view.hotspots]
        assert 17 in [s.bus for s in view.hotspots]
        assert min(left) < 20 and max(left) > 75, (zoom, left)


def test_baseline_is_overlaid_and_compared(model):
    a = views.take_snapshot(model)
    m2 = DIPIModel(seed=3, n_dpgc=10, n_users=50, hours=48, matching="cma")
    m2.run(5)
    b = views.take_snapshot(m2)
    base = views.Baseline(a)
    assert base.differences(b) == ["matching: price_time → cma"]
    names = [s["name"] for s in charts.series_option(b, base)["series"] if s["xAxisIndex"] == 0]
    assert names == ["DPGCs", "DPGCs · baseline", "users", "users · baseline"]
    tiles = {t.key: t for t in views.kpi_tiles(b.summary, a.summary)}
    rate = tiles["breach_rate"]
    diff = b.summary["breach_rate"] - a.summary["breach_rate"]
    assert rate.delta == views.format_delta(diff, "pct")
    assert rate.trend == "" and rate.interval == ""  # one pair: no interval, no colour
    # With replications, only a difference whose interval excludes 0 is a finding.
    for interval, trend in (((0.02, 0.01, 0.03), "worse"), ((-0.02, -0.03, -0.01), "better"),
                            ((0.02, -0.01, 0.05), "same")):
        tile = {t.key: t for t in views.kpi_tiles(b.summary, a.summary,
                                                  lambda k, i=interval: i)}["breach_rate"]
        assert (tile.trend, tile.delta) == (trend, views.format_delta(interval[0], "pct"))
        assert tile.interval == f"[{views.format_delta(interval[1], 'pct')}, " \
                                f"{views.format_delta(interval[2], 'pct')}]"
    assert views.format_delta(0.0123, "pct") == "+1.2 pp"
    assert views.format_delta(-2500.0, "mwh") == "−2.5 MWh"
    assert tiles["price_std"].trend == ""  # no preferred direction


def test_replications_pair_the_arms_on_common_seeds():
    a = DIPIModel(n_dpgc=6, n_users=24, hours=12).params.to_dict()
    b = {**a, "breach_policy": "imbalance_penalty", "penalty_yuan_per_kwh": 0.25}
    seeds = compare.rep_seeds(11, 4)
    assert seeds[0] == 11 and len(set(seeds)) == 4 and seeds == compare.rep_seeds(11, 4)
    reps = compare.replicate(a, b, 12, seeds)
    assert reps.n == 4 and reps.hour == 12 and len(reps.hourly["A"]) == 4 * 12
    # Replication 0 is the run on screen: the same numbers as a model on the pinned seed.
    alone = DIPIModel(**{**a, "seed": 11})
    alone.run(12)
    assert reps.summaries["A"][0]["breach_rate"] == alone.summary()["breach_rate"]
    # Static parties do not respond to a penalty: on common seeds the breach rate is the
    # same in every pair (difference exactly 0), while users' cost is not.
    assert reps.delta("breach_rate") == (0.0, 0.0, 0.0)
    mean, lo, hi = reps.delta("user_cost_yuan")
    assert lo <= mean <= hi and np.isfinite(lo)
    band = reps.band("B", "breach_rate")
    assert list(band.columns) == ["hour", "mean", "low", "high"] and len(band) == 12
    assert (band["low"] <= band["mean"] + 1e-12).all()
    assert (band["mean"] <= band["high"] + 1e-12).all()
    assert compare.static_rule_warning(a, b).startswith("breach_policy, penalty_yuan_per_kwh")
    assert "learning" in compare.static_rule_warning(a, b)
    assert compare.static_rule_warning(a, {**b, "learning": "roth_erev"}) is None
    assert compare.static_rule_warning(a, {**a, "matching": "cma"}) is None
    assert compare.replicate(a, b, 12, seeds, stop=lambda: True) is None


def test_paired_interval_is_the_student_t_interval():
    from scipy import stats

    d = np.array([1.0, 2.0, 4.0, 7.0])
    mean, lo, hi = compare.paired_interval(d)
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert mean == 3.5 and lo == pytest.approx(3.5 - half) and hi == pytest.approx(3.5 + half)
    assert np.isnan(compare.paired_interval(np.array([1.0]))[1])


def test_series_chart_option(model):
    snap = views.take_snapshot(model)
    opt = charts.series_option(snap)
    assert len(opt["grid"]) == len(opt["xAxis"]) == 4
    assert opt["xAxis"][0]["data"][:2] == ["day 1, 01:00", "day 1, 02:00"]
    by_name = {(s["name"], s["xAxisIndex"]): s for s in opt["series"]}
    rate = by_name[("DPGCs", 0)]["data"]
    assert rate == pytest.approx(list(100 * snap.hourly["breach_rate_dpgc"]))
    assert opt["dataZoom"][1]["type"] == "slider"
    json.dumps(opt)  # plain JSON for the browser
    base = views.Baseline(snap)
    with_base = charts.series_option(snap, base, last=2)
    assert ("DPGCs · baseline", 0) in {(s["name"], s["xAxisIndex"]) for s in with_base["series"]}
    assert with_base["dataZoom"][0]["startValue"] == len(snap.hourly) - 2


def test_long_runs_are_charted_per_day():
    m = DIPIModel(seed=4, n_dpgc=4, n_users=12, hours=24 * 30)
    m.run(24 * 23)
    snap = views.take_snapshot(m)
    opt = charts.series_option(snap)
    assert opt["xAxis"][0]["data"][0] == "day 1" and len(opt["xAxis"][0]["data"]) == 23
    p2p = {(s["name"], s["xAxisIndex"]): s for s in opt["series"]}[("P2P agreed", 2)]["data"]
    day1 = snap.hourly.loc[snap.hourly["hour"] <= 24, "p2p_volume_kwh"].sum() / 1e3
    assert p2p[0] == pytest.approx(day1, rel=1e-4)  # 5 significant digits


def test_saved_scenario_replays_on_the_command_line(model, tmp_path):
    from dipi_abm.cli import main

    m = DIPIModel(seed=8, n_dpgc=5, n_users=20, hours=6, matching="cma",
                  breach_policy=["deposit", "credit_gate"], natural_factor=0.2)
    m.run(6)
    snap = views.take_snapshot(m)
    text = export.scenario_toml(snap.params, snap.summary["seed"])
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    assert cfg.load_toml(path) == {"hours": 6, "n_dpgc": 5, "n_users": 20, "matching": "cma",
                                   "breach_policy": "deposit+credit_gate",
                                   "natural_factor": 0.2, "seed": 8}
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "a"), "--quiet",
                 "--no-plots"]) == 0
    replay = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert replay["breach_rate"] == pytest.approx(snap.summary["breach_rate"])
    assert replay["user_cost_yuan"] == pytest.approx(snap.summary["user_cost_yuan"])
    command = export.scenario_command(snap.params, snap.summary["seed"])
    assert command.startswith("dipi-abm run --hours 6 --seed 8 --set n_dpgc=5")
    args = shlex.split(command)[1:] + ["--out", str(tmp_path / "b"), "--quiet", "--no-plots"]
    assert main(args) == 0
    again = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert again["user_cost_yuan"] == replay["user_cost_yuan"]


def test_figure_files_are_png_and_svg(model):
    snap = views.take_snapshot(model)
    for name in figures.VIEWS:
        png = figures.figure_file(name, snap, "png")
        assert png.startswith(PNG_MAGIC)
        svg = figures.figure_file(name, snap, "svg")
        assert b"<svg" in svg[:2000]
    with pytest.raises(ValueError, match="png or svg"):
        figures.figure_file("grid", snap, "gif")


def test_downloads_read_back(model, tmp_path):
    import json

    import pandas as pd

    snap = views.take_snapshot(model)
    (tmp_path / "model.csv").write_bytes(export.hourly_csv(snap))
    csv = pd.read_csv(tmp_path / "model.csv")
    assert list(csv["hour"]) == [1, 2, 3, 4, 5]
    (tmp_path / "model.parquet").write_bytes(export.hourly_parquet(snap))
    pq = pd.read_parquet(tmp_path / "model.parquet")
    pd.testing.assert_frame_equal(pq, model.hourly_dataframe(), check_dtype=False)
    records = export.party_records(model, upto_hour=3)
    assert {"hour", "agent_id", "kind", "bus", "credit"} <= set(records.columns)
    assert records["hour"].between(1, 3).all()
    (tmp_path / "agents.parquet").write_bytes(export.parquet_bytes(records))
    assert len(pd.read_parquet(tmp_path / "agents.parquet")) == len(records)
    summary = json.loads(export.summary_json(snap))
    assert summary["hours"] == 5 and summary["n_parties"] == 60


# ------------------------------------------------------------------------------ runner
def test_runner_keeps_the_previous_model_when_a_rebuild_is_refused():
    r = runner_mod.ModelRunner()
    snap = r.rebuild(ctl.scenario_from_controls({**ctl.default_values(), "seed": "4"}))
    assert snap.hour == 0 and r.running
    first, build = r.model, r.build
    assert r.step(2).hour == 2
    with pytest.raises(ConfigError, match="max_parties_per_bus"):
        r.rebuild({"n_users": 500, "max_parties_per_bus": 1})  # refused by the model itself
    assert r.model is first and r.build == build and r.model.hour == 2
    snap = r.rebuild({"n_users": 20, "seed": 4, "hours": 3})
    assert snap.n_parties == 30 and r.build > build
    assert r.step(10).hour == 3 and not r.running  # never past the run's end


def test_runner_works_on_its_own_thread():
    names = []
    r = runner_mod.ModelRunner()
    assert r.call(lambda: threading.current_thread().name).startswith("dipi-model")
    r.rebuild({"seed": 1})
    r.model.step = (lambda step=r.model.step: names.append(
        threading.current_thread().name) or step())
    r.step(1)
    assert names and names[0].startswith("dipi-model")
    r.close()
    assert r.model is None
    with pytest.raises(RuntimeError, match="closed"):
        r.call(lambda: None)


def test_sessions_do_not_share_a_model_thread():
    """A session whose model is busy does not hold up another session's step."""
    a, b = runner_mod.ModelRunner(), runner_mod.ModelRunner()
    try:
        a.rebuild({"seed": 1, "n_users": 10, "n_dpgc": 2})
        b.rebuild({"seed": 2, "n_users": 10, "n_dpgc": 2})
        entered, release = threading.Event(), threading.Event()

        def busy_step(step=a.model.step):
            entered.set()
            release.wait(60)
            step()

        a.model.step = busy_step
        worker = threading.Thread(target=a.step, args=(1,))
        worker.start()
        assert entered.wait(60)
        # a's thread is blocked inside its step; b steps on its own thread meanwhile.
        assert b.step(2).hour == 2
        assert a.call.__self__ is a and worker.is_alive()
        release.set()
        worker.join(60)
        assert a.model.hour == 1
    finally:
        release.set()
        a.close()
        b.close()


def test_a_stop_request_ends_a_frame_after_the_hour_being_computed():
    r = runner_mod.ModelRunner()
    r.rebuild({"seed": 1, "n_users": 10, "n_dpgc": 2, "hours": 100})
    hours = []

    def step_and_pause(step=r.model.step):
        step()
        hours.append(r.model.hour)
        if len(hours) == 3:
            r.request_stop()  # Pause pressed during the third hour of a 24-hour frame

    r.model.step = step_and_pause
    snap = r.step(24, stoppable=True)
    assert snap.hour == 3 == r.model.hour  # the hour shown is the hour computed
    assert r.step(2).hour == 5  # a Step click is not a Play frame: it completes its hours
    r.clear_stop()
    assert r.step(2, stoppable=True).hour == 7
    r.close()


def test_runner_verify_without_and_with_a_ledger():
    r = runner_mod.ModelRunner()
    ok, text = r.verify()
    assert not ok and "not available" in text
    r.model = SimpleNamespace(ledger=None, verify_ledger=lambda: None)
    assert r.verify() == (False, "Ledger off: this model keeps no ledger to verify.")
    report = SimpleNamespace(ok=True, blocks=9, chain=None, index=None, problem="")
    r.model = SimpleNamespace(ledger=object(), verify_ledger=lambda: report)
    assert r.verify() == (True, "Ledger intact: all 9 blocks verified (hashes, links, "
                                "Merkle roots).")


def test_real_ledger_if_the_model_keeps_one():
    if not callable(getattr(DIPIModel, "verify_ledger", None)):
        pytest.skip("DIPIModel.verify_ledger() does not exist yet")
    r = runner_mod.ModelRunner()
    r.rebuild({"seed": 1, "n_users": 10, "n_dpgc": 3})
    snap = r.step(3)
    if snap.ledger.status == "off":
        pytest.skip("the model keeps no ledger by default")
    assert snap.ledger.status == "on" and snap.ledger.total_blocks > 0
    ok, text = r.verify()
    assert ok, text


# ------------------------------------------------------------------------------ server
def test_server_command_and_environment():
    cmd = server.solara_command("127.0.0.1", 8123)
    assert cmd[1:4] == ["-m", "dipi_abm.dashboard.security", "run"]
    assert cmd[4].endswith("dipi_abm/app.py") and server.APP_FILE.exists()
    assert cmd[5:] == ["--host", "127.0.0.1", "--port", "8123", "--production", "--no-open"]
    assert "--no-open" not in server.solara_command(open_browser=True)
    assert server.server_env()["SOLARA_TELEMETRY_MIXPANEL_ENABLE"] == "False"
    for port in (-1, 70000, "80", True):
        with pytest.raises(ConfigError, match="port"):
            server.solara_command(port=port)
    with pytest.raises(ConfigError, match="host"):
        server.solara_command(host="")


def test_serve_without_solara_says_how_to_install(monkeypatch):
    monkeypatch.setattr(server.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"reinstall it \(pip install dipi-abm\)"):
        server.serve()


def test_solara_is_a_dependency_of_the_package():
    """`pip install .` brings the dashboard: Solara and its offline assets are main
    dependencies, not an extra."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    deps = project["project"]["dependencies"]
    names = {re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].lower() for d in deps}
    assert {"solara", "solara-assets", "ipyvue", "ipyvuetify"} <= names
    assert project["project"]["optional-dependencies"]["app"] == []  # kept as an alias


# ------------------------------------------------------------------------------ the page
@pytest.fixture
def app():
    pytest.importorskip("solara", reason="the dashboard needs the app extra (Solara)")
    import dipi_abm.app as app

    app.entries.set(ctl.default_values())
    app.extra_keys.set("")
    app.uploaded.set(None)
    app.notice.set(None)
    app.snapshot.set(None)
    app.verify_result.set(None)
    app.baseline.set(None)
    app.playing.set(False)
    app.pausing.set(False)
    yield app
    app.snapshot.set(None)
    app.baseline.set(None)


def test_page_renders_without_a_browser(app):
    import solara

    _box, rc = solara.render(app.Page(), handle_error=False)
    try:
        snap = app.snapshot.value
        assert snap is not None and snap.hour == 0 and snap.n_parties == 60
        assert app.notice.value is None
    finally:
        rc.close()


def test_reset_refuses_bad_input_and_keeps_the_model(app):
    r = runner_mod.ModelRunner()
    app.apply_controls(r)
    app.advance(r, 2)
    assert app.snapshot.value.hour == 2
    app.set_entry("natural_factor", "0.4")
    app.apply_controls(r)
    level, text = app.notice.value
    assert level == "error"
    assert text == ("Not applied: natural_factor = 0.4: must be a number in [0, 0.3). "
                    "The model keeps its previous settings.")
    assert app.snapshot.value.hour == 2 and r.model.hour == 2
    app.set_entry("natural_factor", "0.2")
    app.set_entry("n_users", "70")
    app.apply_controls(r)
    assert app.notice.value is None
    assert app.snapshot.value.hour == 0 and app.snapshot.value.n_parties == 80


def test_a_dropped_grid_file_is_checked_and_used(app, tmp_path):
    from dipi_abm.dashboard.security import Uploads

    g = nx.path_graph(6)
    nx.set_edge_attributes(g, 0.2, "r_ohm")
    save_graphml(g, tmp_path / "feeder.graphml")
    uploads = Uploads()
    app.on_grid_file({"name": "feeder.graphml",
                      "data": (tmp_path / "feeder.graphml").read_bytes()}, uploads)
    name, path = app.uploaded.value
    assert name == "feeder.graphml" and path.endswith("feeder.graphml")
    assert app.entries.value["grid"] == ctl.UPLOADED
    assert "6 buses" in app.notice.value[1]
    r = runner_mod.ModelRunner()
    app.apply_controls(r)
    assert app.snapshot.value.n_buses == 6 and app.notice.value is None
    assert "on 6 buses (file feeder.graphml)" in views.headline(app.snapshot.value)
    # A broken file is refused with its own name in the message and deleted at once;
    # nothing else changes.
    app.on_grid_file({"name": "broken.graphml", "data": b"<graphml><oops"}, uploads)
    level, text = app.notice.value
    assert level == "error" and "broken.graphml" in text and "tmp" not in text
    assert app.uploaded.value[0] == "feeder.graphml"
    assert uploads.folders == {Path(path).parent}
    uploads.close()  # the session ends: its files go
    assert not Path(path).exists()
    r.close()


def test_step_errors_are_shown_not_raised(app):
    r = runner_mod.ModelRunner()
    app.apply_controls(r)

    def boom():
        raise RuntimeError("weather station offline")

    r.model.step = boom
    assert app.advance(r, 1) is None
    assert app.notice.value == ("error", "The step failed: RuntimeError: weather station "
                                         "offline")
    assert r.stop_requested  # a Play loop stops
    r.clear_stop()
    app.playing.set(True)
    app.play(r)  # the loop ends on the error and turns the button back to Play
    assert app.playing.value is False and app.pausing.value is False


def test_verify_result_clears_on_the_next_step(app):
    r = runner_mod.ModelRunner()
    app.set_entry("ledger_detail", "digest")
    app.apply_controls(r)
    app.advance(r, 2)
    app.verify(r)
    if app.snapshot.value.ledger.status != "on":
        pytest.skip("this model keeps no ledger")
    ok, text = app.current_verify()
    assert ok and "Ledger intact" in text
    app.advance(r, 1)
    assert app.current_verify() is None
    app.verify(r)
    assert app.current_verify() is not None
    app.apply_controls(r)  # a Reset too
    assert app.current_verify() is None


def test_pinning_a_baseline_and_the_download_callbacks(app, tmp_path):
    import pandas as pd

    r = runner_mod.ModelRunner()
    app.apply_controls(r)
    app.advance(r, 3)
    app.pin_baseline()
    base = app.baseline.value
    assert base.snap is app.snapshot.value
    app.set_entry("matching", "cma")
    app.apply_controls(r)
    app.advance(r, 2)
    assert "matching: price_time → cma" in base.differences(app.snapshot.value)
    files = {name: data for name, _label, _mime, data in app.downloads(r)}
    assert set(files) >= {"model.csv", "model.parquet", "agents.parquet", "summary.json",
                          "grid.png", "grid.svg", "credit.png", "credit.svg"}
    (tmp_path / "agents.parquet").write_bytes(files["agents.parquet"]())
    agents = pd.read_parquet(tmp_path / "agents.parquet")
    assert agents["hour"].max() == 2 and len(agents) == 2 * 60
    assert files["credit.png"]().startswith(PNG_MAGIC)


def test_snapshot_is_frozen():
    assert dataclasses.is_dataclass(views.Snapshot)
    with pytest.raises(dataclasses.FrozenInstanceError):
        views.LedgerView("off").status = "on"  # type: ignore[misc]
