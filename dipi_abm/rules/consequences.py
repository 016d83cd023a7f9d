"""What a breach costs the breacher: the ``breach_policy`` registry (docs/model.md section 6b).

Under the papers' settlement (docs/model.md section 5) a breach costs the breacher
nothing: the buyer of a short seller buys the gap at retail R, the seller of a
short buyer sells what was not taken at feed-in F. The policies here put a price
on breaching. A scenario names one policy or several (``breach_policy =
["imbalance_penalty", "credit_gate"]``, or the names joined by ``+``); their
effects add up.

Each policy is one registry :class:`~dipi_abm.rules.registry.Rule` in
:data:`BREACH_POLICIES` (made by :func:`policy`), with its settings beside it and
a trait for each hook it has; the model binds the chosen entries once
(:func:`bind`) and never asks a policy its name. The hooks:

- ``transfers(hour, **keys) -> Flows``: money moved after settlement, as
  explicit payer -> payee flows (party rows, or :data:`GRID` for the grid
  company). Every flow leaves one account and enters another, so money is
  conserved by construction.
- ``volume_cap(positions, **keys) -> kWh``: before matching, the most a party
  may offer or bid this hour (credit gate, deposit affordability).
- ``gated(credit, **keys) -> bool``: which parties a gate holds back (reported
  as the hour's ``gated_share``).

Everything is a pure, vectorised function of numpy columns: per contract the
buyer and seller rows, agreed volume q, price p, wheeling w, and the volumes b
and g attributed to the contract (pro rata, docs/model.md section 5, so b, g <= q);
per party credit, technology, balance. A side's *shortfall* on a contract is
q - g (seller) or q - b (buyer).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .economy import harm_yuan
from .registry import Param, Rule

#: Payer / payee rows of the grid company and of the system operator's balancing account
#: (docs/model.md section 6c) in :class:`Flows`. The system operator is the grid company's:
#: its receipts count as the grid company's cash and fund balancing first.
GRID, SYSTEM_OPERATOR = -1, -2

#: Separator of several policy names in one scenario value.
JOIN = "+"


@dataclass(frozen=True)
class Hour:
    """One settled hour as the consequence rules see it.

    Per contract: ``buyer`` and ``seller`` party rows, agreed ``volume`` q (kWh),
    ``price`` p and ``wheeling`` w (yuan/kWh), the buyer's ``consumed`` b and the
    seller's ``generated`` g attributed to the contract (kWh, at most q). Per
    party: ``credit`` at matching time (0-100) and ``tech`` (0 solar, 1 wind,
    2 hydro, 3 thermal, -1 none). ``retail`` R and ``feed_in`` F are the hour's
    grid prices; ``breach_tolerance`` the scenario's (docs/model.md section 6).
    """

    buyer: NDArray[np.intp]
    seller: NDArray[np.intp]
    volume: NDArray[np.float64]
    price: NDArray[np.float64]
    wheeling: NDArray[np.float64]
    consumed: NDArray[np.float64]
    generated: NDArray[np.float64]
    credit: NDArray[np.float64]
    tech: NDArray[np.int8]
    retail: float
    feed_in: float
    breach_tolerance: float = 0.05

    @property
    def seller_shortfall(self) -> NDArray[np.float64]:
        return np.maximum(self.volume - self.generated, 0.0)

    @property
    def buyer_shortfall(self) -> NDArray[np.float64]:
        return np.maximum(self.volume - self.consumed, 0.0)


@dataclass(frozen=True)
class Positions:
    """What a party brings to this hour's market, before matching.

    ``forecast_kwh`` is its forecast net position (surplus to sell or need to
    buy, >= 0), the volume it would offer at a commitment ratio of 1.
    """

    credit: NDArray[np.float64]
    balance: NDArray[np.float64]
    forecast_kwh: NDArray[np.float64]


@dataclass(frozen=True)
class Flows:
    """Money moved by consequence rules: one row per payment (yuan >= 0).

    ``payer`` and ``payee`` are party rows or :data:`GRID`; ``policy`` indexes
    ``names``, the bound policies' names (:attr:`Consequences.names`).
    """

    payer: NDArray[np.intp]
    payee: NDArray[np.intp]
    yuan: NDArray[np.float64]
    policy: NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, np.int8))
    names: tuple[str, ...] = ()  # policy k is names[k]

    @classmethod
    def empty(cls) -> Flows:
        i = np.zeros(0, np.intp)
        return cls(i, i, np.zeros(0), np.zeros(0, np.int8))

    @classmethod
    def of(cls, payer: NDArray, payee: NDArray, yuan: NDArray) -> Flows:
        """Flows from columns (broadcast), keeping only payments above zero."""
        payer, payee, yuan = np.broadcast_arrays(np.asarray(payer, np.intp),
                                                 np.asarray(payee, np.intp),
                                                 np.asarray(yuan, np.float64))
        keep = yuan > 0.0
        return cls(payer[keep].copy(), payee[keep].copy(), yuan[keep].copy(),
                   np.zeros(int(keep.sum()), np.int8))

    @classmethod
    def concat(cls, parts: Iterable[Flows]) -> Flows:
        parts = list(parts)
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(f, k) for f in parts])
                     for k in ("payer", "payee", "yuan", "policy")))

    @property
    def size(self) -> int:
        return int(self.yuan.size)

    def party_net(self, n: int) -> NDArray[np.float64]:
        """What each of the n parties received minus what it paid (yuan)."""
        into, out = self.payee >= 0, self.payer >= 0
        return (np.bincount(self.payee[into], self.yuan[into], n)
                - np.bincount(self.payer[out], self.yuan[out], n)).astype(np.float64)

    def grid_net(self) -> float:
        """What the grid company (with its system operator) received minus paid (yuan)."""
        return float(self.yuan[self.payee < 0].sum() - self.yuan[self.payer < 0].sum())

    def by_policy(self, k: int) -> float:
        """Total yuan moved by the k-th bound policy."""
        return float(self.yuan[self.policy == k].sum())


def _two_way(hour: Hour, seller_pays: NDArray, buyer_pays: NDArray,
             recipient: str = "counterparty") -> Flows:
    """Seller -> buyer and buyer -> seller payments per contract, to ``recipient``: the
    counterparty; the counterparty up to its actual harm (:func:`harm_yuan`) with the
    rest to the system operator (``counterparty_capped``); the grid company; or the
    system operator, whose receipts fund balancing (docs/model.md section 6c)."""
    if recipient in ("grid_company", "system_operator"):
        to = GRID if recipient == "grid_company" else SYSTEM_OPERATOR
        return Flows.concat([Flows.of(hour.seller, to, seller_pays),
                             Flows.of(hour.buyer, to, buyer_pays)])
    parts = []
    if recipient == "counterparty_capped":
        harm_b, harm_s = harm_yuan(hour.price, hour.wheeling, hour.consumed, hour.generated,
                                   hour.retail, hour.feed_in)
        capped_s, capped_b = np.minimum(seller_pays, harm_b), np.minimum(buyer_pays, harm_s)
        parts = [Flows.of(hour.seller, SYSTEM_OPERATOR, seller_pays - capped_s),
                 Flows.of(hour.buyer, SYSTEM_OPERATOR, buyer_pays - capped_b)]
        seller_pays, buyer_pays = capped_s, capped_b
    return Flows.concat([Flows.of(hour.seller, hour.buyer, seller_pays),
                         Flows.of(hour.buyer, hour.seller, buyer_pays), *parts])


# --------------------------------------------------------------------------- the policies
def imbalance_transfers(hour: Hour, *, penalty_yuan_per_kwh: float,
                        penalty_tolerance_solar: float, penalty_tolerance_wind: float,
                        penalty_tolerance_hydro: float, penalty_tolerance_thermal: float,
                        penalty_tolerance_user: float, penalty_recipient: str) -> Flows:
    """``imbalance_penalty``: pi per kWh of shortfall beyond the side's tolerance.

    A seller's tolerance is its technology's, a buyer's the users' one (China's
    provincial deviation rules exempt new-energy shortfalls up to about 20 % and
    users within about 5 %)::

        seller pays  pi * max(0, (q - g) - tol_tech * q)
        buyer pays   pi * max(0, (q - b) - tol_user * q)

    to the counterparty of the contract (``penalty_recipient = "counterparty"``), to it
    up to its actual harm (``"counterparty_capped"``, the rest to the system operator),
    to the grid company (``"grid_company"``) or to the system operator
    (``"system_operator"``, funding balancing). With pro-rata attribution this
    is the same as charging the party's total shortfall beyond tolerance.
    """
    tol_tech = np.array([penalty_tolerance_solar, penalty_tolerance_wind,
                         penalty_tolerance_hydro, penalty_tolerance_thermal])
    st = hour.tech[hour.seller]
    tol_seller = np.where(st >= 0, tol_tech[np.maximum(st, 0)], penalty_tolerance_user)
    q = hour.volume
    excess_s = np.maximum(hour.seller_shortfall - tol_seller * q, 0.0)
    excess_b = np.maximum(hour.buyer_shortfall - penalty_tolerance_user * q, 0.0)
    return _two_way(hour, penalty_yuan_per_kwh * excess_s, penalty_yuan_per_kwh * excess_b,
                    penalty_recipient)


def make_whole_transfers(hour: Hour) -> Flows:
    """``make_whole``: expectation damages, paid to the counterparty.

    A short seller pays its buyer what replacing the missing energy cost it: the
    buyer bought max(0, b - g) kWh at R instead of at p + w, so it receives
    (R - p - w) per such kWh. (docs/model.md writes R - p; the buyer also saves the
    wheeling fee on energy it did not receive, so its loss is R - p - w.) A short
    buyer pays its seller the margin it lost: the seller sold max(0, g - b) kWh
    at F instead of p, so it receives (p - F) per kWh. Only the energy the
    counterparty really had to replace counts; a side that fell short itself is
    not compensated for energy it would not have used. Both factors are >= 0
    for every feasible contract (F <= ask <= p <= bid - w <= R - w).
    """
    seller_pays, buyer_pays = harm_yuan(hour.price, hour.wheeling, hour.consumed,
                                        hour.generated, hour.retail, hour.feed_in)
    return _two_way(hour, seller_pays, buyer_pays)


def deposit_rate(credit: NDArray, deposit_yuan_per_kwh: float,
                 deposit_low_credit_yuan_per_kwh: float) -> NDArray[np.float64]:
    """Collateral per committed kWh: linear in credit, from the rate at credit 100 to
    the rate at credit 0 (larger at lower credit)."""
    c = np.clip(np.asarray(credit, np.float64), 0.0, 100.0) / 100.0
    return c * deposit_yuan_per_kwh + (1.0 - c) * deposit_low_credit_yuan_per_kwh


def deposit_transfers(hour: Hour, *, deposit_yuan_per_kwh: float,
                      deposit_low_credit_yuan_per_kwh: float, penalty_recipient: str) -> Flows:
    """``deposit``: each side locked rate(credit) * q at matching; it forfeits the share
    of it that its shortfall beyond ``breach_tolerance`` is of q, to ``penalty_recipient``
    as a penalty is paid (the counterparty, by default; capped at its actual harm with
    ``counterparty_capped``)::

        seller forfeits  rate(C_s) * max(0, (q - g) - tol * q)
        buyer forfeits   rate(C_b) * max(0, (q - b) - tol * q)

    The rest is released in the same hour (contracts settle within the hour), so
    only the forfeit moves money. Credit is the one matching saw.
    """
    tol = hour.breach_tolerance
    q = hour.volume
    rate_s = deposit_rate(hour.credit[hour.seller], deposit_yuan_per_kwh,
                          deposit_low_credit_yuan_per_kwh)
    rate_b = deposit_rate(hour.credit[hour.buyer], deposit_yuan_per_kwh,
                          deposit_low_credit_yuan_per_kwh)
    return _two_way(hour, rate_s * np.maximum(hour.seller_shortfall - tol * q, 0.0),
                    rate_b * np.maximum(hour.buyer_shortfall - tol * q, 0.0),
                    penalty_recipient)


def deposit_cap(pos: Positions, *, deposit_yuan_per_kwh: float,
                deposit_low_credit_yuan_per_kwh: float,
                deposit_guarantee_yuan: float) -> NDArray[np.float64]:
    """A party cannot commit more than it can post collateral for: its bank guarantee
    plus its positive balance, divided by its rate (kWh; inf at a zero rate)."""
    rate = deposit_rate(pos.credit, deposit_yuan_per_kwh, deposit_low_credit_yuan_per_kwh)
    funds = deposit_guarantee_yuan + np.maximum(pos.balance, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, funds / np.where(rate > 0, rate, 1.0), np.inf)


def gate_share(credit: NDArray, gate_credit_threshold: float, gate_credit_width: float,
               gate_probation_share: float) -> NDArray[np.float64]:
    """The share of its forecast a party may trade under ``credit_gate``::

        m(C) = 1                                       C >= threshold
        m(C) = max(probation, 1 - (threshold - C) / width)   otherwise

    so the cap tightens linearly over ``width`` credit points below the threshold
    and never below the probation share: a gated party can always trade a little,
    keep that contract, and earn its credit back (under a credit rule with memory
    set in time; the ``paper`` recursion hardly moves once n is large).
    """
    c = np.asarray(credit, np.float64)
    m = np.maximum(gate_probation_share, 1.0 - (gate_credit_threshold - c) / gate_credit_width)
    return np.where(c >= gate_credit_threshold, 1.0, np.minimum(m, 1.0))


def gate_cap(pos: Positions, *, gate_credit_threshold: float, gate_credit_width: float,
             gate_probation_share: float) -> NDArray[np.float64]:
    """``credit_gate`` before matching: at most m(C) x the forecast net position (kWh)."""
    m = gate_share(pos.credit, gate_credit_threshold, gate_credit_width, gate_probation_share)
    return np.where(m >= 1.0, np.inf, m * pos.forecast_kwh)


def gate_gated(credit: NDArray, *, gate_credit_threshold: float) -> NDArray[np.bool_]:
    """``credit_gate``: the parties below the threshold (reported as ``gated_share``)."""
    return np.asarray(credit) < gate_credit_threshold


def reward_transfers(hour: Hour, *, reward_share_of_margin: float,
                     reward_credit_floor: float) -> Flows:
    """``credit_scaled_reward``: a wheeling rebate from the grid company to both sides
    of each contract, per kWh actually delivered (min(b, g)), scaled by credit::

        rebate = kappa * (R - F) * min(b, g) * s(C),   s(C) = clip((C - C0) / (100 - C0), 0, 1)

    kappa (``reward_share_of_margin``) sizes it against the widest trading margin
    R - F; below the credit floor C0 a side earns nothing. A breach lowers both the
    delivered volume and, through credit, the rate.
    """
    direct = np.minimum(hour.consumed, hour.generated)
    unit = reward_share_of_margin * max(hour.retail - hour.feed_in, 0.0) * direct
    span = max(100.0 - reward_credit_floor, 1e-9)

    def scale(c: NDArray) -> NDArray:
        return np.clip((c - reward_credit_floor) / span, 0.0, 1.0)

    return Flows.concat([Flows.of(GRID, hour.seller, unit * scale(hour.credit[hour.seller])),
                         Flows.of(GRID, hour.buyer, unit * scale(hour.credit[hour.buyer]))])


# --------------------------------------------------------------------------- the registry
#: The hooks a breach policy may have, and the trait that declares each.
HOOKS = {"transfers": "moves_money", "volume_cap": "caps_volume", "gated": "gates"}


@dataclass(frozen=True)
class Hooks:
    """A policy's hooks with its settings filled in (``entry.bind(params)()``)."""

    transfers: Callable[[Hour], Flows] | None = None
    volume_cap: Callable[[Positions], NDArray[np.float64]] | None = None
    gated: Callable[[NDArray[np.float64]], NDArray[np.bool_]] | None = None


