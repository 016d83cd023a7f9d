"""A forger against a run's ledger file (docs/model.md section 7; issue "a ledger a forger cannot
rewrite"). Every attack is made on a copy of a 48-hour run's ledger, at ``full`` and
``digest`` detail, and must be found with the chain and first bad block named, or, when
only an anchor kept outside the file can reveal it, found with the anchor and listed as
unchecked without one.

The forger has the file and this package's code; "key holder" attacks also hold some or
all of the members' private keys (as from ``dipi-abm run --keys``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dipi_abm import DIPIModel
from dipi_abm.errors import ConfigError
from dipi_abm.ledger.keys import AUTHORITY, KeyRing
from dipi_abm.ledger.store import (
    StoredRecords,
    _column_bytes,
    _column_from_bytes,
    _digest,
    _parse_row,
    block_hash,
    canonical_row,
    digest_leaf,
    linked_roots,
    merkle_root,
    signed_message,
    table_digest,
)
from dipi_abm.ledger.verify import NO_ANCHOR, verify_ledger

HOURS = 48
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
SMALL = dict(n_dpgc=4, n_users=16, n_miners=1, hours=HOURS)
KINDS = {
    "full": dict(ledger_detail="full"),
    "digest": dict(ledger_detail="digest"),
    "hashed": dict(ledger_detail="digest", poca_mode="hashed", poca_difficulty_bits=5),
    "hashed-full": dict(ledger_detail="full", poca_mode="hashed", poca_difficulty_bits=5),
}


class Run:
    """A finished run's ledger file, its anchor (summary.json's chain heads), its keys."""

    def __init__(self, folder: Path, kind: str, seed: int = 12) -> None:
        self.path = folder / f"{kind}.sqlite"
        m = DIPIModel(seed=seed, ledger=str(self.path), **SMALL, **KINDS[kind])
        m.run()
        m.close()
        self.anchor = m.summary()["chains"]
        self.keys: KeyRing = m.node_keys
        self.kind = kind


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    folder = tmp_path_factory.mktemp("runs")
    return {kind: Run(folder, kind) for kind in KINDS}


@pytest.fixture
def forge(runs, tmp_path):
    """``forge(kind)`` -> (a writable copy of that run's ledger, the run)."""

    def make(kind: str) -> tuple[sqlite3.Connection, Run, Path]:
        run = runs[kind]
        copy = tmp_path / f"forged-{kind}.sqlite"
        shutil.copyfile(run.path, copy)
        return sqlite3.connect(copy, isolation_level=None), run, copy

    return make


# ----------------------------------------------------------------------------- forger's tools
def block(db, chain: str, index: int) -> dict:
    row = db.execute(
        "SELECT rowid, prev_hash, hour, merkle_root, producer, nonce, target, hash, signature "
        "FROM blocks WHERE chain = ? AND block_index = ?", (chain, index)).fetchone()
    keys = ("rowid", "prev_hash", "hour", "merkle_root", "producer", "nonce", "target", "hash",
            "signature")
    return dict(zip(keys, row, strict=True))


def length(db, chain: str) -> int:
    return db.execute("SELECT COUNT(*) FROM blocks WHERE chain = ?", (chain,)).fetchone()[0]


def rehash(db, chain: str, start: int, keys: KeyRing | None = None, **fields) -> None:
    """What a forger does after an edit: recompute the Merkle root from the stored
    records, the hash and every later block's link, from block ``start`` on; re-sign
    with the producers' keys if it holds them (``keys``), else keep the old signatures.
    ``fields`` overrides header fields of block ``start``."""
    stored = StoredRecords(db)  # the package's own leaf computation: the forger has the code
    for i in range(start, length(db, chain)):
        b = block(db, chain, i)
        prev = block(db, chain, i - 1)["hash"] if i > 0 else "0" * 64
        header = dict(prev_hash=prev, hour=b["hour"],
                      merkle_root=merkle_root(raw_leaves(db, stored, chain, i)).hex(),
                      producer=b["producer"], nonce=b["nonce"], target=int(b["target"], 16))
        if i == start:
            header.update(fields)
        h = block_hash(chain, i, *header.values())
        signature = b["signature"]
        if keys is not None and header["producer"] in keys:
            signature = keys.signer(header["producer"]).sign(signed_message(h)).hex()
        db.execute("UPDATE blocks SET prev_hash = ?, hour = ?, merkle_root = ?, producer = ?, "
                   "nonce = ?, target = ?, hash = ?, signature = ? WHERE rowid = ?",
                   (*list(header.values())[:5], f"{header['target']:064x}", h, signature,
                    b["rowid"]))


def raw_leaves(db, stored: StoredRecords, chain: str, index: int) -> list[bytes]:
    """A block's Merkle leaves as the writer hashes them, whether or not its records
    parse (a key holder may sign records no reader accepts)."""
    leaves = {}
    for tbl, _, payload in stored.rows(chain, index):
        leaves.setdefault(tbl, []).append(hashlib.sha256(payload).digest())
    columns = {}
    for tbl, col, tag, data in stored.columns(chain, index):
        columns.setdefault(tbl, []).append((col, tag, _column_from_bytes(tag, data).size, data))
    leaves.update({tbl: [_digest(tbl, cols)] for tbl, cols in columns.items()})
    leaves.update({tbl: [digest_leaf(tbl, d)] for tbl, d in stored.digests(chain, index)})
    return [leaf for tbl in sorted(leaves) for leaf in leaves[tbl]]


def edit_record(db, chain: str, index: int, table: str, column: str, value) -> None:
    """Change one stored record: a value in a row (full), or the table's digest (digest:
    the records themselves are not in the file)."""
    rows = db.execute("SELECT rowid, payload FROM record_rows WHERE chain = ? AND "
                      "block_index = ? AND tbl = ? ORDER BY row", (chain, index, table)).fetchall()
    if rows:
        rowid, payload = rows[0]
        name, row, values = _parse_row(payload)
        values = [(c, type(v)(value) if c == column else v) for c, _, v in values]
        db.execute("UPDATE record_rows SET payload = ? WHERE rowid = ?",
                   (canonical_row(name, row, values), rowid))
        return
    n = db.execute("UPDATE record_digests SET digest = ? WHERE chain = ? AND block_index = ? "
                   "AND tbl = ?", (hashlib.sha256(repr(value).encode()).digest(), chain, index,
                                   table)).rowcount
    assert n == 1, (chain, index, table)


def delete_block(db, chain: str, index: int, records: bool = True) -> None:
    db.execute("DELETE FROM blocks WHERE chain = ? AND block_index = ?", (chain, index))
    if records:
        for t in ("record_rows", "record_columns", "record_digests"):
            db.execute(f"DELETE FROM {t} WHERE chain = ? AND block_index = ?", (chain, index))


def renumber_after(db, chain: str, index: int) -> None:
    """Close the gap a deleted block left: every later block and its records move down."""
    for t in ("blocks", "record_rows", "record_columns", "record_digests"):
        db.execute(f"UPDATE {t} SET block_index = block_index - 1 WHERE chain = ? AND "
                   "block_index > ?", (chain, index))


def found(path, where: tuple[str, int | None], anchor=None, problem: str = "") -> None:
    report = verify_ledger(path, anchor)
    assert not report.ok, report
    assert (report.chain, report.index) == where, report
    assert problem in report.problem, report


def anchor_only(path, where: tuple[str, int | None], anchor) -> None:
    """An attack only an anchor reveals: found with it, listed as unchecked without."""
    report = verify_ledger(path)
    assert report.ok and NO_ANCHOR in report.unchecked, report
    found(path, where, anchor)


CHAINS = ("DU1", "JY1", "LH1")
DETAILS = ("full", "digest")
MID = 20


# ----------------------------------------------------------------------------- the attacks
def test_the_untouched_ledgers_verify_with_and_without_their_anchor(runs):
    for run in runs.values():
        report = verify_ledger(run.path, run.anchor)
        assert report.ok and report.unchecked == () and report.blocks == 3 * (HOURS + 1)
        assert verify_ledger(run.path).unchecked == (NO_ANCHOR,)


@pytest.mark.parametrize("detail", DETAILS)
def test_every_stored_field_edited_in_place(forge, detail):
    """One value changed in every column of every table the file holds (a sample of rows
    per column): found at its block (meta: at DU1's genesis, which commits it)."""
    db, run, path = forge(detail)
    db.close()
    rnd = random.Random(detail)
    with sqlite3.connect(run.path) as src:
        tables = [n for (n,) in src.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        cases = []
        for table in tables:
            columns = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
            has_chain = "chain" in columns
            for column in columns:
                sel = "chain, block_index" if has_chain else "'DU1', 0"
                rows = src.execute(f"SELECT rowid, {sel}, {column} FROM {table}").fetchall()
                cases += [(table, column, *r) for r in rnd.sample(rows, min(4, len(rows)))]
    src.close()
    assert {c[0] for c in cases} >= {"blocks", "meta", "record_digests" if detail == "digest"
                                     else "record_rows"}
    for table, column, rowid, chain, index, value in cases:
        shutil.copyfile(run.path, path)
        with sqlite3.connect(path) as db:
            db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?",
                       (changed(value, rnd), rowid))
        db.close()
        found(path, (chain, index))


def changed(value, rnd: random.Random):
    if isinstance(value, int):
        return value + 1
    if isinstance(value, bytes):
        data = bytearray(value or b"\0")
        data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        return bytes(data)
    if not value:
        return "x"
    i = rnd.randrange(len(value))
    pool = "0123456789abcdef" if value[i] in "0123456789abcdef" else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return value[:i] + rnd.choice(pool.replace(value[i], "")) + value[i + 1:]


@pytest.mark.parametrize("detail", DETAILS)
@pytest.mark.parametrize("chain", CHAINS)
@pytest.mark.parametrize("at", ["head", "middle", "genesis"])
def test_a_block_deleted_from_one_chain(forge, detail, chain, at):
    db, run, path = forge(detail)
    index = {"head": HOURS, "middle": MID, "genesis": 0}[at]
    delete_block(db, chain, index)
    db.close()
    found(path, (chain, index))


@pytest.mark.parametrize("detail", DETAILS)
def test_the_newest_periods_deleted_from_all_chains_need_the_anchor(forge, detail):
    db, run, path = forge(detail)
    for chain in CHAINS:
        for index in range(HOURS - 2, HOURS + 1):
            delete_block(db, chain, index)
    db.close()
    anchor_only(path, ("DU1", HOURS - 2), run.anchor)
    found(path, ("DU1", None), {"DU1": {"blocks": None, "head": run.anchor["DU1"]["head"]}})


@pytest.mark.parametrize("detail", DETAILS)
@pytest.mark.parametrize("chain", CHAINS)
def test_one_chain_truncated(forge, detail, chain):
    db, run, path = forge(detail)
    for index in range(HOURS - 9, HOURS + 1):
        delete_block(db, chain, index)
    db.close()
    found(path, (chain, HOURS - 9), problem="missing")


@pytest.mark.parametrize("detail", DETAILS)
def test_two_blocks_swapped(forge, detail):
    """Swapped whole (index numbers exchanged), and swapped records then re-hashed."""
    db, run, path = forge(detail)
    for t in ("blocks", "record_rows", "record_columns", "record_digests"):
        db.execute(f"UPDATE {t} SET block_index = CASE block_index WHEN 10 THEN 11 ELSE 10 END "
                   "WHERE chain = 'JY1' AND block_index IN (10, 11)")
    db.close()
    found(path, ("JY1", 10))
    shutil.copyfile(run.path, path)
    db = sqlite3.connect(path, isolation_level=None)
    for t in ("record_rows", "record_columns", "record_digests"):
        db.execute(f"UPDATE {t} SET block_index = CASE block_index WHEN 10 THEN 11 ELSE 10 END "
                   "WHERE chain = 'JY1' AND block_index IN (10, 11)")
    rehash(db, "JY1", 10)
    db.close()
    found(path, ("JY1", 10), problem="signature")


@pytest.mark.parametrize("detail", DETAILS)
def test_a_middle_period_removed_then_renumbered_and_rehashed(forge, detail):
    db, run, path = forge(detail)
    for chain in CHAINS:
        delete_block(db, chain, MID)
        renumber_after(db, chain, MID)
        rehash(db, chain, MID)
    db.close()
    found(path, ("DU1", MID))
    # the hours now jump, and the renumbered blocks' signatures no longer fit
    assert "signature" in verify_ledger(path).problem


@pytest.mark.parametrize("detail", DETAILS)
@pytest.mark.parametrize("chain", CHAINS)
def test_edit_then_rehash_one_chain(forge, detail, chain):
    """The issue's case: a JY1 contract made to pay 1e6 (or a DU1 price, an LH1 credit),
    that chain's root, hashes and links recomputed: the signatures no longer fit."""
    db, run, path = forge(detail)
    table, column, value = {"DU1": ("schedule", "retail_yuan_per_kwh", 9.0),
                            "JY1": ("transfers", "yuan", 1e6),
                            "LH1": ("credit", "value", 1 + 10000)}[chain]
    edit_record(db, chain, MID, table, column, value)
    rehash(db, chain, MID)
    db.close()
    found(path, (chain, MID), problem="signature")


@pytest.mark.parametrize("detail", DETAILS)
def test_edit_then_rehash_all_chains(forge, detail):
    db, run, path = forge(detail)
    edit_record(db, "DU1", MID, "schedule", "retail_yuan_per_kwh", 9.0)
    edit_record(db, "JY1", MID, "transfers", "yuan", 1e6)
    edit_record(db, "LH1", MID, "credit", "value", 1 + 10000)
    for chain in CHAINS:
        rehash(db, chain, MID)
    db.close()
    found(path, ("DU1", MID), problem="signature")


@pytest.mark.parametrize("detail", DETAILS)
def test_key_holder_rewrites_one_chain_lh1_vouches(forge, detail):
    """Even with every private key, rewriting JY1 alone is caught by LH1, which committed
    to JY1's root for the period."""
    db, run, path = forge(detail)
    edit_record(db, "JY1", MID, "transfers", "yuan", 1e6)
    rehash(db, "JY1", MID, run.keys)
    db.close()
    found(path, ("LH1", MID), problem="roots it records differ")


@pytest.mark.parametrize("detail", DETAILS)
def test_key_holder_rewrites_every_chain_needs_the_anchor(forge, detail):
    """With every private key and all three chains rewritten consistently, the file is
    self-consistent: only the head kept elsewhere reveals it."""
    db, run, path = forge(detail)
    edit_record(db, "JY1", MID, "transfers", "yuan", 1e6)
    rehash(db, "JY1", MID, run.keys)
    lh1 = [r for r in db.execute(
        "SELECT rowid, payload FROM record_rows WHERE chain = 'LH1' AND block_index = ? "
        "AND tbl = 'chains'", (MID,))]
    jy1_root = block(db, "JY1", MID)["merkle_root"]
    du1_root = block(db, "DU1", MID)["merkle_root"]
    if lh1:
        for (rowid, payload), root in zip(lh1, (du1_root, jy1_root), strict=True):
            name, row, values = _parse_row(payload)
            values = [(c, root if c == "merkle_root" else v) for c, _, v in values]
            db.execute("UPDATE record_rows SET payload = ? WHERE rowid = ?",
                       (canonical_row(name, row, values), rowid))
    else:
        db.execute("UPDATE record_digests SET digest = ? WHERE chain = 'LH1' AND "
                   "block_index = ? AND tbl = 'chains'",
                   (table_digest("chains", linked_roots(du1_root, jy1_root)), MID))
    rehash(db, "LH1", MID, run.keys)
    db.close()
    anchor_only(path, ("JY1", HOURS), run.anchor)


@pytest.mark.parametrize("detail", DETAILS)
def test_forged_blocks_appended(forge, detail):
    """A period appended to all chains: signed by an unregistered key, or claimed for a
    registered node but signed by another key; appended by a key holder: the anchor."""
    db, run, path = forge(detail)
    stranger = KeyRing.generate(["stranger"])
    producer = block(db, "LH1", HOURS)["producer"]
    for signer, claimed, where in ((stranger.signer("stranger"), "stranger", "registered"),
                                   (stranger.signer("stranger"), producer, "signature"),
                                   (None, producer, "anchor")):
        shutil.copyfile(run.path, path)
        db = sqlite3.connect(path, isolation_level=None)
        for chain in CHAINS:
            head = block(db, chain, HOURS)
            h = block_hash(chain, HOURS + 1, head["hash"], HOURS + 1, head["merkle_root"],
                           claimed, 0, 0)
            s = (signer or run.keys.signer(claimed)).sign(signed_message(h)).hex()
            db.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                       (chain, HOURS + 1, head["hash"], HOURS + 1, head["merkle_root"],
                        claimed, "0" * 64, h, s))
            for t in ("record_rows", "record_columns", "record_digests"):
                cols = [r[1] for r in db.execute(f"PRAGMA table_info({t})")]
                rest = ", ".join(cols[2:])
                db.execute(f"INSERT INTO {t} SELECT chain, block_index + 1, {rest} FROM {t} "
                           "WHERE chain = ? AND block_index = ?", (chain, HOURS))
        db.close()
        if where == "anchor":
            anchor_only(path, ("DU1", HOURS + 1), run.anchor)
        else:
            found(path, ("DU1", HOURS + 1), problem=where)


