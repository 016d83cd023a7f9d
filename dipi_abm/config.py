"""Scenario parameters: one registry, validated before anything runs.

Every key a run accepts is a :class:`Param` in :data:`PARAMS`. The same keys
work as ``DIPIModel`` keyword arguments, in a TOML file (``--config``) and on
the command line (``--set key=value``). :func:`validate` turns a partial
mapping into a complete, checked :class:`Params`; anything wrong raises
:class:`~dipi_abm.errors.ConfigError` with a one-line message naming the key
and what is allowed.
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

INF = math.inf


@dataclass(frozen=True)
class Param:
    """One scenario key: its type, default, unit, allowed range and meaning."""

    name: str
    default: Any
    kind: type
    unit: str
    doc: str
    group: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: Callable[[], tuple[str, ...]] | tuple[str, ...] | None = None
    allow_none: bool = False
    #: A key that takes several names (a TOML list, or names joined by "+"): this
    #: returns the stored form or raises ValueError.
    combine: Callable[[Any], str] | None = None
    allow_inf: bool = False  # +inf is a documented value ("no limit")

    def allowed(self) -> str:
        """Human-readable statement of what the key accepts."""
        if self.combine is not None:
            return ("one or more of " + ", ".join(self.choice_values())
                    + " (a list, or names joined by +)")
        if self.choices is not None:
            return "one of " + ", ".join(self.choice_values())
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "a string"
        what = "an integer" if self.kind is int else "a number"
        inf = " or inf" if self.allow_inf else ""
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"{what} in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}{inf}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {_fmt(self.low)}{inf}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {_fmt(self.high)}{inf}"
        return what

    def choice_values(self) -> tuple[str, ...]:
        c = self.choices
        return tuple(c() if callable(c) else c)  # type: ignore[misc]

    def check(self, value: Any) -> Any:
        """Return the value coerced to the key's type, or raise ConfigError.

        The message always names this key (never a derived quantity), so
        ``capacity_solar_kw = inf`` is reported as ``capacity_solar_kw``.
        """
        if value is None:
            if self.allow_none:
                return None
            raise ConfigError(f"{self.name} = None: must be {self.allowed()}")
        v = value
        if self.combine is not None:
            if isinstance(v, str | list | tuple):
                try:
                    return self.combine(v)
                except ValueError as exc:
                    raise ConfigError(f"{self.name} = {v!r}: {exc}; must be "
                                      f"{self.allowed()}") from None
            raise ConfigError(f"{self.name} = {v!r}: must be {self.allowed()}")
        if self.kind is bool:
            if not isinstance(v, bool):
                raise self._bad(v)
            return v
        if self.kind is str:
            if not isinstance(v, str):
                raise self._bad(v)
            if self.choices is not None and v not in self.choice_values():
                raise self._bad(v)
            if "\x00" in v or len(v) > 4096:
                raise ConfigError(f"{self.name} = {_short(v)}: must be a string of at most "
                                  "4096 characters without NUL")
            return v
        if isinstance(v, bool) or not isinstance(v, int | float):
            try:
                import numpy as np

                if isinstance(v, np.integer | np.floating) and not isinstance(v, np.bool_):
                    v = v.item()
                else:
                    raise TypeError
            except TypeError:
                raise self._bad(v) from None
        if self.kind is int:
            if isinstance(v, float):
                if not v.is_integer():
                    raise self._bad(v)
                v = int(v)
        else:
            try:
                v = float(v)
            except OverflowError:  # an integer beyond the float range
                raise self._bad(v) from None
            if math.isnan(v):
                raise ConfigError(f"{self.name} = nan: must be {self.allowed()}")
            if math.isinf(v):
                if v > 0 and self.allow_inf:
                    return v
                raise ConfigError(f"{self.name} = {_fmt(v)}: must be {self.allowed()}")
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            raise ConfigError(f"{self.name} = {_fmt(v)}: must be {self.allowed()}")
        if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
            raise ConfigError(f"{self.name} = {_fmt(v)}: must be {self.allowed()}")
        return v

    def _bad(self, value: Any) -> ConfigError:
        return ConfigError(f"{self.name} = {_short(value)}: must be {self.allowed()}")


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a bad value, cut to keep the error message one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(x: float) -> str:
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    if isinstance(x, int) and abs(x) >= 10**15:
        return f"{x:.3g}" if abs(x) < 10**300 else _short(x)
    return repr(x) if isinstance(x, float) else str(x)


# Registries live with their rules; they are looked up late to avoid import cycles.
def _registry(module: str, name: str) -> Callable[[], tuple[str, ...]]:
    """The allowed values of a rule key: the names in ``dipi_abm.<module>.<name>``."""

    def names() -> tuple[str, ...]:
        return tuple(getattr(importlib.import_module(f"dipi_abm.{module}"), name))

    return names


_matching_rules = _registry("rules.matching", "MATCHING_RULES")
_price_rules = _registry("rules.matching", "PRICE_RULES")
_credit_rules = _registry("rules.credit", "CREDIT_RULES")
_consensus_rules = _registry("rules.consensus", "CONSENSUS_RULES")
_poca_modes = _registry("rules.consensus", "POCA_MODES")
_learning_rules = _registry("rules.learning", "LEARNING_RULES")
_distance_metrics = _registry("physics.grid", "DISTANCE_METRICS")
_wheeling_rules = _registry("physics.grid", "WHEELING_RULES")
_tariffs = _registry("rules.tariffs", "TARIFFS")
_breach_policies = _registry("rules.consequences", "BREACH_POLICIES")
_balancing_rules = _registry("rules.economy", "BALANCING_RULES")
_recovery_rules = _registry("rules.economy", "RECOVERY_RULES")


def _combine_breach_policies(value: Any) -> str:
    return importlib.import_module("dipi_abm.rules.consequences").canonical(value)


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
    _p("agent_report_every", 1, int, "h", "Per-agent records (DataCollector, agents.parquet) "
       "every k hours.", "run", low=1, high=10_000_000),
    _p("memory_limit_gb", None, float, "GiB", "Largest memory a run may need by the estimate "
       "made before it starts (distance matrix, parties, hourly and per-party records, "
       "ledger); a run estimated above it is refused. Empty: 75 % of this machine's "
       "physical memory.", "run", low=0.1, high=1e6, allow_none=True),
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
    _p("capacity_solar_kw", 1500.0, float, "kW", "Median solar DPGC capacity.", "population",
       **_KW),
    _p("capacity_wind_kw", 2000.0, float, "kW", "Median wind DPGC capacity.", "population",
       **_KW),
    _p("capacity_hydro_kw", 1000.0, float, "kW", "Median hydro DPGC capacity.", "population",
       **_KW),
    _p("capacity_thermal_kw", 1500.0, float, "kW", "Median thermal DPGC capacity.",
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
    _p("load_residential_kw", 80.0, float, "kW", "Median mean load of a residential "
       "community.", "population", **_KW),
    _p("load_commercial_kw", 150.0, float, "kW", "Median mean load of a commercial building.",
       "population", **_KW),
    _p("load_industrial_kw", 400.0, float, "kW", "Median mean load of an industrial site.",
       "population", **_KW),
    _p("load_ev_kw", 100.0, float, "kW", "Median mean load of an EV charging station.",
       "population", **_KW),
    _p("load_spread", 0.3, float, "-", "Log-normal sigma of users' mean load.", "population",
       low=0.0, high=3.0),
    _p("prosumer_share", 0.3, float, "-", "Share of users with rooftop PV (prosumers sell "
       "when their net position is a surplus).", "population", **_SHARE),
    _p("prosumer_pv_ratio", 1.2, float, "kW/kW", "Rooftop PV capacity per kW of the "
       "prosumer's mean load.", "population", low=0.0, high=100.0),
    _p("initial_balance_yuan", 200.0, float, "yuan", "Every party's starting balance "
       "([DER-CBC] tests start at 200).", "population", low=-1e12, high=1e12),
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
    _p("roth_erev_recency", 0.05, float, "-", "Roth-Erev forgetting phi.", "behaviour",
       low=0.0, high=1.0, high_open=True),
    _p("roth_erev_experimentation", 0.1, float, "-", "Roth-Erev spill-over eps to the "
       "actions not taken.", "behaviour", low=0.0, high=1.0, high_open=True),
    _p("roth_erev_reference_rate", 0.05, float, "-", "Roth-Erev: weight w of the newest "
       "payoff in the running reference payoff; reinforcement is payoff minus reference, "
       "so losses are felt.", "behaviour", low=0.0, high=1.0, low_open=True),
    _p("egreedy_epsilon", 0.1, float, "-", "epsilon-greedy exploration probability.",
       "behaviour", **_SHARE),
    # --- market ----------------------------------------------------------------------------
    _p("matching", "price_time", str, "-", "Matching rule (docs/model.md section 4).", "market",
       choices=_matching_rules),
    _p("price_rule", "midpoint", str, "-", "Contract price: midpoint of ask and the bid "
       "net of wheeling, pay-as-ask or pay-as-bid.", "market", choices=_price_rules),
    _p("cma_w_credit", 0.4, float, "-", "CMA weight of the credit coefficient "
       "(C_b + C_s)/200.", "market", low=0.0, high=100.0),
    _p("cma_w_distance", 0.2, float, "-", "CMA weight of the distance coefficient "
       "D0/(D0 + D) (the paper's w_D/D).", "market", low=0.0, high=100.0),
    _p("cma_w_price", 0.2, float, "-", "CMA weight of the price-consensus coefficient "
       "p0/(p0 + |P_N - P_S|) (the paper's w_I/|P_N - P_S|).", "market", low=0.0, high=100.0),
    _p("cma_w_green", 0.2, float, "-", "CMA weight of the green coefficient Q of the "
       "seller's energy.", "market", low=0.0, high=100.0),
    _p("cma_distance_ref_ohm", 1.0, float, "ohm", "CMA: D0 of the distance coefficient.",
       "market", **_OHM, low_open=True),
    _p("cma_price_ref_yuan", 0.01, float, "yuan/kWh", "CMA: p0 of the price-consensus "
       "coefficient.", "market", **_PRICE),
    _p("cma_rounds", 6, int, "-", "CMA: weighted matching rounds per hour; what is still "
       "feasible afterwards clears by price-time priority.", "market", low=1, high=1000),
    _p("cma_strict_credit", 90.0, float, "-", "cma_strict: parties with at least this credit "
       "clear first, among themselves, by CMA weight; the others get only what is left "
       "(no price-time round).", "market", low=0.0, high=100.0),
    _p("breach_tolerance", 0.05, float, "-", "A side breaches when it delivers or takes less "
       "than (1 - tolerance) of the agreed volume.", "market", low=0.0, high=1.0,
       high_open=True),
    # --- breach policy (docs/model.md section 6b) -------------------------------------------
    _p("breach_policy", "none", str, "-", "What a breach costs the breacher (docs/model.md 6b): "
       "none (the papers' settlement), imbalance_penalty, make_whole, deposit, credit_gate, "
       "credit_scaled_reward; several combine (their effects add up), e.g. "
       "[\"imbalance_penalty\", \"credit_gate\"].", "breach policy",
       choices=_breach_policies, combine=_combine_breach_policies),
    _p("penalty_yuan_per_kwh", 0.2, float, "yuan/kWh", "imbalance_penalty: price pi of a kWh "
       "of shortfall beyond the side's tolerance (R - F = 0.257 at the default prices).",
       "breach policy", low=0.0, high=100.0),
    _p("penalty_tolerance_solar", 0.2, float, "-", "imbalance_penalty: shortfall share of q a "
       "solar seller (DPGC or prosumer) may miss without penalty (new energy: about 20 %).",
       "breach policy", **_SHARE),
    _p("penalty_tolerance_wind", 0.2, float, "-", "imbalance_penalty: tolerance of a wind "
       "seller.", "breach policy", **_SHARE),
    _p("penalty_tolerance_hydro", 0.1, float, "-", "imbalance_penalty: tolerance of a hydro "
       "seller.", "breach policy", **_SHARE),
    _p("penalty_tolerance_thermal", 0.03, float, "-", "imbalance_penalty: tolerance of a "
       "thermal seller (dispatchable).", "breach policy", **_SHARE),
    _p("penalty_tolerance_user", 0.05, float, "-", "imbalance_penalty: tolerance of a buyer "
       "(users: about 5 %).", "breach policy", **_SHARE),
    _p("penalty_recipient", "counterparty", str, "-", "imbalance_penalty: who receives the "
       "penalty: the counterparty of the contract; the counterparty up to its actual harm, "
       "the rest to the system operator (counterparty_capped); the grid company; or the "
       "system operator, funding balancing.", "breach policy",
       choices=("counterparty", "counterparty_capped", "grid_company", "system_operator")),
    _p("deposit_yuan_per_kwh", 0.05, float, "yuan/kWh", "deposit: collateral per committed "
       "kWh at credit 100 (linear in credit down to the low-credit rate at credit 0).",
       "breach policy", low=0.0, high=100.0),
    _p("deposit_low_credit_yuan_per_kwh", 0.5, float, "yuan/kWh", "deposit: collateral per "
       "committed kWh at credit 0.", "breach policy", low=0.0, high=100.0),
    _p("deposit_guarantee_yuan", 100.0, float, "yuan", "deposit: bank guarantee each party "
       "may post beyond its positive balance; a party cannot commit more than "
       "(guarantee + max(balance, 0)) / rate.", "breach policy", low=0.0, high=1e9),
    _p("gate_credit_threshold", 80.0, float, "-", "credit_gate: below this credit a party's "
       "tradable volume is capped.", "breach policy", low=0.0, high=100.0),
    _p("gate_credit_width", 20.0, float, "credit", "credit_gate: the cap falls linearly from "
       "all of the forecast at the threshold to the probation share this many points below.",
       "breach policy", low=0.0, high=100.0, low_open=True),
    _p("gate_probation_share", 0.25, float, "-", "credit_gate: share of its forecast a gated "
       "party may always trade (its way back: keep those contracts and credit recovers).",
       "breach policy", **_SHARE),
    _p("reward_share_of_margin", 0.1, float, "-", "credit_scaled_reward: rebate per delivered "
       "kWh to each side, as a share kappa of the trading margin R - F, at credit 100.",
       "breach policy", low=0.0, high=10.0),
    _p("reward_credit_floor", 80.0, float, "-", "credit_scaled_reward: no rebate at or below "
       "this credit; linear up to the full rebate at 100.", "breach policy", low=0.0,
       high=100.0, high_open=True),
    # --- system cost and welfare (docs/model.md section 6c; sources in its section 6c) --------
    _p("balancing", "linear", str, "-", "Price of the reserve that covers the hour's net "
       "imbalance: none (free and unlimited, the papers), linear, merit_order.", "economy",
       choices=_balancing_rules),
    _p("balancing_up_premium", 0.2, float, "-", "Up-regulation starts this share above "
       "retail R.", "economy", low=0.0, high=100.0),
    _p("balancing_down_discount", 0.2, float, "-", "Down-regulation starts this share below "
       "feed-in F.", "economy", low=0.0, high=100.0),
    _p("balancing_slope", 1.0, float, "-", "The reserve's price moves on by this many times "
       "R (up) or F (down) per unit of net imbalance / hour's load.", "economy", low=0.0,
       high=1000.0),
    _p("balancing_step_share", 0.05, float, "-", "merit_order: reserve block size, share of "
       "the hour's load.", "economy", low=0.0, high=1.0, low_open=True),
    _p("balancing_reserve_share", 0.2, float, "-", "merit_order: reserve available, share "
       "of the hour's load; up-regulation beyond it costs the value of lost load.",
       "economy", low=0.0, high=10.0),
    _p("voll_yuan_per_kwh", 20.0, float, "yuan/kWh", "Value of lost load: the value of a "
       "kWh served in the welfare.", "economy", **_PRICE),
    *(_p(f"gen_cost_{t}_yuan_per_kwh", v, float, "yuan/kWh", f"{t}: fuel and variable "
         "O&M per kWh generated.", "economy", low=0.0, high=100.0)
      for t, v in (("solar", 0.0), ("wind", 0.01), ("hydro", 0.01), ("thermal", 0.32))),
    *(_p(f"gen_fixed_{t}_yuan_per_kw_year", v, float, "yuan/kW/a", f"{t}: fixed O&M per "
         "kW of capacity and year.", "economy", low=0.0, high=1e5)
      for t, v in (("solar", 60.0), ("wind", 180.0), ("hydro", 150.0), ("thermal", 120.0))),
    _p("network_cost_yuan_per_kwh", 0.02, float, "yuan/kWh", "Network cost per kWh carried "
       "(losses, variable O&M).", "economy", low=0.0, high=100.0),
    _p("network_fixed_yuan_per_kw_year", 1000.0, float, "yuan/kW/a", "Network fixed cost per "
       "kW of the users' mean load and year.", "economy", low=0.0, high=1e6),
    _p("network_recovery", "none", str, "-", "How the network's cost is recovered beyond the "
       "tariffs: none, wheeling (P2P pays the average cost per kWh), fixed_charge (users "
       "pay the fixed cost by mean load).", "economy", choices=_recovery_rules),
    # --- credit ----------------------------------------------------------------------------
    _p("credit_rule", "decay", str, "-", "Credit update rule (docs/model.md section 6): decay "
       "(mean score with a half-life in hours), mean, paper ([DIPI] literal; freezes), ema, "
       "window.", "credit", choices=_credit_rules),
    _p("credit_half_life_h", 72.0, float, "h", "decay rule: past scores' weight halves every "
       "this many hours, whatever the party's number of contracts.", "credit", low=0.0,
       high=1e6, low_open=True),
    _p("credit_initial", 100.0, float, "-", "Credit of a new party.", "credit", low=0.0,
       high=100.0),
    _p("natural_factor", 0.1, float, "-", "Natural weighting factor lambda: forgives a "
       "seller a shortfall up to lambda*q ([DIPI]).", "credit", low=0.0, high=0.3,
       high_open=True),
    _p("credit_ema_alpha", 0.1, float, "-", "Weight of the newest score (ema rule).",
       "credit", low=0.0, high=1.0, low_open=True),
    _p("credit_window", 24, int, "-", "Scores averaged (window rule).", "credit", low=1,
       high=10_000),
    _p("credit_frozen", False, bool, "-", "Keep every party's credit at credit_initial "
       "(the 'credit switched off' arm of incentive experiments).", "credit"),
    _p("credit_count", "contract", str, "-", "What one credit update counts: every settled "
       "contract (the papers) or one per trading hour.", "credit",
       choices=("contract", "period")),
    # --- consensus -------------------------------------------------------------------------
    _p("consensus", "poca", str, "-", "Block-producer rule (docs/model.md section 7).",
       "consensus", choices=_consensus_rules),
    _p("poca_tau", 10.0, float, "credit", "POCA temperature: weight exp(credit/tau); 10 "
       "makes credits 90 and 100 differ by a factor e.", "consensus", low=0.01, high=1e6),
    _p("block_reward_yuan", 5.0, float, "yuan", "Reward credited to the block producer.",
       "consensus", low=0.0, high=1e9),
    _p("poca_mode", "sampled", str, "-", "POCA producer: drawn from the weights (sampled, "
       "fast) or found by a real SHA-256 nonce search that the other nodes verify (hashed).",
       "consensus", choices=_poca_modes),
    _p("poca_difficulty_bits", 10.0, float, "bits", "Hashed POCA: a credit-100 node succeeds "
       "with probability 2^-bits per hash (target N_diff exp(credit/tau)).", "consensus",
       low=1.0, high=32.0),
    _p("der_cbc_distance_scale_ohm", 1.0, float, "ohm", "der_cbc: weight falls as "
       "exp(-D/D0) with the node's electrical distance to its counterparties.", "consensus",
       **_OHM, low_open=True),
    _p("der_cbc_q_exponent", 2.0, float, "-", "der_cbc: weight grows as Q^beta with the "
       "cleanliness of the node's energy.", "consensus", low=0.0, high=20.0),
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
    from .physics.weather import WeatherParams

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
    _check_cross(out)
    check_resources(out, streamed=streamed)
    from .physics.weather import WeatherParams

    # The weather model checks its own cross-field rules (cut-in < rated < cut-out, ...).
    WeatherParams(**{p.name: out[p.name] for p in WEATHER_PARAMS})
    return Params(out)


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
    cma = ("cma_w_credit", "cma_w_distance", "cma_w_price", "cma_w_green")
    if sum(v[k] for k in cma) <= 0:
        raise ConfigError(f"{', '.join(cma)} are all 0: at least one CMA weight must be > 0")
    f, r = v["feed_in_yuan_per_kwh"], v["retail_yuan_per_kwh"]
    if f >= r:
        raise ConfigError(
            f"feed_in_yuan_per_kwh = {f}: must be below retail_yuan_per_kwh = {r}"
        )
    if v["tariff"] == "tou":
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
DISTANCE_MATRICES = 6  # bus-by-bus float64 arrays alive at once (Laplacian, inverse, ...)
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


def physical_memory_bytes() -> int:
    """This machine's physical memory (0 if the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 0


