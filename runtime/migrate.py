"""Moving live instances of one spec (OLD) to another (NEW) with a proved migration.

:func:`migrate_instances` applies a migration file (:mod:`railguard.verifier.migration`) to
the instances in a store, and only one that :func:`~railguard.verifier.migration.check_migration`
proved safe. Each instance moves in **one transaction** of the store: its row (now naming
NEW's workflow and content hash, the migrated state, values and context), one audited
``migrated`` record that continues the instance's hash chain, the cancellation of OLD's
timers and NEW's timeout for the target state (its clock starts at the migration). A crash
leaves an instance migrated or not, never half.

Only a *resting* instance moves: one that is ``active``, or ``done`` in a terminal state that
the migration's state map lists. An instance in the middle of an effect, running its
compensations, or stuck is left alone, and the result says so plainly; run the migration
again once it rests. A finished instance whose terminal the state map leaves out stays on
OLD.

The ``migrated`` record names both specs (``from`` and ``to``: workflow and content hash),
the migration (its content hash and its canonical data, so that replay can recompute it),
the proof (outcome and number of obligations), NEW's certificate (or the audited opt-out),
who ran it (``by``), and the instance's state, status and values before and after. Its
``spec_hash`` is NEW's: every record from it on is written under NEW. Replay
(:func:`railguard.runtime.replay.replay_log` with the specs by content hash) switches to NEW's
semantics at this record, after recomputing the migration from the record's data;
``railguard audit verify`` checks that each instance's records change spec only through a
``migrated`` record and that the row names the spec its last record was written under
(:func:`spec_lineage`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import TYPE_CHECKING, Any, Literal

from railguard.spec import Spec
from railguard.spec.codec import decode_values, encode_values
from railguard.spec.types import Value

from .audit import AuditRecord, Tamper, chain
from .certify import certificate_note
from .clock import Clock, SystemClock
from .errors import ConflictError, ExecutionError
from .lifecycle import (
    EffectPending,
    LifecycleError,
    Owed,
    Phase,
    RecordKind,
    Status,
    advance,
    decode_pending,
)
from .store import InstanceRow, NewTimer, Store

if TYPE_CHECKING:
    from railguard.verifier.budget import Budget
    from railguard.verifier.migration import Migration, MigrationCheck

__all__ = [
    "InstanceMigration",
    "MigrationRefused",
    "MigrationRun",
    "migrate_instances",
    "recompute_migration",
    "spec_lineage",
    "spec_registry",
]

#: Kinds of outcome for one instance.
Outcome = Literal["migrated", "already", "finished", "busy", "other", "missing", "failed"]
#: The latest a timer may be due (as the engine's timers): epoch seconds.
MAX_DUE = 1e12
MAX_CONFLICT_RETRIES = 50


class MigrationRefused(ExecutionError):
    """A migration that may not run: not proved safe (``check`` holds the proof's result,
    with counterexamples), or not made for these two specs."""

    def __init__(self, message: str, check: MigrationCheck | None = None) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True, slots=True)
class InstanceMigration:
    """What happened to one instance: ``migrated`` (``record`` is the position of its
    ``migrated`` record), ``already`` (it runs on NEW), ``finished`` (done in a terminal the
    state map leaves out: it stays on OLD), ``busy`` (in the middle of an effect or its
    compensations, or stuck: left alone until it rests), ``other`` (it runs another spec),
    ``missing`` (no such instance) or ``failed`` (the migration cannot compute it)."""

    instance: str
    outcome: Outcome
    reason: str
    before: str | None = None
    after: str | None = None
    record: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "outcome": self.outcome, "reason": self.reason, "before": self.before, "after": self.after, "record": self.record}


@dataclass(frozen=True, slots=True)
class MigrationRun:
    """Every instance :func:`migrate_instances` looked at, in order. ``complete`` when none
    was left behind (busy, on another spec, missing or failed)."""

    old_hash: str
    new_hash: str
    migration_hash: str
    instances: tuple[InstanceMigration, ...] = field(default_factory=tuple)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for i in self.instances if i.outcome == outcome)

    @property
    def complete(self) -> bool:
        return all(i.outcome in ("migrated", "already", "finished") for i in self.instances)

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.old_hash, "to": self.new_hash, "migration": self.migration_hash, "complete": self.complete,
            "instances": [i.to_json() for i in self.instances],
        }


def spec_registry(*specs: Spec | Iterable[Spec]) -> dict[str, Spec]:
    """Specs by content hash: what replay looks a ``migrated`` record's NEW spec up in."""
    found: dict[str, Spec] = {}
    for item in specs:
        for spec in [item] if isinstance(item, Spec) else item:
            found[spec.content_hash] = spec
    return found