@pytest.mark.parametrize("detail", DETAILS)
def test_producer_changed(forge, detail):
    db, run, path = forge(detail)
    other = next(n for n in run.keys.names
                 if n not in (AUTHORITY, block(db, "LH1", MID)["producer"]))
    rehash(db, "LH1", MID, producer=other)
    db.close()
    found(path, ("LH1", MID), problem="signature")


@pytest.mark.parametrize("kind", ["hashed", "hashed-full"])
def test_hashed_target_and_nonce(forge, kind):
    """The issue's case: the stored target raised to 2^256 - 1 so any nonce passes; a
    nonce changed; a producer changed. Re-hashed, and even re-signed by a key holder: the
    target is re-derived from the committed parameters and the credit on LH1."""
    db, run, path = forge(kind)
    b = block(db, "LH1", MID)
    assert int(b["target"], 16) > 0
    rnd_nonce = b["nonce"] + 1
    other = next(n for n in run.keys.names if n not in (AUTHORITY, b["producer"]))
    attacks = [({"target": 2**256 - 1}, None, "signature"),  # any nonce meets it
               ({"target": 2**256 - 1}, run.keys, "re-derived"),
               ({"target": 2**256 - 1, "nonce": 0}, run.keys, "re-derived"),
               ({"nonce": rnd_nonce}, None, ""),  # failing proof of work, or signature
               ({"nonce": rnd_nonce}, run.keys, "nonce does not meet target"),
               ({"producer": other}, run.keys, "")]
    db.close()
    for fields, keys, problem in attacks:
        shutil.copyfile(run.path, path)
        db = sqlite3.connect(path, isolation_level=None)
        rehash(db, "LH1", MID, keys, **fields)
        db.close()
        found(path, ("LH1", MID), problem=problem)


