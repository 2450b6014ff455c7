"""A store in PostgreSQL, for many worker processes on many machines.

Everything lives in one schema (``railguard`` by default; created with its tables on first
use). Each call is one transaction. Steps use optimistic versioning (``UPDATE ... WHERE id
AND version``), so concurrent writers to one instance never both succeed; due work is
claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and a lease, so workers never claim the
same timer at once and a crashed worker's claims expire. Audit payloads are stored as the
exact text that was hashed, and a trigger refuses UPDATE, DELETE and TRUNCATE on them.

A store object holds one connection and serialises its calls with a lock, so threads may
share it; each process opens its own (a store inherited through ``fork`` reconnects rather
than share its parent's socket). Requires ``psycopg`` 3 (``pip install railguard[postgres]``)
and PostgreSQL 11 or later. A worker needs no CREATE privilege once the schema exists.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from .audit import AuditRecord
from .errors import InstanceExists, StoreError
from .sqlstore import SQLStore, audit_records, record_params, timers_from
from .store import InstanceRow, LogEntry, Timer, decode_row

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # pragma: no cover - exercised only without the optional dependency
    psycopg = None  # type: ignore[assignment]

__all__ = ["DEFAULT_DSN", "PostgresStore"]

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
MAX_SCHEMA_NAME = 63  # PostgreSQL truncates longer identifiers silently

# `{s}` is the schema, quoted as an identifier; `%s` are query parameters.
DDL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.instances (
    id TEXT PRIMARY KEY,
    created_seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    workflow TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    vals TEXT NOT NULL,
    version BIGINT NOT NULL,
    status TEXT NOT NULL,
    audit_head TEXT NOT NULL,
    context TEXT NOT NULL,
    pending TEXT,
    compensations TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.audit (
    instance TEXT NOT NULL,
    seq BIGINT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (instance, seq)
);
ALTER TABLE {s}.audit ADD COLUMN IF NOT EXISTS gseq BIGINT UNIQUE;
CREATE TABLE IF NOT EXISTS {s}.log_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL
);
INSERT INTO {s}.log_head (id, size) SELECT 1, COALESCE(MAX(gseq), 0) FROM {s}.audit ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS {s}.timers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance TEXT NOT NULL,
    kind TEXT NOT NULL,
    due_at DOUBLE PRECISION NOT NULL,
    version BIGINT NOT NULL,
    payload TEXT NOT NULL,
    claimed_until DOUBLE PRECISION,
    claimed_by TEXT,
    done BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS timers_due ON {s}.timers (due_at, id) WHERE NOT done;
CREATE INDEX IF NOT EXISTS timers_instance ON {s}.timers (instance, kind) WHERE NOT done;
CREATE OR REPLACE FUNCTION {s}.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only (% refused)', TG_OP;
END
$$;
"""
TRIGGER = "audit_append_only"
CREATE_TRIGGER = (
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}.audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION {s}.audit_append_only()"
)

COLUMNS = "id, workflow, spec_hash, state, vals, version, status, audit_head, context, pending, compensations, created_at, updated_at"

