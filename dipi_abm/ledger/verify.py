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
   Every readable record parses exactly, in its canonical encoding, and its
   amounts are finite and within the run's physical bounds (:func:`amount_bounds`).
3. **The chains together.** The three chains have the same length, and the
   same hour and producer at every index; no record or block lies outside them.
   A ledger without blocks (or with its genesis only) whose run record keeps
   them is altered, unless a run is still writing it.
4. **The anchor.** With the chains' lengths and head hashes kept elsewhere (a
   run's ``summary.json``, or a head given by hand), the file must end where
   the anchor says; with the grid company's public key kept elsewhere
   (``summary.json`` or ``--authority-key``), the genesis must register it.
   Whatever is not anchored is listed as not checked: removing the newest
   periods from all three chains at once, or replacing the whole ledger by one
   signed with new keys, leaves a self-consistent file.

The file is read as one snapshot (:func:`~dipi_abm.ledger.store.open_ledger_file`).

The report names the first bad block: chain and index.
"""

from __future__ import annotations

import json
import math
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
    StoredRecords,
    VerifyReport,
    block_hash,
    linked_roots,
    merkle_root,
    open_ledger_file,
    signed_message,
    table_digest,
)

__all__ = ["NO_ANCHOR", "NO_PARAMS", "Anchor", "amount_bounds", "anchor_from_heads",
           "anchor_from_summary", "authority_key", "verify_db", "verify_ledger",
           "verify_open"]

#: Per chain: {"blocks": length or None, "head": hash of the last block}.
Anchor = Mapping[str, Mapping[str, Any]]

NO_ANCHOR = ("chain heads: no anchor given (--summary or --head), so the newest periods "
             "removed from all three chains, or a whole ledger replaced by one signed with "
             "new keys, would go unnoticed")
NO_PARAMS = ("consensus targets and amounts: the genesis commits no run parameters, so "
             "targets are not re-derived and amounts not held to physical bounds")
_NO_AUTHORITY = ("the grid company's key: not pinned (--authority-key, or --summary of a "
                 "run that recorded it), so a ledger re-signed throughout with new keys "
                 "passes the chains no head anchors")


# ----------------------------------------------------------------------------- anchors
def anchor_from_summary(path: str | os.PathLike) -> dict[str, Any]:
    """The chain heads a run recorded in its ``summary.json`` (key ``chains``), with the
    grid company's public key when the run recorded it."""
    path = Path(path)
    try:
        chains = json.loads(path.read_text())["chains"]
        anchor: dict[str, Any] = {
            c: {"blocks": int(chains[c]["blocks"]), "head": str(chains[c]["head"])}
            for c in CHAINS}
        key = chains.get("authority_key")
        if key is not None:
            anchor["authority_key"] = authority_key(key, f"summary '{path}': authority_key")
    except FileNotFoundError:
        raise ConfigError(f"summary '{path}': no such file") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
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


def authority_key(text: Any, what: str = "--authority-key") -> str:
    """A grid company's Ed25519 public key: 64 lowercase hex digits (ConfigError if not)."""
    if not (isinstance(text, str) and len(text) == 64 and not text.strip("0123456789abcdef")):
        raise ConfigError(f"{what} {text!r}: must be the grid company's public key, 64 "
                          "lowercase hex digits (summary.json, chains.authority_key)")
    return text