def policy(doc: str, params: tuple[Param, ...] = (), **hooks: Callable[..., Any]) -> Rule:
    """A breach policy entry: a registry :class:`Rule` whose function binds each hook to the
    settings it takes (keyword arguments named after the keys in ``params``), with the
    trait of every hook it has (:data:`HOOKS`)."""
    def bound(**settings: Any) -> Hooks:
        return Hooks(**{name: functools.partial(fn, **{k: v for k, v in settings.items()
                                                      if k in inspect.signature(fn).parameters})
                        for name, fn in hooks.items()})

    return Rule(bound, keys={p.name: p.name for p in params}, doc=doc, params=params,
                traits=frozenset(HOOKS[h] for h in hooks))


#: Who receives a penalty or a forfeited deposit (imbalance_penalty and deposit).
_RECIPIENT = Param(
    "penalty_recipient", "counterparty", str, "-", "imbalance_penalty and deposit: who "
    "receives a penalty or a forfeited deposit: the counterparty of the contract; the "
    "counterparty up to its actual harm, the rest to the system operator "
    "(counterparty_capped); the grid company; or the system operator, funding balancing.",
    "breach policy",
    choices=("counterparty", "counterparty_capped", "grid_company", "system_operator"))
#: Each policy's settings (scenario keys), declared beside its entry.
_PENALTY = (
    Param("penalty_yuan_per_kwh", 0.2, float, "yuan/kWh", "imbalance_penalty: price pi of a kWh "
    "of shortfall beyond the side's tolerance (R - F = 0.257 at the default prices).",
    "breach policy", low=0.0, high=100.0),
    Param("penalty_tolerance_solar", 0.2, float, "-", "imbalance_penalty: shortfall share of q a "
    "solar seller (DPGC or prosumer) may miss without penalty (new energy: about 20 %).",
    "breach policy", low=0.0, high=1.0),
    Param("penalty_tolerance_wind", 0.2, float, "-", "imbalance_penalty: tolerance of a wind "
    "seller.", "breach policy", low=0.0, high=1.0),
    Param("penalty_tolerance_hydro", 0.1, float, "-", "imbalance_penalty: tolerance of a hydro "
    "seller.", "breach policy", low=0.0, high=1.0),
    Param("penalty_tolerance_thermal", 0.03, float, "-", "imbalance_penalty: tolerance of a "
    "thermal seller (dispatchable).", "breach policy", low=0.0, high=1.0),
    Param("penalty_tolerance_user", 0.05, float, "-", "imbalance_penalty: tolerance of a buyer "
    "(users: about 5 %).", "breach policy", low=0.0, high=1.0),
    _RECIPIENT,
)
_DEPOSIT = (
    Param("deposit_yuan_per_kwh", 0.05, float, "yuan/kWh", "deposit: collateral per committed "
    "kWh at credit 100 (linear in credit down to the low-credit rate at credit 0).",
    "breach policy", low=0.0, high=100.0),
    Param("deposit_low_credit_yuan_per_kwh", 0.5, float, "yuan/kWh", "deposit: collateral per "
    "committed kWh at credit 0.", "breach policy", low=0.0, high=100.0),
    Param("deposit_guarantee_yuan", 100.0, float, "yuan", "deposit: bank guarantee each party "
    "may post beyond its positive balance; a party cannot commit more than "
    "(guarantee + max(balance, 0)) / rate.", "breach policy", low=0.0, high=1e9),
    _RECIPIENT,
)
_GATE = (
    Param("gate_credit_threshold", 80.0, float, "-", "credit_gate: below this credit a party's "
    "tradable volume is capped.", "breach policy", low=0.0, high=100.0),
    Param("gate_credit_width", 20.0, float, "credit", "credit_gate: the cap falls linearly from "
    "all of the forecast at the threshold to the probation share this many points below.",
    "breach policy", low=0.0, high=100.0, low_open=True),
    Param("gate_probation_share", 0.25, float, "-", "credit_gate: share of its forecast a gated "
    "party may always trade (its way back: keep those contracts and credit recovers).",
    "breach policy", low=0.0, high=1.0),
)
_REWARD = (
    Param("reward_share_of_margin", 0.1, float, "-", "credit_scaled_reward: rebate per delivered "
    "kWh to each side, as a share kappa of the trading margin R - F, at credit 100.",
    "breach policy", low=0.0, high=10.0),
    Param("reward_credit_floor", 80.0, float, "-", "credit_scaled_reward: no rebate at or below "
    "this credit; linear up to the full rebate at 100.", "breach policy", low=0.0,
    high=100.0, high_open=True),
)

