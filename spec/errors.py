"""The exceptions of :mod:`railguard.spec`; every one derives from :class:`SpecError`.

:class:`RailguardError` is the root of every exception railguard raises on purpose: the
packages' bases (``SpecError``, ``railguard.verifier.VerifierError``,
``railguard.runtime.ExecutionError``) derive from it, so ``except RailguardError`` catches any
of them and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "EvaluationError",
    "ExpressionError",
    "LoadError",
    "Location",
    "Problem",
    "RailguardError",
    "SpecError",
]


@dataclass(frozen=True, slots=True)
class Location:
    """Where something is in a spec source: file, 1-based line and column, and the path of keys."""

    file: str = "<spec>"
    line: int = 0
    column: int = 0
    path: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a spec: a one-sentence message at a location."""

    message: str
    location: Location = Location()

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class RailguardError(Exception):
    """Root of every exception railguard raises on purpose; its message is one sentence."""


class SpecError(RailguardError):
    """Base of every error raised by :mod:`railguard.spec`."""


class LoadError(SpecError):
    """A spec could not be loaded; ``problems`` lists every problem found, in source order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("a LoadError needs at least one problem")
        first = self.problems[0]
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__(f"{first}{suffix}")

    @property
    def location(self) -> Location:
        """The location of the first problem."""
        return self.problems[0].location


class ExpressionError(SpecError):
    """An expression is malformed, uses forbidden syntax, or is ill-typed.

    ``line`` and ``column`` are 1-based positions inside the expression's own text.
    """

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(message)


class EvaluationError(SpecError):
    """Evaluating a well-typed expression failed at run time (division by zero, missing param)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)
