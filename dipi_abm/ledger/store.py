"""The tamper-evident ledger: three hash-linked chains in one SQLite file (docs/model.md section 7).

**DU1** holds scheduling records, **JY1** transactions, **LH1** the credit index
blockchain. One block per chain and period: index, previous hash, hour, Merkle
root of the period's records, producer, nonce and target, and the producer's
Ed25519 signature of the block's hash. A period's records are named tables of
equal-length numpy columns.

Block 0 of each chain is the genesis, written by the grid company (the
alliance's operator): JY1's registers every member's public key (table
``keys``), DU1's commits to the run itself (table ``run``: package, version,
seed, parameters; the ``meta`` table is a readable copy of it). Genesis blocks
are always kept whole, whatever the detail level, so a verifier can read them.
Each later LH1 block stores the period's DU1 and JY1 Merkle roots (table
``chains``), so the chains vouch for each other.

How much of a period is kept is the ``detail`` level:

- ``full``: one Merkle leaf and one stored row per record (the row's canonical
  bytes), so a single record can be proved;
- ``digest``: one leaf per table (a SHA-256 over its columns); only the table
  digests are stored, so a year of a 10,000-party market stays small and fast
  (the records themselves are not kept: use ``full`` for an audit trail), except
  tables named in ``keep``, stored as columns;
- ``off``: no blocks at all.

Everything hashed is a canonical byte string: numbers big-endian with a type
tag, text length-prefixed UTF-8, so the same values give the same hashes on
every platform. :mod:`dipi_abm.ledger.verify` checks a ledger.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import os
import sqlite3
import struct
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..rules.consensus import pow_hash
from .keys import Signer
from .writer import PeriodWriter

__all__ = [
    "CHAINS",
    "DETAIL_LEVELS",
    "GENESIS_PREV",
    "Block",
    "Ledger",
    "Prepared",
    "VerifyReport",
    "block_hash",
    "canonical_row",
    "digest_leaf",
    "header_bytes",
    "leaf_hashes",
    "merkle_root",
    "pow_hash",
    "read_meta",
    "signed_message",
    "table_digest",
]

CHAINS = ("DU1", "JY1", "LH1")
DETAIL_LEVELS = ("full", "digest", "off")
GENESIS_PREV = "0" * 64

Table = Mapping[str, np.ndarray]
Records = Mapping[str, Table]

#: SQLite header fields that mark a file as a dipi_abm ledger ("DIPI") and its format.
APPLICATION_ID = 0x44495049
FORMAT_VERSION = 2  # 2: signed blocks, committed run record

# Each hashed byte string starts with its kind, so a record row, a table and a
# block header can never be mistaken for one another.
_ROW, _TABLE, _HEADER, _DIGEST_LEAF, _SIGNED = b"R", b"T", b"B", b"D", b"S"

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
    nonce INTEGER NOT NULL, target TEXT NOT NULL, hash TEXT NOT NULL,
    signature TEXT NOT NULL);
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
        "signature",
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


_TAG_OF: dict[np.dtype, str] = {}  # dtype -> tag, memoised: dtype.name is slow to build


def _dtype_tag(dtype: np.dtype) -> str:
    tag = _TAG_OF.get(dtype)
    if tag is not None:
        return tag
    if dtype.kind == "U":
        tag = "str"
    elif dtype.name in _WIRE and dtype.kind in "biuf":
        tag = dtype.name
    else:
        raise ValueError(f"unsupported column dtype {dtype}; use one of {', '.join(_TAGS)}")
    _TAG_OF[dtype] = tag
    return tag


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
    return bytes(_column_buffer(tag, arr))


def _column_buffer(tag: str, arr: np.ndarray) -> bytes | np.ndarray:
    """A column's canonical bytes as a buffer: a big-endian contiguous array for numbers
    (hashed in place, without a further copy into ``bytes``), bytes for text."""
    if tag == "str":
        return _text_column(arr)[0]
    return np.ascontiguousarray(arr, dtype=_WIRE[tag])


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


@functools.lru_cache(maxsize=1024)
def _column_head(col: str, tag: str) -> bytes:
    return _text(col) + _text(tag)


def _digest(name: str, columns: Sequence[tuple[str, str, int, bytes | np.ndarray]]) -> bytes:
    """SHA-256 over a table given its columns as (name, tag, length, canonical bytes);
    the bytes may be any C-contiguous buffer of them (see :func:`_column_buffer`)."""
    h = hashlib.sha256(_TABLE + _text(name) + _U32.pack(len(columns)))
    # names are unique in a table built here (sort by name); a stored one is sorted whole
    buffers = any(isinstance(c[3], np.ndarray) for c in columns)
    for col, tag, n, data in sorted(columns, key=lambda c: c[0]) if buffers else sorted(columns):
        size = data.nbytes if isinstance(data, np.ndarray) else len(data)
        h.update(_column_head(col, tag) + _U64.pack(n) + _U64.pack(size))
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


def _prepare(records: Records, detail: str, keep: Collection[str] = ()) -> Prepared:
    """Leaves and stored form of a period's records at ``detail``; ``"columns"`` (used for
    genesis blocks) stores every table as its columns; tables in ``keep`` are stored as
    columns at ``digest`` detail too. A table stored as columns has its
    :func:`table_digest` as leaf."""
    return _hash_encoded(_encode(records, detail, keep))


@dataclass(frozen=True)
class _Encoded:
    """A table in canonical bytes, before hashing: as ``rows`` (full detail), as
    ``columns`` to store, or as one ``stream`` to ``digest`` only. Nothing in it
    refers to the caller's arrays, so it may be hashed later, on another thread."""

    name: str
    kind: str  # "rows" | "columns" | "digest"
    rows: list[bytes] | None = None
    columns: list[tuple[str, str, int, bytes | np.ndarray]] | None = None
    stream: np.ndarray | None = None  # digest: the bytes of _digest_stream


