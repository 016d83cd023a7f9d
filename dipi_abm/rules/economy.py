"""What the system's energy costs and who pays (docs/model.md section 6c).

Under the papers' settlement a breach only moves money. This module prices what it
costs the system, hour by hour, and keeps the books of who paid:

- **Balancing** (:data:`BALANCING_RULES`): every party has a *schedule*, its contracts
  plus the forecast rest it left to the grid company; its deviation is what it
  actually withdrew minus that. The grid company, as system operator, covers the
  hour's *net* deviation N (opposite deviations cancel) from reserve. Energy is
  valued at the wholesale price (the feed-in price F, China's benchmark tariff);
  the balancing cost is the premium of reserve over it: up-regulation costs more
  than retail R, down-regulation earns less than F, and the price moves further
  the larger N is against the hour's load.
- **Generation cost** per technology (fuel and variable O&M per kWh, fixed O&M per
  kW-year) and the **network's cost** (per kWh carried, fixed per kW of the users'
  mean load), recovered by a rule (:data:`RECOVERY_RULES`).
- **Welfare** = value of served load (VoLL x load) - system cost, where the system
  cost is generation + upstream energy + balancing + network. Money moves between
  accounts (parties, the grid company, the balancing account) and sums to zero;
  resource costs leave the system. So the parties' net surpluses add up to the
  welfare exactly (:class:`Books`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..physics.weather import LOAD_CLASSES, TECHNOLOGIES
from .registry import Param, Rule

HOURS_PER_YEAR = 8760.0

#: Party types of the by-party-type table: DPGC technologies, user classes, prosumers
#: (users with rooftop PV), then the two accounts that are not parties.
PARTY_TYPES = (*TECHNOLOGIES, *LOAD_CLASSES, "prosumer")
ACCOUNTS = (*PARTY_TYPES, "grid_company", "balancing")

#: Hourly KPIs of the economy (docs/model.md sections 6c, 9) and their units.
ECONOMY_KPIS = {
    "net_imbalance_kwh": "kWh", "gross_imbalance_kwh": "kWh", "balancing_cost_yuan": "yuan",
    "generation_cost_yuan": "yuan", "upstream_energy_cost_yuan": "yuan",
    "network_cost_yuan": "yuan", "system_cost_yuan": "yuan", "welfare_yuan": "yuan",
    "network_recovery_yuan": "yuan", "compensation_yuan": "yuan", "harm_yuan": "yuan"}


def party_type(kind: NDArray[np.int8], tech: NDArray[np.int8],
               load_class: NDArray[np.int8]) -> NDArray[np.int8]:
    """Each party's row in :data:`PARTY_TYPES` (kind 0: DPGC, 1: user)."""
    user = kind != 0
    prosumer = user & (tech >= 0)
    code = np.where(user, len(TECHNOLOGIES) + load_class, tech)
    return np.where(prosumer, len(PARTY_TYPES) - 1, code).astype(np.int8)


# --------------------------------------------------------------------------- balancing
def _linear(net_kwh: float, load_kwh: float, retail: float, feed_in: float, *,
            up_premium: float, down_discount: float, slope: float) -> float:
    """``linear``: the reserve's price leaves retail (up) or feed-in (down) by a premium
    and moves on linearly in x = |N| / load::

        up:   p(u) = R (1 + a + k u / L)      cost = integral_0^|N| (p(u) - F) du
        down: p(u) = F (1 - d - k u / L)      cost = integral_0^|N| (F - p(u)) du

    The integral is the reserve's resource cost (what the merit order's units bid)."""
    x = abs(net_kwh)
    shape = x * x / (2.0 * load_kwh) if load_kwh > 0 else 0.0
    if net_kwh > 0:
        return (retail * (1.0 + up_premium) - feed_in) * x + retail * slope * shape
    return feed_in * down_discount * x + feed_in * slope * shape


