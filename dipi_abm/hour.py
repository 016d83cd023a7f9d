"""One hourly period as data flowing forward (docs/model.md section 4).

Each phase of the hour returns a small immutable result that later phases
take as input: :class:`Schedule` (DU1), :class:`Orders` (forecast and orders,
JY1), :class:`Cleared` (matching, quorum, executability, trade prices),
:class:`Delivery`, :class:`HourSettlement` (contracts, PPSC, OGSC, breach
consequences), :class:`CreditUpdate` (LH1) and :class:`Block` (consensus).
:class:`HourRecord` holds them together; the KPIs (docs/model.md section 9), the
DataCollector, the ledger's period records and the dashboard read the hour
from it, never from the model's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .jit import kernel, pairwise_sum
from .physics.weather import THERMAL
from .rules.consensus import QuorumOutcome
from .rules.consequences import Flows
from .rules.matching import Contracts, OrderBook
from .rules.settlement import Settlement

#: Party kinds (the ``kind`` column) and order sides (the ``role`` column).
DPGC_KIND, USER_KIND = 0, 1
SELLER, BUYER = 1, -1

#: Per-hour KPIs (docs/model.md section 9), reported by the DataCollector and model.parquet.
HOURLY_KPIS = (
    "hour_of_day",
    "retail_price",
    "feed_in_price",
    "generation_kwh",
    "load_kwh",
    "offered_kwh",
    "demanded_kwh",
    "p2p_volume_kwh",
    "p2p_delivered_kwh",
    "n_contracts",
    "matching_rounds",
    "grid_purchase_kwh",
    "grid_sale_kwh",
    "curtailed_kwh",
    "line_curtailed_kwh",
    "peak_line_loading",
    "storage_charge_kwh",
    "storage_discharge_kwh",
    "breaches",
    "breaches_dpgc",
    "breaches_user",
    "committed_parties",
    "breach_rate",
    "breach_rate_dpgc",
    "breach_rate_user",
    "breach_shortfall_kwh",
    "breach_shortfall_dpgc_kwh",
    "breach_shortfall_user_kwh",
    "mean_credit_dpgc",
    "std_credit_dpgc",
    "mean_credit_user",
    "std_credit_user",
    "price_mean",
    "price_std",
    "transaction_efficiency",
    "user_cost_yuan",
    "dpgc_income_yuan",
    "grid_income_yuan",
    "clean_share",
    "quorum_committed",
    "quorum_conflict",
    "block_producer",
    "producer_credit",
    "producer_is_standalone",
    "block_hashes",
    "blocks_gini",
    "blocks_nakamoto",
    "low_credit_block_share",
    "win_credit_corr",
)

#: Per-hour KPIs of the breach consequences (docs/model.md section 6b), reported only when a
#: breach_policy other than ``none`` is in force (so default outputs stay as they were).
POLICY_KPIS = ("gated_share", "breach_consequence_yuan")


@dataclass(frozen=True)
class Schedule:
    """DU1: the grid company's terms for the delivery hour."""

    hour: int  # 1-based period number (0 before the first hour)
    hour_of_day: int
    retail: float  # R, yuan/kWh
    feed_in: float  # F, yuan/kWh


@dataclass(frozen=True)
class Orders:
    """Forecasts and the orders posted on them (JY1's TradeIntentions)."""

    book: OrderBook
    net_forecast_kw: NDArray[np.float64]  # load - generation forecast, per party
    role: NDArray[np.int8]  # SELLER, BUYER or 0, per party
    offered_kwh: NDArray[np.float64]  # order volume per party (0: no order)


@dataclass(frozen=True)
class Cleared:
    """Matching, the quorum on its result, DU1's executability check, trade prices."""

    contracts: Contracts
    price: NDArray[np.float64]  # per contract, yuan/kWh (the trade-price rule)
    quorum: QuorumOutcome
    line_curtailed_kwh: float


