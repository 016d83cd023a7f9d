"""One hourly period as data flowing forward (docs/model.md section 4).

Each phase of the hour returns a small immutable result that later phases
take as input: :class:`Schedule` (DU1), :class:`Orders` (forecast and orders,
JY1), :class:`Cleared` (matching, quorum, executability, trade prices),
:class:`Delivery`, :class:`HourSettlement` (contracts, PPSC, OGSC, breach
consequences), :class:`CreditUpdate` (LH1) and :class:`Block` (consensus).
:class:`HourRecord` holds them together; the ledger's period records and the
dashboard read the hour from it, never from the model's internals.

:data:`KPIS` is the one table of the hour's KPIs (docs/model.md section 9): each
entry a name, a unit, a function of the :class:`HourRecord` and whether it adds
to the run's totals. The DataCollector's columns, ``record.kpis``, the run
totals and the summary all read it; a new KPI is one entry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .physics.weather import THERMAL
from .rules.consensus import QuorumOutcome
from .rules.consequences import Flows
from .rules.economy import ECONOMY_KPIS, HourEconomy
from .rules.matching import Contracts, OrderBook
from .rules.settlement import Settlement

#: Party kinds (the ``kind`` column) and order sides (the ``role`` column).
DPGC_KIND, USER_KIND = 0, 1
SELLER, BUYER = 1, -1

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
    generation_kw: NDArray[np.float64]  # actual output per party (the hour's kWh)
    load_kw: NDArray[np.float64]  # actual load per party
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
class ChainStats:
    """The block and the record of blocks so far (docs/model.md section 7), as the KPIs
    read them: against the credit the block was drawn on."""

    producer: int  # the producer's agent id
    producer_credit: float
    standalone: bool
    hashes: int
    gini: float
    nakamoto: int
    low_credit_share: float
    win_credit_corr: float


@dataclass(frozen=True)
class Roster:
    """The parties' fixed columns and their credit after the hour's update (a copy)."""

    kind: NDArray[np.int8]
    tech: NDArray[np.int8]
    credit: NDArray[np.float64]

    @cached_property
    def dpgc(self) -> NDArray[np.bool_]:
        return self.kind == DPGC_KIND

    @cached_property
    def user(self) -> NDArray[np.bool_]:
        return ~self.dpgc


@dataclass(frozen=True)
class HourRecord:
    """Everything one hour produced, in phase order; ``kpis`` its row of :data:`KPIS`."""

    schedule: Schedule
    orders: Orders
    cleared: Cleared
    delivery: Delivery
    settlement: HourSettlement
    credit: CreditUpdate
    roster: Roster
    gated: NDArray[np.bool_] | None = None  # parties the breach policy kept out (if it gates)
    block: Block | None = None
    chain: ChainStats | None = None
    line_loading: float = 0.0  # peak line loading of the hour's flows (docs/model.md §2)
    budget_yuan: NDArray[np.float64] | None = None  # users' budgets (docs/model.md, Accounts)
    economy: HourEconomy | None = None  # system cost, welfare, who pays (docs/model.md 6c)

    @cached_property
    def kpis(self) -> dict[str, Any]:
        """The hour's KPIs, every entry of :data:`KPIS` (the chain's once it has a block)."""
        return {k.name: k.of(self) for k in KPIS if self.chain is not None or not k.chain}


@dataclass(frozen=True)
class KPI:
    """One KPI of the hour (docs/model.md section 9).

    ``of(record)`` computes it from the :class:`HourRecord`; ``total``: the run sums it
    (``DIPIModel.totals``, which the summary reads); ``hourly=False``: a running sum
    for the summary only, not a column; ``policy``: reported only under a breach
    policy; ``chain``: read from the block (computed once the block is produced)."""

    name: str
    unit: str
    of: Callable[[HourRecord], Any]
    total: bool = False
    hourly: bool = True
    policy: bool = False
    chain: bool = False


def _once(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A part several KPIs share, computed once per record (kept as cached properties are)."""
    @functools.wraps(fn)
    def get(r: HourRecord, *args: Any) -> Any:
        key = (fn.__name__, *args)
        cache = r.__dict__.setdefault("_parts", {})
        if key not in cache:
            cache[key] = fn(r, *args)
        return cache[key]

    return get


def _nan_ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


def _masked(r: HourRecord, group: str) -> Any:
    """The rows of a breach group: every party, the DPGCs, the users."""
    return r.roster.dpgc if group == "_dpgc" else r.roster.user if group else slice(None)