@pytest.mark.parametrize("detail", DETAILS)
def test_sampled_blocks_carry_no_proof_of_work(forge, detail):
    db, run, path = forge(detail)
    rehash(db, "LH1", MID, run.keys, target=2**256 - 1)
    db.close()
    found(path, ("LH1", MID), problem="re-derived")


@pytest.mark.parametrize("detail", DETAILS)
def test_meta_edited_or_emptied(forge, detail):
    db, run, path = forge(detail)
    db.close()
    for sql in ("UPDATE meta SET value = '1' WHERE key = 'seed'",
                "UPDATE meta SET value = replace(value, '\"hours\": 48', '\"hours\": 96') "
                "WHERE key = 'params'",
                "DELETE FROM meta",
                "INSERT INTO meta VALUES ('note', 'x')"):
        shutil.copyfile(run.path, path)
        with sqlite3.connect(path) as con:
            assert con.execute(sql).rowcount == 1 or sql.startswith("DELETE")
        con.close()
        found(path, ("DU1", 0), problem="meta table")


@pytest.mark.parametrize("detail", DETAILS)
def test_run_record_or_genesis_balance_edited_and_rehashed(forge, detail):
    """The committed run record (and meta to match), or a genesis balance raised by 1e6,
    then the genesis re-hashed: the grid company's signature no longer fits."""
    db, run, path = forge(detail)
    if detail == "full":
        edit_record(db, "JY1", 0, "nodes", "balance_yuan", 1e6)
    else:
        (data,) = db.execute("SELECT data FROM record_columns WHERE chain = 'JY1' AND "
                             "block_index = 0 AND tbl = 'nodes' AND col = 'balance_yuan'"
                             ).fetchone()
        balance = np.frombuffer(data, ">f8").copy()
        balance[0] += 1e6
        db.execute("UPDATE record_columns SET data = ? WHERE chain = 'JY1' AND block_index = 0 "
                   "AND tbl = 'nodes' AND col = 'balance_yuan'", (balance.tobytes(),))
    rehash(db, "JY1", 0)
    db.close()
    found(path, ("JY1", 0), problem="signature")