def migrate_instances(
    store: Store,
    old: Spec,
    new: Spec,
    migration: Migration,
    *,
    instances: Sequence[str] | None = None,
    check: MigrationCheck | None = None,
    certificate: Any = None,
    trusted_keys: Any = None,
    allow_unverified: str | None = None,
    clock: Clock | None = None,
    by: str = "",
    budget: Budget | None = None,
    dry_run: bool = False,
) -> MigrationRun:
    """Migrate ``instances`` (default: every instance running on OLD) of ``store`` from
    ``old`` to ``new`` with ``migration``, each in one transaction.

    Refused with :class:`MigrationRefused` unless the migration is for these two specs and
    proved safe: by ``check`` when given (the result of ``check_migration`` for this very
    migration), else by running ``check_migration`` under ``budget``. NEW needs its own
    ``certificate``, signed by one of ``trusted_keys`` as the engine requires
    (:class:`CertificateRequired` otherwise), unless ``allow_unverified``
    gives a reason, which is written into every ``migrated`` record. ``by`` names who ran
    the migration (recorded). ``dry_run`` decides every instance as a real run would (each
    ``migrated`` outcome computed, record position left out) but commits nothing. Returns
    what happened to each instance."""
    from railguard.verifier.migration import check_migration

    if migration.from_hash != old.content_hash or migration.to_hash != new.content_hash:
        raise MigrationRefused(
            f"migration `{migration.source}` goes from {migration.from_hash[:19]} to {migration.to_hash[:19]}, "
            f"not from `{old.name}` {old.content_hash[:19]} to `{new.name}` {new.content_hash[:19]}"
        )
    note = certificate_note(new, certificate, trusted_keys, allow_unverified, what="NEW spec")
    if check is None:
        check = check_migration(old, new, migration, budget) if budget is not None else check_migration(old, new, migration)
    elif check.migration != migration:
        raise MigrationRefused(f"the check given is for another migration than `{migration.source}`")
    if not check.passed:
        first = next(o for o in check.obligations if o.outcome != "proved")
        raise MigrationRefused(
            f"migration `{migration.source}` is not proved safe ({check.outcome}): {first.rule} {first.name} [{first.state}]: {first.message}", check
        )
    proof = {"outcome": check.outcome, "obligations": len(check.obligations)}
    named: dict[str, Any] = {"hash": migration.content_hash, "data": migration.to_data(), "check": proof}
    mover = _Mover(store, old, new, migration, clock or SystemClock(), by, note, named, dry_run)
    ids = list(instances) if instances is not None else [i for i in store.instances() if _runs_on(store.get(i), old)]
    return MigrationRun(old.content_hash, new.content_hash, migration.content_hash, tuple(mover.migrate(i) for i in ids))


def _runs_on(row: InstanceRow | None, spec: Spec) -> bool:
    return row is not None and row.workflow == spec.name and row.spec_hash == spec.content_hash


