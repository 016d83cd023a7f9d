"""Scenario parameters: one registry, validated before anything runs.

Every key a run accepts is a :class:`Param` in :data:`PARAMS`: declared here, or, for
the settings only a rule reads, beside that rule's registry entry (collected here). The same keys
work as ``DIPIModel`` keyword arguments, in a TOML file (``--config``) and on
the command line (``--set key=value``). :func:`validate` turns a partial
mapping into a complete, checked :class:`Params`; anything wrong raises
:class:`~dipi_abm.errors.ConfigError` with a one-line message naming the key
and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .physics.grid import (  # noqa: F401 - re-exported: the run's memory budget
    DISTANCE_METRICS,
    WHEELING_RULES,
    distance_matrix_bytes,
    memory_limit,
    memory_limit_bytes,
    physical_memory_bytes,
)
from .physics.weather import WeatherParams
from .rules.consensus import CONSENSUS_RULES
from .rules.consequences import BREACH_POLICIES, canonical
from .rules.credit import CREDIT_RULES, CREDIT_SCORES
from .rules.economy import SETTINGS as ECONOMY_SETTINGS
from .rules.learning import LEARNING_RULES
from .rules.matching import MATCHING_RULES, PRICE_RULES
from .rules.registry import Param, _fmt, _short, rule_params  # noqa: F401 - Param re-exported
from .rules.tariffs import TARIFFS

INF = math.inf


def _names(registry: Mapping[str, Any]) -> Callable[[], tuple[str, ...]]:
    """The allowed values of a rule key: the names in its registry (read when checked, so
    an entry added at run time is accepted)."""
    return lambda: tuple(registry)


_matching_rules = _names(MATCHING_RULES)
_price_rules = _names(PRICE_RULES)
_credit_rules = _names(CREDIT_RULES)
_credit_scores = _names(CREDIT_SCORES)
_consensus_rules = _names(CONSENSUS_RULES)
_learning_rules = _names(LEARNING_RULES)
_distance_metrics = _names(DISTANCE_METRICS)
_wheeling_rules = _names(WHEELING_RULES)
_tariffs = _names(TARIFFS)
_breach_policies = _names(BREACH_POLICIES)


def _combine_breach_policies(value: Any) -> str:
    return canonical(value)


def _p(name, default, kind, unit, doc, group, **kw) -> Param:
    return Param(name, default, kind, unit, doc, group, **kw)


# Every numeric key has a finite range (issue 14: no silent inf or 1e308); the few keys
# where infinity means "no limit" say so with allow_inf.
_SHARE = {"low": 0.0, "high": 1.0}
_KW = {"low": 0.0, "high": 1e7, "low_open": True}  # one party: up to 10 GW
_OHM = {"low": 0.0, "high": 1e6}
_PRICE = {"low": 0.0, "high": 1000.0, "low_open": True}  # yuan/kWh

PARAMS: tuple[Param, ...] = (
    # --- run -------------------------------------------------------------------------------
    _p("hours", 168, int, "h", "Simulated hours; one model step is one hour.", "run",
       low=1, high=10_000_000),
    _p("seed", None, int, "-", "Master seed; every component and replication draws its own "
       "stream from numpy.random.SeedSequence(seed). Empty: fresh entropy, recorded in the "
       "summary.", "run", low=0, high=2**128 - 1, allow_none=True),
    _p("start_hour", 0, int, "h", "Hour of day of the first step.", "run", low=0, high=23),
    _p("agent_report_every", None, int, "h", "Per-party records (agents_dataframe(), "
       "agents.parquet) every k hours. Empty: every hour up to 10 million party records "
       "(about 0.25 GB on disk), else the smallest k that keeps the run under that.", "run",
       low=1, high=10_000_000, allow_none=True),
    _p("memory_limit_gb", None, float, "GiB", "Largest memory a run may need by the estimate "
       "made before it starts (distance matrix, parties, hourly and per-party records, "
       "ledger); a run estimated above it is refused. Empty: 75 % of this machine's "
       "physical memory.", "run", low=0.1, high=1e6, allow_none=True),
    _p("profiles", "", str, "-", "CSV or Parquet of measured hourly capacity factors (columns "
       "hour, solar_cf, wind_cf in [0, 1], optional load_factor) replacing the stochastic "
       "actual output; forecasts keep their error (docs/profiles.md). Empty: the generator.",
       "weather"),
    # --- population ------------------------------------------------------------------------
    _p("n_dpgc", 10, int, "-", "Distributed power generation companies (sellers).",
       "population", low=1, high=10_000_000),
    _p("n_users", 50, int, "-", "Users (buyers; some are prosumers with rooftop PV).",
       "population", low=1, high=10_000_000),
    _p("n_miners", 0, int, "-", "Stand-alone miner nodes: hash power, no trades, no credit "
       "history (attack studies).", "population", low=0, high=1_000_000),
    _p("share_solar", 0.4, float, "-", "Share of DPGCs that are solar farms.", "population",
       **_SHARE),
    _p("share_wind", 0.3, float, "-", "Share of DPGCs that are wind farms.", "population",
       **_SHARE),
    _p("share_hydro", 0.1, float, "-", "Share of DPGCs that are small hydro.", "population",
       **_SHARE),
    _p("share_thermal", 0.2, float, "-", "Share of DPGCs that are thermal (gas/coal CHP); the "
       "four technology shares must sum to 1.", "population", **_SHARE),
    _p("capacity_solar_kw", 400.0, float, "kW", "Median solar DPGC capacity (sized to the "
       "IEEE 33-bus feeder: docs/model.md section 3).", "population",
       **_KW),
    _p("capacity_wind_kw", 450.0, float, "kW", "Median wind DPGC capacity.", "population",
       **_KW),
    _p("capacity_hydro_kw", 300.0, float, "kW", "Median hydro DPGC capacity.", "population",
       **_KW),
    _p("capacity_thermal_kw", 350.0, float, "kW", "Median thermal DPGC capacity.",
       "population", **_KW),
    _p("capacity_spread", 0.3, float, "-", "Log-normal sigma of DPGC capacity around the "
       "median.", "population", low=0.0, high=3.0),
    _p("share_residential", 0.5, float, "-", "Share of users that are residential communities.",
       "population", **_SHARE),
    _p("share_commercial", 0.25, float, "-", "Share of users that are commercial buildings.",
       "population", **_SHARE),
    _p("share_industrial", 0.1, float, "-", "Share of users that are industrial sites.",
       "population", **_SHARE),
    _p("share_ev", 0.15, float, "-", "Share of users that are EV charging stations; the four "
       "load-class shares must sum to 1.", "population", **_SHARE),
    _p("load_residential_kw", 30.0, float, "kW", "Median mean load of a residential "
       "community.", "population", **_KW),
    _p("load_commercial_kw", 55.0, float, "kW", "Median mean load of a commercial building.",
       "population", **_KW),
    _p("load_industrial_kw", 150.0, float, "kW", "Median mean load of an industrial site.",
       "population", **_KW),
    _p("load_ev_kw", 35.0, float, "kW", "Median mean load of an EV charging station.",
       "population", **_KW),
    _p("load_spread", 0.3, float, "-", "Log-normal sigma of users' mean load.", "population",
       low=0.0, high=3.0),
    _p("prosumer_share", 0.3, float, "-", "Share of users with rooftop PV (prosumers sell "
       "when their net position is a surplus).", "population", **_SHARE),
    _p("prosumer_pv_ratio", 1.2, float, "kW/kW", "Rooftop PV capacity per kW of the "
       "prosumer's mean load.", "population", low=0.0, high=100.0),
    _p("initial_balance_yuan", 200.0, float, "yuan", "Every party's starting balance, a "
       "DPGC's working capital ([DER-CBC] tests start at 200).", "population", low=-1e12,
       high=1e12),
    _p("budget_period_h", 24, int, "h", "Users' budget period: at its start each user is "
       "paid budget_ratio times the bill it expects for the period at retail, and pays its "
       "bills from it (docs/model.md, Accounts); 0: no budget, a running tally.",
       "population", low=0, high=8760),
    _p("budget_ratio", 1.0, float, "-", "A user's budget per period as a share of its "
       "expected bill (mean load x class shape x retail price).", "population", low=0.0,
       high=10.0),
    _p("storage_share", 0.0, float, "-", "Share of DPGCs with a battery that firms up their "
       "commitment (discharge to cover a shortfall, charge what exceeds it).", "population",
       **_SHARE),
    _p("storage_power_ratio", 0.25, float, "kW/kW", "Battery power per kW of the DPGC's "
       "capacity.", "population", low=0.0, high=10.0),
    _p("storage_hours", 2.0, float, "h", "Battery energy in hours at full power.",
       "population", low=0.0, high=1000.0),
    _p("storage_efficiency", 0.9, float, "-", "Battery round-trip efficiency.", "population",
       low=0.0, high=1.0, low_open=True),
    _p("hash_power_spread", 0.0, float, "-", "Log-normal sigma of parties' hash power "
       "(0: equal hash power 1).", "population", low=0.0, high=5.0),
    _p("miner_hash_power", 1.0, float, "-", "Hash power of each stand-alone miner, in units "
       "of a party's median.", "population", low=0.0, high=1e6),
    _p("max_parties_per_bus", 0, int, "-", "Most parties one bus may hold (0: no limit).",
       "population", low=0, high=10_000_000),
    # --- grid ------------------------------------------------------------------------------
    _p("grid", "ieee33", str, "-", "Feeder: 'ieee33' (Baran & Wu), 'synthetic' (seeded "
       "radial feeder of grid_buses buses) or a path to a GraphML / edge-list file.", "grid"),
    _p("grid_buses", 33, int, "-", "Buses of the synthetic feeder.", "grid", low=2,
       high=20_000),
    _p("distance_metric", "resistance", str, "-", "Electrical distance between buses.",
       "grid", choices=_distance_metrics),
    _p("max_distance_ohm", INF, float, "ohm", "No direct trade beyond this electrical "
       "distance ([DER-CBC] Fig. 8).", "grid", **_OHM, allow_inf=True),
    _p("wheeling", "flat", str, "-", "Wheeling tariff rule: flat, or base + rate x distance.",
       "grid", choices=_wheeling_rules),
    _p("wheeling_base_yuan_per_kwh", 0.02, float, "yuan/kWh", "Flat wheeling fee, or the "
       "base of the distance rule (papers: 0.02).", "grid", low=0.0, high=10.0),
    _p("wheeling_rate_yuan_per_kwh_ohm", 0.01, float, "yuan/(kWh*ohm)", "Distance rule: "
       "fee per ohm of electrical distance.", "grid", low=0.0, high=10.0),
    _p("line_limit_kw", INF, float, "kW", "Thermal limit of every line without its own "
       "limit_kw edge attribute; DU1 curtails matched trades whose flows would exceed a "
       "limit (radial: subtree flows; meshed: DC power flow).", "grid", low=0.0, high=1e12,
       low_open=True, allow_inf=True),
    _p("line_rating_margin", 1.5, float, "-", "Line ratings derived from the feeder: this "
       "margin times the active power each line carries at the grid's design load (node "
       "p_kw: IEEE 33-bus, Baran & Wu), or, without one, at the peak load or generating "
       "capacity it serves; inf: no derived rating (docs/model.md section 2).", "grid",
       low=1.0, high=1e6, allow_inf=True),
    # --- prices ----------------------------------------------------------------------------
    _p("tariff", "flat", str, "-", "Retail tariff: flat, or time-of-use (peak 8-11 h and "
       "18-21 h, valley 23-7 h).", "prices", choices=_tariffs),
    _p("retail_yuan_per_kwh", 0.657, float, "yuan/kWh", "Retail price R (flat tariff; the "
       "TOU shoulder price) ([DER-CBC]: 0.657).", "prices", **_PRICE),
    _p("feed_in_yuan_per_kwh", 0.40, float, "yuan/kWh", "Feed-in price F the grid company "
       "pays for surplus ([DER-CBC]: 0.4).", "prices", low=0.0, high=1000.0),
    _p("tou_peak_yuan_per_kwh", 0.85, float, "yuan/kWh", "Time-of-use peak retail price.",
       "prices", **_PRICE),
    _p("tou_valley_yuan_per_kwh", 0.45, float, "yuan/kWh", "Time-of-use valley retail price "
       "(must stay above F).", "prices", **_PRICE),
    _p("grid_intake_limit_kw", INF, float, "kW", "Most surplus the grid company takes in "
       "one hour (OGSC: cleaner, more efficient, steadier sources first; the rest is "
       "curtailed).", "prices", low=0.0, high=1e12, allow_inf=True),
    _p("ask_markup_min", 0.2, float, "-", "Sellers ask F + m(R - F), m drawn per seller "
       "from [min, max].", "prices", **_SHARE),
    _p("ask_markup_max", 0.6, float, "-", "Upper end of the ask markup range.", "prices",
       **_SHARE),
    _p("bid_discount_min", 0.2, float, "-", "Buyers bid R - d(R - F), d drawn per buyer "
       "from [min, max].", "prices", **_SHARE),
    _p("bid_discount_max", 0.6, float, "-", "Upper end of the bid discount range.", "prices",
       **_SHARE),
    _p("commitment_ratio", 1.0, float, "-", "Share of its forecast surplus a seller "
       "commits.", "prices", low=0.0, high=2.0, low_open=True),
    _p("bid_volume_ratio", 1.0, float, "-", "Share of its forecast need a buyer bids for.",
       "prices", low=0.0, high=2.0, low_open=True),
    # --- behaviour -------------------------------------------------------------------------
    _p("learning", "static", str, "-", "How parties adapt their commitment and prices "
       "(docs/model.md section 8).", "behaviour", choices=_learning_rules),
    *rule_params(LEARNING_RULES),
    _p("opportunist_share", 0.0, float, "-", "Share of parties that start by over-committing "
       "(their propensity on the largest commitment; 'static': they keep it).", "behaviour",
       **_SHARE),
    _p("commit_min", 0.8, float, "-", "Smallest commitment / bid-volume ratio a party may "
       "choose.", "behaviour", low=0.0, high=2.0, low_open=True),
    _p("commit_max", 1.3, float, "-", "Largest commitment / bid-volume ratio (over-commitment "
       "above 1).", "behaviour", low=0.0, high=3.0, low_open=True),
    _p("commit_levels", 6, int, "-", "Commitment ratios on the grid from commit_min to "
       "commit_max.", "behaviour", low=1, high=50),
    _p("price_levels", 3, int, "-", "Markup (discount) levels from ask_markup_min to "
       "ask_markup_max (bid_discount_min to _max).", "behaviour", low=1, high=50),
    # --- market ----------------------------------------------------------------------------
    _p("matching", "price_time", str, "-", "Matching rule (docs/model.md section 4).", "market",
       choices=_matching_rules),
    _p("price_rule", "midpoint", str, "-", "Contract price: midpoint of ask and the bid "
       "net of wheeling, pay-as-ask or pay-as-bid.", "market", choices=_price_rules),
    *rule_params(MATCHING_RULES),
    _p("breach_tolerance", 0.05, float, "-", "A side breaches when it delivers or takes less "
       "than (1 - tolerance) of the agreed volume.", "market", low=0.0, high=1.0,
       high_open=True),
    # --- breach policy (docs/model.md section 6b) -------------------------------------------
    _p("breach_policy", "none", str, "-", "What a breach costs the breacher (docs/model.md 6b): "
       "none (the papers' settlement), imbalance_penalty, make_whole, deposit, credit_gate, "
       "credit_scaled_reward; several combine (their effects add up), e.g. "
       "[\"imbalance_penalty\", \"credit_gate\"].", "breach policy",
       choices=_breach_policies, combine=_combine_breach_policies),
    *rule_params(BREACH_POLICIES),
    *ECONOMY_SETTINGS,  # system cost and welfare (docs/model.md section 6c)
    # --- credit ----------------------------------------------------------------------------
    _p("credit_rule", "decay", str, "-", "Credit update rule (docs/model.md section 6): decay "
       "(mean score with a half-life in hours), mean, paper ([DIPI] literal; freezes), ema, "
       "window.", "credit", choices=_credit_rules),
    *rule_params(CREDIT_RULES),
    _p("credit_initial", 100.0, float, "-", "Credit of a new party: the prior's score.",
       "credit", low=0.0, high=100.0),
    _p("credit_score", "kept", str, "-", "What a contract side scores (docs/model.md section "
       "6): kept (100 if kept, 0 if breached: the breach count's definition; credit is the "
       "recent share kept) or dipi ([DIPI]'s graded score with natural_factor).", "credit",
       choices=_credit_scores),
    _p("natural_factor", 0.1, float, "-", "Natural weighting factor lambda: forgives a "
       "seller a shortfall up to lambda*q ([DIPI]).", "credit", low=0.0, high=0.3,
       high_open=True),
    _p("credit_frozen", False, bool, "-", "Keep every party's credit at credit_initial "
       "(the 'credit switched off' arm of incentive experiments).", "credit"),
    _p("credit_count", "contract", str, "-", "What one credit update counts: every settled "
       "contract (the papers) or one per trading hour.", "credit",
       choices=("contract", "period")),
    # --- consensus -------------------------------------------------------------------------
    _p("consensus", "poca", str, "-", "Block-producer rule (docs/model.md section 7).",
       "consensus", choices=_consensus_rules),
    *rule_params(CONSENSUS_RULES),
    _p("block_reward_yuan", 5.0, float, "yuan", "Reward credited to the block producer.",
       "consensus", low=0.0, high=1e9),
    _p("quorum_share", 0.5, float, "-", "Credit-matching quorum: a matching result is "
       "committed once more than m = floor(share x nodes) nodes report it identically.",
       "consensus", low=0.0, high=1.0, high_open=True),
    _p("faulty_share", 0.0, float, "-", "Share of nodes that report wrong matching results.",
       "consensus", **_SHARE),
    _p("faulty_collude", True, bool, "-", "Faulty nodes report one identical wrong result "
       "(worst case) rather than each its own.", "consensus"),
    _p("ledger", "", str, "-", "SQLite file the DU1/JY1/LH1 chains are written to as the "
       "run goes (a new file; empty: kept in memory).", "ledger"),
    _p("ledger_detail", "digest", str, "-", "full: every record a Merkle leaf and stored; "
       "digest: one hash per table per period (fast); off: no chains.", "ledger",
       choices=("full", "digest", "off")),
    _p("credit_threshold", 90.0, float, "-", "KPI: share of blocks won by parties with "
       "credit below this.", "consensus", low=0.0, high=100.0),
)

PARAMS_BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}


def _weather_params() -> tuple[Param, ...]:
    """The weather keys, declared once as the fields of WeatherParams (physics.weather)."""

    bounds = ("low", "high", "low_open", "high_open")
    return tuple(
        Param(f.name, f.default, type(f.default), f.metadata["unit"], f.metadata["doc"],
              "weather", **{k: f.metadata[k] for k in bounds if k in f.metadata})
        for f in fields(WeatherParams)
    )


WEATHER_PARAMS: tuple[Param, ...] = _weather_params()


def all_params() -> tuple[Param, ...]:
    """Every scenario key, the weather keys included."""
    return PARAMS + WEATHER_PARAMS


def param(name: str) -> Param:
    """Look up one key; unknown keys raise ConfigError with a suggestion."""
    table = {p.name: p for p in all_params()}
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown key {name!r}{hint}; see `dipi-abm keys`")
    return table[name]


class Params(Mapping[str, Any]):
    """A complete, validated, read-only set of scenario values (attribute access too)."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Params are read-only; build new ones with validate()")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r})"

    def __getstate__(self) -> dict[str, Any]:
        return self._values

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", state)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)