@pytest.mark.parametrize("detail", DETAILS)
def test_signatures_swapped_between_blocks(forge, detail):
    db, run, path = forge(detail)
    for (c1, i1), (c2, i2) in ((("LH1", MID), ("LH1", MID + 1)), (("DU1", MID), ("JY1", MID))):
        shutil.copyfile(run.path, path)
        db = sqlite3.connect(path, isolation_level=None)
        s1, s2 = block(db, c1, i1)["signature"], block(db, c2, i2)["signature"]
        assert s1 != s2
        db.execute("UPDATE blocks SET signature = ? WHERE chain = ? AND block_index = ?",
                   (s2, c1, i1))
        db.execute("UPDATE blocks SET signature = ? WHERE chain = ? AND block_index = ?",
                   (s1, c2, i2))
        db.close()
        found(path, (c1, i1), problem="signature")


@pytest.mark.parametrize("detail", DETAILS)
def test_a_block_signed_by_another_node_than_its_producer(forge, detail):
    db, run, path = forge(detail)
    b = block(db, "JY1", MID)
    other = next(n for n in run.keys.names if n not in (AUTHORITY, b["producer"]))
    forged = run.keys.signer(other).sign(signed_message(b["hash"])).hex()
    db.execute("UPDATE blocks SET signature = ? WHERE rowid = ?", (forged, b["rowid"]))
    db.close()
    found(path, ("JY1", MID), problem="signature")


