"""The dashboard's parameter controls, built from the scenario registry.

Which keys get a control is listed here by group; each control takes its
label, unit, default, allowed range and choices from
:data:`dipi_abm.config.PARAMS_BY_NAME`, so the page shows what the command
line accepts. A listed key that the registry does not (yet) know gets no
control: the CMA weights and ``opportunist_share`` appear by themselves once
they are added there.

Controls hold text (what the person typed); :func:`scenario_from_controls`
turns it into checked values with the registry's own checks, so a refused
value shows the same one-line message as ``dipi-abm run --set``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import config as cfg
from ..errors import ConfigError
from ..physics.grid import BUILTIN_GRIDS

#: The keys shown as controls, by group. Keys missing from the registry are skipped.
CONTROL_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Population", ("n_dpgc", "n_users", "storage_share")),
    ("Technology mix of DPGCs (shares sum to 1)",
     ("share_solar", "share_wind", "share_hydro", "share_thermal")),
    ("Grid", ("grid", "grid_buses", "line_limit_kw", "distance_metric", "wheeling")),
    ("Market", ("matching", "price_rule", "tariff", "cma_w_credit", "cma_w_distance",
                "cma_w_price", "cma_w_green")),
    ("Behaviour", ("learning", "opportunist_share")),
    ("Breach policy", ("breach_policy", "penalty_yuan_per_kwh", "penalty_recipient",
                       "deposit_yuan_per_kwh")),
    ("Credit", ("credit_rule", "credit_score", "credit_count", "natural_factor",
                "credit_frozen")),
    ("System cost", ("balancing", "voll_yuan_per_kwh", "network_recovery",
                     "network_cost_yuan_per_kwh")),
    ("Consensus", ("consensus", "poca_tau", "poca_mode")),
    ("Ledger", ("ledger_detail",)),
    ("Run", ("seed", "hours")),
)

#: Short names shown next to a key (the key itself stays the label: it is what
#: ``--set`` and the README use).
NICE_NAMES: dict[str, str] = {"n_dpgc": "DPGCs", "n_users": "users",
                              "opportunist_share": "opportunistic share",
                              "grid_buses": "buses (synthetic)",
                              "storage_share": "DPGCs with a battery",
                              "line_limit_kw": "every line's limit", "natural_factor": "λ",
                              "poca_tau": "τ", "seed": "empty: fresh entropy",
                              "hours": "run length"}

#: The grid choice that stands for the uploaded file.
UPLOADED = "uploaded file"


@dataclass(frozen=True)
class Control:
    """One control: the key, how it is entered, and what the registry allows."""

    key: str
    widget: str  # "text", "select", "multiselect" (several names) or "checkbox"
    label: str
    hint: str
    doc: str
    default: str | bool | list[str]
    choices: tuple[str, ...] = ()


def format_value(value: Any) -> str:
    """A registry value as the text a control shows (and ``--set`` accepts)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def _label(p: cfg.Param) -> str:
    unit = "" if p.unit in ("-", "") else f" [{p.unit}]"
    nice = NICE_NAMES.get(p.name)
    return f"{p.name}{unit}" + (f" ({nice})" if nice else "")


def control_for(p: cfg.Param) -> Control:
    """The control for one registry key."""
    if p.name == "grid":
        return Control(p.name, "select", _label(p), "built-in feeder, or drop a GraphML file",
                       p.doc, p.default, BUILTIN_GRIDS)
    if p.combine is not None:  # several names (breach_policy): a list of the registry's names
        return Control(p.name, "multiselect", _label(p), p.allowed(), p.doc,
                       p.default.split("+"), p.choice_values())
    if p.choices is not None:
        return Control(p.name, "select", _label(p), p.allowed(), p.doc, p.default,
                       p.choice_values())
    if p.kind is bool:
        return Control(p.name, "checkbox", _label(p), p.allowed(), p.doc, bool(p.default))
    return Control(p.name, "text", _label(p), p.allowed(), p.doc, format_value(p.default))


def pick_names(old: list[str], new: list[str], alone: str = "none") -> list[str]:
    """A multi-select's new names: picking ``alone`` (and only it) clears the others,
    picking another name drops ``alone``, clearing everything leaves ``alone``. (A quick
    second click can send a list that still holds ``alone``: the names added decide.)"""
    if [n for n in new if n not in old] == [alone]:
        return [alone]
    return [n for n in new if n != alone] or [alone]


def control_groups(
    registry: Mapping[str, cfg.Param] | None = None,
) -> list[tuple[str, list[Control]]]:
    """The groups of controls for the keys the registry knows (empty groups dropped)."""
    registry = cfg.PARAMS_BY_NAME if registry is None else registry
    out = []
    for title, keys in CONTROL_GROUPS:
        controls = [control_for(registry[k]) for k in keys if k in registry]
        if controls:
            out.append((title, controls))
    return out


def controls(registry: Mapping[str, cfg.Param] | None = None) -> list[Control]:
    return [c for _, group in control_groups(registry) for c in group]


def default_values(registry: Mapping[str, cfg.Param] | None = None) -> dict[str, Any]:
    """Every control's starting text (or flag), from the registry defaults."""
    return {c.key: c.default for c in controls(registry)}


def parse_control(key: str, entry: Any) -> Any:
    """One control's entry as a checked value; raises ConfigError naming the key.

    Text is read like a ``--set`` value (TOML: ``60``, ``0.25``, ``inf``); an
    empty field means "no value", which only keys that allow none accept.
    """
    p = cfg.param(key)
    if isinstance(entry, str):
        text = entry.strip()
        if p.kind is str:
            value: Any = text
        elif text == "":
            if not p.allow_none:
                raise ConfigError(f"{key} is empty: must be {p.allowed()}")
            value = None
        else:
            value = cfg.parse_value(text)
    else:
        value = entry
    return p.check(value)


def field_errors(entries: Mapping[str, Any]) -> dict[str, str]:
    """The message for each control whose entry its key refuses on its own."""
    errors = {}
    for key, entry in entries.items():
        if key == "grid":
            continue
        try:
            parse_control(key, entry)
        except ConfigError as exc:
            errors[key] = str(exc)
    return errors


def parse_extra(text: str) -> dict[str, Any]:
    """The free "other keys" box: one ``key = value`` per line (``#`` comments)."""
    items = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            items.append(line.replace(" = ", "=", 1))
    return cfg.parse_assignments(items)


def scenario_from_controls(entries: Mapping[str, Any], *, extra: str = "",
                           uploaded_grid: str | None = None) -> dict[str, Any]:
    """The model's keyword arguments from the controls, fully checked.

    Raises ConfigError (one line, naming the key) for the first entry its key
    refuses, for an unknown or bad key in ``extra``, or for a cross-key rule
    (technology shares summing to 1, ...) that :func:`dipi_abm.config.validate`
    enforces. Keys in ``extra`` override the controls.
    """
    values: dict[str, Any] = {}
    for key, entry in entries.items():
        if key == "grid":
            if entry == UPLOADED:
                if not uploaded_grid:
                    raise ConfigError("grid = uploaded file: drop a GraphML file first")
                values["grid"] = uploaded_grid
            else:
                values["grid"] = parse_control(key, entry)
            continue
        values[key] = parse_control(key, entry)
    values.update(parse_extra(extra))
    cfg.validate(values)
    return values
