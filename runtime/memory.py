"""An in-memory machine: the runtime's step semantics without storage, for tests, simulations
and embedding. Same rules as the durable engine (it calls the same
:func:`railguard.spec.semantics.fire`), no audit, no effects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from railguard.spec import Spec
from railguard.spec.semantics import Fired, Refusal, Stepper, stepper
from railguard.spec.types import Value

from .directory import Directory

__all__ = ["MemoryMachine"]


class MemoryMachine:
    """One instance of ``spec`` held in memory. :meth:`fire` returns the :class:`Fired` or
    :class:`Refusal` record and applies only what was fired."""

    __slots__ = ("_steps", "directory", "spec", "state", "values")

    def __init__(self, spec: Spec, directory: Directory, context: Mapping[str, Value] | None = None) -> None:
        self.spec = spec
        self.directory = directory
        self.state = spec.initial_state.name
        self.values: dict[str, Value] = spec.initial_values()
        self.values.update(context or {})
        self._steps: dict[tuple[str, str], Stepper] = {}

    def fire(self, event: str, actor: str, params: Mapping[str, Any] | None = None) -> Fired | Refusal:
        """Fire ``event`` as ``actor`` (roles from the directory)."""
        key = (self.state, event)
        step = self._steps.get(key)
        if step is None:
            step = stepper(self.spec, self.state, event)
            if len(self._steps) < 4096:
                self._steps[key] = step
        outcome = step(self.values, actor, self.directory.roles_of(actor), params, False)
        if outcome.__class__ is Fired:
            self.state = outcome.target
            self.values = outcome.values  # type: ignore[assignment]  # a fresh dict of this step
        return outcome
