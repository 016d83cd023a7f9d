"""The trading parties as one vectorised set over their columns (the mesa-frames idea).

:class:`PartySet` owns every column of the trading parties (DPGCs first, then
users; ``kind`` tells them apart) and their behaviour, each a vectorised
method over all parties at once: post orders on a forecast (section 4.3),
deliver (4.4), score and update credit (6) and learn (8). :class:`Batteries`
owns the optional DPGC storage. The Mesa agents in :mod:`dipi_abm.agents` are
thin views over these rows, so ``model.agents``, AgentSets and the
DataCollector keep working while the hour never loops over agents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .hour import BUYER, SELLER, CreditUpdate, Delivery, Orders, Schedule
from .rules.credit import CreditState, buyer_score, seller_score
from .rules.learning import ActionGrid, Learner
from .rules.matching import Contracts, OrderBook


def per_party(rows: NDArray[np.intp], weights: NDArray, n: int) -> NDArray[np.float64]:
    """Sum contract quantities per party row (float even when there are no contracts)."""
    return np.bincount(rows, weights, n).astype(np.float64, copy=False)


@dataclass
class PartySet:
    """Columnar party state and behaviour: one row per party (DPGCs first, then users)."""

    kind: NDArray[np.int8]
    bus: NDArray[np.intp]
    tech: NDArray[np.int8]  # -1: no generator
    capacity_kw: NDArray[np.float64]
    cleanliness: NDArray[np.float64]
    load_class: NDArray[np.int8]  # -1: no load
    mean_load_kw: NDArray[np.float64]
    ask_markup: NDArray[np.float64]
    bid_discount: NDArray[np.float64]
    commitment_ratio: NDArray[np.float64]
    bid_volume_ratio: NDArray[np.float64]
    balance: NDArray[np.float64]
    credit: CreditState
    role: NDArray[np.int8] = field(init=False)
    offered_kwh: NDArray[np.float64] = field(init=False)
    committed_kwh: NDArray[np.float64] = field(init=False)
    delivered_kwh: NDArray[np.float64] = field(init=False)
    breach: NDArray[np.bool_] = field(init=False)
    score: NDArray[np.float64] = field(init=False)
    opportunist: NDArray[np.bool_] = field(init=False)
    sell_learner: Learner | None = field(init=False, default=None)
    buy_learner: Learner | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        n = self.kind.size
        self.role = np.zeros(n, np.int8)
        self.offered_kwh = np.zeros(n)
        self.committed_kwh = np.zeros(n)
        self.delivered_kwh = np.zeros(n)
        self.breach = np.zeros(n, bool)
        self.score = np.full(n, np.nan)
        self.opportunist = np.zeros(n, bool)

    @property
    def n(self) -> int:
        return int(self.kind.size)

    # ------------------------------------------------------------------ learning set-up
    def init_learning(self, p: Any, rng: np.random.Generator, static: bool) -> None:
        """Action grids, starting propensities and the opportunists (docs/model.md section 8)."""
        n = self.n
        ratios = np.linspace(p.commit_min, p.commit_max, p.commit_levels)
        self.opportunist[rng.permutation(n)[: int(round(p.opportunist_share * n))]] = True
        learners = []
        for lo, hi, start_level, base in (
            (p.ask_markup_min, p.ask_markup_max, self.ask_markup, p.commitment_ratio),
            (p.bid_discount_min, p.bid_discount_max, self.bid_discount, p.bid_volume_ratio),
        ):
            grid = ActionGrid.build(ratios, np.linspace(lo, hi, p.price_levels))
            start = grid.nearest(base, start_level)
            greedy = grid.nearest(p.commit_max, start_level)
            start[self.opportunist] = greedy[self.opportunist]
            learners.append(Learner.new(n, grid, start))
        self.sell_learner, self.buy_learner = learners
        if static:
            self.commitment_ratio[self.opportunist] = p.commit_max
            self.bid_volume_ratio[self.opportunist] = p.commit_max

    # ------------------------------------------------------------------ the hour
    def post_orders(self, schedule: Schedule, gen_forecast_kw: NDArray, load_forecast_kw: NDArray,
                    choose: Callable[..., NDArray[np.intp]], behaviour_rng: np.random.Generator,
                    time_rng: np.random.Generator,
                    volume_cap: Callable[[NDArray], NDArray] | None = None) -> Orders:
        """Orders (JY1): sellers offer forecast surplus, buyers bid forecast need, each at
        the commitment and price its learner picks for the hour (docs/model.md section 4.3).
        ``volume_cap(forecast_kwh) -> kWh`` caps each party's order (breach_policy hooks
        before matching: credit gate, deposit affordability; docs/model.md section 6b)."""
        r, f = schedule.retail, schedule.feed_in
        net, sell, buy = _sides(load_forecast_kw, gen_forecast_kw, self.role)
        self._choose_actions(sell, buy, choose, behaviour_rng)
        _order_volumes(net, sell, buy, self.commitment_ratio, self.bid_volume_ratio,
                       self.offered_kwh)
        if volume_cap is not None:
            np.minimum(self.offered_kwh, volume_cap(np.abs(net)), out=self.offered_kwh)
        time = time_rng.permutation(sell.size + buy.size)
        credit, spread = self.credit.credit, r - f
        book = OrderBook(
            seller_party=sell, seller_bus=self.bus[sell], seller_volume=self.offered_kwh[sell],
            seller_price=f + self.ask_markup[sell] * spread, seller_time=time[: sell.size],
            buyer_party=buy, buyer_bus=self.bus[buy], buyer_volume=self.offered_kwh[buy],
            buyer_price=r - self.bid_discount[buy] * spread, buyer_time=time[sell.size:],
            seller_credit=credit[sell], buyer_credit=credit[buy],
            seller_cleanliness=self.cleanliness[sell],
        )
        return Orders(book, net, self.role.copy(), self.offered_kwh.copy())

    def _choose_actions(self, sell: NDArray[np.intp], buy: NDArray[np.intp],
                        choose: Callable[..., NDArray[np.intp]],
                        rng: np.random.Generator) -> None:
        """Each acting party picks this hour's commitment and price from its learner."""
        for lr, idx, ratio, level in (
            (self.sell_learner, sell, self.commitment_ratio, self.ask_markup),
            (self.buy_learner, buy, self.bid_volume_ratio, self.bid_discount),
        ):
            assert lr is not None
            lr.chosen[:] = -1
            if idx.size == 0:
                continue
            a = choose(lr, idx, rng)
            if a.size and a[0] >= 0:
                lr.chosen[idx] = a
                ratio[idx] = lr.actions.volume_ratio[a]
                level[idx] = lr.actions.price_level[a]

    def deliver(self, gen_kw: NDArray, load_kw: NDArray, orders: Orders,
                committed: NDArray[np.float64], batteries: Batteries,
                tolerance: float) -> Delivery:
        """Delivery (docs/model.md sections 4.4 and 6): actual positions, storage firming,
        what counts against each party's commitments (``committed``, kWh: the market's
        :meth:`~dipi_abm.market.Market.commitments`), and who breached."""
        surplus, need = np.maximum(gen_kw - load_kw, 0.0), np.maximum(load_kw - gen_kw, 0.0)
        is_seller = orders.role == SELLER
        if batteries.power_kw.any():
            deliverable, charge, discharge = batteries.firm_up(
                surplus, np.where(is_seller, committed, 0.0))
        else:
            deliverable, charge, discharge = surplus, 0.0, 0.0
        counted, breach, delivered = _against_commitments(is_seller, deliverable, need,
                                                          committed, 1.0 - tolerance)
        self.committed_kwh = committed
        self.delivered_kwh = delivered
        self.breach = breach
        return Delivery(surplus, need, deliverable, committed, counted, is_seller, breach,
                        gen_kw, load_kw, charge, discharge)

    def update_credit(self, delivery: Delivery, contracts: Contracts, update: Callable[..., None],
                      natural_factor: float, per_contract: bool, hour: int) -> CreditUpdate:
        """Credit (LH1, docs/model.md section 6): score each committed party, update its credit.

        ``hour`` is the model's hour: the clock of rules whose memory is set in time."""
        if not 0.0 <= natural_factor < 0.3:
            raise ValueError(f"natural_factor = {natural_factor}: must be in [0, 0.3)")
        idx, score, k = _scores(delivery.committed_kwh, delivery.counted_kwh, self.role,
                                natural_factor, contracts.seller, contracts.buyer,
                                per_contract, self.score)
        if idx.size == 0:
            return CreditUpdate.none()
        update(self.credit, idx, score, k, hour=hour)
        return CreditUpdate(idx, score)

    def learn(self, schedule: Schedule, orders: Orders, delivery: Delivery,
              party_transfer: NDArray, rewards: tuple[NDArray[np.intp], NDArray[np.float64]],
              update: Callable[..., None]) -> None:
        """Learning (docs/model.md section 8): each acting party is paid its hour's gain over
        the grid-only alternative (plus ``rewards``: party rows and yuan, e.g. the block
        reward), per kWh of its position."""
        learners = [lr for lr in (self.sell_learner, self.buy_learner)
                    if lr is not None and lr.chosen.size and lr.chosen.max() >= 0]
        if not learners:
            return  # nobody chose an action this hour (static parties): nothing to learn
        gain = party_transfer - (delivery.surplus_kw * schedule.feed_in
                                 - delivery.need_kw * schedule.retail)
        if rewards[0].size:
            gain = gain.copy()
            np.add.at(gain, rewards[0], rewards[1])
        reward = gain / np.maximum(np.abs(orders.net_forecast_kw), 1.0)
        for lr in learners:
            idx = np.flatnonzero(lr.chosen >= 0)
            update(lr, idx, reward[idx])


