"""An in-memory machine: the runtime's step semantics without storage, for tests, simulations
and embedding. Same rules as the durable engine (it calls the same
:func:`railguard.spec.semantics.fire`), no audit, no effects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from railguard.spec import Spec
from railguard.spec.semantics import Fired, Refusal, fire
from railguard.spec.types import Value

from .directory import Directory

__all__ = ["MemoryMachine"]


class MemoryMachine:
    """One instance of ``spec`` held in memory. :meth:`fire` returns the :class:`Fired` or
    :class:`Refusal` record and applies only what was fired."""

    __slots__ = ("directory", "spec", "state", "values")

    def __init__(self, spec: Spec, directory: Directory, context: Mapping[str, Value] | None = None) -> None:
        self.spec = spec
        self.directory = directory
        self.state = spec.initial_state.name
        self.values: dict[str, Value] = spec.initial_values()
        self.values.update(context or {})

    def fire(self, event: str, actor: str, params: Mapping[str, Any] | None = None) -> Fired | Refusal:
        """Fire ``event`` as ``actor`` (roles from the directory)."""
        outcome = fire(self.spec, self.state, self.values, event, actor, self.directory.roles_of(actor), params)
        if isinstance(outcome, Fired):
            self.state = outcome.target
            self.values = dict(outcome.values)
        return outcome
