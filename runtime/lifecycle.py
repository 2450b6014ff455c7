"""The instance lifecycle, once: statuses, audit-record kinds, pending work, and the one pure
function that says what a record does to an instance.

Every audit record the engine writes moves the instance's :class:`Phase` (status, state, the
compensations owed and the work in flight) by :func:`advance`. The engine calls it to decide
what to commit, :mod:`railguard.runtime.replay` calls it to re-derive an instance from its log,
and the crash harness calls it to check a store — so the three cannot disagree about what
happens next. A record that cannot happen in the current phase raises :class:`LifecycleError`.

The statuses (``Status``):

- ``active``: waiting for the next event;
- ``effect-pending``: an effect was called and its outcome is not yet recorded;
- ``compensating``: the compensations owed run (newest first), then the instance rests in the
  failure terminal it is heading for;
- ``stuck``: a compensation could not complete, or an error exit was needed in a state that
  has none — an operator must act;
- ``done``: resting in a terminal state.

Both enums are :class:`enum.StrEnum`, so the strings stored in rows and records are unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from railguard.spec import Spec

from .errors import ExecutionError

__all__ = [
    "CompensatePending",
    "EffectPending",
    "LifecycleError",
    "Owed",
    "Pending",
    "Phase",
    "RecordKind",
    "Status",
    "advance",
    "decode_pending",
    "exit_kind",
]


class Status(StrEnum):
    """Where an instance is in its lifecycle (the ``status`` column)."""

    ACTIVE = "active"
    EFFECT_PENDING = "effect-pending"
    COMPENSATING = "compensating"
    STUCK = "stuck"
    DONE = "done"


class RecordKind(StrEnum):
    """The kinds of audit record the engine writes (the payload's ``kind``)."""

    START = "start"
    STEP = "step"
    EFFECT_CALL = "effect-call"
    EFFECT_FAILED = "effect-failed"
    REFUSAL = "refusal"
    COMPENSATION = "compensation"
    ERROR_EXIT = "error-exit"
    REST = "rest"
    STUCK = "stuck"
    RETRY = "retry"
    ABORT = "abort"
    TIMEOUT = "timeout"
    MIGRATED = "migrated"
    #: A note in the chain that changes nothing (the plan gate's plan and admission).
    NOTE = "note"


#: The records that begin the error exit.
ERROR_STARTS = frozenset({RecordKind.EFFECT_FAILED, RecordKind.TIMEOUT, RecordKind.ABORT})


class LifecycleError(ExecutionError):
    """A record that cannot happen in the instance's current phase."""


@dataclass(frozen=True, slots=True)
class Owed:
    """A compensation owed for an effect that succeeded at record ``step``: the handler to call
    and what it is called with (JSON-ready params and the values after that step)."""

    compensate: str
    step: int
    event: str
    params: Mapping[str, Any]
    after: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"compensate": self.compensate, "step": self.step, "event": self.event, "params": dict(self.params), "after": dict(self.after)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Owed:
        return cls(str(data["compensate"]), int(data["step"]), str(data.get("event", "")), data.get("params") or {}, data.get("after") or {})


@dataclass(frozen=True, slots=True)
class EffectPending:
    """An effect called at record ``step`` with idempotency ``key``: the step's audit ``base``
    (event, actor, roles, params, transition, decision, before) and where it goes when the
    effect succeeds (``target`` and the JSON-ready values ``after``)."""

    step: int
    key: str
    effect: str
    base: Mapping[str, Any]
    target: str
    after: Mapping[str, Any]

    @property
    def transition(self) -> int:
        return int(self.base["transition"])

    def to_json(self) -> dict[str, Any]:
        return {"kind": "effect", "step": self.step, "key": self.key, "effect": self.effect, "base": dict(self.base), "target": self.target, "after": dict(self.after)}


@dataclass(frozen=True, slots=True)
class CompensatePending:
    """An error exit (or a step into a failure terminal) under way: the compensations owed run,
    then the instance rests in ``target``."""

    target: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": "compensate", "target": self.target, "reason": self.reason}


Pending = EffectPending | CompensatePending


def decode_pending(data: Mapping[str, Any] | None) -> Pending | None:
    """The typed form of a row's ``pending`` column (``None`` for none or an unknown shape)."""
    if not data:
        return None
    kind = data.get("kind")
    if kind == "effect":
        return EffectPending(int(data["step"]), str(data["key"]), str(data["effect"]), data["base"], str(data["target"]), data["after"])
    if kind == "compensate":
        return CompensatePending(str(data["target"]), str(data.get("reason", "")))
    return None


@dataclass(frozen=True, slots=True)
class Phase:
    """An instance's lifecycle position: status, state, compensations owed (oldest first) and
    the work in flight (an :class:`EffectPending` while ``effect-pending``, a
    :class:`CompensatePending` while ``compensating`` or ``stuck``)."""

    status: Status
    state: str
    owed: tuple[Owed, ...] = ()
    pending: Pending | None = None

    @property
    def effect(self) -> EffectPending | None:
        return self.pending if isinstance(self.pending, EffectPending) else None

    @property
    def heading(self) -> str | None:
        """The failure terminal a compensation run ends in."""
        return self.pending.target if isinstance(self.pending, CompensatePending) else None


def advance(
    spec: Spec,
    phase: Phase | None,
    kind: RecordKind | str,
    *,
    target: str | None = None,
    owed: Owed | None = None,
    pending: EffectPending | None = None,
    reason: str = "",
) -> Phase:
    """The phase after a record of ``kind``; :class:`LifecycleError` if it cannot happen now.

    ``target`` is the state a ``start`` or ``step`` enters; ``owed`` the compensation a
    ``step`` that completed an effect adds; ``pending`` the call an ``effect-call`` makes;
    ``reason`` why an error exit (or a step into a failure terminal) is under way.
    A ``migrated`` record moves a resting instance to ``target`` of ``spec`` — the NEW spec
    it runs on from then on (see :mod:`railguard.runtime.migrate`).
    """
    if kind.__class__ is not RecordKind:
        try:
            kind = RecordKind(kind)
        except ValueError:
            raise LifecycleError(f"`{kind}` is not a kind of record the engine writes") from None
    if phase is None:
        if kind is not RecordKind.START or target is None:
            raise LifecycleError("the log does not begin with a `start` record")
        return Phase(Status.ACTIVE, target)
    status = phase.status
    if kind is RecordKind.STEP:  # the common record first (the kinds' branches are disjoint)
        _expect(phase, Status.ACTIVE, Status.EFFECT_PENDING)
        if target is None:
            raise LifecycleError("a step without a target state")
        if owed is not None and status is not Status.EFFECT_PENDING:
            raise LifecycleError("a compensation is owed for an effect that was never called")
        return _enter(spec, target, phase.owed + ((owed,) if owed is not None else ()), reason)
    if kind is RecordKind.START:
        raise LifecycleError("the instance had already started")
    if kind is RecordKind.REFUSAL or kind is RecordKind.NOTE:
        return phase
    if kind is RecordKind.MIGRATED:
        return _migrate(spec, phase, target)
    if kind is RecordKind.EFFECT_CALL:
        _expect(phase, Status.ACTIVE)
        if pending is None:
            raise LifecycleError("an effect call without the call")
        return replace(phase, status=Status.EFFECT_PENDING, pending=pending)
    if kind in ERROR_STARTS:
        _expect(phase, Status.EFFECT_PENDING if kind is RecordKind.EFFECT_FAILED else Status.ACTIVE)
        exit_to = spec.error_target(phase.state)
        if exit_to is None:
            return replace(phase, status=Status.STUCK, pending=None)
        return replace(phase, status=Status.COMPENSATING, pending=CompensatePending(exit_to, reason))
    if kind is RecordKind.COMPENSATION:
        _expect(phase, Status.COMPENSATING)
        if not phase.owed:
            raise LifecycleError("a compensation ran, but none was owed")
        return replace(phase, owed=phase.owed[:-1])
    if kind is RecordKind.STUCK:
        _expect(phase, Status.COMPENSATING)
        if not phase.owed:
            raise LifecycleError("the instance is stuck, but no compensation was owed")
        return replace(phase, status=Status.STUCK)
    if kind is RecordKind.RETRY:
        _expect(phase, Status.STUCK)
        again = phase.pending if isinstance(phase.pending, CompensatePending) else None
        if again is None:
            again = CompensatePending(spec.error_target(phase.state) or phase.state, reason or "operator retry")
        return replace(phase, status=Status.COMPENSATING, pending=again)
    # error-exit or rest: the compensation run ends in the failure terminal
    _expect(phase, Status.COMPENSATING)
    if phase.owed:
        raise LifecycleError(f"the instance rests although compensation `{phase.owed[-1].compensate}` is still owed")
    heading = phase.heading
    if heading is None:
        raise LifecycleError("the instance rests, but no error exit was under way")
    expected = RecordKind.REST if heading == phase.state else RecordKind.ERROR_EXIT
    if kind is not expected:
        raise LifecycleError(f"it is a `{kind}` record where the engine writes `{expected}`")
    return Phase(Status.DONE, heading)


def exit_kind(phase: Phase) -> RecordKind:
    """The record that ends a compensation run: ``rest`` when the instance is already in the
    failure terminal (it stepped there), ``error-exit`` when it moves there now."""
    return RecordKind.REST if phase.heading == phase.state else RecordKind.ERROR_EXIT


def _enter(spec: Spec, target: str, owed: tuple[Owed, ...], reason: str) -> Phase:
    terminal = spec.state_map[target].terminal
    if terminal == "success" or (terminal == "failure" and not owed):
        return Phase(Status.DONE, target)
    if terminal == "failure":
        return Phase(Status.COMPENSATING, target, owed, CompensatePending(target, reason or f"entered failure terminal `{target}`"))
    return Phase(Status.ACTIVE, target, owed)


def _migrate(new: Spec, phase: Phase, target: str | None) -> Phase:
    """A resting instance (active, or done in a terminal) moved to ``target`` of ``new``; the
    compensations it owes carry over."""
    _expect(phase, Status.ACTIVE, Status.DONE)
    if target is None or target not in new.state_map:
        raise LifecycleError(f"a migration into `{target}`, which is not a state of `{new.name}`")
    terminal = new.state_map[target].terminal
    if terminal is None:
        if phase.status is Status.DONE:
            raise LifecycleError(f"a finished instance cannot be migrated into non-terminal state `{target}`")
        return Phase(Status.ACTIVE, target, phase.owed)
    if terminal == "failure" and phase.owed:
        raise LifecycleError(f"a migration into failure terminal `{target}` while compensation `{phase.owed[-1].compensate}` is owed")
    return Phase(Status.DONE, target)


def _expect(phase: Phase, *allowed: Status) -> None:
    if phase.status not in allowed:
        raise LifecycleError(f"the instance was {phase.status} at that point, not {' or '.join(allowed)}")
