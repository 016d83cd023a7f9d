"""A Mesa DataCollector that records party state straight from the columns.

Mesa's DataCollector calls every agent reporter on every agent in Python;
at 10,000 parties and 8,760 hours that would dominate the run. This subclass
keeps Mesa's interface (``model_vars``, ``get_model_vars_dataframe``,
``get_agent_vars_dataframe``, ``_agent_records`` as read by ``mesa.batch_run``)
but snapshots the party columns as numpy arrays every ``every`` hours.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mesa import DataCollector

if TYPE_CHECKING:
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

    def collect(self, model: DIPIModel) -> None:  # type: ignore[override]
        if model.hour > 0:
            # One model row per simulated hour (the row's ``hour`` says which), so that
            # mesa.batch_run, which reads rows 0 .. steps - 1, sees every hour.
            agent_reporters, self.agent_reporters = self.agent_reporters, {}
            try:
                super().collect(model)  # model reporters only
            finally:
                self.agent_reporters = agent_reporters
            if self._records_steps:  # the hour, not Mesa's clock (model.time, a float)
                self._collection_steps[-1] = model.hour
        if model.hour % self.every == 0 or not model.running:
            snaps = self._agent_records
            if snaps.ids is None:
                snaps.ids = model.party_ids
            snaps.columns[model.hour] = party_columns(model)

    def get_agent_vars_dataframe(self) -> pd.DataFrame:
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