def _merit_order(net_kwh: float, load_kwh: float, retail: float, feed_in: float, *,
                 up_premium: float, down_discount: float, slope: float, step_share: float,
                 reserve_share: float, voll: float) -> float:
    """``merit_order``: reserve blocks of ``step_share`` x load, each priced at the linear
    curve's price at its start (pay-as-bid); the net imbalance beyond ``reserve_share``
    x load finds no reserve: up-regulation then costs the value of lost load (scarcity
    pricing), down-regulation spills the energy (its wholesale value F is lost)."""
    x, width = abs(net_kwh), step_share * load_kwh
    if x == 0.0 or width <= 0.0:
        return 0.0
    covered = min(x, reserve_share * load_kwh)
    starts = np.arange(0.0, covered, width)
    block = np.minimum(width, covered - starts)
    if net_kwh > 0:
        price = retail * (1.0 + up_premium + slope * starts / load_kwh) - feed_in
        return float(block @ price) + (x - covered) * (voll - feed_in)
    price = feed_in * (down_discount + slope * starts / load_kwh)
    return float(block @ price) + (x - covered) * feed_in


def _free(net_kwh: float, load_kwh: float, retail: float, feed_in: float) -> float:
    """``none``: the papers' grid company: reserve is free and unlimited (no premium)."""
    return 0.0


def _key(name: str, default: float, unit: str, doc: str, **bounds: Any) -> Param:
    return Param(name, default, type(default), unit, doc, "economy", **bounds)


_CURVE = (
    _key("balancing_up_premium", 0.2, "-", "Up-regulation starts this share above retail R.",
         low=0.0, high=100.0),
    _key("balancing_down_discount", 0.2, "-", "Down-regulation starts this share below "
         "feed-in F.", low=0.0, high=100.0),
    _key("balancing_slope", 1.0, "-", "The reserve's price moves on by this many times R (up) "
         "or F (down) per unit of net imbalance / hour's load.", low=0.0, high=1000.0))
_STEPS = (
    _key("balancing_step_share", 0.05, "-", "merit_order: reserve block size, share of the "
         "hour's load.", low=0.0, high=1.0, low_open=True),
    _key("balancing_reserve_share", 0.2, "-", "merit_order: reserve available, share of the "
         "hour's load; up-regulation beyond it costs the value of lost load.", low=0.0,
         high=10.0))
VOLL = _key("voll_yuan_per_kwh", 20.0, "yuan/kWh", "Value of lost load: the value of a kWh "
            "served in the welfare.", low=0.0, high=1000.0, low_open=True)


def _keys(*params: Param) -> dict[str, str]:
    """Keyword -> scenario key: the key without its ``balancing_`` prefix or unit."""
    return {p.name.removeprefix("balancing_").removesuffix("_yuan_per_kwh"): p.name
            for p in params}


BALANCING_RULES: dict[str, Rule] = {
    "none": Rule(_free),
    "linear": Rule(_linear, keys=_keys(*_CURVE), params=_CURVE),
    "merit_order": Rule(_merit_order, keys=_keys(*_CURVE, *_STEPS, VOLL),
                        params=(*_CURVE, *_STEPS, VOLL)),
}


# --------------------------------------------------------------------------- network
@dataclass(frozen=True)
class NetworkHour:
    """What the network carried and cost this hour, and the contracts' P2P energy."""

    cost_yuan: float
    carried_kwh: float
    fixed_yuan: float
    buyer: NDArray[np.intp]
    direct_kwh: NDArray[np.float64]
    wheeling: NDArray[np.float64]
    users: NDArray[np.float64]  # per party: its share of the users' mean load (0: DPGC)


def _no_recovery(net: NetworkHour) -> NDArray[np.float64]:
    """``none``: only the papers' tariffs (the retail margin and wheeling) pay for the
    network; P2P energy that bypasses retail leaves the grid company short."""
    return np.zeros(net.users.size)


