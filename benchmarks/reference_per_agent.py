"""A small per-agent Mesa implementation of the model's hour, as a yardstick for speed.

This is how the hour reads when written the idiomatic Mesa way: every DPGC and
user is a ``mesa.Agent`` with its own attributes and a ``step`` of its own,
the market is a loop over orders, and settlement, credit and block production
walk the parties one by one. It runs the same phases as ``DIPIModel.step``
(docs/model.md section 4: prices, forecast, orders, price-time matching, delivery
attributed to contracts pro rata, settlement, credit, a credit-weighted block
producer, the hour's KPIs through Mesa's DataCollector) on the same kind of
population (10 % DPGCs, the rest users, on the IEEE 33-bus feeder's buses),
with simplified physics (one daily profile per technology, Gaussian forecast
error). It is not the model: it exists so ``bench_year.py`` can state how many
times faster the columnar core is on equal work (same parties, same hours).

    python benchmarks/reference_per_agent.py --agents 1000 --hours 24
"""

from __future__ import annotations

import argparse
import math
import time

import mesa

RETAIL, FEED_IN, WHEELING = 0.6, 0.35, 0.02  # yuan/kWh
N_BUSES = 32  # the IEEE 33-bus feeder's load buses
SOLAR, WIND, HYDRO, THERMAL = range(4)
CAPACITY_KW = (500.0, 800.0, 1000.0, 1500.0)


def profile(tech: int, hour: int) -> float:
    """Share of capacity a technology produces at an hour of the day."""
    if tech == SOLAR:
        return max(0.0, math.sin(math.pi * (hour - 6) / 12)) if 6 <= hour <= 18 else 0.0
    if tech == WIND:
        return 0.35 + 0.15 * math.cos(math.pi * hour / 12)
    return 0.6 if tech == HYDRO else 0.8


def load_profile(hour: int) -> float:
    return 0.6 + 0.4 * math.sin(math.pi * (hour - 4) / 12) ** 2


class Party(mesa.Agent):
    """A DPGC or a user: its own attributes, its own step."""

    def __init__(self, model: ReferenceModel, dpgc: bool) -> None:
        super().__init__(model)
        r = model.random
        self.dpgc = dpgc
        self.bus = r.randrange(N_BUSES)
        self.tech = r.randrange(4) if dpgc else (SOLAR if r.random() < 0.2 else -1)
        self.capacity_kw = (CAPACITY_KW[self.tech] * r.lognormvariate(0, 0.3) if dpgc
                            else (3.0 if self.tech == SOLAR else 0.0))
        self.mean_load_kw = 0.0 if dpgc else 4.0 * r.lognormvariate(0, 0.3)
        self.markup = r.uniform(0.1, 0.6)
        self.discount = r.uniform(0.1, 0.6)
        self.credit = 100.0
        self.balance = 0.0
        self.committed = 0.0
        self.side = 0
        self.forecast_net = 0.0
        self.breach = False
        self.contracts: list[list] = []

    def actual(self, hour: int) -> tuple[float, float]:
        r = self.model.random
        gen = (self.capacity_kw * profile(self.tech, hour) * max(0.0, r.gauss(1.0, 0.15))
               if self.tech >= 0 else 0.0)
        load = self.mean_load_kw * load_profile(hour) * max(0.0, r.gauss(1.0, 0.1))
        return gen, load

    def post_order(self) -> None:
        """Forecast the hour and offer the surplus or bid for the need."""
        hour = self.model.hour_of_day
        gen, load = self.actual(hour)
        self.forecast_net = load - gen
        self.committed = 0.0
        if self.forecast_net < -1e-9:
            self.side = 1
            price = FEED_IN + self.markup * (RETAIL - FEED_IN)
            self.model.asks.append([price, self.model.random.random(), self, -self.forecast_net])
        elif self.forecast_net > 1e-9:
            self.side = -1
            price = RETAIL - self.discount * (RETAIL - FEED_IN)
            self.model.bids.append([price, self.model.random.random(), self, self.forecast_net])
        else:
            self.side = 0

    def deliver_and_settle(self) -> None:
        """Meet the commitments or not, contract by contract; the rest with the grid;
        update credit."""
        gen, load = self.actual(self.model.hour_of_day)
        net = load - gen
        side = max(-net, 0.0) if self.side == 1 else max(net, 0.0)
        delivered = min(side, self.committed)
        share = delivered / self.committed if self.committed > 0 else 0.0
        for contract in self.contracts:  # pro rata over the party's contracts
            contract[3 if self.side == 1 else 4] = contract[2] * share
        extra = side - delivered
        self.balance += extra * FEED_IN if self.side == 1 else -extra * RETAIL
        self.breach = self.committed > 0 and delivered < 0.95 * self.committed
        if self.committed > 0:
            score = 100.0 * delivered / self.committed
            self.credit = 0.9 * self.credit + 0.1 * score  # an EMA credit rule
        self.contracts = []