def _encode(records: Records, detail: str, keep: Collection[str] = ()) -> list[_Encoded]:
    """The first half of :func:`_prepare`: every table's canonical bytes (copies)."""
    if detail not in (*DETAIL_LEVELS, "columns"):
        raise ValueError(f"detail must be one of {', '.join(DETAIL_LEVELS)}, not {detail!r}")
    if detail == "off":
        return []
    out = []
    for name in sorted(records):
        cols = _columns(name, records[name])
        if detail == "full" and cols[0][2].size:
            out.append(_Encoded(name, "rows", rows=_canonical_rows(name, cols)))
        elif detail in ("full", "columns") or name in keep:
            # an empty table at full detail, every table of a genesis block, a kept table
            out.append(_Encoded(name, "columns", columns=_encoded_columns(cols)))
        else:
            out.append(_Encoded(name, "digest", stream=_digest_stream(name, cols)))
    return out


def _digest_stream(name: str, cols: list[tuple[str, str, np.ndarray]]) -> np.ndarray:
    """The bytes :func:`_digest` hashes for a table, laid out in one buffer: numbers are
    cast to their big-endian wire type straight into it, so a period's tables cost one
    copy each and hashing one is a single call (which releases the GIL)."""
    parts: list[tuple[bytes, str, np.ndarray | bytes]] = []
    total = 0
    head = _TABLE + _text(name) + _U32.pack(len(cols))
    total += len(head)
    for col, tag, arr in cols:
        data: np.ndarray | bytes = _text_column(arr)[0] if tag == "str" else arr
        size = len(data) if tag == "str" else arr.size * _WIRE[tag].itemsize
        hdr = _column_head(col, tag) + _U64.pack(arr.size) + _U64.pack(size)
        parts.append((hdr, tag, data))
        total += len(hdr) + size
    out = np.empty(total, np.uint8)
    out[: len(head)] = np.frombuffer(head, np.uint8)
    pos = len(head)
    for hdr, tag, data in parts:
        out[pos : pos + len(hdr)] = np.frombuffer(hdr, np.uint8)
        pos += len(hdr)
        if tag == "str":
            out[pos : pos + len(data)] = np.frombuffer(data, np.uint8)
            pos += len(data)
        else:
            wire = _WIRE[tag]
            size = data.size * wire.itemsize
            out[pos : pos + size].view(wire)[...] = data
            pos += size
    return out


def _hash_encoded(tables: list[_Encoded]) -> Prepared:
    """The second half of :func:`_prepare`: leaves, Merkle root and what to store."""
    out = Prepared([], {}, {}, {})
    for t in tables:
        if t.kind == "rows":
            out.rows[t.name] = t.rows
            out.leaves += [hashlib.sha256(p).digest() for p in t.rows]
        elif t.kind == "columns":
            out.columns[t.name] = t.columns
            out.leaves.append(_digest(t.name, t.columns))
        else:
            out.digests[t.name] = hashlib.sha256(t.stream).digest()
            out.leaves.append(digest_leaf(t.name, out.digests[t.name]))
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
    """One block of a chain; hashes are lowercase hex. ``target`` 0: no proof of work.
    ``signature``: the producer's Ed25519 signature of :func:`signed_message`, hex."""

    chain: str
    index: int
    prev_hash: str
    hour: int
    merkle_root: str
    producer: str
    nonce: int
    target: int
    hash: str
    signature: str = ""


