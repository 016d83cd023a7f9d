"""Verifying a ledger: what a forger would have to get past (docs/model.md section 7).

:func:`verify_ledger` trusts nothing in a block to check that block. In order:

1. **Genesis.** Block 0 of each chain is recomputed (records, Merkle root,
   hash) and must be signed by the grid company's key registered in JY1's
   genesis; the ``meta`` table must equal the run record committed in DU1's; LH1's
   genesis records the DU1 and JY1 genesis roots.
2. **Every block.** Chain by chain: the index continues, the previous hash
   links, the hour moves forward, the Merkle root matches the stored records,
   the hash matches the header, the producer is a registered member and its
   signature of the hash verifies with its registered key; the target is the
   one re-derived from the committed parameters and the credit recorded on LH1
   (hashed POCA: [DIPI] eq. 10, ``poca_targets``; otherwise no proof of work,
   target and nonce 0) and the nonce meets it; LH1's record of the period's DU1
   and JY1 roots equals those chains' roots.
3. **The chains together.** The three chains have the same length and the
   same hour at every index; no record or block lies outside them.
4. **The anchor.** With the chains' lengths and head hashes kept elsewhere (a
   run's ``summary.json``, or a head given by hand), the file must end where
   the anchor says. Without one, the report says what it could not check:
   removing the newest periods from all three chains at once, or replacing the
   whole ledger by one signed with new keys, leaves a self-consistent file.

The report names the first bad block: chain and index.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..rules.consensus import CONSENSUS_RULES, poca_targets, pow_hash
from .coloredcoin import CodecError, decode_credit_updates
from .keys import AUTHORITY, public_key, signature_ok
from .store import (
    _BLOCK_COLUMNS,
    CHAINS,
    GENESIS_PREV,
    Ledger,
    VerifyReport,
    _canonical_rows,
    _column_from_bytes,
    _columns,
    _digest,
    _records_from_rows,
    _row_key,
    block_hash,
    digest_leaf,
    linked_roots,
    merkle_root,
    open_ledger_file,
    signed_message,
    table_digest,
)

__all__ = ["NO_ANCHOR", "Anchor", "anchor_from_heads", "anchor_from_summary", "verify_db",
           "verify_ledger", "verify_open"]

#: Per chain: {"blocks": length or None, "head": hash of the last block}.
Anchor = Mapping[str, Mapping[str, Any]]

NO_ANCHOR = ("chain heads: no anchor given (--summary or --head), so the newest periods "
             "removed from all three chains, or a whole ledger replaced by one signed with "
             "new keys, would go unnoticed")
_NO_CONSENSUS = "consensus targets: the genesis commits no consensus parameters"


# ----------------------------------------------------------------------------- anchors
def anchor_from_summary(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The chain heads a run recorded in its ``summary.json`` (key ``chains``)."""
    path = Path(path)
    try:
        chains = json.loads(path.read_text())["chains"]
        anchor = {c: {"blocks": int(chains[c]["blocks"]), "head": str(chains[c]["head"])}
                  for c in CHAINS}
    except FileNotFoundError:
        raise ConfigError(f"summary '{path}': no such file") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"summary '{path}': has no chain heads (key 'chains': the run "
                          "kept no ledger, or an older version wrote it)") from None
    return anchor


