"""The tamper-evident ledger (docs/model.md section 7): hashing, storage, verification."""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dipi_abm.errors import ConfigError
from dipi_abm.ledger.keys import AUTHORITY, KeyRing
from dipi_abm.ledger.store import (
    CHAINS,
    GENESIS_PREV,
    Ledger,
    VerifyReport,
    block_hash,
    canonical_row,
    digest_leaf,
    leaf_hashes,
    linked_roots,
    merkle_root,
    pow_hash,
    read_meta,
    signed_message,
    table_digest,
)
from dipi_abm.ledger.verify import NO_ANCHOR, verify_ledger, verify_open

#: The members of the test ledgers: the grid company and four nodes.
KEYS = KeyRing.generate([AUTHORITY, *(f"node-{i}" for i in range(4))])
NODE = KEYS.signer("node-0")


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def addresses(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.array([hashlib.sha256(rng.bytes(8)).hexdigest()[:40] for _ in range(n)])


def period_records(rng: np.random.Generator, hour: int) -> dict[str, dict]:
    """One period's records per chain, shaped like the model's (sizes vary, some 1 row)."""
    n_orders, n_contracts, n_parties = (int(k) for k in rng.integers(1, 12, 3))
    parties = addresses(rng, n_parties)
    du1 = {
        "schedule": {
            "hour": np.array([hour], np.int64),
            "retail_price_yuan_per_kwh": np.array([0.62]),
            "feed_in_price_yuan_per_kwh": np.array([0.39]),
            "tariff_band": np.array([hour % 3], np.int8),
        },
        "feasibility": {
            "line": np.arange(3, dtype=np.int32),
            "loading": rng.random(3).astype(np.float32),
            "feasible": rng.random(3) < 0.9,
        },
    }
    jy1 = {
        "orders": {
            "party": rng.integers(0, n_parties, n_orders).astype(np.int32),
            "address": parties[rng.integers(0, n_parties, n_orders)],
            "side": rng.choice(np.array([-1, 1], np.int8), n_orders),
            "kwh": rng.random(n_orders) * 10,
            "price_yuan_per_kwh": rng.random(n_orders),
        },
        "contracts": {
            "buyer": rng.integers(0, n_parties, n_contracts).astype(np.int32),
            "seller": rng.integers(0, n_parties, n_contracts).astype(np.int32),
            "seller_address": parties[rng.integers(0, n_parties, n_contracts)],
            "kwh": rng.random(n_contracts) * 5,
            "delivered": rng.random(n_contracts) < 0.8,
            "note": np.array(["", "ok", "délai", "a\x00b"])[rng.integers(0, 4, n_contracts)],
        },
        "refunds": {  # no rows every other hour
            "node": np.arange(hour % 2 * 2, dtype=np.int64),
            "yuan": np.full(hour % 2 * 2, 0.25),
        },
    }
    lh1 = {
        "credit": {
            "address": parties,
            "credit": rng.random(n_parties) * 100,
            "breach": rng.random(n_parties) < 0.1,
            "score": np.where(rng.random(n_parties) < 0.2, np.nan, rng.random(n_parties) * 100),
        },
    }
    return {"DU1": du1, "JY1": jy1, "LH1": lh1}


def genesis_tables(ledger: Ledger) -> dict[str, dict]:
    """The tables the store adds to the genesis records: the run record and the keys."""
    names = KEYS.names
    public = KEYS.public_keys()
    return {
        "DU1": {"run": {"key": np.array(sorted(ledger.meta), dtype=str),
                        "value": np.array([ledger.meta[k] for k in sorted(ledger.meta)],
                                          dtype=str)}},
        "JY1": {"keys": {"name": np.array(names),
                         "public_key": np.array([public[n].hex() for n in names])}},
    }


def run_periods(ledger: Ledger, n: int, seed: int = 0) -> dict[tuple[str, int], dict]:
    """A genesis (hour 0) and ``n - 1`` periods (hours 1, 2, ...) on DU1, JY1 and LH1, one
    transaction each; returns every block's records as stored (reserved tables included)."""
    rng = np.random.default_rng(seed)
    appended: dict[tuple[str, int], dict] = {}
    genesis = period_records(rng, 0)
    ledger.write_genesis(genesis, KEYS.public_keys(), KEYS.signer(AUTHORITY))
    if ledger.detail == "off":
        return appended
    extra = genesis_tables(ledger)
    for chain in CHAINS:
        appended[chain, 0] = {**genesis[chain], **extra.get(chain, {})}
    roots = {c: ledger.blocks(c)[0].merkle_root for c in ("DU1", "JY1")}
    appended["LH1", 0]["chains"] = linked_roots(roots["DU1"], roots["JY1"])
    for hour in range(1, n):
        period = period_records(rng, hour)
        prepared = ledger.prepare_period(period)
        ledger.append_period(hour, prepared, KEYS.signer(f"node-{hour % 4}"))
        for chain in CHAINS:
            appended[chain, hour] = period[chain]
        appended["LH1", hour] = {**period["LH1"],
                                 "chains": linked_roots(prepared["DU1"].root,
                                                        prepared["JY1"].root)}
    return appended


def assert_tables_equal(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for col, want in expected.items():
        have = got[col]
        assert have.dtype.kind == want.dtype.kind, col
        if want.dtype.kind == "U":
            assert have.tolist() == want.tolist(), col
        else:
            assert have.dtype == want.dtype, col
            # bit for bit: NaNs and signed zeros included
            assert have.tobytes() == want.tobytes(), col


# ----------------------------------------------------------------------------- hashing
def test_merkle_root_known_answers():
    a, b, c, d, e = (sha(x) for x in (b"a", b"b", b"c", b"d", b"e"))
    assert merkle_root([]) == sha(b"")
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == sha(a + b)
    assert merkle_root([a, b, c]) == sha(sha(a + b) + sha(c + c))
    ab, cd, ee = sha(a + b), sha(c + d), sha(e + e)
    assert merkle_root([a, b, c, d, e]) == sha(sha(ab + cd) + sha(ee + ee))


def test_canonical_row_known_bytes():
    row = canonical_row("t", 1, [("b", 0.5), ("a", 1), ("d", "é"), ("c", True)])
    assert row == (
        b"R" + b"\0\0\0\x01t" + (1).to_bytes(8, "big") + b"\0\0\0\x04"
        + b"\0\0\0\x01a" + b"\0\0\0\x05int64" + (1).to_bytes(8, "big")
        + b"\0\0\0\x01b" + b"\0\0\0\x07float64" + bytes.fromhex("3fe0000000000000")
        + b"\0\0\0\x01c" + b"\0\0\0\x04bool" + b"\x01"
        + b"\0\0\0\x01d" + b"\0\0\0\x03str" + b"\0\0\0\x02\xc3\xa9"
    )  # fmt: skip


def test_canonical_row_keeps_numpy_types_apart():
    rows = {
        canonical_row("t", 0, [("x", v)])
        for v in (5, np.int32(5), np.int8(5), 5.0, np.float32(5.0), "5", True, np.uint8(5))
    }
    assert len(rows) == 8
    assert canonical_row("t", 0, [("x", 5)]) == canonical_row("t", 0, [("x", np.int64(5))])
    assert canonical_row("t", 0, [("x", 0.0)]) != canonical_row("t", 0, [("x", -0.0)])
    with pytest.raises(ValueError, match="duplicate"):
        canonical_row("t", 0, [("x", 1), ("x", 2)])


names = st.text(min_size=0, max_size=4)
scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=6),
)
rows = st.tuples(names, st.integers(0, 2**40), st.dictionaries(names, scalars, max_size=4))


