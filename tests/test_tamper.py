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
import random
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from dipi_abm import DIPIModel
from dipi_abm.ledger.keys import AUTHORITY, KeyRing
from dipi_abm.ledger.store import (
    _parse_row,
    block_hash,
    canonical_row,
    linked_roots,
    merkle_root,
    signed_message,
    table_digest,
)
from dipi_abm.ledger.verify import NO_ANCHOR, _Verifier, verify_ledger

HOURS = 48
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
    verifier = _Verifier(db)  # the package's own leaf computation: the forger has the code
    for i in range(start, length(db, chain)):
        b = block(db, chain, i)
        prev = block(db, chain, i - 1)["hash"] if i > 0 else "0" * 64
        header = dict(prev_hash=prev, hour=b["hour"],
                      merkle_root=merkle_root(verifier.leaves(chain, i)).hex(),
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
    """The same scenario and seed run again (fresh keys): a complete, valid ledger with
    the same records. Only the anchor of the original run tells them apart."""
    other = Run(tmp_path, "digest")
    assert verify_ledger(other.path).ok
    anchor_only(other.path, ("JY1", HOURS), runs["digest"].anchor)  # DU1: same records
    found(other.path, ("LH1", None), {"LH1": {"blocks": None,
                                              "head": runs["digest"].anchor["LH1"]["head"]}})