QUERIES = {
    "insert_instance": f"INSERT INTO {{s}}.instances ({COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
    "get": f"SELECT {COLUMNS} FROM {{s}}.instances WHERE id = %s",
    # the changed columns (`encode_changes`): identity and creation time never change
    "update": (
        "UPDATE {s}.instances SET workflow=%s, spec_hash=%s, state=%s, vals=%s, version=%s, status=%s, "
        "audit_head=%s, context=%s, pending=%s, compensations=%s, updated_at=%s "
        "WHERE id=%s AND version=%s"
    ),
    "cancel": "UPDATE {s}.timers SET done = TRUE WHERE instance = %s AND NOT done AND kind = ANY(%s)",
    "append": "INSERT INTO {s}.audit (instance, seq, payload, prev_hash, hash, gseq) VALUES (%s,%s,%s,%s,%s,%s)",
    # The row lock on the one log-head row is held until the step's transaction ends, so global
    # positions are handed out in commit order with no gap (a rollback returns its numbers).
    "reserve": "UPDATE {s}.log_head SET size = size + %s WHERE id = 1 RETURNING size",
    # one record: its position reserved and the record written in one statement (one round trip)
    "append_one": (
        "WITH r AS (UPDATE {s}.log_head SET size = size + 1 WHERE id = 1 RETURNING size) "
        "INSERT INTO {s}.audit (instance, seq, payload, prev_hash, hash, gseq) SELECT %s,%s,%s,%s,%s, size FROM r"
    ),
    "log": "SELECT gseq, instance, seq, hash FROM {s}.audit WHERE gseq IS NOT NULL ORDER BY gseq",
    "unlogged": "SELECT count(*) FROM {s}.audit WHERE gseq IS NULL",
    "log_ready": "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = 'log_head'",
    "add_timer": "INSERT INTO {s}.timers (instance, kind, due_at, version, payload) VALUES (%s,%s,%s,%s,%s)",
    "audit_one": "SELECT instance, seq, payload, prev_hash, hash FROM {s}.audit WHERE instance = %s ORDER BY seq",
    # Instances in creation order, then records whose instance row is missing (by id).
    "audit_all": (
        "SELECT a.instance, a.seq, a.payload, a.prev_hash, a.hash FROM {s}.audit a "
        'LEFT JOIN {s}.instances i ON i.id = a.instance ORDER BY i.created_seq NULLS LAST, a.instance COLLATE "C", a.seq'
    ),
    "instances": "SELECT id FROM {s}.instances ORDER BY created_seq",
    # SKIP LOCKED: a timer another worker is claiming right now is skipped, not waited for; the
    # lease condition is re-checked on the locked row, so a claim committed meanwhile is seen.
    "claim": (
        "UPDATE {s}.timers t SET claimed_until = %s, claimed_by = %s FROM ("
        "SELECT id FROM {s}.timers WHERE NOT done AND due_at <= %s AND (claimed_until IS NULL OR claimed_until < %s) "
        "ORDER BY due_at, id LIMIT %s FOR UPDATE SKIP LOCKED) c "
        "WHERE t.id = c.id RETURNING t.id, t.instance, t.kind, t.due_at, t.version, t.payload"
    ),
    "finish": "UPDATE {s}.timers SET done = TRUE WHERE id = %s",
    "triggers": (
        "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'audit' AND t.tgname = %s"
    ),
}


