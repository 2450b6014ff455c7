"""The embedded default store: SQLite in WAL mode.

Durability is explicit: ``synchronous="FULL"`` (the default) makes every committed step
survive a process crash *and* a power loss; ``"NORMAL"`` survives a process crash but may
lose the last steps on power loss (faster). Writers take the database lock up front
(``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` seconds for it, so several processes
can share one file. Audit records are protected by triggers that refuse UPDATE and DELETE.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal

from .audit import AuditRecord
from .errors import ConflictError, InstanceExists, StoreError
from .sqlstore import SQLStore, audit_records, record_params, timer_params, timers_from
from .store import InstanceRow, LogEntry, NewTimer, Timer, decode_row, json_column, values_json

__all__ = ["SQLiteStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    vals TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    audit_head TEXT NOT NULL,
    context TEXT NOT NULL,
    pending TEXT,
    compensations TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    instance TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    gseq INTEGER,
    PRIMARY KEY (instance, seq)
);
CREATE TABLE IF NOT EXISTS timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance TEXT NOT NULL,
    kind TEXT NOT NULL,
    due_at REAL NOT NULL,
    version INTEGER NOT NULL,
    payload TEXT NOT NULL,
    claimed_until REAL,
    claimed_by TEXT,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (done, due_at);
CREATE INDEX IF NOT EXISTS timers_instance ON timers (instance, done);
CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
"""

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


#: The row's changed columns (:func:`~railguard.runtime.store.encode_changes`) if its version
#: is still the one the engine read. Identity and creation time never change (workflow, spec
#: hash and context only by a migration).
UPDATE = (
    "UPDATE instances SET workflow=?, spec_hash=?, state=?, vals=?, version=?, status=?, audit_head=?, "
    "context=?, pending=?, compensations=?, updated_at=? WHERE id=? AND version=?"
)
#: One audit record with the next global position, taken in the same statement under the
#: database lock ``BEGIN IMMEDIATE`` holds, so concurrent writers never leave a gap or a
#: duplicate (each row of an ``executemany`` sees the ones before it).
APPEND_LOGGED = "INSERT INTO audit VALUES (?,?,?,?,?,(SELECT COALESCE(MAX(gseq), 0) + 1 FROM audit))"
APPEND = "INSERT INTO audit VALUES (?,?,?,?,?,NULL)"