@dataclass(frozen=True)
class Delivery:
    """What weather and the parties' choices delivered against the contracts."""

    surplus_kw: NDArray[np.float64]  # actual generation beyond load, before storage
    need_kw: NDArray[np.float64]  # actual load beyond generation
    deliverable_kw: NDArray[np.float64]  # surplus after storage firmed commitments up
    committed_kwh: NDArray[np.float64]  # agreed volume per party (offers, when grid-only)
    counted_kwh: NDArray[np.float64]  # delivered (seller) or taken (buyer) against it
    is_seller: NDArray[np.bool_]
    breach: NDArray[np.bool_]
    storage_charge_kwh: float = 0.0
    storage_discharge_kwh: float = 0.0

    @property
    def shortfall_kwh(self) -> NDArray[np.float64]:
        """Breached parties' shortfall against their commitments (0 elsewhere)."""
        return np.where(self.breach, self.committed_kwh - self.counted_kwh, 0.0)


@dataclass(frozen=True)
class HourSettlement:
    """The smart contract's money flows (docs/model.md sections 4-5, 6b)."""

    contracts: Settlement  # per contract
    party_transfer: NDArray[np.float64]  # net money in per party, yuan
    grid_income: float  # the grid company's net money in
    extra_need_kwh: NDArray[np.float64]  # bought from the grid outside contracts (PPSC)
    extra_surplus_kwh: NDArray[np.float64]  # offered to the grid outside contracts
    taken_kwh: NDArray[np.float64]  # what the grid company took of it (OGSC)
    consequences: Flows | None = None  # breach_policy payments, included above (docs/model.md 6b)


@dataclass(frozen=True)
class CreditUpdate:
    """LH1: the parties whose credit was updated this hour and their scores."""

    updated: NDArray[np.intp]
    score: NDArray[np.float64]

    @classmethod
    def none(cls) -> CreditUpdate:
        return cls(np.zeros(0, np.intp), np.zeros(0))


@dataclass(frozen=True)
class Block:
    """The period's block: its producer (a node row) and the nonce race, if any."""

    winner: int
    nonce: int = 0
    target: int = 0
    hashes: int = 0


@dataclass(frozen=True)
class HourRecord:
    """Everything one hour produced, in phase order."""

    schedule: Schedule
    orders: Orders
    cleared: Cleared
    delivery: Delivery
    settlement: HourSettlement
    credit: CreditUpdate
    block: Block | None = None
    kpis: dict[str, Any] = field(default_factory=dict)
    budget_yuan: NDArray[np.float64] | None = None  # users' budgets (docs/model.md, Accounts)


def market_kpis(schedule: Schedule, orders: Orders, cleared: Cleared, delivery: Delivery,
                settlement: HourSettlement, kind: NDArray[np.int8], tech: NDArray[np.int8],
                generation_kw: NDArray[np.float64], load_kw: NDArray[np.float64]
                ) -> dict[str, Any]:
    """The hour's market KPIs (docs/model.md section 9), from the phase results alone.

    Every sum is numpy's (pairwise, over the same rows in the same order: see
    :func:`_market_kpis_numpy`), taken in one compiled pass (:func:`_market_sums`)."""
    c, st, d = cleared.contracts, settlement.contracts, delivery
    (generation, load, offered, demanded, volume, direct, contract_shortfall, extra_need,
     contract_surplus, taken, curtailed, breaches, committed, shortfall, qp, spread, qp2,
     user_transfer, dpgc_transfer, user_need, clean) = _market_sums(
        generation_kw, load_kw, orders.offered_kwh, d.is_seller, orders.role, kind,
        settlement.party_transfer, d.need_kw, d.breach, d.committed_kwh, d.counted_kwh,
        c.volume, cleared.price, st.direct, st.shortfall, st.surplus, c.seller, c.buyer, tech,
        settlement.extra_need_kwh, settlement.extra_surplus_kwh, settlement.taken_kwh)
    k: dict[str, Any] = {
        "hour_of_day": schedule.hour_of_day,
        "retail_price": schedule.retail,
        "feed_in_price": schedule.feed_in,
        "generation_kwh": generation,
        "load_kwh": load,
        "offered_kwh": offered,
        "demanded_kwh": demanded,
        "p2p_volume_kwh": volume,
        "p2p_delivered_kwh": direct,
        "n_contracts": c.size,
        "matching_rounds": c.rounds,
        "grid_purchase_kwh": contract_shortfall + extra_need,
        "grid_sale_kwh": contract_surplus + taken,
        "curtailed_kwh": curtailed,
        "line_curtailed_kwh": cleared.line_curtailed_kwh,
        "storage_charge_kwh": d.storage_charge_kwh,
        "storage_discharge_kwh": d.storage_discharge_kwh,
        "quorum_committed": int(cleared.quorum.committed),
        "quorum_conflict": int(cleared.quorum.conflict),
    }
    for group, label in enumerate(BREACH_GROUPS):
        _breach_kpis(k, label, int(breaches[group]), int(committed[group]),
                     float(shortfall[group]))
    qs = volume
    if qs > 0:
        mean = qp / qs
        k["price_mean"] = mean
        k["price_std"] = float(np.sqrt(max(spread / qs, 0.0)))
    else:
        k["price_mean"] = k["price_std"] = float("nan")
    tradable = min(k["offered_kwh"], k["demanded_kwh"])
    k["transaction_efficiency"] = qs / tradable if tradable > 0 else float("nan")
    k["user_cost_yuan"] = -user_transfer
    k["dpgc_income_yuan"] = dpgc_transfer
    k["grid_income_yuan"] = settlement.grid_income
    k["clean_share"] = clean / user_need if user_need > 0 else float("nan")
    # Running sums for the run's summary (not reported per hour).
    k["_tradable"], k["_clean"], k["_user_need"] = tradable, clean, user_need
    k["_qp"], k["_qp2"] = qp, qp2
    return k


