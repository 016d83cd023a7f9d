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

from dipi_abm import hour as hour_mod
from dipi_abm import jit, market, parties
from dipi_abm.hour import (
    BUYER,
    SELLER,
    Cleared,
    Delivery,
    HourSettlement,
    Orders,
    Schedule,
    credit_kpis,
    market_kpis,
)
from dipi_abm.physics.weather import HourDraw, Weather, WeatherParams, solar_clear_sky
from dipi_abm.rules import consensus, credit, settlement
from dipi_abm.rules.consensus import QuorumOutcome
from dipi_abm.rules.credit import CreditState
from dipi_abm.rules.matching import Contracts

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


# ----------------------------------------------------------------------------- parties
FORECAST = st.one_of(st.floats(0.0, 1e3), st.sampled_from([0.0, 1e-9, 2e-9, 1e-10]))


@KERNEL
@given(st.integers(0, 60).flatmap(lambda n: st.tuples(floats(n, FORECAST), floats(n, FORECAST))))
def test_sides_and_order_volumes_kernels_are_numpy(pair):
    load, gen = pair
    n = load.size
    role_k, role_n = np.full(n, 7, np.int8), np.full(n, 7, np.int8)
    got, want = parties._sides(load, gen, role_k), parties._sides_numpy(load, gen, role_n)
    assert all(same(g, w) for g, w in zip(got, want, strict=True)) and same(role_k, role_n)
    ratio = np.linspace(0.5, 1.0, n)
    off_k, off_n = np.full(n, np.nan), np.full(n, np.nan)
    parties._order_volumes(got[0], ratio, ratio[::-1], off_k)
    parties._order_volumes_numpy(want[0], ratio, ratio[::-1], off_n)
    assert same(off_k, off_n)


@KERNEL
@given(contracts(), VALUE, VALUE)
def test_book_columns_kernel_is_numpy(c, r, f):
    rows = np.arange(c["n"])
    sell, buy = rows[c["flag"]], rows[~c["flag"]]
    bus = (rows * 3) % 5
    args = (sell, buy, bus, c["x"], c["y"], c["z"], c["y"][::-1], c["x"][::-1], r, f, r - f)
    got, want = parties._book_columns(*args), parties._book_columns_numpy(*args)
    assert all(same(g, w) for g, w in zip(got, want, strict=True))


@KERNEL
@given(contracts())
def test_delivery_kernels_are_numpy(c):
    n = c["n"]
    assert all(same(g, w) for g, w in zip(parties._surplus_and_need(c["x"], c["y"]),
                                          parties._surplus_and_need_numpy(c["x"], c["y"]),
                                          strict=True))
    assert same(parties._committed(n, c["seller"], c["buyer"], c["volume"]),
                parties._committed_numpy(n, c["seller"], c["buyer"], c["volume"]))
    for keep in (1.0, 0.9, 0.0):
        got = parties._against_commitments(c["flag"], c["x"], c["y"], c["z"], keep)
        want = parties._against_commitments_numpy(c["flag"], c["x"], c["y"], c["z"], keep)
        assert all(same(g, w) for g, w in zip(got, want, strict=True))


@KERNEL
@given(contracts(NONNEG), st.sampled_from([0.0, 0.1, 0.2999]), st.booleans())
def test_scores_kernel_is_numpy(c, natural_factor, per_contract):
    role = np.where(c["flag"], SELLER, BUYER).astype(np.int8)
    out_k, out_n = np.full(c["n"], -1.0), np.full(c["n"], -1.0)
    args = (c["seller"], c["buyer"], per_contract)
    got = parties._scores(c["x"], c["y"], role, 1.0 - natural_factor, *args, out_k)
    want = parties._scores_numpy(c["x"], c["y"], role, natural_factor, *args, out_n)
    assert all(same(g, w) for g, w in zip(got, want, strict=True)) and same(out_k, out_n)


# ----------------------------------------------------------------------------- credit
@KERNEL
@given(contracts(NONNEG), st.one_of(st.none(), st.integers(0, 10_000)),
       st.sampled_from([1.0, 24.0, 168.0, 1e-3]), st.booleans())
def test_update_decay_kernels_are_numpy(c, hour, half_life, repeat):
    n = c["n"]
    idx = c["seller"][: n] if repeat else np.flatnonzero(c["flag"])
    score = np.resize(np.clip(c["y"], 0.0, 100.0), idx.size)
    k = np.resize(np.arange(1, 6), idx.size).astype(np.int64)
    states = []
    for _ in range(2):
        s = CreditState.new(n, 60.0, 4)
        s.weight[:] = np.nan_to_num(c["x"], posinf=1e9)
        s.last_hour[:] = np.nan_to_num(c["z"], nan=0.0, posinf=1e4)
        states.append(s)
    credit.update_decay(states[0], idx, score, k, half_life_h=half_life, hour=hour)
    credit._update_decay_numpy(states[1], idx, score, k, half_life_h=half_life, hour=hour)
    for name in ("credit", "weight", "last_hour", "count"):
        assert same(getattr(states[0], name), getattr(states[1], name)), name