def _wheeling_recovery(net: NetworkHour) -> NDArray[np.float64]:
    """``wheeling``: P2P energy pays the network's average cost per kWh carried this hour;
    the buyer pays what the contract's wheeling fee leaves uncovered:
    max(0, cost / carried - w) per kWh delivered."""
    avg = net.cost_yuan / net.carried_kwh if net.carried_kwh > 0 else 0.0
    due = np.maximum(avg - net.wheeling, 0.0) * net.direct_kwh
    return np.bincount(net.buyer, due, net.users.size).astype(np.float64)


def _fixed_charge(net: NetworkHour) -> NDArray[np.float64]:
    """``fixed_charge``: the network's fixed cost of the hour is billed to the users in
    proportion to their mean load, whatever they bought from whom."""
    return net.fixed_yuan * net.users


RECOVERY_RULES: dict[str, Rule] = {"none": Rule(_no_recovery),
                                   "wheeling": Rule(_wheeling_recovery),
                                   "fixed_charge": Rule(_fixed_charge)}

#: The economy's scenario keys (collected by :mod:`dipi_abm.config`): the two rules, then
#: what the costs and the welfare read.
SETTINGS: tuple[Param, ...] = (
    Param("balancing", "linear", str, "-", "Price of the reserve that covers the hour's net "
          "imbalance: none (free and unlimited, the papers), linear, merit_order.", "economy",
          choices=lambda: tuple(BALANCING_RULES)),
    *_CURVE, *_STEPS, VOLL,
    *(_key(f"gen_cost_{t}_yuan_per_kwh", v, "yuan/kWh", f"{t}: fuel and variable O&M per "
           "kWh generated.", low=0.0, high=100.0)
      for t, v in zip(TECHNOLOGIES, (0.0, 0.01, 0.01, 0.32), strict=True)),
    *(_key(f"gen_fixed_{t}_yuan_per_kw_year", v, "yuan/kW/a", f"{t}: fixed O&M per kW of "
           "capacity and year.", low=0.0, high=1e5)
      for t, v in zip(TECHNOLOGIES, (60.0, 180.0, 150.0, 120.0), strict=True)),
    _key("network_cost_yuan_per_kwh", 0.02, "yuan/kWh", "Network cost per kWh carried "
         "(losses, variable O&M).", low=0.0, high=100.0),
    _key("network_fixed_yuan_per_kw_year", 1000.0, "yuan/kW/a", "Network fixed cost per kW "
         "of the users' mean load and year.", low=0.0, high=1e6),
    Param("network_recovery", "none", str, "-", "How the network's cost is recovered beyond "
          "the tariffs: none, wheeling (P2P pays the average cost per kWh), fixed_charge "
          "(users pay the fixed cost by mean load).", "economy",
          choices=lambda: tuple(RECOVERY_RULES)),
)


# --------------------------------------------------------------------------- the hour
@dataclass(frozen=True)
class Costs:
    """A run's cost parameters, bound once (docs/model.md section 6c)."""

    balancing: Any  # bound BALANCING_RULES entry: (N, load, R, F) -> yuan
    recovery: Any  # bound RECOVERY_RULES entry: NetworkHour -> yuan per party
    variable_yuan_per_kwh: NDArray[np.float64]  # per party: fuel + variable O&M
    fixed_yuan_per_hour: NDArray[np.float64]  # per party: fixed O&M
    network_yuan_per_kwh: float
    network_fixed_yuan_per_hour: float
    user_share: NDArray[np.float64]  # per party: share of the users' mean load
    voll: float

    @classmethod
    def build(cls, p: Any, tech: NDArray[np.int8], capacity_kw: NDArray[np.float64],
              kind: NDArray[np.int8], mean_load_kw: NDArray[np.float64]) -> Costs:
        names = TECHNOLOGIES
        var = np.array([p[f"gen_cost_{t}_yuan_per_kwh"] for t in names] + [0.0])
        fix = np.array([p[f"gen_fixed_{t}_yuan_per_kw_year"] for t in names] + [0.0])
        user_load = np.where(kind != 0, mean_load_kw, 0.0)
        total = float(user_load.sum())
        return cls(BALANCING_RULES[p.balancing].bind(p), RECOVERY_RULES[p.network_recovery],
                   var[tech], fix[tech] * capacity_kw / HOURS_PER_YEAR,
                   p.network_cost_yuan_per_kwh,
                   p.network_fixed_yuan_per_kw_year * total / HOURS_PER_YEAR,
                   user_load / total if total > 0 else user_load, p.voll_yuan_per_kwh)


