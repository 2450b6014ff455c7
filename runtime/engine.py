"""The engine: deterministic, durable, audited execution of one verified spec.

Every call returns a frozen :class:`StepResult` saying what happened or why it was refused.
A refused step leaves state and variables exactly as they were and is audited all the same.
State, variables, version and the step's audit records are committed in one transaction.

The engine works in three parts: it *decides* a step (the reference semantics of
:mod:`railguard.spec.semantics`, plus the refusals the lifecycle makes: a finished or busy
instance, the reserved ``system`` id), *commits* the records the decision calls for — moving
the instance's lifecycle by :func:`railguard.runtime.lifecycle.advance`, the one function
replay and the crash harness use as well — and *runs effects* through registered handlers.

Effects run with an idempotency key. The intent is committed first (status
``effect-pending``, with a ``resume`` timer one lease away); the outcome is committed after
the handler returns. If the process dies in between, :meth:`Engine.run_due` (the
``railguard worker``) resumes the call with the same key. A failed effect, an expired timeout
without an event, or an operator's abort takes the error exit: the compensations owed run in
reverse order (each committed on its own, so none runs twice after a crash), then the instance
rests in the failure terminal. A compensation that cannot complete leaves the instance
``stuck`` — visible, never silently terminal.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from railguard.spec import Spec, Transition
from railguard.spec.semantics import SYSTEM, Fired, Refusal, Stepper, admit, fire, stepper

from .audit import (
    GENESIS,
    SLOTS,
    AuditRecord,
    Template,
    _scan,
    recordable,
    recordable_mapping,
    seal,
    seal_text,
)
from .auth import Authenticator, NotAuthenticated
from .certify import certificate_note
from .clock import Clock, SystemClock
from .codec import canonical_json, decode_params, decode_values, encode_values
from .directory import Directory
from .effects import EffectCall, Effects, RetryPolicy, effect_key
from .errors import (
    ConflictError,
    ExecutionError,
    UnknownInstance,
    UnvouchedRow,
)
from .integrity import ROW_FIELD, fields_digest, row_digest, vouch
from .lifecycle import (
    CompensatePending,
    EffectPending,
    Owed,
    Phase,
    RecordKind,
    Status,
    advance,
    decode_pending,
    exit_kind,
)
from .store import InstanceRow, NewTimer, Store, Timer, json_column, make_row, values_json

if TYPE_CHECKING:
    from .checkpoint import Checkpointer

__all__ = ["Engine", "Instance", "StepResult"]

MAX_CONFLICT_RETRIES = 50
#: How many step templates an engine keeps (one per transition, source state, actor and roles).
MAX_TEMPLATES = 4096
#: The latest a timer may be due (epoch seconds, about the year 33658): later deadlines wait
#: until then, which is to say forever.
MAX_DUE = 1e12

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Instance:
    """A snapshot of an instance."""

    id: str
    workflow: str
    state: str
    values: Mapping[str, Any]
    version: int
    status: str
    context: Mapping[str, Any] = field(default_factory=dict)
    owed: tuple[str, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.status == Status.DONE


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one call did: ``accepted`` or refused with ``code`` and ``reason``; the instance
    after it; and the audit records it wrote."""

    instance: str
    accepted: bool
    event: str | None
    code: str | None
    reason: str
    state: str
    values: Mapping[str, Any]
    version: int
    status: str
    records: tuple[AuditRecord, ...] = ()


_new = object.__new__
_SET_RESULT = tuple(StepResult.__dict__[name].__set__ for name in StepResult.__dataclass_fields__)


def _step_result(
    instance: str, accepted: bool, event: str | None, code: str | None, reason: str, state: str,
    values: Mapping[str, Any], version: int, status: str, records: tuple[AuditRecord, ...],
) -> StepResult:
    """``StepResult(...)`` with every field given, made through its slots (the same frozen
    value at about half the cost of the dataclass ``__init__``; one per call)."""
    result: StepResult = _new(StepResult)
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = _SET_RESULT
    s0(result, instance)
    s1(result, accepted)
    s2(result, event)
    s3(result, code)
    s4(result, reason)
    s5(result, state)
    s6(result, values)
    s7(result, version)
    s8(result, status)
    s9(result, records)
    return result


