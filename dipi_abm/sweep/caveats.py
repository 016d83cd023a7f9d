"""Designs that warn: what makes a sweep's (or a run's) answer mislead without a word.

- :func:`static_policy`: a breach or credit rule varied (or set) while every party is
  static (``learning = "static"``): no party changes its commitments or prices, so the
  rule acts only through its direct effects and a behavioural effect reads as 0.
- :func:`confounding`: in an lhs or sobol design, a categorical factor spread unevenly
  over another factor's bins makes that factor's level means differ by the categorical
  factor's effect; the report then shows the effects within each level too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .. import config as cfg

#: Keys whose rules act through parties that respond: the breach-policy group and these.
RULE_KEYS = ("credit_rule", "credit_frozen")
#: A categorical level's share of a bin may differ from its overall share by this factor.
IMBALANCE = 1.25


def static_policy(varied: Iterable[str], scenarios: Iterable[Mapping[str, Any]]) -> str | None:
    """A warning when ``varied`` holds a breach or credit rule key and every scenario
    keeps ``learning = "static"``; None otherwise."""
    rules = [k for k in varied if k in RULE_KEYS or cfg.param(k).group == "breach policy"]
    if not rules or not _all_static(scenarios):
        return None
    return f"{', '.join(rules)} varies a breach or credit rule while every party is static" + _WHY


def run_policy(params: Mapping[str, Any]) -> str | None:
    """The same for one run: a breach policy set while every party is static."""
    policy = params.get("breach_policy", "none")
    if policy == "none" or not _all_static([params]):
        return None
    return f"breach_policy = {policy!r} is set while every party is static" + _WHY


_WHY = (" (learning = 'static'): no party changes its commitments or prices, so the rule "
        "acts only through its direct effects and a behavioural response reads as 0; set "
        "learning = 'roth_erev' (or 'epsilon_greedy', 'q_learning') to let parties respond")


def _all_static(scenarios: Iterable[Mapping[str, Any]]) -> bool:
    default = cfg.param("learning").default
    return all(s.get("learning", default) == "static" for s in scenarios)


def confounding(labels: Mapping[str, pd.Series],
                categorical: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs (categorical factor, other factor) whose cross-tabulation is unbalanced: a
    level's share in some bin of the other factor is off its overall share by more than
    :data:`IMBALANCE` times. Returns (categorical factor, sentence) per pair."""
    out = []
    for c in categorical:
        for f, lab in labels.items():
            if f == c:
                continue
            tab = pd.crosstab(lab, labels[c])
            share = tab.div(tab.sum(axis=1), axis=0)
            overall = tab.sum() / tab.values.sum()
            ratio = share / overall
            worst = ratio.stack()
            if (worst > IMBALANCE).any() or (worst < 1 / IMBALANCE).any():
                counts = "; ".join(f"{b}: " + "/".join(str(int(n)) for n in row)
                                   for b, row in tab.iterrows())
                out.append((c, f"{c} is spread unevenly over the levels of {f} (runs per "
                           f"{'/'.join(map(str, tab.columns))}: {counts}), so {f}'s level "
                           f"means mix in {c}'s effect; see the tables within each level "
                           f"of {c}"))
    return out
