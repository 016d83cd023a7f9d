"""Every registry entry declares its keys and traits, binds once, and runs in the model.

The lists come from the registries themselves, so a new entry is tested without
editing this file (docs/model.md: every *(rule)* is a named, swappable policy).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dipi_abm import DIPIModel
from dipi_abm import config as cfg
from dipi_abm.rules.consensus import CONSENSUS_RULES
from dipi_abm.rules.consequences import BREACH_POLICIES
from dipi_abm.rules.credit import CREDIT_RULES
from dipi_abm.rules.learning import LEARNING_RULES
from dipi_abm.rules.matching import MATCHING_RULES
from dipi_abm.rules.registry import TRAITS, Rule

REGISTRIES = {"matching": MATCHING_RULES, "credit_rule": CREDIT_RULES,
              "consensus": CONSENSUS_RULES, "learning": LEARNING_RULES,
              "breach_policy": BREACH_POLICIES}
ENTRIES = [(key, name) for key, reg in REGISTRIES.items() for name in reg]
SMALL = {"n_dpgc": 5, "n_users": 20, "hours": 24, "opportunist_share": 0.2}


@pytest.mark.parametrize(("key", "name"), ENTRIES)
def test_entry_declares_known_keys_and_traits(key, name):
    assert name in cfg.PARAMS_BY_NAME[key].allowed()
    defaults = cfg.validate({})
    rule = REGISTRIES[key][name]
    assert isinstance(rule, Rule)
    assert rule.traits <= TRAITS
    for scenario_key in rule.keys.values():
        assert scenario_key in cfg.PARAMS_BY_NAME, scenario_key
    for setting in rule.params:  # declared beside the entry, collected by config
        assert cfg.PARAMS_BY_NAME[setting.name] is setting
    assert callable(rule.bind(defaults))
    assert rule.__doc__


@pytest.mark.parametrize(("key", "name"), ENTRIES)
def test_entry_runs_in_the_model_with_money_and_energy_conserved(key, name):
    m = DIPIModel(seed=11, **{key: name}, **SMALL)
    total0 = m.state.balance.sum() + m.grid_company_balance + m.miner_balance.sum()
    m.run()
    assert m.hour == SMALL["hours"] and not m.running
    df = m.hourly_dataframe()
    lhs = df.generation_kwh + df.grid_purchase_kwh
    rhs = df.load_kwh + df.grid_sale_kwh + df.curtailed_kwh
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9)
    total = m.state.balance.sum() + m.grid_company_balance + m.miner_balance.sum()
    assert math.isclose(total, total0 + m.minted_yuan + m.endowed_yuan, rel_tol=1e-12,
                        abs_tol=1e-6)
    credit = m.state.credit.credit
    assert np.all((credit >= 0) & (credit <= 100))


def test_the_engine_reads_traits_not_names():
    """Grid-only clearing and distance needs come from the entry, so a renamed copy of a
    rule behaves exactly like the original."""
    MATCHING_RULES["centralized_copy"] = MATCHING_RULES["centralized"]
    CONSENSUS_RULES["der_cbc_copy"] = CONSENSUS_RULES["der_cbc"]
    BREACH_POLICIES["deposit_copy"] = BREACH_POLICIES["deposit"]
    try:
        a = DIPIModel(seed=3, matching="centralized", consensus="der_cbc", **SMALL).run()
        b = DIPIModel(seed=3, matching="centralized_copy", consensus="der_cbc_copy",
                      **SMALL).run()
        c, d = (DIPIModel(seed=3, breach_policy=name, **SMALL).run()
                for name in ("deposit", "deposit_copy"))
    finally:
        del MATCHING_RULES["centralized_copy"], CONSENSUS_RULES["der_cbc_copy"]
        del BREACH_POLICIES["deposit_copy"]
    assert a.hourly_dataframe().equals(b.hourly_dataframe())
    assert a.market.grid_only and b.market.grid_only
    assert c.hourly_dataframe().equals(d.hourly_dataframe())
    assert c.hourly_dataframe()["breach_consequence_yuan"].sum() > 0


def test_a_renamed_nonce_race_rule_meets_the_same_resource_guard():
    """The hashed-POCA guard reads the entry's ``nonce_race`` trait, not the name ``poca``."""
    CONSENSUS_RULES["poca_copy"] = CONSENSUS_RULES["poca"]
    try:
        for name in ("poca", "poca_copy"):
            with pytest.raises(cfg.ConfigError, match="hashed POCA"):
                cfg.validate({"consensus": name, "poca_mode": "hashed",
                              "poca_difficulty_bits": 32.0, "n_users": 100_000})
    finally:
        del CONSENSUS_RULES["poca_copy"]


def test_unknown_trait_is_refused():
    with pytest.raises(ValueError, match="unknown rule traits"):
        Rule(len, traits=frozenset({"telepathy"}))
