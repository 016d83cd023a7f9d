"""The tamper-evident ledger: three hash-linked chains in one SQLite file (MODEL.md section 7).

**DU1** holds scheduling records, **JY1** transactions, **LH1** the credit index
blockchain. One block per chain and period: index, previous hash, hour, Merkle
root of the period's records, producer, nonce and target. A period's records are
named tables of equal-length numpy columns.

How much is kept is the ``detail`` level:

- ``full``: one Merkle leaf and one stored row per record (the row's canonical
  bytes), so a single record can be proved;
- ``digest``: one leaf per table (a SHA-256 over its columns); only the table
  digests are stored, so a year of a 10,000-party market stays small and fast
  (the records themselves are not kept: use ``full`` for an audit trail);
- ``off``: no blocks at all.

Everything hashed is a canonical byte string: numbers big-endian with a type
tag, text length-prefixed UTF-8, so the same values give the same hashes on
every platform. :func:`verify_ledger` recomputes every block from the stored
rows and names the first block whose row, or one of whose records, was changed.
The ``meta`` table (run parameters) is descriptive and is not hashed.
"""

from __future__ import annotations

import hashlib
import operator
import os
import sqlite3
import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..rules.consensus import pow_hash

__all__ = [
    "CHAINS",
    "DETAIL_LEVELS",
    "GENESIS_PREV",
    "Block",
    "Ledger",
    "VerifyReport",
    "block_hash",
    "canonical_row",
    "digest_leaf",
    "header_bytes",
    "leaf_hashes",
    "merkle_root",
    "pow_hash",
    "read_meta",
    "table_digest",
    "verify_ledger",
]

CHAINS = ("DU1", "JY1", "LH1")
DETAIL_LEVELS = ("full", "digest", "off")
GENESIS_PREV = "0" * 64

Table = Mapping[str, np.ndarray]
Records = Mapping[str, Table]

#: SQLite header fields that mark a file as a dipi_abm ledger ("DIPI") and its format.
APPLICATION_ID = 0x44495049
FORMAT_VERSION = 1

# Each hashed byte string starts with its kind, so a record row, a table and a
# block header can never be mistaken for one another.
_ROW, _TABLE, _HEADER, _DIGEST_LEAF = b"R", b"T", b"B", b"D"

