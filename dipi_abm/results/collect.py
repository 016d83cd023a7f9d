"""A Mesa DataCollector that records party state straight from the columns.

Mesa's DataCollector calls every agent reporter on every agent in Python;
at 10,000 parties and 8,760 hours that would dominate the run. This subclass
keeps Mesa's interface (``model_vars``, ``get_model_vars_dataframe``,
``get_agent_vars_dataframe``, ``_agent_records`` as read by ``mesa.batch_run``)
but snapshots the party columns as numpy arrays every ``every`` hours.

A run that does not fit in memory streams its snapshots instead
(:meth:`ColumnarDataCollector.stream_agents`): each goes to a sink, such as
the Parquet writer of :mod:`dipi_abm.results.output`, as soon as it is taken,
so memory stays O(parties), not O(parties x hours).

Both ways the per-party table has one schema, :class:`PartyRecords`:
``agents.parquet`` and ``DIPIModel.agents_dataframe()`` have the same columns
(docs/model.md section 9: hour, agent_id, the reporters, kind, bus).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from mesa import DataCollector

from ..rules.economy import PARTY_TYPES

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ..model import DIPIModel

#: Per-party reporters: the name is both the agent attribute and the record column.
PARTY_REPORTERS = {
    "credit": "credit",
    "balance": "balance",
    "order_kwh": "order_kwh",
    "committed_kwh": "committed_kwh",
    "delivered_kwh": "delivered_kwh",
    "breach": "breach",
    "blocks_won": "blocks_won",
}

#: The columns of agents.parquet and of ``agents_dataframe()``, in order.
PARTY_TABLE_COLUMNS = ("hour", "agent_id", *PARTY_REPORTERS, "kind", "party_type", "bus")

#: Values a model reporter can hand over without a copy.
_IMMUTABLE = (int, float, bool, str, bytes, type(None), np.generic)

#: Party kind labels by ``PartyState.kind`` code.
KIND_LABELS = ("dpgc", "user")

#: Runs longer than this are summarised per day in the credit band (and the plots).
DAILY_AFTER_HOURS = 21 * 24


def party_columns(model: DIPIModel) -> dict[str, np.ndarray]:
    """The current value of every party reporter, as arrays in party-row order."""
    s = model.state
    return {
        "credit": s.credit.credit.astype(np.float32),
        "balance": s.balance.copy(),
        "order_kwh": s.offered_kwh.astype(np.float32),
        "committed_kwh": s.committed_kwh.astype(np.float32),
        "delivered_kwh": s.delivered_kwh.astype(np.float32),
        "breach": s.breach.copy(),
        "blocks_won": model.node_blocks_won[: s.n].astype(np.int32),
    }


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


class _Snapshots(Mapping[int, list[tuple]]):
    """``{step: [(step, agent_id, *values), ...]}`` built on demand from array snapshots.

    ``step`` is the label mesa.batch_run asks for: Mesa 3.3 reads entry ``step`` for
    steps 0 .. model.steps - 1, pairing it with ``model_vars[...][step]``, which holds
    hour step + 1 (``offset`` 1); Mesa >= 3.4 reads the steps its DataCollector
    recorded, which ``collect`` sets to the hour (``offset`` 0).
    """

    def __init__(self, offset: int) -> None:
        self.ids: np.ndarray | None = None
        self.columns: dict[int, dict[str, np.ndarray]] = {}
        self.offset = offset

    def __getitem__(self, step: int) -> list[tuple]:
        cols = self.columns[int(step) + self.offset]
        values = [c.tolist() for c in cols.values()]
        n = len(self.ids)  # type: ignore[arg-type]
        return list(zip([step] * n, self.ids.tolist(), *values, strict=True))  # type: ignore[union-attr]

    def __iter__(self) -> Iterator[int]:
        return (h - self.offset for h in self.columns if h > 0)

    def __len__(self) -> int:
        return sum(1 for h in self.columns if h > 0)


class ColumnarDataCollector(DataCollector):
    """DataCollector whose agent records are column snapshots of the trading parties."""

    def __init__(self, model_reporters: dict[str, Any], agent_reporters: dict[str, str],
                 every: int = 1) -> None:
        super().__init__(model_reporters=model_reporters, agent_reporters=agent_reporters)
        self.every = int(every)
        # Mesa >= 3.4 keeps the step of every collection and batch_run reads them back.
        self._records_steps = hasattr(self, "_collection_steps")
        self._agent_records = _Snapshots(offset=0 if self._records_steps else 1)
        self._sink: AgentSink | None = None
        # Reporters that name attributes are read directly (Mesa 3.3's collect does no
        # more with them); newer Mesa keeps its own bookkeeping, so it collects there.
        self._checked = False  # Mesa's own collect has validated the reporters once
        self._by_attribute = not self._records_steps and all(
            isinstance(r, str) for r in self.model_reporters.values())

    def _collect_attributes(self, model: DIPIModel) -> None:
        """Mesa's collect for reporters that name attributes, without its deepcopy of
        values that cannot change (numbers, strings): 48 KPIs every hour add up."""
        for var, name in self.model_reporters.items():
            value = getattr(model, name, None)
            if not isinstance(value, _IMMUTABLE):
                value = copy.deepcopy(value)
            self.model_vars[var].append(value)

    def stream_agents(self, sink: AgentSink) -> None:
        """Send every party snapshot to ``sink`` as it is taken instead of keeping it.

        The snapshots of hours already run go first; the initial state (hour 0)
        is not a party record and is not sent.
        """
        snaps = self._agent_records
        for step in sorted(snaps.columns):
            if step > 0:
                sink.write(step, snaps.columns[step])
        snaps.columns.clear()
        self._sink = sink

    def collect(self, model: DIPIModel) -> None:  # type: ignore[override]
        if model.hour > 0:
            # One model row per simulated hour (the row's ``hour`` says which), so that
            # mesa.batch_run, which reads rows 0 .. steps - 1, sees every hour.
            if self._by_attribute and self._checked:
                self._collect_attributes(model)
            else:
                agent_reporters, self.agent_reporters = self.agent_reporters, {}
                try:
                    super().collect(model)  # model reporters only (validated the first time)
                finally:
                    self.agent_reporters = agent_reporters
                self._checked = True
                if self._records_steps:  # the hour, not Mesa's clock (model.time, a float)
                    self._collection_steps[-1] = model.hour
        if model.hour % self.every == 0 or not model.running:
            if self._sink is not None:
                if model.hour > 0:
                    self._sink.write(model.hour, party_columns(model))
                return
            snaps = self._agent_records
            if snaps.ids is None:
                snaps.ids = model.party_ids
            snaps.columns[model.hour] = party_columns(model)

    def party_snapshots(self) -> tuple[list[int], list[dict[str, np.ndarray]]]:
        """The party records held in memory (hours > 0), for agents.parquet."""
        if self._sink is not None:
            raise RuntimeError("per-party records were streamed as the run went (to "
                               "agents.parquet); read them there with pandas.read_parquet")
        cols = self._agent_records.columns
        hours = sorted(h for h in cols if h > 0)
        return hours, [cols[h] for h in hours]

    def get_agent_vars_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        if self._sink is not None:
            self.party_snapshots()  # raises: nothing is held in memory
        snaps = self._agent_records
        if not snaps.columns:
            return pd.DataFrame(columns=["Step", "AgentID", *self.agent_reporters]).set_index(
                ["Step", "AgentID"])
        steps = list(snaps.columns)
        n = len(snaps.ids)  # type: ignore[arg-type]
        data = {
            "Step": np.repeat(np.array(steps, np.int64), n),
            "AgentID": np.tile(snaps.ids, len(steps)),  # type: ignore[arg-type]
        }
        for name in self.agent_reporters:
            data[name] = np.concatenate([snaps.columns[s][name] for s in steps])
        return pd.DataFrame(data).set_index(["Step", "AgentID"])


def party_dataframe(model: DIPIModel) -> pd.DataFrame:
    """Per party and reported hour, as in agents.parquet (runs that fit in memory)."""
    hours, snaps = model.datacollector.party_snapshots()
    return PartyRecords(model).table(hours, snaps).to_pandas()