class Engine:
    """Runs instances of ``spec`` on ``store``.

    ``certificate`` must be a certificate of this exact spec recording no failure, signed by
    one of ``trusted_keys`` (a :class:`~railguard.verifier.keys.TrustSet` or public keys; see
    :mod:`railguard.verifier.certificate`); otherwise the engine refuses to run unless
    ``allow_unverified`` gives a reason, which is written into every instance's first record.
    ``operators`` are the directory roles allowed to abort an instance or retry a stuck one.
    ``authenticator``, when given, turns the ``actor`` every command is called with (then a
    credential) into the principal that acts (see :mod:`railguard.runtime.auth`); without
    one, ``actor`` is trusted as the authenticated caller. ``checkpoints`` writes signed tree
    heads of the store's global log as records are committed (see
    :mod:`railguard.runtime.checkpoint`). ``earlier_specs`` are the earlier versions of the spec
    that migrated instances ran on: the engine replays an instance's log before it acts on a
    row it did not write, and a log that began on another spec replays only with that spec.
    """

    def __init__(
        self,
        spec: Spec,
        store: Store,
        directory: Directory,
        *,
        effects: Effects | None = None,
        clock: Clock | None = None,
        certificate: Any = None,
        trusted_keys: Any = None,
        allow_unverified: str | None = None,
        retry: RetryPolicy | None = None,
        lease: float = 30.0,
        operators: frozenset[str] = frozenset({"operator"}),
        worker: str = "",
        authenticator: Authenticator | None = None,
        checkpoints: Checkpointer | None = None,
        earlier_specs: Sequence[Spec] = (),
    ) -> None:
        self.spec = spec
        self.store = store
        self.directory = directory
        self.effects = effects or Effects()
        self.clock = clock or SystemClock()
        self.retry = retry or RetryPolicy()
        self.lease = lease
        self.operators = operators
        self.worker = worker
        self.authenticator = authenticator
        self.checkpoints = checkpoints
        self.earlier_specs = tuple(earlier_specs)
        self.certificate_note = self._check_certificate(certificate, trusted_keys, allow_unverified)
        # the rows this engine last committed: each with its phase, its decoded values (if
        # known) and its row digest (see `fire` and `_vouch`)
        self._recent: dict[str, tuple[InstanceRow, Phase, Mapping[str, Any] | None, str]] = {}
        # the canonical JSON of accepted steps without an effect, by what fixes all of it but
        # the values, params, time, row digest and position (see `_step_text`); None: off
        self._templates: dict[tuple[Any, ...], Template | None] | None = {}
        # the decoded fixed part of each template's record, by the same key (see `_payload`)
        self._skeletons: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        # what an accepted step without an effect does to the lifecycle and the timers, by its
        # transition, source, target and status (see `_complete`)
        self._steppers: dict[tuple[str, str], Stepper] = {}
        self._plans: dict[tuple[Any, ...], tuple[Transition, Phase, tuple[str, ...], Status | None]] = {}
        missing = sorted(handler_names(spec) - set(self.effects.handlers))
        if missing:
            raise ExecutionError(f"spec `{spec.name}` uses effect `{missing[0]}`, which has no registered handler")

    def _check_certificate(self, certificate: Any, trusted_keys: Any, allow_unverified: str | None) -> dict[str, Any]:
        return certificate_note(self.spec, certificate, trusted_keys, allow_unverified)

    # ------------------------------------------------------------------ queries

    def get(self, instance: str) -> Instance:
        """The instance's current state, variables, version and status."""
        return self.snapshot(self._row(instance))

    def history(self, instance: str) -> list[AuditRecord]:
        """The instance's audit records, oldest first."""
        self._row(instance)
        return self.store.audit(instance)

    def snapshot(self, row: InstanceRow) -> Instance:
        """The :class:`Instance` a stored row describes, values decoded by the spec's types."""
        return Instance(
            id=row.id,
            workflow=row.workflow,
            state=row.state,
            values=decode_values(self.spec, row.values),
            version=row.version,
            status=row.status,
            context=decode_values(self.spec, row.context),
            owed=tuple(c["compensate"] for c in row.compensations),
        )

    # ------------------------------------------------------------------ commands

    def start(self, instance: str, actor: str, context: Mapping[str, Any] | None = None) -> StepResult:
        """Create an instance in the initial state. ``context`` supplies the ``context: true``
        variables; each must be given and lie in its domain."""
        if not actor or actor == SYSTEM:
            raise ExecutionError("an instance is started by an authenticated principal")
        if self.authenticator is not None:
            actor = self.authenticator.authenticate(actor)
        spec = self.spec
        values = spec.initial_values()
        values.update(self._context(dict(context or {})))
        context_values = {v.name: values[v.name] for v in spec.variables if v.context}
        state = spec.initial_state.name
        now = self._ts()
        blank = InstanceRow(
            id=instance, workflow=spec.name, spec_hash=spec.content_hash, state=state, values={}, version=0,
            status=Status.ACTIVE, audit_head=GENESIS, created_at=now, updated_at=now,
        )
        payload = {
            "kind": RecordKind.START,
            "actor": actor,
            "roles": sorted(self.directory.roles_of(actor)),
            "after": {"state": state, "values": encode_values(values)},
            "context": encode_values(context_values),
            "certificate": self.certificate_note,
        }
        phase = advance(spec, None, RecordKind.START, target=state)
        row = replace(blank, values=encode_values(values), context=encode_values(context_values), version=1)
        digest = row_digest(row)
        records, head, version = self._chain(blank, [payload], digest=digest)
        row = replace(row, audit_head=head)
        self.store.create(row, records, self._timeout_timer(instance, state, version))
        if self.checkpoints is not None:
            self.checkpoints.committed(self.store, len(records))
        self._remember(row, phase, values, digest)
        return self._result(row, records, accepted=True, event=None)

    def fire(self, instance: str, event: str, actor: str, params: Mapping[str, Any] | None = None) -> StepResult:
        """Fire ``event`` as the authenticated ``actor``. Refusals are audited and change nothing."""
        given = dict(params or {})
        if self.authenticator is not None:
            try:
                actor = self.authenticator.authenticate(actor)
            except NotAuthenticated as exc:
                why = str(exc)
                return self._retrying(instance, f"`{event}` was not refused", lambda row: self._refuse(row, event, "", frozenset(), given, "permission-denied", why))
        # The row this engine last committed is used optimistically: if another writer moved
        # the instance on, the commit's version check fails and the step is re-decided on a
        # fresh read.
        known = self._recent.get(instance)
        if known is not None:
            try:
                return self._fire_row(known[0], event, actor, given, system=False)
            except ConflictError:
                pass
        return self._retrying(instance, f"`{event}` was not applied", lambda row: self._fire_row(row, event, actor, given, system=False))

    def abort(self, instance: str, actor: str, reason: str) -> StepResult:
        """An operator takes the error exit: owed compensations run, the instance rests in the
        failure terminal. Refused (and audited) unless ``actor`` holds an operator role."""

        def act(row: InstanceRow, operator: str, roles: frozenset[str]) -> StepResult:
            payload = {"kind": RecordKind.ABORT, "actor": operator, "roles": sorted(roles), "reason": reason, "state": row.state}
            return self._error_exit(row, f"aborted by `{operator}`: {reason}", payload)

        return self._as_operator(instance, actor, RecordKind.ABORT, Status.ACTIVE, act)

    def retry_stuck(self, instance: str, actor: str) -> StepResult:
        """An operator retries the compensations of a stuck instance."""

        def act(row: InstanceRow, operator: str, roles: frozenset[str]) -> StepResult:
            payload = {"kind": RecordKind.RETRY, "actor": operator, "roles": sorted(roles), "state": row.state}
            phase = advance(self.spec, self._phase(row), RecordKind.RETRY, reason="operator retry")
            new, records = self._commit(row, [payload], phase, timers=[self._resume_timer(row)])
            result = self._settle(new)
            return self._joined(records, result, accepted=result.status == Status.DONE)

        return self._as_operator(instance, actor, RecordKind.RETRY, Status.STUCK, act)

    def run_due(self, limit: int = 10) -> list[StepResult]:
        """Do the work that is due: expired timeouts, and effects or compensations whose process
        died (their lease expired). Returns what each piece of work did."""
        results = []
        for timer in self.store.claim_due(self._ts(), self.lease, limit, self.worker):
            owner = self.store.get(timer.instance)
            if owner is not None and (owner.workflow != self.spec.name or owner.spec_hash != self.spec.content_hash):
                continue  # another spec's work in a shared store: its claim lapses for that engine
            try:
                outcome = self._run_timer(timer)
            except ConflictError:
                continue  # the instance moved under us, its work maybe unfinished: look again after the lease
            except Exception as exc:  # one instance's failure must not stop the work of the others
                results.append(self._worker_failure(timer, exc))
                continue  # its claim lapses after the lease and the work is tried again
            self.store.finish_timer(timer.id)
            if outcome is not None:
                results.append(outcome)
        return results

    # ------------------------------------------------------------------ deciding a step

    def _context(self, given: dict[str, Any]) -> dict[str, Any]:
        """The ``context: true`` variables from what the caller gave, each admitted into its
        domain like a param; ExecutionError for a missing, unknown or out-of-domain one."""
        spec = self.spec
        found: dict[str, Any] = {}
        for variable in spec.variables:
            if not variable.context:
                continue
            if variable.name in given:
                value, problem = admit(variable.type, given.pop(variable.name))
                if problem is not None:
                    raise ExecutionError(f"context variable `{variable.name}` {problem}")
                found[variable.name] = value
            elif variable.initial is None and variable.type.kind != "principal":
                raise ExecutionError(f"context variable `{variable.name}` must be supplied when an instance starts")
        if given:
            raise ExecutionError(f"`{sorted(map(str, given))[0]}` is not a context variable of `{spec.name}`")
        return found

    def _decide(self, row: InstanceRow, event: str, actor: str, roles: frozenset[str], params: Mapping[str, Any], *, system: bool) -> Fired | Refusal:
        """What the step would do, without doing it: the lifecycle's own refusals first, then
        the reference semantics."""
        if not system and (not actor or actor == SYSTEM):
            return Refusal("permission-denied", f"`{actor}` is not an authenticated principal", event, row.state)
        if row.status != Status.ACTIVE:
            if row.status == Status.DONE:
                return Refusal("not-enabled", f"instance `{row.id}` has finished in state `{row.state}`", event, row.state)
            why = f"instance `{row.id}` is stuck and needs an operator" if row.status == Status.STUCK else f"instance `{row.id}` is busy ({row.status})"
            return Refusal("busy", why, event, row.state)  # type: ignore[arg-type]
        # `fire` is `stepper(spec, state, event)(...)`: the step function of each (state, event)
        # this engine meets is kept (at most one per pair of the spec's states and events).
        key = (row.state, event)
        try:
            step = self._steppers.get(key)
        except TypeError:  # an unhashable "event": refused by `fire`
            return fire(self.spec, row.state, self._values(row), event, actor, roles, params, system=system)
        if step is None:
            step = stepper(self.spec, row.state, event)
            if event.__class__ is str and event in self.spec.events:
                self._steppers[key] = step
        return step(self._values(row), actor, roles, params, system)

    def _fire_row(self, row: InstanceRow, event: str, actor: str, params: dict[str, Any], *, system: bool) -> StepResult:
        roles = frozenset() if system else self.directory.roles_of(actor)
        outcome = self._decide(row, event, actor, roles, params, system=system)
        if isinstance(outcome, Refusal):
            return self._refuse(row, event, actor, roles, params, outcome.code, outcome.message)
        transition = outcome.transition
        if transition.effect is None and self._templates is not None:
            known = self._step_known(row, event, actor, roles, outcome, system)
            if known is not None:
                return known
        base = {
            "event": event,
            "actor": actor,
            "roles": sorted(roles),
            "params": encode_values(outcome.params) if outcome.params else {},
            "transition": transition.index,
            "decision": {"allowed": True, "permission": "system" if system else transition.permission},
            "before": {"state": row.state, "values": row.values},
        }
        after = encode_values(outcome.values)
        if transition.effect is None:
            return self._complete(row, base, outcome.target, after, effect=None, owed=None, decoded=outcome.values)
        step = row.version + 1
        pending = EffectPending(step=step, key=effect_key(row.id, step, transition.effect), effect=transition.effect, base=base, target=outcome.target, after=after)
        return self._call_effect(row, pending)

    def _step_known(self, row: InstanceRow, event: str, actor: str, roles: frozenset[str], outcome: Fired, system: bool) -> StepResult | None:
        """What :meth:`_complete` commits for an accepted step without an effect whose record
        template and plan this engine has already made (``None`` for any other: it goes to
        :meth:`_complete`, which makes them) — the same record text, row, timers and result,
        without building the payload the template was made from."""
        templates = self._templates
        if templates is None or event.__class__ is not str or actor.__class__ is not str:
            return None
        transition, target = outcome.transition, outcome.target
        # the shape `_complete` keys the template by
        shape = (transition.index, event, actor, tuple(sorted(roles)), "system" if system else transition.permission, row.state, target)
        template = templates.get(shape)
        if template is None:
            return None
        before = self._phase(row)
        if before.owed or before.pending is not None:
            return None
        plan = self._plans.get((transition.index, row.state, target, row.status, before.status))
        if plan is None or plan[3] is Status.COMPENSATING:
            return None
        _, phase, cancel, timer = plan
        timers = self._timeout_timer(row.id, target, row.version + 1) if timer is Status.ACTIVE else []
        params = encode_values(outcome.params) if outcome.params else {}
        values = encode_values(outcome.values)
        new, records = self._commit(
            row, [], phase, values=values, decoded=outcome.values, timers=timers, cancel=cancel, filled=(template, params, self._skeletons.get(shape))
        )
        return self._result(new, records, accepted=True, event=transition.event)

    # ------------------------------------------------------------------ committing

    def _refuse(self, row: InstanceRow, event: str, actor: str, roles: frozenset[str], params: Mapping[str, Any], code: str, reason: str) -> StepResult:
        event, reason = _text(event), _text(reason)
        payload = {
            "kind": RecordKind.REFUSAL,
            "event": event,
            "actor": _text(actor),
            "roles": sorted(roles),
            "params": recordable_mapping(params),
            "decision": {"allowed": False, "code": code, "reason": reason},
            "state": row.state,
        }
        new, records = self._commit(row, [payload], self._phase(row))
        return self._result(new, records, accepted=False, event=event, code=code, reason=reason)

    def _as_operator(
        self, instance: str, actor: str, command: RecordKind, needed: Status, act: Callable[[InstanceRow, str, frozenset[str]], StepResult]
    ) -> StepResult:
        """Run an operator command: refused (and audited) for a caller without an operator role
        or an instance that is not ``needed``; else ``act(row, operator, roles)``."""
        operator = actor
        if self.authenticator is not None:
            try:
                operator = self.authenticator.authenticate(actor)
            except NotAuthenticated:
                operator = ""

        def attempt(row: InstanceRow) -> StepResult:
            roles = self.directory.roles_of(operator)
            if not roles & self.operators:
                return self._refuse(row, command, operator, roles, {}, "permission-denied", f"`{operator}` is not an operator")
            if row.status != needed:
                busy = f"instance `{row.id}` is not stuck" if needed == Status.STUCK else f"instance `{row.id}` is {row.status}"
                return self._refuse(row, command, operator, roles, {}, "busy", busy)
            return act(row, operator, roles)

        return self._retrying(instance, f"the {command} was not applied", attempt)

    def _complete(
        self, row: InstanceRow, base: dict[str, Any], target: str, after: dict[str, Any], *,
        effect: dict[str, Any] | None, owed: Owed | None, decoded: Mapping[str, Any] | None = None,
    ) -> StepResult:
        """Commit an accepted step into ``target`` (with the outcome of its effect, if any)."""
        before = self._phase(row)
        payload = {**base, "kind": RecordKind.STEP, "after": {"state": target, "values": after}, "effect": effect}
        # A step without an effect, from a phase that owes nothing and has nothing in flight,
        # moves the lifecycle and the timers by its transition, source, target and status alone.
        key = None
        if effect is None and owed is None and not before.owed and before.pending is None:
            key = (base["transition"], row.state, target, row.status, before.status)
            plan = self._plans.get(key)
        else:
            plan = None
        if plan is None:
            plan = self._plan(row, base["transition"], before, target, effect=effect, owed=owed)
            if key is not None:
                if len(self._plans) >= MAX_TEMPLATES:
                    self._plans.clear()
                self._plans[key] = plan
        transition, phase, cancel, timer = plan
        timers: list[NewTimer] = []
        if timer is Status.COMPENSATING:
            timers = [self._resume_timer(row)]
        elif timer is Status.ACTIVE:
            timers = self._timeout_timer(row.id, target, row.version + 1)
        shape = None
        if effect is None and base["actor"].__class__ is str and base["event"].__class__ is str:
            # Everything in this record but the slots of `_step_text` follows from these.
            shape = (transition.index, base["event"], base["actor"], tuple(base["roles"]), base["decision"]["permission"], row.state, target)
        new, records = self._commit(row, [payload], phase, values=after, decoded=decoded, timers=timers, cancel=cancel, shape=shape)
        if phase.status == Status.COMPENSATING:
            return self._joined(records, self._settle(new), accepted=True, event=transition.event, code=None, reason="")
        return self._result(new, records, accepted=True, event=transition.event)

    def _plan(
        self, row: InstanceRow, index: int, before: Phase, target: str, *, effect: dict[str, Any] | None, owed: Owed | None
    ) -> tuple[Transition, Phase, tuple[str, ...], Status | None]:
        """What an accepted step of transition ``index`` from ``row`` (in phase ``before``) into
        ``target`` does to the lifecycle and the timers: the transition, the phase after it
        (:func:`advance`, which raises for a step that cannot happen now), the timer kinds it
        cancels, and which timer it adds — a resume timer (``COMPENSATING``), a timeout of
        ``target`` if it has one (``ACTIVE``) or none (``None``)."""
        spec = self.spec
        transition = spec.transitions[index - 1]
        # the reason is used only by a step into a failure terminal
        reason = f"{transition.label} entered failure terminal `{target}`" if spec.state_map[target].terminal == "failure" else ""
        phase = advance(spec, before, RecordKind.STEP, target=target, owed=owed, reason=reason)
        # Only touch timers the instance can have: a timeout of the state it leaves, or the
        # resume timer of an effect or compensation in flight.
        cancel = []
        if spec.state_map[row.state].timeout is not None:
            cancel.append("timeout")
        if effect is not None or row.status != Status.ACTIVE:
            cancel.append("resume")
        timer: Status | None = None
        if phase.status == Status.COMPENSATING:
            timer = Status.COMPENSATING
        elif phase.status == Status.ACTIVE:
            if target == row.state:  # a step that keeps the state (a tool-like self-loop) keeps its deadline
                cancel = ["resume"]
            elif spec.state_map[target].timeout is not None:
                timer = Status.ACTIVE
        return transition, phase, tuple(cancel), timer

    def _error_exit(self, row: InstanceRow, reason: str, payload: dict[str, Any]) -> StepResult:
        """Commit the record that begins the error exit (an effect failed, a timeout, an abort),
        then run the compensations owed. In a state without an error exit the instance is
        stuck at once, and the record says so."""
        phase = advance(self.spec, self._phase(row), payload["kind"], reason=reason)
        if phase.status == Status.STUCK:
            why = f"{reason}; state `{row.state}` has no error exit"
            new, records = self._commit(row, [{**payload, "stuck": why}], phase, cancel=("timeout", "resume"))
            return self._result(new, records, accepted=False, event=None, code="stuck", reason=why)
        new, records = self._commit(row, [payload], phase, timers=[self._resume_timer(row)], cancel=("timeout",))
        result = self._settle(new)
        code, why = (result.code, f"{reason}; then {result.reason}") if result.status == Status.STUCK else ("error-exit", reason)
        return self._joined(records, result, accepted=False, event=None, code=code, reason=why)

    def _commit(
        self,
        row: InstanceRow,
        payloads: list[dict[str, Any]],
        phase: Phase,
        *,
        values: dict[str, Any] | None = None,
        decoded: Mapping[str, Any] | None = None,
        timers: Sequence[NewTimer] = (),
        cancel: tuple[str, ...] = (),
        shape: tuple[Any, ...] | None = None,
        filled: tuple[Template, dict[str, Any], dict[str, Any] | None] | None = None,
    ) -> tuple[InstanceRow, list[AuditRecord]]:
        """Write ``payloads`` as the next audit records and the row as ``phase`` leaves it, in one
        transaction; ConflictError if another writer moved the instance first. ``shape``: the
        one payload is an accepted step without an effect, fixed but for its slots by ``shape``
        (see :meth:`_step_text`). ``filled``: instead of ``payloads`` (then empty), one such
        step's record, from its template and its encoded params (see :meth:`_step_known`)."""
        now = self._now()
        # The values are encoded once, for the row digest and the row's column alike.
        if values is None:
            after, text = row.values, values_json(row)
        else:
            after, text = values, json_column(values)
        pending = None if phase.pending is None else phase.pending.to_json()
        owed = [o.to_json() for o in phase.owed] if phase.owed else []
        version = row.version + (1 if filled is not None else len(payloads))
        digest = fields_digest(row.id, row.workflow, row.spec_hash, phase.state, after, version, phase.status, row.context, pending, owed, values_json=text)
        if filled is not None:
            template, params, skeleton = filled
            at = now.astimezone(UTC).isoformat()
            stored = None if skeleton is None else _payload(skeleton, at, row, params, digest, text, version)
            record = seal_text(row.id, row.audit_head, version, _fill(template, row, params, now, digest, text, at), stored)
            records, head = [record], record.hash
        elif shape is not None and len(payloads) == 1 and self._templates is not None:
            record = seal_text(row.id, row.audit_head, version, self._step_text(row, payloads[0], shape, now, digest, text))
            records, head = [record], record.hash
        else:
            records, head, _ = self._chain(row, payloads, now, digest=digest)
        new = make_row(
            row.id, row.workflow, row.spec_hash, phase.state, after, version, phase.status, head,
            row.context, pending, owed, row.created_at, now.timestamp(), (after, text),
        )
        known = self._recent.pop(row.id, None)
        if values is None and known is not None and known[0] is row:
            decoded = known[2]  # the values did not change
        self.store.commit(new, row.version, records, timers, cancel)
        if self.checkpoints is not None:
            self.checkpoints.committed(self.store, len(records))
        self._remember(new, phase, decoded, digest)
        return new, records

    def _remember(self, row: InstanceRow, phase: Phase, decoded: Mapping[str, Any] | None, digest: str) -> None:
        """Keep the row this engine just wrote, with its phase, decoded values and digest."""
        if len(self._recent) > 1024:
            self._recent.clear()
        self._recent[row.id] = (row, phase, decoded, digest)

    def _chain(
        self, row: InstanceRow, payloads: list[dict[str, Any]], now: datetime | None = None, *, digest: str
    ) -> tuple[list[AuditRecord], str, int]:
        """The records of ``payloads`` following ``row``'s head; the last one carries
        ``digest``, that of the row after them (see :func:`~railguard.runtime.integrity.vouch`)."""
        records = []
        head, seq = row.audit_head, row.version
        at = (now or self._now()).astimezone(UTC).isoformat()
        name, spec_hash = self.spec.name, self.spec.content_hash
        for number, payload in enumerate(payloads, 1):
            seq += 1
            body = {"workflow": name, "spec_hash": spec_hash, "at": at, **payload}
            if number == len(payloads):
                body[ROW_FIELD] = digest
            record = seal(row.id, head, seq, body)
            records.append(record)
            head = record.hash
        return records, head, seq

    def _step_text(self, row: InstanceRow, payload: dict[str, Any], shape: tuple[Any, ...], now: datetime, digest: str, values: str) -> str:
        """The canonical JSON of the record :meth:`_chain` would make of ``payload`` (an accepted
        step without an effect following ``row``, ``values`` the canonical JSON of the values
        after it), from the template of its ``shape``: only the time, the values before and
        after, the params, the row digest, the instance and the position are encoded. The
        template is made from the first such payload, laid out as :meth:`_chain` lays out a
        body, with those seven values left open; the shape fixes every other value in it (a
        test holds the records of both ways byte-equal)."""
        templates = self._templates
        assert templates is not None
        if shape in templates:
            template = templates[shape]
        else:
            body = {
                "workflow": self.spec.name, "spec_hash": self.spec.content_hash, "at": SLOTS[0], **payload,
                "before": {**payload["before"], "values": SLOTS[1]}, "after": {**payload["after"], "values": SLOTS[2]},
                "params": SLOTS[3], ROW_FIELD: SLOTS[4], "instance": SLOTS[5], "seq": SLOTS[6],
            }
            if len(templates) >= MAX_TEMPLATES:
                templates.clear()
                self._skeletons.clear()
            template = templates[shape] = Template.of(body, 7)
            self._skeletons[shape] = None if template is None else _skeleton(canonical_json(body))
        if template is None:  # its fixed text holds a placeholder: encoded whole, by `_chain`
            return self._chain(row, [payload], now, digest=digest)[0][0].payload_json()
        return _fill(template, row, payload["params"], now, digest, values)

    def _values(self, row: InstanceRow) -> Mapping[str, Any]:
        """The row's variables decoded by the spec's types (remembered for the row this engine
        last committed; never handed out without a copy)."""
        known = self._recent.get(row.id)
        if known is not None and known[0] is row and known[2] is not None:
            return known[2]
        return decode_values(self.spec, row.values)

    def _phase(self, row: InstanceRow) -> Phase:
        """The lifecycle position a stored row is in."""
        known = self._recent.get(row.id)
        if known is not None and known[0] is row:
            return known[1]
        return Phase(
            status=Status(row.status),
            state=row.state,
            owed=tuple(Owed.from_json(c) for c in row.compensations),
            pending=decode_pending(row.pending),
        )

    # ------------------------------------------------------------------ running effects

    def _call_effect(self, row: InstanceRow, pending: EffectPending) -> StepResult:
        """Commit the intent of an effect, then call it and commit its outcome."""
        base = pending.base
        payload = {
            **base,
            "kind": RecordKind.EFFECT_CALL,
            "effect": {"name": pending.effect, "key": pending.key},
            "intended": {"state": pending.target, "values": pending.after},
        }
        phase = advance(self.spec, self._phase(row), RecordKind.EFFECT_CALL, pending=pending)
        resume = NewTimer(row.id, "resume", self._ts() + self.lease, pending.step, {})
        new, records = self._commit(row, [payload], phase, timers=[resume])
        return self._joined(records, self._settle(new), event=base["event"])

    def _settle(self, row: InstanceRow) -> StepResult:
        """Finish ``row``'s pending work (an effect's outcome, owed compensations). A commit that
        loses to another writer — a refusal appended meanwhile, or a worker that resumed the same
        call — is retried on the fresh row (the handler sees the same key again), never by firing
        the event again: the event was accepted when its intent was committed. If someone else
        finished the work, the result is the instance as they left it."""

        def attempt(current: InstanceRow) -> StepResult:
            pending = decode_pending(current.pending)
            if current.status == Status.EFFECT_PENDING and isinstance(pending, EffectPending):
                return self._run_pending(current, pending)
            if current.status == Status.COMPENSATING and isinstance(pending, CompensatePending):
                return self._compensate(current, pending)
            return self._result(current, [], accepted=current.status != Status.STUCK, event=None)

        return self._retrying(row.id, "its pending work is left to `run_due`", attempt, row)

    def _run_pending(self, row: InstanceRow, pending: EffectPending) -> StepResult:
        base = pending.base
        call = EffectCall(
            key=pending.key, instance=row.id, workflow=self.spec.name, step=pending.step, effect=pending.effect,
            event=base["event"], params=decode_params(self.spec, base["event"], base["params"]), values=decode_values(self.spec, pending.after),
        )
        ok, result, attempts = self._call(pending.effect, call)
        effect = {"name": pending.effect, "key": pending.key, "step": pending.step, "ok": ok, "attempts": attempts}
        if ok:
            effect["result"] = result
            transition = self.spec.transitions[pending.transition - 1]
            owed = None
            if transition.compensate is not None:
                owed = Owed(compensate=transition.compensate, step=pending.step, event=transition.event, params=base["params"], after=pending.after)
            return self._complete(row, dict(base), pending.target, dict(pending.after), effect=effect, owed=owed)
        effect["error"] = result
        reason = f"effect `{pending.effect}` failed after {attempts} attempt{'s' if attempts != 1 else ''}: {result}"
        payload = {"kind": RecordKind.EFFECT_FAILED, "event": base["event"], "actor": base["actor"], "effect": effect, "state": row.state}
        return self._error_exit(row, reason, payload)

    def _compensate(self, row: InstanceRow, pending: CompensatePending) -> StepResult:
        """Run the owed compensations in reverse order, each committed on its own; then rest
        in the failure terminal, or become ``stuck`` if one cannot complete."""
        written: list[AuditRecord] = []
        phase = self._phase(row)
        while phase.owed:
            owed = phase.owed[-1]
            key = effect_key(row.id, owed.step, owed.compensate)
            call = EffectCall(
                key=key, instance=row.id, workflow=self.spec.name, step=owed.step, effect=owed.compensate,
                event=owed.event, params=decode_params(self.spec, owed.event, owed.params), values=decode_values(self.spec, owed.after), compensation=True,
            )
            ok, result, attempts = self._call(owed.compensate, call)
            info = {"name": owed.compensate, "key": key, "step": owed.step, "ok": ok, "attempts": attempts, ("result" if ok else "error"): result}
            if not ok:
                why = f"compensation `{owed.compensate}` failed after {attempts} attempts: {result}"
                payload: dict[str, Any] = {"kind": RecordKind.STUCK, "reason": why, "compensation": info, "state": row.state}
                phase = advance(self.spec, phase, RecordKind.STUCK)
                row, records = self._commit(row, [payload], phase, cancel=("resume",))
                written.extend(records)
                return self._result(row, written, accepted=False, event=None, code="stuck", reason=why)
            payload = {"kind": RecordKind.COMPENSATION, "compensation": info, "state": row.state}
            phase = advance(self.spec, phase, RecordKind.COMPENSATION)
            row, records = self._commit(row, [payload], phase)
            written.extend(records)
        kind = exit_kind(phase)
        payload = {"kind": kind, "reason": pending.reason, "before": {"state": row.state}, "after": {"state": pending.target}}
        phase = advance(self.spec, phase, kind)
        row, records = self._commit(row, [payload], phase, cancel=("resume", "timeout"))
        written.extend(records)
        return self._result(row, written, accepted=False, event=None, code="error-exit", reason=pending.reason)

    def _call(self, name: str, call: EffectCall) -> tuple[bool, Any, int]:
        """Call a handler under its retry policy: (succeeded, result or error text, attempts)."""
        policy = self.effects.policy(name, self.retry)
        handler = self.effects.handler(name)
        error = ""
        for attempt in range(1, max(policy.attempts, 1) + 1):
            try:
                result = handler(replace(call, attempt=attempt))
            except Exception as exc:  # a handler's failure is data, not a crash of the engine
                error = f"{type(exc).__name__}: {exc}".strip()
                if attempt < policy.attempts:
                    self.clock.sleep(policy.delay(attempt))
                continue
            return True, recordable(result), attempt
        return False, error or "the handler failed", policy.attempts

    # ------------------------------------------------------------------ due work

    def _worker_failure(self, timer: Timer, exc: Exception) -> StepResult:
        """What :meth:`run_due` reports for work that raised: the instance as it is, refused
        with code ``worker-error`` and the error in one sentence."""
        first = (str(exc).splitlines() or [""])[0][:300]
        reason = f"the {timer.kind} work of instance `{timer.instance}` failed ({type(exc).__name__}: {first}); it is tried again after the lease"
        row = self.store.get(timer.instance)
        if row is None:
            return StepResult(instance=timer.instance, accepted=False, event=None, code="worker-error", reason=reason, state="", values={}, version=0, status="missing")
        return self._result(row, [], accepted=False, event=None, code="worker-error", reason=reason)

    def _run_timer(self, timer: Timer) -> StepResult | None:
        row = self.store.get(timer.instance)
        if row is None or row.workflow != self.spec.name:
            return None
        self._vouch(row)
        if timer.kind == "resume":
            if row.status in (Status.EFFECT_PENDING, Status.COMPENSATING) and row.pending is not None:
                return self._settle(row)
            return None
        if timer.kind == "timeout":
            # Not the version: a refusal bumps it but changes nothing. Every step that leaves the
            # state cancels its timer, so an active instance still in the timer's state is live.
            if row.status != Status.ACTIVE or row.state != timer.payload.get("state"):
                return None
            timeout = self.spec.state_map[row.state].timeout
            if timeout is None:
                return None
            if timeout.event is not None:
                return self._fire_row(row, timeout.event, SYSTEM, {}, system=True)
            payload = {"kind": RecordKind.TIMEOUT, "state": row.state, "after_seconds": timeout.seconds}
            return self._error_exit(row, f"state `{row.state}` timed out after {timeout.seconds} s", payload)
        return None

    # ------------------------------------------------------------------ helpers

    def _retrying(self, instance: str, what: str, attempt: Callable[[InstanceRow], _T], row: InstanceRow | None = None) -> _T:
        """Run ``attempt`` on the instance's row, again on a fresh read each time another
        writer commits first (optimistic versioning); ConflictError after
        :data:`MAX_CONFLICT_RETRIES` losses."""
        for _ in range(MAX_CONFLICT_RETRIES):
            if row is None:
                row = self._row(instance)
            try:
                return attempt(row)
            except ConflictError:
                row = None
        raise ConflictError(f"instance `{instance}` kept changing; {what}")

    def _row(self, instance: str) -> InstanceRow:
        """The instance's row, read fresh and vouched for by its log (read again while writers
        commit between the two reads)."""
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                return self._read_row(instance)
            except ConflictError:
                continue
        raise ConflictError(f"instance `{instance}` kept changing while its log was read")

    def _read_row(self, instance: str) -> InstanceRow:
        row = self.store.get(instance)
        if row is None:
            raise UnknownInstance(f"no instance `{instance}`")
        if row.workflow != self.spec.name:
            raise ExecutionError(f"instance `{instance}` runs workflow `{row.workflow}`, not `{self.spec.name}`")
        if row.spec_hash != self.spec.content_hash:
            raise ExecutionError(
                f"instance `{instance}` was started under spec {row.spec_hash[:19]}, not {self.spec.content_hash[:19]}; "
                "finish it with the spec it started with"
            )
        self._vouch(row)
        return row

    def _vouch(self, row: InstanceRow) -> None:
        """Refuse (UnvouchedRow) a row that its audit log does not vouch for: its last record
        must carry the row's digest and the log must replay to it under this spec.

        A row read back as this engine last wrote it needs no reading of the log: at the same
        version and audit head (the record this engine wrote and vouched the row with) and with
        the same digest — the canonical JSON of everything the engine acts on, so an edit that
        Python's ``==`` would not see (``1`` for ``true``, ``1.0`` for ``1``) is still seen."""
        known = self._recent.get(row.id)
        if known is not None:
            mine = known[0]
            if mine is row or (mine.version == row.version and mine.audit_head == row.audit_head and known[3] == row_digest(row)):
                return
        from .replay import replay_log

        records = self.store.audit(row.id)
        found = vouch(row, records)
        why = str(found) if found is not None else None
        if why is None:
            replayed = replay_log(self.spec, records, row.id, specs=self.earlier_specs)
            if replayed.ok:
                return
            why = str(replayed.mismatch)
        # The row and the log are two reads: a writer that committed in between is a conflict
        # (read again), not tampering. A row unchanged across the log read is what the log says.
        if self.store.get(row.id) != row:
            raise ConflictError(f"instance `{row.id}` changed while its log was read")
        raise UnvouchedRow(f"instance `{row.id}` is not vouched for by its audit log, so the engine does not act on it: {why}")

    def _result(
        self, row: InstanceRow, records: Sequence[AuditRecord], *, accepted: bool, event: str | None, code: str | None = None, reason: str = ""
    ) -> StepResult:
        return _step_result(row.id, accepted, event, code, reason, row.state, dict(self._values(row)), row.version, row.status, tuple(records))

    @staticmethod
    def _joined(records: Sequence[AuditRecord], result: StepResult, **changes: Any) -> StepResult:
        """``result`` preceded by the ``records`` committed before it, with fields replaced."""
        return replace(result, records=(*records, *result.records), **changes)

    def _resume_timer(self, row: InstanceRow) -> NewTimer:
        return NewTimer(row.id, "resume", self._ts() + self.lease, row.version + 1, {})

    def _timeout_timer(self, row_id: str, state: str, version: int) -> list[NewTimer]:
        timeout = self.spec.state_map[state].timeout
        if timeout is None:
            return []
        # Epoch seconds as a float, never a datetime: a deadline thousands of years away
        # (`3000000d`) is far, not an overflow.
        due = min(self._ts() + float(timeout.seconds), MAX_DUE)
        return [NewTimer(row_id, "timeout", due, version, {"state": state})]

    def _now(self) -> datetime:
        return self.clock.now()

    def _ts(self) -> float:
        return self._now().timestamp()



