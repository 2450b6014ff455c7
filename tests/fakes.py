"""Test doubles shared by the engine and replay tests: a directory of people and fake
external services that record every call."""

from __future__ import annotations

from typing import Any

from railguard.runtime import EffectCall, Effects, StaticDirectory
from railguard.spec import Spec

PEOPLE = StaticDirectory({
    "sam": ["support"],
    "mia": ["manager"],
    "max": ["manager", "support"],
    "pay": ["payments"],
    "cus": ["customer"],
    "bot": ["system"],
    "ops": ["operator"],
    "ann": ["author"],
    "rev": ["reviewer"],
    "ci": ["ci"],
})


class Ledger:
    """Fake external systems: every handler call is recorded as (name, key, attempt); the
    handlers named in ``failing`` raise."""

    def __init__(self, *failing: str) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.failing = set(failing)

    def handler(self, name: str) -> Any:
        def run(call: EffectCall) -> dict[str, Any]:
            self.calls.append((name, call.key, call.attempt))
            if name in self.failing:
                raise RuntimeError(f"{name} is down")
            return {"done": name}

        return run

    def effects(self, spec: Spec) -> Effects:
        """A handler for every effect and compensation the spec names."""
        effects = Effects()
        for t in spec.transitions:
            for name in (t.effect, t.compensate):
                if name is not None:
                    effects.register(name, self.handler(name))
        return effects
