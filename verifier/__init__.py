"""railguard.verifier — checks that a spec is correct before it runs.

Structural checks over the transition graph run first (plain graph walks, no solver); results
are three-valued (``proved``, ``violated``, ``unknown``) and ``unknown`` never passes a gate.
``verify`` and ``apply_waivers`` are imported on first use, so that the modules that need no
solver (results, budgets, certificates) can be imported without loading Z3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import VerifierError
from .results import RULES, Outcome, Report, Result, Rule, rule

if TYPE_CHECKING:
    from .checks import apply_waivers, verify

__all__ = [
    "RULES",
    "Outcome",
    "Report",
    "Result",
    "Rule",
    "VerifierError",
    "apply_waivers",
    "rule",
    "verify",
]


def __getattr__(name: str) -> Any:
    if name in ("apply_waivers", "verify"):
        from . import checks

        return getattr(checks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