#: What canonical JSON makes of a str (json's string encoder, ``ensure_ascii=False``).
_json_text = json.encoder.encode_basestring


def _fill(template: Template, row: InstanceRow, params: dict[str, Any], now: datetime, digest: str, values: str, at: str | None = None) -> str:
    """The record text of a step following ``row`` from its :meth:`Engine._step_text` template:
    the time (``at``, its text, if given), the values before and after (``values``), the
    params, the row digest, the instance and the position, each encoded into its slot."""
    return template.fill((
        _json_text(now.astimezone(UTC).isoformat() if at is None else at), values_json(row), values,
        canonical_json(params) if params else "{}", _json_text(digest),
        _json_text(row.id) if row.id.__class__ is str else canonical_json(row.id), int.__repr__(row.version + 1),
    ))


#: The keys of an accepted step's record without an effect, as `Engine._step_text` lays it out.
_STEP_KEYS = frozenset({
    "workflow", "spec_hash", "at", "event", "actor", "roles", "params", "transition", "decision",
    "before", "kind", "after", "effect", ROW_FIELD, "instance", "seq",
})
_SCALARS = (str, int, float, bool, type(None))


def _skeleton(text: str) -> dict[str, Any] | None:
    """The decoded record of a step template's text (its slots still placeholders), if it has
    exactly the layout :func:`_payload` rebuilds — containers only where that copies them
    (the roles, a list of text; the decision; the states before and after) — else ``None``
    (such records are decoded from their text whole)."""
    found: dict[str, Any] = _scan(text, 0)[0]
    if found.keys() != _STEP_KEYS or found["effect"] is not None:
        return None
    if found["at"] != SLOTS[0] or found["params"] != SLOTS[3] or found[ROW_FIELD] != SLOTS[4] or found["instance"] != SLOTS[5] or found["seq"] != SLOTS[6]:
        return None
    roles, decision = found["roles"], found["decision"]
    if roles.__class__ is not list or any(r.__class__ is not str for r in roles):
        return None
    if decision.__class__ is not dict or any(v.__class__ not in _SCALARS for v in decision.values()):
        return None
    for side, slot in (("before", SLOTS[1]), ("after", SLOTS[2])):
        part = found[side]
        if part.__class__ is not dict or list(part) != ["state", "values"] or part["state"].__class__ is not str or part["values"] != slot:
            return None
    if any(found[k].__class__ not in _SCALARS for k in ("workflow", "spec_hash", "event", "actor", "transition", "kind")):
        return None
    return found