# ----------------------------------------------------------------------------- weather
WEATHER_DRAW_FIELDS = HourDraw.__slots__


@st.composite
def weather_pairs(draw):
    """Two identical Weather objects over a random population and parameters."""
    n = draw(st.integers(0, 40))
    tech = draw(hnp.arrays(np.int8, n, elements=st.integers(-1, 3)))
    load_class = np.where(tech < 0, draw(hnp.arrays(np.int8, n, elements=st.integers(0, 3))),
                          draw(hnp.arrays(np.int8, n, elements=st.integers(-1, 3))))
    capacity = np.where(tech >= 0, draw(floats(n, st.floats(0.0, 5e3))), 0.0)
    mean_load = np.where(load_class >= 0, draw(floats(n, st.floats(0.0, 500.0))), 0.0)
    params = WeatherParams(
        clearness_persistence=draw(st.sampled_from([0.0, 0.5, 0.9])),
        clearness_sd=draw(st.sampled_from([0.0, 0.25, 3.0])),  # 3: the clip binds
        solar_regional_share=draw(st.sampled_from([0.0, 0.7, 1.0])),
        wind_persistence=draw(st.sampled_from([0.0, 0.95])),
        wind_rated_ms=draw(st.sampled_from([5.0, 12.0])),
        wind_cut_out_ms=draw(st.sampled_from([14.0, 25.0])),
        outage_rate_per_h=draw(st.sampled_from([0.002, 0.5])),
        load_noise_sd=draw(st.sampled_from([0.08, 2.0])),  # 2: the load floor binds
        forecast_sd_load=draw(st.sampled_from([0.1, 5.0])),
        forecast_sd_wind=draw(st.sampled_from([0.22, 5.0])),  # 5: the forecast clip binds
        forecast_lead_h=draw(st.sampled_from([0.0, 2.0, 24.0])),
    )
    start = draw(st.integers(0, 8760))
    seed = np.random.SeedSequence(draw(st.integers(0, 2**32 - 1)))
    return [Weather(tech=tech, capacity_kw=capacity, load_class=load_class,
                    mean_load_kw=mean_load, params=params, seed=seed, start_hour=start)
            for _ in range(2)]


@settings(max_examples=60, deadline=None)
@given(weather_pairs())
def test_weather_step_is_its_numpy_reference(pair):
    fast, slow = pair
    for _ in range(30):
        a, b = fast.step(), slow._step_numpy()
        for name in WEATHER_DRAW_FIELDS:
            assert same(getattr(a, name), getattr(b, name)), name
    for name in ("_solar_unit", "_wind_unit", "_gen_err", "_load_noise", "_load_err",
                 "_solar_regional", "_wind_regional", "_up_history"):
        assert same(getattr(fast, name), getattr(slow, name)), name


# ----------------------------------------------------------------------------- sums and KPIs
@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(0, 300), st.integers(300, 5000), st.sampled_from([8191, 8192, 20001])),
       st.integers(0, 2**32 - 1), st.sampled_from(["spread", "zeros", "special"]))