def test_a_whole_ledger_replaced_by_another_valid_one(runs, tmp_path):
    """The same scenario and seed run again (fresh keys, a fresh run id): a complete,
    valid ledger with the same records. The original run's anchor tells them apart on
    every chain (DU1 commits the run id), and so does its grid company's key."""
    other = Run(tmp_path, "digest")
    original = runs["digest"].anchor
    assert verify_ledger(other.path).ok
    anchor_only(other.path, ("JY1", 0), original)  # the grid company's key first
    found(other.path, ("DU1", HOURS), {c: original[c] for c in CHAINS})
    for chain in CHAINS:
        found(other.path, (chain, None), {chain: {"blocks": None,
                                                  "head": original[chain]["head"]}})
    found(other.path, ("JY1", 0), {"authority_key": original["authority_key"]},
          problem="re-signed")


# ----------------------------------------------------------------------------- the file itself
def refused(path, message: str) -> None:
    """Exit 2 territory: one line naming the file, never a verdict."""
    with pytest.raises(ConfigError, match=message) as err:
        verify_ledger(path)
    assert f"'{path}'" in str(err.value) and "\n" not in str(err.value)


REBUILD = "ALTER TABLE {t} RENAME TO old; CREATE TABLE {t} ({cols}); " \
          "INSERT INTO {t} SELECT * FROM old; DROP TABLE old;"
