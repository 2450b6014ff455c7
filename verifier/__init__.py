"""railguard.verifier — checks that a spec is correct before it runs.

Structural checks over the transition graph run first (networkx); results are
three-valued (``proved``, ``violated``, ``unknown``) and ``unknown`` never passes a gate.
"""

from .checks import apply_waivers, verify
from .errors import VerifierError
from .results import RULES, Outcome, Report, Result, Rule, rule

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