def validate(values: Mapping[str, Any] | None = None, *, streamed: bool = False) -> Params:
    """Check ``values`` key by key and across keys; fill in defaults. ``streamed``: the
    per-party records go to a file as the run goes (the command line), not into memory,
    so they do not count against ``memory_limit_gb``."""
    table = {p.name: p for p in all_params()}
    out = {name: p.default for name, p in table.items()}
    for key, value in (values or {}).items():
        out[key] = param(key).check(value)
    if out["agent_report_every"] is None:
        out["agent_report_every"] = default_report_every(out)
    _check_cross(out)
    check_resources(out, streamed=streamed)

    # The weather model checks its own cross-field rules (cut-in < rated < cut-out, ...).
    WeatherParams(**{p.name: out[p.name] for p in WEATHER_PARAMS})
    return Params(out)


#: Per-party records a run keeps by default (agent_report_every empty): on disk about
#: 24 bytes each (agents.parquet; docs/robustness.md).
DEFAULT_PARTY_RECORDS = 10_000_000


def default_report_every(v: Mapping[str, Any]) -> int:
    """Every hour while the run's per-party records stay within
    :data:`DEFAULT_PARTY_RECORDS`; else the smallest stride that keeps them there."""
    records_per_snapshot = v["n_dpgc"] + v["n_users"]
    snapshots = DEFAULT_PARTY_RECORDS // records_per_snapshot
    return max(1, math.ceil(v["hours"] / max(snapshots - 2, 1)))  # + first and last