def identity(table: str, row: int, values: dict) -> tuple:
    """What a record is, exactly: floats by their bits, each value with its type."""

    def typed(v):
        return (type(v).__name__, struct.pack(">d", v) if isinstance(v, float) else v)

    return table, row, sorted((k, typed(v)) for k, v in values.items())


@settings(max_examples=300, deadline=None)
@given(rows, rows, st.randoms(use_true_random=False))
def test_canonical_row_same_iff_same_record(r1, r2, rnd):
    if rnd.random() < 0.5:  # a near neighbour: one field of r1 changed
        table, row, values = r1
        r2 = (table, row, {**values, **r2[2]}) if r2[2] else (r2[0], row, values)
    b1 = canonical_row(r1[0], r1[1], list(r1[2].items()))
    shuffled = list(r2[2].items())
    rnd.shuffle(shuffled)
    b2 = canonical_row(r2[0], r2[1], shuffled)
    assert (b1 == b2) == (identity(*r1) == identity(*r2))


COLUMN_DTYPES = ("int8", "int16", "int32", "int64", "uint32", "float32", "float64", "bool", "U")
text_values = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"))


@st.composite
def tables(draw, n_rows=None):
    n = draw(st.integers(0, 6)) if n_rows is None else n_rows
    cols = draw(st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=4, unique=True))
    out = {}
    for col in cols:
        dtype = draw(st.sampled_from(COLUMN_DTYPES))
        if dtype == "U":
            out[col] = np.array(draw(st.lists(text_values, min_size=n, max_size=n)), dtype=str)
        else:
            out[col] = draw(hnp.arrays(np.dtype(dtype), n))
    return out


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=3), tables(), min_size=1, max_size=3))
def test_full_leaves_are_canonical_rows_and_read_back(records):
    expected = []
    for name in sorted(records):
        table = records[name]
        n = next(iter(table.values())).size
        rows = [
            sha(canonical_row(name, i, [(c, col[i]) for c, col in table.items()])) for i in range(n)
        ]
        expected += rows or [table_digest(name, table)]  # a table without rows: its digest
    assert leaf_hashes(records, "full") == expected
    assert leaf_hashes(records, "digest") == [
        digest_leaf(t, table_digest(t, records[t])) for t in sorted(records)
    ]
    assert leaf_hashes(records, "off") == []
    with Ledger(detail="full") as ledger:
        ledger.append("JY1", 0, records, signer=NODE)
        back = ledger.read_records("JY1", 0)
    assert list(back) == sorted(records)
    for name, table in records.items():
        assert_tables_equal(back[name], table)
    with Ledger(detail="digest") as ledger:  # digest keeps only the table digests
        ledger.append("JY1", 0, records, signer=NODE)
        assert ledger.read_records("JY1", 0) == {}
    with Ledger(detail="digest", keep=[f"JY1/{t}" for t in records]) as ledger:
        block = ledger.append("JY1", 0, records, signer=NODE)  # ... unless told to keep them
        back = ledger.read_records("JY1", 0)
        assert block.merkle_root == merkle_root(
            [table_digest(t, records[t]) for t in sorted(records)]).hex()
    for name, table in records.items():
        assert_tables_equal(back[name], table)


