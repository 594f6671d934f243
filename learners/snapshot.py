"""Signed snapshots: a pickled model is code, so nothing is unpickled before its HMAC verifies.

Layout (all lengths big-endian)::

    b"DLSNAP1\\n" | HMAC-SHA256 (32 bytes) | header length (4) | header (JSON) | zlib(pickle)

The MAC covers everything after itself, so the readable header (lineage, counters, watermark) is
as tamper-proof as the model. :func:`read_header` shows the header *without* verifying, for
listings; :func:`load_snapshot` verifies before it decompresses or unpickles anything.

>>> key = bytes(range(32))
>>> blob = sign_snapshot({"w": [1, 2]}, {"version": 3}, key)
>>> load_snapshot(blob, key)
({'version': 3}, {'w': [1, 2]})
>>> load_snapshot(blob[:-1] + bytes([blob[-1] ^ 1]), key)
Traceback (most recent call last):
...
driftline.learners.snapshot.SnapshotError: refused: the signature does not verify (tampered, or signed with another key)
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import zlib
from collections.abc import Callable
from typing import Any

import orjson

from driftline.learners import pickling

MAGIC = b"DLSNAP1\n"
_MAC_LEN = 32
MIN_KEY_BYTES = 32
#: A key of fewer distinct bytes is refused (a hex key of 64 random digits has all 16, nearly
#: always; below 12 is one chance in ~10^9).
MIN_DISTINCT_BYTES = 12
#: How to make a key, in every refusal.
MAKE_KEY = (
    "make one with `driftline snapshots keygen` or "
    '`python -c "import secrets; print(secrets.token_hex(32))"`'
)


class SnapshotError(Exception):
    """A snapshot that must not be loaded, or a missing/unsuitable key."""


def check_key(raw: bytes, source: str = "the key") -> None:
    """Refuse a key that is short or obviously low-entropy: fewer than :data:`MIN_KEY_BYTES`
    bytes, fewer than :data:`MIN_DISTINCT_BYTES` distinct bytes, or one pattern repeated.

    >>> check_key(bytes(range(16)) * 2, "$K")
    Traceback (most recent call last):
    ...
    driftline.learners.snapshot.SnapshotError: the snapshot key from $K repeats a 16-byte pattern: not a random key; make one with `driftline snapshots keygen` or `python -c "import secrets; print(secrets.token_hex(32))"`
    """
    if len(raw) < MIN_KEY_BYTES:
        raise SnapshotError(
            f"the snapshot key from {source} is {len(raw)} bytes, shorter than {MIN_KEY_BYTES} "
            f"(after stripping whitespace); {MAKE_KEY}"
        )
    distinct = len(set(raw))
    if distinct < MIN_DISTINCT_BYTES:
        raise SnapshotError(
            f"the snapshot key from {source} has only {distinct} distinct bytes: not a random "
            f"key; {MAKE_KEY}"
        )
    for period in range(1, len(raw) // 2 + 1):
        if len(raw) % period == 0 and raw == raw[:period] * (len(raw) // period):
            raise SnapshotError(
                f"the snapshot key from {source} repeats a {period}-byte pattern: not a random "
                f"key; {MAKE_KEY}"
            )


def new_key() -> str:
    """A fresh key: 32 random bytes as 64 hex digits (what ``driftline snapshots keygen`` prints)."""
    import secrets

    return secrets.token_hex(32)


def _mac(key: bytes, signed: bytes) -> bytes:
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign_snapshot(state: Any, header: dict[str, Any], key: bytes) -> bytes:
    """Pickle, compress and sign ``state`` with its JSON-serialisable ``header``."""
    # Loaded, its objects keep the layout Python reads fast (driftline.learners.pickling).
    return sign_pickled(pickling.dumps(state), header, key)


def sign_pickled(pickled: bytes, header: dict[str, Any], key: bytes) -> bytes:
    """:func:`sign_snapshot` of a state pickled already (by :func:`pickling.dumps`)."""
    header_bytes = orjson.dumps(header)
    body = zlib.compress(pickled, 3)
    signed = len(header_bytes).to_bytes(4, "big") + header_bytes + body
    return MAGIC + _mac(key, signed) + signed


def _split(blob: bytes) -> tuple[bytes, bytes, dict[str, Any], bytes]:
    if not blob.startswith(MAGIC):
        raise SnapshotError("refused: not a driftline snapshot (unsigned or foreign data)")
    mac = blob[len(MAGIC) : len(MAGIC) + _MAC_LEN]
    signed = blob[len(MAGIC) + _MAC_LEN :]
    if len(mac) < _MAC_LEN or len(signed) < 4:
        raise SnapshotError("refused: the snapshot is truncated")
    size = int.from_bytes(signed[:4], "big")
    if len(signed) < 4 + size:
        raise SnapshotError("refused: the snapshot is truncated")
    try:
        header = orjson.loads(signed[4 : 4 + size])
    except orjson.JSONDecodeError:
        raise SnapshotError("refused: the snapshot header is corrupt") from None
    if not isinstance(header, dict):
        raise SnapshotError("refused: the snapshot header is not a JSON object")
    return mac, signed, header, signed[4 + size :]


def read_header(blob: bytes) -> dict[str, Any]:
    """The header, NOT verified: for listings only; never act on it without :func:`verify`."""
    return _split(blob)[2]


def verify(blob: bytes, key: bytes | None) -> dict[str, Any]:
    """The header, if and only if the signature verifies under ``key``."""
    return _verified(blob, key)[0]


def _verified(blob: bytes, key: bytes | None) -> tuple[dict[str, Any], bytes]:
    if key is None:
        # The driver loads the key (driftline.keys): these are the names it reads.
        raise SnapshotError(
            "refused: no snapshot key configured "
            "(set $DRIFTLINE_SNAPSHOT_KEY or $DRIFTLINE_SNAPSHOT_KEY_FILE)"
        )
    mac, signed, header, body = _split(blob)
    if not hmac.compare_digest(mac, _mac(key, signed)):
        raise SnapshotError(
            "refused: the signature does not verify (tampered, or signed with another key)"
        )
    return header, body


def load_snapshot(
    blob: bytes, key: bytes | None, check: Callable[[dict[str, Any]], None] | None = None
) -> tuple[dict[str, Any], Any]:
    """Verify, let ``check`` refuse the verified header, then decompress and unpickle:
    ``(header, state)``."""
    header, body = _verified(blob, key)
    if check is not None:
        check(header)
    try:
        return header, pickle.loads(zlib.decompress(body))
    except (zlib.error, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        # Signed by us yet unreadable: a bug or a different driftline version.
        raise SnapshotError(f"refused: the snapshot body cannot be read ({exc})") from None