def test_pairwise_sum_is_numpy_sum(n, seed, kind):
    rng = np.random.default_rng(seed)
    a = {"spread": lambda: rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8, n),
         "zeros": lambda: np.where(rng.random(n) < 0.5, -0.0, 0.0),
         "special": lambda: rng.choice([0.0, -0.0, 1e308, -1e308, np.inf, 1e-320, 3.5], n)}[kind]()
    assert same(jit.pairwise_sum(a, 0, n), a.sum())
    lo = n // 3
    assert same(jit.pairwise_sum(a, lo, n // 2), a[lo:lo + n // 2].sum())


@st.composite
def market_hours(draw):
    """One hour's phase results with random columns (only what market_kpis reads)."""
    c = draw(contracts(NONNEG))
    n, k = c["n"], c["volume"].size
    col = floats(n, NONNEG)
    kind = draw(hnp.arrays(np.int8, n, elements=st.integers(0, 1)))
    tech = draw(hnp.arrays(np.int8, n, elements=st.integers(-1, 3)))
    role = draw(hnp.arrays(np.int8, n, elements=st.sampled_from([SELLER, BUYER, 0])))
    contract_cols = [draw(floats(k, NONNEG)) for _ in range(5)]
    settled = settlement.Settlement(*contract_cols, draw(floats(k, NONNEG)))
    quorum = QuorumOutcome(draw(st.booleans()), draw(st.booleans()), 3, 1)
    schedule = Schedule(1, 5, 0.657, 0.4)
    orders = Orders(None, draw(col), role, draw(col))
    cleared = Cleared(Contracts(c["buyer"], c["seller"], c["volume"], c["a"], c["b"], c["b"],
                                rounds=2), draw(floats(k, NONNEG)), quorum, 1.5)
    delivery = Delivery(draw(col), draw(col), draw(col), draw(col), draw(col),
                        draw(hnp.arrays(np.bool_, n)), draw(hnp.arrays(np.bool_, n)), 0.5, 0.25)
    money = HourSettlement(settled, draw(floats(n)), 3.25, draw(col), draw(col), draw(col))
    return (schedule, orders, cleared, delivery, money, kind, tech, draw(col), draw(col))


@KERNEL
@given(market_hours())
def test_market_kpis_kernel_is_numpy(hour):
    got, want = market_kpis(*hour), hour_mod._market_kpis_numpy(*hour)
    assert list(got) == list(want)
    for name in got:
        assert type(got[name]) is type(want[name]) and same(got[name], want[name]), name


@KERNEL
@given(st.integers(0, 500).flatmap(lambda n: st.tuples(
    hnp.arrays(np.int8, n, elements=st.integers(0, 2)), floats(n, st.floats(0.0, 100.0)))))
def test_credit_kpis_kernel_is_numpy(pair):
    kind, credit_ = pair
    got, want = credit_kpis(kind, credit_), hour_mod._credit_kpis_numpy(kind, credit_)
    assert list(got) == list(want) and all(same(got[k], want[k]) for k in got)


# ----------------------------------------------------------------------------- consensus
@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.integers(0, 2**32 - 1),
       st.sampled_from(["weights", "sparse", "ties", "negative", "nan", "inf"]),
       st.floats(0.0, 1.0, exclude_max=True))
def test_draw_from_kernel_is_numpy(n, seed, kind, u):
    rng = np.random.default_rng(seed)
    w = {"weights": lambda: rng.random(n),
         "sparse": lambda: np.where(rng.random(n) < 0.05, rng.random(n), 0.0),
         "ties": lambda: rng.choice([0.0, 0.25, 0.5], n),
         "negative": lambda: rng.standard_normal(n),
         "nan": lambda: np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
         "inf": lambda: np.where(rng.random(n) < 0.1, np.inf, rng.random(n))}[kind]()
    for p in (w, w / w.sum() if n and w.sum() > 0 else w):
        assert consensus.draw_from(p, FixedUniform(u)) == consensus._draw_from_numpy(p, u)


class FixedUniform:
    """A generator whose every uniform is ``u``."""

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self) -> float:
        return self.u



@settings(max_examples=8, deadline=None)
@given(st.floats(-90.0, 90.0))
def test_weather_clear_sky_is_solar_clear_sky(latitude):
    w = Weather(tech=np.array([0], np.int8), capacity_kw=np.array([1.0]),
                load_class=np.array([-1], np.int8), mean_load_kw=np.array([0.0]),
                params=WeatherParams(latitude_deg=latitude), seed=np.random.SeedSequence(1))
    for day in range(1, 366):
        for hour in range(24):
            assert w._clear_sky(hour, day) == solar_clear_sky(hour + 0.5, day, latitude)


def test_stale_kernel_caches_are_dropped_when_a_kernel_module_changes(tmp_path):
    """numba keys a cached kernel by its own file: an edited callee in another module
    must not survive in a caller's cache."""
    from dipi_abm.jit import _drop_stale_caches

    (tmp_path / "sub").mkdir()
    callee, caller = tmp_path / "callee.py", tmp_path / "sub" / "caller.py"
    callee.write_text("@kernel\ndef f(x):\n    return x\n")
    caller.write_text("@kernel\ndef g(x):\n    return f(x)\n")
    (tmp_path / "plain.py").write_text("X = 1\n")
    cache = tmp_path / "sub" / "__pycache__"
    cache.mkdir()
    files = [cache / "caller.g-2.py311.nbi", cache / "caller.g-2.py311.1.nbc"]

    def cached() -> list[bool]:
        return [f.exists() for f in files]

    for f in files:
        f.write_bytes(b"x")
    assert _drop_stale_caches(tmp_path) is True and cached() == [False, False]  # no stamp yet
    for f in files:
        f.write_bytes(b"x")
    assert _drop_stale_caches(tmp_path) is False and cached() == [True, True]  # unchanged
    (tmp_path / "plain.py").write_text("X = 2\n")  # holds no kernel
    assert _drop_stale_caches(tmp_path) is False and cached() == [True, True]
    callee.write_text("@kernel\ndef f(x):\n    return x + 1\n")  # the callee changes
    assert _drop_stale_caches(tmp_path) is True and cached() == [False, False]
