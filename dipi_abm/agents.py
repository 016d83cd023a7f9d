"""Mesa agents: thin objects over the model's columnar state (STYLE.md).

Every hourly quantity lives in numpy columns owned by the model, one row per
party; an agent's attributes read (and, where it makes sense, write) its row.
The hourly path never loops over these objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mesa

from .hour import Schedule
from .physics.weather import LOAD_CLASSES, TECHNOLOGIES
from .rules.tariffs import TARIFFS

if TYPE_CHECKING:
    from .model import DIPIModel



def _column(name: str, doc: str, *, writable: bool = False, cast: type = float) -> property:
    """A property that reads the agent's row of the model column ``state.<name>``."""

    def get(self: Party) -> Any:
        return cast(getattr(self.model.state, name)[self.row])

    def put(self: Party, value: Any) -> None:
        getattr(self.model.state, name)[self.row] = value

    return property(get, put if writable else None, doc=doc)


def _credit(self: Party) -> float:
    return float(self.model.state.credit.credit[self.row])


class Party(mesa.Agent):
    """A trading party (DPGC or user) sitting on a bus of the grid."""

    model: DIPIModel
    kind = "party"

    def __init__(self, model: DIPIModel, row: int) -> None:
        super().__init__(model)
        self.row = row

    credit = property(_credit, doc="Credit in [0, 100] (docs/model.md section 6).")
    balance = _column("balance", "Account balance, yuan.", writable=True)
    bus = _column("bus", "Index of the party's bus in model.grid.buses.", cast=int)
    order_kwh = _column("offered_kwh", "Volume ordered this hour (offer or bid), kWh.")
    committed_kwh = _column("committed_kwh", "Volume agreed in contracts this hour, kWh.")
    delivered_kwh = _column("delivered_kwh", "Volume delivered (seller) or taken (buyer) "
                            "against this hour's commitments, kWh.")
    breach = _column("breach", "Whether the party breached this hour.", cast=bool)

    @property
    def blocks_won(self) -> int:
        """Blocks produced by the party's miner node."""
        return int(self.model.node_blocks_won[self.row])

    @property
    def hash_power(self) -> float:
        """Hash power of the party's miner node."""
        return float(self.model.node_hash_power[self.row])

    @property
    def bus_label(self) -> Any:
        return self.model.grid.buses[self.bus]

    @property
    def node_attributes(self) -> dict[str, Any]:
        """[DIPI] eq. 7: L_h = {address, balance, credit}."""
        return {"address": self.address, "balance": self.balance, "credit": self.credit}

    @property
    def address(self) -> str:
        return self.model.addresses[self.row]


class DPGC(Party):
    """Distributed power generation company: a seller with a wind, solar, hydro or thermal plant."""

    kind = "dpgc"
    capacity_kw = _column("capacity_kw", "Installed capacity, kW.")
    cleanliness = _column("cleanliness", "Cleanliness Q of its energy ([DER-CBC]).")

    @property
    def technology(self) -> str:
        return TECHNOLOGIES[int(self.model.state.tech[self.row])]


class User(Party):
    """An electricity user; with rooftop PV a prosumer that sells its surplus."""

    kind = "user"
    mean_load_kw = _column("mean_load_kw", "Mean load, kW.")
    pv_kw = _column("capacity_kw", "Rooftop PV capacity, kW (0: not a prosumer).")

    @property
    def load_class(self) -> str:
        return LOAD_CLASSES[int(self.model.state.load_class[self.row])]

    @property
    def prosumer(self) -> bool:
        return self.pv_kw > 0.0


class GridCompany(mesa.Agent):
    """Publishes prices and tariffs (DU1), sells shortfalls (PPSC), buys surplus (OGSC)."""

    model: DIPIModel

    def __init__(self, model: DIPIModel) -> None:
        super().__init__(model)
        self._tariff = TARIFFS[model.params.tariff]

    def publish(self, hour: int) -> Schedule:
        """Schedule (DU1): the retail and feed-in prices for period ``hour`` (1 is the first
        period, which delivers at hour of day ``start_hour``, the hour the weather draws)."""
        p = self.model.params
        hour_of_day = (p.start_hour + max(hour - 1, 0)) % 24
        retail = self._tariff(hour_of_day, p.retail_yuan_per_kwh, p.tou_peak_yuan_per_kwh,
                              p.tou_valley_yuan_per_kwh)
        return Schedule(hour, hour_of_day, retail, p.feed_in_yuan_per_kwh)

    @property
    def retail_price(self) -> float:
        return float(self.model.retail_price)

    @property
    def feed_in_price(self) -> float:
        return float(self.model.feed_in_price)

    @property
    def balance(self) -> float:
        return float(self.model.grid_company_balance)


class Miner(mesa.Agent):
    """A miner node: a trading party's own node, or a stand-alone validator (owner None)."""

    model: DIPIModel

    def __init__(self, model: DIPIModel, node: int, owner: Party | None) -> None:
        super().__init__(model)
        self.node = node
        self.owner = owner

    @property
    def hash_power(self) -> float:
        return float(self.model.node_hash_power[self.node])

    @property
    def credit(self) -> float:
        """The owner's credit; a stand-alone miner has no credit history (0)."""
        return self.owner.credit if self.owner is not None else 0.0

    @property
    def blocks_won(self) -> int:
        return int(self.model.node_blocks_won[self.node])

    @property
    def balance(self) -> float:
        """The owner's balance; a stand-alone miner's own (block rewards)."""
        if self.owner is not None:
            return self.owner.balance
        return float(self.model.miner_balance[self.node - self.model.state.n])


class Storage(mesa.Agent):
    """A battery owned by a DPGC, which uses it to firm up its commitments (optional)."""

    model: DIPIModel

    def __init__(self, model: DIPIModel, owner: Party) -> None:
        super().__init__(model)
        self.owner = owner

    @property
    def bus(self) -> int:
        return self.owner.bus

    @property
    def energy_kwh(self) -> float:
        return float(self.model.batteries.energy_kwh[self.owner.row])

    @property
    def power_kw(self) -> float:
        return float(self.model.batteries.power_kw[self.owner.row])

    @property
    def soc_kwh(self) -> float:
        """Energy stored now."""
        return float(self.model.batteries.soc_kwh[self.owner.row])

    @property
    def efficiency(self) -> float:
        """Round-trip efficiency."""
        return float(self.model.params.storage_efficiency)