@dataclass(frozen=True)
class HourEconomy:
    """One hour's costs and money, per party and for the two non-party accounts.

    Money columns are gross: ``income`` received and ``paid`` out by each party
    (contracts, the grid company's PPSC and OGSC, breach-policy flows, network
    charges); ``resource`` is what a party's generation cost. The grid company
    and the balancing account have the same three as scalars (index 0 grid,
    1 balancing)."""

    kpis: dict[str, float]
    recovery: NDArray[np.float64]  # network charge per party, paid to the grid company
    income: NDArray[np.float64]
    paid: NDArray[np.float64]
    resource: NDArray[np.float64]
    value: NDArray[np.float64]  # value of the party's served load (VoLL x load)
    penalty_paid: NDArray[np.float64]
    penalty_received: NDArray[np.float64]
    account_income: tuple[float, float]
    account_paid: tuple[float, float]
    account_resource: tuple[float, float]
    account_penalty_received: tuple[float, float]


def deviation_kwh(net_forecast: NDArray, role: NDArray[np.int8], committed: NDArray,
                  need: NDArray, deliverable: NDArray, curtailed: NDArray) -> NDArray[np.float64]:
    """Each party's deviation from its schedule (kWh, > 0: it withdrew more than scheduled).

    The schedule is the contracts plus the forecast rest the party left to the grid
    company: a seller injects max(committed, forecast surplus), a buyer withdraws
    max(committed, forecast need), a party without an order its forecast net position.
    Its actual withdrawal is need - deliverable + what the grid company curtailed."""
    scheduled = np.where(role > 0, -np.maximum(committed, -net_forecast),
                         np.where(role < 0, np.maximum(committed, net_forecast), net_forecast))
    return need - deliverable + curtailed - scheduled


def harm_yuan(price: NDArray, wheeling: NDArray, consumed: NDArray, generated: NDArray,
              retail: float, feed_in: float) -> tuple[NDArray, NDArray]:
    """Per contract, what the counterparty of a short side actually lost (yuan): the
    buyer of a short seller replaced b - g at R instead of p + w; the seller of a short
    buyer sold g - b at F instead of p. Returns (buyer's harm, seller's harm)."""
    return (np.maximum(retail - price - wheeling, 0.0) * np.maximum(consumed - generated, 0.0),
            np.maximum(price - feed_in, 0.0) * np.maximum(generated - consumed, 0.0))