# ----------------------------------------------------------------------------- row passes

def _sides(load: NDArray, gen: NDArray, role: NDArray[np.int8]
           ) -> tuple[NDArray, NDArray[np.intp], NDArray[np.intp]]:
    """Forecast net position, sellers' and buyers' rows; ``role`` set in place."""
    net = load - gen
    sell = np.flatnonzero(net < -1e-9)
    buy = np.flatnonzero(net > 1e-9)
    role[:] = 0
    role[sell] = SELLER
    role[buy] = BUYER
    return net, sell, buy


def _order_volumes(net: NDArray, sell: NDArray[np.intp], buy: NDArray[np.intp],
                   commitment: NDArray, bid_ratio: NDArray, offered: NDArray) -> None:
    """Each party's order volume, in place: the committed share of its forecast position."""
    offered[:] = 0.0
    offered[sell] = -net[sell] * commitment[sell]
    offered[buy] = net[buy] * bid_ratio[buy]


def _against_commitments(is_seller: NDArray[np.bool_], deliverable: NDArray,
                         need: NDArray, committed: NDArray, keep: float
                         ) -> tuple[NDArray, NDArray[np.bool_], NDArray]:
    """What counts against each party's commitments, who breached (counted below
    ``keep`` = 1 - tolerance of it) and what was delivered."""
    counted = np.minimum(np.where(is_seller, deliverable, need), committed)
    has = committed > 0
    return counted, has & (counted < keep * committed), np.where(has, counted, 0.0)


