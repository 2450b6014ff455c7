"""The global log of a store: signed checkpoints, consistency and inclusion proofs.

Every audit record a store writes gets a global position (``gseq``, from 1) in the same
transaction as the step, and is a leaf of one Merkle tree (:mod:`.merkle`) over the whole
store: the leaf is ``leaf_hash(canonical_json([instance, seq, hash]))``, and the record's
``hash`` already covers its payload and its place in its instance's chain. A
:class:`Checkpoint` is a signed tree head — size, root, time — that can be kept off the
machine. :func:`verify_log` then proves that the log still holds every record a checkpoint
covered, unchanged and in the same order (a consistency proof from the checkpoint's tree to
today's), and names the first missing or altered record: a global position with no record,
a position held twice, an instance's records out of order, or the newest records gone. A
record replaced with one of the same shape is named by the range between the last checkpoint
that still verifies and the first that does not. :func:`prove` gives the inclusion proof of
one record, so one step can be shown to an auditor without the whole log.

What this does not promise: records deleted before the first checkpoint left the machine
cannot be told from records never written, and whoever holds the signing key can sign any
tree head.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .codec import canonical_json
from .errors import ExecutionError
from .merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from .store import LogEntry, Store

if TYPE_CHECKING:
    from railguard.verifier.keys import SigningKey, TrustSet

__all__ = [
    "CHECKPOINT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "Checkpointer",
    "InclusionProof",
    "LogProblem",
    "LogReport",
    "leaf",
    "load_checkpoint",
    "make_checkpoint",
    "prove",
    "verify_log",
]

CHECKPOINT_VERSION = 1
SIGNATURE_DOMAIN = "checkpoint v1"


class CheckpointError(ExecutionError):
    """A checkpoint file is unreadable or malformed, or a record to prove does not exist."""


def leaf(entry: LogEntry) -> bytes:
    """The leaf hash of one record in the global tree."""
    return leaf_hash(canonical_json([entry.instance, entry.seq, entry.hash]).encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the first ``size`` records of the global log have Merkle root ``root``
    (hex), as of ``time`` (ISO 8601, UTC); signed by ``key_id`` when ``signature`` is set."""

    size: int
    root: str
    time: str
    key_id: str | None = None
    signature: str | None = field(default=None, repr=False)

    def signed_text(self) -> str:
        """What the signature covers: size, root, time and key id."""
        return canonical_json({"size": self.size, "root": self.root, "time": self.time, "key_id": self.key_id})

    def signed(self, key: SigningKey) -> Checkpoint:
        named = replace(self, key_id=key.id, signature=None)
        return replace(named, signature=key.sign(SIGNATURE_DOMAIN, named.signed_text()))

    def check(self, trusted: TrustSet) -> str | None:
        """``None`` if signed by a key of ``trusted``; else why not."""
        return trusted.check(SIGNATURE_DOMAIN, self.signed_text(), self.key_id, self.signature)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"railguard_checkpoint": CHECKPOINT_VERSION, "size": self.size, "root": self.root, "time": self.time}
        if self.key_id is not None:
            data["key_id"], data["signature"] = self.key_id, self.signature
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: object) -> Checkpoint:
        if not isinstance(data, dict) or data.get("railguard_checkpoint") != CHECKPOINT_VERSION:
            raise CheckpointError(f"this is not a railguard checkpoint of version {CHECKPOINT_VERSION}")
        size, tree_root, when = data.get("size"), data.get("root"), data.get("time")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise CheckpointError("the checkpoint's `size` must be a non-negative integer")
        if not isinstance(tree_root, str) or len(tree_root) != 64 or not _hex(tree_root):
            raise CheckpointError("the checkpoint's `root` must be 64 hex digits")
        if not isinstance(when, str):
            raise CheckpointError("the checkpoint's `time` must be a string")
        key, signature = data.get("key_id"), data.get("signature")
        if not isinstance(key, str | None) or not isinstance(signature, str | None):
            raise CheckpointError("the checkpoint's `key_id` and `signature` must be strings")
        return cls(size, tree_root, when, key, signature)


