"""Per-party records straight from the columns, kept in memory or streamed.

The hourly KPIs go through Mesa's own ``DataCollector`` (model reporters only, its
public API). Per-party records do not: Mesa would call every agent reporter on
every agent in Python, which at 10,000 parties and 8,760 hours would dominate
the run. :class:`PartyLog` snapshots the party columns as numpy arrays every
``every`` hours (and the last hour) and keeps them, or streams each to a sink
(the Parquet writer of :mod:`dipi_abm.results.output`) as soon as it is taken,
so memory stays O(parties), not O(parties x hours).

Both ways the per-party table has one schema, :class:`PartyRecords`:
``agents.parquet`` and ``DIPIModel.agents_dataframe()`` have the same columns
(docs/model.md section 9: hour, agent_id, the reporters, kind, bus).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..rules.economy import PARTY_TYPES

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ..model import DIPIModel

#: Per-party record columns (each also an attribute of the party's agent).
PARTY_REPORTERS = ("credit", "balance", "order_kwh", "committed_kwh", "delivered_kwh",
                   "breach", "blocks_won")

#: The columns of agents.parquet and of ``agents_dataframe()``, in order.
PARTY_TABLE_COLUMNS = ("hour", "agent_id", *PARTY_REPORTERS, "kind", "party_type", "bus")

#: Party kind labels by ``PartyState.kind`` code.
KIND_LABELS = ("dpgc", "user")

#: Runs longer than this are summarised per day in the credit band (and the plots).
DAILY_AFTER_HOURS = 21 * 24


def party_columns(model: DIPIModel) -> dict[str, np.ndarray]:
    """The current value of every party reporter, as arrays in party-row order."""
    s = model.state
    return {"credit": s.credit.credit.astype(np.float32), "balance": s.balance.copy(),
            "order_kwh": s.offered_kwh.astype(np.float32),
            "committed_kwh": s.committed_kwh.astype(np.float32),
            "delivered_kwh": s.delivered_kwh.astype(np.float32), "breach": s.breach.copy(),
            "blocks_won": model.node_blocks_won[: s.n].astype(np.int32)}


class AgentSink(Protocol):
    """Where streamed snapshots go: ``write(hour, columns)`` as each is taken."""

    def write(self, hour: int, columns: Mapping[str, np.ndarray]) -> None: ...


class PartyRecords:
    """The per-party table's schema and the builder of its Arrow tables.

    One place decides the columns and their types, so the file written as the
    run goes and the frame built from memory cannot differ. The types are those
    pandas gives the table (``kind`` categorical, ``bus`` string), with pandas'
    metadata, so ``pandas.read_parquet`` returns exactly ``agents_dataframe()``.
    """

    def __init__(self, model: DIPIModel) -> None:
        import pandas as pd
        import pyarrow as pa

        buses = [str(model.grid.buses[b]) for b in np.asarray(model.state.bus).tolist()]
        self.ids = np.asarray(model.party_ids, np.int64)
        empty = {"hour": np.zeros(0, np.int64), "agent_id": np.zeros(0, np.int64)}
        for name, values in party_columns(model).items():
            empty[name] = values[:0]
        frame = pd.DataFrame(empty)
        # Static categorical columns: the labels present, each party's code into them.
        self._static = {}
        for name, codes, labels in (("kind", model.state.kind, KIND_LABELS),
                                    ("party_type", model.party_type, PARTY_TYPES)):
            codes = np.asarray(codes)
            present = sorted({labels[k] for k in np.unique(codes).tolist()})
            mine = np.searchsorted(np.array(present), np.array(labels))[codes].astype(np.int8)
            frame[name] = pd.Categorical([], categories=present)
            self._static[name] = pa.DictionaryArray.from_arrays(
                pa.array(mine, pa.int8()), pa.array(present, pa.string()))
        frame["bus"] = pd.Series([], dtype=str)
        #: Arrow schema with pandas' metadata (as ``DataFrame.to_parquet`` writes it).
        self.schema: pa.Schema = pa.Schema.from_pandas(frame, preserve_index=False)
        self._static["bus"] = pa.array(buses, self.schema.field("bus").type)

    @property
    def n(self) -> int:
        return int(self.ids.size)

    def table(self, hours: Sequence[int],
              snapshots: Sequence[Mapping[str, np.ndarray]]) -> pa.Table:
        """The rows of the given snapshots (party-row order within each hour)."""
        import pyarrow as pa

        k = len(hours)
        if k == 0:
            return self.schema.empty_table()
        arrays: list[Any] = [np.repeat(np.asarray(hours, np.int64), self.n),
                             np.tile(self.ids, k)]
        for name in PARTY_REPORTERS:
            cols = [s[name] for s in snapshots]
            arrays.append(cols[0] if k == 1 else np.concatenate(cols))
        for col in self._static.values():
            arrays.append(col if k == 1 else pa.concat_arrays([col] * k))
        return pa.Table.from_arrays(arrays, schema=self.schema)


class CreditBand:
    """Credit by party type over time (mean, 10th and 90th percentile of the party
    records) for the plots, summarised as the records are written: every record,
    or once a day in runs longer than :data:`DAILY_AFTER_HOURS`, so its cost and
    size do not grow with parties x hours."""

    FIELDS = ("hour", "dpgc_mean", "dpgc_p10", "dpgc_p90", "user_mean", "user_p10", "user_p90")

    def __init__(self, kind: np.ndarray, hours: int) -> None:
        dpgc = np.asarray(kind) == 0
        self._masks = (dpgc, ~dpgc)
        self._stride = 24 if hours > DAILY_AFTER_HOURS else 1
        self._last = int(hours)
        self.rows: list[tuple[float, ...]] = []

    def add(self, hour: int, credit: np.ndarray) -> None:
        if hour % self._stride and hour != self._last:
            return
        row: list[float] = [hour]
        for mask in self._masks:
            c = credit[mask]
            if c.size:
                lo, hi = np.quantile(c, [0.1, 0.9])
                row += [float(c.mean()), float(lo), float(hi)]
            else:
                row += [float("nan")] * 3
        self.rows.append(tuple(row))

    def dataframe(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.FIELDS))


class PartyLog:
    """The party snapshots of a run: every ``every`` hours and the last hour."""

    def __init__(self, every: int) -> None:
        self.every = int(every)
        self.hours: list[int] = []
        self.snapshots: list[dict[str, np.ndarray]] = []
        self._sink: AgentSink | None = None

    def record(self, model: DIPIModel) -> None:
        """Snapshot the parties after an hour when it is a reporting hour."""
        if model.hour % self.every and model.running:
            return
        columns = party_columns(model)
        if self._sink is not None:
            self._sink.write(model.hour, columns)
        else:
            self.hours.append(model.hour)
            self.snapshots.append(columns)

    def stream(self, sink: AgentSink) -> None:
        """Send every snapshot to ``sink`` as it is taken (those already taken first)."""
        for hour, columns in zip(self.hours, self.snapshots, strict=True):
            sink.write(hour, columns)
        self.hours, self.snapshots = [], []
        self._sink = sink

    def held(self) -> tuple[list[int], list[dict[str, np.ndarray]]]:
        """The snapshots held in memory, for agents.parquet."""
        if self._sink is not None:
            raise RuntimeError("per-party records were streamed as the run went (to "
                               "agents.parquet); read them there with pandas.read_parquet")
        return self.hours, self.snapshots


def party_dataframe(model: DIPIModel) -> pd.DataFrame:
    """Per party and reported hour, as in agents.parquet (runs that fit in memory)."""
    hours, snaps = model.party_log.held()
    return PartyRecords(model).table(hours, snaps).to_pandas()
