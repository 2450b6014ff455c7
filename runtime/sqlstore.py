"""What the SQL stores (SQLite and PostgreSQL) share: how a step is written and how rows read
back become records, rows and timers.

:class:`SQLStore` writes a new instance and commits a step in one transaction each, in the
same order on every dialect: the instance row (a commit only if its version is still the one
the engine read: otherwise :class:`~railguard.runtime.errors.ConflictError` and nothing is
written), the timers it cancels, its audit records with their global log positions, the
timers it adds. A dialect supplies the transaction and the statements (:class:`SQLStore`'s
``_``-methods); the columns come from :func:`~railguard.runtime.store.encode_row` and
:func:`~railguard.runtime.store.encode_changes`, so both stores write the same text.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from .audit import AuditRecord
from .codec import canonical_json
from .errors import ConflictError, UnreadableRecord
from .store import InstanceRow, NewTimer, Timer, encode_changes, encode_row

__all__ = ["SQLStore", "audit_records", "record_params", "timer_params", "timers_from"]

#: What a dialect's transaction hands its statements: a connection or a cursor.
Handle = TypeVar("Handle")


class SQLStore(Generic[Handle]):
    """The create and commit sequence of a SQL store; the dialect supplies the rest."""

    def create(self, row: InstanceRow, records: Sequence[AuditRecord], timers: Sequence[NewTimer] = ()) -> None:
        """Insert a new instance with its first audit records and timers, in one transaction;
        InstanceExists if the id is taken."""
        with self._transaction(f"creating instance `{row.id}`") as handle:
            self._insert_instance(handle, row.id, encode_row(row))
            self._append(handle, records)
            if timers:
                self._add_timers(handle, timer_params(timers))

    def commit(
        self,
        row: InstanceRow,
        expected_version: int,
        records: Sequence[AuditRecord],
        timers: Sequence[NewTimer] = (),
        cancel: Sequence[str] = (),
    ) -> None:
        """Replace the instance row if its version is still ``expected_version``, cancel its
        pending timers of the ``cancel`` kinds, append ``records`` and add ``timers`` — in one
        transaction; ConflictError (nothing written) if the version moved."""
        with self._transaction(f"committing instance `{row.id}`") as handle:
            if self._update_instance(handle, (*encode_changes(row), row.id, expected_version)) != 1:
                raise ConflictError(f"instance `{row.id}` changed since version {expected_version}")
            if cancel:
                self._cancel_timers(handle, row.id, cancel)
            self._append(handle, records)
            if timers:
                self._add_timers(handle, timer_params(timers))

    # ------------------------------------------------------------------ the dialect

    @abstractmethod
    def _transaction(self, doing: str) -> AbstractContextManager[Handle]:
        """One write transaction (``doing`` says what for, in error messages): committed when
        the block ends, rolled back if it raises."""

    @abstractmethod
    def _insert_instance(self, handle: Handle, instance: str, columns: tuple[Any, ...]) -> None:
        """Insert the row's columns (table order); InstanceExists if ``instance`` is taken."""

    @abstractmethod
    def _update_instance(self, handle: Handle, params: tuple[Any, ...]) -> int:
        """Update the changed columns of the row (:func:`encode_changes`, then its id and the
        expected version); how many rows changed."""

    @abstractmethod
    def _cancel_timers(self, handle: Handle, instance: str, kinds: Sequence[str]) -> None:
        """Mark the instance's pending timers of ``kinds`` done."""

    @abstractmethod
    def _append(self, handle: Handle, records: Sequence[AuditRecord]) -> None:
        """Insert the records, each with its global log position (unless the global log is off)."""

    @abstractmethod
    def _add_timers(self, handle: Handle, params: list[tuple[Any, ...]]) -> None:
        """Insert timers given as :func:`timer_params`."""


def record_params(records: Sequence[AuditRecord], start: int | None) -> list[tuple[Any, ...]]:
    """The audit rows of ``records`` — instance, seq, payload (the exact text that was hashed),
    previous hash, hash and global position (from ``start``; None with the global log off)."""
    return [(r.instance, r.seq, r.payload_json(), r.prev_hash, r.hash, None if start is None else start + i) for i, r in enumerate(records)]


def timer_params(timers: Sequence[NewTimer]) -> list[tuple[Any, ...]]:
    """The timers' columns: instance, kind, due time, version, payload (canonical JSON)."""
    return [(t.instance, t.kind, t.due_at, t.version, canonical_json(t.payload)) for t in timers]


def audit_records(rows: Iterable[Sequence[Any]]) -> list[AuditRecord]:
    """Records from rows of (instance, seq, payload, prev_hash, hash); UnreadableRecord for a
    payload that is not a JSON object."""
    records = []
    for r in rows:
        try:
            payload = json.loads(r[2])
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise UnreadableRecord(r[0], int(r[1]))
        records.append(AuditRecord(r[0], int(r[1]), payload, r[3], r[4]))
    return records


def timers_from(rows: Iterable[Sequence[Any]]) -> list[Timer]:
    """Timers from rows of (id, instance, kind, due_at, version, payload)."""
    return [Timer(int(r[0]), r[1], r[2], float(r[3]), int(r[4]), json.loads(r[5])) for r in rows]