#: The breach KPIs' groups: every party, the DPGCs, the users (suffix of the KPI name).
BREACH_GROUPS = ("", "_dpgc", "_user")


def _breach_kpis(k: dict[str, Any], label: str, breaches: int, committed: int,
                 shortfall: float) -> None:
    """One group's breach count, rate (per committed party) and shortfall."""
    k[f"breaches{label}"] = breaches
    if not label:
        k["committed_parties"] = committed
    k[f"breach_rate{label}"] = breaches / committed if committed else 0.0
    k[f"breach_shortfall{label}_kwh"] = shortfall


@kernel
def _market_sums(gen, load, offered, is_seller, role, kind, transfer,  # noqa: ANN001, ANN202
                 need, breach, committed, counted, volume, price, direct, contract_shortfall,
                 contract_surplus, seller, buyer, tech, extra_need, extra_surplus, taken):
    """The sums behind :func:`market_kpis`: each masked sum gathers its rows in order
    (as boolean indexing does) and sums them pairwise, as numpy does. Breaches, parties
    with a commitment and their shortfall come per group: all, DPGCs, users (every row
    that is not a DPGC). The gathers write every row and advance only on a match (no
    branch to mispredict)."""
    n, m = gen.size, volume.size
    # The rows of every masked sum, gathered in one pass.
    sellers, buyers, dpgc_short, user_short = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    user_transfer, user_need, dpgc_transfer = np.empty(n), np.empty(n), np.empty(n)
    n_sell = n_buy = n_dpgc = n_user = 0
    shortfall, curtail = np.empty(n), np.empty(n)
    breach_dpgc = breach_user = has_dpgc = has_user = 0
    for i in range(n):
        short = committed[i] - counted[i] if breach[i] else 0.0
        shortfall[i] = short
        curtail[i] = extra_surplus[i] - taken[i]
        sellers[n_sell] = offered[i]
        n_sell += is_seller[i]
        buyers[n_buy] = offered[i]
        n_buy += role[i] == BUYER
        dpgc_short[n_dpgc], dpgc_transfer[n_dpgc] = short, transfer[i]
        user_short[n_user], user_transfer[n_user], user_need[n_user] = short, transfer[i], need[i]
        dpgc = kind[i] == DPGC_KIND
        n_dpgc += dpgc
        n_user += not dpgc
        b, c = breach[i], committed[i] > 0
        breach_dpgc += b and dpgc
        breach_user += b and not dpgc
        has_dpgc += c and dpgc
        has_user += c and not dpgc
    breaches = np.array([breach_dpgc + breach_user, breach_dpgc, breach_user])
    has = np.array([has_dpgc + has_user, has_dpgc, has_user])
    short = np.empty(3)
    short[0] = pairwise_sum(shortfall, 0, n)
    short[1] = pairwise_sum(dpgc_short, 0, n_dpgc)
    short[2] = pairwise_sum(user_short, 0, n_user)
    # Prices: volume-weighted mean and spread; clean energy delivered to users
    # (contracts with a solar, wind or hydro seller and a user buyer).
    buf, clean_rows = np.empty(m), np.empty(m)
    qs = pairwise_sum(volume, 0, m)
    j = 0
    for c in range(m):
        buf[c] = volume[c] * price[c]
        t = tech[seller[c]]
        clean_rows[j] = direct[c]
        j += t >= 0 and t != THERMAL and kind[buyer[c]] == USER_KIND
    qp = pairwise_sum(buf, 0, m)
    clean = pairwise_sum(clean_rows, 0, j)
    spread = np.nan
    if qs > 0:
        mean = qp / qs
        for c in range(m):
            dev = price[c] - mean
            buf[c] = volume[c] * (dev * dev)
        spread = pairwise_sum(buf, 0, m)
    for c in range(m):
        buf[c] = volume[c] * price[c] * price[c]
    qp2 = pairwise_sum(buf, 0, m)
    return (pairwise_sum(gen, 0, n), pairwise_sum(load, 0, load.size),
            pairwise_sum(sellers, 0, n_sell), pairwise_sum(buyers, 0, n_buy), qs,
            pairwise_sum(direct, 0, m), pairwise_sum(contract_shortfall, 0, m),
            pairwise_sum(extra_need, 0, extra_need.size), pairwise_sum(contract_surplus, 0, m),
            pairwise_sum(taken, 0, taken.size), pairwise_sum(curtail, 0, n), breaches, has,
            short, qp, spread, qp2, pairwise_sum(user_transfer, 0, n_user),
            pairwise_sum(dpgc_transfer, 0, n_dpgc), pairwise_sum(user_need, 0, n_user), clean)


