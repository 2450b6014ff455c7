"""Effects: named side-effect handlers, called with an idempotency key, retried with backoff.

A handler receives an :class:`EffectCall` and returns a JSON-ready result or raises. The
key is derived from (instance, step, effect), so a retry — including one after a crash —
carries the same key, and a handler that records keys never applies an effect twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ExecutionError

__all__ = ["EffectCall", "Effects", "Handler", "RetryPolicy", "effect_key"]


@dataclass(frozen=True, slots=True)
class EffectCall:
    """What a handler is asked to do. ``compensation`` is true when undoing an earlier effect."""

    key: str
    instance: str
    workflow: str
    step: int
    effect: str
    event: str
    params: Mapping[str, Any]
    values: Mapping[str, Any]
    attempt: int = 1
    compensation: bool = False


Handler = Callable[[EffectCall], Any]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to ``attempts`` calls; waits ``backoff * factor**n`` seconds (at most ``max_delay``)
    between them, on the engine's clock."""

    attempts: int = 3
    backoff: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """The wait after failed call number ``attempt`` (1-based)."""
        return float(min(self.backoff * self.factor ** (attempt - 1), self.max_delay))


def effect_key(instance: str, step: int, effect: str) -> str:
    """The idempotency key of ``effect`` at ``step`` of ``instance``."""
    return hashlib.sha256(f"{instance}\n{step}\n{effect}".encode()).hexdigest()[:32]


@dataclass
class Effects:
    """The registry of handlers by effect name, each with an optional retry policy."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    policies: dict[str, RetryPolicy] = field(default_factory=dict)

    def register(self, name: str, handler: Handler, policy: RetryPolicy | None = None) -> Effects:
        """Bind ``name`` (as written in the spec's ``effect``/``compensate``) to ``handler``."""
        self.handlers[name] = handler
        if policy is not None:
            self.policies[name] = policy
        return self

    def handler(self, name: str) -> Handler:
        found = self.handlers.get(name)
        if found is None:
            raise ExecutionError(f"effect `{name}` has no registered handler")
        return found

    def policy(self, name: str, default: RetryPolicy) -> RetryPolicy:
        return self.policies.get(name, default)