SCHEMA_FORGERIES = {
    # SQL compares chain without case: a hidden 'lh1' row is read by a reader asking for LH1
    "collate nocase": REBUILD.format(
        t="record_digests", cols="chain TEXT NOT NULL COLLATE NOCASE, block_index INTEGER "
        "NOT NULL, tbl TEXT NOT NULL, digest BLOB NOT NULL")
    + "INSERT INTO record_digests VALUES ('lh1', 3, 'credit', zeroblob(32));"
    + "CREATE INDEX record_digests_by_block ON record_digests (chain, block_index);",
    "view": "ALTER TABLE meta RENAME TO m2; CREATE VIEW meta AS SELECT * FROM m2;",
    "trigger": "CREATE TRIGGER t AFTER INSERT ON meta BEGIN SELECT 1; END;",
    "extra table": "CREATE TABLE notes (x);",
    "generated column": REBUILD.format(
        t="meta", cols="key TEXT PRIMARY KEY, value TEXT NOT NULL, "
        "shown TEXT GENERATED ALWAYS AS ('1e9') VIRTUAL").replace("SELECT *",
                                                                 "SELECT key, value")
    .replace("INSERT INTO meta", "INSERT INTO meta (key, value)"),
    "null block index": REBUILD.format(
        t="record_rows", cols="chain TEXT NOT NULL, block_index INTEGER, tbl TEXT NOT NULL, "
        "row INTEGER NOT NULL, payload BLOB NOT NULL")
    + "INSERT INTO record_rows VALUES ('JY1', NULL, 'transfers', 0, x'00');"
    + "CREATE INDEX record_rows_by_block ON record_rows (chain, block_index);",
    "meta without its key": REBUILD.format(t="meta", cols="key TEXT, value TEXT NOT NULL")
    + "INSERT INTO meta VALUES ('seed', '99');",
    "index dropped": "DROP INDEX blocks_by_chain;",
    "unique index added": "CREATE UNIQUE INDEX extra ON blocks (hash);",
}


@pytest.mark.parametrize("attack", sorted(SCHEMA_FORGERIES))
def test_a_schema_an_sql_reader_honours_but_a_verifier_might_not(forge, attack):
    """The issue's 14 forgeries that let SQL readers and the verifier see different data:
    the verifier requires the exact schema a ledger is written with (exit 2)."""
    db, run, path = forge("full")
    db.executescript(SCHEMA_FORGERIES[attack])
    db.close()
    refused(path, "schema differs")


def wal_forgery(run, folder: Path, forge, revert) -> Path:
    """A main file changed by ``forge(db)`` and a committed -wal that ``revert(db)`` writes
    over it, as a killed writer leaves them: copied while the writing connection still
    holds them."""
    work, out = folder / "work.sqlite", folder / "forged.sqlite"
    shutil.copyfile(run.path, work)
    db = sqlite3.connect(work, isolation_level=None)
    forge(db)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    revert(db)
    for suffix in ("", "-wal", "-shm"):
        shutil.copyfile(f"{work}{suffix}", f"{out}{suffix}")
    db.close()
    return out


def test_a_forged_file_with_a_log_that_reverts_it(runs, tmp_path):
    """The file with its -wal reads as the honest ledger, the file alone (as copied or
    archived) holds a raised transfer: found, whether read with its log or without; a
    -wal without its -shm, or a -journal, is refused rather than read either way."""
    run = runs["full"]
    original = sqlite3.connect(run.path).execute(
        "SELECT rowid, payload FROM record_rows WHERE chain = 'JY1' AND block_index = ? AND "
        "tbl = 'transfers' ORDER BY row", (MID,)).fetchone()
    forged = wal_forgery(
        run, tmp_path, lambda db: edit_record(db, "JY1", MID, "transfers", "yuan", 1e6),
        lambda db: db.execute("UPDATE record_rows SET payload = ? WHERE rowid = ?",
                              original[::-1]))
    found(forged, ("JY1", MID), problem="without its -wal")
    Path(f"{forged}-shm").unlink()
    refused(forged, "did not close it")
    Path(f"{forged}-wal").unlink()
    found(forged, ("JY1", MID), problem="merkle root")
    Path(f"{forged}-journal").write_bytes(b"\xd9\xd5\x05\xf9 \xa1c\xd7" + bytes(504))
    refused(forged, "cut off mid-transaction")


def test_a_log_that_hides_the_newest_periods(runs, tmp_path):
    """The -wal deletes the last period: with it, a shorter ledger a run might still be
    writing; the file alone ends on a block the -wal view does not have."""
    def cut(db):
        for t in ("blocks", "record_rows", "record_columns", "record_digests"):
            db.execute(f"DELETE FROM {t} WHERE block_index = {HOURS}")

    hidden = wal_forgery(runs["digest"], tmp_path, lambda db: None, cut)
    found(hidden, ("DU1", HOURS), problem="another block")