def _payload(skeleton: dict[str, Any], at: str, row: InstanceRow, params: dict[str, Any], digest: str, values: str, version: int) -> dict[str, Any] | None:
    """What decoding the record text :func:`_fill` makes gives (``None`` where it cannot
    tell: an instance id that is not text), without decoding the fixed text: a JSON value
    decodes the same nested as alone, so the record is the decoded ``skeleton`` (copied: its
    containers fresh, in the same key order) with each slot's own text decoded in its place.
    A test holds the two equal, key order included."""
    instance = row.id
    if instance.__class__ is not str:
        return None
    found = dict(skeleton)
    found["at"] = at
    before, after = skeleton["before"], skeleton["after"]
    found["before"] = {"state": before["state"], "values": _scan(values_json(row), 0)[0]}
    found["after"] = {"state": after["state"], "values": _scan(values, 0)[0]}
    found["decision"] = dict(skeleton["decision"])
    found["roles"] = list(skeleton["roles"])
    found["params"] = _scan(canonical_json(params), 0)[0] if params else {}
    found[ROW_FIELD] = digest
    found["instance"] = instance
    found["seq"] = version
    return found


def _text(value: object) -> str:
    """``value`` as text an audit record can hold (a lone surrogate shown as its escape)."""
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def handler_names(spec: Spec, events: Sequence[str] | None = None) -> set[str]:
    """The effect and compensation handlers ``spec`` calls (those of ``events`` only, if given)."""
    wanted = None if events is None else set(events)
    return {
        name
        for t in spec.transitions
        if wanted is None or t.event in wanted
        for name in (t.effect, t.compensate)
        if name is not None
    }