@_once
def _breaches(r: HourRecord, group: str) -> int:
    return int(r.delivery.breach[_masked(r, group)].sum())


@_once
def _committed(r: HourRecord, group: str) -> int:
    return int((r.delivery.committed_kwh[_masked(r, group)] > 0).sum())


@_once
def _shortfall(r: HourRecord, group: str) -> float:
    return float(_shortfall_kwh(r)[_masked(r, group)].sum())


@_once
def _shortfall_kwh(r: HourRecord) -> NDArray[np.float64]:
    return r.delivery.shortfall_kwh


@_once
def _volume(r: HourRecord) -> float:
    return float(r.cleared.contracts.volume.sum())


@_once
def _qp(r: HourRecord, power: int = 1) -> float:
    return float((r.cleared.contracts.volume * r.cleared.price ** power).sum())


def _price_std(r: HourRecord) -> float:
    q, qs = r.cleared.contracts.volume, _volume(r)
    if qs <= 0:
        return float("nan")
    mean = _qp(r) / qs
    return float(np.sqrt(max(float((q * (r.cleared.price - mean) ** 2).sum()) / qs, 0.0)))


@_once
def _offered(r: HourRecord) -> float:
    return float(r.orders.offered_kwh[r.delivery.is_seller].sum())


@_once
def _demanded(r: HourRecord) -> float:
    return float(r.orders.offered_kwh[r.orders.role == BUYER].sum())


@_once
def _user_need(r: HourRecord) -> float:
    return float(r.delivery.need_kw[r.roster.user].sum())


@_once
def _clean(r: HourRecord) -> float:
    """Energy delivered to users by contracts with a solar, wind or hydro seller."""
    c, tech = r.cleared.contracts, r.roster.tech
    clean = (tech[c.seller] >= 0) & (tech[c.seller] != THERMAL) & (r.roster.kind[c.buyer]
                                                                  == USER_KIND)
    return float(r.settlement.contracts.direct[clean].sum())


@_once
def _credit_moments(r: HourRecord, kind: int) -> tuple[float, float]:
    """Mean and standard deviation of the credit of one party kind (NaN if none)."""
    c = r.roster.credit[r.roster.dpgc if kind == DPGC_KIND else r.roster.user]
    return (float("nan"), float("nan")) if c.size == 0 else (float(c.mean()), float(c.std()))


def _breach_kpis(group: str) -> tuple[KPI, ...]:
    """One group's breach count, rate (per committed party) and shortfall."""
    total = group == ""
    return (
        KPI(f"breaches{group}", "parties", lambda r: _breaches(r, group), total=total),
        *((KPI("committed_parties", "parties", lambda r: _committed(r, ""), total=True),)
          if total else ()),
        KPI(f"breach_rate{group}", "share",
            lambda r: _breaches(r, group) / max(_committed(r, group), 1)),
        KPI(f"breach_shortfall{group}_kwh", "kWh", lambda r: _shortfall(r, group), total=total),
    )