@settings(max_examples=60, deadline=None)
@given(tables(n_rows=3), st.data())
def test_table_digest_commits_to_every_value_name_and_type(table, data):
    digest = table_digest("t", table)
    assert table_digest("t", dict(reversed(table.items()))) == digest
    assert table_digest("u", table) != digest
    col = data.draw(st.sampled_from(sorted(table)))
    assert table_digest("t", {**table, col + "x": table[col]}) != digest
    renamed = {(c + "x" if c == col else c): v for c, v in table.items()}
    assert table_digest("t", renamed) != digest
    values = table[col]
    if values.dtype.kind == "U":
        changed = np.array([values[0] + "x", *values[1:]])
    elif values.dtype.kind == "b":
        changed = values.copy()
        changed[0] = not changed[0]
    else:
        changed = values.copy()
        changed.view(f"u{changed.itemsize}")[0] ^= 1
    assert table_digest("t", {**table, col: changed}) != digest
    if values.dtype.kind != "U":  # the same bytes under another type
        k = values.dtype.itemsize
        other = {"i": f"u{k}" if k < 8 else "f8", "u": f"i{k}", "f": f"i{k}", "b": "i1"}
        retyped = values.view(other[values.dtype.kind])
        assert table_digest("t", {**table, col: retyped}) != digest