# ----------------------------------------------------------------------------- entry points
def verify_ledger(path: str | os.PathLike, anchor: Anchor | None = None) -> VerifyReport:
    """Check a ledger file (opened read-only, as one snapshot) as the module docstring
    describes. ``anchor`` may hold chain heads and ``authority_key``."""
    db, live = open_ledger_file(path)
    try:
        report = verify_db(db, anchor, live=live)
        wal = Path(f"{path}-wal")
        # In WAL mode without a log to read: a run between its genesis and its first
        # period, or a ledger closed while a reader held it (then it has its periods).
        if live and not (wal.is_file() and wal.stat().st_size > 0) \
                and report.blocks > len(CHAINS):
            live = False
        if live and report.ok:
            report = _file_alone(path, db) or VerifyReport(True, report.blocks, unchecked=(
                f"what a run still writing it adds (or a killed run left unclosed): the "
                f"file is in WAL mode, its periods waiting in '{Path(path).name}-wal' until "
                f"close; this verdict covers the {report.blocks} blocks committed when it "
                "was read (the file with its -wal, as one snapshot, and the file alone as "
                "its prefix); verify again once the run has closed it", *report.unchecked))
    except sqlite3.Error as exc:  # a page the integrity check did not reach
        raise ConfigError(f"ledger '{path}': not a readable SQLite file "
                          f"({' '.join(str(exc).split())})") from None
    finally:
        db.close()
    return report


def _file_alone(path: str | os.PathLike, db: sqlite3.Connection,
                attempts: int = 50) -> VerifyReport | None:
    """A ledger being written: the file's own bytes, without its -wal (what a copy of
    the file alone holds), must verify too and end on blocks the -wal view has, so a
    -wal cannot hide a forged file. None if so, else the report of what is wrong. A
    run folding its -wal into the file while this reads is waited for."""
    for _ in range(attempts):
        stamp = _stamp(path)
        try:
            alone, _ = open_ledger_file(path, alone=True)
        except ConfigError as exc:
            problem = str(exc).split(": ", 1)[-1]
            report = VerifyReport(False, 0, None, None, problem)
        else:
            try:
                report = verify_db(alone, None, live=True)
                heads = alone.execute("SELECT chain, block_index, hash FROM blocks b "
                                      "WHERE block_index = (SELECT MAX(block_index) FROM "
                                      "blocks WHERE chain = b.chain) ORDER BY chain").fetchall()
            finally:
                alone.close()
        if _stamp(path) != stamp:  # the run is checkpointing: read both again
            continue
        if not report.ok:
            return VerifyReport(False, 0, report.chain, report.index, (
                f"the file without its -wal is not a ledger ({report.problem}): a -wal "
                "beside it hides what the file holds"))
        for chain, index, digest in heads:
            row = db.execute("SELECT hash FROM blocks WHERE chain = ? AND block_index = ?",
                             (chain, index)).fetchone()
            if row is None or row[0] != digest:
                return VerifyReport(False, 0, chain, index, (
                    "the file without its -wal holds another block here than the file "
                    "with it: a -wal beside it rewrites what the file holds"))
        return None
    raise ConfigError(f"ledger '{path}': the file changed on every read; verify again once "
                      "the run writing it has closed it")


def _stamp(path: str | os.PathLike) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


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


def verify_db(db: sqlite3.Connection, anchor: Anchor | None = None, *,
              live: bool = False) -> VerifyReport:
    """The checks of :func:`verify_ledger`, on an open connection (``live``: a run is
    still writing it, so it may end at its genesis)."""
    v = _Verifier(db, live)
    try:
        unchecked = v.run(anchor)
    except _Bad as bad:
        return VerifyReport(False, v.checked, bad.chain, bad.index, bad.problem)
    return VerifyReport(True, v.checked, unchecked=unchecked)


# ----------------------------------------------------------------------------- amounts
_PRICE_COLUMNS = ("price", "wheeling")
_MONEY_COLUMNS = ("yuan", "buyer_pays", "seller_income", "grid_income")


