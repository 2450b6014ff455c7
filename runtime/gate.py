"""The plan gateway: admit a model's plan, then execute it through the runtime, audited.

:class:`PlanGateway` wraps an :class:`~railguard.runtime.Engine` and a
:class:`~railguard.verifier.admission.Gate` for the same spec. :meth:`PlanGateway.execute`
admits the plan for the authenticated actor (roles from the engine's directory, never from
the plan) from the instance's current configuration — or a new instance's context — and, if
admitted, fires its steps one by one with :meth:`Engine.fire`, which re-checks each step.

The audit log of the instance records, as ``note`` records in its hash chain: the plan, the
admission record and the certificate's fingerprint before the first step (``plan``), and how
execution ended (``plan-done`` or ``plan-stopped``). A rejected plan on an existing instance
is audited as ``plan-rejected``. A step refused at execution time (the world changed since
admission) stops the plan there, fail-closed: later steps are not fired, the instance stays as
the refusal left it (a refusal changes nothing; a failed effect has already taken the spec's
error exit), and the answer says which step and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any

from railguard.verifier.admission import (
    Admission,
    Admitted,
    Configuration,
    Gate,
    Principal,
    Rejected,
    new_instance,
)
from railguard.verifier.plans import OPEN, Plan

from .audit import AuditRecord, chain
from .engine import Engine, StepResult
from .errors import ConflictError, ExecutionError
from .integrity import ROW_FIELD, row_digest

__all__ = ["Execution", "PlanGateway"]

MAX_NOTE_RETRIES = 50


@dataclass(frozen=True, slots=True)
class Execution:
    """What happened to a plan: its admission, the result of each step fired, whether every
    step ran (``completed``), and if not, the 0-based step that stopped it and why."""

    admission: Admission
    instance: str | None
    results: tuple[StepResult, ...] = ()
    completed: bool = False
    stopped_at: int | None = None
    reason: str = ""
    notes: tuple[AuditRecord, ...] = ()

    @property
    def state(self) -> str | None:
        """The instance's state after the last step fired (``None`` if none ran)."""
        return self.results[-1].state if self.results else None

    def to_json(self) -> dict[str, Any]:
        return {
            "admission": self.admission.to_json(),
            "instance": self.instance,
            "completed": self.completed,
            "stopped_at": self.stopped_at,
            "reason": self.reason,
            "steps": [
                {"event": r.event, "accepted": r.accepted, "code": r.code, "reason": r.reason, "state": r.state, "status": r.status}
                for r in self.results
            ],
        }


