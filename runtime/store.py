"""The store interface: instances, their audit chains and due work, behind one protocol.

A store commits an instance's new state, variables and version *in the same transaction* as
the audit records of that step, with optimistic versioning (``expected_version``): if another
writer got there first, nothing is written and :class:`~railguard.runtime.errors.ConflictError`
is raised. Due work (timeouts, effects to resume) is claimed with a lease so that a crashed
worker's claims expire and another worker resumes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .audit import AuditRecord
from .codec import canonical_json

__all__ = ["InstanceRow", "LogEntry", "NewTimer", "Store", "Timer", "decode_row", "encode_changes", "encode_row", "json_column", "make_row", "values_json"]


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """An instance as stored. ``values``/``context`` are JSON-ready (see :mod:`.codec`).

    ``status`` is ``active``, ``effect-pending`` (an effect's outcome is not yet recorded),
    ``compensating`` (running owed compensations), ``stuck`` (a compensation could not complete:
    an operator must act) or ``done`` (resting in a terminal state).
    """

    id: str
    workflow: str
    spec_hash: str
    state: str
    values: dict[str, Any]
    version: int
    status: str
    audit_head: str
    context: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, Any] | None = None
    compensations: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    #: The canonical JSON of ``values``, with the values object it was made from (the engine
    #: sets it when it commits, having encoded the values for the row digest already); used
    #: only while ``values`` is still that very object — a copy made with other values, by
    #: ``dataclasses.replace`` say, is encoded afresh. Never set from what a store reads.
    encoded: tuple[Mapping[str, Any], str] | None = field(default=None, compare=False, repr=False)


_new = object.__new__
_SET_ROW = tuple(InstanceRow.__dict__[name].__set__ for name in InstanceRow.__dataclass_fields__)


def make_row(
    id: str, workflow: str, spec_hash: str, state: str, values: dict[str, Any], version: int, status: str, audit_head: str,
    context: dict[str, Any], pending: dict[str, Any] | None, compensations: list[dict[str, Any]], created_at: float, updated_at: float,
    encoded: tuple[Mapping[str, Any], str] | None,
) -> InstanceRow:
    """``InstanceRow(...)`` with every field given, made through its slots: the same frozen
    value at about half the cost of the dataclass ``__init__`` (which sets each field through
    ``object.__setattr__``); the engine makes one per step."""
    row: InstanceRow = _new(InstanceRow)
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13 = _SET_ROW
    s0(row, id)
    s1(row, workflow)
    s2(row, spec_hash)
    s3(row, state)
    s4(row, values)
    s5(row, version)
    s6(row, status)
    s7(row, audit_head)
    s8(row, context)
    s9(row, pending)
    s10(row, compensations)
    s11(row, created_at)
    s12(row, updated_at)
    s13(row, encoded)
    return row


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One record's place in the store's global log: its position ``gseq`` (from 1, assigned
    in the transaction that wrote it), instance, position in that instance's chain, and hash."""

    gseq: int
    instance: str
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class NewTimer:
    """Work to do at ``due_at`` (epoch seconds): ``kind`` is ``timeout`` or ``resume``."""

    instance: str
    kind: str
    due_at: float
    version: int
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Timer:
    """A claimed piece of due work."""

    id: int
    instance: str
    kind: str
    due_at: float
    version: int
    payload: dict[str, Any]


class Store(Protocol):
    """What the engine needs from durable storage."""

    def create(self, row: InstanceRow, records: Sequence[AuditRecord], timers: Sequence[NewTimer] = ()) -> None:
        """Insert a new instance with its first audit records; InstanceExists if the id is taken."""
        ...

    def get(self, instance: str) -> InstanceRow | None:
        """The instance's current row, or None."""
        ...

    def commit(
        self,
        row: InstanceRow,
        expected_version: int,
        records: Sequence[AuditRecord],
        timers: Sequence[NewTimer] = (),
        cancel: Sequence[str] = (),
    ) -> None:
        """Replace the instance row (if its version is still ``expected_version``), append the
        audit records, add timers and cancel the instance's pending timers of the ``cancel``
        kinds — all in one transaction; ConflictError if the version moved."""
        ...

    def audit(self, instance: str | None = None) -> list[AuditRecord]:
        """Audit records of one instance (or all), ordered by instance then position."""
        ...

    def instances(self) -> list[str]:
        """Every instance id, in creation order."""
        ...

    def log_entries(self) -> list[LogEntry]:
        """Every record's entry in the global log, by global position."""
        ...

    def unlogged(self) -> int:
        """How many audit records have no global position (written before the global log, or
        by a store opened with ``global_log=False``)."""
        ...

    def claim_due(self, now: float, lease: float, limit: int = 10, worker: str = "") -> list[Timer]:
        """Claim up to ``limit`` timers due at ``now`` for ``lease`` seconds (skipping ones
        another worker holds)."""
        ...

    def finish_timer(self, timer_id: int) -> None:
        """Mark a claimed timer done."""
        ...

    def close(self) -> None: ...


def encode_row(row: InstanceRow) -> tuple[Any, ...]:
    """The row as column values, in table order (JSON fields as the codec's canonical text):
    what both stores write."""
    changes = encode_changes(row)
    return (row.id, *changes[:-1], row.created_at, changes[-1])


def encode_changes(row: InstanceRow) -> tuple[Any, ...]:
    """The columns a commit may change — workflow, spec hash, state, values, version, status,
    audit head, context, pending, compensations, updated_at — encoded as :func:`encode_row`
    encodes them (identity and creation time never change; workflow, spec hash and context
    change only when an instance is migrated to another spec)."""
    return (
        row.workflow,
        row.spec_hash,
        row.state,
        values_json(row),
        row.version,
        row.status,
        row.audit_head,
        json_column(row.context),
        None if row.pending is None else json_column(row.pending),
        json_column(row.compensations),
        row.updated_at,
    )


def values_json(row: InstanceRow) -> str:
    """The canonical JSON of the row's variables (the text the engine encoded when it made
    the row, while ``values`` is still the object it encoded)."""
    encoded = row.encoded
    if encoded is not None and encoded[0] is row.values:
        return encoded[1]
    return json_column(row.values)


def json_column(value: Any) -> str:
    """A JSON column's text: the codec's canonical JSON (empty containers, the common case of
    pending work, owed compensations and context, as constants)."""
    if not value:
        if isinstance(value, list):
            return "[]"
        if isinstance(value, dict):
            return "{}"
    return canonical_json(value)


def decode_row(r: Sequence[Any]) -> InstanceRow:
    """The inverse of :func:`encode_row`."""
    return InstanceRow(
        id=r[0],
        workflow=r[1],
        spec_hash=r[2],
        state=r[3],
        values=json.loads(r[4]),
        version=r[5],
        status=r[6],
        audit_head=r[7],
        context=json.loads(r[8]),
        pending=None if r[9] is None else json.loads(r[9]),
        compensations=json.loads(r[10]),
        created_at=r[11],
        updated_at=r[12],
    )