def amount_bounds(params: Mapping[str, Any]) -> dict[str, float]:
    """The largest energy (kWh) one record may hold in an hour, price (yuan/kWh) and
    sum of money (yuan), from the committed parameters: every party (and miner) at 20
    times the largest median capacity or load, its rooftop PV and storage included;
    10 times the dearest tariff, plus wheeling over 10,000 ohm; that energy at that
    price, plus 10 times each node's starting balance, guarantee and block reward.
    Loose on purpose: an honest run never comes near them; NaN, infinities and 1e308
    are refused."""
    def num(key: str) -> float:  # an infinite capacity or limit: no bound from it
        value = float(params[key])
        if not value >= 0:
            raise ValueError(f"{key} = {value}")
        return value

    nodes = num("n_dpgc") + num("n_users") + num("n_miners")
    kw = max(num(k) for k in params if k.endswith("_kw") and k.startswith(("capacity_",
                                                                            "load_")))
    energy = nodes * 20 * kw * (1 + num("prosumer_pv_ratio") + num("storage_power_ratio"))
    price = (10 * max(num(k) for k in params if k.endswith("_yuan_per_kwh"))
             + 1e4 * num("wheeling_rate_yuan_per_kwh_ohm"))
    money = energy * price + 10 * nodes * (num("initial_balance_yuan")
                                           + num("deposit_guarantee_yuan")
                                           + num("block_reward_yuan"))
    return {"energy": energy, "price": price, "money": money}


def _check_amounts(tables: Mapping[str, Mapping[str, np.ndarray]],
                   bounds: Mapping[str, float]) -> None:
    """Every float is finite and not -0.0; energy and prices are non-negative; energy,
    prices and sums of money are at most their bounds in size."""
    for name, table in tables.items():
        for col, values in table.items():
            if values.dtype.kind != "f" or not values.size:
                continue
            where = f"{name}.{col}"
            if not np.isfinite(values).all():
                raise ValueError(f"{where}: an amount is not finite")
            if (np.signbit(values) & (values == 0)).any():
                raise ValueError(f"{where}: an amount is -0.0 (not canonical)")
            if col == "kwh" or col.endswith("_kwh"):
                kind = "energy"
            elif col in _PRICE_COLUMNS or col.endswith("_yuan_per_kwh"):
                kind = "price"
            elif col in _MONEY_COLUMNS or col.endswith("_yuan"):
                kind = "money"
            else:
                continue
            low = -math.inf if kind == "money" else 0.0
            high = bounds[kind]
            if values.min() < low or abs(values).max() > high:
                raise ValueError(f"{where}: an amount lies outside the run's physical bounds "
                                 f"({kind} from {low:g} to {high:.4g})")