def _hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint file; CheckpointError if it is unusable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else "not JSON"
        raise CheckpointError(f"cannot read the checkpoint `{os.fspath(path)}`: {reason}") from None
    return Checkpoint.from_json(data)


def make_checkpoint(store: Store, key: SigningKey | None = None, now: datetime | None = None) -> Checkpoint:
    """The tree head of ``store``'s global log as it is now (signed by ``key``, if given)."""
    leaves = [leaf(e) for e in store.log_entries()]
    when = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    head = Checkpoint(len(leaves), root(leaves).hex(), when)
    return head if key is None else head.signed(key)


@dataclass(frozen=True, slots=True)
class LogProblem:
    """The first missing or altered record: its global position, and its instance and
    position in that instance's chain when they are known."""

    gseq: int
    reason: str
    instance: str | None = None
    seq: int | None = None

    def __str__(self) -> str:
        where = f" (instance `{self.instance}`, record {self.seq})" if self.instance is not None else ""
        return f"global record {self.gseq}{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class LogReport:
    """What :func:`verify_log` found: the log's size, how many checkpoints it was proved
    consistent with, and the first problem (``None`` if there is none)."""

    size: int
    checkpoints: int
    problem: LogProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _internal(entries: Sequence[LogEntry], legacy: bool) -> LogProblem | None:
    """Gaps, duplicates and out-of-order records, found from the log alone."""
    last: dict[str, int] = {}
    for position, entry in enumerate(entries, 1):
        if entry.gseq > position:
            span = f"records {position} to {entry.gseq - 1} are" if entry.gseq - 1 > position else "it is"
            return LogProblem(position, f"it is missing: the global log skips from {position - 1} to {entry.gseq} ({span} gone)")
        if entry.gseq < position:
            return LogProblem(entry.gseq, "its global position is held by two records", entry.instance, entry.seq)
        before = last.get(entry.instance)
        expected = (entry.seq if legacy else 1) if before is None else before + 1
        if entry.seq != expected:
            if entry.seq < expected:
                reason = f"it is out of order: record {entry.seq} of its instance comes after record {before} in the global log"
            else:
                reason = f"record {expected} of its instance, which should come before it, is missing from the global log"
            return LogProblem(entry.gseq, reason, entry.instance, entry.seq)
        last[entry.instance] = entry.seq
    return None


def verify_log(store: Store, checkpoints: Sequence[Checkpoint] = (), trusted: TrustSet | None = None) -> LogReport:
    """Check ``store``'s global log on its own (no gap, no duplicate, each instance's records
    in order) and against each of ``checkpoints`` (a consistency proof from its tree to
    today's); with ``trusted``, each checkpoint must be signed by a trusted key."""
    entries = store.log_entries()
    n = len(entries)
    found = _internal(entries, legacy=store.unlogged() > 0)
    if found is not None:
        return LogReport(n, 0, found)
    leaves = [leaf(e) for e in entries]
    current = root(leaves)
    proved, good = 0, 0
    for head in sorted(checkpoints, key=lambda c: c.size):
        if trusted is not None:
            why = head.check(trusted)
            if why is not None:
                return LogReport(n, proved, LogProblem(head.size, f"the checkpoint of {head.time} is not vouched for: {why}"))
        if head.size > n:
            span = f"records {n + 1} to {head.size} are" if head.size > n + 1 else "it is"
            return LogReport(n, proved, LogProblem(n + 1, f"it is missing: the checkpoint of {head.time} covered {head.size} records and the log has {n} ({span} gone)"))
        proof = consistency_proof(head.size, leaves)
        if not verify_consistency(head.size, n, bytes.fromhex(head.root), current, proof):
            first = entries[good] if good < n else None
            reason = (
                f"the records from here to global record {head.size} no longer hash to the root of the checkpoint of {head.time}: "
                "one of them was altered, replaced or reordered"
            )
            return LogReport(n, proved, LogProblem(good + 1, reason, first.instance if first else None, first.seq if first else None))
        proved += 1
        good = head.size
    return LogReport(n, proved, None)


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """That the record ``instance``/``seq`` (global position ``gseq``, hash ``hash``) is leaf
    ``gseq - 1`` of the tree of ``size`` records with root ``root``: the audit ``path`` (hex)."""

    gseq: int
    instance: str
    seq: int
    hash: str
    size: int
    root: str
    path: tuple[str, ...]

    def verify(self) -> bool:
        entry = LogEntry(self.gseq, self.instance, self.seq, self.hash)
        return verify_inclusion(self.gseq - 1, self.size, leaf(entry), [bytes.fromhex(p) for p in self.path], bytes.fromhex(self.root))

    def to_json(self) -> dict[str, Any]:
        return {
            "gseq": self.gseq, "instance": self.instance, "seq": self.seq, "hash": self.hash,
            "size": self.size, "root": self.root, "path": list(self.path),
        }


