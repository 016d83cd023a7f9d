"""DIPIModel: the hourly P2P energy market under a blockchain credit mechanism.

One step is one hour and runs the phases of MODEL.md section 4 in order:
schedule (DU1), forecast, orders and matching (JY1), delivery and settlement,
credit (LH1), consensus, learning. The state every phase touches is columnar
(:class:`PartyState`, one row per party) and every phase is vectorised.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import mesa
import networkx as nx
import numpy as np
from numpy.typing import NDArray

from . import config as cfg
from .agents import DPGC, GridCompany, Miner, Party, Storage, User
from .errors import ConfigError
from .ledger.records import genesis_records, period_records, prepare_period, write_period
from .ledger.store import Ledger, VerifyReport
from .physics.flows import LineModel
from .physics.grid import Grid, build_grid, wheeling_tariff
from .physics.weather import Weather, WeatherParams
from .results.collect import PARTY_REPORTERS, ColumnarDataCollector
from .rules.consensus import (
    Nodes,
    draw_producer,
    gini,
    hashed_race,
    matching_quorum,
    nakamoto,
    poca_targets,
    win_credit_correlation,
)
from .rules.consequences import Consequences, Flows, Hour, Positions, bind
from .rules.credit import CreditState, buyer_score, seller_score, update_credit
from .rules.learning import LEARNING_RULES, ActionGrid, Learner
from .rules.matching import (
    GRID_ONLY_RULES,
    MATCHING_RULES,
    PRICE_RULES,
    CMAWeights,
    Contracts,
    MarketNetwork,
    OrderBook,
)
from .rules.settlement import attribute_pro_rata, settle
from .rules.tariffs import CLEANLINESS_Q, TARIFFS, grid_intake, ogsc_priority

DPGC_KIND, USER_KIND = 0, 1
SELLER, BUYER = 1, -1

#: Streams spawned from the run's SeedSequence, in this fixed order.
STREAMS = ("placement", "population", "weather", "matching", "consensus", "behaviour",
           "storage")

#: Per-hour KPIs (MODEL.md section 9), reported by the DataCollector and model.parquet.
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

#: Per-hour KPIs of the breach consequences (MODEL.md section 6b), reported only when a
#: breach_policy other than ``none`` is in force (so default outputs stay as they were).
POLICY_KPIS = ("gated_share", "breach_consequence_yuan")


def package_version() -> str:
    try:
        return version("dipi-abm")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


@dataclass
class PartyState:
    """Columnar party state: one row per party (DPGCs first, then users)."""

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

    def __post_init__(self) -> None:
        n = self.kind.size
        self.role = np.zeros(n, np.int8)
        self.offered_kwh = np.zeros(n)
        self.committed_kwh = np.zeros(n)
        self.delivered_kwh = np.zeros(n)
        self.breach = np.zeros(n, bool)
        self.score = np.full(n, np.nan)

    @property
    def n(self) -> int:
        return int(self.kind.size)


class DIPIModel(mesa.Model):
    """Hourly P2P distributed-energy market with credit and credit-weighted consensus.

    ``DIPIModel(seed=..., **params)`` takes any key of :data:`dipi_abm.config.PARAMS`
    (invalid values raise :class:`~dipi_abm.errors.ConfigError`, a ``ValueError``).
    ``grid`` may also be a ``networkx.Graph``. ``step()`` advances one hour;
    ``run()`` runs ``hours`` hours; ``datacollector`` holds the hourly KPIs and
    the per-party records.
    """

    def __init__(self, seed: int | None = None, **params: Any) -> None:
        graph = params.pop("grid", None)
        if isinstance(graph, nx.Graph):
            grid_source: Any = graph
            params["grid"] = "graph"
        elif graph is not None:
            params["grid"] = graph
            grid_source = graph
        else:
            grid_source = cfg.PARAMS_BY_NAME["grid"].default
        if seed is not None:
            params["seed"] = seed
        self.params = cfg.validate(params)
        p = self.params
        ss = np.random.SeedSequence(p.seed)
        self.seed = int(ss.entropy)  # type: ignore[arg-type]
        super().__init__(seed=self.seed)
        self.streams = dict(zip(STREAMS, ss.spawn(len(STREAMS)), strict=True))
        self._rng = {name: np.random.default_rng(s) for name, s in self.streams.items()}
        self.running = True

        self.grid: Grid = build_grid(
            grid_source, n_buses=p.grid_buses, metric=p.distance_metric,
            rng=self._rng["placement"],
        )
        self.state = self._build_parties()
        self.network = self._build_network()
        lines = LineModel.build(self.grid, default_limit_kw=p.line_limit_kw)
        # Without a finite limit anywhere the check can never bind: skip it.
        self.lines = lines if np.isfinite(lines.limit_kw).any() else None
        party_buses = self.grid.distance[:, self.state.bus]
        self._mean_distance = party_buses.mean(axis=1)[self.state.bus]
        self.weather = Weather(
            tech=self.state.tech, capacity_kw=self.state.capacity_kw,
            load_class=self.state.load_class, mean_load_kw=self.state.mean_load_kw,
            params=WeatherParams(**{k: p[k] for k in WeatherParams.__dataclass_fields__}),
            seed=self.streams["weather"], start_hour=p.start_hour,
        )
        self._matching = MATCHING_RULES[p.matching]
        self._price_rule = PRICE_RULES[p.price_rule]
        self._grid_only = p.matching in GRID_ONLY_RULES
        self._ogsc_key = ogsc_priority(self.state.tech)
        self._consequences: Consequences = bind(p.breach_policy, p)
        self._consequence_flows: Flows | None = None
        self._gated_hours = 0.0

        n_nodes = self.state.n + p.n_miners
        hp = np.ones(n_nodes)
        if p.hash_power_spread > 0:
            hp[: self.state.n] = self._rng["population"].lognormal(0.0, p.hash_power_spread,
                                                                   self.state.n)
        hp[self.state.n:] = p.miner_hash_power
        self.node_hash_power = hp
        self.node_blocks_won = np.zeros(n_nodes, np.int64)
        self.faulty = np.zeros(n_nodes, bool)
        self.faulty[self._rng["behaviour"].permutation(n_nodes)[
            : int(round(p.faulty_share * n_nodes))]] = True
        self.quorum_m = int(np.floor(p.quorum_share * n_nodes))
        self._low_credit_blocks = 0
        self.miner_balance = np.full(p.n_miners, p.initial_balance_yuan)
        self.grid_company_balance = 0.0
        self.minted_yuan = 0.0
        self.contracts = Contracts.empty()
        self.addresses = [
            hashlib.sha256(f"{self.seed}:{i}".encode()).hexdigest()[:40] for i in range(n_nodes)
        ]
        self._create_agents()
        self._build_learners()
        self._build_storage()
        self.ledger = self._open_ledger()
        self._totals = dict.fromkeys(
            ("p2p", "p2p_delivered", "tradable", "committed_sides", "breaches", "grid_purchase",
             "grid_sale", "curtailed", "line_curtailed", "q", "qp", "qp2", "user_cost",
             "dpgc_income", "grid_income", "generation", "load", "clean", "user_need",
             "breach_shortfall", "breach_consequence"), 0.0)
        self.hourly_kpis = HOURLY_KPIS + (POLICY_KPIS if self._consequences.active else ())
        for name in self.hourly_kpis:
            setattr(self, name, 0.0)
        self.hour_of_day = p.start_hour
        self._set_prices()
        self.datacollector = ColumnarDataCollector(
            model_reporters={k: k for k in self.hourly_kpis},
            agent_reporters=dict(PARTY_REPORTERS),
            every=p.agent_report_every,
        )
        self.datacollector.collect(self)

    # ------------------------------------------------------------------ construction
    def _build_parties(self) -> PartyState:
        p = self.params
        n_d, n_u = p.n_dpgc, p.n_users
        n = n_d + n_u
        rng = self._rng["population"]
        kind = np.concatenate([np.zeros(n_d, np.int8), np.ones(n_u, np.int8)])
        bus = self._place(n)

        tech = np.full(n, -1, np.int8)
        shares = np.array([p.share_solar, p.share_wind, p.share_hydro, p.share_thermal])
        tech[:n_d] = _apportion(n_d, shares, rng)
        medians = np.array([p.capacity_solar_kw, p.capacity_wind_kw, p.capacity_hydro_kw,
                            p.capacity_thermal_kw])
        capacity = np.zeros(n)
        capacity[:n_d] = medians[tech[:n_d]] * rng.lognormal(0.0, p.capacity_spread, n_d)

        load_class = np.full(n, -1, np.int8)
        lshares = np.array([p.share_residential, p.share_commercial, p.share_industrial,
                            p.share_ev])
        load_class[n_d:] = _apportion(n_u, lshares, rng)
        lmed = np.array([p.load_residential_kw, p.load_commercial_kw, p.load_industrial_kw,
                         p.load_ev_kw])
        mean_load = np.zeros(n)
        mean_load[n_d:] = lmed[load_class[n_d:]] * rng.lognormal(0.0, p.load_spread, n_u)
        n_pros = int(round(p.prosumer_share * n_u))
        pros = n_d + rng.permutation(n_u)[:n_pros]
        tech[pros] = 0  # rooftop PV
        capacity[pros] = p.prosumer_pv_ratio * mean_load[pros]

        cleanliness = np.where(tech >= 0, CLEANLINESS_Q[np.maximum(tech, 0)], 0.0)
        markup = rng.uniform(p.ask_markup_min, p.ask_markup_max, n)
        discount = rng.uniform(p.bid_discount_min, p.bid_discount_max, n)
        return PartyState(
            kind=kind, bus=bus, tech=tech, capacity_kw=capacity, cleanliness=cleanliness,
            load_class=load_class, mean_load_kw=mean_load, ask_markup=markup,
            bid_discount=discount, commitment_ratio=np.full(n, p.commitment_ratio),
            bid_volume_ratio=np.full(n, p.bid_volume_ratio),
            balance=np.full(n, p.initial_balance_yuan),
            credit=CreditState.new(n, p.credit_initial, p.credit_window),
        )

    def _place(self, n: int) -> NDArray[np.intp]:
        """Put parties on buses other than the substation, uniformly at random."""
        rng = self._rng["placement"]
        buses = np.array([i for i in range(self.grid.n_buses) if i != self.grid.root], np.intp)
        if buses.size == 0:
            buses = np.array([self.grid.root], np.intp)
        limit = self.params.max_parties_per_bus
        if limit == 0:
            return buses[rng.integers(0, buses.size, n)]
        if n > limit * buses.size:
            raise ConfigError(
                f"n_dpgc + n_users = {n}: the grid's {buses.size} load buses hold at most "
                f"{limit * buses.size} parties at max_parties_per_bus = {limit}"
            )
        slots = np.repeat(buses, limit)
        return slots[rng.permutation(slots.size)[:n]]

    def _build_network(self) -> MarketNetwork:
        p = self.params
        d = self.grid.distance
        w = wheeling_tariff(p.wheeling, d, p.wheeling_base_yuan_per_kwh,
                            p.wheeling_rate_yuan_per_kwh_ohm)
        # CMA weighs electrical distance, so its queues are per bus; price-time's only
        # separate buses whose wheeling or reachability differ.
        cma = p.matching in ("cma", "cma_strict")
        weights = CMAWeights(p.cma_w_credit, p.cma_w_distance, p.cma_w_price, p.cma_w_green,
                             p.cma_distance_ref_ohm, p.cma_price_ref_yuan, p.cma_rounds,
                             p.cma_strict_credit)
        return MarketNetwork.build(w, d <= p.max_distance_ohm, distance=d if cma else None,
                                   cma=weights)

    def _build_learners(self) -> None:
        """Action grids and starting propensities (MODEL.md section 8)."""
        p, s = self.params, self.state
        n = s.n
        ratios = np.linspace(p.commit_min, p.commit_max, p.commit_levels)
        self.opportunist = np.zeros(n, bool)
        self.opportunist[self._rng["behaviour"].permutation(n)[
            : int(round(p.opportunist_share * n))]] = True
        self._learn = LEARNING_RULES[p.learning]
        self._learn_kw = {"recency": p.roth_erev_recency,
                          "experimentation": p.roth_erev_experimentation,
                          "epsilon": p.egreedy_epsilon}
        learners = []
        for lo, hi, start_level, base in (
            (p.ask_markup_min, p.ask_markup_max, s.ask_markup, p.commitment_ratio),
            (p.bid_discount_min, p.bid_discount_max, s.bid_discount, p.bid_volume_ratio),
        ):
            grid = ActionGrid.build(ratios, np.linspace(lo, hi, p.price_levels))
            start = grid.nearest(base, start_level)
            greedy = grid.nearest(p.commit_max, start_level)
            start[self.opportunist] = greedy[self.opportunist]
            learners.append(Learner.new(n, grid, start))
        self.sell_learner, self.buy_learner = learners
        if p.learning == "static":
            s.commitment_ratio[self.opportunist] = p.commit_max
            s.bid_volume_ratio[self.opportunist] = p.commit_max

    def _open_ledger(self) -> Ledger | None:
        """The run's chains, with a genesis block on each (MODEL.md section 7)."""
        p = self.params
        if p.ledger_detail == "off":
            return None
        meta = {"package": "dipi_abm", "version": package_version(), "seed": str(self.seed),
                "params": json.dumps({k: v for k, v in p.to_dict().items() if k != "ledger"},
                                     default=str, sort_keys=True)}
        ledger = Ledger(p.ledger or None, detail=p.ledger_detail, meta=meta)
        with ledger.period():
            for chain, records in genesis_records(self).items():
                ledger.append(chain, 0, records, producer="genesis")
        return ledger

    def verify_ledger(self) -> VerifyReport | None:
        """Recompute every hash and Merkle root of the run's chains (None: ledger off)."""
        return None if self.ledger is None else self.ledger.verify()

    def close(self) -> None:
        """Close the ledger file (a finished run's file is then a single SQLite file)."""
        if self.ledger is not None:
            self.ledger.close()

    def _create_agents(self) -> None:
        n_d = self.params.n_dpgc
        self.parties: list[Party] = [
            (DPGC if i < n_d else User)(self, i) for i in range(self.state.n)
        ]
        self.grid_company = GridCompany(self)
        self.miners = [Miner(self, i, self.parties[i]) for i in range(self.state.n)]
        self.miners += [Miner(self, self.state.n + j, None) for j in range(self.params.n_miners)]
        self.party_ids = np.array([a.unique_id for a in self.parties], np.int64)
        self.node_ids = np.array([m.unique_id for m in self.miners], np.int64)

    # ------------------------------------------------------------------ the hour
    def step(self) -> None:
        """One hour: the phases of MODEL.md section 4, in order."""
        self._set_prices()
        draw = self.weather.step()
        book = self._post_orders(draw.gen_forecast_kw, draw.load_forecast_kw)
        self.contracts = self._match(book)
        self._check_quorum()
        self._check_executability()
        self._deliver_and_settle(draw.gen_actual_kw, draw.load_actual_kw)
        self._apply_breach_consequences()
        self._update_credit()
        self._produce_block(period_records(self) if self.ledger is not None else None)
        self._learn_from_hour(*self._actual_positions)
        self._report()
        self.running = self.steps < self.params.hours
        self.datacollector.collect(self)

    def run(self, hours: int | None = None, progress: Any = None) -> DIPIModel:
        """Advance ``hours`` hours (default: the ``hours`` parameter).

        ``progress`` is an optional callable invoked after every hour (a tqdm
        bar's ``update``, say).
        """
        n = self.params.hours if hours is None else int(hours)
        if n < 0:
            raise ConfigError(f"hours = {n}: must be an integer >= 0")
        for _ in range(n):
            self.step()
            if progress is not None:
                progress(1)
        return self

    def _set_prices(self) -> None:
        """Schedule (DU1): the grid company publishes this hour's prices."""
        p = self.params
        self.hour_of_day = (p.start_hour + self.steps) % 24
        self.retail_price = TARIFFS[p.tariff](self.hour_of_day, p.retail_yuan_per_kwh,
                                              p.tou_peak_yuan_per_kwh,
                                              p.tou_valley_yuan_per_kwh)
        self.feed_in_price = p.feed_in_yuan_per_kwh

    def _post_orders(self, gen_f: NDArray, load_f: NDArray) -> OrderBook:
        """Orders (JY1): sellers offer forecast surplus, buyers bid forecast need."""
        s = self.state
        r, f = self.retail_price, self.feed_in_price
        net = load_f - gen_f
        sell = np.flatnonzero(net < -1e-9)
        buy = np.flatnonzero(net > 1e-9)
        s.role[:] = 0
        s.role[sell] = SELLER
        s.role[buy] = BUYER
        self._forecast_net = net
        self._choose_actions(sell, buy)
        s.offered_kwh[:] = 0.0
        s.offered_kwh[sell] = -net[sell] * s.commitment_ratio[sell]
        s.offered_kwh[buy] = net[buy] * s.bid_volume_ratio[buy]
        if self._consequences.caps_volume and not self._grid_only:
            # breach_policy hooks before matching: credit gate, deposit affordability.
            cap = self._consequences.volume_cap(
                Positions(credit=s.credit.credit, balance=s.balance, forecast_kwh=np.abs(net)))
            np.minimum(s.offered_kwh, cap, out=s.offered_kwh)
        time = self._rng["matching"].permutation(sell.size + buy.size)
        return OrderBook(
            seller_party=sell, seller_bus=s.bus[sell], seller_volume=s.offered_kwh[sell],
            seller_price=f + s.ask_markup[sell] * (r - f), seller_time=time[: sell.size],
            buyer_party=buy, buyer_bus=s.bus[buy], buyer_volume=s.offered_kwh[buy],
            buyer_price=r - s.bid_discount[buy] * (r - f), buyer_time=time[sell.size:],
            seller_credit=s.credit.credit[sell], buyer_credit=s.credit.credit[buy],
            seller_cleanliness=s.cleanliness[sell],
        )

    def _choose_actions(self, sell: NDArray[np.intp], buy: NDArray[np.intp]) -> None:
        """Each party picks this hour's commitment and price from its learner."""
        choose = self._learn[0]
        s, rng = self.state, self._rng["behaviour"]
        for lr, idx, ratio, level in (
            (self.sell_learner, sell, s.commitment_ratio, s.ask_markup),
            (self.buy_learner, buy, s.bid_volume_ratio, s.bid_discount),
        ):
            lr.chosen[:] = -1
            if idx.size == 0:
                continue
            a = choose(lr, idx, rng, **self._learn_kw)
            if a.size and a[0] >= 0:
                lr.chosen[idx] = a
                ratio[idx] = lr.actions.volume_ratio[a]
                level[idx] = lr.actions.price_level[a]

    def _learn_from_hour(self, surplus: NDArray, need: NDArray) -> None:
        """Pay each acting party its hour's gain over the grid-only alternative, per kWh."""
        s, p = self.state, self.params
        gain = self._party_transfer - (surplus * self.feed_in_price - need * self.retail_price)
        winner = self.block_winner
        if winner < s.n:
            gain = gain.copy()
            gain[winner] += p.block_reward_yuan
        reward = gain / np.maximum(np.abs(self._forecast_net), 1.0)
        update = self._learn[1]
        for lr in (self.sell_learner, self.buy_learner):
            idx = np.flatnonzero(lr.chosen >= 0)
            if idx.size:
                update(lr, idx, reward[idx], **self._learn_kw)

    def _match(self, book: OrderBook) -> Contracts:
        self._book = book
        return self._matching(book, self.network)

    def _check_quorum(self) -> None:
        """[DIPI] 4.2 step 5: the matching result stands only if a quorum reports it."""
        q = matching_quorum(self.faulty.size, self.faulty, self.quorum_m,
                            collude=self.params.faulty_collude)
        self._quorum = q
        if not q.committed and self.contracts.size:
            # No agreed TradeResult: no contract executes; parties settle with the grid.
            self.contracts = Contracts.empty()

    def _check_executability(self) -> None:
        """DU1: curtail matched trades whose line flows would exceed a thermal limit."""
        c = self.contracts
        self._line_curtailed = 0.0
        if self.lines is None or c.size == 0:
            return
        bus = self.state.bus
        ok = self.lines.curtail(bus[c.seller], bus[c.buyer], c.volume)
        self._line_curtailed = float((c.volume - ok).sum())
        if self._line_curtailed > 0:
            keep = ok > 1e-9
            self.contracts = Contracts(c.buyer[keep], c.seller[keep], ok[keep], c.ask[keep],
                                       c.bid[keep], c.wheeling[keep], rounds=c.rounds)

    def _build_storage(self) -> None:
        """Batteries for a share of the DPGCs (MODEL.md section 1, optional storage)."""
        p, s = self.params, self.state
        self.storage_kwh = np.zeros(s.n)
        self.storage_kw = np.zeros(s.n)
        n_with = int(round(p.storage_share * p.n_dpgc))
        owners = self._rng["storage"].permutation(p.n_dpgc)[:n_with]
        self.storage_kwh[owners] = p.storage_hours * p.storage_power_ratio * s.capacity_kw[owners]
        self.storage_kw[owners] = p.storage_power_ratio * s.capacity_kw[owners]
        self.soc_kwh = 0.5 * self.storage_kwh
        self._storage_eff = float(np.sqrt(p.storage_efficiency))  # per direction
        self.batteries = [Storage(self, self.parties[i]) for i in np.sort(owners)]

    def _use_storage(self, surplus: NDArray, committed: NDArray) -> NDArray:
        """A DPGC with a battery firms up its commitment: it discharges to cover a
        shortfall against what it agreed, and charges with what it produced beyond it
        (instead of selling that at F). Returns the surplus it can deliver."""
        self._storage_flow = (0.0, 0.0)
        if not self.storage_kw.any():
            return surplus
        eta = self._storage_eff
        discharge = np.minimum.reduce([np.maximum(committed - surplus, 0.0), self.storage_kw,
                                       self.soc_kwh * eta])
        charge = np.minimum.reduce([np.maximum(surplus - committed, 0.0), self.storage_kw,
                                    (self.storage_kwh - self.soc_kwh) / eta])
        self.soc_kwh = np.clip(self.soc_kwh + charge * eta - discharge / eta, 0.0,
                               self.storage_kwh)
        self._storage_flow = (float(charge.sum()), float(discharge.sum()))
        return surplus + discharge - charge

    def _deliver_and_settle(self, gen: NDArray, load: NDArray) -> None:
        """Delivery and settlement (MODEL.md sections 4-5): contracts, then PPSC and OGSC."""
        s, c, n = self.state, self.contracts, self.state.n
        r, f = self.retail_price, self.feed_in_price
        surplus = np.maximum(gen - load, 0.0)
        need = np.maximum(load - gen, 0.0)
        self._actual_positions = (surplus, need)
        price = self._price_rule(c.ask, c.bid, c.wheeling)
        self._contract_price = price
        if self._grid_only:
            # Everything offered is "committed" to the grid company: breaches are still
            # measured against it, but settle at F and R with no contract.
            committed = s.offered_kwh.copy()
        else:
            committed = _per_party(c.seller, c.volume, n) + _per_party(c.buyer, c.volume, n)
        is_seller = s.role == SELLER
        surplus = self._use_storage(surplus, np.where(is_seller, committed, 0.0))
        actual_side = np.where(is_seller, surplus, need)
        counted = np.minimum(actual_side, committed)

        g = attribute_pro_rata(surplus, committed, c.seller, c.volume)
        b = attribute_pro_rata(need, committed, c.buyer, c.volume)
        st = settle(price, c.volume, c.wheeling, b, g, r, f)
        self._settlement = st
        self._attributed = (b, g)

        # Outside contracts: unmatched or extra need is bought at retail (PPSC), surplus is
        # offered to the grid company at feed-in, cleaner sources first (OGSC).
        if self._grid_only:
            extra_need, extra_surplus = need, surplus
        else:
            extra_need = need - np.where(~is_seller, counted, 0.0)
            extra_surplus = surplus - np.where(is_seller, counted, 0.0)
        taken = grid_intake(extra_surplus, self._ogsc_key, self.params.grid_intake_limit_kw)

        party_in = _per_party(c.seller, st.seller_income, n) - _per_party(c.buyer,
                                                                          st.buyer_pays, n)
        party_in += taken * f - extra_need * r
        s.balance += party_in
        self._party_transfer = party_in
        grid_in = float(st.grid_income.sum() + extra_need.sum() * r - taken.sum() * f)
        self.grid_company_balance += grid_in

        s.committed_kwh = committed
        s.delivered_kwh = np.where(committed > 0, counted, 0.0)
        tol = self.params.breach_tolerance
        s.breach = (committed > 0) & (counted < (1.0 - tol) * committed)

        dpgc = s.kind == DPGC_KIND
        user = ~dpgc
        k = self._kpi = {}
        k["generation_kwh"] = float(gen.sum())
        k["load_kwh"] = float(load.sum())
        k["offered_kwh"] = float(s.offered_kwh[is_seller].sum())
        k["demanded_kwh"] = float(s.offered_kwh[s.role == BUYER].sum())
        k["p2p_volume_kwh"] = float(c.volume.sum())
        k["p2p_delivered_kwh"] = float(st.direct.sum())
        k["n_contracts"] = c.size
        k["grid_purchase_kwh"] = float(st.shortfall.sum() + extra_need.sum())
        k["grid_sale_kwh"] = float(st.surplus.sum() + taken.sum())
        k["curtailed_kwh"] = float((extra_surplus - taken).sum())
        k["line_curtailed_kwh"] = self._line_curtailed
        k["storage_charge_kwh"], k["storage_discharge_kwh"] = self._storage_flow
        shortfall = np.where(s.breach, committed - counted, 0.0)
        has = committed > 0
        for label, mask in (("", slice(None)), ("_dpgc", dpgc), ("_user", user)):
            nb = int(s.breach[mask].sum())
            ncom = int(has[mask].sum())
            if label:
                k[f"breaches{label}"] = nb
            else:
                k["breaches"] = nb
                k["committed_parties"] = ncom
            k[f"breach_rate{label}"] = nb / ncom if ncom else 0.0
            k[f"breach_shortfall{label}_kwh"] = float(shortfall[mask].sum())
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
        k["user_cost_yuan"] = float(-party_in[user].sum())
        k["dpgc_income_yuan"] = float(party_in[dpgc].sum())
        k["grid_income_yuan"] = grid_in
        clean_seller = (s.tech[c.seller] >= 0) & (s.tech[c.seller] != 3)
        user_need = float(need[user].sum())
        clean = float(st.direct[clean_seller & (s.kind[c.buyer] == USER_KIND)].sum())
        k["clean_share"] = clean / user_need if user_need > 0 else float("nan")

        t = self._totals
        t["p2p"] += qs
        t["p2p_delivered"] += k["p2p_delivered_kwh"]
        t["tradable"] += tradable
        t["committed_sides"] += k["committed_parties"]
        t["breaches"] += k["breaches"]
        t["breach_shortfall"] += k["breach_shortfall_kwh"]
        t["grid_purchase"] += k["grid_purchase_kwh"]
        t["grid_sale"] += k["grid_sale_kwh"]
        t["curtailed"] += k["curtailed_kwh"]
        t["line_curtailed"] += k["line_curtailed_kwh"]
        t["q"] += qs
        t["qp"] += float((q * price).sum())
        t["qp2"] += float((q * price * price).sum())
        t["user_cost"] += k["user_cost_yuan"]
        t["dpgc_income"] += k["dpgc_income_yuan"]
        t["grid_income"] += grid_in
        t["generation"] += k["generation_kwh"]
        t["load"] += k["load_kwh"]
        t["clean"] += clean
        t["user_need"] += user_need
        self._contract_counts = (np.bincount(c.seller, minlength=n)
                                 + np.bincount(c.buyer, minlength=n))
        self._counted = counted

    def _apply_breach_consequences(self) -> None:
        """Consequence phase (MODEL.md section 6b): the breach_policy's money flows after
        settlement, into balances, the hour's transfers (so learning feels them), the
        grid company's account, the KPIs and the JY1 records."""
        cons = self._consequences
        if not cons.active:
            return
        s, c, k, t = self.state, self.contracts, self._kpi, self._totals
        k["gated_share"] = float(cons.gated(s.credit.credit).mean()) if cons.gates else 0.0
        self._gated_hours += k["gated_share"]
        k["breach_consequence_yuan"] = 0.0
        if not cons.moves_money:
            return
        b, g = self._attributed
        flows = cons.transfers(Hour(
            buyer=c.buyer, seller=c.seller, volume=c.volume, price=self._contract_price,
            wheeling=c.wheeling, consumed=b, generated=g, credit=s.credit.credit, tech=s.tech,
            retail=self.retail_price, feed_in=self.feed_in_price,
            breach_tolerance=self.params.breach_tolerance))
        self._consequence_flows = flows
        party = flows.party_net(s.n)
        grid = flows.grid_net()
        s.balance += party
        self._party_transfer = self._party_transfer + party
        self.grid_company_balance += grid
        dpgc = s.kind == DPGC_KIND
        moved = float(flows.yuan.sum())
        k["breach_consequence_yuan"] = moved
        for name, value in (("user_cost", -float(party[~dpgc].sum())),
                            ("dpgc_income", float(party[dpgc].sum())), ("grid_income", grid)):
            k[f"{name}_yuan"] += value
            t[name] += value
        t["breach_consequence"] += moved

    def _update_credit(self) -> None:
        """Credit (LH1): score each committed party and update its credit (MODEL.md section 6)."""
        self._credit_updated = np.zeros(0, np.intp)
        if self._grid_only or self.params.credit_frozen:
            return
        s, p = self.state, self.params
        idx = np.flatnonzero(s.committed_kwh > 0)
        if idx.size == 0:
            return
        self._credit_updated = idx
        sellers = s.role[idx] == SELLER
        score = np.where(
            sellers,
            seller_score(self._counted[idx], s.committed_kwh[idx], p.natural_factor),
            buyer_score(self._counted[idx], s.committed_kwh[idx]),
        )
        s.score[:] = np.nan
        s.score[idx] = score
        k = self._contract_counts[idx] if p.credit_count == "contract" else np.ones(idx.size,
                                                                                   np.int64)
        update_credit(p.credit_rule, s.credit, idx, score, k, alpha=p.credit_ema_alpha)

    def _produce_block(self, records: dict | None) -> None:
        """Consensus: find the period's block producer; it takes the block reward; the
        period's blocks are appended to the three chains."""
        p, s = self.params, self.state
        credit = np.concatenate([s.credit.credit, np.zeros(p.n_miners)])
        stake = np.concatenate([s.balance, self.miner_balance])
        distance = cleanliness = None
        if p.consensus == "der_cbc":
            distance, cleanliness = self._node_distance_and_cleanliness()
        nodes = Nodes(hash_power=self.node_hash_power, credit=credit, stake=stake,
                      distance=distance, cleanliness=cleanliness)
        hashes = 0
        prepared = prepare_period(self.ledger, records) if records is not None else None
        seed_hex = self._block_seed(prepared)
        if p.consensus == "poca" and p.poca_mode == "hashed":
            race = hashed_race(seed_hex, self.addresses, self.node_hash_power,
                               poca_targets(credit, p.poca_difficulty_bits, p.poca_tau))
            if not race.verified:  # the other nodes reject it; cannot happen with honest hashing
                raise RuntimeError("hashed POCA: the winner's nonce failed verification")
            winner, hashes = race.winner, race.hashes
            self.block_nonce, self.block_target = race.nonce, race.target
        else:
            winner = draw_producer(p.consensus, nodes, self._rng["consensus"], tau=p.poca_tau,
                                   distance_scale=p.der_cbc_distance_scale_ohm,
                                   q_exponent=p.der_cbc_q_exponent)
            self.block_nonce, self.block_target = 0, 0
        self.block_winner = winner
        if records is not None:
            write_period(self.ledger, self.steps, records, prepared, self.addresses[winner],
                         self.block_nonce, self.block_target)
        self.node_blocks_won[winner] += 1
        if winner < s.n:
            s.balance[winner] += p.block_reward_yuan
        else:
            self.miner_balance[winner - s.n] += p.block_reward_yuan
        self.minted_yuan += p.block_reward_yuan
        self._low_credit_blocks += int(credit[winner] < p.credit_threshold)
        won = self.node_blocks_won
        k = self._kpi
        k["block_producer"] = int(self.node_ids[winner])
        k["producer_credit"] = float(credit[winner])
        k["producer_is_standalone"] = int(winner >= s.n)
        k["block_hashes"] = hashes
        k["blocks_gini"] = gini(won)
        k["blocks_nakamoto"] = nakamoto(won[won > 0])
        k["low_credit_block_share"] = self._low_credit_blocks / max(int(won.sum()), 1)
        k["win_credit_corr"] = win_credit_correlation(won, credit)
        k["quorum_committed"] = int(self._quorum.committed)
        k["quorum_conflict"] = int(self._quorum.conflict)

    def _block_seed(self, prepared: dict | None) -> str:
        """W in [DIPI] eq. 10: the Merkle root of the period's LH1 block, which commits
        to the credit updates and to the period's DU1 and JY1 roots. (Without a ledger,
        a hash of the run's seed and the hour.) The producer's address enters the hash
        next to W, so every node searches its own space."""
        if prepared is None:
            return hashlib.sha256(f"{self.seed}:{self.steps}".encode()).hexdigest()
        return prepared["LH1"].root

    def _node_distance_and_cleanliness(self) -> tuple[NDArray, NDArray]:
        """der_cbc inputs per node: volume-weighted electrical distance to this hour's
        counterparties (else the mean distance to all parties) and the cleanliness
        of the node's energy (its own generator's Q, or for a pure consumer the Q of
        what it bought; 0.3, thermal, with neither). Stand-alone miners have no energy."""
        s, c, n = self.state, self.contracts, self.state.n
        d_pair = self.grid.distance[s.bus[c.buyer], s.bus[c.seller]]
        bought = _per_party(c.buyer, c.volume, n)
        vol = bought + _per_party(c.seller, c.volume, n)
        dsum = _per_party(c.buyer, c.volume * d_pair, n) + _per_party(c.seller,
                                                                      c.volume * d_pair, n)
        dist = np.where(vol > 0, dsum / np.where(vol > 0, vol, 1.0), self._mean_distance)
        qbought = _per_party(c.buyer, c.volume * s.cleanliness[c.seller], n)
        q_bought = np.where(bought > 0, qbought / np.where(bought > 0, bought, 1.0),
                            CLEANLINESS_Q[3])
        q = np.where(s.tech >= 0, s.cleanliness, q_bought)
        m = self.params.n_miners
        far = float(self.grid.distance.max()) if self.grid.distance.size else 0.0
        return np.concatenate([dist, np.full(m, far)]), np.concatenate([q, np.zeros(m)])

    def _report(self) -> None:
        s = self.state
        k = self._kpi
        k["hour_of_day"] = self.hour_of_day
        k["retail_price"] = self.retail_price
        k["feed_in_price"] = self.feed_in_price
        k["matching_rounds"] = self.contracts.rounds
        for label, kind in (("dpgc", DPGC_KIND), ("user", USER_KIND)):
            c = s.credit.credit[s.kind == kind]
            k[f"mean_credit_{label}"] = float(c.mean()) if c.size else float("nan")
            k[f"std_credit_{label}"] = float(c.std()) if c.size else float("nan")
        for name, value in k.items():
            setattr(self, name, value)

    # ------------------------------------------------------------------ results
    def summary(self) -> dict[str, Any]:
        """Every parameter of the run and its summary KPIs (JSON-ready)."""
        t, s = self._totals, self.state
        q = t["q"]
        mean = t["qp"] / q if q > 0 else float("nan")
        price_std = float(np.sqrt(max(t["qp2"] / q - mean * mean, 0.0))) if q > 0 else float("nan")
        params = self.params.to_dict()
        params["seed"] = self.seed
        dpgc = s.kind == DPGC_KIND
        policy = {}
        if self._consequences.active:
            policy = {"breach_consequence_yuan": t["breach_consequence"],
                      "gated_share": self._gated_hours / max(int(self.steps), 1)}
        return {
            "package": "dipi_abm",
            "version": package_version(),
            "hours": int(self.steps),
            "seed": self.seed,
            "params": params,
            "n_parties": s.n,
            "n_buses": self.grid.n_buses,
            "breach_rate": t["breaches"] / t["committed_sides"] if t["committed_sides"] else 0.0,
            "breaches": int(t["breaches"]),
            "breach_shortfall_kwh": t["breach_shortfall"],
            "p2p_volume_kwh": t["p2p"],
            "p2p_delivered_kwh": t["p2p_delivered"],
            "grid_purchase_kwh": t["grid_purchase"],
            "grid_sale_kwh": t["grid_sale"],
            "curtailed_kwh": t["curtailed"],
            "line_curtailed_kwh": t["line_curtailed"],
            "generation_kwh": t["generation"],
            "load_kwh": t["load"],
            "mean_credit_dpgc": float(s.credit.credit[dpgc].mean()),
            "mean_credit_user": float(s.credit.credit[~dpgc].mean()),
            "transaction_efficiency": t["p2p"] / t["tradable"] if t["tradable"] > 0 else 0.0,
            "price_mean": mean,
            "price_std": price_std,
            "user_cost_yuan": t["user_cost"],
            "dpgc_income_yuan": t["dpgc_income"],
            "grid_income_yuan": t["grid_income"],
            "clean_share": t["clean"] / t["user_need"] if t["user_need"] > 0 else 0.0,
            "blocks": int(self.node_blocks_won.sum()),
            **self._block_summary(),
            "minted_yuan": self.minted_yuan,
            **policy,
        }

    def _block_summary(self) -> dict[str, Any]:
        won = self.node_blocks_won
        s, m = self.state, self.params.n_miners
        credit = np.concatenate([s.credit.credit, np.zeros(m)])
        top = np.argsort(-won, kind="stable")[:10]
        standalone = int(won[s.n:].sum())
        total = max(int(won.sum()), 1)
        return {
            "producers": int((won > 0).sum()),
            "blocks_gini": gini(won),
            "blocks_nakamoto": nakamoto(won[won > 0]),
            "low_credit_block_share": self._low_credit_blocks / total,
            "win_credit_corr": win_credit_correlation(won, credit),
            "standalone_block_share": standalone / total,
            "top_producers": [
                {"agent_id": int(self.node_ids[i]), "blocks": int(won[i]),
                 "credit": float(credit[i]), "standalone": bool(i >= s.n)}
                for i in top if won[i] > 0
            ],
            "quorum_m": self.quorum_m,
            "faulty_nodes": int(self.faulty.sum()),
        }

    def hourly_dataframe(self):  # noqa: ANN201 - pandas is optional at import time
        """One row per simulated hour with the KPIs of MODEL.md section 9."""
        df = self.datacollector.get_model_vars_dataframe().iloc[1:].copy()
        df.insert(0, "hour", np.arange(1, len(df) + 1))
        return df.reset_index(drop=True)

    def agents_dataframe(self):  # noqa: ANN201
        """Per party and reported hour: credit, balance, volumes, breach flag."""
        return self.datacollector.get_agent_vars_dataframe().reset_index()


def _per_party(rows: NDArray[np.intp], weights: NDArray, n: int) -> NDArray[np.float64]:
    """Sum contract quantities per party row (float even when there are no contracts)."""
    return np.bincount(rows, weights, n).astype(np.float64, copy=False)


def _apportion(n: int, shares: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.int8]:
    """Assign n items to categories in proportion to shares (largest remainder), shuffled."""
    exact = shares * n
    counts = np.floor(exact).astype(int)
    rest = n - counts.sum()
    if rest > 0:
        counts[np.argsort(-(exact - counts), kind="stable")[:rest]] += 1
    labels = np.repeat(np.arange(shares.size, dtype=np.int8), counts)
    return rng.permutation(labels)
