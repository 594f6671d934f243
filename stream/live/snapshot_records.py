"""Snapshot records on the compacted ``model-snapshots`` topic: keys, chunks, and reading them back.

**Keys.** A partition's snapshots rotate over ``snapshot.history`` slots: the snapshot with
sequence ``s`` goes to slot ``s % history`` under the key ``"<app id>:<partition>:s<slot>"``, so
compaction keeps the newest ``history`` snapshots, not one: a forged or broken newest record
cannot erase the state. :func:`snapshot_key` is the one place that spells a key; every reader
goes through :func:`parse_snapshot_key` (which also reads the single key ``"<app id>:<p>"`` of
driftline before slots).

**Chunks.** A signed blob larger than ``snapshot.chunk_bytes`` is cut into chunks, one record
each; chunk ``i > 0`` of a slot has the key ``"<slot key>:c<i>"``. Every record carries the
headers ``driftline-snapshot`` (the SHA-256 of the whole blob: the set's id) and
``driftline-chunk`` (``"i/n"``). A reader reassembles a set once all ``n`` chunks of an id are
there and their concatenation hashes to the id; a set with a missing or mismatching chunk is
refused, and an older one is used.

**Reading.** :class:`Assembler` takes records in offset order and gives, per partition, the
complete sets (verified with the key when there is one) and every refusal with its reason. It
reads the topic as it is, before or after compaction: a tombstone deletes the records of its
key before it; an older snapshot re-published under a key after a newer one (a rollback) is
refused; a valid snapshot under a key it was not signed for is refused.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.learners.snapshot import SnapshotError, read_header, verify

log = logging.getLogger("driftline.snapshots")

SET_HEADER = "driftline-snapshot"
CHUNK_HEADER = "driftline-chunk"
#: More chunks than this in one snapshot is not ours (a 1 MB chunk: 4 GB).
MAX_CHUNKS = 4096
#: Incomplete sets of one partition held while reading (a writer writes one set at a time).
MAX_PENDING = 16

_KEY = re.compile(r"^(?P<app>.*):(?P<p>\d+)(?::s(?P<slot>\d+)(?::c(?P<chunk>\d+))?)?$")


def snapshot_key(app_id: str, partition: int, slot: int, chunk: int = 0) -> str:
    """The key of chunk ``chunk`` of the snapshot in ``slot`` of ``partition``.

    >>> snapshot_key("driftline", 3, 1), snapshot_key("driftline", 3, 1, chunk=2)
    ('driftline:3:s1', 'driftline:3:s1:c2')
    """
    key = f"{app_id}:{partition}:s{slot}"
    return key if chunk == 0 else f"{key}:c{chunk}"


def slot_of(sequence: int, history: int) -> int:
    return sequence % history


def parse_snapshot_key(key: str) -> tuple[str, int, int | None, int] | None:
    """``(app id, partition, slot, chunk)`` of a key (slot ``None``: the one key of driftline
    before slots), or ``None`` when it is not a snapshot key.

    >>> parse_snapshot_key("driftline:3:s1:c2"), parse_snapshot_key("driftline:3")
    (('driftline', 3, 1, 2), ('driftline', 3, None, 0))
    >>> parse_snapshot_key("odd") is None
    True
    """
    m = _KEY.match(key)
    if m is None:
        return None
    slot = m.group("slot")
    return (
        m.group("app"),
        int(m.group("p")),
        None if slot is None else int(slot),
        int(m.group("chunk") or 0),
    )


def chunk_records(
    app_id: str, partition: int, sequence: int, history: int, blob: bytes, chunk_bytes: int
) -> list[tuple[str, bytes, list[tuple[str, bytes]]]]:
    """``(key, value, headers)`` of each record of one snapshot, chunk 0 (the slot key) first.

    >>> [(k, len(v), dict(h)[CHUNK_HEADER]) for k, v, h in chunk_records("a", 0, 5, 4, b"x" * 5, 2)]
    [('a:0:s1', 2, b'0/3'), ('a:0:s1:c1', 2, b'1/3'), ('a:0:s1:c2', 1, b'2/3')]
    """
    set_id = hashlib.sha256(blob).hexdigest().encode()
    slot = slot_of(sequence, history)
    pieces = [blob[i : i + chunk_bytes] for i in range(0, len(blob), chunk_bytes)] or [b""]
    return [
        (
            snapshot_key(app_id, partition, slot, i),
            piece,
            [(SET_HEADER, set_id), (CHUNK_HEADER, f"{i}/{len(pieces)}".encode())],
        )
        for i, piece in enumerate(pieces)
    ]


def rank(header: Mapping[str, Any] | None) -> tuple[int, int, int]:
    """How recent a snapshot is: ``(sequence, watermark, label watermark)``, the worker's rule
    and ``driftline snapshots list``'s (a snapshot of before sequences counts as sequence 0)."""
    if not header:
        return -2, -2, -2
    try:
        return (
            int(header.get("sequence") or 0),
            int(header["watermark"]),
            int(header.get("label_watermark", -1)),
        )
    except (KeyError, TypeError, ValueError):
        return -2, -2, -2  # a header we cannot even rank


