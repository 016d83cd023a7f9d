"""Breach consequences (docs/model.md section 6b): each policy alone on hand-computed cases,
money conserved for every policy and combination, the registry and its scenario key."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipi_abm import config as cfg
from dipi_abm.errors import ConfigError
from dipi_abm.rules.consequences import (
    BREACH_POLICIES,
    GRID,
    SYSTEM_OPERATOR,
    Flows,
    Hour,
    Positions,
    bind,
    canonical,
    deposit_rate,
    gate_share,
    policy_names,
)

R, F = 0.657, 0.4
DEFAULTS = cfg.validate({})


def hour(q, p, w, b, g, credit=(100.0, 100.0), tech=(0, -1), tol=0.05) -> Hour:
    """One contract: party 0 sells (technology tech[0]), party 1 buys."""
    one = np.ones(1)
    return Hour(buyer=np.array([1]), seller=np.array([0]), volume=q * one, price=p * one,
                wheeling=w * one, consumed=b * one, generated=g * one,
                credit=np.array(credit, float), tech=np.array(tech, np.int8), retail=R,
                feed_in=F, breach_tolerance=tol)


def net(name: str, h: Hour, **over) -> tuple[np.ndarray, float]:
    c = bind(name, {**DEFAULTS, **over})
    f = c.transfers(h)
    return f.party_net(h.credit.size), f.grid_net()


# --------------------------------------------------------------------------- hand-computed
def test_none_moves_nothing_and_has_no_hooks():
    c = bind("none", DEFAULTS)
    assert not c.active and c.transfers(hour(100, 0.55, 0.02, 50, 10)).size == 0


def test_imbalance_penalty_beyond_the_technology_tolerance():
    # Solar seller delivers 70 of 100: 30 short, 20 tolerated, 10 kWh x 0.2 = 2 yuan.
    party, grid = net("imbalance_penalty", hour(100, 0.55, 0.02, 100, 70))
    np.testing.assert_allclose(party, [-2.0, 2.0])
    assert grid == 0.0
    # Thermal seller: 3 % tolerated, so 27 kWh x 0.2 = 5.4 yuan, to the grid company.
    party, grid = net("imbalance_penalty", hour(100, 0.55, 0.02, 100, 70, tech=(3, -1)),
                      penalty_recipient="grid_company")
    np.testing.assert_allclose(party, [-5.4, 0.0])
    assert grid == pytest.approx(5.4)
    # Buyer takes 90 of 100: 10 short, 5 tolerated: pays 5 x 0.2 = 1 yuan to the seller.
    party, _ = net("imbalance_penalty", hour(100, 0.55, 0.02, 90, 100))
    np.testing.assert_allclose(party, [1.0, -1.0])
    # Within tolerance: nothing.
    party, grid = net("imbalance_penalty", hour(100, 0.55, 0.02, 96, 81))
    assert not party.any() and grid == 0.0


def test_penalty_to_the_counterparty_capped_at_its_harm_or_to_the_system_operator():
    # Thermal seller delivers 70 of 100 (penalty 27 x 0.2 = 5.4); the buyer replaced 30 kWh
    # at R instead of p + w = 0.64, so its harm is 30 x 0.017 = 0.51: that much reaches it,
    # the other 4.89 goes to the system operator (the grid company's cash).
    h = hour(100, 0.62, 0.02, 100, 70, tech=(3, -1))
    f = bind("imbalance_penalty", {**DEFAULTS, "penalty_recipient": "counterparty_capped"}
             ).transfers(h)
    np.testing.assert_allclose(f.party_net(2), [-5.4, 30 * (R - 0.64)])
    assert f.yuan[f.payee == SYSTEM_OPERATOR].sum() == pytest.approx(5.4 - 30 * (R - 0.64))
    assert f.grid_net() == pytest.approx(5.4 - 30 * (R - 0.64))
    f = bind("imbalance_penalty", {**DEFAULTS, "penalty_recipient": "system_operator"}
             ).transfers(h)
    assert f.payee.tolist() == [SYSTEM_OPERATOR] and f.yuan.tolist() == pytest.approx([5.4])


def test_make_whole_pays_the_counterparty_its_replacement_cost():
    # [DER-CBC] case 3 reversed: seller short, buyer replaced 20 kWh at R instead of p + w.
    party, grid = net("make_whole", hour(200, 0.54, 0.02, 200, 180))
    np.testing.assert_allclose(party, [-20 * (R - 0.54 - 0.02), 20 * (R - 0.54 - 0.02)])
    assert grid == 0.0
    # Buyer short: the seller sold 20 kWh at F instead of p.
    party, _ = net("make_whole", hour(200, 0.56, 0.02, 180, 200))
    np.testing.assert_allclose(party, [20 * (0.56 - F), -20 * (0.56 - F)])
    # Both short by the same amount: nobody had to replace anything.
    party, _ = net("make_whole", hour(200, 0.56, 0.02, 150, 150))
    assert not party.any()


def test_deposit_forfeit_grows_as_credit_falls():
    assert deposit_rate(np.array([100.0, 0.0, 50.0]), 0.05, 0.5) == pytest.approx(
        [0.05, 0.5, 0.275])
    # Seller credit 50 (rate 0.275) delivers 80 of 100: 20 short, 5 tolerated: 15 x 0.275.
    party, grid = net("deposit", hour(100, 0.55, 0.02, 100, 80, credit=(50.0, 100.0)))
    np.testing.assert_allclose(party, [-15 * 0.275, 15 * 0.275])
    assert grid == 0.0
    # Kept contract: everything released, nothing moves.
    party, _ = net("deposit", hour(100, 0.55, 0.02, 100, 99, credit=(50.0, 100.0)))
    assert not party.any()


def test_a_forfeited_deposit_capped_at_the_counterpartys_harm():
    # Seller credit 0 (rate 0.5) delivers 70 of 100: 25 kWh beyond tolerance forfeit 12.5;
    # its buyer replaced 30 kWh at R instead of p + w = 0.64: harm 30 x 0.017 = 0.51, all
    # it receives; the other 11.99 funds balancing (the system operator).
    h = hour(100, 0.62, 0.02, 100, 70, credit=(0.0, 100.0))
    f = bind("deposit", {**DEFAULTS, "penalty_recipient": "counterparty_capped"}).transfers(h)
    np.testing.assert_allclose(f.party_net(2), [-12.5, 30 * (R - 0.64)])
    assert f.yuan[f.payee == SYSTEM_OPERATOR].sum() == pytest.approx(12.5 - 30 * (R - 0.64))
    party, grid = net("deposit", h, penalty_recipient="grid_company")
    np.testing.assert_allclose(party, [-12.5, 0.0])
    assert grid == pytest.approx(12.5)


def test_deposit_caps_what_a_party_can_commit():
    c = bind("deposit", DEFAULTS)
    pos = Positions(credit=np.array([100.0, 0.0, 100.0]), balance=np.array([0.0, 0.0, -500.0]),
                    forecast_kwh=np.array([1e6, 1e6, 1e6]))
    # (guarantee 100 + positive balance) / rate: 100 / 0.05 and 100 / 0.5; debt does not help.
    np.testing.assert_allclose(c.volume_cap(pos), [2000.0, 200.0, 2000.0])
    pos = Positions(credit=np.array([100.0]), balance=np.array([50.0]), forecast_kwh=np.ones(1))
    assert c.volume_cap(pos) == pytest.approx([3000.0])


def test_credit_gate_caps_below_the_threshold_with_a_probation_floor():
    m = gate_share(np.array([100.0, 80.0, 70.0, 60.0, 10.0]), 80.0, 20.0, 0.25)
    np.testing.assert_allclose(m, [1.0, 1.0, 0.5, 0.25, 0.25])
    c = bind("credit_gate", DEFAULTS)
    pos = Positions(credit=np.array([95.0, 70.0, 0.0]), balance=np.zeros(3),
                    forecast_kwh=np.array([100.0, 100.0, 100.0]))
    np.testing.assert_allclose(c.volume_cap(pos), [np.inf, 50.0, 25.0])
    np.testing.assert_array_equal(c.gated(pos.credit), [False, True, True])
    assert not c.moves_money and c.gates


def test_credit_scaled_reward_is_paid_by_the_grid_company():
    # 100 kWh delivered; seller credit 100 gets kappa (R - F) x 100; buyer credit 90 half.
    party, grid = net("credit_scaled_reward", hour(100, 0.55, 0.02, 100, 100,
                                                   credit=(100.0, 90.0)))
    full = 0.1 * (R - F) * 100
    np.testing.assert_allclose(party, [full, full / 2])
    assert grid == pytest.approx(-1.5 * full)
    # At or below the floor, nothing; a breach earns on delivered energy only.
    party, _ = net("credit_scaled_reward", hour(100, 0.55, 0.02, 100, 40, credit=(80.0, 100.0)))
    np.testing.assert_allclose(party, [0.0, 0.1 * (R - F) * 40])


def test_combinations_add_up():
    h = hour(100, 0.55, 0.02, 100, 60, credit=(60.0, 95.0))
    total = np.zeros(2)
    grid = 0.0
    for name in ("imbalance_penalty", "make_whole", "deposit", "credit_scaled_reward"):
        p, g = net(name, h)
        total += p
        grid += g
    c = bind(["credit_scaled_reward", "deposit", "make_whole", "imbalance_penalty"], DEFAULTS)
    f = c.transfers(h)
    np.testing.assert_allclose(f.party_net(2), total)
    assert f.grid_net() == pytest.approx(grid)
    # every flow is labelled with its policy
    assert {c.names[k] for k in np.unique(f.policy)} == {
        "imbalance_penalty", "make_whole", "deposit", "credit_scaled_reward"}
    assert sum(f.by_policy(k) for k in range(len(c.names))) == pytest.approx(f.yuan.sum())


# --------------------------------------------------------------------------- conservation
ALL = [n for n in BREACH_POLICIES if n != "none"]
COMBOS = [list(c) for r in (1, 2, len(ALL)) for c in itertools.combinations(ALL, r)]


@st.composite
def hours(draw):
    n = draw(st.integers(2, 8))
    k = draw(st.integers(0, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    seller = rng.integers(0, n, k)
    buyer = (seller + rng.integers(1, n, k)) % n
    q = rng.uniform(0.0, 500.0, k)
    p = rng.uniform(F, R - 0.05, k)
    return Hour(buyer=buyer, seller=seller, volume=q, price=p, wheeling=np.full(k, 0.02),
                consumed=q * rng.uniform(0, 1, k), generated=q * rng.uniform(0, 1, k),
                credit=rng.uniform(0, 100, n), tech=rng.integers(-1, 4, n).astype(np.int8),
                retail=R, feed_in=F, breach_tolerance=draw(st.sampled_from([0.0, 0.05])))


@settings(max_examples=60, deadline=None)
@given(h=hours(), combo=st.sampled_from(COMBOS),
       recipient=st.sampled_from(cfg.param("penalty_recipient").choice_values()))
def test_money_is_conserved_by_every_policy_and_combination(h, combo, recipient):
    f = bind(combo, {**DEFAULTS, "penalty_recipient": recipient}).transfers(h)
    n = h.credit.size
    assert np.all(f.yuan > 0)
    assert f.party_net(n).sum() + f.grid_net() == pytest.approx(0.0, abs=1e-9)
    # nobody pays itself, and only the reward flows from the grid company
    assert not np.any(f.payer == f.payee)
    assert set(np.asarray(combo)[f.policy[f.payer == GRID]]) <= {"credit_scaled_reward"}


def test_flows_keep_only_payments_above_zero():
    f = Flows.of(np.array([0, 1]), GRID, np.array([0.0, 2.0]))
    assert f.size == 1 and f.grid_net() == 2.0 and f.party_net(2).tolist() == [0.0, -2.0]


# --------------------------------------------------------------------------- the key
def test_breach_policy_key_takes_a_name_a_list_or_names_joined_by_plus():
    assert cfg.validate({}).breach_policy == "none"
    assert cfg.validate({"breach_policy": "deposit"}).breach_policy == "deposit"
    combo = "imbalance_penalty+credit_gate"
    for v in (["credit_gate", "imbalance_penalty"], "credit_gate+imbalance_penalty", combo,
              ("imbalance_penalty", "credit_gate", "credit_gate")):
        assert cfg.validate({"breach_policy": v}).breach_policy == combo
    assert cfg.parse_assignments(['breach_policy=["imbalance_penalty","credit_gate"]']) == {
        "breach_policy": ["imbalance_penalty", "credit_gate"]}
    assert policy_names(combo) == ("imbalance_penalty", "credit_gate")
    assert canonical(["make_whole"]) == "make_whole"


@pytest.mark.parametrize("bad", ["fine", ["none", "deposit"], [], 3, ["deposit", 1]])
def test_bad_breach_policy_is_one_line_naming_the_key(bad):
    with pytest.raises(ConfigError, match=r"^breach_policy = .*must be one or more of none"):
        cfg.validate({"breach_policy": bad})


def test_every_policy_is_one_rule_entry_whose_traits_are_its_hooks():
    from dipi_abm.rules.consequences import HOOKS
    from dipi_abm.rules.registry import Rule

    defaults = cfg.validate({})
    assert set(BREACH_POLICIES) == set(cfg.param("breach_policy").choice_values())
    for name, p in BREACH_POLICIES.items():
        assert isinstance(p, Rule) and p.__doc__ and (name == "none") != bool(p.traits)
        hooks = p.bind(defaults)()
        for hook, trait in HOOKS.items():
            assert callable(getattr(hooks, hook)) == p.has(trait), (name, hook)
        for key in p.keys.values():
            prm = cfg.param(key)
            assert prm in p.params and prm.group == "breach policy" and prm.doc and prm.unit


# --------------------------------------------------------------------------- strict CMA
def _strict_book(buyer_credit, buyer_price, seller_credit=(100.0,), seller_volume=(100.0,)):
    from dipi_abm.rules.matching import OrderBook

    n_s, n_b = len(seller_credit), len(buyer_credit)
    return OrderBook(
        seller_party=np.arange(n_s), seller_bus=np.zeros(n_s, np.intp),
        seller_volume=np.array(seller_volume, float), seller_price=np.full(n_s, 0.45),
        seller_time=np.arange(n_s),
        buyer_party=n_s + np.arange(n_b), buyer_bus=np.zeros(n_b, np.intp),
        buyer_volume=np.full(n_b, 100.0), buyer_price=np.array(buyer_price, float),
        buyer_time=np.arange(n_b), seller_credit=np.array(seller_credit, float),
        buyer_credit=np.array(buyer_credit, float), seller_cleanliness=np.full(n_s, 0.8))


def _one_bus(weights):
    from dipi_abm.rules.matching import MarketNetwork

    return MarketNetwork.build(np.full((1, 1), 0.02), np.ones((1, 1), bool),
                               distance=np.zeros((1, 1)), cma=weights)


def test_strict_cma_serves_trusted_parties_first_whatever_the_price_weight():
    from dipi_abm.rules.matching import MATCHING_RULES, CMAWeights, match_cma

    # A low-credit buyer whose bid sits right on the ask wins plain CMA on the
    # price-consensus coefficient; under cma_strict the trusted buyer comes first.
    w = CMAWeights(credit=0.1, distance=0.0, price=1.0, green=0.0)
    net = _one_bus(w)
    book = _strict_book(buyer_credit=[50.0, 95.0], buyer_price=[0.47, 0.65])
    plain = match_cma(book, net)
    strict = MATCHING_RULES["cma_strict"](book, net, strict_credit=90.0)
    assert plain.buyer.tolist() == [1] and plain.volume.sum() == pytest.approx(100.0)
    assert strict.buyer.tolist() == [2] and strict.volume.sum() == pytest.approx(100.0)
    # With supply to spare, the low-credit buyer gets what is left.
    book = _strict_book(buyer_credit=[50.0, 95.0], buyer_price=[0.47, 0.65],
                        seller_volume=(150.0,))
    strict = MATCHING_RULES["cma_strict"].bind({"cma_strict_credit": 90.0})(book, net)
    bought = np.bincount(strict.buyer, strict.volume, 3)
    np.testing.assert_allclose(bought[1:], [50.0, 100.0])


def test_strict_cma_contracts_are_feasible_and_within_orders():
    from dipi_abm.rules.matching import CMAWeights, MarketNetwork, OrderBook, match_cma_strict

    rng = np.random.default_rng(7)
    for _ in range(20):
        n_s, n_b, n_bus = rng.integers(1, 15), rng.integers(1, 25), rng.integers(1, 5)
        pts = rng.uniform(0, 3, n_bus)
        d = np.abs(pts[:, None] - pts[None, :])
        net = MarketNetwork.build(0.02 + 0.01 * d, np.ones_like(d, bool), distance=d,
                                  cma=CMAWeights())
        b = OrderBook(
            seller_party=np.arange(n_s), seller_bus=rng.integers(0, n_bus, n_s),
            seller_volume=rng.uniform(1, 50, n_s), seller_price=rng.uniform(0.40, 0.60, n_s),
            seller_time=rng.permutation(n_s), buyer_party=n_s + np.arange(n_b),
            buyer_bus=rng.integers(0, n_bus, n_b), buyer_volume=rng.uniform(1, 50, n_b),
            buyer_price=rng.uniform(0.45, 0.657, n_b), buyer_time=rng.permutation(n_b),
            seller_credit=rng.uniform(50, 100, n_s), buyer_credit=rng.uniform(50, 100, n_b),
            seller_cleanliness=rng.choice([0.3, 0.6, 0.8], n_s))
        c = match_cma_strict(b, net, strict_credit=80.0)
        assert np.all(c.bid >= c.ask + c.wheeling - 1e-12)
        sold = np.bincount(c.seller, c.volume, n_s)
        bought = np.bincount(c.buyer - n_s, c.volume, n_b)
        assert np.all(sold <= b.seller_volume + 1e-7)
        assert np.all(bought <= b.buyer_volume + 1e-7)
        assert c.rounds > 0 or c.size == 0


# --------------------------------------------------------------------------- in the model
MODEL_COMBOS = ["none", *ALL, ["imbalance_penalty", "credit_gate"],
                ["make_whole", "deposit"], ALL]


@settings(max_examples=25, deadline=None)
@given(combo=st.sampled_from(MODEL_COMBOS), seed=st.integers(0, 2**32 - 1),
       matching=st.sampled_from(["price_time", "cma", "cma_strict"]),
       learning=st.sampled_from(["static", "roth_erev", "epsilon_greedy"]),
       recipient=st.sampled_from(cfg.param("penalty_recipient").choice_values()))
def test_money_is_conserved_every_hour_under_every_policy(combo, seed, matching, learning,
                                                          recipient):
    from dipi_abm import DIPIModel

    # Low gate threshold and low credit start so that the gate and the deposit cap bind.
    m = DIPIModel(seed=seed, n_dpgc=4, n_users=12, hours=12, breach_policy=combo,
                  matching=matching, learning=learning, opportunist_share=0.3,
                  credit_initial=85.0, gate_credit_threshold=90.0, deposit_guarantee_yuan=5.0,
                  penalty_recipient=recipient, ledger_detail="off")
    s = m.state
    start = s.balance.sum() + m.grid_company_balance
    for _ in range(12):
        before = s.balance.copy()
        m.step()
        total = s.balance.sum() + m.grid_company_balance + m.miner_balance.sum()
        assert total == pytest.approx(start + m.minted_yuan + m.endowed_yuan, rel=1e-12, abs=1e-7)
        # what learning sees is what moved the balance (block reward aside)
        moved = s.balance - before
        moved[m.block_winner] -= m.params.block_reward_yuan if m.block_winner < s.n else 0.0
        if m.record.budget_yuan is not None:  # a users' budget period began (section 6c)
            moved -= m.record.budget_yuan
        np.testing.assert_allclose(moved, m.record.settlement.party_transfer, atol=1e-7)
        if m.consequences.active:
            assert 0.0 <= m.gated_share <= 1.0 and m.breach_consequence_yuan >= 0.0
            if not m.consequences.caps_volume:
                continue
            # the pre-matching caps hold: nobody committed more than its cap allowed
            assert np.all(s.committed_kwh <= s.offered_kwh + 1e-7)


def test_default_outputs_carry_no_policy_columns_and_policies_report_theirs():
    from dipi_abm import DIPIModel

    m = DIPIModel(seed=3, n_dpgc=4, n_users=12, hours=6, ledger_detail="off").run()
    assert "gated_share" not in m.hourly_dataframe() and "gated_share" not in m.summary()
    m = DIPIModel(seed=3, n_dpgc=4, n_users=12, hours=6, ledger_detail="off",
                  breach_policy="imbalance_penalty+credit_gate", credit_initial=70.0).run()
    df = m.hourly_dataframe()
    # Everyone starts below the default threshold 80; parties that keep their contracts
    # earn their way back.
    assert df.gated_share.iloc[0] == 1.0 and df.gated_share.iloc[-1] < 1.0
    assert df.breach_consequence_yuan.sum() == pytest.approx(
        m.summary()["breach_consequence_yuan"])


def test_a_gated_party_offers_at_most_its_capped_share():
    from dipi_abm import DIPIModel

    m = DIPIModel(seed=4, n_dpgc=4, n_users=12, hours=4, ledger_detail="off",
                  breach_policy="credit_gate", credit_initial=60.0, credit_frozen=True,
                  commitment_ratio=1.3,
                  bid_volume_ratio=1.3, gate_probation_share=0.25)
    for _ in range(4):
        m.step()
        net = np.abs(m.record.orders.net_forecast_kw)
        acting = m.state.role != 0
        # credit 60 = threshold 80 - width 20: the probation share of the forecast
        np.testing.assert_allclose(m.state.offered_kwh[acting], 0.25 * net[acting])


def test_consequence_payments_are_on_the_ledger_and_balances_recompute():
    from dipi_abm import DIPIModel
    from dipi_abm.ledger.records import node_attributes_from_ledger

    m = DIPIModel(seed=9, n_dpgc=4, n_users=12, hours=8, ledger_detail="full",
                  breach_policy=["make_whole", "imbalance_penalty"], commitment_ratio=1.3)
    m.run()
    assert m.verify_ledger().ok
    rows = [m.ledger.read_records("JY1", h)["consequences"] for h in range(1, 9)]
    paid = sum(float(r["yuan"].sum()) for r in rows)
    assert paid == pytest.approx(m.summary()["breach_consequence_yuan"]) and paid > 0
    assert {str(x) for r in rows for x in r["policy"]} <= {"make_whole", "imbalance_penalty"}
    attrs = node_attributes_from_ledger(m.ledger)
    np.testing.assert_allclose(attrs["balance"][: m.state.n], m.state.balance, atol=1e-6)