def account_hour(costs: Costs, *, retail: float, feed_in: float, deviation: NDArray,
                 gen_kw: NDArray, load_kw: NDArray, seller: NDArray[np.intp],
                 buyer: NDArray[np.intp], price: NDArray, wheeling: NDArray,
                 direct: NDArray, seller_income: NDArray, buyer_pays: NDArray,
                 shortfall: NDArray, surplus: NDArray, extra_need: NDArray, taken: NDArray,
                 flows: Any = None) -> HourEconomy:
    """The hour's costs, network charges and every account's gross money (section 6c).

    ``flows`` are the breach policies' payments (:class:`~dipi_abm.rules.consequences.Flows`;
    payee -1 the grid company, -2 the system operator's balancing account)."""
    n = gen_kw.size

    def per(rows: NDArray[np.intp], w: NDArray) -> NDArray[np.float64]:
        return np.bincount(rows, w, n).astype(np.float64)

    load = float(load_kw.sum())
    net = float(deviation.sum())
    balancing = float(costs.balancing(net, load, retail, feed_in))
    imported = float(shortfall.sum() + extra_need.sum() - surplus.sum() - taken.sum())
    resource = costs.variable_yuan_per_kwh * gen_kw + costs.fixed_yuan_per_hour
    # Energy the network carries: what the parties withdraw or inject, whichever is more
    # (the rest flows to or from upstream); the same whoever sells to whom.
    carried = float(direct.sum()) + max(float(shortfall.sum() + extra_need.sum()),
                                        float(surplus.sum() + taken.sum()))
    network = NetworkHour(costs.network_yuan_per_kwh * carried + costs.network_fixed_yuan_per_hour,
                          carried, costs.network_fixed_yuan_per_hour, buyer, direct, wheeling,
                          costs.user_share)
    recovery = np.asarray(costs.recovery(network), np.float64)
    income = per(seller, seller_income) + taken * feed_in
    paid = per(buyer, buyer_pays) + extra_need * retail + recovery
    # The grid company collects wheeling and retail on contracts' shortfalls and PPSC,
    # pays feed-in on contracts' surpluses and OGSC.
    grid_in = float((direct * wheeling).sum() + (shortfall.sum() + extra_need.sum()) * retail
                    + recovery.sum())
    grid_out = float((surplus.sum() + taken.sum()) * feed_in)
    pen_paid, pen_recv = np.zeros(n), np.zeros(n)
    so_in = grid_pen = compensation = 0.0
    if flows is not None and flows.size:
        into, out = flows.payee >= 0, flows.payer >= 0
        pen_recv, pen_paid = per(flows.payee[into], flows.yuan[into]), \
            per(flows.payer[out], flows.yuan[out])
        grid_pen = float(flows.yuan[flows.payee == -1].sum())
        so_in = float(flows.yuan[flows.payee == -2].sum())
        grid_out += float(flows.yuan[flows.payer == -1].sum())
        compensation = float(flows.yuan[into & out].sum())
    # The balancing account spends what the system operator's penalties brought in on
    # balancing; the grid company covers the rest (or keeps what is left over).
    top_up = balancing - so_in
    grid_in += grid_pen + max(-top_up, 0.0)
    grid_out += max(top_up, 0.0)
    network_cost = network.cost_yuan
    upstream = imported * feed_in
    generation = float(resource.sum())
    system = generation + upstream + balancing + network_cost
    value = costs.voll * load_kw
    h_buyer, h_seller = harm_yuan(price, wheeling, direct + shortfall, direct + surplus,
                                  retail, feed_in)
    kpis = {"net_imbalance_kwh": net, "gross_imbalance_kwh": float(np.abs(deviation).sum()),
            "balancing_cost_yuan": balancing, "generation_cost_yuan": generation,
            "upstream_energy_cost_yuan": upstream, "network_cost_yuan": network_cost,
            "system_cost_yuan": system, "welfare_yuan": costs.voll * load - system,
            "network_recovery_yuan": float(recovery.sum()), "compensation_yuan": compensation,
            "harm_yuan": float(h_buyer.sum() + h_seller.sum())}
    return HourEconomy(kpis, recovery, income + pen_recv, paid + pen_paid, resource, value,
                       pen_paid, pen_recv, (grid_in, so_in + max(top_up, 0.0)),
                       (grid_out, max(-top_up, 0.0)), (upstream + network_cost, balancing),
                       (grid_pen, so_in))


def economy_of_hour(costs: Costs, schedule: Any, orders: Any, cleared: Any, delivery: Any,
                    settlement: Any, gen_kw: NDArray, load_kw: NDArray) -> HourEconomy:
    """:func:`account_hour` from the hour's phase results (:mod:`dipi_abm.hour`)."""
    c, st, d = cleared.contracts, settlement.contracts, delivery
    curtailed = settlement.extra_surplus_kwh - settlement.taken_kwh
    dev = deviation_kwh(orders.net_forecast_kw, orders.role, d.committed_kwh, d.need_kw,
                        d.deliverable_kw, curtailed)
    return account_hour(
        costs, retail=schedule.retail, feed_in=schedule.feed_in, deviation=dev, gen_kw=gen_kw,
        load_kw=load_kw, seller=c.seller, buyer=c.buyer, price=cleared.price,
        wheeling=c.wheeling, direct=st.direct, seller_income=st.seller_income,
        buyer_pays=st.buyer_pays, shortfall=st.shortfall, surplus=st.surplus,
        extra_need=settlement.extra_need_kwh, taken=settlement.taken_kwh,
        flows=settlement.consequences)


