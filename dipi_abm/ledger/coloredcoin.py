"""Colored-coin credit proof (docs/model.md section 7, [DIPI] eqs. 3-6).

A credit record on the LH1 chain is a colored-coin transaction output. The
32-bit sequence number of the transaction input carries

* the type label ``seq & 0x3F``: ``0x25`` = colored coins generated,
  ``0x33`` = colored coins transferred; any other label is not a credit
  transaction;
* the padding exponent ``(seq & 0xFC0) >> 6`` (0..63), with
  ``Padding = 2**exponent``;

and the output Value is ``Padding + Ve``, so the colored-coin amount is
``Ve = Value - Padding``.

Choices made here, so that encoding and decoding are exact inverses:

* **Bits above bit 11 must be clear.** [DIPI] defines only bits 0-11 of the
  sequence number. Ignoring higher bits would make decoding many-to-one
  (``0x00010025`` and ``0x25`` would both decode to "generated, exponent 0"),
  so ``encode(decode(seq)) == seq`` would fail; in Bitcoin those bits also
  have a meaning of their own (BIP 68 relative lock-time, the disable flag in
  bit 31, ``0xFFFFFFFF`` = final). A sequence number with any bit above
  bit 11 set is therefore rejected as malformed, not silently masked.
* Integers only: ``bool``, floats (even ``37.0``), strings and ``None`` are
  rejected; Python and NumPy integers are accepted.
* Scalar Values are unbounded Python integers (exponent 63 gives a Padding of
  ``2**63``); the vectorised path stores Values as int64, so there the
  exponent is limited to 0..62.

Credit (0..100, docs/model.md section 6) is stored as an integer amount of
centi-credits, ``round_half_even(credit * 100)`` in 0..10000.

Every malformed input raises :class:`CodecError` with a one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..rules.credit import CREDIT_MAX

GENERATED = 0x25
TRANSFERRED = 0x33
LABELS: dict[int, str] = {GENERATED: "generated", TRANSFERRED: "transferred"}
_LABEL_BY_NAME: dict[str, int] = {name: label for label, name in LABELS.items()}

LABEL_MASK = 0x3F
EXPONENT_MASK = 0xFC0
EXPONENT_SHIFT = 6
USED_BITS = LABEL_MASK | EXPONENT_MASK  # 0xFFF: bits 0-11
MAX_EXPONENT = 63
UINT32_LIMIT = 2**32

#: Padding 2**10 = 1024 base units. The padding is the real ("dust") value an
#: output must carry to be relayed and spent: 1024 is the smallest power of two
#: above Bitcoin's usual dust thresholds (546 satoshi for P2PKH, 294 for
#: P2WPKH), and with credit amounts of at most 10000 centi-credits the Value
#: stays small (<= 11024) while the padding still marks the output as colored.
DEFAULT_EXPONENT = 10

#: Credit is stored as centi-credits: credit 98.76 -> amount 9876.
CREDIT_SCALE = 100
AMOUNT_MAX = int(CREDIT_MAX) * CREDIT_SCALE  # 10000

#: Largest exponent the int64 Value arrays of the vectorised path can hold.
MAX_ARRAY_EXPONENT = 62

_LABEL_HELP = "(0x25 generated, 0x33 transferred)"


class CodecError(ValueError):
    """A sequence number, Value, amount or credit is not a valid colored-coin record."""


# ------------------------------------------------------------------ helpers


def _as_int(x: Any, what: str) -> int:
    """Return ``x`` as a Python int; bools, floats and other types are rejected."""
    if isinstance(x, bool | np.bool_) or not isinstance(x, int | np.integer):
        raise CodecError(f"{what} {x!r} is not an integer")
    return int(x)


def _check_exponent(exponent: Any, limit: int = MAX_EXPONENT) -> int:
    e = _as_int(exponent, "padding exponent")
    if not 0 <= e <= limit:
        raise CodecError(f"padding exponent {e} is out of range: must be 0..{limit}")
    return e


def _label_of(kind: Any) -> int:
    if isinstance(kind, str):
        if kind not in _LABEL_BY_NAME:
            raise CodecError(
                f"kind {kind!r} is not a colored-coin kind: use 'generated' or 'transferred'"
            )
        return _LABEL_BY_NAME[kind]
    label = _as_int(kind, "kind")
    if label not in LABELS:
        raise CodecError(f"kind 0x{label:02X} is not a colored-coin label {_LABEL_HELP}")
    return label


# ------------------------------------------------------------------ sequence number


def encode_sequence(kind: int | str, exponent: int) -> int:
    """Sequence number ``label | (exponent << 6)`` ([DIPI] eq. 3).

    ``kind`` is a label value (0x25, 0x33) or its name ("generated",
    "transferred"); ``exponent`` is 0..63.
    """
    label = _label_of(kind)
    e = _check_exponent(exponent)
    return label | (e << EXPONENT_SHIFT)


def decode_sequence(seq: int) -> tuple[int, int]:
    """``(label, exponent)`` of a sequence number ([DIPI] eqs. 3-4).

    Raises :class:`CodecError` if ``seq`` is not a uint32, carries an unknown
    type label, or has any bit above bit 11 set (see the module docstring).
    """
    s = _as_int(seq, "sequence number")
    if not 0 <= s < UINT32_LIMIT:
        raise CodecError(f"sequence number {s} is not a uint32 (must be 0..0xFFFFFFFF)")
    label = s & LABEL_MASK
    if label not in LABELS:
        raise CodecError(
            f"sequence number 0x{s:08X}: type label 0x{label:02X} is not a colored-coin "
            f"label {_LABEL_HELP}"
        )
    high = s & ~USED_BITS
    if high:
        raise CodecError(
            f"sequence number 0x{s:08X}: bits above bit 11 are set (0x{high:08X}); a "
            "colored-coin sequence number uses only bits 0-11 (label and padding exponent)"
        )
    return label, (s & EXPONENT_MASK) >> EXPONENT_SHIFT


# ------------------------------------------------------------------ output Value


def encode_value(amount: int, exponent: int) -> int:
    """Output Value = Padding + Ve = ``2**exponent + amount`` ([DIPI] eq. 5)."""
    a = _as_int(amount, "colored-coin amount")
    if a < 0:
        raise CodecError(f"colored-coin amount {a} is negative: must be >= 0")
    e = _check_exponent(exponent)
    return (1 << e) + a


def decode_value(value: int, exponent: int) -> int:
    """Colored-coin amount Ve = Value - Padding ([DIPI] eq. 6).

    Raises :class:`CodecError` if the Value is below ``Padding = 2**exponent``.
    """
    v = _as_int(value, "Value")
    e = _check_exponent(exponent)
    padding = 1 << e
    if v < padding:
        raise CodecError(
            f"Value {v} is below the padding 2**{e} = {padding}: a colored-coin output "
            "carries Value = Padding + Ve with Ve >= 0"
        )
    return v - padding


@dataclass(frozen=True)
class ColoredOutput:
    """One colored-coin output: type label, padding exponent and amount Ve.

    ``kind`` may be given as a label name; it is stored as the label value.
    """

    kind: int
    exponent: int
    amount: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _label_of(self.kind))
        object.__setattr__(self, "exponent", _check_exponent(self.exponent))
        a = _as_int(self.amount, "colored-coin amount")
        if a < 0:
            raise CodecError(f"colored-coin amount {a} is negative: must be >= 0")
        object.__setattr__(self, "amount", a)

    @property
    def kind_name(self) -> str:
        return LABELS[self.kind]

    @property
    def padding(self) -> int:
        return 1 << self.exponent

    def encode(self) -> tuple[int, int]:
        """``(sequence, value)``."""
        return (
            encode_sequence(self.kind, self.exponent),
            encode_value(self.amount, self.exponent),
        )

    @classmethod
    def decode(cls, sequence: int, value: int) -> ColoredOutput:
        label, exponent = decode_sequence(sequence)
        return cls(label, exponent, decode_value(value, exponent))


# ------------------------------------------------------------------ credit


def credit_to_amount(credit: float) -> int:
    """Credit 0..100 -> centi-credits, ``credit * 100`` rounded half-even (0..10000).

    A credit a hair outside [0, 100] (float noise) is accepted if it rounds
    into 0..10000.
    """
    if isinstance(credit, bool | np.bool_) or not isinstance(
        credit, int | float | np.integer | np.floating
    ):
        raise CodecError(f"credit {credit!r} is not a number")
    c = float(credit)
    if not np.isfinite(c):
        raise CodecError(f"credit {c} is not finite: must be in [0, 100]")
    amount = round(c * CREDIT_SCALE)  # round() is half-even, like np.rint
    if not 0 <= amount <= AMOUNT_MAX:
        raise CodecError(f"credit {c} is out of range: must be in [0, {CREDIT_MAX:g}]")
    return amount


def amount_to_credit(amount: int) -> float:
    """Centi-credits 0..10000 -> credit 0..100."""
    a = _as_int(amount, "credit amount")
    if not 0 <= a <= AMOUNT_MAX:
        raise CodecError(
            f"credit amount {a} is out of range: must be 0..{AMOUNT_MAX} centi-credits"
        )
    return a / CREDIT_SCALE


def _decode_credit_record(sequence: Any, value: Any) -> tuple[int, int, float]:
    """Scalar reference for :func:`decode_credit_updates` (used for its messages)."""
    out = ColoredOutput.decode(sequence, value)
    return out.kind, out.exponent, amount_to_credit(out.amount)


def _first_bad(mask: NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask.ravel())[0])


def encode_credit_updates(
    credit: NDArray, first: NDArray, exponent: int = DEFAULT_EXPONENT
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Vectorised credit records: ``(sequence, value)`` int64 arrays.

    The label is GENERATED where ``first`` is True (a party's first credit
    record) and TRANSFERRED otherwise; ``value = 2**exponent + credit_to_amount(credit)``.
    ``exponent`` is 0..62 because Values are int64.
    """
    e = _check_exponent(exponent, MAX_ARRAY_EXPONENT)
    c = np.asarray(credit)
    f = np.asarray(first)
    if c.shape != f.shape:
        raise CodecError(f"credit has shape {c.shape} but first has shape {f.shape}")
    if f.dtype != np.bool_:
        raise CodecError(f"first must be a boolean array, got dtype {f.dtype}")
    if c.dtype == np.bool_ or not (
        np.issubdtype(c.dtype, np.floating) or np.issubdtype(c.dtype, np.integer)
    ):
        raise CodecError(f"credit must be a numeric array, got dtype {c.dtype}")
    c = c.astype(np.float64)
    scaled = c * CREDIT_SCALE
    bad = ~np.isfinite(scaled)
    amount = np.rint(np.where(bad, 0.0, scaled))
    bad |= (amount < 0) | (amount > AMOUNT_MAX)
    if bad.any():
        i = _first_bad(bad)
        try:
            credit_to_amount(float(c.ravel()[i]))
        except CodecError as err:
            raise CodecError(f"credit record {i}: {err}") from None
        raise AssertionError("unreachable")  # pragma: no cover
    label = np.where(f, GENERATED, TRANSFERRED).astype(np.int64)
    sequence = label | np.int64(e << EXPONENT_SHIFT)
    value = amount.astype(np.int64) + np.int64(1 << e)
    return sequence, value