def signed_message(chain_hash: str) -> bytes:
    """What a producer signs: ``S`` and the block's 32-byte hash (which commits to
    every header field, the previous block included)."""
    return _SIGNED + _hash_bytes(chain_hash, "block hash")


def _block_from_row(row: Sequence[Any]) -> Block:
    chain, index, prev, hour, root, producer, nonce, target, h, signature = row
    return Block(chain, index, prev, hour, root, producer, nonce, int(target, 16), h, signature)


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
    """Append-only DU1 / JY1 / LH1 chains in SQLite (docs/model.md section 7).

    ``Ledger()`` keeps the chains in memory; ``Ledger(path)`` writes a new
    SQLite file (an existing non-empty file is refused, never appended to).
    ``meta`` describes the run (str to str); :meth:`write_genesis` commits it.
    ``keep`` names tables (``"LH1/credit"``) stored as columns at ``digest``
    detail, for a verifier that must read them. Appends inside
    ``with ledger.period():`` are one transaction, so a run that stops leaves
    whole periods only.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        detail: str = "digest",
        meta: Mapping[str, str] | None = None,
        keep: Collection[str] = (),
        background: bool = False,
    ) -> None:
        if detail not in DETAIL_LEVELS:
            levels = ", ".join(DETAIL_LEVELS)
            raise ConfigError(f"ledger detail {detail!r}: must be one of {levels}")
        meta = dict(meta or {})
        for key, value in meta.items():
            if not (isinstance(key, str) and isinstance(value, str)):
                raise ValueError(f"ledger meta {key!r}: keys and values must be str")
        self.detail = detail
        self.meta = meta
        self._keep = {c: {k.split("/", 1)[1] for k in keep if k.startswith(f"{c}/")}
                      for c in CHAINS}
        self.path = None if path is None else Path(path)
        if self.path is not None and self.path.exists() and self.path.stat().st_size > 0:
            raise ConfigError(f"ledger '{self.path}': already exists; choose a new path")
        try:
            # The writer thread appends, the owner reads after drain(): never both at once.
            self._db = sqlite3.connect(
                ":memory:" if self.path is None else self.path, isolation_level=None,
                check_same_thread=not background,
            )
            if self.path is not None:
                # WAL: a commit per period without a full sync; back to a single file on close.
                # The file itself is written twice only: here (schema and run record) and
                # after the genesis; every period stays in the -wal until close, so while
                # a run writes, the file alone is a ledger of its genesis that the -wal
                # extends (verify checks that, see open_ledger_file).
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
                self._db.execute("PRAGMA wal_autocheckpoint = 0")
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._db.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
            self._db.executescript(f"BEGIN;{_SCHEMA}")
            self._db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
            self._db.execute("COMMIT")
            self._checkpoint()
        except sqlite3.Error as exc:
            raise ConfigError(f"ledger '{self.path}': cannot create: {exc}") from None
        self._heads: dict[str, Block] = {}
        self._authority: str | None = None  # the genesis signer's public key, hex
        self._in_period = False
        self._writer = PeriodWriter(self._append_job) if background else None

    # -- writing
    def write_genesis(
        self, records: Mapping[str, Records], public_keys: Mapping[str, bytes], signer: Signer
    ) -> None:
        """Block 0 of each chain, hour 0, signed by ``signer`` (the grid company): the
        given records, plus on DU1 the run record (``meta``), on JY1 the members'
        32-byte Ed25519 public keys, on LH1 the DU1 and JY1 genesis roots. Kept whole at
        every detail level."""
        self.sync()
        if self.detail == "off":
            return
        if any(self._heads.values()):
            raise RuntimeError("the ledger already has its genesis blocks")
        names = list(public_keys)
        extra = {
            "DU1": {"run": {"key": np.array(sorted(self.meta), dtype=str),
                            "value": np.array([self.meta[k] for k in sorted(self.meta)],
                                              dtype=str)}},
            "JY1": {"keys": {"name": np.array(names, dtype=str),
                             "public_key": np.array([public_keys[n].hex() for n in names],
                                                    dtype=str)}},
        }
        detail = "full" if self.detail == "full" else "columns"
        own = {c: dict(records.get(c, {})) for c in CHAINS}
        for chain, tables in extra.items():
            clash = own[chain].keys() & tables.keys()
            if clash:
                raise ValueError(f"genesis {chain}: table {sorted(clash)[0]!r} is reserved")
            own[chain].update(tables)
        if "chains" in own["LH1"]:
            raise ValueError("genesis LH1: table 'chains' is reserved")
        prepared = {c: _prepare(own[c], detail) for c in ("DU1", "JY1")}
        # LH1's genesis commits to the others' (the key registry included), as every period does
        own["LH1"]["chains"] = linked_roots(prepared["DU1"].root, prepared["JY1"].root)
        prepared["LH1"] = _prepare(own["LH1"], detail)
        self._append_period(0, prepared, signer, 0, 0)
        self._checkpoint()
        self._authority = public_keys[signer.name].hex()

    def _checkpoint(self) -> None:
        """Fold the -wal into the file (a file ledger; the genesis and on close)."""
        if self.path is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def prepare_period(self, records: Mapping[str, Records]) -> dict[str, Prepared]:
        """Hash a period's records once per chain; LH1 then also commits to the DU1 and
        JY1 Merkle roots ([DIPI]: the credit chain stores the JY1 block digest) in its
        table ``chains``. The LH1 root is the seed of a POCA nonce race."""
        return self._hash_period(self._encode_period(records))

    def _encode_period(self, records: Mapping[str, Records]) -> dict[str, list[_Encoded]]:
        """The first half of :meth:`prepare_period`: each chain's tables in canonical bytes
        (copies, so they may be hashed on the writer thread)."""
        if "chains" in records["LH1"]:
            raise ValueError("LH1 table 'chains' is reserved for the DU1 and JY1 roots")
        return {c: _encode(records[c], self.detail, self._keep.get(c, ())) for c in CHAINS}

    def _hash_period(self, encoded: Mapping[str, list[_Encoded]]) -> dict[str, Prepared]:
        """The second half: hash DU1 and JY1, then LH1 with their roots in ``chains``."""
        prepared = {c: _hash_encoded(encoded[c]) for c in ("DU1", "JY1")}
        chains = linked_roots(prepared["DU1"].root, prepared["JY1"].root)
        lh1 = encoded["LH1"] + _encode({"chains": chains}, self.detail, self._keep["LH1"])
        prepared["LH1"] = _hash_encoded(sorted(lh1, key=lambda t: t.name))
        return prepared

    def append_period(self, hour: int, prepared: Mapping[str, Prepared], signer: Signer, *,
                      nonce: int = 0, target: int = 0) -> None:
        """Append a period's three blocks, all signed by its producer, in one transaction
        (an interrupted run keeps whole periods only). ``nonce`` and ``target`` are the
        LH1 block's proof of work (0: none)."""
        self.sync()
        self._append_period(hour, prepared, signer, nonce, target)

    def submit_period(self, hour: int, records: Mapping[str, Records], signer: Signer, *,
                      nonce: int = 0, target: int = 0) -> None:
        """:meth:`prepare_period` then :meth:`append_period`: on the worker thread with
        ``background`` (the records are copied first, so the caller may reuse its
        arrays), else at once. The chains come out the same either way."""
        if self.detail == "off":
            return
        if self._writer is None:
            self.append_period(hour, self.prepare_period(records), signer, nonce=nonce,
                               target=target)
            return
        self._writer.submit((hour, self._encode_period(records), signer, nonce, target))

    def sync(self) -> None:
        """Wait until every submitted period is appended (re-raising a failure of the
        worker). Every reading or writing method does this first."""
        if self._writer is not None:
            self._writer.drain()

    def _append_job(self, job: tuple) -> None:
        """The worker's half of :meth:`submit_period`: hash, link, sign and store."""
        hour, encoded, signer, nonce, target = job
        self._append_period(hour, self._hash_period(encoded), signer, nonce, target)

    def _append_period(self, hour: int, prepared: Mapping[str, Prepared], signer: Signer,
                       nonce: int, target: int) -> None:
        if self.detail == "off":
            return
        blocks = [self._block(chain, hour, prepared[chain], signer,
                              *((nonce, target) if chain == "LH1" else (0, 0)))
                  for chain in CHAINS]
        with self._period():
            self._store(blocks, [prepared[chain] for chain in CHAINS])

    def append(
        self,
        chain: str,
        hour: int,
        records: Records,
        *,
        signer: Signer,
        nonce: int = 0,
        target: int = 0,
        prepared: Prepared | None = None,
    ) -> Block | None:
        """Add a block to ``chain``, produced and signed by ``signer``, and store its
        records (``prepared`` if given, else ``records``); returns the block.

        With ``target > 0`` the nonce must meet it (``pow_hash <= target``).
        With detail ``off`` nothing is built and ``None`` is returned.
        """
        self.sync()
        if self.detail == "off":
            return None
        if prepared is None:
            prepared = self.prepare(records, chain)
        block = self._block(chain, hour, prepared, signer, nonce, target)
        if self._in_period:
            self._store([block], [prepared])
        else:
            with self._atomic():
                self._store([block], [prepared])
        return block

    def _block(self, chain: str, hour: int, prepared: Prepared, signer: Signer, nonce: int,
               target: int) -> Block:
        """The next block of ``chain`` over ``prepared``, hashed and signed (not stored)."""
        if chain not in CHAINS:
            raise ValueError(f"chain must be one of {', '.join(CHAINS)}, not {chain!r}")
        hour, nonce, target = operator.index(hour), operator.index(nonce), operator.index(target)
        if not 0 <= nonce < 2**63 or not 0 <= target < 2**256 or not -(2**63) <= hour < 2**63:
            raise ValueError("nonce must be in [0, 2^63), target in [0, 2^256), hour an int64")
        if not isinstance(signer, Signer):
            raise ValueError(f"signer must be a Signer, not {type(signer).__name__}")
        producer = signer.name
        root = prepared.root
        if target > 0 and pow_hash(root, producer, nonce) > target:
            raise ValueError(f"{chain} block: nonce {nonce} does not meet its target")
        head = self._heads.get(chain)
        index = 0 if head is None else head.index + 1
        prev = GENESIS_PREV if head is None else head.hash
        h = block_hash(chain, index, prev, hour, root, producer, nonce, target)
        signature = signer.sign(signed_message(h)).hex()
        return Block(chain, index, prev, hour, root, producer, nonce, target, h, signature)

    def prepare(self, records: Records, chain: str | None = None) -> Prepared:
        """Hash a block's records once: their leaves, Merkle root and stored form
        (``chain`` says which tables are kept as columns at ``digest`` detail)."""
        return _prepare(records, self.detail, self._keep.get(chain, ()))

    def _store(self, blocks: Sequence[Block], prepared: Sequence[Prepared]) -> None:
        """Insert the blocks' rows and their records (rows, columns, digests), and make
        them the heads: a statement per table, not per block (each SQLite call hands the
        GIL over, which a writer thread pays for)."""
        self._db.executemany(
            "INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (b.chain, b.index, b.prev_hash, b.hour, b.merkle_root, b.producer, b.nonce,
                 f"{b.target:064x}",  # up to 256 bits: more than an SQLite INTEGER holds
                 b.hash, b.signature)
                for b in blocks
            ],
        )
        rows = [(b.chain, b.index, name, i, payload)
                for b, p in zip(blocks, prepared, strict=True)
                for name, payloads in p.rows.items() for i, payload in enumerate(payloads)]
        if rows:
            self._db.executemany("INSERT INTO record_rows VALUES (?, ?, ?, ?, ?)", rows)
        columns = [(b.chain, b.index, name, col, tag, data)
                   for b, p in zip(blocks, prepared, strict=True)
                   for name, cols in p.columns.items() for col, tag, _, data in cols]
        if columns:
            self._db.executemany("INSERT INTO record_columns VALUES (?, ?, ?, ?, ?, ?)",
                                 columns)
        digests = [(b.chain, b.index, name, digest)
                   for b, p in zip(blocks, prepared, strict=True)
                   for name, digest in p.digests.items()]
        if digests:
            self._db.executemany("INSERT INTO record_digests VALUES (?, ?, ?, ?)", digests)
        for b in blocks:
            self._heads[b.chain] = b

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
        self.sync()
        with self._period():
            yield self

    @contextmanager
    def _period(self) -> Iterator[Ledger]:
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
        self.sync()
        return self._heads.get(chain)

    def heads(self) -> dict[str, Any]:
        """Each chain's length and head hash, and under ``authority_key`` the public key
        that signed the genesis (hex): the anchor a run's summary.json keeps outside the
        file, so truncation, replacement and re-signing can be detected later."""
        self.sync()
        heads: dict[str, Any] = {
            c: {"blocks": 0 if (b := self._heads.get(c)) is None else b.index + 1,
                "head": None if b is None else b.hash} for c in CHAINS}
        heads["authority_key"] = self._authority
        return heads

    def blocks(self, chain: str) -> list[Block]:
        self.sync()
        rows = self._db.execute(
            f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE chain = ? ORDER BY block_index", (chain,)
        )
        return [_block_from_row(row) for row in rows]

    def read_records(self, chain: str, index: int) -> dict[str, dict[str, np.ndarray]]:
        """Block ``index``'s records as {table: {column: array}}, tables and columns
        in name order. Text columns come back as ``<U`` of their longest value.
        Tables kept only as digests are not among them."""
        self.sync()
        return read_records(self._db, chain, index)

    @property
    def db(self) -> sqlite3.Connection:
        """The ledger's SQLite connection (for :func:`dipi_abm.ledger.verify.verify_open`)."""
        return self._db

    def close(self) -> None:
        """Finish the file: the write-ahead log is checkpointed into the database and
        removed, so the ledger is one self-contained SQLite file. Periods still with the
        worker are appended first; if the worker failed and no call has raised its error
        yet, it is raised once the file is closed."""
        if self._db is None:
            return
        try:
            if self._writer is not None and not self._writer.reported:
                self._writer.drain()
        finally:
            self._close_db()

    def _close_db(self) -> None:
        if self._db.in_transaction:  # closed inside a period: that period is dropped
            self._db.execute("ROLLBACK")
        if self.path is not None:
            try:
                self._checkpoint()
                # Back to a rollback journal: no -wal file next to it. If a reader holds
                # the file this fails, and the checkpoint above has still moved every page.
                self._db.execute("PRAGMA journal_mode = DELETE")
            except sqlite3.OperationalError:
                pass
        self._db.close()
        self._db = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def linked_roots(du1_root: str, jy1_root: str) -> dict[str, np.ndarray]:
    """LH1's ``chains`` table: the period's DU1 and JY1 Merkle roots."""
    return {"chain": np.array(["DU1", "JY1"]), "merkle_root": np.array([du1_root, jy1_root])}