def _check_cross(v: dict[str, Any]) -> None:
    for group, keys in (
        ("technology", ("share_solar", "share_wind", "share_hydro", "share_thermal")),
        ("load-class", ("share_residential", "share_commercial", "share_industrial",
                        "share_ev")),
    ):
        total = sum(v[k] for k in keys)
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(
                f"{' + '.join(keys)} = {total:.6g}: the {group} shares must sum to 1"
            )
    for lo, hi in (("ask_markup_min", "ask_markup_max"), ("bid_discount_min", "bid_discount_max")):
        if v[lo] > v[hi]:
            raise ConfigError(f"{lo} = {v[lo]} > {hi} = {v[hi]}: {lo} must be <= {hi}")
    if v["commit_min"] > v["commit_max"]:
        raise ConfigError(f"commit_min = {v['commit_min']} > commit_max = {v['commit_max']}: "
                          "commit_min must be <= commit_max")
    if v["matching"] == "centralized" and "credit_gate" in v["breach_policy"].split("+"):
        raise ConfigError("breach_policy = credit_gate with matching = centralized: the "
                          "gate caps the orders a party sends to the P2P market, and "
                          "centralized matching has none; choose another matching rule or "
                          "drop credit_gate")
    cma = ("cma_w_credit", "cma_w_distance", "cma_w_price", "cma_w_green")
    if sum(v[k] for k in cma) <= 0:
        raise ConfigError(f"{', '.join(cma)} are all 0: at least one CMA weight must be > 0")
    if v["ledger"] and v["ledger_detail"] == "off":
        raise ConfigError(f"ledger = {v['ledger']!r} with ledger_detail = 'off': an off ledger "
                          "writes nothing; set ledger_detail = 'digest' or 'full', or drop ledger")
    f, r = v["feed_in_yuan_per_kwh"], v["retail_yuan_per_kwh"]
    if f >= r:
        raise ConfigError(f"feed_in_yuan_per_kwh = {f}: must be below retail_yuan_per_kwh = {r}")
    if TARIFFS[v["tariff"]].has("time_of_use"):
        if not f < v["tou_valley_yuan_per_kwh"] <= r <= v["tou_peak_yuan_per_kwh"]:
            raise ConfigError(
                "tou_valley_yuan_per_kwh, retail_yuan_per_kwh, tou_peak_yuan_per_kwh = "
                f"{v['tou_valley_yuan_per_kwh']}, {r}, {v['tou_peak_yuan_per_kwh']}: time-of-use "
                f"prices must satisfy feed-in ({f}) < valley <= retail <= peak"
            )