def credit_as_recorded(credit: NDArray) -> NDArray[np.float64]:
    """Credit as an LH1 record carries it (whole centi-credits, rounded half-even like
    :func:`encode_credit_updates`): what a verifier re-derives a POCA target from."""
    return np.rint(np.asarray(credit, dtype=np.float64) * CREDIT_SCALE) / CREDIT_SCALE


def decode_credit_updates(
    sequence: NDArray, value: NDArray
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Vectorised inverse of :func:`encode_credit_updates`: ``(label, exponent, credit)``.

    Every element must be a valid colored-coin record whose amount is a
    credit (0..10000 centi-credits); otherwise :class:`CodecError` names the
    first bad (flat) index and why.
    """
    s = np.asarray(sequence)
    v = np.asarray(value)
    if s.shape != v.shape:
        raise CodecError(f"sequence has shape {s.shape} but value has shape {v.shape}")
    for name, arr in (("sequence", s), ("value", v)):
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise CodecError(f"{name} must be an integer array, got dtype {arr.dtype}")

    # sequence: uint32 with only bits 0-11 used and a colored-coin label
    seq_ok = (s >= 0) & (s <= USED_BITS)
    s64 = np.where(seq_ok, s, 0).astype(np.int64)
    label = s64 & LABEL_MASK
    seq_ok &= (label == GENERATED) | (label == TRANSFERRED)
    exponent = (s64 & EXPONENT_MASK) >> EXPONENT_SHIFT

    # value: Padding <= value <= Padding + AMOUNT_MAX, compared in uint64 (2**63 fits)
    val_ok = v >= 0
    v_u = np.where(val_ok, v, 0).astype(np.uint64)
    padding = np.left_shift(np.uint64(1), exponent.astype(np.uint64))
    val_ok &= v_u >= padding
    amount_u = np.where(val_ok, v_u - np.where(val_ok, padding, 0), 0).astype(np.uint64)
    val_ok &= amount_u <= AMOUNT_MAX

    bad = ~(seq_ok & val_ok)
    if bad.any():
        i = _first_bad(bad)
        try:
            _decode_credit_record(s.ravel()[i], v.ravel()[i])
        except CodecError as err:
            raise CodecError(f"credit record {i}: {err}") from None
        raise AssertionError("unreachable")  # pragma: no cover
    credit = amount_u.astype(np.int64) / CREDIT_SCALE
    return label, exponent, credit
