"""Registry entries: a named rule, the scenario keys it reads, their declarations
(:class:`Param`) and the traits it has.

Every *(rule)* of docs/model.md is one entry in a dictionary keyed by its name
(ASSUME's pattern). An entry declares what it needs instead of the engine
asking a rule its name: ``keys`` maps the rule's keyword arguments to scenario
keys, and ``traits`` say how the hour must treat it (for example a matching
rule that clears through the grid company only, or a consensus rule that
needs electrical distances); ``params`` declares the scenario keys that only
rules use, next to the rule (:mod:`dipi_abm.config` collects them). The model binds
the chosen entries once, when it is built; adding a rule is one function and one
entry.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

#: Traits an entry may declare (one vocabulary for every registry).
TRAITS = frozenset({
    "adaptive",  # learning: parties choose their actions each hour
    "caps_volume",  # breach policy: caps what a party may offer or bid before matching
    "gates",  # breach policy: holds parties back (reported as gated_share)
    "grid_only",  # matching: no direct trade; everything clears with the grid company
    "moves_money",  # breach policy: moves money after settlement
    "needs_distance",  # needs electrical distances (per bus pair or per node)
    "needs_cleanliness",  # consensus: needs the cleanliness Q of each node's energy
    "nonce_race",  # consensus: its producer may be found by a real SHA-256 nonce race
    "time_of_use",  # tariff: peak and valley prices (the tou_* keys)
})


@dataclass(frozen=True)
class Param:
    """One scenario key: its type, default, unit, allowed range and meaning."""

    name: str
    default: Any
    kind: type
    unit: str
    doc: str
    group: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: Callable[[], tuple[str, ...]] | tuple[str, ...] | None = None
    allow_none: bool = False
    #: A key that takes several names (a TOML list, or names joined by "+"): this
    #: returns the stored form or raises ValueError.
    combine: Callable[[Any], str] | None = None
    allow_inf: bool = False  # +inf is a documented value ("no limit")

    def allowed(self) -> str:
        """Human-readable statement of what the key accepts."""
        if self.combine is not None:
            return ("one or more of " + ", ".join(self.choice_values())
                    + " (a list, or names joined by +)")
        if self.choices is not None:
            return "one of " + ", ".join(self.choice_values())
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "a string"
        what = "an integer" if self.kind is int else "a number"
        inf = " or inf" if self.allow_inf else ""
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"{what} in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}{inf}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {_fmt(self.low)}{inf}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {_fmt(self.high)}{inf}"
        return what

    def choice_values(self) -> tuple[str, ...]:
        c = self.choices
        return tuple(c() if callable(c) else c)  # type: ignore[misc]

    def check(self, value: Any) -> Any:
        """Return the value coerced to the key's type, or raise ConfigError.

        The message always names this key (never a derived quantity), so
        ``capacity_solar_kw = inf`` is reported as ``capacity_solar_kw``.
        """
        if value is None:
            if self.allow_none:
                return None
            raise ConfigError(f"{self.name} = None: must be {self.allowed()}")
        v = value
        if self.combine is not None:
            if isinstance(v, str | list | tuple):
                try:
                    return self.combine(v)
                except ValueError as exc:
                    raise ConfigError(f"{self.name} = {v!r}: {exc}; must be "
                                      f"{self.allowed()}") from None
            raise ConfigError(f"{self.name} = {v!r}: must be {self.allowed()}")
        if self.kind is bool:
            if not isinstance(v, bool):
                raise self._bad(v)
            return v
        if self.kind is str:
            if not isinstance(v, str):
                raise self._bad(v)
            if self.choices is not None and v not in self.choice_values():
                raise self._bad(v)
            if "\x00" in v or len(v) > 4096:
                raise ConfigError(f"{self.name} = {_short(v)}: must be a string of at most "
                                  "4096 characters without NUL")
            return v
        if isinstance(v, bool) or not isinstance(v, int | float):
            try:
                import numpy as np

                if isinstance(v, np.integer | np.floating) and not isinstance(v, np.bool_):
                    v = v.item()
                else:
                    raise TypeError
            except TypeError:
                raise self._bad(v) from None
        if self.kind is int:
            if isinstance(v, float):
                if not v.is_integer():
                    raise self._bad(v)
                v = int(v)
        else:
            try:
                v = float(v)
            except OverflowError:  # an integer beyond the float range
                raise self._bad(v) from None
            if math.isnan(v):
                raise ConfigError(f"{self.name} = nan: must be {self.allowed()}")
            if math.isinf(v):
                if v > 0 and self.allow_inf:
                    return v
                raise ConfigError(f"{self.name} = {_fmt(v)}: must be {self.allowed()}")
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            raise ConfigError(f"{self.name} = {_fmt(v)}: must be {self.allowed()}")
        if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
            raise ConfigError(f"{self.name} = {_fmt(v)}: must be {self.allowed()}")
        return v

    def _bad(self, value: Any) -> ConfigError:
        return ConfigError(f"{self.name} = {_short(value)}: must be {self.allowed()}")


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a bad value, cut to keep the error message one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(x: float) -> str:
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    if isinstance(x, int) and abs(x) >= 10**15:
        return f"{x:.3g}" if abs(x) < 10**300 else _short(x)
    return repr(x) if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Rule:
    """One registry entry: the rule's function, its scenario keys and its traits."""

    fn: Callable[..., Any]
    keys: Mapping[str, str] = field(default_factory=dict)  # keyword -> scenario key
    traits: frozenset[str] = frozenset()
    doc: str = ""
    params: tuple[Param, ...] = ()  # the scenario keys of this rule's settings

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


def rule_params(*registries: Mapping[str, Any]) -> tuple[Param, ...]:
    """The settings the entries of ``registries`` declare, each once, in entry order."""
    seen: dict[str, Param] = {}
    for registry in registries:
        for entry in registry.values():
            for p in getattr(entry, "params", ()):
                seen.setdefault(p.name, p)
    return tuple(seen.values())
