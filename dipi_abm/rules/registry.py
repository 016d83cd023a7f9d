"""Registry entries: a named rule, the scenario keys it reads and the traits it has.

Every *(rule)* of docs/model.md is one entry in a dictionary keyed by its name
(ASSUME's pattern). An entry declares what it needs instead of the engine
asking a rule its name: ``keys`` maps the rule's keyword arguments to scenario
keys, and ``traits`` say how the hour must treat it (for example a matching
rule that clears through the grid company only, or a consensus rule that
needs electrical distances). The model binds the chosen entries once, when it
is built; adding a rule is one function and one entry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Traits an entry may declare (one vocabulary for every registry).
TRAITS = frozenset({
    "grid_only",  # matching: no direct trade; everything clears with the grid company
    "needs_distance",  # needs electrical distances (per bus pair or per node)
    "needs_cleanliness",  # consensus: needs the cleanliness Q of each node's energy
    "nonce_race",  # consensus: its producer may be found by a real SHA-256 nonce race
})


@dataclass(frozen=True)
class Rule:
    """One registry entry: the rule's function, its scenario keys and its traits."""

    fn: Callable[..., Any]
    keys: Mapping[str, str] = field(default_factory=dict)  # keyword -> scenario key
    traits: frozenset[str] = frozenset()
    doc: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.traits) - TRAITS
        if unknown:
            raise ValueError(f"unknown rule traits {sorted(unknown)}; known: {sorted(TRAITS)}")

    def has(self, trait: str) -> bool:
        return trait in self.traits

    def bind(self, params: Mapping[str, Any]) -> Callable[..., Any]:
        """The rule with its scenario keys filled in from ``params`` (done once per run)."""
        return functools.partial(self.fn, **{kw: params[key] for kw, key in self.keys.items()})

    def __call__(self, *args: Any, **settings: Any) -> Any:
        """Call the rule with the settings it declares; settings of other rules are
        ignored, so a caller can hand one settings dict to every entry of a registry."""
        return self.fn(*args, **{k: v for k, v in settings.items() if k in self.keys})

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self.doc or self.fn.__doc__