def anchor_from_heads(heads: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Anchors given as ``CHAIN:HASH`` (64 lowercase hex digits), at most one per chain."""
    anchor: dict[str, dict[str, Any]] = {}
    for text in heads:
        chain, _, h = text.partition(":")
        if chain not in CHAINS or len(h) != 64 or h.strip("0123456789abcdef") or chain in anchor:
            raise ConfigError(f"--head {text!r}: must be CHAIN:HASH with CHAIN one of "
                              f"{', '.join(CHAINS)} (once each) and HASH 64 lowercase hex digits")
        anchor[chain] = {"blocks": None, "head": h}
    return anchor


# ----------------------------------------------------------------------------- entry points
def verify_ledger(path: str | os.PathLike, anchor: Anchor | None = None) -> VerifyReport:
    """Check a ledger file (opened read-only) as the module docstring describes."""
    db = open_ledger_file(path)
    try:
        return verify_db(db, anchor)
    finally:
        db.close()


class _Bad(Exception):
    """The first bad block: raised deep in a check, turned into the report."""

    def __init__(self, chain: str | None, index: int | None, problem: str) -> None:
        super().__init__(problem)
        self.chain, self.index, self.problem = chain, index, problem


def verify_open(ledger: Ledger, anchor: Anchor | None = None) -> VerifyReport:
    """Check an open ledger as :func:`verify_ledger` checks a file, anchored by default to
    the heads its writer appended (it is its own witness)."""
    ledger.sync()
    return verify_db(ledger.db, ledger.heads() if anchor is None else anchor)


def verify_db(db: sqlite3.Connection, anchor: Anchor | None = None) -> VerifyReport:
    """The checks of :func:`verify_ledger`, on an open connection."""
    v = _Verifier(db)
    try:
        unchecked = v.run(anchor)
    except _Bad as bad:
        return VerifyReport(False, v.checked, bad.chain, bad.index, bad.problem)
    return VerifyReport(True, v.checked, unchecked=unchecked)


# ----------------------------------------------------------------------------- the checks
class _Verifier:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.checked = 0
        self.rows: dict[str, list[tuple]] = {c: [] for c in CHAINS}
        for row in db.execute(f"SELECT {_BLOCK_COLUMNS} FROM blocks "
                              "ORDER BY chain, block_index, rowid"):
            if row[0] in self.rows:
                self.rows[row[0]].append(row)
        # At digest detail a block's records are a few table digests: read them all at once.
        self.digests: dict[tuple, list[tuple]] = {}
        for chain, idx, tbl, digest in db.execute(
                "SELECT chain, block_index, tbl, digest FROM record_digests"):
            self.digests.setdefault((chain, idx), []).append((tbl, digest))
        self.columns: dict[tuple, list[tuple]] = {}
        for chain, idx, tbl, col, tag, data in db.execute(
                "SELECT chain, block_index, tbl, col, dtype, data FROM record_columns"):
            self.columns.setdefault((chain, idx), []).append((tbl, col, tag, data))
        self.has_rows = db.execute("SELECT 1 FROM record_rows LIMIT 1").fetchone() is not None
        self.keys: dict[str, Any] = {}

    # -- reading one block's stored records
    def _row_payloads(self, chain: str, index: int) -> list[tuple]:
        if not self.has_rows:
            return []
        return self.db.execute(
            "SELECT tbl, row, payload FROM record_rows WHERE chain = ? AND block_index = ?",
            (chain, index)).fetchall()

    def leaves(self, chain: str, index: int) -> list[bytes]:
        """The Merkle leaves recomputed from a block's stored records; ValueError if the
        stored records could not have been written for this block."""
        rows = self._row_payloads(chain, index)
        leaves: dict[str, list[bytes]] = {}
        if not all(type(t) is str and type(r) is int and type(p) is bytes for t, r, p in rows):
            raise ValueError("a record row has a field of the wrong type")
        rows.sort(key=lambda r: (r[0], r[1]))
        for tbl, row, payload in rows:
            table_leaves = leaves.setdefault(tbl, [])
            if _row_key(payload) != (tbl, row) or row != len(table_leaves):
                raise ValueError("a record's table or row does not match its payload")
            table_leaves.append(hashlib.sha256(payload).digest())
        tables: dict[str, list[tuple[str, str, int, bytes]]] = {}
        for tbl, col, tag, data in self.columns.get((chain, index), ()):
            if not (type(tbl) is str and type(col) is str and type(tag) is str
                    and type(data) is bytes):
                raise ValueError("a record column has a field of the wrong type")
            tables.setdefault(tbl, []).append((col, tag, _column_from_bytes(tag, data).size,
                                               data))
        for tbl, cols in tables.items():
            if tbl in leaves:
                raise ValueError(f"table {tbl!r} is stored both as rows and as columns")
            if len({c[0] for c in cols}) != len(cols) or len({c[2] for c in cols}) != 1:
                raise ValueError(f"table {tbl!r} has repeated or unequal columns")
            leaves[tbl] = [_digest(tbl, cols)]
        for tbl, digest in self.digests.get((chain, index), ()):
            if not (type(tbl) is str and type(digest) is bytes and len(digest) == 32):
                raise ValueError("a table digest has a field of the wrong type")
            if tbl in leaves:
                raise ValueError(f"table {tbl!r} is stored twice")
            leaves[tbl] = [digest_leaf(tbl, digest)]
        return [leaf for tbl in sorted(leaves) for leaf in leaves[tbl]]

    def table(self, chain: str, index: int, name: str) -> dict[str, np.ndarray] | None:
        """One readable table of a verified block (None: absent or kept only as a digest)."""
        cols = [(col, tag, data) for tbl, col, tag, data in self.columns.get((chain, index), ())
                if tbl == name]
        if cols:
            return {col: _column_from_bytes(tag, data) for col, tag, data in cols}
        payloads = [p for tbl, _, p in sorted(self._row_payloads(chain, index)) if tbl == name]
        return _records_from_rows(payloads).get(name) if payloads else None

    def table_matches(self, chain: str, index: int, name: str,
                      expected: Mapping[str, np.ndarray]) -> bool:
        """Whether a block's table ``name``, in whatever form it is stored, holds exactly
        ``expected`` (compared in stored form: rows, columns or digest)."""
        for tbl, digest in self.digests.get((chain, index), ()):
            if tbl == name:
                return digest == table_digest(name, expected)
        stored = [(col, tag, _column_from_bytes(tag, data).size, data)
                  for tbl, col, tag, data in self.columns.get((chain, index), ()) if tbl == name]
        if stored:
            return _digest(name, stored) == table_digest(name, expected)
        payloads = [p for tbl, _, p in sorted(self._row_payloads(chain, index)) if tbl == name]
        return payloads == _canonical_rows(name, _columns(name, expected))

    # -- one block on its own
    def check_block(self, row: Sequence[Any], index: int, prev: str,
                    prev_hour: int | None) -> int:
        """Everything about one block that needs no other chain but the key registry;
        returns its target."""
        target = self.check_structure(row, index, prev, prev_hour)
        self.check_signature(row, index)
        return target

    def check_structure(self, row: Sequence[Any], index: int, prev: str,
                        prev_hour: int | None) -> int:
        """Types, index, link, hour, Merkle root, hash, proof of work; returns the target."""
        chain, idx, prev_hash, hour, root, producer, nonce, target, h, signature = row
        types = (int, str, int, str, str, int, str, str, str)
        if not all(type(v) is t for v, t in zip(row[1:], types, strict=True)):
            raise _Bad(chain, index, "block row has a field of the wrong type")
        if idx != index:
            raise _Bad(chain, index, f"index does not continue (expected {index}, found {idx})")
        if prev_hash != prev:
            raise _Bad(chain, index, "previous hash does not link")
        if prev_hour is not None and hour <= prev_hour:
            raise _Bad(chain, index, "hour does not move forward")
        try:
            target_int = int(target, 16)
            valid = f"{target_int:064x}" == target and 0 <= nonce < 2**63
        except ValueError:
            valid = False
        if not valid:
            raise _Bad(chain, index, "nonce or target is not a valid number")
        try:
            leaves = self.leaves(chain, index)
        except (ValueError, UnicodeDecodeError, CodecError) as exc:
            raise _Bad(chain, index, f"records are malformed: {exc}") from None
        if merkle_root(leaves).hex() != root:
            raise _Bad(chain, index, "merkle root does not match its records")
        try:
            recomputed = block_hash(chain, idx, prev_hash, hour, root, producer, nonce, target_int)
        except (ValueError, OverflowError, UnicodeEncodeError):
            recomputed = None
        if recomputed != h:
            raise _Bad(chain, index, "block hash does not match its header")
        if target_int > 0 and pow_hash(root, producer, nonce) > target_int:
            raise _Bad(chain, index, "nonce does not meet target")
        if target_int == 0 and nonce != 0:
            raise _Bad(chain, index, "nonce without a target")
        return target_int

    def check_signature(self, row: Sequence[Any], index: int) -> None:
        """The named producer is a registered member (the grid company for a genesis
        block) and its key verifies the signature of the block's hash."""
        chain, producer, h, signature = row[0], row[5], row[8], row[9]
        if (index == 0) != (producer == AUTHORITY):
            raise _Bad(chain, index, f"{AUTHORITY} produces the genesis blocks, and only them")
        key = self.keys.get(producer)
        if key is None:
            raise _Bad(chain, index, "producer is not a registered member")
        try:
            sig = bytes.fromhex(signature)
        except ValueError:
            sig = b""
        if not signature_ok(key, sig, signed_message(h)):
            raise _Bad(chain, index, "signature does not verify with the producer's key")

    # -- the whole ledger
    def run(self, anchor: Anchor | None) -> tuple[str, ...]:
        unchecked: list[str] = []
        if not any(self.rows.values()):
            self._check_stray()
            if anchor and any(a.get("head") for a in anchor.values()):
                raise _Bad(None, None, "the ledger has no blocks, the anchor has")
            return ("everything: the ledger holds no blocks (ledger_detail off)",)
        # 1. genesis, then the key registry and the run record it commits to
        for chain in CHAINS:
            if not self.rows[chain]:
                raise _Bad(chain, 0, "the chain has no genesis block")
        for chain in CHAINS:
            self.check_structure(self.rows[chain][0], 0, GENESIS_PREV, None)
        self.keys = self._registry()
        run = self._run_record()
        for chain in CHAINS:
            self.check_signature(self.rows[chain][0], 0)
            self.checked += 1
        self._check_links(0)
        targets = _TargetRule(self, run)
        if not targets.known:
            unchecked.append(_NO_CONSENSUS)
        # 2. every later block
        for chain in CHAINS:
            rows = self.rows[chain]
            for i in range(1, len(rows)):
                prev = rows[i - 1]
                target = self.check_block(rows[i], i, prev[8], prev[3])
                if chain == "LH1":
                    self._check_links(i)
                expected = targets.expected(chain, i, rows[i][5])
                if expected is not None and expected != target:
                    raise _Bad(chain, i, "target differs from the one re-derived from the "
                                         "committed parameters and the credit on LH1")
                self.checked += 1
            self._check_orphans(chain, len(rows))
        self._check_stray()
        # 3. the chains together
        self._check_lengths_and_hours()
        # 4. the anchor
        if anchor:
            self._check_anchor(anchor)
        else:
            unchecked.append(NO_ANCHOR)
        return tuple(unchecked)

    def _registry(self) -> dict[str, Any]:
        try:
            keys = self.table("JY1", 0, "keys")
            if keys is None:
                raise ValueError("no table 'keys'")
            names, raw = keys["name"].tolist(), keys["public_key"].tolist()
            if len(set(names)) != len(names):
                raise ValueError("a member is registered twice")
            return {n: public_key(bytes.fromhex(k)) for n, k in zip(names, raw, strict=True)}
        except (ValueError, KeyError, TypeError) as exc:
            raise _Bad("JY1", 0, f"the genesis registers no valid public keys ({exc})") from None

    def _run_record(self) -> dict[str, str]:
        run = self.table("DU1", 0, "run")
        if run is None or set(run) != {"key", "value"}:
            raise _Bad("DU1", 0, "the genesis commits no run record")
        record = dict(zip(run["key"].tolist(), run["value"].tolist(), strict=True))
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        if meta != record:
            raise _Bad("DU1", 0, "the meta table differs from the run record committed in "
                                 "the genesis block (seed, version, parameters)")
        return record

    def _check_links(self, i: int) -> None:
        du1, jy1 = self.rows["DU1"], self.rows["JY1"]
        if i >= len(du1) or i >= len(jy1):
            return  # a shorter chain: reported with the lengths
        expected = linked_roots(du1[i][4], jy1[i][4])
        if not self.table_matches("LH1", i, "chains", expected):
            raise _Bad("LH1", i, f"the DU1 and JY1 roots it records differ from DU1 and JY1 "
                                 f"block {i}")

    def _check_orphans(self, chain: str, length: int) -> None:
        for table in ("record_rows", "record_columns", "record_digests"):
            (orphan,) = self.db.execute(
                f"SELECT MIN(block_index) FROM {table} WHERE chain = ? AND "
                "(typeof(block_index) != 'integer' OR block_index < 0 OR block_index >= ?)",
                (chain, length),
            ).fetchone()
            if orphan is not None:
                index = orphan if isinstance(orphan, int) else None
                raise _Bad(chain, index, "records belong to no block")

    def _check_stray(self) -> None:
        placeholders = ", ".join("?" * len(CHAINS))
        for table in ("blocks", "record_rows", "record_columns", "record_digests"):
            stray = self.db.execute(
                f"SELECT chain, block_index FROM {table} WHERE chain NOT IN ({placeholders}) "
                "OR typeof(chain) != 'text' LIMIT 1",
                CHAINS,
            ).fetchone()
            if stray is not None:
                where = "block" if table == "blocks" else "records"
                index = stray[1] if isinstance(stray[1], int) else None
                raise _Bad(str(stray[0]), index, f"{where} of an unknown chain")

    def _check_lengths_and_hours(self) -> None:
        lengths = {c: len(self.rows[c]) for c in CHAINS}
        common = sorted(lengths.values())[1]  # what at least two chains agree on
        for chain in CHAINS:
            n = lengths[chain]
            if n < common:
                raise _Bad(chain, n, f"block {n} is missing: the chain has {n} blocks, "
                                     f"the others {common}")
            if n > common:
                raise _Bad(chain, common, f"the chain has {n} blocks, the others {common}")
        for i in range(common):
            hours = {c: self.rows[c][i][3] for c in CHAINS}
            usual = sorted(hours.values())[1]
            for chain in CHAINS:
                if hours[chain] != usual:
                    raise _Bad(chain, i, f"hour {hours[chain]} differs from the other "
                                         f"chains' {usual}")

    def _check_anchor(self, anchor: Anchor) -> None:
        for chain in CHAINS:
            if chain not in anchor:
                continue
            rows, n, head = self.rows[chain], anchor[chain].get("blocks"), anchor[chain]["head"]
            if n is None:
                found = [i for i, r in enumerate(rows) if r[8] == head]
                if not found:
                    raise _Bad(chain, None, "the anchored head is not on the chain: the chain "
                                            "was truncated or replaced")
                if found[0] != len(rows) - 1:
                    raise _Bad(chain, found[0] + 1, "blocks follow the anchored head")
                continue
            if len(rows) < n:
                raise _Bad(chain, len(rows), f"truncated: the chain has {len(rows)} blocks, "
                                             f"the anchor {n}")
            if n and rows[n - 1][8] != head:
                raise _Bad(chain, n - 1, "the block at the anchored length is not the "
                                         "anchored head: the chain was replaced")
            if len(rows) > n:
                raise _Bad(chain, n, f"the chain has {len(rows)} blocks, the anchor {n}")


class _TargetRule:
    """Each block's target re-derived from the committed parameters and the credit on
    LH1, never from the block: hashed POCA's N_diff * e^(c/tau) of its producer ([DIPI]
    eq. 10, with the credit recorded up to and including this period), else 0."""

    def __init__(self, v: _Verifier, run: Mapping[str, str]) -> None:
        self.v = v
        try:
            params = json.loads(run["params"])
            consensus, mode = params["consensus"], params["poca_mode"]
            self.bits, self.tau = float(params["poca_difficulty_bits"]), float(params["poca_tau"])
        except (KeyError, ValueError, TypeError):
            self.known = False
            return
        rule = CONSENSUS_RULES.get(consensus)
        self.known = rule is not None
        self.hashed = self.known and rule.has("nonce_race") and mode == "hashed"
        self.credit: np.ndarray | None = None
        self.node_of: dict[str, int] = {}

    def expected(self, chain: str, index: int, producer: str) -> int | None:
        if not self.known:
            return None
        if chain != "LH1" or not self.hashed:
            return 0
        if self.credit is None:
            nodes = self.v.table("JY1", 0, "nodes")
            if nodes is None or "address" not in nodes:
                raise _Bad("JY1", 0, "the genesis lists no nodes to re-derive targets for")
            self.node_of = {a: i for i, a in enumerate(nodes["address"].tolist())}
            self.credit = np.zeros(len(self.node_of))
            self._apply(0)
        self._apply(index)
        node = self.node_of.get(producer)
        if node is None:
            raise _Bad(chain, index, "producer is not a node that can win a block")
        return poca_targets(self.credit[[node]], self.bits, self.tau)[0]

    def _apply(self, index: int) -> None:
        """Credit after LH1 block ``index``'s colored-coin updates."""
        tx = self.v.table("LH1", index, "credit")
        if tx is None:
            raise _Bad("LH1", index, "its credit records, needed to re-derive the target, "
                                     "are not kept")
        try:
            _, _, credit = decode_credit_updates(tx["sequence"], tx["value"])
            self.credit[tx["node"]] = credit  # type: ignore[index]
        except (KeyError, IndexError, CodecError) as exc:
            raise _Bad("LH1", index, f"credit records are malformed ({exc})") from None
