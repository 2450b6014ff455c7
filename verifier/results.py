"""Results of checks: three-valued outcomes, rules with stable ids, and the report of a spec."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from railguard.spec import Location, Spec

if TYPE_CHECKING:
    from .counterexample import Counterexample

__all__ = ["RULES", "Outcome", "Report", "Result", "Rule", "rule"]

Outcome = Literal["proved", "violated", "unknown"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A check with a stable id (``RG102``), a short name (``unreachable-state``) and a summary."""

    id: str
    name: str
    summary: str
    family: str


RULES: dict[str, Rule] = {}


def _rule(id: str, name: str, family: str, summary: str) -> Rule:
    made = Rule(id, name, summary, family)
    RULES[id] = made
    return made


# Structure (graph, networkx)
UNREACHABLE_STATE = _rule(
    "RG101", "unreachable-state", "structure", "every state is reachable from the initial state"
)
TRAP_STATE = _rule(
    "RG102",
    "trap-state",
    "structure",
    "every reachable non-terminal state can reach a terminal through ordinary transitions",
)
UNREACHABLE_SUCCESS = _rule(
    "RG103",
    "unreachable-success",
    "structure",
    "the workflow has a success terminal and every success terminal is reachable",
)
TERMINAL_OUTGOING = _rule(
    "RG104", "terminal-outgoing", "structure", "terminal states have no outgoing transitions"
)
# Fail-closed
NO_ERROR_EXIT = _rule(
    "RG201",
    "no-error-exit",
    "fail-closed",
    "every non-terminal state has an error exit to a failure terminal",
)
UNCOMPENSATED_EFFECT = _rule(
    "RG202",
    "uncompensated-effect",
    "fail-closed",
    "every effect that a failure terminal can follow has a compensation",
)
IRREVERSIBLE_NOT_LAST = _rule(
    "RG203",
    "irreversible-not-last",
    "fail-closed",
    "an irreversible effect only enters a success terminal",
)
# Permissions
UNGRANTED_PERMISSION = _rule(
    "RG301",
    "ungranted-permission",
    "permissions",
    "every transition's permission is granted by some role (or is `public`)",
)
UNUSED_PERMISSION = _rule(
    "RG302",
    "unused-permission",
    "permissions",
    "every permission a role grants is used by some transition",
)
# Data (Z3)
SYMBOLIC = _rule("RG400", "data-checks", "data", "the spec has a symbolic encoding, so the data checks can run")
DATA_UNREACHABLE_STATE = _rule("RG401", "data-unreachable-state", "data", "every state is reachable once guards and data are taken into account")
DEAD_TRANSITION = _rule("RG402", "dead-transition", "data", "every transition can fire in some reachable configuration")
NONDETERMINISM = _rule("RG403", "nondeterminism", "data", "two transitions on the same event from the same state are never enabled together")
DOMAIN_ESCAPE = _rule("RG404", "domain-escape", "data", "every assignment keeps its variable inside the declared domain")
# Properties
INVARIANT = _rule("RG501", "invariant", "properties", "every declared invariant holds in every reachable configuration")
# Meta
UNUSED_WAIVER = _rule("RG901", "unused-waiver", "meta", "every waiver matches a finding")


def rule(key: str) -> Rule | None:
    """Find a rule by id (``RG101``) or name (``unreachable-state``)."""
    found = RULES.get(key)
    if found is not None:
        return found
    return next((r for r in RULES.values() if r.name == key), None)


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one rule on one subject (a state, a transition, a property, or the spec).

    ``waived`` holds the waiver's reason when a violation was waived; ``bound`` is set for
    bounded results; ``severity`` is ``"warning"`` for findings that never fail a gate.
    """

    rule: Rule
    subject: str
    outcome: Outcome
    message: str
    location: Location = field(default_factory=Location)
    bound: int | None = None
    waived: str | None = None
    severity: Literal["error", "warning"] = "error"
    #: Other names a waiver may use for the subject (a transition's event and index).
    aliases: tuple[str, ...] = ()
    #: A run that violates the property (replayed through the Python semantics).
    counterexample: Counterexample | None = field(default=None, compare=False)
    #: A run that shows a reachability property (a state, a transition firing).
    witness: Counterexample | None = field(default=None, compare=False)
    #: An inductive invariant Z3 found that proves (or refutes reachability of) the property.
    invariant: str | None = field(default=None, compare=False)

    @property
    def failed(self) -> bool:
        """Whether this result fails a gate: unknown (even if waived), or violated and not waived;
        warnings never fail."""
        if self.severity != "error":
            return False
        # A waiver accepts a known violation; nobody can accept what was never decided.
        return self.outcome == "unknown" or (self.outcome == "violated" and self.waived is None)

    @property
    def is_finding(self) -> bool:
        """Whether this result is worth showing as a finding (anything not proved)."""
        return self.outcome != "proved"


@dataclass(frozen=True)
class Report:
    """Every result of checking one spec."""

    spec: Spec
    results: tuple[Result, ...] = field(default=())

    @property
    def findings(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if r.is_finding)

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.results)

    def with_results(self, results: Iterable[Result]) -> Report:
        return replace(self, results=tuple(results))