def test_verifying_creates_nothing_beside_the_file(runs, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "l.sqlite"
    shutil.copyfile(runs["digest"].path, path)
    folder.chmod(0o555)
    try:
        assert verify_ledger(path).ok
        assert [p.name for p in folder.iterdir()] == ["l.sqlite"]
    finally:
        folder.chmod(0o755)


def test_a_ledger_being_written_verifies_up_to_its_last_committed_period(tmp_path):
    """Blocks and records are read in one snapshot, through the writer's log."""
    path = tmp_path / "live.sqlite"
    m = DIPIModel(seed=5, ledger=str(path), **{**SMALL, "hours": 12})
    m.run(5)
    m.ledger.sync()
    assert Path(f"{path}-wal").stat().st_size > 0
    report = verify_ledger(path)
    assert report.ok and report.blocks == 3 * 6 and "still writing" in report.unchecked[0]
    m.run(1)
    assert verify_ledger(path).blocks == 3 * 7
    m.close()
    assert verify_ledger(path).unchecked == (NO_ANCHOR,)


# ----------------------------------------------------------------------------- anchors
@pytest.mark.parametrize("detail", DETAILS)
def test_a_partial_anchor_names_every_chain_it_leaves_open(forge, detail):
    """--head on one chain: the others are listed as not checked (an insider anchored by
    JY1 alone could rewrite DU1), and so is the grid company's key."""
    db, run, path = forge(detail)
    db.close()
    for chain in CHAINS:
        report = verify_ledger(path, {chain: {"blocks": None, "head": run.anchor[chain]["head"]}})
        others = ", ".join(c for c in CHAINS if c != chain)
        assert report.ok and report.unchecked[0].startswith(f"chain heads of {others}:")
        assert "grid company's key" in report.unchecked[1]
    report = verify_ledger(path, {**{c: run.anchor[c] for c in CHAINS},
                                  "authority_key": run.anchor["authority_key"]})
    assert report.ok and report.unchecked == ()


@pytest.mark.parametrize("detail", DETAILS)
def test_every_block_or_every_period_removed(forge, detail):
    """Emptied of every block, or cut back to its genesis, a ledger whose run record keeps
    blocks is altered even without an anchor."""
    db, run, path = forge(detail)
    for t in ("blocks", "record_rows", "record_columns", "record_digests"):
        db.execute(f"DELETE FROM {t} WHERE block_index > 0")
    db.close()
    found(path, ("DU1", 1), problem="end at their genesis")
    db = sqlite3.connect(path, isolation_level=None)
    for t in ("blocks", "record_rows", "record_columns", "record_digests"):
        db.execute(f"DELETE FROM {t}")
    db.close()
    found(path, ("DU1", 0), problem="holds no blocks")


# ----------------------------------------------------------------------------- meaning
@pytest.mark.parametrize("detail", DETAILS)
def test_one_stolen_key_re_attributes_a_period(forge, detail):
    """An insider re-signs LH1's head as its own (the block reward is LH1's producer's):
    the period's DU1 and JY1 blocks name another producer."""
    db, run, path = forge(detail)
    b = block(db, "LH1", HOURS)
    thief = next(n for n in run.keys.names if n not in (AUTHORITY, b["producer"]))
    rehash(db, "LH1", HOURS, KeyRing({thief: run.keys.signer(thief).key}), producer=thief)
    db.close()
    found(path, ("LH1", HOURS), problem="producer")


@pytest.mark.parametrize("value", [float("nan"), -float("nan"), -0.0, 1e308, float("inf")])
def test_a_key_holder_signs_an_impossible_amount(forge, value):
    """NaN (either sign), -0.0, infinities and 1e308 yuan, signed by the key holder."""
    db, run, path = forge("full")
    edit_record(db, "JY1", MID, "transfers", "yuan", value)
    rehash(db, "JY1", MID, run.keys)
    db.close()
    found(path, ("JY1", MID), problem="amount")


@pytest.mark.parametrize("detail", DETAILS)
def test_a_nan_block_reward_signed_by_the_grid_company(forge, detail):
    db, run, path = forge(detail)
    set_genesis_value(db, "DU1", "tariff", "block_reward_yuan", float("nan"))
    rehash(db, "DU1", 0, run.keys)
    db.close()
    found(path, ("DU1", 0), problem="not finite")


def test_a_payload_with_a_garbage_tail(forge):
    db, run, path = forge("full")
    rowid, payload = db.execute("SELECT rowid, payload FROM record_rows WHERE chain = 'JY1' "
                                "AND block_index = ? AND tbl = 'transfers' AND row = 0",
                                (MID,)).fetchone()
    db.execute("UPDATE record_rows SET payload = ? WHERE rowid = ?", (payload + b"\0\xff", rowid))
    rehash(db, "JY1", MID, run.keys)
    db.close()
    found(path, ("JY1", MID), problem="malformed")


@pytest.mark.parametrize("spelling", [str.upper, lambda s: s[:2] + " " + s[2:]])
def test_a_signature_not_in_its_canonical_hex(forge, spelling):
    db, run, path = forge("digest")
    b = block(db, "JY1", MID)
    db.execute("UPDATE blocks SET signature = ? WHERE rowid = ?",
               (spelling(b["signature"]), b["rowid"]))
    db.close()
    found(path, ("JY1", MID), problem="lowercase hex")


# ----------------------------------------------------------------------------- crash inputs
def set_genesis_value(db, chain: str, table: str, column: str, value) -> None:
    """A genesis value changed in whichever form it is stored (rows or columns)."""
    if db.execute("SELECT 1 FROM record_rows WHERE chain = ? AND block_index = 0 AND tbl = ?",
                  (chain, table)).fetchone():
        edit_record(db, chain, 0, table, column, value)
        return
    rows = db.execute("SELECT col, dtype, data FROM record_columns WHERE chain = ? AND "
                      "block_index = 0 AND tbl = ?", (chain, table)).fetchall()
    arrays = {c: _column_from_bytes(t, d) for c, t, d in rows}
    arrays[column] = arrays[column].copy()
    arrays[column][0] = value
    tag = dict((c, t) for c, t, _ in rows)[column]
    db.execute("UPDATE record_columns SET data = ? WHERE chain = ? AND block_index = 0 AND "
               "tbl = ? AND col = ?", (_column_bytes(tag, arrays[column]), chain, table, column))


def edit_run_params(db, key: str, value) -> None:
    """A committed parameter changed in the run record and meta alike (as an insider
    holding the grid company's key would, before re-signing)."""
    (params,) = db.execute("SELECT value FROM meta WHERE key = 'params'").fetchone()
    new = json.dumps({**json.loads(params), key: value}, sort_keys=True)
    db.execute("UPDATE meta SET value = ? WHERE key = 'params'", (new,))
    rows = db.execute("SELECT rowid, payload FROM record_rows WHERE chain = 'DU1' AND "
                      "block_index = 0 AND tbl = 'run' ORDER BY row").fetchall()
    if rows:
        for rowid, payload in rows:
            name, row, values = _parse_row(payload)
            if dict((c, v) for c, _, v in values)["key"] == "params":
                values = [(c, new if c == "value" else v) for c, _, v in values]
                db.execute("UPDATE record_rows SET payload = ? WHERE rowid = ?",
                           (canonical_row(name, row, values), rowid))
        return
    keys = _column_from_bytes("str", db.execute(
        "SELECT data FROM record_columns WHERE chain = 'DU1' AND block_index = 0 AND "
        "tbl = 'run' AND col = 'key'").fetchone()[0]).tolist()
    set_genesis_value_at(db, "run", "value", keys.index("params"), new)


def set_genesis_value_at(db, table: str, column: str, i: int, value) -> None:
    (data,) = db.execute("SELECT data FROM record_columns WHERE chain = 'DU1' AND "
                         "block_index = 0 AND tbl = ? AND col = ?", (table, column)).fetchone()
    values = _column_from_bytes("str", data).tolist()
    values[i] = value
    db.execute("UPDATE record_columns SET data = ? WHERE chain = 'DU1' AND block_index = 0 "
               "AND tbl = ? AND col = ?", (_column_bytes("str", np.array(values)), table, column))


CRASHES = {
    "corrupt b-tree page": None,
    "invalid utf-8": "UPDATE blocks SET producer = CAST(x'ff' AS TEXT) WHERE chain = 'JY1' "
                     "AND block_index = 3",
    "trailing byte in the run record": "UPDATE record_columns SET data = data || x'00' WHERE "
                                       "chain = 'DU1' AND block_index = 0 AND tbl = 'run' AND "
                                       "col = 'value'",
    "a list for a rule name": ("consensus", ["poca"]),
    "poca_tau = 0": ("poca_tau", 0),
    "poca_tau = -1e308": ("poca_tau", -1e308),
}


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_inputs_that_crashed_the_verifier_end_in_one_line(forge, case):
    """Each gives exit 2 with one line, or exit 1 naming the chain and block."""
    db, run, path = forge("digest")
    attack = CRASHES[case]
    if isinstance(attack, str):
        db.execute(attack)
    elif isinstance(attack, tuple):
        edit_run_params(db, *attack)
        rehash(db, "DU1", 0, run.keys)
    db.close()
    if attack is None:
        data = bytearray(path.read_bytes())
        data[8 * 4096 : 8 * 4096 + 64] = bytes(range(64))  # a b-tree page's header
        path.write_bytes(bytes(data))
    r = subprocess.run([sys.executable, "-m", "dipi_abm.cli", "verify-ledger", str(path)],
                       capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr, r.stderr
    out = r.stdout if r.returncode == 1 else r.stderr
    assert len(out.strip().splitlines()) == 1, out
    if r.returncode == 1:
        assert "ALTERED: DU1 block 0" in out or "JY1 block 3" in out, out