def prove(store: Store, instance: str, seq: int, size: int | None = None) -> InclusionProof:
    """The inclusion proof of record ``seq`` of ``instance`` in the tree of the first ``size``
    records (default: the whole log); CheckpointError if it is not in that tree."""
    entries = store.log_entries()
    size = len(entries) if size is None else size
    for index, entry in enumerate(entries[:size]):
        if entry.instance == instance and entry.seq == seq:
            leaves = [leaf(e) for e in entries[:size]]
            path = tuple(p.hex() for p in inclusion_proof(index, leaves))
            return InclusionProof(entry.gseq, instance, seq, entry.hash, size, root(leaves).hex(), path)
    raise CheckpointError(f"record {seq} of instance `{instance}` is not among the first {size} records of the global log")


Sink = Callable[[Checkpoint], object]


class Checkpointer:
    """Writes a checkpoint after every ``every`` records the engine commits, or once
    ``seconds`` have passed since the last one (checked as records are committed; an idle
    engine writes none, having nothing new to cover), to a folder
    (``checkpoint-<size>.json``) or to a callable that ships it off the machine.

    Give it to the engine (``Engine(..., checkpoints=Checkpointer(...))``); it is called after
    each commit, never inside one: a sink that fails raises from the call whose commit made
    the checkpoint due, and that step stays committed."""

    def __init__(
        self,
        to: str | os.PathLike[str] | Sink,
        *,
        every: int | None = 1000,
        seconds: float | None = None,
        key: SigningKey | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every is None and seconds is None:
            raise ExecutionError("a checkpointer needs `every` records or `seconds`, or both")
        self.to = to
        self.every = every
        self.seconds = seconds
        self.key = key
        self.clock = clock
        self.pending = 0
        self.last = clock()
        #: the last checkpoint written
        self.latest: Checkpoint | None = None

    def committed(self, store: Store, records: int) -> Checkpoint | None:
        """Count ``records`` just committed; write a checkpoint if one is due."""
        self.pending += records
        due = (self.every is not None and self.pending >= self.every) or (
            self.seconds is not None and self.clock() - self.last >= self.seconds
        )
        return self.write(store) if due and self.pending else None

    def write(self, store: Store) -> Checkpoint:
        """Write a checkpoint now."""
        head = make_checkpoint(store, self.key)
        if callable(self.to):
            self.to(head)
        else:
            folder = Path(self.to)
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"checkpoint-{head.size:012d}.json"
            temporary = folder / f".{target.name}.{os.getpid()}.tmp"  # workers may share the folder
            temporary.write_text(head.dumps(), encoding="utf-8")
            os.replace(temporary, target)
        self.pending = 0
        self.last = self.clock()
        self.latest = head
        return head
