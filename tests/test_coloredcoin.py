"""Colored-coin credit proof (docs/model.md section 7, [DIPI] eqs. 3-6)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dipi_abm.ledger.coloredcoin import (
    CREDIT_SCALE,
    DEFAULT_EXPONENT,
    GENERATED,
    LABELS,
    TRANSFERRED,
    CodecError,
    ColoredOutput,
    amount_to_credit,
    credit_to_amount,
    decode_credit_updates,
    decode_sequence,
    decode_value,
    encode_credit_updates,
    encode_sequence,
    encode_value,
)

FAST = settings(max_examples=60, deadline=None)

labels = st.sampled_from([GENERATED, TRANSFERRED])
kinds = st.one_of(labels, st.sampled_from(["generated", "transferred"]))
exponents = st.integers(0, 63)
amounts = st.integers(0, 2**40)
VALID_SEQUENCES = sorted(label | (e << 6) for label in LABELS for e in range(64))


# ------------------------------------------------------------------ constants and example


def test_constants():
    assert GENERATED == 0x25 and TRANSFERRED == 0x33
    assert LABELS == {0x25: "generated", 0x33: "transferred"}
    assert CREDIT_SCALE == 100
    assert DEFAULT_EXPONENT == 10
    assert issubclass(CodecError, ValueError)


def test_hand_worked_example():
    seq = 0x25 | (10 << 6)
    assert seq == 0x2A5
    value = 1024 + 9876
    assert decode_sequence(seq) == (GENERATED, 10)
    assert decode_value(value, 10) == 9876
    assert amount_to_credit(9876) == 98.76
    out = ColoredOutput.decode(seq, value)
    assert out == ColoredOutput(GENERATED, 10, 9876)
    assert out.kind_name == "generated" and out.padding == 1024
    assert out.encode() == (0x2A5, 10900)
    label, exponent, credit = decode_credit_updates(np.array([seq]), np.array([value]))
    assert label.tolist() == [GENERATED] and exponent.tolist() == [10]
    assert credit.tolist() == [98.76]
    s, v = encode_credit_updates(np.array([98.76]), np.array([True]))
    assert s.tolist() == [0x2A5] and v.tolist() == [10900]


def test_transferred_example():
    assert encode_sequence("transferred", 0) == 0x33
    assert encode_sequence(TRANSFERRED, 63) == 0x33 | 0xFC0 == 0xFF3
    assert decode_sequence(0xFF3) == (TRANSFERRED, 63)
    assert encode_value(5, 63) == 2**63 + 5


# ------------------------------------------------------------------ exact inverses


def test_every_sequence_in_low_12_bits_exactly_the_valid_ones_decode():
    """Exhaustive over 0..0xFFF: the 128 valid numbers round-trip, the rest raise."""
    valid = set(VALID_SEQUENCES)
    assert len(valid) == 128
    for seq in range(0x1000):
        if seq in valid:
            label, exponent = decode_sequence(seq)
            assert label == seq & 0x3F and exponent == (seq & 0xFC0) >> 6
            assert encode_sequence(label, exponent) == seq
            assert encode_sequence(LABELS[label], exponent) == seq
        else:
            with pytest.raises(CodecError, match="is not a colored-coin label"):
                decode_sequence(seq)


def test_every_label_and_exponent_round_trips():
    for label, name in LABELS.items():
        for exponent in range(64):
            for amount in (0, 1, 9876, 2**exponent, 2**40):
                out = ColoredOutput(name, exponent, amount)
                seq, value = out.encode()
                assert seq == label | exponent << 6 and value == 2**exponent + amount
                assert ColoredOutput.decode(seq, value) == out
                assert ColoredOutput.decode(seq, value).encode() == (seq, value)


@FAST
@given(kind=kinds, exponent=exponents, amount=amounts)
def test_decode_encode_is_identity(kind, exponent, amount):
    out = ColoredOutput(kind, exponent, amount)
    seq, value = out.encode()
    assert 0 <= seq < 2**32
    assert value == 2**exponent + amount
    assert ColoredOutput.decode(seq, value) == out
    assert decode_sequence(encode_sequence(kind, exponent))[1] == exponent
    assert decode_value(encode_value(amount, exponent), exponent) == amount


@FAST
@given(seq=st.sampled_from(VALID_SEQUENCES), amount=amounts)
def test_encode_decode_is_identity_for_every_valid_pair(seq, amount):
    value = 2 ** ((seq >> 6) & 0x3F) + amount
    assert ColoredOutput.decode(seq, value).encode() == (seq, value)
    label, exponent = decode_sequence(seq)
    assert encode_sequence(label, exponent) == seq
    assert encode_value(decode_value(value, exponent), exponent) == value


def test_numpy_integers_accepted():
    assert decode_sequence(np.uint32(0x2A5)) == (GENERATED, 10)
    assert decode_value(np.int64(10900), np.int8(10)) == 9876
    assert ColoredOutput(np.int64(0x33), np.int64(3), np.int64(7)).encode() == (0xF3, 15)


# ------------------------------------------------------------------ malformed input


@FAST
@given(seq=st.integers(0, 2**32 - 1).filter(lambda s: (s & 0x3F) not in LABELS))
def test_bad_label_rejected(seq):
    with pytest.raises(CodecError, match=r"type label 0x[0-9A-F]{2} is not a colored-coin"):
        decode_sequence(seq)


@FAST
@given(low=st.sampled_from(VALID_SEQUENCES), high=st.integers(1, 2**20 - 1))
def test_high_bits_rejected(low, high):
    seq = low | (high << 12)
    assert seq < 2**32
    with pytest.raises(CodecError, match="bits above bit 11 are set"):
        decode_sequence(seq)


@pytest.mark.parametrize("seq", [0xFFFFFFE5, 0x80000025, 0x00001025, 0x004002A5])
def test_bitcoin_style_high_bits_rejected(seq):
    with pytest.raises(CodecError, match="bits above bit 11"):
        decode_sequence(seq)


def test_final_sequence_rejected():
    with pytest.raises(CodecError, match="type label 0x3F is not a colored-coin label"):
        decode_sequence(0xFFFFFFFF)


@FAST
@given(seq=st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32)))
def test_out_of_uint32_rejected(seq):
    with pytest.raises(CodecError, match="is not a uint32"):
        decode_sequence(seq)


@pytest.mark.parametrize(
    "seq", [37.0, 0x2A5 + 0.0, "0x25", b"\x25", None, True, False, Decimal(37), Fraction(37)]
)
def test_non_int_sequence_rejected(seq):
    with pytest.raises(CodecError, match="is not an integer"):
        decode_sequence(seq)


def test_message_is_one_line_and_names_the_number():
    with pytest.raises(CodecError) as err:
        decode_sequence(0xABC)
    msg = str(err.value)
    assert msg == (
        "sequence number 0x00000ABC: type label 0x3C is not a colored-coin label "
        "(0x25 generated, 0x33 transferred)"
    )
    assert "\n" not in msg


@FAST
@given(exponent=exponents, data=st.data())
def test_value_below_padding_rejected(exponent, data):
    value = data.draw(st.integers(-(2**64), 2**exponent - 1))
    with pytest.raises(CodecError, match="is below the padding"):
        decode_value(value, exponent)
    seq = encode_sequence(GENERATED, exponent)
    with pytest.raises(CodecError, match="is below the padding"):
        ColoredOutput.decode(seq, value)


@pytest.mark.parametrize("exponent", [-1, 64, 1000])
def test_bad_exponent_rejected(exponent):
    with pytest.raises(CodecError, match="padding exponent"):
        encode_sequence(GENERATED, exponent)
    with pytest.raises(CodecError, match="padding exponent"):
        encode_value(0, exponent)
    with pytest.raises(CodecError, match="padding exponent"):
        decode_value(2**70, exponent)


@pytest.mark.parametrize("kind", [0x24, 0, 0x3F, "Generated", "minted", 37.0, None])
def test_bad_kind_rejected(kind):
    with pytest.raises(CodecError, match="kind"):
        encode_sequence(kind, 3)
    with pytest.raises(CodecError, match="kind"):
        ColoredOutput(kind, 3, 0)


@pytest.mark.parametrize("amount", [-1, 1.5, 2.0, None, True])
def test_bad_amount_rejected(amount):
    with pytest.raises(CodecError, match="amount"):
        encode_value(amount, 3)
    with pytest.raises(CodecError, match="amount"):
        ColoredOutput(GENERATED, 3, amount)


def test_colored_output_is_frozen_and_normalises_kind():
    out = ColoredOutput("transferred", 2, 1)
    assert out.kind == TRANSFERRED and type(out.kind) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.amount = 2  # type: ignore[misc]


# ------------------------------------------------------------------ credit


def test_credit_amount_round_half_even():
    assert credit_to_amount(0.0) == 0
    assert credit_to_amount(100.0) == 10000
    assert credit_to_amount(98.76) == 9876
    assert credit_to_amount(0.125) == 12  # 12.5 -> 12 (half-even)
    assert credit_to_amount(0.375) == 38  # 37.5 -> 38
    assert credit_to_amount(100.004) == 10000  # float noise tolerated
    assert amount_to_credit(10000) == 100.0
    assert amount_to_credit(0) == 0.0


@pytest.mark.parametrize("credit", [-0.01, 100.01, 1e9, float("nan"), float("inf"), None, "5"])
def test_bad_credit_rejected(credit):
    with pytest.raises(CodecError, match="credit"):
        credit_to_amount(credit)


@pytest.mark.parametrize("amount", [-1, 10001, 2**40, 5.0])
def test_bad_credit_amount_rejected(amount):
    with pytest.raises(CodecError, match="credit amount"):
        amount_to_credit(amount)


def test_every_amount_round_trips():
    for a in range(10001):
        assert credit_to_amount(amount_to_credit(a)) == a


@FAST
@given(credit=st.floats(0.0, 100.0))
def test_credit_round_trip_to_centi_precision(credit):
    back = amount_to_credit(credit_to_amount(credit))
    assert abs(back - credit) <= 0.005 + 1e-9
    assert credit_to_amount(back) == credit_to_amount(credit)


# ------------------------------------------------------------------ vectorised path

credit_arrays = hnp.arrays(np.float64, st.integers(0, 40), elements=st.floats(0.0, 100.0))


@FAST
@given(credit=credit_arrays, data=st.data(), exponent=st.integers(0, 62))
def test_vectorised_agrees_with_scalar_and_round_trips(credit, data, exponent):
    first = data.draw(hnp.arrays(np.bool_, credit.shape))
    seq, value = encode_credit_updates(credit, first, exponent)
    assert seq.dtype == np.int64 and value.dtype == np.int64
    for c, f, s, v in zip(credit, first, seq, value, strict=True):
        out = ColoredOutput(GENERATED if f else TRANSFERRED, exponent, credit_to_amount(c))
        assert out.encode() == (int(s), int(v))
    label, exp, back = decode_credit_updates(seq, value)
    assert label.tolist() == np.where(first, GENERATED, TRANSFERRED).tolist()
    assert (exp == exponent).all()
    expected = [amount_to_credit(credit_to_amount(c)) for c in credit]
    assert back.tolist() == expected  # bit-identical to the scalar path
    np.testing.assert_allclose(back, credit, atol=0.005 + 1e-9, rtol=0)
    s2, v2 = encode_credit_updates(back, label == GENERATED, exponent)
    assert np.array_equal(s2, seq) and np.array_equal(v2, value)


@FAST
@given(seq=st.lists(st.sampled_from(VALID_SEQUENCES), min_size=0, max_size=30), data=st.data())
def test_vectorised_decode_agrees_with_scalar_decode(seq, data):
    # exponent 63 gives a padding of 2**63, which no int64 Value reaches
    seq = [s for s in seq if (s >> 6) < 63]
    amt = data.draw(st.lists(st.integers(0, 10000), min_size=len(seq), max_size=len(seq)))
    value = [2 ** (s >> 6) + a for s, a in zip(seq, amt, strict=True)]
    label, exponent, credit = decode_credit_updates(np.array(seq, dtype=np.int64),
                                                    np.array(value, dtype=np.int64))
    for i, (s, v) in enumerate(zip(seq, value, strict=True)):
        out = ColoredOutput.decode(s, v)
        assert (label[i], exponent[i], credit[i]) == (out.kind, out.exponent,
                                                      amount_to_credit(out.amount))


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32, np.int64, np.uint64])
def test_vectorised_decode_accepts_integer_dtypes(dtype):
    seq = np.array([0x2A5, 0x33 | (3 << 6)], dtype=dtype)
    value = np.array([10900, 8 + 10000], dtype=dtype)
    label, exponent, credit = decode_credit_updates(seq, value)
    assert label.tolist() == [GENERATED, TRANSFERRED]
    assert exponent.tolist() == [10, 3]
    assert credit.tolist() == [98.76, 100.0]


def test_vectorised_empty():
    seq, value = encode_credit_updates(np.array([]), np.array([], dtype=bool))
    assert seq.shape == value.shape == (0,)
    label, exponent, credit = decode_credit_updates(seq, value)
    assert label.shape == exponent.shape == credit.shape == (0,)


BAD_RECORDS = [(0xABC, 1024, "type label 0x3C"), (0x2A5 | 1 << 12, 1024, "bits above bit 11"),
               (-1, 1024, "is not a uint32"), (2**32 + 0x2A5, 1024, "is not a uint32"),
               (0x2A5, 1023, "is below the padding"), (0x2A5, -5, "is below the padding"),
               (0x2A5, 1024 + 10001, "credit amount 10001 is out of range"),
               (0x25 | 63 << 6, 2**62, "is below the padding 2\\*\\*63")]


@pytest.mark.parametrize(("bad_seq", "bad_value", "match"), BAD_RECORDS)
@FAST
@given(n=st.integers(1, 20), data=st.data())
def test_vectorised_decode_names_first_bad_index(bad_seq, bad_value, match, n, data):
    seq, value = encode_credit_updates(np.full(n, 50.0), np.zeros(n, dtype=bool))
    i = data.draw(st.integers(0, n - 1))
    seq[i], value[i] = bad_seq, bad_value
    # a second bad record later must not be the one reported
    if i + 1 < n:
        seq[i + 1] = 0xABC
    with pytest.raises(CodecError, match=f"^credit record {i}: .*{match}"):
        decode_credit_updates(seq, value)
    # the scalar decoder rejects the same record
    with pytest.raises(CodecError):
        ColoredOutput.decode(int(seq[i]), int(value[i]))
        amount_to_credit(decode_value(int(value[i]), decode_sequence(int(seq[i]))[1]))


@FAST
@given(seq=hnp.arrays(np.uint32, st.integers(1, 20)))
def test_vectorised_decode_random_uint32_matches_scalar_validity(seq):
    # a Value that is valid whenever the sequence number is (uint64 holds 2**63 + 5000)
    value = np.array([2 ** ((int(s) >> 6) & 0x3F) + 5000 for s in seq], dtype=np.uint64)
    valid = [(int(s) & 0x3F) in LABELS and int(s) <= 0xFFF for s in seq]
    if all(valid):
        assert (decode_credit_updates(seq, value)[2] == 50.0).all()
        return
    first_bad = valid.index(False)
    with pytest.raises(CodecError, match=f"^credit record {first_bad}: sequence number"):
        decode_credit_updates(seq, value)


def test_vectorised_decode_rejects_bad_arrays():
    with pytest.raises(CodecError, match="shape"):
        decode_credit_updates(np.array([0x2A5]), np.array([1024, 1024]))
    with pytest.raises(CodecError, match="sequence must be an integer array"):
        decode_credit_updates(np.array([677.0]), np.array([1024]))
    with pytest.raises(CodecError, match="value must be an integer array"):
        decode_credit_updates(np.array([0x2A5]), np.array([1024.0]))
    with pytest.raises(CodecError, match="sequence must be an integer array"):
        decode_credit_updates(np.array([True]), np.array([1024]))


@pytest.mark.parametrize("bad", [-0.01, 100.01, float("nan"), float("inf")])
def test_vectorised_encode_names_first_bad_credit(bad):
    credit = np.array([10.0, 20.0, bad, 30.0, -5.0])
    with pytest.raises(CodecError, match="^credit record 2: credit"):
        encode_credit_updates(credit, np.zeros(5, dtype=bool))


def test_vectorised_encode_rejects_bad_arguments():
    with pytest.raises(CodecError, match="shape"):
        encode_credit_updates(np.array([1.0, 2.0]), np.array([True]))
    with pytest.raises(CodecError, match="boolean"):
        encode_credit_updates(np.array([1.0]), np.array([1]))
    with pytest.raises(CodecError, match="numeric"):
        encode_credit_updates(np.array(["1"]), np.array([True]))
    with pytest.raises(CodecError, match="padding exponent 63 is out of range: must be 0..62"):
        encode_credit_updates(np.array([1.0]), np.array([True]), 63)
    seq, value = encode_credit_updates(np.array([100.0]), np.array([True]), 62)
    assert value.tolist() == [2**62 + 10000]
    assert decode_credit_updates(seq, value)[2].tolist() == [100.0]