# The hour's KPIs, as Mesa model reporters (named functions: they must pickle).
def p2p_volume_kwh(model: ReferenceModel) -> float:
    return sum(c[2] for c in model.contracts)


def p2p_delivered_kwh(model: ReferenceModel) -> float:
    return sum(min(c[3], c[4]) for c in model.contracts)


def breaches(model: ReferenceModel) -> int:
    return sum(1 for a in model.agents if a.breach)


def mean_credit_dpgc(model: ReferenceModel) -> float:
    values = [a.credit for a in model.agents if a.dpgc]
    return sum(values) / len(values)


def mean_credit_user(model: ReferenceModel) -> float:
    values = [a.credit for a in model.agents if not a.dpgc]
    return sum(values) / len(values)


def price_mean(model: ReferenceModel) -> float:
    q = p2p_volume_kwh(model)
    return sum(c[2] * c[5] for c in model.contracts) / q if q > 0 else float("nan")


def user_cost_yuan(model: ReferenceModel) -> float:
    return -sum(a.balance for a in model.agents if not a.dpgc)


class ReferenceModel(mesa.Model):
    """The hour, one agent at a time."""

    def __init__(self, n_parties: int, seed: int = 1) -> None:
        super().__init__(rng=seed)
        n_dpgc = n_parties // 10
        for i in range(n_parties):
            Party(self, dpgc=i < n_dpgc)
        self.hour_of_day = 0
        self.asks: list[list] = []
        self.bids: list[list] = []
        self.contracts: list[list] = []
        self.blocks_won: dict[int, int] = {}
        self.datacollector = mesa.DataCollector(model_reporters={
            f.__name__: f for f in (p2p_volume_kwh, p2p_delivered_kwh, breaches,
                                    mean_credit_dpgc, mean_credit_user, price_mean,
                                    user_cost_yuan)})

    def match(self) -> None:
        """Continuous double auction, price then time priority, walking the books."""
        asks = sorted(self.asks, key=lambda o: (o[0], o[1]))
        bids = sorted(self.bids, key=lambda o: (-o[0], o[1]))
        i = j = 0
        while i < len(asks) and j < len(bids):
            ask, bid = asks[i], bids[j]
            if bid[0] < ask[0] + WHEELING:
                break
            q = min(ask[3], bid[3])
            price = 0.5 * (ask[0] + bid[0] - WHEELING)
            contract = [ask[2], bid[2], q, 0.0, 0.0, price]  # seller, buyer, q, sent, taken, p
            self.contracts.append(contract)
            for party in (ask[2], bid[2]):
                party.committed += q
                party.contracts.append(contract)
            ask[3] -= q
            bid[3] -= q
            if ask[3] <= 1e-7:
                i += 1
            if bid[3] <= 1e-7:
                j += 1

    def produce_block(self) -> None:
        parties = list(self.agents)
        weights = [math.exp((p.credit - 100.0) / 10.0) for p in parties]
        winner = self.random.choices(parties, weights=weights)[0]
        winner.balance += 1.0
        self.blocks_won[winner.unique_id] = self.blocks_won.get(winner.unique_id, 0) + 1

    def settle_contracts(self) -> None:
        """Pay for what was delivered directly; shortfalls go through the grid."""
        for seller, buyer, _q, sent, taken, price in self.contracts:
            direct = min(sent, taken)
            seller.balance += direct * price
            buyer.balance -= direct * (price + WHEELING)

    def step(self) -> None:
        self.asks, self.bids, self.contracts = [], [], []
        self.agents.shuffle_do("post_order")
        self.match()
        self.agents.do("deliver_and_settle")
        self.settle_contracts()
        self.produce_block()
        self.datacollector.collect(self)
        self.hour_of_day = (self.hour_of_day + 1) % 24


def agent_hours_per_second(agents: int, hours: int, seed: int = 1) -> float:
    model = ReferenceModel(agents, seed=seed)
    t0 = time.perf_counter()
    for _ in range(hours):
        model.step()
    return agents * hours / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--hours", type=int, default=24)
    args = ap.parse_args()
    rate = agent_hours_per_second(args.agents, args.hours)
    print(f"per-agent Mesa reference: {args.agents} agents x {args.hours} h: "
          f"{rate:.3g} agent-hours/s")


if __name__ == "__main__":
    main()