BREACH_POLICIES: dict[str, Rule] = {
    "none": policy("The papers' settlement: a breach costs nothing directly."),
    "imbalance_penalty": policy(
        "The breacher pays penalty_yuan_per_kwh on its shortfall beyond its tolerance, to the "
        "counterparty or the grid company.", _PENALTY, transfers=imbalance_transfers),
    "make_whole": policy(
        "Expectation damages: a short seller pays its buyer (R - p - w) per kWh the buyer "
        "replaced at R; a short buyer pays its seller (p - F) per kWh sold at F.",
        transfers=make_whole_transfers),
    "deposit": policy(
        "Collateral per committed kWh, larger at lower credit, locked at matching (a party "
        "cannot commit more than it can post), forfeited to the counterparty pro rata to the "
        "shortfall beyond breach_tolerance (or as penalty_recipient says).", _DEPOSIT,
        transfers=deposit_transfers, volume_cap=deposit_cap),
    "credit_gate": policy(
        "Below gate_credit_threshold a party may trade only m(credit) of its forecast, never "
        "less than the probation share.", _GATE, volume_cap=gate_cap, gated=gate_gated),
    "credit_scaled_reward": policy(
        "The grid company rebates kappa (R - F) per delivered kWh to both sides, scaled by "
        "credit above a floor.", _REWARD, transfers=reward_transfers),
}


