"""Scenario parameters: validation, TOML files and --set assignments (dipi_abm.config)."""

from __future__ import annotations

import math

import networkx as nx
import pytest

from dipi_abm import ConfigError, DIPIModel
from dipi_abm.config import PARAMS, all_params, load_toml, parse_assignments, parse_value, validate


def one_line(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_defaults_validate_to_the_papers_values():
    p = validate()
    assert set(p) == {q.name for q in all_params()}
    assert p.hours == 168 and p.seed is None
    assert p.retail_yuan_per_kwh == 0.657 and p.feed_in_yuan_per_kwh == 0.4  # [DER-CBC]
    assert p.wheeling_base_yuan_per_kwh == 0.02
    assert p.initial_balance_yuan == 200.0
    assert p.matching == "price_time" and p.price_rule == "midpoint"
    # Credit's memory is set in time (docs/model.md section 6); paper freezes, never the default.
    assert p.credit_rule == "decay" and p.credit_initial == 100.0
    assert p.credit_half_life_h == 72.0
    assert 0.0 <= p.natural_factor < 0.3
    assert 0.0 < p.breach_tolerance < 0.3  # a small band by default (docs/model.md section 6)
    assert p.consensus == "poca"
    assert math.isinf(p.max_distance_ohm) and math.isinf(p.grid_intake_limit_kw)
    shares = p.share_solar + p.share_wind + p.share_hydro + p.share_thermal
    assert shares == pytest.approx(1.0)
    # every default passes its own check
    for q in all_params():
        assert q.check(q.default) == q.default or q.default is None


def test_validate_fills_defaults_and_coerces():
    p = validate({"hours": 24, "n_users": 30.0, "natural_factor": 0})
    assert p.hours == 24 and p.n_users == 30 and isinstance(p.n_users, int)
    assert p.natural_factor == 0.0 and isinstance(p.natural_factor, float)
    assert p.n_dpgc == 10
    with pytest.raises(AttributeError):
        p.hours = 5  # read-only


@pytest.mark.parametrize(
    ("values", "needles"),
    [({"hours": 0}, ["hours", "[1, 10000000]"]), ({"hours": -5}, ["hours", "[1, 10000000]"]),
     ({"hours": "ten"}, ["hours", "'ten'", "integer"]), ({"hours": 2.5}, ["hours", "integer"]),
     ({"hours": True}, ["hours", "integer"]), ({"n_users": "20"}, ["n_users", "integer"]),
     ({"natural_factor": 0.3}, ["natural_factor", "[0, 0.3)"]),
     ({"natural_factor": -0.1}, ["natural_factor", "[0, 0.3)"]),
     ({"natural_factor": "0.1"}, ["natural_factor", "[0, 0.3)"]),
     ({"capacity_solar_kw": -100.0}, ["capacity_solar_kw", "(0, 10000000]"]),
     ({"capacity_wind_kw": 0.0}, ["capacity_wind_kw", "(0, 10000000]"]),
     ({"load_ev_kw": -1}, ["load_ev_kw", "(0, 10000000]"]),
     ({"breach_tolerance": 1.0}, ["breach_tolerance", "[0, 1)"]),
     ({"breach_tolerance": float("nan")}, ["breach_tolerance"]),
     ({"matching": "auction"}, ["matching", "price_time", "centralized"]),
     ({"matching": 3}, ["matching", "price_time"]),
     ({"credit_rule": "median"}, ["credit_rule", "decay", "mean", "paper", "ema", "window"]),
     ({"credit_half_life_h": 0.0}, ["credit_half_life_h", "(0, 1000000]"]),
     ({"roth_erev_reference_rate": 0.0}, ["roth_erev_reference_rate", "(0, 1]"]),
     ({"price_rule": "vwap"}, ["price_rule", "midpoint"]),
     ({"tariff": "dynamic"}, ["tariff", "flat", "tou"]),
     ({"wheeling": "postage"}, ["wheeling", "flat", "distance"]),
     ({"consensus": "pos"}, ["consensus", "poca"]), ({"seed": -1}, ["seed", "[0, "]),
     ({"max_distance_ohm": -1.0}, ["max_distance_ohm", "[0, 1000000] or inf"]),
     ({"share_solar": 1.5}, ["share_solar", "[0, 1]"]),
     ({"feed_in_yuan_per_kwh": 0.7}, ["feed_in_yuan_per_kwh", "retail_yuan_per_kwh"]),
     ({"feed_in_yuan_per_kwh": 0.657}, ["feed_in_yuan_per_kwh", "retail_yuan_per_kwh"]),
     ({"retail_yuan_per_kwh": 0.3}, ["feed_in_yuan_per_kwh", "retail_yuan_per_kwh"]),
     ({"share_solar": 0.5}, ["share_solar", "share_thermal", "sum to 1"]),
     ({"share_ev": 0.0}, ["share_residential", "share_ev", "sum to 1"]),
     ({"ask_markup_min": 0.7}, ["ask_markup_min", "ask_markup_max"]),
     ({"tariff": "tou", "tou_valley_yuan_per_kwh": 0.3}, ["tou_valley_yuan_per_kwh"])],
    ids=lambda v: repr(v) if isinstance(v, dict) else "",
)
def test_bad_values_raise_config_error_naming_key_and_range(values, needles):
    with pytest.raises(ConfigError) as exc:
        validate(values)
    one_line(exc, *needles)


def test_unknown_key_with_suggestion():
    with pytest.raises(ConfigError) as exc:
        validate({"natural_factr": 0.1})
    one_line(exc, "natural_factr", "natural_factor")
    with pytest.raises(ConfigError) as exc:
        validate({"zzzz_qqqq": 1})
    one_line(exc, "zzzz_qqqq", "unknown")


def test_model_rejects_bad_parameters_before_running():
    with pytest.raises(ConfigError, match="natural_factor"):
        DIPIModel(seed=1, natural_factor=0.3)
    with pytest.raises(ConfigError, match="hours"):
        DIPIModel(seed=1, hours=0)
    with pytest.raises(ConfigError, match="nosuchkey"):
        DIPIModel(seed=1, nosuchkey=1)
    with pytest.raises(ValueError):  # a ConfigError is a ValueError
        DIPIModel(seed=1, matching="auction")


def test_max_parties_per_bus_too_small():
    # the IEEE 33-bus feeder has 32 load buses besides the substation
    with pytest.raises(ConfigError) as exc:
        DIPIModel(seed=1, n_dpgc=5, n_users=40, max_parties_per_bus=1)
    one_line(exc, "max_parties_per_bus", "32")
    # enough room: every bus holds at most the limit
    m = DIPIModel(seed=1, n_dpgc=5, n_users=40, max_parties_per_bus=2)
    counts = {}
    for b in m.state.bus.tolist():
        counts[b] = counts.get(b, 0) + 1
    assert max(counts.values()) <= 2


def _radial(n, r=0.1):
    g = nx.Graph()
    for i in range(n - 1):
        g.add_edge(i, i + 1, r_ohm=r)
    return g


def test_networkx_graph_accepted():
    m = DIPIModel(seed=1, n_dpgc=5, n_users=20, hours=2, grid=_radial(6))
    assert m.grid.n_buses == 6
    m.run()


def test_disconnected_graph_rejected():
    g = _radial(4)
    g.add_edge(10, 11, r_ohm=0.2)
    with pytest.raises(ConfigError) as exc:
        DIPIModel(seed=1, n_dpgc=5, n_users=20, grid=g)
    one_line(exc, "disconnected")


@pytest.mark.parametrize(
    ("attrs", "needles"),
    [({"r_ohm": -0.5}, ["negative", "r_ohm", ">= 0"]), ({}, ["no impedance", "r_ohm"]),
     ({"x_ohm": 0.3}, ["no impedance"]), ({"r_ohm": float("nan")}, ["r_ohm"]),
     ({"r_ohm": "abc"}, ["r_ohm"])],
)
def test_bad_edge_impedance_rejected(attrs, needles):
    g = _radial(4)
    g.add_edge(3, 4, **attrs)
    with pytest.raises(ConfigError) as exc:
        DIPIModel(seed=1, n_dpgc=5, n_users=20, grid=g)
    msg = one_line(exc, *needles)
    assert "(3, 4)" in msg  # names the edge


# ------------------------------------------------------------------ TOML files


def test_load_toml_flat_and_tables(tmp_path):
    f = tmp_path / "scenario.toml"
    f.write_text(
        "hours = 24\nseed = 7\n\n[population]\nn_dpgc = 5\nn_users = 20\n\n"
        '[market]\nmatching = "centralized"\nbreach_tolerance = 0.1\n\n'
        "[grid]\nmax_distance_ohm = inf\n"
    )
    values = load_toml(f)
    assert values == {"hours": 24, "seed": 7, "n_dpgc": 5, "n_users": 20,
                      "matching": "centralized", "breach_tolerance": 0.1,
                      "max_distance_ohm": math.inf}
    p = validate(values)
    assert p.n_dpgc == 5 and p.matching == "centralized"


def test_load_toml_unknown_key_names_the_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[credit]\nnatural_factr = 0.1\n")
    with pytest.raises(ConfigError) as exc:
        load_toml(f)
    one_line(exc, str(f), "natural_factr", "natural_factor")


def test_load_toml_bad_files(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_toml(tmp_path / "missing.toml")
    one_line(exc, "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("hours = = 3\n")
    with pytest.raises(ConfigError) as exc:
        load_toml(broken)
    one_line(exc, "broken.toml", "TOML")


def test_load_toml_wrong_type_caught_by_validate(tmp_path):
    f = tmp_path / "typed.toml"
    f.write_text('hours = "ten"\n')
    with pytest.raises(ConfigError) as exc:
        validate(load_toml(f))
    one_line(exc, "hours", "integer")


# ------------------------------------------------------------------ --set assignments


def test_parse_assignments_typed_values():
    got = parse_assignments(
        ["n_users=20", "natural_factor=0.2", "matching=centralized", 'credit_rule="ema"',
         "max_distance_ohm=inf", "grid_intake_limit_kw = 1e3", "seed=3"]
    )
    assert got == {"n_users": 20, "natural_factor": 0.2, "matching": "centralized",
                   "credit_rule": "ema", "max_distance_ohm": math.inf,
                   "grid_intake_limit_kw": 1000.0, "seed": 3}
    assert isinstance(got["n_users"], int) and isinstance(got["natural_factor"], float)
    p = validate(got)
    assert p.n_users == 20 and p.credit_rule == "ema"


def test_parse_value():
    assert parse_value("true") is True
    assert parse_value("12") == 12 and isinstance(parse_value("12"), int)
    assert parse_value("0.5") == 0.5
    assert parse_value("price_time") == "price_time"


@pytest.mark.parametrize(
    ("item", "needles"),
    [("nosuchkey=1", ["nosuchkey"]), ("natural_factr=0.1", ["natural_factr", "natural_factor"]),
     ("hours", ["hours", "KEY=VALUE"]), ("=3", ["KEY=VALUE"])],
)
def test_parse_assignments_rejects(item, needles):
    with pytest.raises(ConfigError) as exc:
        parse_assignments([item])
    one_line(exc, *needles)


def test_every_param_documents_its_range():
    for q in PARAMS:
        assert q.doc and q.unit and q.allowed()


# ------------------------------------------------------------------ TOML structure (issue 14)
@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("hours = 24\n[run]\nhours = 48\n", ["line 3", "hours", "twice", "line 1"]),
        ("[population]\nn_users = 5\n[market]\nn_users = 9\n", ["line 4", "n_users", "twice"]),
        ("[population]\nn_users = 5\n[Population]\nn_dpgc = 3\n",
         ["line 3", "[Population]", "only in case"]),
        ("hours = 5\n\n[nonsense]\nx = 1\n", ["line 3", "unknown table [nonsense]"]),
        ("[grid]\n[grid.lines]\nr = 1\n", ["line 2", "nested"]),
        ("[weather]\nforecast_lead_h = inf\n", ["line 2", "forecast_lead_h = inf"]),
        ("seed = 1\nhours = = 3\n", ["line 2", "not valid TOML"]),
    ],
)
def test_toml_structure_errors_name_the_line(tmp_path, text, needles):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_toml(f)
    one_line(exc, str(f), *needles)


@pytest.mark.parametrize("data", [bytes(range(256)), b"hours = 5\n\x00\x01", b"\xff\xfe h"])
def test_binary_config_files_get_a_clear_message(tmp_path, data):
    f = tmp_path / "c.toml"
    f.write_bytes(data)
    with pytest.raises(ConfigError) as exc:
        load_toml(f)
    msg = one_line(exc, str(f))
    assert "UTF-8" in msg or "binary" in msg


# ------------------------------------------------------------------ ranges and estimates
@pytest.mark.parametrize(
    ("key", "value"),
    [("capacity_solar_kw", math.inf), ("load_residential_kw", 1e308),
     ("forecast_lead_h", math.inf), ("retail_yuan_per_kwh", math.inf),
     ("load_noise_sd", math.inf), ("block_reward_yuan", math.inf),
     ("initial_balance_yuan", math.inf), ("initial_balance_yuan", -math.inf),
     ("miner_hash_power", math.inf), ("miner_hash_power", 1e300),
     ("cma_distance_ref_ohm", math.inf), ("poca_tau", 1e-300), ("hours", 10**40)],
)
def test_non_finite_and_huge_values_name_their_own_key(key, value):
    """Issue 14: capacity_solar_kw = inf was reported as 'capacity_kw must be finite'."""
    with pytest.raises(ConfigError) as exc:
        validate({key: value})
    assert one_line(exc).startswith(f"{key} = ")


def test_infinity_only_where_it_means_no_limit():
    for key in ("max_distance_ohm", "line_limit_kw", "grid_intake_limit_kw"):
        assert math.isinf(validate({key: math.inf})[key])
        with pytest.raises(ConfigError, match=f"{key} = -inf"):
            validate({key: -math.inf})


@pytest.mark.parametrize(
    ("values", "key"),
    [({"n_users": 10_000_000}, "n_users"), ({"hours": 10_000_000}, "hours"),
     ({"grid": "synthetic", "grid_buses": 20_000}, "grid_buses"),
     ({"hours": 8760, "n_users": 5000, "ledger_detail": "full"}, "n_users")],
)
def test_runs_that_cannot_fit_are_refused_with_the_estimate_and_the_limit(values, key):
    with pytest.raises(ConfigError) as exc:
        validate(values)
    msg = one_line(exc, "GiB", "limit")
    assert msg.startswith(f"{key} = ")


def test_streamed_records_and_digest_ledger_do_not_grow_with_party_hours():
    """The command line streams per-party records to agents.parquet, and a digest
    ledger keeps about 2 kB an hour whatever the parties: a year of 100,000 parties fits
    in 8 GiB (measured peak: under 1 GB); held in memory, its hourly records would not."""
    year = {"n_dpgc": 10_000, "n_users": 90_000, "hours": 8760, "memory_limit_gb": 8.0}
    validate(year, streamed=True)
    with pytest.raises(ConfigError) as exc:
        validate({**year, "agent_report_every": 1})
    one_line(exc, "GiB", "limit of 8 GiB")
    with pytest.raises(ConfigError):  # a full ledger keeps every record: it does grow
        validate({**year, "ledger_detail": "full"}, streamed=True)
    with pytest.raises(ConfigError):  # hashed POCA keeps the LH1 credit records
        validate({**year, "n_users": 290_000, "poca_mode": "hashed",
                  "poca_difficulty_bits": 1}, streamed=True)
    validate({**year, "n_users": 290_000}, streamed=True)


def test_memory_limit_gb_sets_the_limit():
    validate({"memory_limit_gb": 1.0})
    with pytest.raises(ConfigError) as exc:
        validate({"memory_limit_gb": 0.2})
    one_line(exc, "limit of 0.2 GiB", "memory_limit_gb")
    with pytest.raises(ConfigError):
        DIPIModel(seed=1, memory_limit_gb=0.2)


def test_a_grid_file_too_big_for_the_limit_is_refused_before_its_matrix(tmp_path):
    f = tmp_path / "long.csv"
    f.write_text("".join(f"{i} {i + 1} 0.1\n" for i in range(4000)))
    with pytest.raises(ConfigError) as exc:
        DIPIModel(seed=1, grid=str(f), memory_limit_gb=0.45)
    one_line(exc, str(f), "4001 buses", "limit")


def test_hashed_poca_estimate_matches_real_races():
    """The expected hashes per block used to refuse hard races, against real races."""
    import numpy as np

    from dipi_abm.config import expected_hashes_per_block
    from dipi_abm.rules.consensus import hashed_race, poca_targets

    v = validate({"poca_mode": "hashed", "poca_difficulty_bits": 12.0})
    n = v.n_dpgc + v.n_users
    targets = poca_targets(np.full(n, 100.0), 12.0, v.poca_tau)
    addresses = [f"{i:040x}" for i in range(n)]
    spent = [hashed_race(f"{b:064x}", addresses, np.ones(n), targets).hashes
             for b in range(60)]
    ratio = np.mean(spent) / expected_hashes_per_block(v)
    assert 0.6 < ratio < 1.6, ratio
    with pytest.raises(ConfigError) as exc:
        validate({"poca_mode": "hashed", "poca_difficulty_bits": 32.0})
    assert one_line(exc, "hashes per block", "limit").startswith("poca_difficulty_bits = 32")
