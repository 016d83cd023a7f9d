"""A small per-agent Mesa implementation of the model's hour, as a yardstick for speed.

This is how the hour reads when written the idiomatic Mesa way: every DPGC and
user is a ``mesa.Agent`` with its own attributes and a ``step`` of its own,
the market is a loop over orders, and settlement, credit and block production
walk the parties one by one. It runs the same phases as ``DIPIModel.step``
(MODEL.md section 4: prices, forecast, orders, price-time matching, delivery
and settlement, credit, a credit-weighted block producer) on the same kind of
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
        """Meet the commitment or not; trade the rest with the grid; update credit."""
        gen, load = self.actual(self.model.hour_of_day)
        net = load - gen
        if self.side == 1:
            delivered = min(max(-net, 0.0), self.committed)
            extra = max(-net, 0.0) - delivered
            self.balance += extra * FEED_IN
        else:
            delivered = min(max(net, 0.0), self.committed)
            extra = max(net, 0.0) - delivered
            self.balance -= extra * RETAIL
        if self.committed > 0:
            score = 100.0 * delivered / self.committed
            self.credit = 0.9 * self.credit + 0.1 * score  # an EMA credit rule
            if delivered < 0.95 * self.committed:
                self.model.breaches += 1


class ReferenceModel(mesa.Model):
    """The hour, one agent at a time."""

    def __init__(self, n_parties: int, seed: int = 1) -> None:
        super().__init__(seed=seed)
        n_dpgc = n_parties // 10
        for i in range(n_parties):
            Party(self, dpgc=i < n_dpgc)
        self.hour_of_day = 0
        self.asks: list[list] = []
        self.bids: list[list] = []
        self.breaches = 0
        self.blocks_won: dict[int, int] = {}

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
            ask[2].committed += q
            bid[2].committed += q
            ask[2].balance += q * price
            bid[2].balance -= q * (price + WHEELING)
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

    def step(self) -> None:
        self.asks, self.bids = [], []
        self.agents.shuffle_do("post_order")
        self.match()
        self.agents.do("deliver_and_settle")
        self.produce_block()
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
