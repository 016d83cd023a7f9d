"""DIPIModel: the hourly P2P energy market under a blockchain credit mechanism.

One step is one hour and runs the phases of docs/model.md section 4 in order; each
phase returns a small immutable result (:mod:`dipi_abm.hour`) that the next
phases take: schedule (DU1), forecast and orders, matching (JY1), delivery,
settlement, credit (LH1), consensus, learning. The parties and the miner
nodes are vectorised sets over their columns (:mod:`dipi_abm.parties`,
:mod:`dipi_abm.mining`) with Mesa agents as thin views; every rule is a
registry entry chosen by name and bound once, here, when the model is built.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import mesa
import networkx as nx
import numpy as np
from numpy.typing import NDArray

from . import config as cfg
from .agents import DPGC, GridCompany, Miner, Party, Storage, User
from .errors import ConfigError
from .hour import (
    BUYER,
    DPGC_KIND,
    HOURLY_KPIS,
    KPIS,
    SELLER,
    USER_KIND,
    Block,
    ChainStats,
    CreditUpdate,
    HourRecord,
    Roster,
)
from .ledger.keys import KeyRing
from .ledger.records import open_run_ledger, period_records
from .ledger.store import Ledger, VerifyReport
from .ledger.verify import verify_open
from .market import Market, apply_consequences
from .mining import MinerSet
from .parties import Batteries, PartySet, per_party
from .physics.flows import LineModel
from .physics.grid import Grid, build_grid, wheeling_tariff
from .physics.profiles import Profiles
from .physics.siting import site_parties
from .physics.weather import SOLAR, TECHNOLOGIES, THERMAL, Weather, WeatherParams, load_shape
from .results.collect import PartyLog, party_dataframe
from .rules.consensus import gini, nakamoto, win_credit_correlation
from .rules.consequences import Positions
from .rules.consequences import bind as bind_consequences
from .rules.credit import CREDIT_RULES, CREDIT_SCORES, CreditState
from .rules.economy import ECONOMY_KPIS, Books, Costs, economy_of_hour, party_type
from .rules.learning import LEARNING_RULES
from .rules.matching import MATCHING_RULES, PRICE_RULES, CMAWeights, Contracts, MarketNetwork
from .rules.tariffs import CLEANLINESS_Q, ogsc_priority

__all__ = ["DIPIModel", "HOURLY_KPIS", "DPGC_KIND", "USER_KIND", "SELLER", "BUYER",
           "package_version"]

#: Streams spawned from the run's SeedSequence, in this fixed order.
STREAMS = ("placement", "population", "weather", "matching", "consensus", "behaviour",
           "storage")


def package_version() -> str:
    try:
        return version("dipi-abm")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def _view(owner: str, name: str) -> property:
    """A read-only model attribute that is ``self.<owner>.<name>``."""
    return property(lambda self: getattr(getattr(self, owner), name))


class DIPIModel(mesa.Model):
    """Hourly P2P distributed-energy market with credit and credit-weighted consensus.

    ``DIPIModel(seed=..., **params)`` takes any key of :data:`dipi_abm.config.PARAMS`
    (invalid values raise :class:`~dipi_abm.errors.ConfigError`, a ``ValueError``);
    ``DIPIModel(params=cfg.validate(...))`` takes an already validated set (what the
    CLI, the sweeps and the dashboard hand over). ``grid`` may also be a
    ``networkx.Graph``. ``step()`` advances one hour;
    ``run()`` runs up to ``hours`` hours; ``datacollector`` (Mesa's) holds the hourly
    KPIs, ``party_log`` the per-party records; ``record`` is the last hour's
    :class:`~dipi_abm.hour.HourRecord`.
    """

    def __init__(self, rng: int | None = None, *, params: cfg.Params | None = None,
                 **values: Any) -> None:
        # ``seed`` stays a scenario key in ``values``, not a named argument: Mesa >= 3.4's
        # batch_run passes its own ``rng`` values (None by default) to a model whose
        # signature names ``seed``, overwriting the seeds of ``parameters``.
        if rng is not None:
            if values.get("seed") is not None:
                raise ConfigError(f"rng = {rng!r} and seed = {values['seed']!r}: give one")
            values["seed"] = rng
        graph = values.pop("grid", None)
        if isinstance(graph, nx.Graph):
            values["grid"] = "graph"
        elif graph is not None:
            values["grid"] = graph
        if params is None:
            params = cfg.validate(values)
        elif values:
            raise ConfigError(f"DIPIModel: pass keys ({', '.join(values)}) or params=, not both")
        self.params = p = params
        grid_source: Any = graph if isinstance(graph, nx.Graph) else p.grid
        ss = np.random.SeedSequence(p.seed)
        self.seed = int(ss.entropy)  # type: ignore[arg-type]
        super().__init__(rng=self.seed)
        self.hour = 0  # periods simulated (the model's own clock; Mesa's counter varies)
        self.streams = dict(zip(STREAMS, ss.spawn(len(STREAMS)), strict=True))
        self.rngs = {name: np.random.default_rng(s) for name, s in self.streams.items()}
        self.running = True

        # The world: grid, parties, weather.
        self.grid: Grid = build_grid(grid_source, n_buses=p.grid_buses, metric=p.distance_metric,
                                     rng=self.rngs["placement"],
                                     memory_limit_bytes=cfg.memory_limit_bytes(p.memory_limit_gb))
        self.line_model = LineModel.build(self.grid, default_limit_kw=p.line_limit_kw)
        self.state = self._build_parties()
        self._gen_rows = np.flatnonzero(self.state.tech >= 0)
        self.network = self._build_network()
        # Without a finite limit anywhere the check can never bind: skip it.
        self.lines = self.line_model if np.isfinite(self.line_model.limit_kw).any() else None
        self.peak_line_loading_max = 0.0
        party_buses = self.grid.distance[:, self.state.bus]
        self._mean_distance = party_buses.mean(axis=1)[self.state.bus]
        self.profiles = (Profiles.read(p.profiles, p.start_hour, p.hours) if p.profiles
                         else None)
        self.generation_by_tech = np.zeros(len(TECHNOLOGIES))
        self.weather = Weather(
            tech=self.state.tech, capacity_kw=self.state.capacity_kw,
            load_class=self.state.load_class, mean_load_kw=self.state.mean_load_kw,
            params=WeatherParams(**{k: p[k] for k in WeatherParams.__dataclass_fields__}),
            seed=self.streams["weather"], start_hour=p.start_hour,
        )

        # The nodes: every party's own miner node, then the stand-alone miners.
        n_nodes = self.state.n + p.n_miners
        hp = np.ones(n_nodes)
        if p.hash_power_spread > 0:
            hp[: self.state.n] = self.rngs["population"].lognormal(0.0, p.hash_power_spread,
                                                                   self.state.n)
        hp[self.state.n:] = p.miner_hash_power
        faulty = np.zeros(n_nodes, bool)
        faulty[self.rngs["behaviour"].permutation(n_nodes)[
            : int(round(p.faulty_share * n_nodes))]] = True
        self.addresses = [
            hashlib.sha256(f"{self.seed}:{i}".encode()).hexdigest()[:40] for i in range(n_nodes)
        ]
        self.miners_set = MinerSet(hp, faulty, np.full(p.n_miners, p.initial_balance_yuan),
                                   self.addresses, p)
        self.quorum_m = int(np.floor(p.quorum_share * n_nodes))

        # The rules of the run, each bound once.
        matching = MATCHING_RULES[p.matching]
        self.market = Market(match=matching.bind(p), price=PRICE_RULES[p.price_rule],
                             network=self.network, lines=self.lines, bus=self.state.bus,
                             faulty=faulty, quorum_m=self.quorum_m, collude=p.faulty_collude,
                             grid_only=matching.has("grid_only"),
                             ogsc_priority=ogsc_priority(self.state.tech),
                             intake_limit_kw=p.grid_intake_limit_kw)
        self._credit_update = CREDIT_RULES[p.credit_rule].bind(p)
        self._credit_score = CREDIT_SCORES[p.credit_score].bind(p)
        self._credit_live = not (self.market.grid_only or p.credit_frozen)
        learning = LEARNING_RULES[p.learning]
        self._choose, self._learn = learning.bind(p)()
        self.consequences = bind_consequences(p.breach_policy, p)
        direct = not self.market.grid_only  # consequences bite on contracts: none if grid-only
        self._moves_money = direct and self.consequences.moves_money
        self._volume_cap = self._consequence_cap if direct and self.consequences.caps_volume \
            else None

        self.grid_company_balance = 0.0
        self.endowed_yuan = 0.0  # users' budgets paid in from outside (docs/model.md, Accounts)
        self.contracts = Contracts.empty()
        self._create_agents()
        self.state.init_learning(p, self.rngs["behaviour"], static=not learning.has("adaptive"))
        self.batteries, owners = Batteries.build(self.state, p, self.rngs["storage"])
        self.storage_agents = [Storage(self, self.parties[i]) for i in owners]
        self.ledger, self.node_keys = self._open_ledger()
        #: The run's KPIs (hour.KPIS; a breach policy's only when one is in force), the
        #: DataCollector's columns and the run totals of those that add up.
        self.kpi_table = tuple(k for k in KPIS if not k.policy or self.consequences.active)
        self.hourly_kpis = tuple(k.name for k in self.kpi_table if k.hourly)
        self.totals = {k.name: 0.0 for k in self.kpi_table if k.total}
        self.record: HourRecord | None = None
        s = self.state
        self.costs = Costs.build(p, s.tech, s.capacity_kw, s.kind, s.mean_load_kw)
        self.party_type = party_type(s.kind, s.tech, s.load_class)
        self.books = Books(self.party_type, s.opportunist)
        for name in self.hourly_kpis:
            setattr(self, name, 0.0)
        schedule = self.grid_company.publish(1)  # the terms of the first period
        self._retail_by_hod = np.empty(24)  # the tariff over one day, for users' budgets
        for h in range(1, 25):
            s = self.grid_company.publish(h)
            self._retail_by_hod[s.hour_of_day] = s.retail
        self.hour_of_day = schedule.hour_of_day
        self.retail_price, self.feed_in_price = schedule.retail, schedule.feed_in
        # One row per hour run (none for hour 0), so that mesa.batch_run's steps meet hours.
        self.datacollector = mesa.DataCollector(
            model_reporters={"hour": "hour", **{k: k for k in self.hourly_kpis}})
        self.party_log = PartyLog(p.agent_report_every)

    # ------------------------------------------------------------------ the hour
    def step(self) -> None:
        """One hour: the phases of docs/model.md section 4, in order."""
        self.hour += 1
        p, parties = self.params, self.state
        gated = (self.consequences.gated(parties.credit.credit)  # credit before matching
                 if self.consequences.gates and not self.market.grid_only else None)
        schedule = self.grid_company.publish(self.hour)                       # 1. DU1
        budget = None
        period = p.budget_period_h
        if period and (self.hour - 1) % period == 0:                          # users' budget
            hod = (schedule.hour_of_day + np.arange(period)) % 24
            budget = parties.endow(hod, self._retail_by_hod[hod], p.budget_ratio)
            self.endowed_yuan += float(budget.sum())
        draw = self.weather.step()                                            # 2. forecast
        if self.profiles is not None:
            draw = self.profiles.apply(draw, parties.tech, parties.capacity_kw,
                                       parties.load_class)
        self.generation_by_tech += np.bincount(parties.tech[self._gen_rows],
                                               draw.gen_actual_kw[self._gen_rows],
                                               len(TECHNOLOGIES))
        orders = parties.post_orders(schedule, draw.gen_forecast_kw,          # 3. orders
                                     draw.load_forecast_kw, self._choose,
                                     self.rngs["behaviour"], self.rngs["matching"],
                                     self._volume_cap)
        cleared = self.market.clear(orders)                                   # 3. matching
        delivery = parties.deliver(draw.gen_actual_kw, draw.load_actual_kw,   # 4. delivery
                                   orders, self.market.commitments(orders, cleared.contracts),
                                   self.batteries, p.breach_tolerance)
        settlement = self.market.settle(schedule, cleared, delivery)          # 4. settlement
        if self._moves_money:                                                 # 4b. consequences
            settlement = apply_consequences(self.consequences, settlement, schedule, cleared,
                                            parties.credit.credit, parties.tech,
                                            p.breach_tolerance)
        economy = economy_of_hour(self.costs, schedule, orders, cleared, delivery,  # 4c. costs
                                  settlement, draw.gen_actual_kw, draw.load_actual_kw)
        if economy.recovery.any():
            settlement = replace(settlement,
                                 party_transfer=settlement.party_transfer - economy.recovery,
                                 grid_income=settlement.grid_income + economy.recovery.sum())
        self.books.add(economy, delivery.breach)
        parties.balance += settlement.party_transfer
        self.grid_company_balance += settlement.grid_income
        credit = (parties.update_credit(delivery, cleared.contracts,           # 5. credit
                                        self._credit_update, self._credit_score,
                                        p.credit_count == "contract", self.hour)
                  if self._credit_live else CreditUpdate.none())
        record = HourRecord(schedule, orders, cleared, delivery, settlement, credit,
                            Roster(parties.kind, parties.tech, parties.credit.credit.copy()),
                            gated, line_loading=self._line_loading(delivery, settlement),
                            budget_yuan=budget, economy=economy)
        block, chain = self._produce_block(record)                            # 6. consensus
        winner = np.array([block.winner] if block.winner < parties.n else [], np.intp)
        parties.learn(schedule, orders, delivery, settlement.party_transfer,  # 7. learning
                      (winner, np.full(winner.size, p.block_reward_yuan)), self._learn)
        self._report(replace(record, block=block, chain=chain))
        self.running = self.hour < p.hours
        self.datacollector.collect(self)
        self.party_log.record(self)

    def run(self, hours: int | None = None, progress: Any = None) -> DIPIModel:
        """Advance up to ``hours`` hours (default: what is left of the ``hours`` parameter).

        The run ends at the ``hours`` parameter: asking for more raises ConfigError
        (build the model with a larger ``hours``). ``progress`` is an optional callable
        invoked after every hour (a tqdm bar's ``update``, say). When it returns, the
        ledger holds every period run (``step()`` leaves the last few to the ledger's
        writer thread).
        """
        left = self.params.hours - self.hour
        n = left if hours is None else int(hours)
        if n < 0:
            raise ConfigError(f"hours = {n}: must be an integer >= 0")
        if n > left:
            raise ConfigError(
                f"hours = {n}: the model has {left} of its {self.params.hours} hours left "
                f"(set the hours parameter to run longer)")
        for _ in range(n):
            self.step()
            if progress is not None:
                progress(1)
        if self.ledger is not None:
            self.ledger.sync()  # its writer thread may still hold the last periods
        return self

    def _consequence_cap(self, forecast_kwh: NDArray[np.float64]) -> NDArray[np.float64]:
        """breach_policy hooks before matching (credit gate, deposit affordability):
        the most each party may offer or bid this hour, kWh."""
        s = self.state
        return self.consequences.volume_cap(Positions(credit=s.credit.credit, balance=s.balance,
                                                      forecast_kwh=forecast_kwh))

    def _line_loading(self, d: Any, st: Any) -> float:
        """Peak line loading of the hour's physical flows (docs/model.md section 2): each
        party's net injection, output after storage less load and less what the grid
        company did not take, summed per bus."""
        inj = d.deliverable_kw - d.need_kw - (st.extra_surplus_kwh - st.taken_kwh)
        loading = self.line_model.loading(
            np.bincount(self.state.bus, weights=inj, minlength=self.grid.n_buses))
        self.peak_line_loading_max = max(self.peak_line_loading_max, loading)
        return loading

    def _produce_block(self, record: HourRecord) -> tuple[Block, ChainStats]:
        """Consensus (docs/model.md section 7): the period's records go on the three chains, the
        producer is found under the run's rule and takes the block reward. Returns the block
        and its KPIs (read against the credit the block was drawn on)."""
        p, s, miners = self.params, self.state, self.miners_set
        credit = np.concatenate([s.credit.credit, np.zeros(p.n_miners)])
        stake = np.concatenate([s.balance, miners.standalone_balance])
        distance = cleanliness = None
        if miners.needs_distance or miners.needs_cleanliness:
            distance, cleanliness = self._node_distance_and_cleanliness(record.cleared.contracts)
        records = period_records(record, s.credit.credit, self.hour) if self.ledger else None
        # A nonce race needs the LH1 root now; otherwise the period is hashed, signed and
        # stored by the ledger's writer thread while the next hour runs.
        prepared = (self.ledger.prepare_period(records)
                    if records is not None and miners.hashed else None)
        block = miners.produce(self._block_seed(prepared), credit, stake,
                               distance if miners.needs_distance else None,
                               cleanliness if miners.needs_cleanliness else None,
                               self.rngs["consensus"])
        if records is not None:
            signer = self.node_keys.signer(self.addresses[block.winner])
            if prepared is not None:
                self.ledger.append_period(self.hour, prepared, signer, nonce=block.nonce,
                                          target=block.target)
            else:
                self.ledger.submit_period(self.hour, records, signer)
        miners.reward(block, credit, s.balance)
        return block, miners.chain_stats(block, credit, self.node_ids, s.n)

    def _block_seed(self, prepared: dict | None) -> str:
        """W in [DIPI] eq. 10: the Merkle root of the period's LH1 block, which commits
        to the credit updates and to the period's DU1 and JY1 roots. (Without a ledger,
        or under a rule that draws the producer and never reads W, a hash of the run's
        seed and the hour.) The producer's address enters the hash next to W, so every
        node searches its own space."""
        if prepared is None:
            return hashlib.sha256(f"{self.seed}:{self.hour}".encode()).hexdigest()
        return prepared["LH1"].root

    def _node_distance_and_cleanliness(self, c: Contracts) -> tuple[NDArray, NDArray]:
        """der_cbc inputs per node: volume-weighted electrical distance to this hour's
        counterparties (else the mean distance to all parties) and the cleanliness
        of the node's energy (its own generator's Q, or for a pure consumer the Q of
        what it bought; thermal's Q with neither). Stand-alone miners have no energy."""
        s, n = self.state, self.state.n
        d_pair = self.grid.distance[s.bus[c.buyer], s.bus[c.seller]]
        bought = per_party(c.buyer, c.volume, n)
        vol = bought + per_party(c.seller, c.volume, n)
        dsum = per_party(c.buyer, c.volume * d_pair, n) + per_party(c.seller,
                                                                    c.volume * d_pair, n)
        dist = np.where(vol > 0, dsum / np.where(vol > 0, vol, 1.0), self._mean_distance)
        qbought = per_party(c.buyer, c.volume * s.cleanliness[c.seller], n)
        q_bought = np.where(bought > 0, qbought / np.where(bought > 0, bought, 1.0),
                            CLEANLINESS_Q[THERMAL])
        q = np.where(s.tech >= 0, s.cleanliness, q_bought)
        m = self.params.n_miners
        far = float(self.grid.distance.max()) if self.grid.distance.size else 0.0
        return np.concatenate([dist, np.full(m, far)]), np.concatenate([q, np.zeros(m)])

    def _report(self, record: HourRecord) -> None:
        """The hour's KPIs become named attributes the DataCollector reads (docs/model.md §9)."""
        k = record.kpis
        for name in self.totals:
            self.totals[name] += k[name]
        self.record = record
        self.contracts = record.cleared.contracts
        self.hour_of_day = record.schedule.hour_of_day
        self.retail_price, self.feed_in_price = record.schedule.retail, record.schedule.feed_in
        for name in self.hourly_kpis:
            setattr(self, name, k[name])

    # ------------------------------------------------------------------ views
    # Views of the miners' and the batteries' columns.
    node_hash_power = _view("miners_set", "hash_power")
    node_blocks_won = _view("miners_set", "blocks_won")
    miner_balance = _view("miners_set", "standalone_balance")
    faulty = _view("miners_set", "faulty")
    minted_yuan = _view("miners_set", "minted_yuan")
    opportunist = _view("state", "opportunist")
    storage_kwh = _view("batteries", "energy_kwh")
    storage_kw = _view("batteries", "power_kw")
    soc_kwh = _view("batteries", "soc_kwh")

    @property
    def block_winner(self) -> int | None:
        return None if self.record is None or self.record.block is None \
            else self.record.block.winner

    # ------------------------------------------------------------------ construction
    def _build_parties(self) -> PartySet:
        p = self.params
        n_d, n_u = p.n_dpgc, p.n_users
        n = n_d + n_u
        rng = self.rngs["population"]
        kind = np.concatenate([np.zeros(n_d, np.int8), np.ones(n_u, np.int8)])

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
        tech[pros] = SOLAR  # rooftop PV
        capacity[pros] = p.prosumer_pv_ratio * mean_load[pros]
        # A load's peak for siting: its class shape's peak, three noise SDs up.
        peak = (mean_load * load_shape(load_class[:, None], np.arange(24)).max(axis=1)
                * (1.0 + 3.0 * p.load_noise_sd))
        bus, self.line_model = site_parties(self.grid, self.line_model, peak, capacity,
                                           self.rngs["placement"], margin=p.line_rating_margin,
                                           max_per_bus=p.max_parties_per_bus)

        cleanliness = np.where(tech >= 0, CLEANLINESS_Q[np.maximum(tech, 0)], 0.0)
        markup = rng.uniform(p.ask_markup_min, p.ask_markup_max, n)
        discount = rng.uniform(p.bid_discount_min, p.bid_discount_max, n)
        return PartySet(
            kind=kind, bus=bus, tech=tech, capacity_kw=capacity, cleanliness=cleanliness,
            load_class=load_class, mean_load_kw=mean_load, ask_markup=markup,
            bid_discount=discount, commitment_ratio=np.full(n, p.commitment_ratio),
            bid_volume_ratio=np.full(n, p.bid_volume_ratio),
            balance=np.full(n, p.initial_balance_yuan),
            credit=CreditState.new(n, p.credit_initial, p.credit_window,
                                  p.credit_prior_contracts),
        )

    def _build_network(self) -> MarketNetwork:
        p = self.params
        d = self.grid.distance
        w = wheeling_tariff(p.wheeling, d, p.wheeling_base_yuan_per_kwh,
                            p.wheeling_rate_yuan_per_kwh_ohm)
        # CMA weighs electrical distance, so its queues are per bus; price-time's only
        # separate buses whose wheeling or reachability differ.
        cma = MATCHING_RULES[p.matching].has("needs_distance")
        weights = CMAWeights(p.cma_w_credit, p.cma_w_distance, p.cma_w_price, p.cma_w_green,
                             p.cma_distance_ref_ohm, p.cma_price_ref_yuan, p.cma_rounds)
        return MarketNetwork.build(w, d <= p.max_distance_ohm, distance=d if cma else None,
                                   cma=weights)


    def _open_ledger(self) -> tuple[Ledger | None, KeyRing | None]:
        """The run's chains, with a signed genesis block on each, and the nodes' private
        keys (docs/model.md section 7)."""
        p = self.params
        if p.ledger_detail == "off":
            return None, None
        meta = {"package": "dipi_abm", "version": package_version(), "seed": str(self.seed),
                "params": json.dumps({k: v for k, v in p.to_dict().items() if k != "ledger"},
                                     default=str, sort_keys=True)}
        return open_run_ledger(self, meta)

    def verify_ledger(self) -> VerifyReport | None:
        """Recompute every hash and Merkle root of the run's chains (None: ledger off)."""
        return None if self.ledger is None else verify_open(self.ledger)

    def close(self) -> None:
        """Close the ledger file (a finished run's file is then a single SQLite file)."""
        if getattr(self, "ledger", None) is not None:
            self.ledger.close()

    def release(self) -> None:
        """Close the model and free its memory; the model cannot be used afterwards.

        Mesa 3.3 keeps every model it has seen in a class-level id table (mesa issue
        #3179), so a dropped model is never collected. Removing the agents (public
        ``Agent.remove``) and the model's own state leaves only an empty shell there.
        ``with DIPIModel(...) as model:`` releases on leaving the block.
        """
        self.close()
        for agent in list(self.agents):
            agent.remove()
        vars(self).clear()

    def __enter__(self) -> DIPIModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

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

    # ------------------------------------------------------------------ results
    def summary(self) -> dict[str, Any]:
        """Every parameter of the run and its summary KPIs (JSON-ready)."""
        t, s = self.totals, self.state
        q = t["p2p_volume_kwh"]
        mean = t["qp_yuan"] / q if q > 0 else float("nan")
        price_std = (float(np.sqrt(max(t["qp2_yuan_sq"] / q - mean * mean, 0.0))) if q > 0
                     else float("nan"))
        params = self.params.to_dict()
        params["seed"] = self.seed
        dpgc = s.kind == DPGC_KIND
        policy = {}
        if self.consequences.active:
            policy = {"breach_consequence_yuan": t["breach_consequence_yuan"],
                      "gated_share": t["gated_share"] / max(int(self.hour), 1)}
        return {
            "package": "dipi_abm",
            "version": package_version(),
            "hours": int(self.hour),
            "seed": self.seed,
            "params": params,
            "n_parties": s.n,
            "n_buses": self.grid.n_buses,
            "breach_rate": (t["breaches"] / t["committed_parties"] if t["committed_parties"]
                            else 0.0),
            "breaches": int(t["breaches"]),
            **{name: t[name] for name in (
                "breach_shortfall_kwh", "p2p_volume_kwh", "p2p_delivered_kwh",
                "grid_purchase_kwh", "grid_sale_kwh", "curtailed_kwh", "line_curtailed_kwh",
                "generation_kwh", "load_kwh")},
            "peak_line_loading": self.peak_line_loading_max,
            "endowed_yuan": self.endowed_yuan,
            **self._capacity_factors(),
            "mean_credit_dpgc": float(s.credit.credit[dpgc].mean()),
            "mean_credit_user": float(s.credit.credit[~dpgc].mean()),
            "transaction_efficiency": (q / t["tradable_kwh"] if t["tradable_kwh"] > 0
                                       else 0.0),
            "price_mean": mean,
            "price_std": price_std,
            **{name: t[name] for name in ("user_cost_yuan", "dpgc_income_yuan",
                                          "grid_income_yuan")},
            "clean_share": (t["clean_kwh"] / t["user_need_kwh"] if t["user_need_kwh"] > 0
                            else 0.0),
            "blocks": int(self.miners_set.blocks_won.sum()),
            **self._block_summary(),
            "minted_yuan": self.miners_set.minted_yuan,
            "chains": None if self.ledger is None else self.ledger.heads(),
            **policy,
            **{name: t[name] for name in ECONOMY_KPIS},
            **self.books.summary(),
        }

    def _capacity_factors(self) -> dict[str, float]:
        """``capacity_factor_<technology>``: realised over the run (DPGCs and rooftop PV),
        energy the weather (or the profiles file) delivered over capacity x hours."""
        s = self.state
        cap = np.bincount(s.tech[self._gen_rows], s.capacity_kw[self._gen_rows],
                          len(TECHNOLOGIES))
        with np.errstate(divide="ignore", invalid="ignore"):
            cf = self.generation_by_tech / (cap * self.hour)
        return {f"capacity_factor_{name}": float(cf[i]) if cap[i] > 0 else float("nan")
                for i, name in enumerate(TECHNOLOGIES)}

    def _block_summary(self) -> dict[str, Any]:
        won = self.miners_set.blocks_won
        s, m = self.state, self.params.n_miners
        credit = np.concatenate([s.credit.credit, np.zeros(m)])
        top = np.argsort(-won, kind="stable")[:10]
        standalone = int(won[s.n:].sum())
        total = max(int(won.sum()), 1)
        return {
            "producers": int((won > 0).sum()),
            "blocks_gini": gini(won),
            "blocks_nakamoto": nakamoto(won[won > 0]),
            "low_credit_block_share": self.miners_set.low_credit_blocks / total,
            "win_credit_corr": win_credit_correlation(won, credit),
            "standalone_block_share": standalone / total,
            "top_producers": [
                {"agent_id": int(self.node_ids[i]), "blocks": int(won[i]),
                 "credit": float(credit[i]), "standalone": bool(i >= s.n)}
                for i in top if won[i] > 0
            ],
            "quorum_m": self.quorum_m,
            "faulty_nodes": int(self.miners_set.faulty.sum()),
        }

    def hourly_dataframe(self):  # noqa: ANN201 - pandas is optional at import time
        """One row per simulated hour with the KPIs of docs/model.md section 9."""
        df = self.datacollector.get_model_vars_dataframe()
        return df.astype({"hour": np.int64}).reset_index(drop=True)

    def agents_dataframe(self):  # noqa: ANN201
        """Per party and reported hour, the columns of agents.parquet: hour, agent_id,
        credit, balance, volumes, breach flag, blocks won, kind and bus (runs that fit
        in memory)."""
        return party_dataframe(self)


def _apportion(n: int, shares: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.int8]:
    """Assign n items to categories in proportion to shares (largest remainder), shuffled."""
    exact = shares * n
    counts = np.floor(exact).astype(int)
    rest = n - counts.sum()
    if rest > 0:
        counts[np.argsort(-(exact - counts), kind="stable")[:rest]] += 1
    labels = np.repeat(np.arange(shares.size, dtype=np.int8), counts)
    return rng.permutation(labels)