def test_records_are_checked():
    with Ledger() as ledger:
        with pytest.raises(ValueError, match="differ in length"):
            ledger.append("DU1", 0, {"t": {"a": np.zeros(2), "b": np.zeros(3)}}, signer=NODE)
        with pytest.raises(ValueError, match="unsupported column dtype"):
            ledger.append("DU1", 0, {"t": {"a": np.zeros(2, complex)}}, signer=NODE)
        with pytest.raises(ValueError, match="chain"):
            ledger.append("XX1", 0, {}, signer=NODE)
        with pytest.raises(ValueError, match="signer"):
            ledger.append("DU1", 0, {}, signer="node-0")
        with pytest.raises(ValueError, match="reserved"):
            ledger.write_genesis({"DU1": {"run": {"x": np.zeros(1)}}}, KEYS.public_keys(),
                                 KEYS.signer(AUTHORITY))
        assert ledger.head("DU1") is None


# ----------------------------------------------------------------------------- the ledger
@pytest.mark.parametrize("detail", ["digest", "full"])
@pytest.mark.parametrize("on_disk", [False, True])
def test_ledger_verifies_and_reads_back(tmp_path, detail, on_disk):
    path = tmp_path / "ledger.sqlite" if on_disk else None
    meta = {"seed": "7", "version": "0.1.0", "params": '{"hours": 36}'}
    with Ledger(path, detail=detail, meta=meta) as ledger:
        appended = run_periods(ledger, 36)
        for chain in CHAINS:
            blocks = ledger.blocks(chain)
            assert [b.index for b in blocks] == list(range(36))
            assert [b.hour for b in blocks] == list(range(36))
            assert blocks[0].prev_hash == GENESIS_PREV and blocks[0].producer == AUTHORITY
            assert all(b.prev_hash == a.hash for a, b in zip(blocks, blocks[1:], strict=False))
            assert ledger.head(chain) == blocks[-1]
            for b in blocks:
                fields = (b.chain, b.index, b.prev_hash, b.hour, b.merkle_root, b.producer)
                assert b.hash == block_hash(*fields, b.nonce, b.target)
                key = KEYS.signer(b.producer).key.public_key()
                key.verify(bytes.fromhex(b.signature), signed_message(b.hash))
                records = appended[chain, b.index]
                # genesis blocks are kept whole: as rows (full) or columns (digest)
                form = "columns" if b.index == 0 and detail == "digest" else detail
                assert b.merkle_root == merkle_root(leaf_hashes(records, form)).hex()
        for (chain, index), records in appended.items():
            back = ledger.read_records(chain, index)
            if detail == "digest" and index > 0:  # only the table digests are kept
                assert back == {}
                continue
            assert sorted(back) == sorted(records)
            for name, table in records.items():
                assert_tables_equal(back[name], table)
        assert verify_open(ledger).ok and verify_open(ledger).unchecked == (
            "consensus targets: the genesis commits no consensus parameters",)
    if on_disk:
        report = verify_ledger(path)
        assert report.ok and report.blocks == 3 * 36 and report.problem == ""
        assert NO_ANCHOR in report.unchecked
        assert read_meta(path) == meta
        assert not (tmp_path / "ledger.sqlite-wal").exists()


def test_same_records_same_keys_same_hashes_across_ledgers():
    heads = []
    for _ in range(2):
        with Ledger() as ledger:
            run_periods(ledger, 3, seed=11)
            heads.append([ledger.head(c) for c in CHAINS])
    assert heads[0] == heads[1]  # Ed25519 signatures are deterministic too


