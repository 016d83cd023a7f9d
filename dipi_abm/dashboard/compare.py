"""A/B comparisons that are fair by construction: common seeds, replications, intervals.

Pinning a baseline pins its seed, and Reset builds the next run on that seed
(common random numbers: both arms see the same weather, outages and draws),
so a difference between the arms is the scenario's, not the weather's.

One pair of runs still gives no idea of the noise, so on request both arms
are replicated ``n`` times (:func:`replicate`): replication ``i`` of the two
arms shares seed ``i`` (the pinned seed first, then seeds spawned from it
with numpy's SeedSequence), and each KPI's difference ``B - A`` is reported as
the mean of the paired differences with its Student-t interval
(:func:`paired_interval`). The page colours a difference as better or worse
only when its interval excludes 0.

The replications run with ``ledger_detail = "off"``: the ledger records the
run and changes none of its numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .. import config as cfg

#: Confidence level of the intervals.
LEVEL = 0.95
#: Choices of replications per arm.
REPLICATIONS = (5, 10, 20)
#: Key groups (``dipi-abm keys``) whose rules act through the parties' responses.
RULE_GROUPS = ("breach policy", "credit")


def rep_seeds(seed: int, n: int) -> list[int]:
    """``n`` seeds: ``seed`` itself, then ``n - 1`` spawned from it (SeedSequence)."""
    children = np.random.SeedSequence(int(seed)).spawn(max(0, n - 1))
    return [int(seed)] + [int(c.generate_state(1, np.uint64)[0]) for c in children]


def paired_interval(diff: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high) of paired differences: the mean and its Student-t interval
    (NaN bounds with fewer than two pairs)."""
    d = np.asarray(diff, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return (np.nan, np.nan, np.nan)
    mean = float(d.mean())
    if d.size < 2:
        return (mean, np.nan, np.nan)
    half = float(stats.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    return (mean, mean - half, mean + half)


@dataclass(frozen=True, eq=False)
class Replications:
    """Both arms replicated on common seeds up to ``hour``: per arm, the hourly KPIs of
    every replication (column ``rep``) and the summaries, in seed order."""

    hour: int
    seeds: tuple[int, ...]
    hourly: dict[str, pd.DataFrame]  # "A" (baseline), "B" (this scenario)
    summaries: dict[str, list[dict[str, Any]]]

    @property
    def n(self) -> int:
        return len(self.seeds)

    def delta(self, key: str) -> tuple[float, float, float]:
        """(mean, low, high) of the paired differences B - A of summary KPI ``key``."""
        a = np.array([_number(s.get(key)) for s in self.summaries["A"]])
        b = np.array([_number(s.get(key)) for s in self.summaries["B"]])
        return paired_interval(b - a)

    def band(self, arm: str, key: str) -> pd.DataFrame:
        """Per hour: mean, and the band holding the middle 95 % of the replications."""
        g = self.hourly[arm].groupby("hour")[key]
        out = pd.DataFrame({"mean": g.mean(), "low": g.quantile(0.025),
                            "high": g.quantile(0.975)})
        return out.reset_index()


def _number(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return np.nan


def replicate(a: Mapping[str, Any], b: Mapping[str, Any], hours: int, seeds: list[int],
              progress: Callable[[int, int], None] | None = None,
              stop: Callable[[], bool] | None = None) -> Replications | None:
    """Run scenarios ``a`` (baseline) and ``b`` for ``hours`` hours on every seed;
    None if ``stop()`` turns true in between (a Reset or a new request)."""
    from ..model import DIPIModel

    hourly: dict[str, list[pd.DataFrame]] = {"A": [], "B": []}
    summaries: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    total, done = 2 * len(seeds), 0
    for i, seed in enumerate(seeds):
        for arm, values in (("A", a), ("B", b)):
            if stop is not None and stop():
                return None
            model = DIPIModel(**{**values, "seed": seed, "hours": hours, "ledger": "",
                                 "ledger_detail": "off"})
            model.run(hours)
            hourly[arm].append(model.hourly_dataframe().assign(rep=i))
            summaries[arm].append(model.summary())
            done += 1
            if progress is not None:
                progress(done, total)
    return Replications(hours, tuple(seeds), {k: pd.concat(v, ignore_index=True)
                                              for k, v in hourly.items()}, summaries)


def static_rule_warning(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """Warn when the arms differ in a breach or credit rule while every party is static
    (``learning = "static"`` in both): the rule then acts only through its direct
    effects, and whatever needs parties to respond reads as 0."""
    varied = [k for k in a if k in b and a[k] != b[k] and k in cfg.PARAMS_BY_NAME
              and cfg.param(k).group in RULE_GROUPS]
    if not varied or a.get("learning") != "static" or b.get("learning") != "static":
        return None
    return (f"{', '.join(varied)} differs between the arms while every party is static "
            "(learning = 'static'): no party changes its commitments or prices, so the rule "
            "acts only through its direct effects and a behavioural response reads as 0; set "
            "learning = 'roth_erev' (or 'epsilon_greedy', 'q_learning') in both arms to let "
            "parties respond")