def credit_kpis(kind: NDArray[np.int8], credit: NDArray[np.float64]) -> dict[str, float]:
    """Mean and spread of credit by party type (numpy's mean and std, to the bit)."""
    k = {}
    for label, code in (("dpgc", DPGC_KIND), ("user", USER_KIND)):
        size, mean, std = _credit_moments(kind, credit, code)
        k[f"mean_credit_{label}"] = float(mean) if size else float("nan")
        k[f"std_credit_{label}"] = float(std) if size else float("nan")
    return k


@kernel
def _credit_moments(kind, credit, code):  # noqa: ANN001, ANN202 - numba kernel
    """Count, mean and standard deviation of ``credit[kind == code]`` as numpy's mean and
    std compute them: pairwise sum / n, then sqrt(pairwise sum of squared deviations / n)."""
    c = np.empty(credit.size)
    n = 0
    for i in range(credit.size):
        if kind[i] == code:
            c[n] = credit[i]
            n += 1
    if n == 0:
        return 0, np.nan, np.nan
    mean = pairwise_sum(c, 0, n) / n
    for i in range(n):
        x = c[i] - mean
        c[i] = x * x
    return n, mean, np.sqrt(pairwise_sum(c, 0, n) / n)


def _market_kpis_numpy(schedule: Schedule, orders: Orders, cleared: Cleared, delivery: Delivery,
                settlement: HourSettlement, kind: NDArray[np.int8], tech: NDArray[np.int8],
                generation_kw: NDArray[np.float64], load_kw: NDArray[np.float64]
                ) -> dict[str, Any]:
    """:func:`market_kpis` in numpy: the reference of its kernel."""
    c, st, d = cleared.contracts, settlement.contracts, delivery
    price = cleared.price
    dpgc = kind == DPGC_KIND
    user = ~dpgc
    k: dict[str, Any] = {
        "hour_of_day": schedule.hour_of_day,
        "retail_price": schedule.retail,
        "feed_in_price": schedule.feed_in,
        "generation_kwh": float(generation_kw.sum()),
        "load_kwh": float(load_kw.sum()),
        "offered_kwh": float(orders.offered_kwh[d.is_seller].sum()),
        "demanded_kwh": float(orders.offered_kwh[orders.role == BUYER].sum()),
        "p2p_volume_kwh": float(c.volume.sum()),
        "p2p_delivered_kwh": float(st.direct.sum()),
        "n_contracts": c.size,
        "matching_rounds": c.rounds,
        "grid_purchase_kwh": float(st.shortfall.sum() + settlement.extra_need_kwh.sum()),
        "grid_sale_kwh": float(st.surplus.sum() + settlement.taken_kwh.sum()),
        "curtailed_kwh": float((settlement.extra_surplus_kwh - settlement.taken_kwh).sum()),
        "line_curtailed_kwh": cleared.line_curtailed_kwh,
        "storage_charge_kwh": d.storage_charge_kwh,
        "storage_discharge_kwh": d.storage_discharge_kwh,
        "quorum_committed": int(cleared.quorum.committed),
        "quorum_conflict": int(cleared.quorum.conflict),
    }
    shortfall = d.shortfall_kwh
    has = d.committed_kwh > 0
    for label, mask in zip(BREACH_GROUPS, (slice(None), dpgc, user), strict=True):
        _breach_kpis(k, label, int(d.breach[mask].sum()), int(has[mask].sum()),
                     float(shortfall[mask].sum()))
    q = c.volume
    qs = float(q.sum())
    if qs > 0:
        mean = float((q * price).sum() / qs)
        k["price_mean"] = mean
        k["price_std"] = float(np.sqrt(max((q * (price - mean) ** 2).sum() / qs, 0.0)))
    else:
        k["price_mean"] = k["price_std"] = float("nan")
    tradable = min(k["offered_kwh"], k["demanded_kwh"])
    k["transaction_efficiency"] = qs / tradable if tradable > 0 else float("nan")
    transfer = settlement.party_transfer
    k["user_cost_yuan"] = float(-transfer[user].sum())
    k["dpgc_income_yuan"] = float(transfer[dpgc].sum())
    k["grid_income_yuan"] = settlement.grid_income
    clean_seller = (tech[c.seller] >= 0) & (tech[c.seller] != THERMAL)
    user_need = float(d.need_kw[user].sum())
    clean = float(st.direct[clean_seller & (kind[c.buyer] == USER_KIND)].sum())
    k["clean_share"] = clean / user_need if user_need > 0 else float("nan")
    # Running sums for the run's summary (not reported per hour).
    k["_tradable"], k["_clean"], k["_user_need"] = tradable, clean, user_need
    k["_qp"], k["_qp2"] = float((q * price).sum()), float((q * price * price).sum())
    return k