# ----------------------------------------------------------------------------- the checks
class _Verifier:
    def __init__(self, db: sqlite3.Connection, live: bool = False) -> None:
        self.db = db
        self.live = live
        self.checked = 0
        self.rows: dict[str, list[tuple]] = {c: [] for c in CHAINS}
        for row in db.execute(f"SELECT {_BLOCK_COLUMNS} FROM blocks "
                              "ORDER BY chain, block_index, rowid"):
            if row[0] in self.rows:
                self.rows[row[0]].append(row)
        self.stored = StoredRecords(db, bulk=True)
        self.keys: dict[str, Any] = {}
        self.bounds: dict[str, float] | None = None
        self._genesis: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        self._last: tuple[str, int, dict[str, dict[str, np.ndarray]]] | None = None

    # -- reading one block's stored records
    def read(self, chain: str, index: int) -> tuple[dict[str, dict[str, np.ndarray]],
                                                    list[bytes]]:
        """The block's readable tables and Merkle leaves (ValueError: malformed)."""
        tables, leaves = self.stored.read(chain, index)
        if index == 0:
            self._genesis[chain] = tables
        self._last = (chain, index, tables)
        return tables, leaves

    def table(self, chain: str, index: int, name: str) -> dict[str, np.ndarray] | None:
        """One readable table of a checked block (None: absent or kept only as a digest)."""
        if index == 0 and chain in self._genesis:
            return self._genesis[chain].get(name)
        if self._last is None or self._last[:2] != (chain, index):
            self.read(chain, index)
        return self._last[2].get(name)

    def table_matches(self, chain: str, index: int, name: str,
                      expected: Mapping[str, np.ndarray]) -> bool:
        """Whether a block's table ``name``, in whatever form it is stored, holds exactly
        ``expected``."""
        for tbl, digest in self.stored.digests(chain, index):
            if tbl == name:
                return digest == table_digest(name, expected)
        table = self.table(chain, index, name)
        return table is not None and table_digest(name, table) == table_digest(name, expected)

    # -- one block on its own
    def check_block(self, row: Sequence[Any], index: int, prev: str,
                    prev_hour: int | None) -> int:
        """Everything about one block that needs no other chain but the key registry;
        returns its target."""
        target = self.check_structure(row, index, prev, prev_hour)
        self.check_signature(row, index)
        self.check_amounts(row[0], index)
        return target

    def check_amounts(self, chain: str, index: int) -> None:
        if self.bounds is None:  # not a run's ledger: its tables have no known meaning
            return
        try:
            _check_amounts(self._last[2], self.bounds)
        except ValueError as exc:
            raise _Bad(chain, index, str(exc)) from None

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
            _, leaves = self.read(chain, index)
        except (ValueError, TypeError, OverflowError, CodecError) as exc:
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
        block) and its key verifies the signature of the block's hash, written in its
        one canonical form (128 lowercase hex digits)."""
        chain, producer, h, signature = row[0], row[5], row[8], row[9]
        if (index == 0) != (producer == AUTHORITY):
            raise _Bad(chain, index, f"{AUTHORITY} produces the genesis blocks, and only them")
        key = self.keys.get(producer)
        if key is None:
            raise _Bad(chain, index, "producer is not a registered member")
        if len(signature) != 128 or signature.strip("0123456789abcdef"):
            raise _Bad(chain, index, "signature is not 128 lowercase hex digits")
        if not signature_ok(key, bytes.fromhex(signature), signed_message(h)):
            raise _Bad(chain, index, "signature does not verify with the producer's key")

    # -- the whole ledger
    def run(self, anchor: Anchor | None) -> tuple[str, ...]:
        anchor = anchor or {}
        heads = {c: anchor[c] for c in CHAINS if c in anchor}
        if not any(self.rows.values()):
            self._check_stray()
            if any(a.get("blocks") or a.get("head") for a in heads.values()):
                raise _Bad(None, None, "the ledger has no blocks, the anchor has")
            self._check_empty()
            return ("everything: the ledger holds no blocks (ledger_detail off)",)
        unchecked: list[str] = []
        # 1. genesis, then the key registry and the run record it commits to
        for chain in CHAINS:
            if not self.rows[chain]:
                raise _Bad(chain, 0, "the chain has no genesis block")
        for chain in CHAINS:
            self.check_structure(self.rows[chain][0], 0, GENESIS_PREV, None)
        self.keys = self._registry(anchor.get("authority_key"))
        run = self._run_record()
        targets = _TargetRule(self, run)
        try:
            params = json.loads(run["params"])
            hours = int(params["hours"])
        except (KeyError, ValueError, TypeError, OverflowError):
            params, hours = {}, 0
        try:
            self.bounds = amount_bounds(params)
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError):
            self.bounds = None
        if not targets.known or self.bounds is None:
            unchecked.append(NO_PARAMS)
        for chain in CHAINS:
            self.check_signature(self.rows[chain][0], 0)
            self._last = (chain, 0, self._genesis[chain])
            self.check_amounts(chain, 0)
            self.checked += 1
        self._check_links(0)
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
        self._check_lengths_hours_producers()
        if len(self.rows["DU1"]) == 1 and hours > 0 and not self.live and not heads:
            raise _Bad("DU1", 1, "the chains end at their genesis, but the run record keeps "
                                 "blocks: every period was removed")
        # 4. the anchor
        self._check_anchor(heads)
        if not heads:
            unchecked.append(NO_ANCHOR)
        elif len(heads) < len(CHAINS):
            missing = ", ".join(c for c in CHAINS if c not in heads)
            unchecked.append(f"chain heads of {missing}: not anchored (--head), so their "
                             "newest blocks removed, or the chains rewritten by a holder of "
                             "their keys, would go unnoticed")
        if heads and "authority_key" not in anchor:
            unchecked.append(_NO_AUTHORITY)
        return tuple(unchecked)

    def _check_empty(self) -> None:
        """A ledger without blocks is sound only if its run kept none (ledger_detail off)."""
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        try:
            detail = json.loads(meta["params"])["ledger_detail"]
        except (KeyError, ValueError, TypeError):
            return  # no run record: a ledger made by hand with detail off
        if detail != "off" and not self.live:
            raise _Bad("DU1", 0, f"the ledger holds no blocks, but its run kept them "
                                 f"(ledger_detail = {detail!r}): every block was removed")

    def _registry(self, pinned: str | None) -> dict[str, Any]:
        try:
            keys = self.table("JY1", 0, "keys")
            if keys is None:
                raise ValueError("no table 'keys'")
            names, raw = keys["name"].tolist(), keys["public_key"].tolist()
            if len(set(names)) != len(names):
                raise ValueError("a member is registered twice")
            if not all(len(k) == 64 and not k.strip("0123456789abcdef") for k in raw):
                raise ValueError("a key is not 64 lowercase hex digits")
            registry = dict(zip(names, raw, strict=True))
            keys = {n: public_key(bytes.fromhex(k)) for n, k in registry.items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise _Bad("JY1", 0, f"the genesis registers no valid public keys ({exc})") from None
        if pinned is not None and registry.get(AUTHORITY) != pinned:
            raise _Bad("JY1", 0, f"the genesis registers another {AUTHORITY} key than the "
                                 "one given (--authority-key or summary.json): the ledger "
                                 "was re-signed")
        return keys

    def _run_record(self) -> dict[str, str]:
        run = self.table("DU1", 0, "run")
        if (run is None or set(run) != {"key", "value"} or run["key"].dtype.kind != "U"
                or run["value"].dtype.kind != "U"):
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
            orphan = self.db.execute(
                f"SELECT block_index FROM {table} WHERE chain = ? AND "
                "(typeof(block_index) != 'integer' OR block_index < 0 OR block_index >= ?) "
                "LIMIT 1", (chain, length)).fetchone()
            if orphan is not None:
                index = orphan[0] if isinstance(orphan[0], int) else None
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

    def _check_lengths_hours_producers(self) -> None:
        lengths = {c: len(self.rows[c]) for c in CHAINS}
        common = sorted(lengths.values())[1]  # what at least two chains agree on
        for chain in CHAINS:
            n = lengths[chain]
            if n < common:
                raise _Bad(chain, n, f"block {n} is missing: the chain has {n} blocks, "
                                     f"the others {common}")
            if n > common:
                raise _Bad(chain, common, f"the chain has {n} blocks, the others {common}")
        # a period's three blocks: one hour, and one producer (the period's winner)
        for field, what in ((3, "hour"), (5, "producer")):
            for i in range(common):
                values = [self.rows[c][i][field] for c in CHAINS]
                if values[0] == values[1] == values[2]:
                    continue
                usual = values[0] if values[0] in values[1:] else values[1]
                for chain, value in zip(CHAINS, values, strict=True):
                    if value != usual:
                        raise _Bad(chain, i, f"{what} {value!r} differs from the other "
                                             f"chains' {usual!r}")

    def _check_anchor(self, heads: Anchor) -> None:
        for chain, a in heads.items():
            rows, n, head = self.rows[chain], a.get("blocks"), a["head"]
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
        rule = CONSENSUS_RULES.get(consensus) if isinstance(consensus, str) else None
        self.known = rule is not None
        if not self.known:
            raise _Bad("DU1", 0, f"the run record names no known consensus ({consensus!r})")
        if not (isinstance(mode, str) and math.isfinite(self.bits) and self.bits >= 0
                and math.isfinite(self.tau) and self.tau > 0):
            raise _Bad("DU1", 0, "the run record's consensus parameters are out of range "
                                 "(poca_mode, poca_difficulty_bits, poca_tau)")
        self.hashed = rule.has("nonce_race") and mode == "hashed"
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
        except (KeyError, IndexError, ValueError, TypeError, CodecError) as exc:
            raise _Bad("LH1", index, f"credit records are malformed ({exc})") from None