# --------------------------------------------------------------------------- resources
# What a run holds in memory, measured on the default scenario (issue 14; bytes). The
# estimate is deliberately generous: it refuses runs that cannot finish, not tight ones.
BASE_BYTES = 400 * 2**20  # interpreter, numpy, pandas, Mesa, networkx
BYTES_PER_PARTY = 6_000  # columns, Mesa agents and miner nodes (measured 2.3-5.1 kB)
BYTES_PER_MINER = 3_000  # a stand-alone miner: a Mesa agent and its node columns
BYTES_PER_HOUR = 2_500  # the hour's KPIs in the DataCollector (measured 1.4-2.2 kB)
BYTES_PER_PARTY_RECORD = 150  # one party-hour record, and its agents.parquet row on writing
LEDGER_BYTES_PER_HOUR = {"off": 0, "digest": 2_000, "full": 2_000}  # measured 1.8 kB
LEDGER_BYTES_PER_PARTY_HOUR = {"off": 0, "digest": 0, "full": 700}  # full: measured 640
#: Hashed POCA keeps the LH1 credit records at every detail (a verifier re-derives targets).
KEPT_CREDIT_BYTES_PER_PARTY_HOUR = 25  # measured 22
#: Per-party records streamed to agents.parquet: at most three row groups in memory.
STREAMED_RECORD_BYTES = 3 * 1024 * 1024 * BYTES_PER_PARTY_RECORD
#: Hashed POCA: expected SHA-256 evaluations of one block's nonce race at most (about
#: 10 s of pure-Python hashing); a harder race would look like a hang.
HASHES_PER_BLOCK_LIMIT = 2**22