@dataclass
class SnapshotSet:
    """One complete snapshot on the topic (one record, or its reassembled chunks)."""

    key: str  # the key of chunk 0
    partition: int
    slot: int | None
    set_id: str
    blob: bytes
    offset: int  # of chunk 0
    topic_partition: int
    timestamp_ms: int
    chunks: int
    header: dict[str, Any] | None = None
    #: True / False once checked; None when there is no key to check with.
    verifies: bool | None = None
    problem: str = ""
    places: list[tuple[str, int]] = field(default_factory=list)  # (key, offset) of each chunk

    @property
    def rank(self) -> tuple[int, int, int]:
        return rank(self.header)

    @property
    def sequence(self) -> int:
        return self.rank[0]


@dataclass
class Refusal:
    """A record (or set of records) that will not be loaded, and why."""

    partition: int
    key: str
    offset: int
    reason: str


@dataclass
class _Piece:
    key: str
    offset: int
    value: bytes
    topic_partition: int
    timestamp_ms: int
    slot: int | None


@dataclass
class _Pending:
    partition: int
    count: int
    first_offset: int
    pieces: dict[int, _Piece] = field(default_factory=dict)


def _headers(record_headers: Iterable[tuple[str, bytes]] | None) -> dict[str, bytes]:
    return {name: value for name, value in (record_headers or ()) if isinstance(value, bytes)}