def policy_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """The policy names of a scenario value: one name, names joined by ``+``, or a list.

    Unknown names raise ``ValueError``; the result is deduplicated, in registry
    order (effects add up, so the order does not matter); ``none`` cannot be
    combined with another policy.
    """
    items = value.split(JOIN) if isinstance(value, str) else list(value)
    names = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not a policy name")
        name = item.strip()
        if name not in BREACH_POLICIES:
            raise ValueError(f"unknown breach policy {name!r}")
        names.append(name)
    if not names:
        raise ValueError("no breach policy named")
    chosen = tuple(n for n in BREACH_POLICIES if n in names)
    if "none" in chosen and len(chosen) > 1:
        raise ValueError("'none' cannot be combined with another breach policy")
    return chosen


def canonical(value: str | Iterable[str]) -> str:
    """The scenario's stored form of a policy value: names in registry order joined by +."""
    return JOIN.join(policy_names(value))


@dataclass(frozen=True)
class Consequences:
    """The chosen policies' hooks, bound to their scenario keys once per run (:func:`bind`).

    ``transfers`` pairs each money-moving hook with its policy's index in ``names``.
    """

    names: tuple[str, ...]
    transfer_hooks: tuple[tuple[int, Callable[[Hour], Flows]], ...] = ()
    cap_hooks: tuple[Callable[[Positions], NDArray[np.float64]], ...] = ()
    gate_hooks: tuple[Callable[[NDArray[np.float64]], NDArray[np.bool_]], ...] = ()

    @property
    def moves_money(self) -> bool:
        return bool(self.transfer_hooks)

    @property
    def caps_volume(self) -> bool:
        return bool(self.cap_hooks)

    @property
    def gates(self) -> bool:
        return bool(self.gate_hooks)

    @property
    def active(self) -> bool:
        return self.moves_money or self.caps_volume or self.gates

    def volume_cap(self, pos: Positions) -> NDArray[np.float64]:
        """The tightest cap of all bound policies (kWh per party; inf: no cap)."""
        cap = np.full(pos.credit.size, np.inf)
        for hook in self.cap_hooks:
            np.minimum(cap, hook(pos), out=cap)
        return cap

    def gated(self, credit: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Parties held back by any bound gate."""
        out = np.zeros(credit.size, bool)
        for hook in self.gate_hooks:
            out |= hook(credit)
        return out

    def transfers(self, hour: Hour) -> Flows:
        """Every bound policy's flows for the hour, labelled by policy."""
        parts = []
        for k, hook in self.transfer_hooks:
            f = hook(hour)
            parts.append(Flows(f.payer, f.payee, f.yuan, np.full(f.size, k, np.int8)))
        f = Flows.concat(parts)
        return Flows(f.payer, f.payee, f.yuan, f.policy, self.names)


def bind(value: str | Iterable[str], params: Mapping[str, Any]) -> Consequences:
    """Bind the named policies' hooks to their keys' values in ``params`` (once per run)."""
    names = policy_names(value)
    hooks = [BREACH_POLICIES[n].bind(params)() for n in names]
    return Consequences(names, tuple((k, h.transfers) for k, h in enumerate(hooks) if h.transfers),
                        tuple(h.volume_cap for h in hooks if h.volume_cap),
                        tuple(h.gated for h in hooks if h.gated))