@dataclass(frozen=True)
class Estimate:
    """One resource a run will use, the key that drives it, and the limit it must meet."""

    key: str
    what: str
    amount: float
    limit: float
    unit: str

    @property
    def over(self) -> bool:
        return self.amount > self.limit


def estimate_resources(v: Mapping[str, Any], streamed: bool = False) -> list[Estimate]:
    """What the run ``v`` (complete, checked values) will need, before it allocates.

    Memory: the distance matrix (built-in grids; a grid file is checked once read, in
    :func:`dipi_abm.physics.grid.build_grid`), the parties, and what grows every hour
    (KPIs, per-party records every ``agent_report_every`` hours unless ``streamed``, the
    in-memory ledger). Hashed POCA: the expected SHA-256 evaluations per block at the
    starting credit.
    """
    limit = memory_limit_bytes(v["memory_limit_gb"])
    hours = v["hours"]
    n = v["n_dpgc"] + v["n_users"]
    buses = {"ieee33": 33, "synthetic": v["grid_buses"]}.get(v["grid"], 0)
    detail = v["ledger_detail"]
    hashed = (CONSENSUS_RULES[v["consensus"]].has("nonce_race") and v["poca_mode"] == "hashed"
              and detail != "off")
    per_hour = (BYTES_PER_HOUR + LEDGER_BYTES_PER_HOUR[detail]
                + (LEDGER_BYTES_PER_PARTY_HOUR[detail]
                   + (KEPT_CREDIT_BYTES_PER_PARTY_HOUR if hashed else 0)) * n)
    records = BYTES_PER_PARTY_RECORD * n * (hours // v["agent_report_every"] + 1)
    if streamed:
        records = min(records, STREAMED_RECORD_BYTES)
    # (what, bytes, the keys that drive it)
    parts = [
        ("the distance matrix", distance_matrix_bytes(buses, n), ("grid_buses",)),
        ("the parties", BYTES_PER_PARTY * n + BYTES_PER_MINER * v["n_miners"],
         ("n_users", "n_dpgc", "n_miners")),
        ("the hourly records and ledger", hours * per_hour + records,
         ("hours", "n_users", "n_dpgc")),
    ]
    total = BASE_BYTES + sum(b for _, b, _ in parts)
    what, _, keys = max(parts, key=lambda part: part[1])
    # Name the key furthest above its default: the one the user most likely raised.
    key = max(keys, key=lambda k: v[k] / max(PARAMS_BY_NAME[k].default, 1))
    out = [Estimate(key, f"memory (mostly {what})", total, limit, "bytes")]
    if CONSENSUS_RULES[v["consensus"]].has("nonce_race") and v["poca_mode"] == "hashed":
        out.append(Estimate("poca_difficulty_bits", "SHA-256 hashes per block",
                            expected_hashes_per_block(v), HASHES_PER_BLOCK_LIMIT, "hashes"))
    return out


def expected_hashes_per_block(v: Mapping[str, Any]) -> float:
    """Hashed POCA's expected hashes per block at the starting credit (docs/model.md section 7).

    Node j hashes at rate h_j and succeeds with probability p_j = 2^-bits e^((c_j-100)/tau)
    per hash, so the race lasts about 1 / sum(h p) rounds and costs sum(h) hashes a round
    (at least one round).
    """
    n = v["n_dpgc"] + v["n_users"]
    mean_h = math.exp(v["hash_power_spread"] ** 2 / 2.0)  # log-normal mean
    h_parties, h_miners = n * mean_h, v["n_miners"] * v["miner_hash_power"]
    base = 2.0 ** -v["poca_difficulty_bits"]
    rate = base * (h_parties * math.exp((v["credit_initial"] - 100.0) / v["poca_tau"])
                   + h_miners * math.exp(-100.0 / v["poca_tau"]))
    total_h = h_parties + h_miners
    return total_h * max(1.0, 1.0 / rate) if rate > 0 else math.inf


def _gib(x: float) -> str:
    return f"{x / 2**30:.3g} GiB"


def check_resources(v: Mapping[str, Any], streamed: bool = False) -> None:
    """Refuse a run whose estimate exceeds a limit: one line naming the key, the estimate
    and the limit (issue 14: before anything is allocated)."""
    for e in estimate_resources(v, streamed):
        if not e.over:
            continue
        value = _fmt(v[e.key])
        if e.unit == "bytes":
            src = memory_limit(v["memory_limit_gb"])[1]
            raise ConfigError(
                f"{e.key} = {value}: the run would need about {_gib(e.amount)} of {e.what}, "
                f"above the limit of {_gib(e.limit)} ({src}); lower hours or the number of "
                "parties or buses, raise agent_report_every, or set ledger_detail = 'off'")
        raise ConfigError(
            f"{e.key} = {value}: hashed POCA would need about {e.amount:.3g} {e.what} at "
            f"the starting credit, above the limit of {e.limit:.3g} (about 10 s a block); "
            "lower poca_difficulty_bits or miner_hash_power, or use poca_mode = 'sampled'")


#: Deepest nesting of arrays and tables a value may have (a scenario needs 2).
MAX_NESTING = 8


def loads_toml(text: str, label: str) -> dict[str, Any]:
    """``tomllib.loads`` whose failures (syntax, nesting too deep) are one ConfigError line
    starting with ``label``."""
    try:
        raw = tomllib.loads(text)
    except RecursionError:
        raise ConfigError(f"{label}: nested more than {MAX_NESTING} levels deep") from None
    except tomllib.TOMLDecodeError as exc:
        msg = " ".join(str(exc).split())
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg)
        if m:  # tomllib puts the position at the end; lead with it
            raise ConfigError(f"{label}, line {m[1]}, column {m[2]}: not valid TOML: "
                              f"{msg[: m.start()]}") from None
        raise ConfigError(f"{label}: not valid TOML: {msg}") from None
    if _depth(raw) > MAX_NESTING + 1:  # +1: the document's own table
        raise ConfigError(f"{label}: nested more than {MAX_NESTING} levels deep")
    return raw


