"""The solver budget, in a module of its own so that certificates can record one without
importing Z3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Budget"]


class _Configurable(Protocol):
    def set(self, *args: object, **kwargs: object) -> None: ...


@dataclass(frozen=True)
class Budget:
    """Limits for the solvers.

    ``rlimit`` bounds each solver query deterministically (Z3 resource units; it stops at the
    same point on any machine); ``timeout_ms`` adds an optional wall-clock bound per query.
    ``bmc_depth`` is how many steps the first witness search unrolls; ``max_depth`` bounds the
    search for a counterexample once Spacer has shown one exists.
    """

    rlimit: int = 200_000_000
    timeout_ms: int | None = None
    bmc_depth: int = 8
    max_depth: int = 40

    def apply(self, solver: _Configurable) -> None:
        """Set these limits on a Z3 solver or fixedpoint engine."""
        solver.set("rlimit", self.rlimit)
        if self.timeout_ms is not None:
            solver.set("timeout", self.timeout_ms)