class Assembler:
    """Snapshot sets of ``app_id``'s ``partitions`` (all when ``None``) from records fed in
    offset order per topic partition; with ``keep``, only the ``keep`` highest-ranked verified
    sets per partition are held (memory stays bounded however many compaction left)."""

    def __init__(
        self,
        app_id: str | None,
        partitions: Iterable[int] | None,
        key: bytes | None,
        keep: int | None = None,
    ) -> None:
        self.app_id = app_id
        self.partitions = None if partitions is None else set(partitions)
        self.key = key
        self.keep = keep
        self.refusals: list[Refusal] = []
        self._sets: dict[int, list[tuple[tuple[int, int, int], int, int, SnapshotSet]]] = {}
        self._pending: dict[tuple[int, str], _Pending] = {}
        self._tombstones: dict[str, int] = {}
        self._latest: dict[str, tuple[int, str]] = {}  # key -> (offset, set id) of its newest
        self._seq_on_key: dict[str, tuple[int, int]] = {}  # key -> (sequence, offset), verified
        self._verified_ids: set[str] = set()
        self._n = 0

    def add(
        self,
        key: bytes | str | None,
        offset: int,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]] | None = None,
        topic_partition: int = 0,
        timestamp_ms: int = 0,
    ) -> None:
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        parsed = parse_snapshot_key(name) if name else None
        if parsed is None:
            return
        app_id, p, slot, chunk = parsed
        if (self.app_id is not None and app_id != self.app_id) or (
            self.partitions is not None and p not in self.partitions
        ):
            return
        assert name is not None
        if value is None:  # a tombstone deletes what its key held before it
            self._tombstones[name] = offset
            self._latest.pop(name, None)
            self._seq_on_key.pop(name, None)
            self._forget(name, offset)
            return
        meta = _headers(headers)
        try:
            set_id = meta[SET_HEADER].decode()
            index_text, count_text = meta[CHUNK_HEADER].decode().split("/")
            index, count = int(index_text), int(count_text)
        except KeyError:  # a single-record snapshot of before chunks
            set_id, index, count = hashlib.sha256(value).hexdigest(), 0, 1
        except (ValueError, UnicodeDecodeError):
            self._refuse(p, name, offset, "refused: unreadable chunk headers")
            return
        if not (0 <= index < count <= MAX_CHUNKS) or index != chunk:
            self._refuse(
                p, name, offset, f"refused: chunk headers {index}/{count} do not fit key {name}"
            )
            return
        self._latest[name] = (offset, set_id)
        pending = self._pending.get((p, set_id))
        if pending is None or pending.count != count:
            pending = self._pending[(p, set_id)] = _Pending(p, count, offset)
            self._bound_pending(p)
        pending.pieces[index] = _Piece(name, offset, value, topic_partition, timestamp_ms, slot)
        if len(pending.pieces) == count:
            del self._pending[(p, set_id)]
            self._complete(p, set_id, pending)

    # ------------------------------------------------------------------ internals

    def _refuse(self, p: int, key: str, offset: int, reason: str) -> None:
        self.refusals.append(Refusal(p, key, offset, reason))

    def _bound_pending(self, p: int) -> None:
        mine = [(pend.first_offset, sid) for (q, sid), pend in self._pending.items() if q == p]
        if len(mine) > MAX_PENDING:
            _, sid = min(mine)
            pend = self._pending.pop((p, sid))
            first = pend.pieces[min(pend.pieces)]
            self._refuse(
                p, first.key, first.offset, "refused: an incomplete chunked snapshot (too many)"
            )

    def _forget(self, key: str, before: int) -> None:
        for sid, pend in list(self._pending.items()):
            if any(pc.key == key and pc.offset < before for pc in pend.pieces.values()):
                del self._pending[sid]
        for p, items in self._sets.items():
            kept = [it for it in items if not any(k == key and o < before for k, o in it[3].places)]
            if len(kept) != len(items):
                heapq.heapify(kept)
                self._sets[p] = kept

    def _complete(self, p: int, set_id: str, pending: _Pending) -> None:
        pieces = [pending.pieces[i] for i in range(pending.count)]
        first = pieces[0]
        blob = b"".join(pc.value for pc in pieces)
        if hashlib.sha256(blob).hexdigest() != set_id:
            self._refuse(
                p,
                first.key,
                first.offset,
                f"refused: its {pending.count} chunk(s) do not reassemble into snapshot "
                f"{set_id[:12]} (a mismatching or forged chunk)",
            )
            return
        snap = SnapshotSet(
            key=first.key,
            partition=p,
            slot=first.slot,
            set_id=set_id,
            blob=blob,
            offset=first.offset,
            topic_partition=first.topic_partition,
            timestamp_ms=first.timestamp_ms,
            chunks=pending.count,
            places=[(pc.key, pc.offset) for pc in pieces],
        )
        try:
            snap.header = read_header(blob)
            if self.key is not None:
                snap.header = verify(blob, self.key)
                snap.verifies = True
                self._check_place(snap)
        except SnapshotError as exc:
            snap.verifies, snap.problem = False, str(exc)
            self._refuse(p, snap.key, snap.offset, str(exc))
            if self.keep is not None:
                return
        if snap.verifies:
            self._verified_ids.add(set_id)
        self._n += 1
        heap = self._sets.setdefault(p, [])
        heapq.heappush(heap, (snap.rank, snap.offset, self._n, snap))
        if self.keep is not None and len(heap) > self.keep:
            heapq.heappop(heap)

    def _check_place(self, snap: SnapshotSet) -> None:
        # Verified: the header is ours. Is it where it was published?
        header = snap.header or {}
        if header.get("partition") != snap.partition:
            raise SnapshotError(
                f"refused: signed for partition {header.get('partition')!r}, found under "
                f"{snap.key} (copied)"
            )
        if self.app_id is not None and header.get("owner") not in (None, self.app_id):
            raise SnapshotError(f"refused: signed for app {header.get('owner')!r} (copied)")
        sequence = snap.sequence
        history = header.get("history")
        history = history if isinstance(history, int) and history > 0 else 0
        if snap.slot is not None and history and slot_of(sequence, history) != snap.slot:
            raise SnapshotError(
                f"refused: sequence {sequence} belongs in slot {slot_of(sequence, history)}, "
                f"found under {snap.key} (re-published: a rollback attempt)"
            )
        before = self._seq_on_key.get(snap.key)
        if before is not None and before[0] > sequence and before[1] < snap.offset:
            raise SnapshotError(
                f"refused: sequence {sequence} published under {snap.key} after sequence "
                f"{before[0]} (re-published older snapshot: a rollback attempt)"
            )
        if before is None or sequence >= before[0]:
            self._seq_on_key[snap.key] = (sequence, snap.offset)

    def _superseded(self, piece: _Piece, missing: list[int]) -> bool:
        # Left over after compaction: the keys of its missing chunks now hold a newer snapshot
        # that verifies (one with fewer chunks reused the slot). Not a refusal.
        parsed = parse_snapshot_key(piece.key)
        if parsed is None:
            return False
        app_id, p, slot, _ = parsed
        if slot is None:
            return False
        for i in missing:
            latest = self._latest.get(snapshot_key(app_id, p, slot, i))
            if latest is not None and latest[0] > piece.offset and latest[1] in self._verified_ids:
                return True
        return False

    def finish(self) -> dict[int, list[SnapshotSet]]:
        """Complete sets per partition, highest rank first; incomplete ones become refusals,
        unless a newer verified set has since reused their keys (left over after compaction)."""
        for (p, _sid), pend in sorted(self._pending.items(), key=lambda it: it[1].first_offset):
            first = pend.pieces[min(pend.pieces)]
            missing = sorted(set(range(pend.count)) - set(pend.pieces))
            if self._superseded(first, missing):
                log.debug("%s: left-over chunks of a replaced snapshot", first.key)
                continue
            shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
            self._refuse(
                p,
                first.key,
                first.offset,
                f"refused: an incomplete snapshot: chunk(s) {shown} of {pend.count} missing",
            )
        self._pending.clear()
        out: dict[int, list[SnapshotSet]] = {}
        for p, heap in self._sets.items():
            out[p] = [snap for *_, snap in sorted(heap, key=lambda it: it[:3], reverse=True)]
        if self.partitions is not None:
            for p in self.partitions:
                out.setdefault(p, [])
        return out
