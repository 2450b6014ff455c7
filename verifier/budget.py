"""The solver budget and the deadline of a whole check, in a module of their own so that
certificates can record a budget, and the command line share a deadline, without importing Z3."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from .errors import VerifierError

__all__ = ["Budget", "Deadline", "OutOfTime", "overall"]


class _Configurable(Protocol):
    def set(self, *args: object, **kwargs: object) -> None: ...


@dataclass(frozen=True)
class Budget:
    """Limits for the solvers.

    ``rlimit`` bounds each solver query deterministically (Z3 resource units; it stops at the
    same point on any machine); ``timeout_ms`` adds an optional wall-clock bound per query.
    ``bmc_depth`` is how many steps the first witness search unrolls; ``max_depth`` bounds the
    search for a counterexample once Spacer has shown one exists. ``seconds`` bounds the
    wall-clock time of a whole check (``None``: no bound); the concrete exploration that runs
    before the solver takes at most ``rlimit // EXPLORE_COST`` steps, and it and the local
    domain checks are skipped below ``EXPLORE_COST``, so a budget too small for the solver
    decides nothing at all.
    """

    rlimit: int = 200_000_000
    timeout_ms: int | None = None
    bmc_depth: int = 8
    max_depth: int = 40
    seconds: int | None = 300

    #: Resource units one concrete exploration step is charged.
    EXPLORE_COST = 100

    @property
    def explore_steps(self) -> int:
        """How many concrete steps the exploration before the solver may take."""
        return self.rlimit // self.EXPLORE_COST

    def apply(self, solver: _Configurable, deadline: Deadline | None = None) -> None:
        """Set these limits on a Z3 solver or fixedpoint engine (the per-query timeout no
        later than ``deadline``)."""
        solver.set("rlimit", self.rlimit)
        timeout = self.timeout_ms
        if deadline is not None:
            left = deadline.left_ms()
            if left is not None:
                timeout = left if timeout is None else min(timeout, left)
        if timeout is not None:
            solver.set("timeout", max(1, timeout))


class OutOfTime(VerifierError):
    """The wall-clock budget of the whole check is spent (raised between queries and caught
    by the check, which ends the questions still open ``unknown``; a command that lets it
    through says so in one sentence)."""

    def __init__(self, message: str = "the wall-clock budget of the check is spent") -> None:
        super().__init__(message)


_OVERALL: contextvars.ContextVar[float | None] = contextvars.ContextVar("railguard_overall_deadline", default=None)


@contextmanager
def overall(seconds: float | None) -> Iterator[None]:
    """Share one wall-clock budget of ``seconds`` among every check run inside the block
    (``railguard check`` wraps all its files in one); ``None`` adds no bound."""
    if seconds is None:
        yield
        return
    token = _OVERALL.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _OVERALL.reset(token)


class Deadline:
    """The moment a check must stop: the earlier of its own ``seconds`` and the enclosing
    :func:`overall` budget."""

    def __init__(self, seconds: float | None) -> None:
        ends = [t for t in (_OVERALL.get(), None if seconds is None else time.monotonic() + seconds) if t is not None]
        self.at: float | None = min(ends) if ends else None
        self.seconds = seconds

    def share(self, fraction: float) -> Deadline:
        """A deadline ``fraction`` of the time left from now (for one stage of a check)."""
        part = Deadline(None)
        left = self.left()
        part.at = None if left is None else time.monotonic() + fraction * left
        part.seconds = self.seconds
        return part

    def left(self) -> float | None:
        """Seconds left (never negative), or ``None`` when unbounded."""
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def left_ms(self) -> int | None:
        left = self.left()
        return None if left is None else int(left * 1000)

    @property
    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def check(self) -> None:
        """Raise :class:`OutOfTime` once the deadline has passed."""
        if self.passed:
            raise OutOfTime