@dataclass
class _Mover:
    store: Store
    old: Spec
    new: Spec
    migration: Migration
    clock: Clock
    by: str
    certificate: dict[str, Any]
    named: dict[str, Any]  # what each record says of the migration: hash, data and proof
    dry_run: bool = False

    def migrate(self, instance: str) -> InstanceMigration:
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                return self.attempt(instance)
            except ConflictError:
                continue  # another writer moved the instance: decide again on a fresh read
        return InstanceMigration(instance, "busy", f"instance `{instance}` kept changing while it was migrated: not migrated; try again")

    def attempt(self, instance: str) -> InstanceMigration:
        old, new = self.old, self.new
        row = self.store.get(instance)
        if row is None:
            return InstanceMigration(instance, "missing", f"no instance `{instance}`")
        if _runs_on(row, new):
            return InstanceMigration(instance, "already", f"instance `{instance}` already runs on NEW ({new.content_hash[:19]})", row.state, row.state)
        if not _runs_on(row, old):
            why = f"instance `{instance}` runs `{row.workflow}` {row.spec_hash[:19]}, neither OLD nor NEW: not migrated"
            return InstanceMigration(instance, "other", why, row.state)
        from .integrity import vouch

        tampered = vouch(row, self.store.audit(instance))
        if tampered is not None:
            if self.store.get(instance) != row:
                raise ConflictError(f"instance `{instance}` changed while its log was read")
            return InstanceMigration(instance, "failed", f"instance `{instance}` is not vouched for by its audit log, so it is not migrated: {tampered}", row.state)
        busy = _busy(row)
        if busy is not None:
            return InstanceMigration(instance, "busy", f"instance `{instance}` {busy}: not migrated; it is left alone until it rests", row.state)
        mapped = self.migration.state_map.get(row.state)
        if row.status == Status.DONE and mapped is None:
            why = f"instance `{instance}` has finished in `{row.state}`, which the state map leaves out: it stays on OLD"
            return InstanceMigration(instance, "finished", why, row.state)
        from railguard.verifier.migration import MigrationError

        values = decode_values(old, row.values)
        try:
            target, after = self.migration.apply(new, row.state, values)
        except MigrationError as exc:
            return InstanceMigration(instance, "failed", f"instance `{instance}` cannot be migrated: {exc.message}", row.state)
        try:
            phase = advance(new, _phase(row), RecordKind.MIGRATED, target=target)
        except LifecycleError as exc:
            return InstanceMigration(instance, "failed", f"instance `{instance}` cannot be migrated: {exc}", row.state)
        encoded = encode_values(after)
        context = {v.name: encoded[v.name] for v in new.variables if v.context and v.name in encoded}
        now = self.clock.now()
        payload = {
            "workflow": new.name,
            "spec_hash": new.content_hash,
            "at": now.astimezone(UTC).isoformat(),
            "kind": RecordKind.MIGRATED,
            "by": self.by,
            "from": {"workflow": old.name, "spec_hash": old.content_hash},
            "to": {"workflow": new.name, "spec_hash": new.content_hash},
            "migration": self.named,
            "certificate": self.certificate,
            "before": {"state": row.state, "status": row.status, "values": row.values},
            "after": {"state": phase.state, "status": phase.status, "values": encoded},
            "context": context,
        }
        version = row.version + 1
        moved = InstanceRow(
            id=row.id, workflow=new.name, spec_hash=new.content_hash, state=phase.state, values=encoded, version=version,
            status=phase.status, audit_head=row.audit_head, context=context, pending=None,
            compensations=[o.to_json() for o in phase.owed], created_at=row.created_at, updated_at=now.timestamp(),
        )
        from .integrity import ROW_FIELD, row_digest

        payload[ROW_FIELD] = row_digest(moved)  # the record vouches for the row it leaves
        record = chain(row.id, row.audit_head, version, payload)
        moved = replace(moved, audit_head=record.hash)
        timers = []
        timeout = new.state_map[phase.state].timeout
        if timeout is not None and phase.status == Status.ACTIVE:
            due = min(now.timestamp() + float(timeout.seconds), MAX_DUE)
            timers.append(NewTimer(row.id, "timeout", due, version, {"state": phase.state}))
        if self.dry_run:
            return InstanceMigration(instance, "migrated", f"instance `{instance}` would move from `{row.state}` to `{phase.state}` of NEW (dry run)", row.state, phase.state)
        self.store.commit(moved, row.version, [record], timers, cancel=("timeout", "resume"))
        return InstanceMigration(instance, "migrated", f"instance `{instance}` moved from `{row.state}` to `{phase.state}` of NEW", row.state, phase.state, version)