def test_detail_off_builds_nothing(tmp_path):
    path = tmp_path / "off.sqlite"
    with Ledger(path, detail="off", meta={"seed": "1"}) as ledger:
        run_periods(ledger, 3)
        assert ledger.append("DU1", 0, {"t": {"x": np.zeros(3)}}, signer=NODE) is None
        with ledger.period():
            assert ledger.append("JY1", 0, {}, signer=NODE) is None
        assert ledger.head("DU1") is None and ledger.blocks("JY1") == []
    report = verify_ledger(path)
    assert report.ok and report.blocks == 0 and "no blocks" in report.unchecked[0]
    assert read_meta(path) == {"seed": "1"}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM blocks").fetchone() == (0,)
    with pytest.raises(ConfigError, match="detail 'none'"):
        Ledger(detail="none")


def test_interrupted_period_leaves_whole_periods(tmp_path):
    path = tmp_path / "run.sqlite"
    with Ledger(path) as ledger:
        run_periods(ledger, 3)
        heads = {c: ledger.head(c) for c in CHAINS}
        with pytest.raises(RuntimeError, match="stopped"), ledger.period():
            for chain in ("DU1", "JY1"):
                ledger.append(chain, 3, {"t": {"x": np.arange(4)}}, signer=NODE)
            raise RuntimeError("stopped mid-period")
        assert {c: ledger.head(c) for c in CHAINS} == heads
        assert verify_ledger(path).ok  # as seen by another reader, mid-run
        ledger.append("DU1", 3, {"t": {"x": np.arange(5)}}, signer=NODE)  # commits alone
    report = verify_ledger(path)  # ... and the chains no longer agree
    assert (report.ok, report.chain, report.index, report.blocks) == (False, "DU1", 3, 3 * 3 + 1)
    assert report.problem == "the chain has 4 blocks, the others 3"
    with Ledger() as ledger:
        assert ledger.append("DU1", 0, {}, signer=NODE).index == 0
        with pytest.raises(RuntimeError, match="nest"), ledger.period(), ledger.period():
            pass
        with pytest.raises(RuntimeError, match="genesis"):
            run_periods(ledger, 1)


