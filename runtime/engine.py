"""The engine: deterministic, durable, audited execution of one verified spec.

Every call returns a frozen :class:`StepResult` saying what happened or why it was refused.
A refused step leaves state and variables exactly as they were and is audited all the same.
State, variables, version and the step's audit records are committed in one transaction.

Effects run through registered handlers with an idempotency key. The intent is committed
first (status ``effect-pending``, with a ``resume`` timer one lease away); the outcome is
committed after the handler returns. If the process dies in between, :meth:`Engine.run_due`
(the ``railguard worker``) resumes the call with the same key. A failed effect, an expired
timeout without an event, or an operator's abort takes the error exit: the compensations owed
run in reverse order (each committed on its own, so none runs twice after a crash), then the
instance rests in the failure terminal. A compensation that cannot complete leaves the
instance ``stuck`` — visible, never silently terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from railguard.spec import Spec
from railguard.spec.semantics import SYSTEM, Fired, Refusal, fire

from .audit import GENESIS, AuditRecord, chain
from .clock import Clock, SystemClock
from .codec import decode_values, encode_value, encode_values
from .directory import Directory
from .effects import EffectCall, Effects, RetryPolicy, effect_key
from .errors import CertificateRequired, ConflictError, ExecutionError, UnknownInstance
from .store import InstanceRow, NewTimer, Store, row_with

__all__ = ["Engine", "Instance", "StepResult"]

MAX_CONFLICT_RETRIES = 50


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
        return self.status == "done"


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


class Engine:
    """Runs instances of ``spec`` on ``store``.

    ``certificate`` must be a certificate of this exact spec recording no failure (see
    :mod:`railguard.verifier.certificate`); otherwise the engine refuses to run unless
    ``allow_unverified`` gives a reason, which is written into every instance's first record.
    ``operators`` are the directory roles allowed to abort an instance or retry a stuck one.
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
        allow_unverified: str | None = None,
        retry: RetryPolicy | None = None,
        lease: float = 30.0,
        operators: frozenset[str] = frozenset({"operator"}),
        worker: str = "",
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
        self.certificate_note = self._check_certificate(certificate, allow_unverified)
        self._recent: dict[str, InstanceRow] = {}
        missing = sorted(
            {name for t in spec.transitions for name in (t.effect, t.compensate) if name is not None}
            - set(self.effects.handlers)
        )
        if missing:
            raise ExecutionError(f"spec `{spec.name}` uses effect `{missing[0]}`, which has no registered handler")

    def _check_certificate(self, certificate: Any, allow_unverified: str | None) -> dict[str, Any]:
        if certificate is None:
            if allow_unverified is None or not allow_unverified.strip():
                raise CertificateRequired(
                    f"spec `{self.spec.name}` ({self.spec.content_hash[:19]}) has no certificate: "
                    "run `railguard check --certificate FILE` or opt out with a written reason"
                )
            return {"verified": False, "opt_out": allow_unverified.strip()}
        from railguard.verifier.certificate import verify_certificate

        ok, reason = verify_certificate(self.spec, certificate)
        if not ok:
            raise CertificateRequired(f"the certificate does not admit spec `{self.spec.name}`: {reason}")
        return {"verified": True, "certificate": getattr(certificate, "fingerprint", None)}

    # ------------------------------------------------------------------ helpers

    def _now(self) -> datetime:
        return self.clock.now()

    def _ts(self) -> float:
        return self._now().timestamp()

    def _at(self) -> str:
        return self._now().astimezone(UTC).isoformat()

    def _row(self, instance: str) -> InstanceRow:
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
        return row

    def _record(self, row: InstanceRow, seq: int, payload: dict[str, Any]) -> AuditRecord:
        body = {"workflow": self.spec.name, "spec_hash": self.spec.content_hash, "at": self._at(), **payload}
        return chain(row.id, row.audit_head, seq, body)

    def _records(self, row: InstanceRow, payloads: list[dict[str, Any]]) -> tuple[list[AuditRecord], str, int]:
        records = []
        head, seq = row.audit_head, row.version
        for payload in payloads:
            seq += 1
            record = chain(row.id, head, seq, {"workflow": self.spec.name, "spec_hash": self.spec.content_hash, "at": self._at(), **payload})
            records.append(record)
            head = record.hash
        return records, head, seq

    def _commit(
        self,
        row: InstanceRow,
        payloads: list[dict[str, Any]],
        *,
        timers: list[NewTimer] | None = None,
        cancel: tuple[str, ...] = (),
        **changes: Any,
    ) -> tuple[InstanceRow, list[AuditRecord]]:
        records, head, version = self._records(row, payloads)
        new = row_with(row, version=version, audit_head=head, updated_at=self._ts(), **changes)
        self._recent.pop(row.id, None)
        self.store.commit(new, row.version, records, timers or [], cancel)
        if len(self._recent) > 1024:
            self._recent.clear()
        self._recent[new.id] = new
        return new, records

    def _result(self, row: InstanceRow, records: list[AuditRecord], *, accepted: bool, event: str | None, code: str | None = None, reason: str = "") -> StepResult:
        return StepResult(row.id, accepted, event, code, reason, row.state, dict(row.values), row.version, row.status, tuple(records))

    def _timeout_timer(self, row_id: str, state: str, version: int) -> list[NewTimer]:
        timeout = self.spec.state_map[state].timeout
        if timeout is None:
            return []
        due = (self._now() + timedelta(seconds=timeout.seconds)).timestamp()
        return [NewTimer(row_id, "timeout", due, version, {"state": state})]

    def snapshot(self, row: InstanceRow) -> Instance:
        owed = tuple(c["compensate"] for c in row.compensations)
        return Instance(row.id, row.workflow, row.state, decode_values(self.spec, row.values), row.version, row.status, decode_values(self.spec, row.context), owed)

    # ------------------------------------------------------------------ queries

    def get(self, instance: str) -> Instance:
        """The instance's current state, variables, version and status."""
        return self.snapshot(self._row(instance))

    def history(self, instance: str) -> list[AuditRecord]:
        """The instance's audit records, oldest first."""
        self._row(instance)
        return self.store.audit(instance)

    # ------------------------------------------------------------------ start

    def start(self, instance: str, actor: str, context: Mapping[str, Any] | None = None) -> StepResult:
        """Create an instance in the initial state. ``context`` supplies the ``context: true``
        variables; each must be given and lie in its domain."""
        if not actor or actor == SYSTEM:
            raise ExecutionError("an instance is started by an authenticated principal")
        spec = self.spec
        values = spec.initial_values()
        given = dict(context or {})
        for variable in spec.variables:
            if not variable.context:
                continue
            if variable.name in given:
                raw = given.pop(variable.name)
                value = decode_values(spec, {variable.name: encode_value(raw) if not isinstance(raw, list | set | tuple) else sorted(raw, key=str)})[variable.name]
                if not variable.type.contains(value):
                    raise ExecutionError(f"context variable `{variable.name}` must be {variable.type.describe()}, not {raw!r}")
                values[variable.name] = value
            elif variable.initial is None and variable.type.kind != "principal":
                raise ExecutionError(f"context variable `{variable.name}` must be supplied when an instance starts")
        if given:
            raise ExecutionError(f"`{sorted(given)[0]}` is not a context variable of `{spec.name}`")
        state = spec.initial_state.name
        now = self._ts()
        blank = InstanceRow(instance, spec.name, spec.content_hash, state, {}, 0, "active", GENESIS, created_at=now, updated_at=now)
        context_values = {v.name: values[v.name] for v in spec.variables if v.context}
        payload = {
            "kind": "start",
            "actor": actor,
            "roles": sorted(self.directory.roles_of(actor)),
            "after": {"state": state, "values": encode_values(values)},
            "context": encode_values(context_values),
            "certificate": self.certificate_note,
        }
        records, head, version = self._records(blank, [payload])
        row = row_with(blank, values=encode_values(values), context=encode_values(context_values), version=version, audit_head=head)
        self.store.create(row, records, self._timeout_timer(instance, state, version))
        return self._result(row, records, accepted=True, event=None)

    # ------------------------------------------------------------------ fire

    def fire(self, instance: str, event: str, actor: str, params: Mapping[str, Any] | None = None) -> StepResult:
        """Fire ``event`` as the authenticated ``actor``. Refusals are audited and change nothing."""
        # The row this engine last committed is used optimistically: if another writer moved
        # the instance on, the commit's version check fails and the step is re-decided on a
        # fresh read.
        row = self._recent.pop(instance, None)
        for _ in range(MAX_CONFLICT_RETRIES):
            if row is None:
                row = self._row(instance)
            try:
                return self._fire_once(row, event, actor, dict(params or {}), system=False)
            except ConflictError:
                row = None
                continue
        raise ConflictError(f"instance `{instance}` kept changing; `{event}` was not applied")

    def _refuse(self, row: InstanceRow, event: str, actor: str, roles: frozenset[str], params: Mapping[str, Any], code: str, reason: str) -> StepResult:
        payload = {
            "kind": "refusal",
            "event": event,
            "actor": actor,
            "roles": sorted(roles),
            "params": _safe(params),
            "decision": {"allowed": False, "code": code, "reason": reason},
            "state": row.state,
        }
        new, records = self._commit(row, [payload])
        return self._result(new, records, accepted=False, event=event, code=code, reason=reason)

    def _fire_once(self, row: InstanceRow, event: str, actor: str, params: dict[str, Any], *, system: bool) -> StepResult:
        roles = frozenset() if system else self.directory.roles_of(actor)
        if not system and (not actor or actor == SYSTEM):
            return self._refuse(row, event, actor, roles, params, "permission-denied", f"`{actor}` is not an authenticated principal")
        if row.status != "active":
            code = "not-enabled" if row.status == "done" else "busy"
            why = {
                "done": f"instance `{row.id}` has finished in state `{row.state}`",
                "stuck": f"instance `{row.id}` is stuck and needs an operator",
            }.get(row.status, f"instance `{row.id}` is busy ({row.status})")
            return self._refuse(row, event, actor, roles, params, code, why)
        values = decode_values(self.spec, row.values)
        outcome = fire(self.spec, row.state, values, event, actor, roles, params, system=system)
        if isinstance(outcome, Refusal):
            return self._refuse(row, event, actor, roles, params, outcome.code, outcome.message)
        transition = outcome.transition
        base = {
            "event": event,
            "actor": actor,
            "roles": sorted(roles),
            "params": encode_values(outcome.params),
            "transition": transition.index,
            "decision": {"allowed": True, "permission": "system" if system else transition.permission},
            "before": {"state": row.state, "values": row.values},
        }
        if transition.effect is None:
            return self._complete(row, outcome, base, effect=None)
        step = row.version + 1
        key = effect_key(row.id, step, transition.effect)
        pending = {
            "kind": "effect",
            "step": step,
            "key": key,
            "effect": transition.effect,
            "base": base,
            "target": outcome.target,
            "after": encode_values(outcome.values),
        }
        payload = {**base, "kind": "effect-call", "effect": {"name": transition.effect, "key": key}, "intended": {"state": outcome.target, "values": encode_values(outcome.values)}}
        resume = NewTimer(row.id, "resume", self._ts() + self.lease, step, {})
        row, records = self._commit(row, [payload], timers=[resume], status="effect-pending", pending=pending)
        result = self._settle(row)
        return StepResult(result.instance, result.accepted, event, result.code, result.reason, result.state, result.values, result.version, result.status, tuple(records) + result.records)

    def _complete(self, row: InstanceRow, outcome: Fired, base: dict[str, Any], effect: dict[str, Any] | None) -> StepResult:
        transition = outcome.transition
        target = outcome.target
        terminal = self.spec.state_map[target].terminal
        compensations = list(row.compensations)
        if effect is not None and transition.compensate is not None:
            compensations.append({"compensate": transition.compensate, "step": effect["step"], "event": transition.event, "params": base["params"], "after": encode_values(outcome.values)})
        after = encode_values(outcome.values)
        payload = {**base, "kind": "step", "after": {"state": target, "values": after}, "effect": effect}
        # Only touch timers the instance can have: a timeout of the state it leaves, or the
        # resume timer of an effect or compensation in flight.
        cancel_kinds = []
        if self.spec.state_map[row.state].timeout is not None:
            cancel_kinds.append("timeout")
        if effect is not None or row.status != "active":
            cancel_kinds.append("resume")
        cancel = tuple(cancel_kinds)
        if terminal == "success":
            new, records = self._commit(row, [payload], cancel=cancel, state=target, values=after, status="done", pending=None, compensations=[])
        elif terminal == "failure" and compensations:
            pending = {"kind": "compensate", "target": target, "reason": f"{transition.label} entered failure terminal `{target}`"}
            resume = NewTimer(row.id, "resume", self._ts() + self.lease, row.version + 1, {})
            new, records = self._commit(row, [payload], timers=[resume], cancel=cancel, state=target, values=after, status="compensating", pending=pending, compensations=compensations)
            result = self._settle(new)
            return StepResult(row.id, True, transition.event, None, "", result.state, result.values, result.version, result.status, tuple(records) + result.records)
        elif terminal == "failure":
            new, records = self._commit(row, [payload], cancel=cancel, state=target, values=after, status="done", pending=None, compensations=[])
        else:
            # A step that keeps the state (a tool-like self-loop) keeps the state's deadline.
            stays = target == row.state
            timers = [] if stays else self._timeout_timer(row.id, target, row.version + 1)
            new, records = self._commit(row, [payload], timers=timers, cancel=("resume",) if stays else cancel, state=target, values=after, status="active", pending=None, compensations=compensations)
        return self._result(new, records, accepted=True, event=transition.event)

    # ------------------------------------------------------------------ effects

    def _call(self, name: str, call: EffectCall) -> tuple[bool, Any, int]:
        """Call a handler under its retry policy: (succeeded, result or error text, attempts)."""
        policy = self.effects.policy(name, self.retry)
        handler = self.effects.handler(name)
        error = ""
        for attempt in range(1, max(policy.attempts, 1) + 1):
            try:
                result = handler(EffectCall(**{**_call_fields(call), "attempt": attempt}))
            except Exception as exc:  # a handler's failure is data, not a crash of the engine
                error = f"{type(exc).__name__}: {exc}".strip()
                if attempt < policy.attempts:
                    self.clock.sleep(policy.delay(attempt))
                continue
            return True, _safe(result), attempt
        return False, error or "the handler failed", policy.attempts

    def _settle(self, row: InstanceRow) -> StepResult:
        """Finish ``row``'s pending work (an effect's outcome, owed compensations). A commit that
        loses to another writer — a refusal appended meanwhile, or a worker that resumed the same
        call — is retried on the fresh row (the handler sees the same key again), never by firing
        the event again: the event was accepted when its intent was committed. If someone else
        finished the work, the result is the instance as they left it."""
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                if row.status == "effect-pending" and row.pending is not None:
                    return self._run_pending(row)
                if row.status == "compensating" and row.pending is not None:
                    return self._compensate(row)
                return self._result(row, [], accepted=row.status != "stuck", event=None)
            except ConflictError:
                row = self._row(row.id)
        raise ExecutionError(f"instance `{row.id}` kept changing; its pending work is left to `run_due`")

    def _run_pending(self, row: InstanceRow) -> StepResult:
        pending = row.pending
        assert pending is not None and pending["kind"] == "effect"
        base = pending["base"]
        call = EffectCall(
            key=pending["key"], instance=row.id, workflow=self.spec.name, step=pending["step"], effect=pending["effect"],
            event=base["event"], params=base["params"], values=pending["after"],
        )
        ok, result, attempts = self._call(pending["effect"], call)
        effect = {"name": pending["effect"], "key": pending["key"], "step": pending["step"], "ok": ok, "attempts": attempts}
        if ok:
            effect["result"] = result
            values = decode_values(self.spec, pending["after"])
            transition = self.spec.transitions[base["transition"] - 1]
            outcome = Fired(transition, row.state, pending["target"], {}, values)
            return self._complete(row, outcome, base, effect)
        effect["error"] = result
        reason = f"effect `{pending['effect']}` failed after {attempts} attempt{'s' if attempts != 1 else ''}: {result}"
        payload = {"kind": "effect-failed", "event": base["event"], "actor": base["actor"], "effect": effect, "state": row.state}
        return self._error_exit(row, reason, [payload])

    def _error_exit(self, row: InstanceRow, reason: str, payloads: list[dict[str, Any]]) -> StepResult:
        target = self.spec.error_target(row.state)
        if target is None:
            payloads = [*payloads, {"kind": "stuck", "reason": f"{reason}; state `{row.state}` has no error exit"}]
            new, records = self._commit(row, payloads, cancel=("timeout", "resume"), status="stuck", pending=None)
            return self._result(new, records, accepted=False, event=None, code="stuck", reason=reason)
        pending = {"kind": "compensate", "target": target, "reason": reason}
        resume = NewTimer(row.id, "resume", self._ts() + self.lease, row.version + 1, {})
        new, records = self._commit(row, payloads, timers=[resume], cancel=("timeout",), status="compensating", pending=pending)
        result = self._settle(new)
        code, why = (result.code, f"{reason}; then {result.reason}") if result.status == "stuck" else ("error-exit", reason)
        return StepResult(row.id, False, None, code, why, result.state, result.values, result.version, result.status, tuple(records) + result.records)

    def _compensate(self, row: InstanceRow) -> StepResult:
        """Run the owed compensations in reverse order, each committed on its own; then rest
        in the failure terminal, or become ``stuck`` if one cannot complete."""
        pending = row.pending
        assert pending is not None and pending["kind"] == "compensate"
        all_records: list[AuditRecord] = []
        while row.compensations:
            owed = row.compensations[-1]
            key = effect_key(row.id, owed["step"], owed["compensate"])
            call = EffectCall(
                key=key, instance=row.id, workflow=self.spec.name, step=owed["step"], effect=owed["compensate"],
                event=owed["event"], params=owed["params"], values=owed["after"], compensation=True,
            )
            ok, result, attempts = self._call(owed["compensate"], call)
            info = {"name": owed["compensate"], "key": key, "step": owed["step"], "ok": ok, "attempts": attempts, ("result" if ok else "error"): result}
            if not ok:
                why = f"compensation `{owed['compensate']}` failed after {attempts} attempts: {result}"
                payload: dict[str, Any] = {"kind": "stuck", "reason": why, "compensation": info, "state": row.state}
                row, records = self._commit(row, [payload], cancel=("resume",), status="stuck")
                all_records.extend(records)
                return self._result(row, all_records, accepted=False, event=None, code="stuck", reason=why)
            payload = {"kind": "compensation", "compensation": info, "state": row.state}
            row, records = self._commit(row, [payload], compensations=row.compensations[:-1])
            all_records.extend(records)
        target = pending["target"]
        payload = {"kind": "error-exit" if row.state != target else "rest", "reason": pending["reason"], "before": {"state": row.state}, "after": {"state": target}}
        row, records = self._commit(row, [payload], cancel=("resume", "timeout"), state=target, status="done", pending=None)
        all_records.extend(records)
        return self._result(row, all_records, accepted=False, event=None, code="error-exit", reason=pending["reason"])

    # ------------------------------------------------------------------ operators

    def abort(self, instance: str, actor: str, reason: str) -> StepResult:
        """An operator takes the error exit: owed compensations run, the instance rests in the
        failure terminal. Refused (and audited) unless ``actor`` holds an operator role."""
        for _ in range(MAX_CONFLICT_RETRIES):
            row = self._row(instance)
            roles = self.directory.roles_of(actor)
            try:
                if not roles & self.operators:
                    return self._refuse(row, "abort", actor, roles, {}, "permission-denied", f"`{actor}` is not an operator")
                if row.status != "active":
                    return self._refuse(row, "abort", actor, roles, {}, "busy", f"instance `{row.id}` is {row.status}")
                payload = {"kind": "abort", "actor": actor, "roles": sorted(roles), "reason": reason, "state": row.state}
                return self._error_exit(row, f"aborted by `{actor}`: {reason}", [payload])
            except ConflictError:
                continue
        raise ConflictError(f"instance `{instance}` kept changing; the abort was not applied")

    def retry_stuck(self, instance: str, actor: str) -> StepResult:
        """An operator retries the compensations of a stuck instance."""
        row = self._row(instance)
        roles = self.directory.roles_of(actor)
        if not roles & self.operators:
            return self._refuse(row, "retry", actor, roles, {}, "permission-denied", f"`{actor}` is not an operator")
        if row.status != "stuck":
            return self._refuse(row, "retry", actor, roles, {}, "busy", f"instance `{row.id}` is not stuck")
        target = self.spec.error_target(row.state) or row.state
        pending = row.pending if row.pending and row.pending.get("kind") == "compensate" else {"kind": "compensate", "target": target, "reason": "operator retry"}
        payload = {"kind": "retry", "actor": actor, "roles": sorted(roles), "state": row.state}
        resume = NewTimer(row.id, "resume", self._ts() + self.lease, row.version + 1, {})
        row, records = self._commit(row, [payload], timers=[resume], status="compensating", pending=pending)
        result = self._settle(row)
        return StepResult(row.id, result.status == "done", None, result.code, result.reason, result.state, result.values, result.version, result.status, tuple(records) + result.records)

    # ------------------------------------------------------------------ due work

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
            self.store.finish_timer(timer.id)
            if outcome is not None:
                results.append(outcome)
        return results

    def _run_timer(self, timer: Any) -> StepResult | None:
        row = self.store.get(timer.instance)
        if row is None or row.workflow != self.spec.name:
            return None
        if timer.kind == "resume":
            if row.status in ("effect-pending", "compensating") and row.pending is not None:
                return self._settle(row)
            return None
        if timer.kind == "timeout":
            # Not the version: a refusal bumps it but changes nothing. Every step that leaves the
            # state cancels its timer, so an active instance still in the timer's state is live.
            if row.status != "active" or row.state != timer.payload.get("state"):
                return None
            timeout = self.spec.state_map[row.state].timeout
            if timeout is None:
                return None
            if timeout.event is not None:
                return self._fire_once(row, timeout.event, SYSTEM, {}, system=True)
            payload = {"kind": "timeout", "state": row.state, "after_seconds": timeout.seconds}
            return self._error_exit(row, f"state `{row.state}` timed out after {timeout.seconds} s", [payload])
        return None


def _call_fields(call: EffectCall) -> dict[str, Any]:
    return {name: getattr(call, name) for name in EffectCall.__slots__}


def _safe(value: Any) -> Any:
    """Make ``value`` JSON-ready for an audit record without losing what it was."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted((_safe(v) for v in value), key=str)
    try:
        return encode_value(value)
    except Exception:
        return repr(value)