def _phase(row: InstanceRow) -> Phase:
    return Phase(Status(row.status), row.state, tuple(Owed.from_json(c) for c in row.compensations), decode_pending(row.pending))


def _busy(row: InstanceRow) -> str | None:
    """Why ``row`` is not resting (``None`` if it is)."""
    pending = decode_pending(row.pending)
    if row.status == Status.EFFECT_PENDING:
        effect = f" `{pending.effect}`" if isinstance(pending, EffectPending) else ""
        return f"is in the middle of effect{effect} (effect-pending)"
    if row.status == Status.COMPENSATING:
        return "is running its compensations (compensating)"
    if row.status == Status.STUCK:
        return "is stuck and needs an operator (stuck)"
    return None


# ---------------------------------------------------------------------- replay and audit


_LOADED: dict[tuple[str, str, str], Migration] = {}


def recompute_migration(old: Spec, new: Spec, payload: Mapping[str, Any], state: str, values: Mapping[str, Value]) -> tuple[str, dict[str, Value]]:
    """What the migration a ``migrated`` record names makes of an OLD instance in ``state``
    with ``values``: the migration is loaded from the record's data (against OLD and NEW) and
    must hash to the hash the record names. Raises :class:`ExecutionError` in one sentence
    when it cannot."""
    from railguard.verifier.migration import MigrationError, loads_migration

    info = payload.get("migration")
    if not isinstance(info, Mapping) or not isinstance(info.get("data"), Mapping):
        raise ExecutionError("it does not carry the migration's data")
    named = str(info.get("hash"))
    key = (old.content_hash, new.content_hash, named)
    migration = _LOADED.get(key)
    if migration is None:
        try:
            migration = loads_migration(json.dumps(dict(info["data"])), old, new, "<migrated record>")
        except MigrationError as exc:
            raise ExecutionError(f"the migration it carries is unusable: {exc.message}") from None
        if migration.content_hash != named:
            raise ExecutionError(f"the migration it carries hashes to {migration.content_hash[:19]}, not {named[:19]} as it says")
        if len(_LOADED) < 64:
            _LOADED[key] = migration
    try:
        return migration.apply(new, state, values)
    except MigrationError as exc:
        raise ExecutionError(f"the migration cannot compute this instance: {exc.message}") from None


def spec_lineage(records: Iterable[AuditRecord], rows: Mapping[str, InstanceRow]) -> Tamper | None:
    """The first record that changes an instance's spec other than by a ``migrated`` record
    continuing from the spec before it, or the first instance whose row names another spec
    than its last record was written under (``records`` ordered by instance, then position)."""
    current: dict[str, tuple[Any, Any]] = {}
    for record in records:
        p = record.payload
        spec = (p.get("workflow"), p.get("spec_hash"))
        before = current.get(record.instance)
        if record.kind == RecordKind.MIGRATED:
            source = p.get("from")
            if before is None or not isinstance(source, Mapping) or (source.get("workflow"), source.get("spec_hash")) != before:
                return Tamper(record.instance, record.seq, "it migrates the instance from another spec than the one its log ran on")
        elif before is not None and spec != before:
            return Tamper(record.instance, record.seq, f"it is written under spec {str(spec[1])[:19]}, but the record before it under {str(before[1])[:19]}, and no migration connects them")
        current[record.instance] = spec
    for instance, (workflow, spec_hash) in current.items():
        row = rows.get(instance)
        if row is not None and (row.workflow, row.spec_hash) != (workflow, spec_hash):
            return Tamper(instance, row.version, f"the instance names spec `{row.workflow}` {row.spec_hash[:19]}, but its log was last written under {str(spec_hash)[:19]} (its spec was changed behind the log's back)")
    return None

