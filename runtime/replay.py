"""Replay: re-derive an instance from its audit log with the reference semantics, and compare.

Every decision the engine makes is recorded; replay makes it again. A ``start`` record must
give the spec's initial values with the recorded context; every ``step`` (and every
``effect-call``) is fired again through :func:`railguard.spec.semantics.fire` with the recorded
actor, roles and params, and must reach the recorded state and values; every ``refusal`` must
be refused again with the recorded code — except the refusals the engine makes before the
semantics is consulted (``busy``, ``not-enabled`` on a finished instance, ``permission-denied``
for the reserved ``system`` id or an operator command). The records of effects, compensations,
error exits, timeouts, aborts and operator retries move the instance's status as the engine
does, and are checked for consistency (the compensation run is the one owed, the error exit
goes where the spec says). A ``migrated`` record (:mod:`railguard.runtime.migrate`) switches
replay to NEW's semantics: NEW is looked up by content hash among the ``specs`` the caller
gives, the migration is recomputed from the record's data, and must reach the recorded state
and values.

:func:`replay_log` returns a frozen :class:`ReplayReport`: the state, variables and status the log
leads to, and the first record that does not follow, named by its position, in one sentence.
:func:`replay_instance` also compares the result with the instance as stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from railguard.spec import Spec
from railguard.spec.semantics import SYSTEM, Fired, Refusal, fire, signature
from railguard.spec.types import Type, Value

from .audit import AuditRecord
from .codec import decode_values, encode_values
from .effects import effect_key
from .engine import Engine
from .errors import ExecutionError, UnknownInstance
from .lifecycle import EffectPending, LifecycleError, Owed, Phase, RecordKind, Status, advance
from .migrate import recompute_migration, spec_registry
from .store import Store

__all__ = ["ReplayReport", "replay_instance", "replay_log"]

#: Commands the engine answers itself (not events of the spec).
OPERATOR_COMMANDS = ("abort", "retry")


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What replaying an instance's log gives.

    ``ok`` is true when every record followed from the ones before it (and, for
    :func:`replay_instance`, the stored instance equals the result). ``state``, ``values``,
    ``status``, ``owed`` (compensations still owed, oldest first) and ``version`` (the last
    record that followed) describe the instance as re-derived. ``mismatch`` is the first
    disagreement in one sentence and ``seq`` the position of the record it names (``None``
    when the disagreement is with the stored row as a whole). ``spec_hash`` is the content
    hash of the spec the log leads to (NEW's after a ``migrated`` record).
    """

    instance: str
    ok: bool
    state: str | None
    values: Mapping[str, Value] = field(default_factory=dict)
    status: str = "missing"
    version: int = 0
    owed: tuple[str, ...] = ()
    records: int = 0
    mismatch: str | None = None
    seq: int | None = None
    spec_hash: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"instance `{self.instance}`: {self.records} records replay to state `{self.state}` ({self.status})"
        return self.mismatch or f"instance `{self.instance}` does not replay"