class PlanGateway:
    """Admits and executes plans on ``engine``'s instances with ``gate`` (same spec)."""

    def __init__(self, engine: Engine, gate: Gate) -> None:
        if gate.spec.content_hash != engine.spec.content_hash:
            raise ExecutionError(f"the gate checks spec {gate.spec.content_hash[:19]}, but the engine runs {engine.spec.content_hash[:19]}")
        self.engine = engine
        self.gate = gate

    def principal(self, actor: str) -> Principal:
        """The authenticated actor with the roles the engine's directory gives it."""
        return Principal(actor, self.engine.directory.roles_of(actor))

    def configuration(self, instance: str) -> Configuration:
        """Where an existing instance is: state, values, events fired so far, and whether it
        still takes steps."""
        snapshot = self.engine.get(instance)
        seen = frozenset(
            str(r.payload.get("event")) for r in self.engine.history(instance) if r.kind == "step"
        )
        values = dict(snapshot.values)
        return Configuration(snapshot.state, values, seen & self.gate.monitored, instance, snapshot.status == "active")

    def admit(self, plan: Plan, actor: str, *, instance: str | None = None, context: Mapping[str, Any] | None = None, goal: str | None = None) -> Admission:
        """Admit ``plan`` on an existing ``instance`` (if it exists in the store) or on a new
        instance started with ``context``."""
        start = self._start(plan, instance, context)
        return self.gate.admit(plan, self.principal(actor), start, goal=goal)

    def _start(self, plan: Plan, instance: str | None, context: Mapping[str, Any] | None) -> Configuration:
        name = instance or plan.instance
        if name is not None and self.engine.store.get(name) is not None:
            if context:
                raise ExecutionError(f"instance `{name}` already exists: its context cannot be given again")
            return self.configuration(name)
        fresh = new_instance(self.gate.spec, context)
        return Configuration(fresh.state, fresh.values, fresh.seen, name)

    def execute(
        self,
        plan: Plan,
        actor: str,
        *,
        instance: str,
        context: Mapping[str, Any] | None = None,
        goal: str | None = None,
        bindings: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> Execution:
        """Admit ``plan`` and, if admitted, run it on ``instance`` (started with ``context`` if
        it does not exist yet). ``bindings`` gives the run-time value of each open param, by
        step index; an open param without one stops the plan at its step."""
        existed = self.engine.store.get(instance) is not None
        admission = self.admit(plan, actor, instance=instance, context=context, goal=goal)
        principal = self.principal(actor)
        if isinstance(admission, Rejected):
            notes: tuple[AuditRecord, ...] = ()
            if existed:
                notes = (self._note(instance, actor, {"note": "plan-rejected", "plan": plan.to_json(), "admission": admission.to_json()}),)
            return Execution(admission, instance if existed else None, stopped_at=admission.step, reason=admission.message, notes=notes)
        assert isinstance(admission, Admitted)
        if not existed:
            started = self.engine.start(instance, actor, context)
            if not started.accepted:
                return Execution(admission, instance, stopped_at=0, reason=started.reason)
        admitted_note = self._note(instance, actor, {
            "note": "plan",
            "roles": sorted(principal.roles),
            "plan": plan.to_json(),
            "admission": admission.to_json(),
            "certificate": admission.certificate,
        })
        results: list[StepResult] = []
        for index, step in enumerate(plan.steps):
            params = dict(step.params)
            for name, value in step.params.items():
                if value is OPEN:
                    bound = (bindings or {}).get(index, {})
                    if name not in bound:
                        return self._stop(admission, instance, actor, results, admitted_note, index, f"step {index + 1}: open param `{name}` has no value at run time")
                    params[name] = bound[name]
            result = self.engine.fire(instance, step.event, actor, params)
            results.append(result)
            if not result.accepted:
                why = result.reason or "it was refused"
                return self._stop(admission, instance, actor, results, admitted_note, index, f"step {index + 1} (`{step.event}`) was refused at execution time ({result.code}): {why}")
            if result.status not in ("active", "done"):
                return self._stop(admission, instance, actor, results, admitted_note, index, f"step {index + 1} (`{step.event}`) left the instance {result.status}")
        done = self._note(instance, actor, {"note": "plan-done", "steps": len(results)})
        return Execution(admission, instance, tuple(results), True, None, "", (admitted_note, done))

    def _stop(self, admission: Admission, instance: str, actor: str, results: list[StepResult], first: AuditRecord, index: int, reason: str) -> Execution:
        stopped = self._note(instance, actor, {"note": "plan-stopped", "step": index, "reason": reason})
        return Execution(admission, instance, tuple(results), False, index, reason, (first, stopped))

    def _note(self, instance: str, actor: str, body: Mapping[str, Any]) -> AuditRecord:
        """Append a ``note`` record to the instance's hash chain (the instance is unchanged
        but for its version and audit head). Needs no engine internals: the store commits the
        note with the same optimistic version check as every step."""
        engine = self.engine
        for _ in range(MAX_NOTE_RETRIES):
            row = engine.store.get(instance)
            if row is None:
                raise ExecutionError(f"no instance `{instance}` to audit the plan on")
            try:
                engine._vouch(row)  # never write a note that would vouch for an edited row
            except ConflictError:
                continue
            payload: dict[str, Any] = {
                "workflow": engine.spec.name,
                "spec_hash": engine.spec.content_hash,
                "at": engine.clock.now().astimezone(UTC).isoformat(),
                "kind": "note",
                "actor": actor,
                "state": row.state,
                **body,
            }
            moved = replace(row, version=row.version + 1, updated_at=engine.clock.now().timestamp())
            payload[ROW_FIELD] = row_digest(moved)  # the note vouches for the row it leaves
            record = chain(row.id, row.audit_head, row.version + 1, payload)
            new = replace(moved, audit_head=record.hash)
            try:
                engine.store.commit(new, row.version, [record])
            except ConflictError:
                continue
            return record
        raise ConflictError(f"instance `{instance}` kept changing; the plan note was not written")