def _depth(value: Any) -> int:
    """Nesting depth of lists and dicts, without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value as a TOML value; bare words are strings."""
    try:
        return loads_toml(f"v = {text}", "value")["v"]
    except ConfigError as exc:
        if "nested" in str(exc):
            raise ConfigError(f"{_short(text, 30)}: nested more than {MAX_NESTING} levels "
                              "deep") from None
        if text.lower() in ("inf", "+inf"):
            return INF
        return text


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` from the command line into a mapping (values TOML-typed)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {_short(item)}: must be KEY=VALUE")
        param(key)
        if "\n" in text or "\r" in text:  # TOML would read the second line as another key
            raise ConfigError(f"--set {key}: the value holds a line break; give one "
                              "KEY=VALUE per --set")
        try:
            out[key] = parse_value(text.strip())
        except ConfigError as exc:
            raise ConfigError(f"--set {key} = {exc}") from None
    return out


#: Largest TOML file read (config or sweep spec): a scenario is a few kB.
MAX_TOML_BYTES = 10 * 2**20


def read_toml(path: str | os.PathLike, label: str) -> tuple[dict[str, Any], str]:
    """Read a TOML file as ``(data, text)``; every failure is one ConfigError line.

    ``label`` starts the message (``"config file 'x.toml'"``). Binary or non-UTF-8
    files, directories, huge files and syntax errors are named as such, with the
    line tomllib reports.
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise ConfigError(f"{label}: is a directory, expected a TOML file")
        if p.exists() and not p.is_file():
            raise ConfigError(f"{label}: not a regular file, expected a TOML file")
        size = p.stat().st_size
        if size > MAX_TOML_BYTES:
            raise ConfigError(f"{label}: {size} bytes, more than a TOML file of "
                              f"{MAX_TOML_BYTES} bytes at most; is it the right file?")
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{label}: not a UTF-8 text file (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); expected a TOML file") from None
    if "\x00" in text:
        raise ConfigError(f"{label}: a binary file (NUL byte at offset {text.index(chr(0))}); "
                          "expected a TOML file")
    raw = loads_toml(text, label)
    return raw, text


_TABLE_RE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_BARE = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_KEY_RE = re.compile(rf"^\s*({_BARE}(?:\s*\.\s*{_BARE})*)\s*=")


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(_BARE, text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def toml_key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Where each table and key first appears in a TOML text (1-based lines).

    A light scan, not a parser: tomllib has already accepted the text and does not
    report positions; it only points error messages at a line.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for n, line in enumerate(text.splitlines(), start=1):
        m = _TABLE_RE.match(line)
        if m:
            table = _split_key(m[1])
            lines.setdefault(table, n)
            continue
        m = _KEY_RE.match(line)
        if m:
            path = table + _split_key(m[1])
            for i in range(1, len(path) + 1):
                lines.setdefault(path[:i], n)
    return lines


def _at(lines: dict[tuple[str, ...], int], *path: str) -> str:
    n = lines.get(tuple(path))
    return f", line {n}" if n is not None else ""


def config_tables() -> tuple[str, ...]:
    """The tables a scenario file may group its keys in: the key groups (``dipi-abm keys``)."""
    return tuple(dict.fromkeys(p.group for p in all_params()))


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a scenario TOML file: top-level keys, optionally grouped in tables.

    Tables (``[population]``, ``[grid]``, ...: the key groups) only group keys for
    readability, so a key may appear once in the whole file. Refused, naming the
    file and line: an unknown table (tables differing only in case included), a
    nested table, a key given twice (at top level and in a table, or in two tables),
    an unknown key, and a value its key does not accept (so a bad value is reported
    even when ``--hours`` or ``--set`` would override it).
    """
    p = Path(path)
    label = f"config file '{p}'"
    raw, text = read_toml(p, label)
    lines = toml_key_lines(text)
    tables = config_tables()
    flat: dict[str, Any] = {}
    where: dict[str, tuple[str, ...]] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            if key not in tables:
                same = [t for t in (*tables, *raw) if t != key and t.lower() == key.lower()]
                hint = (f"; it differs from [{same[0]}] only in case" if same else
                        _did_you_mean(key, tables))
                raise ConfigError(f"{label}{_at(lines, key)}: unknown table [{key}]{hint}; "
                                  f"tables group keys: {', '.join(tables)}")
            items = [((key, k2), k2, v2) for k2, v2 in value.items()]
        else:
            items = [((key,), key, value)]
        for path_, k, v in items:
            at = _at(lines, *path_)
            if isinstance(v, dict):
                raise ConfigError(f"{label}{at}: [{'.'.join(path_)}] is a nested table; "
                                  "tables only group keys, one level deep")
            if k in flat:
                first = where[k]
                n_first = lines.get(first)
                first_at = f" at line {n_first}" if n_first is not None else ""
                raise ConfigError(
                    f"{label}{at}: {k} is set twice (first{first_at} as "
                    f"{'.'.join(first)}, again as {'.'.join(path_)}); set it once")
            try:
                flat[k] = param(k).check(v) if v is not None else v
            except ConfigError as exc:
                raise ConfigError(f"{label}{at}: {exc}") from None
            flat[k] = v
            where[k] = path_
    return flat


def _did_you_mean(name: str, options: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean [{close[0]}]?)" if close else ""


def markdown_table() -> str:
    """The README's table of keys, generated from the registry."""
    rows = ["| key | default | unit | allowed | meaning |", "|---|---|---|---|---|"]
    for p in all_params():
        default = "(none)" if p.default is None else _fmt(p.default)
        rows.append(f"| `{p.name}` | `{default}` | {p.unit} | {p.allowed()} | {p.doc} |")
    return "\n".join(rows)