class _Mismatch(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


#: The fields of a step's record that its effect's pending work keeps (the step's ``base``).
_BASE_FIELDS = ("event", "actor", "roles", "params", "transition", "decision", "before")


@dataclass
class _Replayer:
    spec: Spec
    instance: str
    phase: Phase | None = None
    values: dict[str, Value] = field(default_factory=dict)
    version: int = 0
    specs: Mapping[str, Spec] = field(default_factory=dict)

    @property
    def state(self) -> str | None:
        return None if self.phase is None else self.phase.state

    @property
    def status(self) -> str:
        return "missing" if self.phase is None else self.phase.status

    # ------------------------------------------------------------------ dispatch

    def apply(self, record: AuditRecord) -> None:
        payload = record.payload
        kind = record.kind
        if record.instance != self.instance:
            raise _Mismatch(f"it belongs to instance `{record.instance}`")
        if record.seq != self.version + 1:
            raise _Mismatch(f"expected record {self.version + 1} here")
        # a migration is written under NEW and names the spec it leaves in `from`
        written = payload.get("from") if kind == RecordKind.MIGRATED else payload
        if not isinstance(written, Mapping):
            raise _Mismatch("it does not name the spec it migrates from")
        if written.get("workflow") != self.spec.name:
            raise _Mismatch(f"it was written by workflow `{written.get('workflow')}`, not `{self.spec.name}`")
        if written.get("spec_hash") != self.spec.content_hash:
            raise _Mismatch(f"it was written by another version of `{self.spec.name}` ({str(written.get('spec_hash'))[:19]}, not {self.spec.content_hash[:19]})")
        if kind != RecordKind.START and self.phase is None:
            raise _Mismatch("the log does not begin with a `start` record")
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise _Mismatch(f"`{kind}` is not a kind of record the engine writes")
        try:
            handler(self, payload, record.seq)
        except LifecycleError as exc:
            raise _Mismatch(str(exc)) from None
        self.version = record.seq

    # ------------------------------------------------------------------ helpers

    def _advance(self, kind: RecordKind, **facts: Any) -> None:
        self.phase = advance(self.spec, self.phase, kind, **facts)

    def _expect_state(self, payload: Mapping[str, Any], key: str = "state") -> None:
        if key in payload and payload[key] != self.state:
            raise _Mismatch(f"it says the instance was in state `{payload[key]}`, but the log leads to `{self.state}`")

    def _expect_status(self, *allowed: str) -> None:
        if self.status not in allowed:
            raise _Mismatch(f"the instance was {self.status} at that point, not {' or '.join(allowed)}")

    def _fire(self, payload: Mapping[str, Any], *, refusal: bool) -> Fired | Refusal:
        assert self.state is not None
        event = str(payload.get("event"))
        actor = payload.get("actor")
        roles = frozenset(str(r) for r in payload.get("roles") or ())
        system = actor == SYSTEM and (refusal or (payload.get("decision") or {}).get("permission") == "system")
        params = _params(self.spec, event, payload.get("params") or {})
        return fire(self.spec, self.state, self.values, event, None if actor is None else str(actor), roles, params, system=system)

    def _fired(self, payload: Mapping[str, Any]) -> Fired:
        self._expect_status(Status.ACTIVE)
        before = payload.get("before") or {}
        if before.get("state") != self.state or before.get("values") != encode_values(self.values):
            raise _Mismatch(f"its `before` ({_show(before)}) is not where the log leads ({_show(self._encoded())})")
        outcome = self._fire(payload, refusal=False)
        if isinstance(outcome, Refusal):
            raise _Mismatch(f"the semantics refuses `{payload.get('event')}` ({outcome.code}: {outcome.message})")
        if payload.get("transition") != outcome.transition.index:
            raise _Mismatch(f"it names transition {payload.get('transition')}, but the semantics takes {outcome.transition.label}")
        if payload.get("params") != encode_values(outcome.params):
            raise _Mismatch(f"its params {payload.get('params')} are not the params the semantics checked ({encode_values(outcome.params)})")
        return outcome

    def _encoded(self) -> dict[str, Any]:
        return {"state": self.state, "values": encode_values(self.values)}

    # ------------------------------------------------------------------ kinds

    def start(self, payload: Mapping[str, Any], seq: int) -> None:
        if self.phase is not None:
            raise _Mismatch("the instance had already started")
        values = self.spec.initial_values()
        context = payload.get("context") or {}
        for name in context:
            variable = self.spec.variable_map.get(name)
            if variable is None or not variable.context:
                raise _Mismatch(f"`{name}` is not a context variable of `{self.spec.name}`")
        decoded = decode_values(self.spec, context)
        for name, value in decoded.items():
            if not self.spec.variable_map[name].type.contains(value):
                raise _Mismatch(f"context variable `{name}` is outside {self.spec.variable_map[name].type.describe()}")
        values.update(decoded)
        self._advance(RecordKind.START, target=self.spec.initial_state.name)
        self.values = values
        if payload.get("after") != self._encoded():
            raise _Mismatch(f"it says the instance started at {_show(payload.get('after'))}, but the spec starts it at {_show(self._encoded())}")

    def step(self, payload: Mapping[str, Any], seq: int) -> None:
        after = payload.get("after") or {}
        effect = payload.get("effect")
        assert self.phase is not None
        pending = self.phase.effect
        if pending is not None:
            self._expect_status(Status.EFFECT_PENDING)
            step, name = pending.step, pending.effect
            if not isinstance(effect, Mapping) or effect.get("name") != name or effect.get("step") != step or effect.get("ok") is not True:
                raise _Mismatch(f"it does not record the successful outcome of effect `{name}` called at record {step}")
            if effect.get("key") != effect_key(self.instance, step, name):
                raise _Mismatch(f"its idempotency key for `{name}` is not the one derived from record {step}")
            before = pending.base.get("before")
            if payload.get("transition") != pending.transition or payload.get("before") != before:
                raise _Mismatch(f"it does not complete the step called at record {step} (transition {pending.transition} from {_show(before)})")
            expected = {"state": pending.target, "values": pending.after}
            if after != expected:
                raise _Mismatch(f"it says the step ended at {_show(after)}, but the effect was called to reach {_show(expected)}")
            transition = self.spec.transitions[pending.transition - 1]
            owed = None
            if transition.compensate is not None:
                owed = Owed(transition.compensate, step, transition.event, pending.base.get("params") or {}, pending.after)
            self._advance(RecordKind.STEP, target=pending.target, owed=owed)
            self.values = decode_values(self.spec, pending.after)
            return
        if effect is not None:
            raise _Mismatch("it records an effect that was never called")
        outcome = self._fired(payload)
        if outcome.transition.effect is not None:
            raise _Mismatch(f"{outcome.transition.label} calls effect `{outcome.transition.effect}`, but no call was recorded")
        expected = {"state": outcome.target, "values": encode_values(outcome.values)}
        if after != expected:
            raise _Mismatch(f"it says the step ended at {_show(after)}, but the semantics gives {_show(expected)}")
        self._advance(RecordKind.STEP, target=outcome.target)
        self.values = dict(outcome.values)

    def effect_call(self, payload: Mapping[str, Any], seq: int) -> None:
        outcome = self._fired(payload)
        name = outcome.transition.effect
        effect = payload.get("effect") or {}
        if name is None or effect.get("name") != name:
            raise _Mismatch(f"it calls effect `{effect.get('name')}`, but {outcome.transition.label} calls {f'`{name}`' if name else 'none'}")
        if effect.get("key") != effect_key(self.instance, seq, name):
            raise _Mismatch(f"its idempotency key for `{name}` is not the one derived from this record")
        values = encode_values(outcome.values)
        expected = {"state": outcome.target, "values": values}
        if payload.get("intended") != expected:
            raise _Mismatch(f"it intends {_show(payload.get('intended'))}, but the semantics gives {_show(expected)}")
        base = {key: payload.get(key) for key in _BASE_FIELDS}
        self._advance(RecordKind.EFFECT_CALL, pending=EffectPending(seq, str(effect.get("key")), name, base, outcome.target, values))

    def effect_failed(self, payload: Mapping[str, Any], seq: int) -> None:
        self._expect_status(Status.EFFECT_PENDING)
        self._expect_state(payload)
        assert self.phase is not None and self.phase.effect is not None
        step, name = self.phase.effect.step, self.phase.effect.effect
        effect = payload.get("effect") or {}
        if effect.get("name") != name or effect.get("step") != step or effect.get("ok") is not False:
            raise _Mismatch(f"it does not record a failure of effect `{name}` called at record {step}")
        self._error_start(RecordKind.EFFECT_FAILED, payload)

    def _error_start(self, kind: RecordKind, payload: Mapping[str, Any]) -> None:
        self._advance(kind)
        stuck = self.status == Status.STUCK
        if stuck != ("stuck" in payload):
            where = f"state `{self.state}`"
            raise _Mismatch(f"it says the instance is stuck, but {where} has an error exit" if not stuck else f"{where} has no error exit, but the record does not say the instance is stuck")

    def note(self, payload: Mapping[str, Any], seq: int) -> None:
        """A note (the plan gate's plan and admission) changes nothing; it names the state."""
        self._expect_state(payload)

    def refusal(self, payload: Mapping[str, Any], seq: int) -> None:
        self._expect_state(payload)
        decision = payload.get("decision") or {}
        code = decision.get("code")
        event = payload.get("event")
        actor = payload.get("actor")
        if decision.get("allowed") is not False:
            raise _Mismatch("it is a refusal that records an allowed decision")
        # refusals the engine makes before the semantics is consulted
        if code == "busy" and self.status != Status.ACTIVE:
            return
        if code == "not-enabled" and self.status == Status.DONE:
            return
        if code == "permission-denied" and (not actor or actor == SYSTEM):
            return
        if event in OPERATOR_COMMANDS and code in ("permission-denied", "busy") and str(event) not in self.spec.events:
            return
        if self.status != Status.ACTIVE:
            raise _Mismatch(f"the instance was {self.status}, so the engine refuses with `{'not-enabled' if self.status == Status.DONE else 'busy'}`, not `{code}`")
        outcome = self._fire(payload, refusal=True)
        if isinstance(outcome, Fired):
            raise _Mismatch(f"it says `{event}` was refused ({code}), but the semantics allows it ({outcome.transition.label})")
        if outcome.code != code:
            raise _Mismatch(f"it says `{event}` was refused with `{code}`, but the semantics refuses it with `{outcome.code}`")

    def compensation(self, payload: Mapping[str, Any], seq: int) -> None:
        self._expect_status(Status.COMPENSATING)
        self._expect_state(payload)
        assert self.phase is not None
        info = payload.get("compensation") or {}
        if not self.phase.owed:
            raise _Mismatch(f"it runs compensation `{info.get('name')}`, but none was owed")
        owed = self.phase.owed[-1]
        name, step = owed.compensate, owed.step
        if info.get("name") != name or info.get("step") != step or info.get("ok") is not True:
            raise _Mismatch(f"it runs compensation `{info.get('name')}` for record {info.get('step')}, but `{name}` for record {step} was owed next")
        if info.get("key") != effect_key(self.instance, step, name):
            raise _Mismatch(f"its idempotency key for `{name}` is not the one derived from record {step}")
        self._advance(RecordKind.COMPENSATION)

    def exit(self, payload: Mapping[str, Any], seq: int) -> None:
        self._expect_status(Status.COMPENSATING)
        assert self.phase is not None
        before = (payload.get("before") or {}).get("state")
        after = (payload.get("after") or {}).get("state")
        if self.phase.owed:
            raise _Mismatch(f"the instance rests although compensation `{self.phase.owed[-1].compensate}` is still owed")
        if before != self.state:
            raise _Mismatch(f"it says the instance left state `{before}`, but the log leads to `{self.state}`")
        if after != self.phase.heading:
            raise _Mismatch(f"it ends in state `{after}`, but the error exit from `{self.state}` goes to `{self.phase.heading}`")
        self._advance(RecordKind(str(payload.get("kind"))))

    def stuck(self, payload: Mapping[str, Any], seq: int) -> None:
        self._expect_status(Status.COMPENSATING)
        self._expect_state(payload)
        assert self.phase is not None
        info = payload.get("compensation") or {}
        if not self.phase.owed or info.get("name") != self.phase.owed[-1].compensate or info.get("ok") is not False:
            raise _Mismatch("it does not record the failure of the compensation owed next")
        self._advance(RecordKind.STUCK)

    def retry(self, payload: Mapping[str, Any], seq: int) -> None:
        self._expect_state(payload)
        self._advance(RecordKind.RETRY, reason="operator retry")

    def abort(self, payload: Mapping[str, Any], seq: int) -> None:
        self._expect_state(payload)
        self._error_start(RecordKind.ABORT, payload)

    def timeout(self, payload: Mapping[str, Any], seq: int) -> None:
        self._expect_status(Status.ACTIVE)
        self._expect_state(payload)
        assert self.state is not None
        declared = self.spec.state_map[self.state].timeout
        if declared is None or declared.event is not None or payload.get("after_seconds") != declared.seconds:
            raise _Mismatch(f"state `{self.state}` has no timeout that takes the error exit after {payload.get('after_seconds')} s")
        self._error_start(RecordKind.TIMEOUT, payload)

    def migrated(self, payload: Mapping[str, Any], seq: int) -> None:
        self._expect_status(Status.ACTIVE, Status.DONE)
        assert self.state is not None
        named = str(payload.get("spec_hash"))
        new = self.specs.get(named)
        if new is None:
            raise _Mismatch(f"it migrates the instance to spec {named[:19]}, which replay was not given (pass it among the specs)")
        to = payload.get("to") or {}
        if payload.get("workflow") != new.name or to.get("workflow") != new.name or to.get("spec_hash") != named:
            raise _Mismatch(f"its `to` ({_show(to)}) is not the spec it is written under (`{new.name}` {named[:19]})")
        before = payload.get("before") or {}
        here = {**self._encoded(), "status": self.status}
        if before != here:
            raise _Mismatch(f"its `before` ({_show(before)}, {before.get('status')}) is not where the log leads ({_show(here)}, {self.status})")
        try:
            target, values = recompute_migration(self.spec, new, payload, self.state, self.values)
        except ExecutionError as exc:
            raise _Mismatch(str(exc)) from None
        phase = advance(new, self.phase, RecordKind.MIGRATED, target=target)
        expected = {"state": phase.state, "status": phase.status, "values": encode_values(values)}
        if payload.get("after") != expected:
            raise _Mismatch(f"it says the instance migrated to {_show(payload.get('after'))}, but the migration gives {_show(expected)}")
        self.spec, self.phase, self.values = new, phase, dict(values)


_HANDLERS: dict[str, Callable[[_Replayer, Mapping[str, Any], int], None]] = {
    RecordKind.START: _Replayer.start,
    RecordKind.STEP: _Replayer.step,
    RecordKind.EFFECT_CALL: _Replayer.effect_call,
    RecordKind.EFFECT_FAILED: _Replayer.effect_failed,
    RecordKind.REFUSAL: _Replayer.refusal,
    RecordKind.COMPENSATION: _Replayer.compensation,
    RecordKind.ERROR_EXIT: _Replayer.exit,
    RecordKind.REST: _Replayer.exit,
    RecordKind.STUCK: _Replayer.stuck,
    RecordKind.RETRY: _Replayer.retry,
    RecordKind.ABORT: _Replayer.abort,
    RecordKind.TIMEOUT: _Replayer.timeout,
    RecordKind.MIGRATED: _Replayer.migrated,
    RecordKind.NOTE: _Replayer.note,
}


def replay_log(spec: Spec, records: Sequence[AuditRecord], instance: str | None = None, *, specs: Iterable[Spec] = ()) -> ReplayReport:
    """Re-derive an instance of ``spec`` from its audit ``records`` (oldest first).

    Stops at the first record that does not follow from the ones before it. ``instance``
    defaults to the instance of the first record. ``specs`` are the other versions the log
    may run on: replay starts with the one (``spec`` or among ``specs``) whose content hash
    the first record names, and a ``migrated`` record switches to the one it names.
    """
    name = instance if instance is not None else (records[0].instance if records else "")
    registry = spec_registry(spec, specs)
    first = registry.get(str(records[0].payload.get("spec_hash"))) if records else None
    replayer = _Replayer(first or spec, name, specs=registry)
    for record in records:
        try:
            replayer.apply(record)
        except _Mismatch as exc:
            return _report(replayer, len(records), f"instance `{name}`, record {record.seq} ({record.kind or 'no kind'}): {exc.message}", record.seq)
        except Exception as exc:  # a record shaped unlike the engine's is a mismatch, not a crash
            return _report(replayer, len(records), f"instance `{name}`, record {record.seq} ({record.kind or 'no kind'}): it cannot be replayed ({type(exc).__name__}: {exc})", record.seq)
    if not records:
        return _report(replayer, 0, f"instance `{name}` has no audit records", None)
    return _report(replayer, len(records), None, None)


def replay_instance(engine_or_store: Engine | Store, spec: Spec, instance: str, *, specs: Iterable[Spec] = ()) -> ReplayReport:
    """Replay ``instance`` from its audit log (``specs`` as for :func:`replay_log`) and compare the
    result with the stored row: spec, state, variables, version, status, the compensations
    owed and the audit head."""
    store = engine_or_store.store if isinstance(engine_or_store, Engine) else engine_or_store
    row = store.get(instance)
    if row is None:
        raise UnknownInstance(f"no instance `{instance}`")
    records = store.audit(instance)
    report = replay_log(spec, records, instance, specs=specs)
    if not report.ok:
        return report
    differences = []
    final = spec_registry(spec, specs).get(report.spec_hash, spec)
    if row.workflow != final.name:
        differences.append(f"runs workflow `{row.workflow}`")
    elif row.spec_hash != final.content_hash:
        differences.append(f"runs spec {row.spec_hash[:19]} (not {final.content_hash[:19]})")
    if row.state != report.state:
        differences.append(f"is in state `{row.state}`")
    if row.values != encode_values(report.values):
        differences.append(f"holds {row.values}")
    if row.version != report.version:
        differences.append(f"is at version {row.version}")
    if row.status != report.status:
        differences.append(f"is {row.status}")
    owed = tuple(str(c.get("compensate")) for c in row.compensations)
    if owed != report.owed:
        differences.append(f"owes {list(owed)}")
    if records and row.audit_head != records[-1].hash:
        differences.append("has an audit head that is not its last record's hash")
    if not differences:
        return report
    wanted = f"state `{report.state}` with {encode_values(report.values)}, version {report.version}, {report.status}, owing {list(report.owed)}"
    message = f"instance `{instance}`: the stored instance {_join(differences)}, but its log leads to {wanted}"
    return replace(report, ok=False, mismatch=message, seq=None)


def _report(replayer: _Replayer, count: int, mismatch: str | None, seq: int | None) -> ReplayReport:
    owed = () if replayer.phase is None else tuple(o.compensate for o in replayer.phase.owed)
    return ReplayReport(
        instance=replayer.instance, ok=mismatch is None, state=replayer.state, values=dict(replayer.values),
        status=str(replayer.status), version=replayer.version, owed=owed, records=count, mismatch=mismatch, seq=seq,
        spec_hash=replayer.spec.content_hash,
    )


def _params(spec: Spec, event: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Recorded params back to values, decoding only what has the recorded shape of its type
    (a malformed param stays as it was, so a ``bad-params`` refusal replays as one)."""
    declared = signature(spec, event)
    return {name: _decode(declared[name].type, value) if name in declared else value for name, value in raw.items()}


def _decode(declared: Type, raw: Any) -> Any:
    if declared.kind == "decimal" and isinstance(raw, str):
        try:
            return Decimal(raw)
        except (InvalidOperation, ValueError):
            return raw
    if declared.kind == "set" and isinstance(raw, list) and declared.of is not None:
        of = declared.of
        try:
            return frozenset(_decode(of, v) for v in raw)
        except TypeError:  # unhashable members: leave it for the semantics to refuse
            return raw
    return raw


def _show(where: Any) -> str:
    if not isinstance(where, Mapping):
        return repr(where)
    state = where.get("state")
    values = where.get("values")
    return f"state `{state}`" + ("" if values is None else f" with {values}")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
