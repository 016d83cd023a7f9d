"""Who may write a block: one Ed25519 key pair per member of the alliance chain.

[DER-CBC]'s chains are an *alliance* blockchain: only authenticated members
write to them. Every node (a trading party's miner or a stand-alone miner) and
the grid company, which writes the genesis blocks, hold a key pair. The public
keys are registered in the genesis block of JY1 (docs/model.md section 7); the
producer of each block signs its header hash; the verifier checks every block
against the registered key of the producer it names.

Private keys never enter the ledger. They are drawn from the operating
system's randomness, not from the run's seed: the seed is committed in the
genesis block for anyone to read, and keys derived from it could be rebuilt
by any forger. A run may save them (``dipi-abm run --keys PATH``) in a file
only its owner can read; otherwise they are forgotten when the run ends.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..errors import ConfigError

__all__ = ["AUTHORITY", "KEY_FILE_FORMAT", "KeyRing", "Signer", "public_key", "signature_ok"]

#: The member that writes the genesis blocks: the grid company, the alliance's operator.
AUTHORITY = "grid_company"
KEY_FILE_FORMAT = "dipi-abm keys 1"
_KEY_BYTES = 32


@dataclass(frozen=True)
class Signer:
    """One member's signing key: ``name`` is the producer it signs for."""

    name: str
    key: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


class KeyRing:
    """Private keys by member name (in memory only, unless :meth:`save` is called)."""

    def __init__(self, keys: Mapping[str, Ed25519PrivateKey]) -> None:
        self._keys = dict(keys)

    @classmethod
    def generate(cls, names: Iterable[str]) -> KeyRing:
        """A fresh key pair per name (32 bytes each from ``os.urandom``)."""
        names = list(names)
        if len(set(names)) != len(names):
            raise ValueError("member names must be unique")
        # One urandom call for all: at 10,000 members this is a few hundred ms.
        raw = os.urandom(_KEY_BYTES * len(names))
        return cls({
            name: Ed25519PrivateKey.from_private_bytes(raw[i * _KEY_BYTES:(i + 1) * _KEY_BYTES])
            for i, name in enumerate(names)
        })

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def names(self) -> list[str]:
        return list(self._keys)

    def signer(self, name: str) -> Signer:
        try:
            return Signer(name, self._keys[name])
        except KeyError:
            raise ValueError(f"no key for member {name!r}") from None

    def public_keys(self) -> dict[str, bytes]:
        """Each member's raw 32-byte public key, in the ring's order."""
        return {n: k.public_key().public_bytes_raw() for n, k in self._keys.items()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the private keys to a new file readable by its owner only (mode 0600).

        The file appears complete or not at all, and an existing file is never
        overwritten (ConfigError).
        """
        path = Path(path)
        if path.exists():
            raise ConfigError(f"key file '{path}': already exists; choose a new path")
        if not path.parent.is_dir():
            raise ConfigError(f"key file '{path}': folder '{path.parent}' does not exist")
        doc = {"format": KEY_FILE_FORMAT,
               "keys": {n: k.private_bytes_raw().hex() for n, k in self._keys.items()}}
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:  # mkstemp creates it 0600
                json.dump(doc, fh)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # atomic, and refuses to replace a file made meanwhile
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links
                if path.exists():
                    raise FileExistsError(path) from None
                os.replace(tmp, path)
        except FileExistsError:
            raise ConfigError(f"key file '{path}': already exists; choose a new path") from None
        except OSError as exc:  # a read-only folder, a full disk
            raise ConfigError(f"key file '{path}': cannot write ({exc.strerror or exc})"
                              ) from None
        finally:
            Path(tmp).unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> KeyRing:
        """Read a key file written by :meth:`save` (ConfigError naming the file if not one)."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != KEY_FILE_FORMAT:
                raise ValueError("unknown format")
            return cls({n: Ed25519PrivateKey.from_private_bytes(bytes.fromhex(h))
                        for n, h in doc["keys"].items()})
        except FileNotFoundError:
            raise ConfigError(f"key file '{path}': no such file") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"key file '{path}': not a dipi-abm key file") from None


def public_key(raw: bytes) -> Ed25519PublicKey:
    """A registered public key from its 32 raw bytes (ValueError if malformed)."""
    return Ed25519PublicKey.from_public_bytes(raw)


def signature_ok(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