def test_refuses_existing_path(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.append("DU1", 0, {}, signer=NODE)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already exists") as err:
        Ledger(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == before
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    Ledger(empty).close()  # an empty file (e.g. from mkstemp) is not a ledger yet


def test_bad_files_raise_config_error(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n" * 100)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE blocks (x)")
    partial = tmp_path / "partial.sqlite"
    with Ledger(partial):
        pass
    with sqlite3.connect(partial) as db:
        db.execute("DROP TABLE record_rows")
    older = tmp_path / "older.sqlite"
    with Ledger(older):
        pass
    with sqlite3.connect(older) as db:
        db.execute("PRAGMA user_version = 1")
    cases = [
        (tmp_path / "missing.sqlite", "no such file"),
        (tmp_path, "not a file"),
        (text, "not a readable SQLite file"),
        (other, "not a dipi_abm ledger"),
        (partial, "not a dipi_abm ledger"),
        (older, "format 1"),
    ]
    for path, message in cases:
        for reader in (verify_ledger, read_meta):
            with pytest.raises(ConfigError, match=message) as err:
                reader(path)
            assert f"'{path}'" in str(err.value) and "\n" not in str(err.value)
    assert text.read_text().startswith("hello")


def test_verify_does_not_modify_the_file(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        run_periods(ledger, 2)
    before = path.read_bytes()
    path.chmod(0o444)
    assert verify_ledger(path).ok
    assert path.read_bytes() == before


# ----------------------------------------------------------------------------- tampering
def make_ledger(path, detail: str) -> None:
    with Ledger(path, detail=detail, meta={"seed": "3"}) as ledger:
        run_periods(ledger, 6, seed=3)


@pytest.fixture(scope="module")
def small_ledgers(tmp_path_factory) -> dict:
    """A 6-period ledger file at each detail level, built once for the tamper tests."""
    paths = {}
    for detail in ("digest", "full"):
        paths[detail] = tmp_path_factory.mktemp(detail) / "ledger.sqlite"
        make_ledger(paths[detail], detail)
    return paths


def alter(value, rnd: random.Random):
    """The same field changed a little: a number +1, one character or one bit."""
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        if not value:
            return "x"
        i = rnd.randrange(len(value))
        # keep hex hex and words words, so the change is as quiet as it can be
        pool = (
            "0123456789abcdef" if value[i] in "0123456789abcdef" else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        )
        return value[:i] + rnd.choice(pool.replace(value[i], "")) + value[i + 1 :]
    if isinstance(value, bytes):
        if not value:
            return b"\0"
        data = bytearray(value)
        data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        return bytes(data)
    raise TypeError(type(value))


# the tables each detail level writes to (full: tables without rows are stored as columns;
# digest: genesis blocks are stored as columns)
WRITTEN_TABLES = {
    "digest": ("blocks", "record_columns", "record_digests"),
    "full": ("blocks", "record_rows", "record_columns"),
}
LEDGER_COLUMNS = {
    "blocks": (
        "chain", "block_index", "prev_hash", "hour", "merkle_root",
        "producer", "nonce", "target", "hash", "signature",
    ),
    "record_rows": ("chain", "block_index", "tbl", "row", "payload"),
    "record_columns": ("chain", "block_index", "tbl", "col", "dtype", "data"),
    "record_digests": ("chain", "block_index", "tbl", "digest"),
}  # fmt: skip


def test_fuzz_covers_every_table_and_column(small_ledgers):
    for detail, path in small_ledgers.items():
        with sqlite3.connect(path) as db:
            tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            # meta (run parameters) is descriptive and not hashed
            assert tables == {"meta", *LEDGER_COLUMNS}
            for table, columns in LEDGER_COLUMNS.items():
                assert tuple(r[1] for r in db.execute(f"PRAGMA table_info({table})")) == columns
            for table in LEDGER_COLUMNS:
                (count,) = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
                assert (count > 0) == (table in WRITTEN_TABLES[detail]), (detail, table)
        db.close()


@pytest.mark.parametrize(
    ("detail", "table", "column"),
    [
        (detail, table, column)
        for detail in ("digest", "full")
        for table in WRITTEN_TABLES[detail]
        for column in LEDGER_COLUMNS[table]
    ],
)
def test_any_altered_field_is_found_at_its_block(small_ledgers, tmp_path, detail, table, column):
    path = small_ledgers[detail]
    rnd = random.Random(f"{detail}-{table}-{column}")
    with sqlite3.connect(path) as db:
        rows = db.execute(f"SELECT rowid, chain, block_index, {column} FROM {table}").fetchall()
    db.close()
    copy = tmp_path / "tampered.sqlite"
    for rowid, chain, index, value in rnd.sample(rows, min(30, len(rows))):
        shutil.copyfile(path, copy)
        with sqlite3.connect(copy) as db:
            db.execute(
                f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (alter(value, rnd), rowid)
            )
        db.close()
        report = verify_ledger(copy)
        where = f"{table}.{column} of {chain} block {index}: {report}"
        assert not report.ok, where
        assert (report.chain, report.index) == (chain, index), where


ADDED_ROWS = [  # (detail, where the copied row comes from, SQL, problem or "")
    (
        "full",
        "record_rows",
        "INSERT INTO record_rows SELECT * FROM record_rows WHERE rowid = 5",
        "",
    ),
    (
        "digest",
        "record_digests",
        "INSERT INTO record_digests SELECT * FROM record_digests WHERE rowid = 5",
        "",
    ),
    (
        "full",
        "record_rows",
        "INSERT INTO record_columns SELECT chain, block_index, tbl, 'extra', 'int64', x'' "
        "FROM record_rows WHERE rowid = 5",
        "stored both as rows and as columns",
    ),
    (
        "digest",
        "record_digests",
        "INSERT INTO record_digests SELECT chain, 6, tbl, digest "
        "FROM record_digests WHERE rowid = 5",
        "records belong to no block",
    ),
    (
        "digest",
        "blocks",
        "INSERT INTO blocks SELECT 'XY1', block_index, prev_hash, hour, merkle_root, "
        "producer, nonce, target, hash, signature FROM blocks WHERE rowid = 5",
        "block of an unknown chain",
    ),
]


@pytest.mark.parametrize(("detail", "source", "sql", "problem"), ADDED_ROWS)
def test_added_rows_are_found(small_ledgers, tmp_path, detail, source, sql, problem):
    """Rows inserted rather than changed: a copy of a record, a second form of a
    table, records of a block that does not exist, a block of no chain."""
    copy = tmp_path / "added.sqlite"
    shutil.copyfile(small_ledgers[detail], copy)
    with sqlite3.connect(copy) as db:
        chain, index = db.execute(
            f"SELECT chain, block_index FROM {source} WHERE rowid = 5"
        ).fetchone()
        db.execute(sql)
    db.close()
    chain = "XY1" if "'XY1'" in sql else chain
    index = 6 if "chain, 6," in sql else index  # the ledger has blocks 0-5
    report = verify_ledger(copy)
    assert (report.ok, report.chain, report.index) == (False, chain, index), report
    assert problem in report.problem


def test_same_value_in_another_form_is_found(tmp_path):
    """SQLite's loose typing must not let a field change form: text for a number,
    upper-case hex, or a target that parses to the same integer."""
    path = tmp_path / "ledger.sqlite"
    make_ledger(path, "digest")
    with sqlite3.connect(path) as db:
        (block_hash_hex,) = db.execute(
            "SELECT hash FROM blocks WHERE chain = 'JY1' AND block_index = 2"
        ).fetchone()
    db.close()
    changes = [
        ("hour", "2x"),
        ("nonce", 0.5),
        ("block_index", b"\x02"),
        ("target", " " + "0" * 63),
        ("hash", block_hash_hex.upper()),
    ]
    for column, value in changes:
        copy = tmp_path / f"{column}.sqlite"
        shutil.copyfile(path, copy)
        with sqlite3.connect(copy) as db:
            db.execute(f"UPDATE blocks SET {column} = ? WHERE chain = 'JY1' AND hour = 2", (value,))
        db.close()
        report = verify_ledger(copy)
        assert (report.ok, report.chain, report.index) == (False, "JY1", 2), column


def rewrite_block(db, chain: str, index: int, signer=None, **fields) -> None:
    """Change a block's header fields and recompute its hash; re-sign it with ``signer``
    (a forger who holds that key) or leave the old signature."""
    row = db.execute(
        "SELECT chain, block_index, prev_hash, hour, merkle_root, producer, nonce, target, "
        "signature FROM blocks WHERE chain = ? AND block_index = ?", (chain, index)).fetchone()
    header = dict(zip(("chain", "index", "prev_hash", "hour", "merkle_root", "producer",
                       "nonce", "target"), (*row[:7], int(row[7], 16)), strict=True))
    header.update(fields)
    h = block_hash(*header.values())
    signature = row[8] if signer is None else signer.sign(signed_message(h)).hex()
    db.execute(
        "UPDATE blocks SET prev_hash = ?, hour = ?, merkle_root = ?, producer = ?, nonce = ?, "
        "target = ?, hash = ?, signature = ? WHERE chain = ? AND block_index = ?",
        (header["prev_hash"], header["hour"], header["merkle_root"], header["producer"],
         header["nonce"], f"{header['target']:064x}", h, signature, chain, index))


def test_changed_block_hash_and_consistent_rewrite(tmp_path):
    path = tmp_path / "ledger.sqlite"
    make_ledger(path, "digest")
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as db:
        db.execute(
            "UPDATE blocks SET hash = ? WHERE chain = 'LH1' AND block_index = 3", ("f" * 64,)
        )
    db.close()
    assert verify_ledger(copy) == VerifyReport(
        False, 3 + 5 + 5 + 2, "LH1", 3, "block hash does not match its header"
    )
    # Rewriting a block's hour and, consistently, its hash: the signature no longer fits.
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as db:
        rewrite_block(db, "DU1", 2, hour=102)
    db.close()
    report = verify_ledger(copy)
    assert (report.chain, report.index, report.problem) == (
        "DU1", 2, "signature does not verify with the producer's key")
    # A forger holding the producer's key re-signs it: the next block's link breaks.
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as db:
        (producer,) = db.execute(
            "SELECT producer FROM blocks WHERE chain = 'DU1' AND block_index = 2").fetchone()
        rewrite_block(db, "DU1", 2, KEYS.signer(producer), hour=2)
        rewrite_block(db, "DU1", 2, KEYS.signer(producer), nonce=0)  # unchanged header
    db.close()
    assert verify_ledger(copy).ok  # the same header signs to the same bytes
    with sqlite3.connect(copy) as db:
        rewrite_block(db, "DU1", 2, KEYS.signer(producer), hour=3)  # within hours 1..5 order
    db.close()
    report = verify_ledger(copy)
    assert (report.chain, report.index, report.problem) == ("DU1", 3, "previous hash does not link")


def test_nonce_must_meet_target(tmp_path):
    path = tmp_path / "pow.sqlite"
    target = 2**256 >> 6  # one hash in 64 succeeds
    with Ledger(path) as ledger:
        run_periods(ledger, 1)
        records = {c: {"contracts": {"kwh": np.array([1.5, 2.0])}} for c in CHAINS}
        prepared = ledger.prepare_period(records)
        root = prepared["LH1"].root
        good = next(n for n in range(10_000) if pow_hash(root, "node-1", n) <= target)
        bad = next(n for n in range(10_000) if pow_hash(root, "node-1", n) > target)
        with pytest.raises(ValueError, match="does not meet its target"):
            ledger.append_period(1, prepared, KEYS.signer("node-1"), nonce=bad, target=target)
        ledger.append_period(1, prepared, KEYS.signer("node-1"), nonce=good, target=target)
        block = ledger.head("LH1")
        assert (block.nonce, block.target, block.index) == (good, target, 1)
    assert verify_ledger(path).ok
    # A forged block: the failing nonce, hash recomputed and signed with the producer's key.
    with sqlite3.connect(path) as db:
        rewrite_block(db, "LH1", 1, KEYS.signer("node-1"), nonce=bad)
    db.close()
    report = verify_ledger(path)
    assert (report.ok, report.chain, report.index) == (False, "LH1", 1)
    assert report.problem == "nonce does not meet target"


def test_key_file_round_trip_owner_only_and_refusals(tmp_path):
    path = tmp_path / "keys.json"
    KEYS.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    back = KeyRing.load(path)
    assert back.names == KEYS.names and back.public_keys() == KEYS.public_keys()
    message = signed_message("ab" * 32)
    assert back.signer("node-2").sign(message) == KEYS.signer("node-2").sign(message)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        KEYS.save(path)
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]
    with pytest.raises(ConfigError, match="does not exist"):
        KEYS.save(tmp_path / "no" / "keys.json")
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    for bad, message in ((tmp_path / "bad.json", "not a dipi-abm key file"),
                         (tmp_path / "missing.json", "no such file")):
        with pytest.raises(ConfigError, match=message):
            KeyRing.load(bad)
    with pytest.raises(ValueError, match="unique"):
        KeyRing.generate(["a", "a"])
    with pytest.raises(ValueError, match="no key"):
        KEYS.signer("stranger")