def memory_limit_bytes(memory_limit_gb: float | None) -> float:
    """``memory_limit_gb`` in bytes; unset: 75 % of physical memory (16 GiB if unknown)."""
    if memory_limit_gb is not None:
        return memory_limit_gb * 2**30
    phys = physical_memory_bytes()
    return 0.75 * phys if phys > 0 else 16 * 2**30


def distance_matrix_bytes(n_buses: int, n_parties: int = 0) -> float:
    """Bus-by-bus distance, wheeling and reach matrices, and the party-by-bus distances."""
    return DISTANCE_MATRICES * 8.0 * n_buses**2 + 8.0 * n_buses * n_parties


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
    hashed = v["consensus"] == "poca" and v["poca_mode"] == "hashed" and detail != "off"
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
    if v["consensus"] == "poca" and v["poca_mode"] == "hashed":
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
            src = ("memory_limit_gb" if v["memory_limit_gb"] is not None
                   else "75 % of this machine's memory; set memory_limit_gb to change it")
            raise ConfigError(
                f"{e.key} = {value}: the run would need about {_gib(e.amount)} of {e.what}, "
                f"above the limit of {_gib(e.limit)} ({src}); lower hours or the number of "
                "parties or buses, raise agent_report_every, or set ledger_detail = 'off'")
        raise ConfigError(
            f"{e.key} = {value}: hashed POCA would need about {e.amount:.3g} {e.what} at "
            f"the starting credit, above the limit of {e.limit:.3g} (about 10 s a block); "
            "lower poca_difficulty_bits or miner_hash_power, or use poca_mode = 'sampled'")


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value as a TOML value; bare words are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
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
            raise ConfigError(f"--set {item!r}: must be KEY=VALUE")
        param(key)
        out[key] = parse_value(text.strip())
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
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = " ".join(str(exc).split())
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg)
        if m:  # tomllib puts the position at the end; lead with it
            raise ConfigError(f"{label}, line {m[1]}, column {m[2]}: not valid TOML: "
                              f"{msg[: m.start()]}") from None
        raise ConfigError(f"{label}: not valid TOML: {msg}") from None
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
