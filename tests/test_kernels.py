"""The compiled kernels of the hourly path against the numpy code they replace (dipi_abm.jit).

Every kernel must give the numpy reference's result to the last bit (NaN and the sign
of zero included) on any input, so that a run's outputs do not depend on which of the
two computed them: hypothesis draws the inputs, with zeros, ties, NaN and infinities.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dipi_abm import market
from dipi_abm.rules import settlement

KERNEL = settings(max_examples=150, deadline=None)

#: Volumes, prices and money: mostly ordinary values, with the edge cases in the mix.
SPECIAL = st.sampled_from([0.0, -0.0, 1.0, 1e-300, 1e300, np.inf, -np.inf, np.nan])
ORDINARY = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
VALUE = st.one_of(ORDINARY, ORDINARY, ORDINARY, SPECIAL)
NONNEG = st.one_of(st.floats(0.0, 1e6), st.sampled_from([0.0, 1e-300, np.inf, np.nan]))


def same(a, b) -> bool:
    """Equal to the bit: values, NaN positions and signs of zero. (Not a NaN's sign or
    payload: which operand's NaN an IEEE operation passes on is the hardware's choice.)"""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    number = ~np.isnan(a)
    return bool(np.array_equal(a, b, equal_nan=True)
                and np.array_equal(np.signbit(a[number]), np.signbit(b[number])))


def floats(n: int, elements=VALUE):
    return hnp.arrays(np.float64, n, elements=elements)


@st.composite
def contracts(draw, values=VALUE):
    """Parties' per-row columns and contracts between them (rows may repeat)."""
    n = draw(st.integers(1, 40))
    k = draw(st.integers(0, 120))
    rows = st.integers(0, n - 1)
    return {
        "n": n,
        "seller": draw(hnp.arrays(np.intp, k, elements=rows)),
        "buyer": draw(hnp.arrays(np.intp, k, elements=rows)),
        "volume": draw(floats(k, values)),
        "a": draw(floats(k, values)),
        "b": draw(floats(k, values)),
        "x": draw(floats(n, values)),
        "y": draw(floats(n, values)),
        "z": draw(floats(n, values)),
        "flag": draw(hnp.arrays(np.bool_, n)),
        "r": draw(VALUE),
        "f": draw(VALUE),
    }


# ----------------------------------------------------------------------------- settlement
@KERNEL
@given(contracts())
def test_settle_kernel_is_numpy(c):
    got = settlement.settle(c["a"], c["volume"], c["b"], c["volume"], c["b"][::-1], c["r"],
                            c["f"])
    want = settlement._settle_numpy(c["a"], c["b"], c["volume"], c["b"][::-1],
                                    np.float64(c["r"]), np.float64(c["f"]))
    for name in ("direct", "buyer_pays", "seller_income", "grid_income", "shortfall", "surplus"):
        assert same(getattr(got, name), getattr(want, name)), name


@KERNEL
@given(contracts(), st.booleans())
def test_attribute_pro_rata_kernel_is_numpy(c, matched_from_contracts):
    matched = (np.bincount(c["seller"], np.abs(c["volume"]), c["n"]) if matched_from_contracts
               else c["y"])
    got = settlement.attribute_pro_rata(c["x"], matched, c["seller"], c["volume"])
    assert same(got, settlement._attribute_pro_rata_numpy(c["x"], matched, c["seller"],
                                                          c["volume"]))


# ----------------------------------------------------------------------------- market
@KERNEL
@given(contracts())
def test_outside_contracts_kernel_is_numpy(c):
    got = market._outside_contracts(c["x"], c["y"], c["z"], c["flag"])
    want = market._outside_contracts_numpy(c["x"], c["y"], c["z"], c["flag"])
    assert all(same(g, w) for g, w in zip(got, want, strict=True))


@KERNEL
@given(contracts())
def test_party_transfer_kernel_is_numpy(c):
    args = (c["n"], c["seller"], c["a"], c["buyer"], c["b"], c["x"], c["f"], c["y"], c["r"])
    assert same(market._party_transfer(*args), market._party_transfer_numpy(*args))