class PostgresStore(SQLStore["psycopg.Cursor[tuple[Any, ...]]"]):
    """A store in the schema ``schema`` of the PostgreSQL database at ``dsn``."""

    def __init__(
        self, dsn: str = DEFAULT_DSN, *, schema: str = "railguard", connect_timeout: float = 10.0, readonly: bool = False, global_log: bool = True
    ) -> None:
        if psycopg is None:  # pragma: no cover
            raise StoreError("the PostgreSQL store needs psycopg 3: pip install 'railguard[postgres]'")
        if not schema or len(schema.encode()) > MAX_SCHEMA_NAME or "\x00" in schema:
            raise StoreError(f"the PostgreSQL schema name must have 1 to {MAX_SCHEMA_NAME} bytes, not {schema!r}")
        self.dsn = dsn
        self.schema = schema
        self.connect_timeout = connect_timeout
        #: read-only transactions, and no schema created (``railguard audit verify``)
        self.readonly = readonly
        self.global_log = global_log
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error:
            # libpq's message may quote part of the DSN, which can hold a password: leave it out.
            raise StoreError("cannot parse the PostgreSQL DSN: expected `postgresql://user@host:port/database` or `host=... dbname=...`") from None
        self.where = _where(params)
        ident = sql.Identifier(schema)
        self._q = {name: sql.SQL(text).format(s=ident) for name, text in QUERIES.items()}
        self._ddl = sql.SQL(DDL).format(s=ident)
        self._create_trigger = sql.SQL(CREATE_TRIGGER).format(s=ident)
        self._drop = sql.SQL("DROP SCHEMA IF EXISTS {s} CASCADE").format(s=ident)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._pid = 0
        self._inherited: list[Any] = []
        self._closed = False
        with self._lock:
            self._connection()
            try:
                if readonly:
                    self._check_schema()
                else:
                    self._ensure_schema()
            except BaseException:
                self.close()  # no half-open store: its connection would outlive it unclosed
                raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.where}, schema={self.schema!r})"

    # ------------------------------------------------------------------ connection

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._closed:
            raise StoreError(f"the PostgreSQL store at {self.where} is closed")
        conn = self._conn
        if conn is not None and self._pid != os.getpid():
            # Inherited through fork: the socket is the parent's. Never touch it here (closing it
            # would end the parent's session); keep a reference so it is not finalised either.
            self._inherited.append(conn)
            conn = self._conn = None
        if conn is not None and (conn.closed or conn.broken):
            conn = self._conn = None
        if conn is None:
            kwargs: dict[str, Any] = {"autocommit": True}
            params = conninfo_to_dict(self.dsn)
            if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in os.environ:
                kwargs["connect_timeout"] = max(1, round(self.connect_timeout))
            if "application_name" not in params and "PGAPPNAME" not in os.environ:
                kwargs["application_name"] = "railguard"
            if self.readonly:
                kwargs["options"] = "-c default_transaction_read_only=on"
            try:
                conn = psycopg.connect(self.dsn, **kwargs)
            except psycopg.Error as exc:
                raise StoreError(f"cannot connect to PostgreSQL at {self.where}: {_first_line(exc)}") from None
            self._conn = conn
            self._pid = os.getpid()
        return conn

    @contextmanager
    def _tx(self, doing: str) -> Iterator[psycopg.Cursor[tuple[Any, ...]]]:
        """One transaction on this store's connection; psycopg errors become StoreError."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                if conn.broken or conn.closed:
                    raise StoreError(
                        f"lost the connection to PostgreSQL at {self.where} while {doing} (a write may or may not have been committed): {_first_line(exc)}"
                    ) from None
                raise StoreError(f"PostgreSQL at {self.where} failed while {doing}: {_first_line(exc)}") from None
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL at {self.where} refused {doing}: {_first_line(exc)}") from None

    def _check_schema(self) -> None:
        with self._tx(f"checking the schema `{self.schema}`") as cur:
            cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name IN ('instances', 'audit')", (self.schema,))
            found = cur.fetchone()
        if found is None or found[0] != 2:
            raise StoreError(f"the schema `{self.schema}` at {self.where} is not a railguard store: it has no instances and audit tables")

    def _ensure_schema(self) -> None:
        with self._tx(f"checking the schema `{self.schema}`") as cur:
            cur.execute(self._q["triggers"], (self.schema, TRIGGER))
            found = cur.fetchone()
        if found is not None and found[0] == 1:
            with self._tx(f"checking the schema `{self.schema}`") as cur:
                cur.execute(self._q["log_ready"], (self.schema,))
                ready = cur.fetchone()
            if ready is not None and ready[0] == 1:
                return  # already set up: a worker needs no CREATE privilege
        with self._tx(f"creating the schema `{self.schema}`") as cur:
            # Serialise concurrent first uses: IF NOT EXISTS is not safe against a racing CREATE.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(self.schema),))
            cur.execute(self._ddl)
            cur.execute(self._q["triggers"], (self.schema, TRIGGER))
            found = cur.fetchone()
            if found is None or found[0] == 0:
                cur.execute(self._create_trigger)

    # ------------------------------------------------------------------ instances

    def _transaction(self, doing: str) -> AbstractContextManager[psycopg.Cursor[tuple[Any, ...]]]:
        return self._tx(doing)

    def _insert_instance(self, cur: psycopg.Cursor[tuple[Any, ...]], instance: str, columns: tuple[Any, ...]) -> None:
        try:
            with cur.connection.transaction():  # a savepoint, so the error is ours to map
                cur.execute(self._q["insert_instance"], columns)
        except pg_errors.UniqueViolation:
            raise InstanceExists(f"instance `{instance}` already exists") from None

    def get(self, instance: str) -> InstanceRow | None:
        with self._tx(f"reading instance `{instance}`") as cur:
            cur.execute(self._q["get"], (instance,))
            found = cur.fetchone()
        return None if found is None else decode_row(found)

    def _update_instance(self, cur: psycopg.Cursor[tuple[Any, ...]], params: tuple[Any, ...]) -> int:
        cur.execute(self._q["update"], params)
        return cur.rowcount

    def _cancel_timers(self, cur: psycopg.Cursor[tuple[Any, ...]], instance: str, kinds: Sequence[str]) -> None:
        cur.execute(self._q["cancel"], (instance, list(kinds)))

    def _append(self, cur: psycopg.Cursor[tuple[Any, ...]], records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        if self.global_log and len(records) == 1:
            (r,) = records
            cur.execute(self._q["append_one"], (r.instance, r.seq, r.payload_json(), r.prev_hash, r.hash))
            if cur.rowcount != 1:
                raise StoreError(f"the schema `{self.schema}` at {self.where} has no log head row")
            return
        start = None
        if self.global_log:
            cur.execute(self._q["reserve"], (len(records),))
            found = cur.fetchone()
            if found is None:
                raise StoreError(f"the schema `{self.schema}` at {self.where} has no log head row")
            start = int(found[0]) - len(records) + 1
        cur.executemany(self._q["append"], record_params(records, start))

    def log_entries(self) -> list[LogEntry]:
        with self._tx("reading the global log") as cur:
            cur.execute(self._q["log"])
            return [LogEntry(int(r[0]), r[1], int(r[2]), r[3]) for r in cur.fetchall()]

    def unlogged(self) -> int:
        with self._tx("reading the global log") as cur:
            cur.execute(self._q["unlogged"])
            found = cur.fetchone()
        return 0 if found is None else int(found[0])

    def _add_timers(self, cur: psycopg.Cursor[tuple[Any, ...]], params: list[tuple[Any, ...]]) -> None:
        cur.executemany(self._q["add_timer"], params)

    def audit(self, instance: str | None = None) -> list[AuditRecord]:
        with self._tx("reading the audit log") as cur:
            if instance is None:
                cur.execute(self._q["audit_all"])
            else:
                cur.execute(self._q["audit_one"], (instance,))
            rows = cur.fetchall()
        return audit_records(rows)

    def instances(self) -> list[str]:
        with self._tx("listing instances") as cur:
            cur.execute(self._q["instances"])
            return [r[0] for r in cur.fetchall()]

    # ------------------------------------------------------------------ due work

    def claim_due(self, now: float, lease: float, limit: int = 10, worker: str = "") -> list[Timer]:
        if limit <= 0:
            return []
        with self._tx("claiming due work") as cur:
            cur.execute(self._q["claim"], (now + lease, worker, now, now, limit))
            rows = cur.fetchall()
        claimed = timers_from(rows)
        return sorted(claimed, key=lambda t: (t.due_at, t.id))  # RETURNING has no order

    def finish_timer(self, timer_id: int) -> None:
        with self._tx(f"finishing timer {timer_id}") as cur:
            cur.execute(self._q["finish"], (timer_id,))

    # ------------------------------------------------------------------ lifecycle

    def drop(self) -> None:
        """Drop the schema with every table and record in it (for tests); the store stays open
        but unusable until :meth:`reset`."""
        with self._tx(f"dropping the schema `{self.schema}`") as cur:
            cur.execute(self._drop)

    def reset(self) -> None:
        """Drop the schema and create it again, empty."""
        self.drop()
        with self._lock:
            self._ensure_schema()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _where(params: dict[str, Any]) -> str:
    """``host:port/database`` as the connection will resolve it, without user or password."""
    host = str(params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "the local socket")
    port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
    database = params.get("dbname") or os.environ.get("PGDATABASE")
    return f"{host}:{port}" + (f" (database `{database}`)" if database else "")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else type(exc).__name__


def _lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``schema``."""
    return int.from_bytes(hashlib.sha256(f"railguard-schema\n{schema}".encode()).digest()[:8], "big", signed=True)
