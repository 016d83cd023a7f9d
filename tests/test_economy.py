"""System cost, balancing, welfare and who pays (docs/model.md section 6c)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dipi_abm import config as cfg
from dipi_abm.model import DIPIModel
from dipi_abm.rules.consequences import BREACH_POLICIES, GRID, SYSTEM_OPERATOR, Flows
from dipi_abm.rules.economy import (
    ACCOUNTS,
    BALANCING_RULES,
    ECONOMY_KPIS,
    RECOVERY_RULES,
    Costs,
    account_hour,
    deviation_kwh,
    party_type,
)

R, F = 0.657, 0.4
CURVE = {"balancing_up_premium": 0.2, "balancing_down_discount": 0.25, "balancing_slope": 1.0,
         "balancing_step_share": 0.05, "balancing_reserve_share": 0.1, "voll_yuan_per_kwh": 20.0}


def cost(rule: str, net: float, load: float = 1000.0) -> float:
    return BALANCING_RULES[rule].bind(CURVE)(net, load, R, F)


def test_balancing_prices_by_hand() -> None:
    assert cost("none", 300.0) == 0.0
    # linear up, N = 100 of L = 1000: (1.2 R - F) 100 + R 100^2 / 2000
    assert cost("linear", 100.0) == pytest.approx((1.2 * R - F) * 100 + R * 5.0)
    # linear down, N = -100: F (0.25 100 + 100^2 / 2000)
    assert cost("linear", -100.0) == pytest.approx(F * (25.0 + 5.0))
    assert cost("linear", 0.0) == 0.0
    # merit order: blocks of 50 kWh at 1.2 R and 1.25 R, reserve 100 kWh, beyond at VoLL
    blocks = 50 * (1.2 * R - F) + 50 * (1.25 * R - F)
    assert cost("merit_order", 100.0) == pytest.approx(blocks)
    assert cost("merit_order", 130.0) == pytest.approx(blocks + 30 * (20.0 - F))
    assert cost("merit_order", 30.0) == pytest.approx(30 * (1.2 * R - F))
    # down: 50 at 0.25 F, 50 at 0.30 F, the rest spilled at F
    assert cost("merit_order", -120.0) == pytest.approx(F * (12.5 + 15.0 + 20.0))


@given(st.floats(-500, 500), st.floats(-500, 500), st.sampled_from(sorted(BALANCING_RULES)))
def test_balancing_cost_grows_with_the_net_imbalance(a: float, b: float, rule: str) -> None:
    """Non-negative, zero at balance, and larger for a larger imbalance of one sign."""
    lo, hi = sorted((a, b), key=abs)
    if lo * hi >= 0:
        assert 0.0 <= cost(rule, lo) <= cost(rule, hi) + 1e-9


def test_deviation_from_schedule() -> None:
    """A seller committed 10 of a forecast 8 and delivered 6; a buyer committed 5 of a
    forecast 7 and took 9; an idle party forecast 1 and withdrew 2."""
    dev = deviation_kwh(net_forecast=np.array([-8.0, 7.0, 1.0]), role=np.array([1, -1, 0]),
                        committed=np.array([10.0, 5.0, 0.0]), need=np.array([0.0, 9.0, 2.0]),
                        deliverable=np.array([6.0, 0.0, 0.0]), curtailed=np.zeros(3))
    assert dev.tolist() == [4.0, 2.0, 1.0]


def _costs(recovery: str = "none", balancing: str = "linear") -> Costs:
    """Party 0 a thermal DPGC (10 kW), party 1 a residential user (mean load 4 kW)."""
    p = cfg.validate({"balancing": balancing, "network_recovery": recovery, **CURVE,
                      "network_cost_yuan_per_kwh": 0.02, "network_fixed_yuan_per_kw_year": 876.0,
                      "gen_cost_thermal_yuan_per_kwh": 0.3,
                      "gen_fixed_thermal_yuan_per_kw_year": 87.6})
    return Costs.build(p, np.array([3, -1], np.int8), np.array([10.0, 0.0]),
                       np.array([0, 1], np.int8), np.array([0.0, 4.0]))


def _hour(costs: Costs, flows: Flows | None = None):  # noqa: ANN202
    """One contract of 10 kWh at p = 0.55, w = 0.02: the seller generated 8 and the buyer
    took 10, so 2 kWh came from the grid at R; the user also bought 1 kWh outside."""
    one = np.array([1.0])
    return account_hour(
        costs, retail=R, feed_in=F, deviation=np.array([2.0, 1.0]), gen_kw=np.array([8.0, 0.0]),
        load_kw=np.array([0.0, 11.0]), seller=np.array([0]), buyer=np.array([1]),
        price=0.55 * one, wheeling=0.02 * one, direct=8.0 * one, seller_income=4.4 * one,
        buyer_pays=np.array([8 * 0.57 + 2 * R]), shortfall=2.0 * one, surplus=0.0 * one,
        extra_need=np.array([0.0, 1.0]), taken=np.zeros(2), flows=flows)


def test_one_hour_by_hand() -> None:
    h = _hour(_costs())
    k = h.kpis
    assert k["generation_cost_yuan"] == pytest.approx(8 * 0.3 + 87.6 * 10 / 8760)
    assert k["upstream_energy_cost_yuan"] == pytest.approx(3 * F)  # 2 shortfall + 1 PPSC
    # carried: 8 direct + 3 from the grid; fixed 876 yuan/kW/a x 4 kW / 8760 h = 0.4
    assert k["network_cost_yuan"] == pytest.approx(11 * 0.02 + 0.4)
    assert k["balancing_cost_yuan"] == pytest.approx((1.2 * R - F) * 3 + R * 9 / 22)
    assert k["harm_yuan"] == pytest.approx((R - 0.57) * 2)
    system = sum(k[c] for c in ("generation_cost_yuan", "upstream_energy_cost_yuan",
                                "balancing_cost_yuan", "network_cost_yuan"))
    assert k["system_cost_yuan"] == pytest.approx(system)
    assert k["welfare_yuan"] == pytest.approx(20.0 * 11 - system)
    assert h.income.tolist() == pytest.approx([4.4, 0.0])
    assert h.paid.tolist() == pytest.approx([0.0, 8 * 0.57 + 3 * R])
    # grid: wheeling 0.16 + retail on 3 kWh in; it pays the balancing cost out
    assert h.account_income[0] == pytest.approx(0.16 + 3 * R)
    assert h.account_paid[0] == pytest.approx(k["balancing_cost_yuan"])


@pytest.mark.parametrize(("rule", "charge"), [
    ("none", [0.0, 0.0]),
    # average network cost 0.62 / 11 per kWh carried, less the wheeling 0.02, on 8 kWh P2P
    ("wheeling", [0.0, (0.62 / 11 - 0.02) * 8]),
    ("fixed_charge", [0.0, 0.4]),  # the fixed 0.4 yuan, all to the only user
])
def test_network_recovery_by_hand(rule: str, charge: list[float]) -> None:
    h = _hour(_costs(rule))
    assert h.recovery.tolist() == pytest.approx(charge)
    assert h.kpis["network_recovery_yuan"] == pytest.approx(sum(charge))
    assert h.account_income[0] == pytest.approx(0.16 + 3 * R + sum(charge))


def test_penalties_to_the_system_operator_fund_balancing() -> None:
    """1 yuan from the seller to the system operator, 0.5 from the buyer to the grid: the
    balancing account (cost 1.434) spends the 1 first and the grid company covers the
    rest; 3 yuan would leave 1.566 over, for the grid company."""
    flows = Flows.of(np.array([0, 1]), np.array([SYSTEM_OPERATOR, GRID]), np.array([1.0, 0.5]))
    h = _hour(_costs(), flows)
    b = h.kpis["balancing_cost_yuan"]
    assert h.penalty_paid.tolist() == [1.0, 0.5]
    assert h.account_income[1] == pytest.approx(b)  # 1 from penalties + the grid's top-up
    assert h.account_paid[0] == pytest.approx(b - 1.0)
    assert h.account_penalty_received == (0.5, 1.0)
    assert h.kpis["compensation_yuan"] == 0.0
    rich = _hour(_costs(), Flows.of(np.array([0]), np.array([SYSTEM_OPERATOR]), np.array([3.0])))
    assert rich.account_paid[1] == pytest.approx(3.0 - b)
    assert rich.account_income[0] == pytest.approx(0.16 + 3 * R + 3.0 - b)


def _books_balance(model: DIPIModel) -> None:
    books = model.books
    table = books.table()
    money = sum(r["income_yuan"] - r["cost_yuan"] + r["resource_cost_yuan"]
                for r in table.values())
    scale = sum(r["income_yuan"] for r in table.values()) + 1.0
    assert abs(money) <= 1e-9 * scale
    welfare = model.totals["welfare_yuan"]
    assert sum(r["net_surplus_yuan"] for r in table.values()) == pytest.approx(welfare,
                                                                              rel=1e-9)
    assert books.welfare() == pytest.approx(welfare, rel=1e-9)
    assert set(table) <= set(ACCOUNTS)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(balancing=st.sampled_from(sorted(BALANCING_RULES)),
       recovery=st.sampled_from(sorted(RECOVERY_RULES)),
       policy=st.sampled_from(sorted(BREACH_POLICIES)),
       recipient=st.sampled_from(cfg.param("penalty_recipient").choice_values()),
       seed=st.integers(0, 2**16))
def test_money_is_conserved_and_welfare_adds_up_every_hour(balancing: str, recovery: str,
                                                          policy: str, recipient: str,
                                                          seed: int) -> None:
    """Transfers sum to zero and the parties' net surpluses add up to the welfare, after
    every hour, under every balancing, recovery and breach-policy entry."""
    m = DIPIModel(seed=seed, hours=6, n_dpgc=6, n_users=12, ledger_detail="off",
                  balancing=balancing, network_recovery=recovery, breach_policy=policy,
                  penalty_recipient=recipient, learning="static", opportunist_share=0.5)
    for _ in range(6):
        m.step()
        _books_balance(m)
        t = m.record.settlement
        assert abs(t.party_transfer.sum() + t.grid_income) <= 1e-9 * (1 + abs(t.grid_income))
    s = m.summary()
    assert {"system_cost_yuan", "balancing_cost_yuan", "welfare_yuan", "by_party_type"} <= set(s)
    df = m.hourly_dataframe()
    assert set(ECONOMY_KPIS) <= set(df.columns)
    assert df["system_cost_yuan"].sum() == pytest.approx(s["system_cost_yuan"])


def test_party_types() -> None:
    kind = np.array([0, 0, 1, 1, 1], np.int8)
    tech = np.array([1, 3, -1, 0, -1], np.int8)
    load_class = np.array([-1, -1, 3, 0, 1], np.int8)
    labels = [ACCOUNTS[c] for c in party_type(kind, tech, load_class)]
    assert labels == ["wind", "thermal", "ev", "prosumer", "commercial"]


def test_default_balancing_is_not_free_and_none_keeps_the_market() -> None:
    """The default prices imbalance; with balancing = none it costs nothing, and the
    rule never changes what the parties trade or pay."""
    runs = {b: DIPIModel(seed=3, hours=24, ledger_detail="off", balancing=b).run()
            for b in ("linear", "none")}
    lin, free = (runs[b].summary() for b in ("linear", "none"))
    assert cfg.param("balancing").default == "linear"
    assert lin["balancing_cost_yuan"] > 0 and free["balancing_cost_yuan"] == 0.0
    assert lin["net_imbalance_kwh"] == free["net_imbalance_kwh"]
    assert lin["user_cost_yuan"] == free["user_cost_yuan"]
    assert lin["welfare_yuan"] == pytest.approx(free["welfare_yuan"]
                                                - lin["balancing_cost_yuan"])