# Column type tag -> big-endian wire type of one value ("str" is length-prefixed UTF-8).
_WIRE = {
    "bool": np.dtype("u1"),
    "int8": np.dtype(">i8"),
    "int16": np.dtype(">i8"),
    "int32": np.dtype(">i8"),
    "int64": np.dtype(">i8"),
    "uint8": np.dtype(">i8"),
    "uint16": np.dtype(">i8"),
    "uint32": np.dtype(">i8"),
    "float32": np.dtype(">f4"),
    "float64": np.dtype(">f8"),
}
_TAGS = (*_WIRE, "str")
_U32, _I64, _U64 = struct.Struct(">I"), struct.Struct(">q"), struct.Struct(">Q")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blocks (
    chain TEXT NOT NULL, block_index INTEGER NOT NULL, prev_hash TEXT NOT NULL,
    hour INTEGER NOT NULL, merkle_root TEXT NOT NULL, producer TEXT NOT NULL,
    nonce INTEGER NOT NULL, target TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE record_rows (
    chain TEXT NOT NULL, block_index INTEGER NOT NULL, tbl TEXT NOT NULL,
    row INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE record_columns (
    chain TEXT NOT NULL, block_index INTEGER NOT NULL, tbl TEXT NOT NULL,
    col TEXT NOT NULL, dtype TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX blocks_by_chain ON blocks (chain, block_index);
CREATE INDEX record_rows_by_block ON record_rows (chain, block_index);
CREATE TABLE record_digests (
    chain TEXT NOT NULL, block_index INTEGER NOT NULL, tbl TEXT NOT NULL,
    digest BLOB NOT NULL);
CREATE INDEX record_columns_by_block ON record_columns (chain, block_index);
CREATE INDEX record_digests_by_block ON record_digests (chain, block_index);
"""
_TABLES = {
    "meta": ("key", "value"),
    "blocks": (
        "chain",
        "block_index",
        "prev_hash",
        "hour",
        "merkle_root",
        "producer",
        "nonce",
        "target",
        "hash",
    ),
    "record_rows": ("chain", "block_index", "tbl", "row", "payload"),
    "record_columns": ("chain", "block_index", "tbl", "col", "dtype", "data"),
    "record_digests": ("chain", "block_index", "tbl", "digest"),
}
_BLOCK_COLUMNS = ", ".join(_TABLES["blocks"])


# ----------------------------------------------------------------------------- canonical bytes
def _text(s: str) -> bytes:
    b = s.encode("utf-8")
    return _U32.pack(len(b)) + b


def _dtype_tag(dtype: np.dtype) -> str:
    if dtype.kind == "U":
        return "str"
    if dtype.name in _WIRE and dtype.kind in "biuf":
        return dtype.name
    raise ValueError(f"unsupported column dtype {dtype}; use one of {', '.join(_TAGS)}")


def _value_bytes(value: Any) -> tuple[str, bytes]:
    """The type tag and canonical bytes of one scalar (numpy scalars keep their dtype)."""
    if isinstance(value, bool | np.bool_):
        return "bool", b"\x01" if value else b"\x00"
    if isinstance(value, np.generic):
        tag = _dtype_tag(value.dtype)
        if tag == "str":
            return tag, _text(str(value))
        return tag, np.asarray(value, dtype=_WIRE[tag]).tobytes()
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"integer {value} does not fit in 64 bits")
        return "int64", _I64.pack(value)
    if isinstance(value, float):
        return "float64", struct.pack(">d", value)
    if isinstance(value, str):
        return "str", _text(value)
    raise ValueError(f"unsupported record value {value!r} of type {type(value).__name__}")


def canonical_row(table: str, row: int, values: Sequence[tuple[str, Any]]) -> bytes:
    """The canonical bytes of one record: ``R``, the table name, the row index and,
    in column-name order, each column's name, type tag and value.

    ``values`` are ``(column, value)`` pairs. Integers are signed 64-bit and
    floats IEEE-754 at their own width, both big-endian; bools one byte; text
    length-prefixed UTF-8. The encoding is unambiguous: different records
    (table, row, names, types or values) give different bytes.
    """
    names = [name for name, _ in values]
    if len(set(names)) != len(names):
        raise ValueError(f"table {table!r} row {row}: duplicate column names")
    parts = [_ROW, _text(table), _I64.pack(row), _U32.pack(len(names))]
    for name, value in sorted(values, key=lambda nv: nv[0]):
        tag, data = _value_bytes(value)
        parts += [_text(name), _text(tag), data]
    return b"".join(parts)


def _columns(name: str, table: Table) -> list[tuple[str, str, np.ndarray]]:
    """The table's columns in name order as (name, tag, 1-D array), checked."""
    if not isinstance(name, str) or not table:
        raise ValueError(f"record table {name!r} must be named by a str and have columns")
    cols = []
    for col in sorted(table):
        arr = np.asarray(table[col])
        if not isinstance(col, str) or arr.ndim != 1:
            raise ValueError(f"record table {name!r}: column {col!r} must be a 1-D array")
        cols.append((col, _dtype_tag(arr.dtype), arr))
    if len({arr.size for _, _, arr in cols}) > 1:
        raise ValueError(f"record table {name!r}: columns differ in length")
    return cols


def _text_column(arr: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The length-prefixed UTF-8 of every string, concatenated, and where each one ends."""
    n, width = arr.size, max(arr.dtype.itemsize // 4, 1)
    codes = np.ascontiguousarray(arr, dtype=f"U{width}").view(np.uint32).reshape(n, width)
    if n and codes.max(initial=0) >= 128:
        pieces = [_text(s) for s in arr.tolist()]
        return b"".join(pieces), np.cumsum([len(p) for p in pieces], dtype=np.int64)
    # ASCII (the usual case: addresses, hashes): one byte per code point, no loop.
    lengths = np.char.str_len(arr).astype(np.int64)
    out = np.empty((n, 4 + width), np.uint8)
    out[:, :4] = lengths.astype(">u4").view(np.uint8).reshape(n, 4)
    out[:, 4:] = codes
    ends = np.cumsum(4 + lengths)
    if n and lengths.min() == width:  # equal lengths: nothing to drop
        return out.tobytes(), ends
    used = np.arange(4 + width) < (4 + lengths)[:, None]
    return out[used].tobytes(), ends


def _column_bytes(tag: str, arr: np.ndarray) -> bytes:
    if tag == "str":
        return _text_column(arr)[0]
    return np.ascontiguousarray(arr, dtype=_WIRE[tag]).tobytes()


def _column_from_bytes(tag: str, data: bytes) -> np.ndarray:
    """Inverse of :func:`_column_bytes`; rejects any byte string it could not have made."""
    if tag == "str":
        out, pos, view = [], 0, memoryview(data)
        while pos < len(data):
            if pos + 4 > len(data):
                raise ValueError("truncated text length")
            (k,) = _U32.unpack_from(data, pos)
            if pos + 4 + k > len(data):
                raise ValueError("truncated text")
            out.append(bytes(view[pos + 4 : pos + 4 + k]).decode("utf-8"))
            pos += 4 + k
        return np.array(out, dtype=str)
    if tag not in _WIRE:
        raise ValueError(f"unknown dtype {tag!r}")
    wire = _WIRE[tag]
    if len(data) % wire.itemsize:
        raise ValueError(f"{len(data)} bytes is not a whole number of {tag} values")
    raw = np.frombuffer(data, dtype=wire)
    if tag == "bool":
        if raw.size and raw.max() > 1:
            raise ValueError("bool byte other than 0 or 1")
        return raw.astype(bool)
    if wire.kind == "i":
        info = np.iinfo(tag)
        if raw.size and (raw.min() < info.min or raw.max() > info.max):
            raise ValueError(f"value out of {tag} range")
    return raw.astype(tag)


def _canonical_rows(name: str, cols: list[tuple[str, str, np.ndarray]]) -> list[bytes]:
    """``canonical_row`` for every row of a table, vectorised over the rows.

    Consecutive fixed-width fields are laid out as one (rows x bytes) array;
    only text columns are encoded value by value.
    """
    n = cols[0][2].size
    if n == 0:
        return []

    def const(b: bytes) -> np.ndarray:
        return np.broadcast_to(np.frombuffer(b, np.uint8), (n, len(b)))

    segments: list[list[bytes]] = []
    fixed = [
        const(_ROW + _text(name)),
        np.arange(n, dtype=">i8").view(np.uint8).reshape(n, 8),
        const(_U32.pack(len(cols))),
    ]

    def flush() -> None:
        block = np.concatenate(fixed, axis=1)
        flat, width = block.tobytes(), block.shape[1]
        segments.append([flat[i : i + width] for i in range(0, n * width, width)])
        fixed.clear()

    for col, tag, arr in cols:
        fixed.append(const(_text(col) + _text(tag)))
        if tag == "str":
            flush()
            flat, ends = _text_column(arr)
            starts = np.concatenate([[0], ends[:-1]])
            segments.append(
                [flat[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
            )
        else:
            wire = _WIRE[tag]
            values = np.ascontiguousarray(arr, dtype=wire)
            fixed.append(values.view(np.uint8).reshape(n, wire.itemsize))
    if fixed:
        flush()
    if len(segments) == 1:
        return segments[0]
    return [b"".join(parts) for parts in zip(*segments, strict=True)]


def _parse_row(payload: bytes) -> tuple[str, int, list[tuple[str, str, Any]]]:
    """Inverse of :func:`canonical_row`: (table, row, [(column, tag, value)])."""
    pos = 0

    def take(k: int) -> bytes:
        nonlocal pos
        if pos + k > len(payload):
            raise ValueError("truncated record")
        pos += k
        return payload[pos - k : pos]

    def text() -> str:
        return take(_U32.unpack(take(4))[0]).decode("utf-8")

    if take(1) != _ROW:
        raise ValueError("not a record row")
    table = text()
    (row,) = _I64.unpack(take(8))
    (ncols,) = _U32.unpack(take(4))
    values = []
    for _ in range(ncols):
        col, tag = text(), text()
        if tag == "str":
            value: Any = text()
        elif tag in _WIRE:
            value = _column_from_bytes(tag, take(_WIRE[tag].itemsize))[0]
        else:
            raise ValueError(f"unknown dtype {tag!r}")
        values.append((col, tag, value))
    if pos != len(payload):
        raise ValueError("trailing bytes after record")
    return table, row, values


def _row_key(payload: bytes) -> tuple[str, int]:
    """The (table, row) a record's payload names, read from its first fields only."""
    if payload[:1] != _ROW or len(payload) < 5:
        raise ValueError("not a record row")
    (k,) = _U32.unpack_from(payload, 1)
    if len(payload) < 5 + k + 8:
        raise ValueError("truncated record")
    return payload[5 : 5 + k].decode("utf-8"), _I64.unpack_from(payload, 5 + k)[0]


def _digest(name: str, columns: Sequence[tuple[str, str, int, bytes]]) -> bytes:
    """SHA-256 over a table given its columns as (name, tag, length, canonical bytes)."""
    h = hashlib.sha256(_TABLE + _text(name) + _U32.pack(len(columns)))
    for col, tag, n, data in sorted(columns):
        h.update(_text(col) + _text(tag) + _U64.pack(n) + _U64.pack(len(data)))
        h.update(data)
    return h.digest()


def _encoded_columns(cols: list[tuple[str, str, np.ndarray]]) -> list[tuple[str, str, int, bytes]]:
    return [(col, tag, arr.size, _column_bytes(tag, arr)) for col, tag, arr in cols]


def table_digest(name: str, table: Table) -> bytes:
    """One SHA-256 over a table: its name, then per column in name order the
    column's name, type tag, length and canonical big-endian bytes."""
    return _digest(name, _encoded_columns(_columns(name, table)))


@dataclass
class Prepared:
    """A period's records made ready for one block: leaves, and what to store.

    Make one with :meth:`Ledger.prepare` to learn the Merkle root before
    appending (POCA's nonce search commits to it), then pass it to ``append``.
    """

    leaves: list[bytes]
    rows: dict[str, list[bytes]]  # table -> canonical rows (detail full)
    columns: dict[str, list[tuple[str, str, int, bytes]]]  # table -> encoded columns
    digests: dict[str, bytes]  # table -> table digest (detail digest)

    @property
    def root(self) -> str:
        return merkle_root(self.leaves).hex()


def _prepare(records: Records, detail: str) -> Prepared:
    if detail not in DETAIL_LEVELS:
        raise ValueError(f"detail must be one of {', '.join(DETAIL_LEVELS)}, not {detail!r}")
    out = Prepared([], {}, {}, {})
    if detail == "off":
        return out
    for name in sorted(records):
        cols = _columns(name, records[name])
        if detail == "full" and cols[0][2].size:
            out.rows[name] = _canonical_rows(name, cols)
            out.leaves += [hashlib.sha256(p).digest() for p in out.rows[name]]
        elif detail == "full":  # an empty table: kept as its (empty) columns
            out.columns[name] = _encoded_columns(cols)
            out.leaves.append(_digest(name, out.columns[name]))
        else:
            out.digests[name] = _digest(name, _encoded_columns(cols))
            out.leaves.append(digest_leaf(name, out.digests[name]))
    return out


def digest_leaf(name: str, digest: bytes) -> bytes:
    """The Merkle leaf of a table kept only as its digest: binds the stored name too."""
    return hashlib.sha256(_DIGEST_LEAF + _text(name) + digest).digest()


def leaf_hashes(records: Records, detail: str) -> list[bytes]:
    """The Merkle leaves of a period's records, tables in name order.

    ``full``: SHA-256 of every record's canonical row (a table without rows
    gives its :func:`table_digest` instead, so that it and its columns are
    committed to as well); ``digest``: one :func:`digest_leaf` of each table's
    :func:`table_digest`;
    ``off``: none.
    """
    return _prepare(records, detail).leaves


def merkle_root(leaves: list[bytes]) -> bytes:
    """Bitcoin-style Merkle root: SHA-256 of each concatenated pair, an odd level
    repeating its last node; one leaf is its own root; no leaves -> SHA-256(b"")."""
    level = list(leaves)
    if not level:
        return hashlib.sha256(b"").digest()
    sha256 = hashlib.sha256
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256(level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


# ----------------------------------------------------------------------------- blocks
def _hash_bytes(hex_hash: str, what: str) -> bytes:
    if not (isinstance(hex_hash, str) and len(hex_hash) == 64) or hex_hash != hex_hash.lower():
        raise ValueError(f"{what} must be 64 lowercase hex digits")
    return bytes.fromhex(hex_hash)


def header_bytes(
    chain: str,
    index: int,
    prev_hash: str,
    hour: int,
    merkle_root: str,
    producer: str,
    nonce: int,
    target: int,
) -> bytes:
    """The canonical block header: ``B``, chain, index (u64), previous hash (32 bytes),
    hour (i64), Merkle root (32 bytes), producer, nonce (u64), target (32 bytes);
    texts length-prefixed UTF-8, numbers big-endian."""
    return b"".join(
        [
            _HEADER,
            _text(chain),
            _U64.pack(index),
            _hash_bytes(prev_hash, "prev_hash"),
            _I64.pack(hour),
            _hash_bytes(merkle_root, "merkle_root"),
            _text(producer),
            _U64.pack(nonce),
            target.to_bytes(32, "big"),
        ]
    )


def block_hash(
    chain: str,
    index: int,
    prev_hash: str,
    hour: int,
    merkle_root: str,
    producer: str,
    nonce: int,
    target: int,
) -> str:
    """SHA-256 of the block header, as lowercase hex."""
    header = header_bytes(chain, index, prev_hash, hour, merkle_root, producer, nonce, target)
    return hashlib.sha256(header).hexdigest()


@dataclass(frozen=True)
class Block:
    """One block of a chain; hashes are lowercase hex. ``target`` 0: no proof of work."""

    chain: str
    index: int
    prev_hash: str
    hour: int
    merkle_root: str
    producer: str
    nonce: int
    target: int
    hash: str


def _block_from_row(row: Sequence[Any]) -> Block:
    chain, index, prev, hour, root, producer, nonce, target, h = row
    return Block(chain, index, prev, hour, root, producer, nonce, int(target, 16), h)


def _records_from_rows(payloads: Sequence[bytes]) -> dict[str, dict[str, np.ndarray]]:
    tables: dict[str, dict[str, tuple[str, list[Any]]]] = {}
    for payload in payloads:
        table, _, values = _parse_row(payload)
        columns = tables.setdefault(table, {})
        for col, tag, value in values:
            columns.setdefault(col, (tag, []))[1].append(value)
    return {
        table: {
            col: np.array(values, dtype=str if tag == "str" else tag)
            for col, (tag, values) in sorted(columns.items())
        }
        for table, columns in sorted(tables.items())
    }


# ----------------------------------------------------------------------------- the ledger
class Ledger:
    """Append-only DU1 / JY1 / LH1 chains in SQLite (MODEL.md section 7).

    ``Ledger()`` keeps the chains in memory; ``Ledger(path)`` writes a new
    SQLite file (an existing non-empty file is refused, never appended to).
    Appends inside ``with ledger.period():`` are one transaction, so a run that
    stops leaves whole periods only.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        detail: str = "digest",
        meta: Mapping[str, str] | None = None,
    ) -> None:
        if detail not in DETAIL_LEVELS:
            levels = ", ".join(DETAIL_LEVELS)
            raise ConfigError(f"ledger detail {detail!r}: must be one of {levels}")
        meta = dict(meta or {})
        for key, value in meta.items():
            if not (isinstance(key, str) and isinstance(value, str)):
                raise ValueError(f"ledger meta {key!r}: keys and values must be str")
        self.detail = detail
        self.path = None if path is None else Path(path)
        if self.path is not None and self.path.exists() and self.path.stat().st_size > 0:
            raise ConfigError(f"ledger '{self.path}': already exists; choose a new path")
        try:
            self._db = sqlite3.connect(
                ":memory:" if self.path is None else self.path, isolation_level=None
            )
            if self.path is not None:
                # WAL: a commit per period without a full sync; back to a single file on close.
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._db.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
            self._db.executescript(f"BEGIN;{_SCHEMA}")
            self._db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ConfigError(f"ledger '{self.path}': cannot create: {exc}") from None
        self._heads: dict[str, Block] = {}
        self._in_period = False

    # -- writing
    def append(
        self,
        chain: str,
        hour: int,
        records: Records,
        *,
        producer: str,
        nonce: int = 0,
        target: int = 0,
        prepared: Prepared | None = None,
    ) -> Block | None:
        """Add the period's block to ``chain`` and store its records; returns the block.

        With ``target > 0`` the nonce must meet it (``pow_hash <= target``).
        With detail ``off`` nothing is built and ``None`` is returned.
        """
        if self.detail == "off":
            return None
        if chain not in CHAINS:
            raise ValueError(f"chain must be one of {', '.join(CHAINS)}, not {chain!r}")
        hour, nonce, target = operator.index(hour), operator.index(nonce), operator.index(target)
        if not 0 <= nonce < 2**63 or not 0 <= target < 2**256 or not -(2**63) <= hour < 2**63:
            raise ValueError("nonce must be in [0, 2^63), target in [0, 2^256), hour an int64")
        if not isinstance(producer, str):
            raise ValueError(f"producer must be a str, not {type(producer).__name__}")
        if prepared is None:
            prepared = self.prepare(records)
        root = prepared.root
        if target > 0 and pow_hash(root, producer, nonce) > target:
            raise ValueError(f"{chain} block: nonce {nonce} does not meet its target")
        head = self._heads.get(chain)
        index = 0 if head is None else head.index + 1
        prev = GENESIS_PREV if head is None else head.hash
        h = block_hash(chain, index, prev, hour, root, producer, nonce, target)
        block = Block(chain, index, prev, hour, root, producer, nonce, target, h)
        if self._in_period:
            self._store(block, prepared)
        else:
            with self._atomic():
                self._store(block, prepared)
        return block

    def prepare(self, records: Records) -> Prepared:
        """Hash a period's records once: their leaves, Merkle root and stored form."""
        return _prepare(records, self.detail)

    def _store(self, block: Block, prepared: Prepared) -> None:
        """Insert the block's row and its records (rows and columns), and make it the head."""
        chain, index = block.chain, block.index
        self._db.execute(
            "INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                block.chain,
                block.index,
                block.prev_hash,
                block.hour,
                block.merkle_root,
                block.producer,
                block.nonce,
                f"{block.target:064x}",  # up to 256 bits: more than an SQLite INTEGER holds
                block.hash,
            ),
        )
        self._db.executemany(
            "INSERT INTO record_rows VALUES (?, ?, ?, ?, ?)",
            (
                (chain, index, name, i, payload)
                for name, payloads in prepared.rows.items()
                for i, payload in enumerate(payloads)
            ),
        )
        self._db.executemany(
            "INSERT INTO record_columns VALUES (?, ?, ?, ?, ?, ?)",
            (
                (chain, index, name, col, tag, data)
                for name, columns in prepared.columns.items()
                for col, tag, _, data in columns
            ),
        )
        self._db.executemany(
            "INSERT INTO record_digests VALUES (?, ?, ?, ?)",
            ((chain, index, name, digest) for name, digest in prepared.digests.items()),
        )
        self._heads[chain] = block

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One SQLite transaction; on any failure it is rolled back and the heads restored."""
        heads = dict(self._heads)
        self._db.execute("BEGIN")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._heads = heads
            raise

    @contextmanager
    def period(self) -> Iterator[Ledger]:
        """All appends inside form one transaction: committed together, or on an
        exception rolled back together (and the exception re-raised)."""
        if self._in_period:
            raise RuntimeError("ledger periods do not nest")
        if self.detail == "off":
            yield self
            return
        self._in_period = True
        try:
            with self._atomic():
                yield self
        finally:
            self._in_period = False

    # -- reading
    def head(self, chain: str) -> Block | None:
        """The chain's last block, or None before its first."""
        return self._heads.get(chain)

    def blocks(self, chain: str) -> list[Block]:
        rows = self._db.execute(
            f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE chain = ? ORDER BY block_index", (chain,)
        )
        return [_block_from_row(row) for row in rows]

    def read_records(self, chain: str, index: int) -> dict[str, dict[str, np.ndarray]]:
        """Block ``index``'s records as {table: {column: array}}, tables and columns
        in name order. Text columns come back as ``<U`` of their longest value."""
        return _read_records(self._db, chain, index)

    def verify(self) -> VerifyReport:
        """Recompute every block of this ledger (as :func:`verify_ledger` does for a file)."""
        return _verify_db(self._db)

    def close(self) -> None:
        if self._db is None:
            return
        if self._db.in_transaction:  # closed inside a period: that period is dropped
            self._db.execute("ROLLBACK")
        if self.path is not None:
            try:  # leave one self-contained file; if a reader holds it, WAL stays valid too
                self._db.execute("PRAGMA journal_mode = DELETE")
            except sqlite3.OperationalError:
                pass
        self._db.close()
        self._db = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_records(
    db: sqlite3.Connection, chain: str, index: int
) -> dict[str, dict[str, np.ndarray]]:
    payloads = [
        payload
        for (payload,) in db.execute(
            "SELECT payload FROM record_rows WHERE chain = ? AND block_index = ? ORDER BY tbl, row",
            (chain, index),
        )
    ]
    records = _records_from_rows(payloads)
    for tbl, col, tag, data in db.execute(
        "SELECT tbl, col, dtype, data FROM record_columns WHERE chain = ? AND block_index = ? "
        "ORDER BY tbl, col",
        (chain, index),
    ):
        records.setdefault(tbl, {})[col] = _column_from_bytes(tag, data)
    return dict(sorted(records.items()))


# ----------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify_ledger`: ``blocks`` verified before the first
    bad block ``(chain, index)``, and what is wrong with it."""

    ok: bool
    blocks: int
    chain: str | None = None
    index: int | None = None
    problem: str = ""


def _open_ledger(path: str | os.PathLike) -> sqlite3.Connection:
    """Open an existing ledger read-only, or raise ConfigError naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"ledger '{path}': no such file")
    if not path.is_file():
        raise ConfigError(f"ledger '{path}': not a file")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        (app_id,) = db.execute("PRAGMA application_id").fetchone()
        tables = {
            name: tuple(r[1] for r in db.execute(f"PRAGMA table_info({name})")) for name in _TABLES
        }
    except sqlite3.Error as exc:
        raise ConfigError(f"ledger '{path}': not a readable SQLite file ({exc})") from None
    if app_id != APPLICATION_ID or tables != _TABLES:
        db.close()
        raise ConfigError(f"ledger '{path}': not a dipi_abm ledger (missing its tables)")
    return db


def read_meta(path: str | os.PathLike) -> dict[str, str]:
    """The run parameters stored with a ledger file."""
    db = _open_ledger(path)
    try:
        return dict(db.execute("SELECT key, value FROM meta ORDER BY key"))
    finally:
        db.close()


def _block_leaves(db: sqlite3.Connection, chain: str, index: int) -> list[bytes]:
    """The Merkle leaves recomputed from a block's stored records; ValueError if the
    stored rows could not have been written for this block."""
    rows = db.execute(
        "SELECT tbl, row, payload FROM record_rows WHERE chain = ? AND block_index = ?",
        (chain, index),
    ).fetchall()
    columns = db.execute(
        "SELECT tbl, col, dtype, data FROM record_columns WHERE chain = ? AND block_index = ?",
        (chain, index),
    ).fetchall()
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
    for tbl, col, tag, data in columns:
        if not (type(tbl) is str and type(col) is str and type(tag) is str and type(data) is bytes):
            raise ValueError("a record column has a field of the wrong type")
        tables.setdefault(tbl, []).append((col, tag, _column_from_bytes(tag, data).size, data))
    for tbl, cols in tables.items():
        if tbl in leaves:
            raise ValueError(f"table {tbl!r} is stored both as rows and as columns")
        if len({c[0] for c in cols}) != len(cols) or len({c[2] for c in cols}) != 1:
            raise ValueError(f"table {tbl!r} has repeated or unequal columns")
        leaves[tbl] = [_digest(tbl, cols)]
    digests = db.execute(
        "SELECT tbl, digest FROM record_digests WHERE chain = ? AND block_index = ?",
        (chain, index),
    ).fetchall()
    for tbl, digest in digests:
        if not (type(tbl) is str and type(digest) is bytes and len(digest) == 32):
            raise ValueError("a table digest has a field of the wrong type")
        if tbl in leaves:
            raise ValueError(f"table {tbl!r} is stored twice")
        leaves[tbl] = [digest_leaf(tbl, digest)]
    return [leaf for tbl in sorted(leaves) for leaf in leaves[tbl]]


def _check_block(db: sqlite3.Connection, row: Sequence[Any], index: int, prev: str) -> str:
    """What is wrong with one stored block (``""``: nothing)."""
    chain, idx, prev_hash, hour, root, producer, nonce, target, h = row
    types = (int, str, int, str, str, int, str, str)
    if not all(type(v) is t for v, t in zip(row[1:], types, strict=True)):
        return "block row has a field of the wrong type"
    if idx != index:
        return f"index does not continue (expected {index}, found {idx})"
    if prev_hash != prev:
        return "previous hash does not link"
    try:
        target_int = int(target, 16)
        valid = f"{target_int:064x}" == target and 0 <= nonce < 2**63
    except ValueError:
        valid = False
    if not valid:
        return "nonce or target is not a valid number"
    try:
        leaves = _block_leaves(db, chain, index)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"records are malformed: {exc}"
    if merkle_root(leaves).hex() != root:
        return "merkle root does not match its records"
    try:
        recomputed = block_hash(chain, idx, prev_hash, hour, root, producer, nonce, target_int)
    except (ValueError, OverflowError, UnicodeEncodeError):
        recomputed = None
    if recomputed != h:
        return "block hash does not match its header"
    if target_int > 0 and pow_hash(root, producer, nonce) > target_int:
        return "nonce does not meet target"
    return ""


def verify_ledger(path: str | os.PathLike) -> VerifyReport:
    """Recompute every block of every chain from the stored rows (MODEL.md section 7).

    Chain by chain (DU1, JY1, LH1), block by block: the index continues 0, 1, 2,
    ...; the previous hash links; the Merkle root matches the block's records;
    the hash matches the header; with a target, the nonce meets it. Then no
    record or block may lie outside the chains. Reports the first bad block.
    The file is opened read-only.
    """
    db = _open_ledger(path)
    try:
        return _verify_db(db)
    finally:
        db.close()


def _verify_db(db: sqlite3.Connection) -> VerifyReport:
    """The checks of :func:`verify_ledger`, on an open connection."""
    checked = 0
    for chain in CHAINS:
        prev = GENESIS_PREV
        rows = db.execute(
            f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE chain = ? ORDER BY block_index, rowid",
            (chain,),
        )
        length = 0
        for row in rows:
            problem = _check_block(db, row, length, prev)
            if problem:
                return VerifyReport(False, checked, chain, length, problem)
            prev, length, checked = row[-1], length + 1, checked + 1
        for table in ("record_rows", "record_columns", "record_digests"):
            (orphan,) = db.execute(
                f"SELECT MIN(block_index) FROM {table} WHERE chain = ? AND "
                "(typeof(block_index) != 'integer' OR block_index < 0 OR block_index >= ?)",
                (chain, length),
            ).fetchone()
            if orphan is not None:
                index = orphan if isinstance(orphan, int) else None
                return VerifyReport(False, checked, chain, index, "records belong to no block")
    placeholders = ", ".join("?" * len(CHAINS))
    for table in ("blocks", "record_rows", "record_columns", "record_digests"):
        stray = db.execute(
            f"SELECT chain, block_index FROM {table} WHERE chain NOT IN ({placeholders}) "
            "OR typeof(chain) != 'text' LIMIT 1",
            CHAINS,
        ).fetchone()
        if stray is not None:
            where = "block" if table == "blocks" else "records"
            index = stray[1] if isinstance(stray[1], int) else None
            return VerifyReport(
                False, checked, str(stray[0]), index, f"{where} of an unknown chain"
            )
    return VerifyReport(True, checked)