def read_records(
    db: sqlite3.Connection, chain: str, index: int
) -> dict[str, dict[str, np.ndarray]]:
    """A block's records kept as rows or columns, as {table: {column: array}}, read and
    checked as the verifier reads them (:class:`StoredRecords`)."""
    return StoredRecords(db).tables(chain, index)


class StoredRecords:
    """The one way every reader (the verifier, :func:`read_records`) reads a ledger's
    stored records: each field of the type the schema promises, each payload parsed
    exactly and in its canonical encoding, each column decoded exactly (ValueError
    otherwise). ``bulk`` reads every block's columns and digests at once, for a pass over
    all blocks; otherwise each block's are read when asked for."""

    def __init__(self, db: sqlite3.Connection, *, bulk: bool = False) -> None:
        self.db = db
        self._columns: dict[tuple, list[tuple]] | None = None
        self._digests: dict[tuple, list[tuple]] | None = None
        self._has_rows = True
        if bulk:
            self._columns, self._digests = {}, {}
            for chain, idx, *rest in db.execute(
                    "SELECT chain, block_index, tbl, col, dtype, data FROM record_columns"):
                self._columns.setdefault((chain, idx), []).append(tuple(rest))
            for chain, idx, *rest in db.execute(
                    "SELECT chain, block_index, tbl, digest FROM record_digests"):
                self._digests.setdefault((chain, idx), []).append(tuple(rest))
            self._has_rows = db.execute("SELECT 1 FROM record_rows LIMIT 1").fetchone() is not None

    def _select(self, table: str, fields: str, chain: str, index: int) -> list[tuple]:
        return self.db.execute(f"SELECT {fields} FROM {table} WHERE chain = ? AND "
                               "block_index = ?", (chain, index)).fetchall()

    def rows(self, chain: str, index: int) -> list[tuple[str, int, bytes]]:
        """(table, row, payload) of the block's record rows, by table and row."""
        rows = self._select("record_rows", "tbl, row, payload", chain, index) \
            if self._has_rows else []
        if not all(type(t) is str and type(r) is int and type(p) is bytes for t, r, p in rows):
            raise ValueError("a record row has a field of the wrong type")
        return sorted(rows, key=lambda r: (r[0], r[1]))

    def columns(self, chain: str, index: int) -> list[tuple[str, str, str, bytes]]:
        """(table, column, type tag, data) of the block's tables kept as columns."""
        cols = (self._columns.get((chain, index), []) if self._columns is not None
                else self._select("record_columns", "tbl, col, dtype, data", chain, index))
        if not all(type(t) is str and type(c) is str and type(g) is str and type(d) is bytes
                   for t, c, g, d in cols):
            raise ValueError("a record column has a field of the wrong type")
        return sorted(cols)

    def digests(self, chain: str, index: int) -> list[tuple[str, bytes]]:
        """(table, SHA-256) of the block's tables kept only as their digest."""
        digests = (self._digests.get((chain, index), []) if self._digests is not None
                   else self._select("record_digests", "tbl, digest", chain, index))
        if not all(type(t) is str and type(d) is bytes and len(d) == 32 for t, d in digests):
            raise ValueError("a table digest has a field of the wrong type")
        return sorted(digests)

    def tables(self, chain: str, index: int) -> dict[str, dict[str, np.ndarray]]:
        """The block's readable tables, {table: {column: array}} in name order."""
        return self.read(chain, index)[0]

    def read(self, chain: str, index: int
             ) -> tuple[dict[str, dict[str, np.ndarray]], list[bytes]]:
        """The block's readable tables and its Merkle leaves, recomputed from what is
        stored (tables in name order: rows, columns or a digest each)."""
        by_table: dict[str, list[tuple[int, bytes]]] = {}
        for tbl, row, payload in self.rows(chain, index):
            by_table.setdefault(tbl, []).append((row, payload))
        tables: dict[str, dict[str, np.ndarray]] = {}
        leaves: dict[str, list[bytes]] = {}
        for tbl, rows in by_table.items():
            payloads = [p for _, p in rows]
            if [r for r, _ in rows] != list(range(len(rows))):
                raise ValueError(f"table {tbl!r}: rows are not numbered 0, 1, ...")
            decoded = _records_from_rows(payloads)
            table = decoded.get(tbl)
            if set(decoded) != {tbl} or _canonical_rows(tbl, _columns(tbl, table)) != payloads:
                raise ValueError(f"table {tbl!r}: a record is not in its canonical encoding")
            tables[tbl] = table
            leaves[tbl] = [hashlib.sha256(p).digest() for p in payloads]
        grouped: dict[str, list[tuple[str, str, bytes]]] = {}
        for tbl, col, tag, data in self.columns(chain, index):
            grouped.setdefault(tbl, []).append((col, tag, data))
        for tbl, cols in grouped.items():
            if tbl in leaves:
                raise ValueError(f"table {tbl!r} is stored both as rows and as columns")
            arrays = {col: _column_from_bytes(tag, data) for col, tag, data in cols}
            # text read back as numpy strings (which drop a trailing NUL) must say the same
            if any(tag == "str" and _column_bytes(tag, arrays[col]) != data
                   for col, tag, data in cols):
                raise ValueError(f"table {tbl!r}: a text column is not in its canonical form")
            if len(arrays) != len(cols) or len({a.size for a in arrays.values()}) != 1:
                raise ValueError(f"table {tbl!r} has repeated or unequal columns")
            tables[tbl] = arrays
            leaves[tbl] = [_digest(tbl, [(c, g, arrays[c].size, d) for c, g, d in cols])]
        for tbl, digest in self.digests(chain, index):
            if tbl in leaves:
                raise ValueError(f"table {tbl!r} is stored twice")
            leaves[tbl] = [digest_leaf(tbl, digest)]
        return (dict(sorted(tables.items())),
                [leaf for tbl in sorted(leaves) for leaf in leaves[tbl]])


