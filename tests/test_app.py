"""The dashboard without a browser: controls, snapshot, figures, runner, server command."""

from __future__ import annotations

import dataclasses
import math
import threading
from types import SimpleNamespace

import networkx as nx
import numpy as np
import pytest

from dipi_abm import ConfigError, DIPIModel
from dipi_abm import config as cfg
from dipi_abm.dashboard import controls as ctl
from dipi_abm.dashboard import runner as runner_mod
from dipi_abm.dashboard import server, views
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
    assert market == ["matching", "cma_w_credit"]
    behaviour = [c.key for c in groups["Behaviour"]]
    assert behaviour == ["learning", "opportunist_share"]
    assert ctl.default_values(registry)["cma_w_credit"] == "1"


@pytest.mark.parametrize(("value", "text"), [
    (None, ""), (True, "true"), (168, "168"), (0.1, "0.1"), (1500.0, "1500"),
    (math.inf, "inf"), (1e-7, "1e-07"), ("ieee33", "ieee33"),
])
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
def test_flows_are_summed_per_bus_pair():
    seller = np.array([1, 2, 1, 3, 4])
    buyer = np.array([2, 1, 2, 3, 0])
    volume = np.array([10.0, 5.0, 1.0, 7.0, 2.0])
    pairs, kwh, local = views.flows_by_bus_pair(seller, buyer, volume)
    assert pairs.tolist() == [[0, 4], [1, 2]]
    assert kwh.tolist() == [2.0, 16.0]
    assert local == 7.0
    empty = views.flows_by_bus_pair(np.zeros(0, int), np.zeros(0, int), np.zeros(0))
    assert empty[0].shape == (0, 2) and empty[1].size == 0 and empty[2] == 0.0


def test_snapshot_copies_what_the_page_draws(model):
    snap = views.take_snapshot(model, build=7)
    assert snap.build == 7 and snap.hour == 5 and snap.hours == 48 and snap.running
    assert (snap.n_parties, snap.n_dpgc, snap.n_users) == (60, 10, 50)
    assert snap.flow_kwh.sum() + snap.local_kwh == pytest.approx(model.contracts.volume.sum())
    assert snap.blocks_won.sum() == 5
    assert list(snap.hourly["hour"]) == [1, 2, 3, 4, 5]
    assert snap.credit is not model.state.credit.credit  # a copy
    assert snap.ledger.status in ("off", "on")
    assert views.hour_label(snap) == "Hour 5 of 48"
    assert views.headline(snap).startswith("60 parties (10 DPGCs + 50 users) on 33 buses "
                                           "(ieee33) · matching price_time")


def test_kpi_tiles_format_the_summary(model):
    tiles = views.kpi_tiles(model.summary())
    labels = [t[0] for t in tiles]
    assert labels == [t[1] for t in views.KPI_TILES]
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
    assert views.nice_ceil(7.3) == 10.0 and views.nice_ceil(0.21) == 0.25
    lim = views.grow_limits(None, 0.0, 12.0, floor=0.0)
    assert lim[0] == 0.0 and lim[1] >= 12.0
    assert views.grow_limits(lim, 0.0, 11.0, floor=0.0) is lim  # fits: unchanged
    wider = views.grow_limits(lim, 0.0, lim[1] + 1, floor=0.0)
    assert wider[1] > lim[1]
    assert views.grow_limits(None, 95.0, 99.5, ceiling=100.0)[1] == 100.0
    assert views.credit_limits(np.array([99.0, 100.0])) == (90.0, 100.0)
    assert views.credit_limits(np.r_[np.full(98, 100.0), 12.0, 13.0])[0] == 90.0
    assert views.credit_limits(np.r_[np.full(50, 100.0), np.full(50, 71.0)])[0] == 70.0


# ------------------------------------------------------------------------------ figures
def test_figures_render_and_change_with_the_hour():
    m = DIPIModel(seed=5, n_dpgc=10, n_users=50)
    figures = views.make_views()
    first = views.render_all(views.take_snapshot(m, build=1), figures)
    assert set(first) == {"network", "timeseries", "credit"}
    assert all(png.startswith(PNG_MAGIC) for png in first.values())
    m.run(3)
    later = views.render_all(views.take_snapshot(m, build=1), figures)
    assert all(later[k] != first[k] for k in first)
    # A new model (a new build) gets freshly built figures.
    other = DIPIModel(seed=6, n_dpgc=3, n_users=7, grid="synthetic", grid_buses=12,
                      n_miners=2)
    other.run(2)
    pngs = views.render_all(views.take_snapshot(other, build=2), figures)
    assert all(png.startswith(PNG_MAGIC) for png in pngs.values())


def test_figures_cope_with_centralized_mode_and_no_trades():
    m = DIPIModel(seed=2, n_dpgc=2, n_users=3, matching="centralized")
    m.run(2)
    snap = views.take_snapshot(m)
    assert snap.n_contracts == 0 and snap.flow_kwh.size == 0
    assert all(p.startswith(PNG_MAGIC) for p in views.render_all(snap).values())


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
    assert runner_mod.on_model_thread(lambda: threading.current_thread().name).startswith(
        "dipi-model")
    r.rebuild({"seed": 1})
    r.model.step = (lambda step=r.model.step: names.append(
        threading.current_thread().name) or step())
    r.step(1)
    assert names and names[0].startswith("dipi-model")


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
    assert cmd[1:4] == ["-m", "solara", "run"]
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
    with pytest.raises(ConfigError, match=r"pip install 'dipi-abm\[app\]'"):
        server.serve()


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
    yield app
    app.snapshot.set(None)


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
    g = nx.path_graph(6)
    nx.set_edge_attributes(g, 0.2, "r_ohm")
    save_graphml(g, tmp_path / "feeder.graphml")
    app.on_grid_file({"name": "feeder.graphml",
                      "data": (tmp_path / "feeder.graphml").read_bytes()})
    name, path = app.uploaded.value
    assert name == "feeder.graphml" and path.endswith("feeder.graphml")
    assert app.entries.value["grid"] == ctl.UPLOADED
    assert "6 buses" in app.notice.value[1]
    r = runner_mod.ModelRunner()
    app.apply_controls(r)
    assert app.snapshot.value.n_buses == 6 and app.notice.value is None
    assert "on 6 buses (file feeder.graphml)" in views.headline(app.snapshot.value)
    # A broken file is refused with its own name in the message, and nothing changes.
    app.on_grid_file({"name": "broken.graphml", "data": b"<graphml><oops"})
    level, text = app.notice.value
    assert level == "error" and "broken.graphml" in text and "tmp" not in text
    assert app.uploaded.value[0] == "feeder.graphml"


def test_step_errors_are_shown_not_raised(app):
    r = runner_mod.ModelRunner()
    app.apply_controls(r)

    def boom():
        raise RuntimeError("weather station offline")

    r.model.step = boom
    app.advance(r, 1)
    assert app.notice.value == ("error", "The step failed: RuntimeError: weather station "
                                         "offline")
    assert app.playing.value is False


def test_snapshot_is_frozen():
    assert dataclasses.is_dataclass(views.Snapshot)
    with pytest.raises(dataclasses.FrozenInstanceError):
        views.LedgerView("off").status = "on"  # type: ignore[misc]
