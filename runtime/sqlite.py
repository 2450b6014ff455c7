"""The embedded default store: SQLite in WAL mode.

Durability is explicit: ``synchronous="FULL"`` (the default) makes every committed step
survive a process crash *and* a power loss; ``"NORMAL"`` survives a process crash but may
lose the last steps on power loss (faster). Writers take the database lock up front
(``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` seconds for it, so several processes
can share one file. Audit records are protected by triggers that refuse UPDATE and DELETE.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

from .audit import AuditRecord
from .codec import canonical_json
from .errors import ConflictError, InstanceExists, StoreError, UnreadableRecord
from .store import InstanceRow, LogEntry, NewTimer, Timer, decode_row, encode_changes, encode_row

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


class SQLiteStore:
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

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StoreError(f"the SQLite store `{self.path}` was opened read-only")
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot lock the SQLite store `{self.path}`: {exc}") from None
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            else:
                try:
                    db.execute("COMMIT")
                except sqlite3.Error as exc:
                    db.execute("ROLLBACK")
                    raise StoreError(f"cannot commit to the SQLite store `{self.path}`: {exc}") from None

    # ------------------------------------------------------------------ instances

    def create(self, row: InstanceRow, records: Sequence[AuditRecord], timers: Sequence[NewTimer] = ()) -> None:
        with self._write() as db:
            try:
                db.execute(
                    "INSERT INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    encode_row(row),
                )
            except sqlite3.IntegrityError:
                raise InstanceExists(f"instance `{row.id}` already exists") from None
            self._append(db, records)
            self._add_timers(db, timers)

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
        with self._write() as db:
            changed = db.execute(
                # Identity and creation time never change (workflow, spec hash and context
                # only by a migration).
                "UPDATE instances SET workflow=?, spec_hash=?, state=?, vals=?, version=?, status=?, audit_head=?, "
                "context=?, pending=?, compensations=?, updated_at=? WHERE id=? AND version=?",
                (*encode_changes(row), row.id, expected_version),
            ).rowcount
            if changed != 1:
                raise ConflictError(f"instance `{row.id}` changed since version {expected_version}")
            if cancel:
                marks = ",".join("?" for _ in cancel)
                db.execute(f"UPDATE timers SET done = 1 WHERE instance = ? AND done = 0 AND kind IN ({marks})", (row.id, *cancel))
            self._append(db, records)
            self._add_timers(db, timers)

    def _append(self, db: sqlite3.Connection, records: Sequence[AuditRecord]) -> None:
        # The global position is taken inside the write transaction (BEGIN IMMEDIATE holds the
        # database lock), so concurrent writers never leave a gap or a duplicate.
        start = None
        if self.global_log:
            start = db.execute("SELECT COALESCE(MAX(gseq), 0) FROM audit").fetchone()[0] + 1
        if len(records) == 1:  # the common case, without executemany's setup
            (r,) = records
            db.execute("INSERT INTO audit VALUES (?,?,?,?,?,?)", (r.instance, r.seq, r.payload_json(), r.prev_hash, r.hash, start))
            return
        db.executemany(
            "INSERT INTO audit VALUES (?,?,?,?,?,?)",
            [(r.instance, r.seq, r.payload_json(), r.prev_hash, r.hash, None if start is None else start + i) for i, r in enumerate(records)],
        )

    def log_entries(self) -> list[LogEntry]:
        with self._lock:
            rows = self._db.execute("SELECT gseq, instance, seq, hash FROM audit WHERE gseq IS NOT NULL ORDER BY gseq").fetchall()
        return [LogEntry(*r) for r in rows]

    def unlogged(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM audit WHERE gseq IS NULL").fetchone()[0])

    def _add_timers(self, db: sqlite3.Connection, timers: Sequence[NewTimer]) -> None:
        if not timers:
            return
        db.executemany(
            "INSERT INTO timers (instance, kind, due_at, version, payload) VALUES (?,?,?,?,?)",
            [(t.instance, t.kind, t.due_at, t.version, canonical_json(t.payload)) for t in timers],
        )

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
        records = []
        for r in rows:
            try:
                payload = json.loads(r[2])
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                raise UnreadableRecord(r[0], r[1])
            records.append(AuditRecord(r[0], r[1], payload, r[3], r[4]))
        return records

    def instances(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM instances ORDER BY rowid")]

    # ------------------------------------------------------------------ due work

    def claim_due(self, now: float, lease: float, limit: int = 10, worker: str = "") -> list[Timer]:
        with self._write() as db:
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
        return [Timer(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def finish_timer(self, timer_id: int) -> None:
        with self._write() as db:
            db.execute("UPDATE timers SET done = 1 WHERE id = ?", (timer_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