def _scores(committed: NDArray, counted: NDArray, role: NDArray[np.int8],
            natural_factor: float, seller: NDArray[np.intp], buyer: NDArray[np.intp],
            per_contract: bool, score_out: NDArray
            ) -> tuple[NDArray[np.intp], NDArray, NDArray[np.int64]]:
    """The committed parties' rows, performance scores and updates to count (their
    contracts, or 1); ``score_out`` (per party, NaN if not scored) is rewritten only if
    someone committed."""
    idx = np.flatnonzero(committed > 0)
    if idx.size == 0:
        return idx, np.zeros(0), np.zeros(0, np.int64)
    g, q = counted[idx], committed[idx]
    score = np.where(role[idx] == SELLER, seller_score(g, q, natural_factor),
                     buyer_score(g, q))
    score_out[:] = np.nan
    score_out[idx] = score
    if per_contract:
        n = committed.size
        k = (np.bincount(seller, minlength=n) + np.bincount(buyer, minlength=n))[idx]
    else:
        k = np.ones(idx.size, np.int64)
    return idx, score, np.asarray(k, dtype=np.int64)


@dataclass
class Batteries:
    """DPGC batteries that firm up commitments (docs/model.md section 1, optional storage)."""

    energy_kwh: NDArray[np.float64]  # per party; 0 without a battery
    power_kw: NDArray[np.float64]
    soc_kwh: NDArray[np.float64]
    efficiency: float  # round trip

    @classmethod
    def build(cls, parties: PartySet, p: Any, rng: np.random.Generator) -> tuple[Batteries,
                                                                                NDArray[np.intp]]:
        """Batteries for a share of the DPGCs; returns them and the owners' rows."""
        energy = np.zeros(parties.n)
        power = np.zeros(parties.n)
        n_with = int(round(p.storage_share * p.n_dpgc))
        owners = rng.permutation(p.n_dpgc)[:n_with]
        energy[owners] = p.storage_hours * p.storage_power_ratio * parties.capacity_kw[owners]
        power[owners] = p.storage_power_ratio * parties.capacity_kw[owners]
        return cls(energy, power, 0.5 * energy, p.storage_efficiency), np.sort(owners)

    def firm_up(self, surplus: NDArray, committed: NDArray) -> tuple[NDArray, float, float]:
        """A DPGC with a battery discharges to cover a shortfall against what it agreed and
        charges with what it produced beyond it (instead of selling that at F). Returns the
        surplus it can deliver and the hour's charge and discharge (kWh)."""
        if not self.power_kw.any():
            return surplus, 0.0, 0.0
        eta = float(np.sqrt(self.efficiency))  # per direction
        discharge = np.minimum.reduce([np.maximum(committed - surplus, 0.0), self.power_kw,
                                       self.soc_kwh * eta])
        charge = np.minimum.reduce([np.maximum(surplus - committed, 0.0), self.power_kw,
                                    (self.energy_kwh - self.soc_kwh) / eta])
        self.soc_kwh = np.clip(self.soc_kwh + charge * eta - discharge / eta, 0.0,
                               self.energy_kwh)
        return surplus + discharge - charge, float(charge.sum()), float(discharge.sum())