@dataclass
class Books:
    """A run's accounts: per party and for the grid company and the balancing account,
    summed over the hours (docs/model.md section 6c). Money in and out of every account
    adds to zero; what is left is value minus resource cost, which is the welfare."""

    party_type: NDArray[np.int8]
    opportunist: NDArray[np.bool_]
    columns: dict[str, NDArray[np.float64]] = field(init=False)
    accounts: dict[str, NDArray[np.float64]] = field(init=False)

    COLUMNS = ("income", "paid", "resource", "value", "penalty_paid", "penalty_received",
               "breaches")

    def __post_init__(self) -> None:
        n = self.party_type.size
        self.columns = {c: np.zeros(n) for c in self.COLUMNS}
        self.accounts = {c: np.zeros(2) for c in self.COLUMNS}

    def add(self, h: HourEconomy, breach: NDArray[np.bool_]) -> None:
        c, a = self.columns, self.accounts
        for name in ("income", "paid", "resource", "value", "penalty_paid", "penalty_received"):
            c[name] += getattr(h, name)
        c["breaches"] += breach
        a["income"] += h.account_income
        a["paid"] += h.account_paid
        a["resource"] += h.account_resource
        a["penalty_received"] += h.account_penalty_received

    def table(self) -> dict[str, dict[str, float]]:
        """Per party type present and the two accounts: parties, income, cost (money paid
        plus resource cost), value of served load, net surplus, breaches, penalties paid
        and received (yuan)."""
        k = len(PARTY_TYPES)
        sums = {c: np.concatenate([np.bincount(self.party_type, v, k), self.accounts[c]])
                for c, v in self.columns.items()}
        parties = np.concatenate([np.bincount(self.party_type, minlength=k), [0, 0]])
        return {label: _row({c: float(v[i]) for c, v in sums.items()} | {"parties": parties[i]})
                for i, label in enumerate(ACCOUNTS) if i >= k or parties[i]}

    def rows(self, mask: NDArray[np.bool_]) -> dict[str, float]:
        """One row over the parties in ``mask``."""
        v = {c: float(col[mask].sum()) for c, col in self.columns.items()}
        return _row(v | {"parties": float(mask.sum())})

    def summary(self) -> dict[str, Any]:
        """The run's summary.json fields of section 6c beside the KPIs' totals: the table by
        party type and one by conduct: parties that never breached (``honest``) or did,
        opportunists (who start by over-committing) and the others."""
        table = self.table()
        honest = self.columns["breaches"] == 0
        conduct = {"honest": self.rows(honest), "breached": self.rows(~honest),
                   "opportunist": self.rows(self.opportunist),
                   "non_opportunist": self.rows(~self.opportunist)}
        flat = {f"net_surplus_{k}_yuan": row["net_surplus_yuan"] for k, row in table.items()}
        flat |= {f"{who}_{k}": conduct[who][k] for who in ("honest", "non_opportunist")
                 for k in ("net_surplus_yuan", "penalties_paid_yuan")}
        return {**flat, "by_party_type": table, "by_conduct": conduct}

    def welfare(self) -> float:
        """Value of served load minus every resource cost (the identity's right-hand side)."""
        return float(self.columns["value"].sum() - self.columns["resource"].sum()
                     - self.accounts["resource"].sum())


def _row(v: dict[str, float]) -> dict[str, float]:
    cost = v["paid"] + v["resource"]
    return {"parties": int(v["parties"]), "income_yuan": v["income"], "cost_yuan": cost,
            "resource_cost_yuan": v["resource"], "value_yuan": v["value"],
            "net_surplus_yuan": v["value"] + v["income"] - cost,
            "breaches": int(v["breaches"]), "penalties_paid_yuan": v["penalty_paid"],
            "penalties_received_yuan": v["penalty_received"]}