#: The hour's KPIs, in the order of the DataCollector's columns (docs/model.md section 9).
KPIS: tuple[KPI, ...] = (
    KPI("hour_of_day", "h", lambda r: r.schedule.hour_of_day),
    KPI("retail_price", "yuan/kWh", lambda r: r.schedule.retail),
    KPI("feed_in_price", "yuan/kWh", lambda r: r.schedule.feed_in),
    KPI("generation_kwh", "kWh", lambda r: float(r.delivery.generation_kw.sum()), total=True),
    KPI("load_kwh", "kWh", lambda r: float(r.delivery.load_kw.sum()), total=True),
    KPI("offered_kwh", "kWh", _offered),
    KPI("demanded_kwh", "kWh", _demanded),
    KPI("p2p_volume_kwh", "kWh", _volume, total=True),
    KPI("p2p_delivered_kwh", "kWh", lambda r: float(r.settlement.contracts.direct.sum()),
        total=True),
    KPI("n_contracts", "contracts", lambda r: r.cleared.contracts.size),
    KPI("matching_rounds", "rounds", lambda r: r.cleared.contracts.rounds),
    KPI("grid_purchase_kwh", "kWh", lambda r: float(
        r.settlement.contracts.shortfall.sum() + r.settlement.extra_need_kwh.sum()), total=True),
    KPI("grid_sale_kwh", "kWh", lambda r: float(
        r.settlement.contracts.surplus.sum() + r.settlement.taken_kwh.sum()), total=True),
    KPI("curtailed_kwh", "kWh", lambda r: float(
        (r.settlement.extra_surplus_kwh - r.settlement.taken_kwh).sum()), total=True),
    KPI("line_curtailed_kwh", "kWh", lambda r: r.cleared.line_curtailed_kwh, total=True),
    KPI("peak_line_loading", "-", lambda r: r.line_loading),
    KPI("storage_charge_kwh", "kWh", lambda r: r.delivery.storage_charge_kwh),
    KPI("storage_discharge_kwh", "kWh", lambda r: r.delivery.storage_discharge_kwh),
    *_breach_kpis(""), *_breach_kpis("_dpgc"), *_breach_kpis("_user"),
    KPI("mean_credit_dpgc", "credit", lambda r: _credit_moments(r, DPGC_KIND)[0]),
    KPI("std_credit_dpgc", "credit", lambda r: _credit_moments(r, DPGC_KIND)[1]),
    KPI("mean_credit_user", "credit", lambda r: _credit_moments(r, USER_KIND)[0]),
    KPI("std_credit_user", "credit", lambda r: _credit_moments(r, USER_KIND)[1]),
    KPI("price_mean", "yuan/kWh", lambda r: _nan_ratio(_qp(r), _volume(r))),
    KPI("price_std", "yuan/kWh", _price_std),
    KPI("transaction_efficiency", "share",
        lambda r: _nan_ratio(_volume(r), min(_offered(r), _demanded(r)))),
    KPI("user_cost_yuan", "yuan",
        lambda r: -float(r.settlement.party_transfer[r.roster.user].sum()), total=True),
    KPI("dpgc_income_yuan", "yuan",
        lambda r: float(r.settlement.party_transfer[r.roster.dpgc].sum()), total=True),
    KPI("grid_income_yuan", "yuan", lambda r: r.settlement.grid_income, total=True),
    KPI("clean_share", "share", lambda r: _nan_ratio(_clean(r), _user_need(r))),
    KPI("quorum_committed", "flag", lambda r: int(r.cleared.quorum.committed)),
    KPI("quorum_conflict", "flag", lambda r: int(r.cleared.quorum.conflict)),
    KPI("block_producer", "agent id", lambda r: r.chain.producer, chain=True),
    KPI("producer_credit", "credit", lambda r: r.chain.producer_credit, chain=True),
    KPI("producer_is_standalone", "flag", lambda r: int(r.chain.standalone), chain=True),
    KPI("block_hashes", "hashes", lambda r: r.chain.hashes, chain=True),
    KPI("blocks_gini", "index", lambda r: r.chain.gini, chain=True),
    KPI("blocks_nakamoto", "nodes", lambda r: r.chain.nakamoto, chain=True),
    KPI("low_credit_block_share", "share", lambda r: r.chain.low_credit_share, chain=True),
    KPI("win_credit_corr", "correlation", lambda r: r.chain.win_credit_corr, chain=True),
    # System cost and welfare (docs/model.md section 6c).
    *(KPI(name, unit, lambda r, name=name: r.economy.kpis[name], total=True)
      for name, unit in ECONOMY_KPIS.items()),
    # Breach consequences (docs/model.md section 6b): only under a breach_policy.
    KPI("gated_share", "share", lambda r: float(r.gated.mean()) if r.gated is not None else 0.0,
        total=True, policy=True),
    KPI("breach_consequence_yuan", "yuan", lambda r: float(r.settlement.consequences.yuan.sum())
        if r.settlement.consequences is not None else 0.0, total=True, policy=True),
    # Running sums behind the summary's ratios (not hourly columns).
    KPI("tradable_kwh", "kWh", lambda r: min(_offered(r), _demanded(r)), total=True,
        hourly=False),
    KPI("clean_kwh", "kWh", _clean, total=True, hourly=False),
    KPI("user_need_kwh", "kWh", _user_need, total=True, hourly=False),
    KPI("qp_yuan", "yuan", _qp, total=True, hourly=False),
    KPI("qp2_yuan_sq", "yuan^2/kWh", lambda r: _qp(r, 2), total=True, hourly=False),
)
KPI_BY_NAME = {k.name: k for k in KPIS}

#: The hourly KPI columns without and with a breach policy in force.
HOURLY_KPIS = tuple(k.name for k in KPIS if k.hourly and not k.policy)
POLICY_KPIS = tuple(k.name for k in KPIS if k.hourly and k.policy)