def _credit_kpis_numpy(kind: NDArray[np.int8], credit: NDArray[np.float64]) -> dict[str, float]:
    """:func:`credit_kpis` in numpy: the reference of its kernel."""
    k = {}
    for label, code in (("dpgc", DPGC_KIND), ("user", USER_KIND)):
        c = credit[kind == code]
        k[f"mean_credit_{label}"] = float(c.mean()) if c.size else float("nan")
        k[f"std_credit_{label}"] = float(c.std()) if c.size else float("nan")
    return k


#: Running totals for the summary: total name -> the hour's KPI it adds up.
TOTALS = {
    "p2p": "p2p_volume_kwh",
    "p2p_delivered": "p2p_delivered_kwh",
    "tradable": "_tradable",
    "committed_sides": "committed_parties",
    "breaches": "breaches",
    "breach_shortfall": "breach_shortfall_kwh",
    "grid_purchase": "grid_purchase_kwh",
    "grid_sale": "grid_sale_kwh",
    "curtailed": "curtailed_kwh",
    "line_curtailed": "line_curtailed_kwh",
    "q": "p2p_volume_kwh",
    "qp": "_qp",
    "qp2": "_qp2",
    "user_cost": "user_cost_yuan",
    "dpgc_income": "dpgc_income_yuan",
    "grid_income": "grid_income_yuan",
    "generation": "generation_kwh",
    "load": "load_kwh",
    "clean": "_clean",
    "user_need": "_user_need",
}


def add_to_totals(totals: dict[str, float], kpis: dict[str, Any]) -> None:
    for name, kpi in TOTALS.items():
        totals[name] += kpis[kpi]