# ----------------------------------------------------------------------------- reading files
@dataclass(frozen=True)
class VerifyReport:
    """The outcome of verifying a ledger: ``blocks`` verified before the first bad block
    ``(chain, index)``, and what is wrong with it; ``unchecked`` says what could not be
    checked (for example the chain heads, without an anchor)."""

    ok: bool
    blocks: int
    chain: str | None = None
    index: int | None = None
    problem: str = ""
    unchecked: tuple[str, ...] = ()


def _schema(db: sqlite3.Connection) -> list[tuple]:
    return db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                      "ORDER BY type, name").fetchall()


@functools.cache
def _expected_schema() -> tuple[tuple, ...]:
    """Every object a ledger's schema holds, as SQLite records it (tables, columns, types,
    collations, constraints and indexes are all in each object's SQL)."""
    db = sqlite3.connect(":memory:")
    db.executescript(_SCHEMA)
    try:
        return tuple(_schema(db))
    finally:
        db.close()


def open_ledger_file(path: str | os.PathLike, *,
                     alone: bool = False) -> tuple[sqlite3.Connection, bool]:
    """Open an existing ledger read-only as one snapshot (a read transaction), or raise
    ConfigError naming the file; also says whether a run is still writing it.

    A closed ledger is one self-contained file, opened immutable: nothing beside it is
    read and nothing (no ``-shm``) is created. A non-empty ``-wal`` beside it with its
    ``-shm`` is a ledger being written (or one whose run was killed): it is read with
    that log, up to its last committed period (``alone``: the file's bytes without it,
    which a run leaves at its genesis). A ``-journal`` (a transaction cut off
    mid-write) or a ``-wal`` without its ``-shm`` is refused: the file's bytes alone are
    then not what any SQLite reader would see. The file must pass SQLite's integrity
    check and hold exactly the schema a ledger is written with."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"ledger '{path}': no such file")
    if not path.is_file():
        raise ConfigError(f"ledger '{path}': not a file")
    beside = {s: Path(f"{path}{s}") for s in ("-journal", "-wal", "-shm")}
    size = {s: p.stat().st_size if p.is_file() else -1 for s, p in beside.items()}
    if size["-journal"] > 0:
        raise ConfigError(f"ledger '{path}': '{beside['-journal'].name}' beside it holds a "
                          "write cut off mid-transaction; open the ledger once with sqlite3 "
                          "(which rolls it back), then verify it")
    live = size["-wal"] > 0 and not alone
    if live and size["-shm"] < 0:
        raise ConfigError(f"ledger '{path}': '{beside['-wal'].name}' beside it was left by "
                          "a writer that did not close it, so the file alone is not the "
                          "ledger; open it once with sqlite3 to fold the log in, or move "
                          "the log away to verify the file alone")
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if live else "&immutable=1")
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise ConfigError(f"ledger '{path}': not a readable SQLite file ({exc})") from None
    try:
        db.execute("BEGIN")  # every later read sees this one snapshot
        (app_id,) = db.execute("PRAGMA application_id").fetchone()
        (version,) = db.execute("PRAGMA user_version").fetchone()
        schema = _schema(db)
        problem = None
        if app_id == APPLICATION_ID and version != FORMAT_VERSION:
            problem = (f"format {version}, this version reads format {FORMAT_VERSION} "
                       "(signed blocks, committed run identity)")
        elif app_id != APPLICATION_ID or not {t for _, t, *_ in schema} >= set(_TABLES):
            problem = "not a dipi_abm ledger (missing its tables)"
        elif tuple(schema) != _expected_schema():
            extra = sorted({tuple(s[:2]) for s in schema} ^ {tuple(s[:2]) for s in
                                                              _expected_schema()})
            what = (f"{extra[0][0]} '{extra[0][1]}'" if extra else
                    "a table or index defined otherwise")
            problem = (f"not a dipi_abm ledger as written: its schema differs from a "
                       f"ledger's ({what})")
        else:
            check = [r[0] for r in db.execute("PRAGMA integrity_check(3)")]
            if check != ["ok"]:
                problem = f"damaged: SQLite's check finds {'; '.join(map(str, check))}"
    except sqlite3.Error as exc:
        problem = f"not a readable SQLite file ({exc})"
    if problem is not None:
        db.close()
        raise ConfigError(f"ledger '{path}': {' '.join(problem.split())}")
    return db, live


def read_meta(path: str | os.PathLike) -> dict[str, str]:
    """The run description stored with a ledger file (verify checks it against the run
    record committed in DU1's genesis block)."""
    db, _ = open_ledger_file(path)
    try:
        return dict(db.execute("SELECT key, value FROM meta ORDER BY key"))
    except sqlite3.Error as exc:
        raise ConfigError(f"ledger '{path}': not a readable SQLite file ({exc})") from None
    finally:
        db.close()