class SQLiteStore(SQLStore[sqlite3.Connection]):
    """A store in one SQLite file (``":memory:"`` for a private in-memory database).

    ``readonly=True`` opens an existing store without writing to it (no tables or triggers
    are created; every write fails), as ``railguard audit verify`` does."""

    def __init__(
        self,
        path: str | os.PathLike[str] = "railguard.db",
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 30.0,
        readonly: bool = False,
        global_log: bool = True,
    ) -> None:
        self.path = os.fspath(path)
        self.synchronous = synchronous
        self.readonly = readonly
        self.global_log = global_log
        try:
            if readonly:
                uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout, check_same_thread=False)
                found = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not {"instances", "audit"} <= found:
                    self._db.close()
                    raise StoreError(f"`{self.path}` is not a railguard store: it has no instances and audit tables")
            else:
                self._db = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(f"PRAGMA synchronous={synchronous}")
                self._db.executescript(SCHEMA)
                columns = {r[1] for r in self._db.execute("PRAGMA table_info(audit)")}
                if "gseq" not in columns:  # a store made before the global log
                    self._db.execute("ALTER TABLE audit ADD COLUMN gseq INTEGER")
                self._db.execute("CREATE UNIQUE INDEX IF NOT EXISTS audit_gseq ON audit (gseq)")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite store `{self.path}`: {exc}") from None
        self._lock = threading.RLock()

    def _transaction(self, doing: str = "") -> _Write:
        if self.readonly:
            raise StoreError(f"the SQLite store `{self.path}` was opened read-only")
        return _Write(self)

    # ------------------------------------------------------------------ instances

    def _insert_instance(self, db: sqlite3.Connection, instance: str, columns: tuple[Any, ...]) -> None:
        try:
            db.execute("INSERT INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", columns)
        except sqlite3.IntegrityError:
            raise InstanceExists(f"instance `{instance}` already exists") from None

    def get(self, instance: str) -> InstanceRow | None:
        with self._lock:
            found = self._db.execute("SELECT * FROM instances WHERE id = ?", (instance,)).fetchone()
        return None if found is None else decode_row(found)

    def commit(
        self,
        row: InstanceRow,
        expected_version: int,
        records: Sequence[AuditRecord],
        timers: Sequence[NewTimer] = (),
        cancel: Sequence[str] = (),
    ) -> None:
        """:meth:`SQLStore.commit <railguard.runtime.sqlstore.SQLStore.commit>` — the same
        statements with the same parameters in the same order, in one ``BEGIN IMMEDIATE``
        transaction rolled back on any failure — with the transaction and the column encoding
        inlined: once per step, the Python between SQLite's four statements (``BEGIN``, the row
        ``UPDATE``, the audit ``INSERT``, ``COMMIT``) is only the building of their parameters."""
        if self.readonly:
            raise StoreError(f"the SQLite store `{self.path}` was opened read-only")
        db = self._db
        pending = row.pending
        params = (
            row.workflow, row.spec_hash, row.state, values_json(row), row.version, row.status, row.audit_head,
            json_column(row.context), None if pending is None else json_column(pending), json_column(row.compensations),
            row.updated_at, row.id, expected_version,
        )  # encode_changes(row), then the id and the version the engine read
        with self._lock:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot lock the SQLite store `{self.path}`: {exc}") from None
            try:
                if db.execute(UPDATE, params).rowcount != 1:
                    raise ConflictError(f"instance `{row.id}` changed since version {expected_version}")
                if cancel:
                    self._cancel_timers(db, row.id, cancel)
                if len(records) == 1 and self.global_log:
                    (r,) = records
                    db.execute(APPEND_LOGGED, (r.instance, r.seq, r.payload_json(), r.prev_hash, r.hash))
                else:
                    self._append(db, records)
                if timers:
                    self._add_timers(db, timer_params(timers))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.Error as error:
                db.execute("ROLLBACK")
                raise StoreError(f"cannot commit to the SQLite store `{self.path}`: {error}") from None

    def _update_instance(self, db: sqlite3.Connection, params: tuple[Any, ...]) -> int:
        return db.execute(UPDATE, params).rowcount

    def _cancel_timers(self, db: sqlite3.Connection, instance: str, kinds: Sequence[str]) -> None:
        marks = ",".join("?" for _ in kinds)
        db.execute(f"UPDATE timers SET done = 1 WHERE instance = ? AND done = 0 AND kind IN ({marks})", (instance, *kinds))

    def _append(self, db: sqlite3.Connection, records: Sequence[AuditRecord]) -> None:
        statement = APPEND_LOGGED if self.global_log else APPEND
        if len(records) == 1:  # the common case, without executemany's setup
            (r,) = records
            db.execute(statement, (r.instance, r.seq, r.payload_json(), r.prev_hash, r.hash))
        elif records:
            db.executemany(statement, [params[:5] for params in record_params(records, None)])

    def log_entries(self) -> list[LogEntry]:
        with self._lock:
            rows = self._db.execute("SELECT gseq, instance, seq, hash FROM audit WHERE gseq IS NOT NULL ORDER BY gseq").fetchall()
        return [LogEntry(*r) for r in rows]

    def unlogged(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM audit WHERE gseq IS NULL").fetchone()[0])

    def _add_timers(self, db: sqlite3.Connection, params: list[tuple[Any, ...]]) -> None:
        db.executemany("INSERT INTO timers (instance, kind, due_at, version, payload) VALUES (?,?,?,?,?)", params)

    def audit(self, instance: str | None = None) -> list[AuditRecord]:
        with self._lock:
            if instance is None:
                rows = self._db.execute(
                    "SELECT a.instance, a.seq, a.payload, a.prev_hash, a.hash FROM audit a JOIN instances i ON i.id = a.instance ORDER BY i.rowid, a.seq"
                ).fetchall()
                orphans = self._db.execute(
                    "SELECT instance, seq, payload, prev_hash, hash FROM audit WHERE instance NOT IN (SELECT id FROM instances) ORDER BY instance, seq"
                ).fetchall()
                rows = rows + orphans
            else:
                rows = self._db.execute("SELECT instance, seq, payload, prev_hash, hash FROM audit WHERE instance = ? ORDER BY seq", (instance,)).fetchall()
        return audit_records(rows)

    def instances(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM instances ORDER BY rowid")]

    # ------------------------------------------------------------------ due work

    def claim_due(self, now: float, lease: float, limit: int = 10, worker: str = "") -> list[Timer]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, instance, kind, due_at, version, payload FROM timers "
                "WHERE done = 0 AND due_at <= ? AND (claimed_until IS NULL OR claimed_until < ?) "
                "ORDER BY due_at, id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE timers SET claimed_until = ?, claimed_by = ? WHERE id = ?",
                [(now + lease, worker, r[0]) for r in rows],
            )
        return timers_from(rows)

    def finish_timer(self, timer_id: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE timers SET done = 1 WHERE id = ?", (timer_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Write:
    """One write transaction on a store's connection, under its lock: ``BEGIN IMMEDIATE``
    (waiting up to ``busy_timeout`` for the database lock), ``COMMIT`` when the block ends,
    ``ROLLBACK`` if it raises or the commit fails. (A class, not a generator: it is entered
    once per step.)"""

    __slots__ = ("_store",)

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def __enter__(self) -> sqlite3.Connection:
        store = self._store
        store._lock.acquire()
        try:
            store._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            store._lock.release()
            raise StoreError(f"cannot lock the SQLite store `{store.path}`: {exc}") from None
        except BaseException:
            store._lock.release()
            raise
        return store._db

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        store = self._store
        db = store._db
        try:
            if kind is not None:
                db.execute("ROLLBACK")
                return
            try:
                db.execute("COMMIT")
            except sqlite3.Error as error:
                db.execute("ROLLBACK")
                raise StoreError(f"cannot commit to the SQLite store `{store.path}`: {error}") from None
        finally:
            store._lock.release()
