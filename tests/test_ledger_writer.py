"""Periods appended on the ledger's writer thread (dipi_abm.ledger.writer): the same chains
as appended inline, in order, errors raised in the caller, whole periods only."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ledger import KEYS, period_records  # tests/ is on sys.path (rootdir)

from dipi_abm.errors import ConfigError
from dipi_abm.ledger.keys import AUTHORITY
from dipi_abm.ledger.records import LEDGER_THREAD_MIN_PARTIES, ledger_thread
from dipi_abm.ledger.store import CHAINS, Ledger, _columns, _digest_stream, table_digest
from dipi_abm.ledger.verify import verify_ledger, verify_open
from dipi_abm.ledger.writer import PeriodWriter
from dipi_abm.model import DIPIModel


def _fill(ledger: Ledger, hours: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ledger.write_genesis(period_records(rng, 0), KEYS.public_keys(), KEYS.signer(AUTHORITY))
    for hour in range(1, hours):
        ledger.submit_period(hour, period_records(rng, hour), KEYS.signer(f"node-{hour % 4}"))


@settings(max_examples=15, deadline=None)
@given(hours=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       detail=st.sampled_from(["digest", "full"]))
def test_background_chains_equal_inline_chains(hours, seed, detail):
    """Block for block, hash and signature included (Ed25519 is deterministic)."""
    chains, stored = [], []
    for background in (False, True):
        with Ledger(detail=detail, background=background,
                    keep=("LH1/credit",) if seed % 2 else ()) as ledger:
            _fill(ledger, hours, seed)
            chains.append({c: ledger.blocks(c) for c in CHAINS})
            stored.append({(c, b.index): ledger.read_records(c, b.index)
                           for c in CHAINS for b in chains[-1][c]})
            assert verify_open(ledger).ok
    assert chains[0] == chains[1]
    assert stored[0].keys() == stored[1].keys()
    for key, tables in stored[0].items():
        assert tables.keys() == stored[1][key].keys()
        for name, table in tables.items():
            for col, values in table.items():
                assert values.tobytes() == stored[1][key][name][col].tobytes()


def test_background_records_are_copied_before_the_caller_moves_on():
    """The model may reuse its arrays once submit_period returns."""
    rng = np.random.default_rng(3)
    periods = [period_records(rng, h) for h in range(4)]
    inline, background = Ledger(), Ledger(background=True)
    for ledger in (inline, background):
        ledger.write_genesis(periods[0], KEYS.public_keys(), KEYS.signer(AUTHORITY))
    for hour in range(1, 4):
        inline.submit_period(hour, periods[hour], KEYS.signer("node-1"))
        background.submit_period(hour, periods[hour], KEYS.signer("node-1"))
        for table in periods[hour]["JY1"].values():  # scribble over every column
            for values in table.values():
                if values.dtype.kind in "fi":
                    values[...] = 0
    assert background.heads() == inline.heads()
    inline.close()
    background.close()


def test_a_failed_period_is_raised_in_the_caller_and_rolled_back(tmp_path):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path, background=True)
    _fill(ledger, 3, seed=5)
    heads = ledger.heads()
    rng = np.random.default_rng(9)
    # a nonce below zero is refused when the worker builds the block
    ledger.submit_period(3, period_records(rng, 3), KEYS.signer("node-0"), nonce=-1)
    with pytest.raises(ValueError, match="nonce"):
        ledger.sync()
    with pytest.raises(ValueError, match="nonce"):  # and at every later call
        ledger.submit_period(4, period_records(rng, 4), KEYS.signer("node-0"))
    ledger.close()  # the error was raised already: closing just closes
    report = verify_ledger(path)
    assert report.ok and report.blocks == 3 * 3  # whole periods, none of hour 3
    assert heads["LH1"]["blocks"] == 3


def test_model_ledger_in_background_matches_inline(monkeypatch):
    """With the writer thread (DIPI_LEDGER_THREAD=1; by default from 4,000 parties) the
    Merkle roots, which commit to every record, are those of the inline append."""
    roots = []
    for background in (False, True):
        monkeypatch.setenv("DIPI_LEDGER_THREAD", str(int(background)))
        model = DIPIModel(rng=11, n_dpgc=8, n_users=40, hours=30)
        assert (model.ledger._writer is not None) == background
        model.run()
        # (genesis blocks differ: each run has keys of its own)
        roots.append({c: [(b.hour, b.merkle_root, b.producer)
                          for b in model.ledger.blocks(c)[1:]] for c in CHAINS})
        assert model.verify_ledger().ok
        assert model.summary()["chains"]["LH1"]["blocks"] == 31
        model.close()
    assert roots[0] == roots[1]


def test_hashed_poca_appends_inline(monkeypatch):
    monkeypatch.setenv("DIPI_LEDGER_THREAD", "1")  # its race needs the root at once
    model = DIPIModel(rng=2, n_dpgc=4, n_users=12, hours=3, poca_mode="hashed")
    assert model.ledger._writer is None
    model.run()
    assert model.verify_ledger().ok


def test_the_writer_thread_by_size_and_by_environment(monkeypatch):
    monkeypatch.delenv("DIPI_LEDGER_THREAD", raising=False)
    assert not ledger_thread(LEDGER_THREAD_MIN_PARTIES - 1, False)
    assert ledger_thread(LEDGER_THREAD_MIN_PARTIES, False)
    assert not ledger_thread(10**6, True)
    monkeypatch.setenv("DIPI_LEDGER_THREAD", "0")
    assert not ledger_thread(10**6, False)
    monkeypatch.setenv("DIPI_LEDGER_THREAD", "yes")
    with pytest.raises(ConfigError, match="DIPI_LEDGER_THREAD = 'yes': must be 1"):
        ledger_thread(10, False)


# ----------------------------------------------------------------------------- the queue
def test_writer_keeps_order_bounds_its_queue_and_stops_when_idle():
    done: list[int] = []
    started, gate = threading.Event(), threading.Event()

    def work(job: int) -> None:
        started.set()
        gate.wait()
        done.append(job)

    writer = PeriodWriter(work, depth=2, idle=0.05)
    writer.submit(0)
    assert started.wait(timeout=60)  # the worker holds job 0 at the gate
    writer.submit(1)
    writer.submit(2)  # the queue holds two: a third waits
    blocked = threading.Thread(target=writer.submit, args=(3,))
    blocked.start()
    blocked.join(timeout=0.2)
    assert blocked.is_alive() and writer.pending == 3  # 1 running + 2 queued
    gate.set()
    blocked.join()
    writer.drain()
    assert done == [0, 1, 2, 3] and writer.pending == 0
    thread = writer._thread
    if thread is not None:  # it stops by itself after `idle` seconds without work
        thread.join(timeout=60)
        assert not thread.is_alive()
    writer.submit(4)  # and a new one starts on demand
    writer.drain()
    assert done[-1] == 4


def test_writer_error_reaches_the_caller_and_drops_the_rest():
    seen: list[int] = []

    def work(job: int) -> None:
        if job == 1:
            raise OSError("disk full")
        seen.append(job)

    writer = PeriodWriter(work)
    for job in range(3):
        try:
            writer.submit(job)
        except OSError:
            break
    with pytest.raises(OSError, match="disk full"):
        writer.drain()
    assert seen == [0]
    with pytest.raises(ValueError, match="depth"):
        PeriodWriter(work, depth=0)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_digest_stream_hashes_to_the_table_digest(data):
    """The one-buffer layout the writer hashes is the byte stream of table_digest."""
    n = data.draw(st.integers(0, 40))
    table = {}
    for col in data.draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6,
                                  unique=True)):
        dtype = data.draw(st.sampled_from(["bool", "int8", "int32", "int64", "uint16",
                                           "float32", "float64", "str"]))
        if dtype == "str":
            words = data.draw(st.lists(st.text(max_size=5), min_size=n, max_size=n))
            table[col] = np.array(words, dtype=str) if n else np.zeros(0, "U1")
        else:
            raw = data.draw(st.binary(min_size=n * np.dtype(dtype).itemsize,
                                      max_size=n * np.dtype(dtype).itemsize))
            values = np.frombuffer(raw, dtype).copy()
            table[col] = values.astype(bool) if dtype == "bool" else values
    stream = _digest_stream("t", _columns("t", table))
    assert hashlib.sha256(stream).digest() == table_digest("t", table)
