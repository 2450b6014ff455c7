"""The behaviour diff of two versions of a spec: what a change does, not what it rewrites.

:func:`diff` compares OLD and NEW and returns a :class:`DiffReport` of findings, each with a
stable rule id (:data:`DIFF_RULES`) and the location in NEW it concerns. Text edits that
leave behaviour alone (descriptions, formatting, key order, comments) produce no finding but
:data:`NO_BEHAVIOUR_CHANGE`.

How each kind of finding is computed:

- states and events added or removed: by name;
- states newly reachable or no longer reachable: per state, with the data taken into account
  (a bounded search for a run, then Spacer for a proof that none exists); success terminals
  that some state could reach in OLD and no longer can in NEW, through ordinary transitions;
- permissions widened or narrowed: for every state, event and role, whether an actor holding
  exactly that role can fire the event there, through the permission *and* the guards (which
  may compare ``actor`` with stored principals), over every configuration that the spec's
  domains and state invariants allow — never by comparing permission lists;
- guards weakened or strengthened: per transition present in both (same event, source and
  target), a Z3 witness configuration where one guard holds and the other does not, over the
  configurations that both specs' domains and state invariants allow;
- invariants removed, weakened, strengthened or added (``always``/``never``: a witness
  configuration where the new one holds and the old one does not, and vice versa);
- compensations lost, error exits lost or moved, effects newly irreversible;
- any other change to behaviour (variables, roles, assignments, params, effects, timeouts,
  waivers) as :data:`OTHER_CHANGE`, so that "no behavioural difference" is only ever said
  when the two specs are equal once descriptions are set aside.

A comparison the solver cannot decide is a finding with ``undecided`` set; it counts for
review like a change. :attr:`DiffReport.exit_code` is 0 when nothing in a review category
changed, 1 otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import z3

from railguard.spec import Invariant, Location, Spec, Transition, Variable
from railguard.spec.codec import encode_value

from .budget import Budget
from .counterexample import ReplayError, decode, replay_counterexample
from .prover import Bad, Prover
from .structure import reachable_states
from .system import Inputs, State, System
from .z3expr import SYSTEM_ID, UNSET, Codes, Unsupported

__all__ = [
    "DIFF_RULES",
    "NO_BEHAVIOUR_CHANGE",
    "OTHER_CHANGE",
    "DiffReport",
    "DiffRule",
    "Finding",
    "diff",
    "shared_systems",
]


@dataclass(frozen=True, slots=True)
class DiffRule:
    """A kind of finding: stable ``id`` (``RGD301``), short ``name``, ``category``, and whether a
    finding of it needs review (``review``: it fails the gate, exit 1)."""

    id: str
    name: str
    category: str
    review: bool
    summary: str


DIFF_RULES: dict[str, DiffRule] = {}


def _rule(id: str, name: str, category: str, review: bool, summary: str) -> DiffRule:
    made = DiffRule(id, name, category, review, summary)
    DIFF_RULES[id] = made
    return made


NO_BEHAVIOUR_CHANGE = _rule("RGD001", "no-behaviour-change", "none", False, "the change touches only descriptions or formatting: no behavioural difference")
STATE_ADDED = _rule("RGD101", "state-added", "structure", True, "a state was added")
STATE_REMOVED = _rule("RGD102", "state-removed", "structure", True, "a state was removed")
EVENT_ADDED = _rule("RGD103", "event-added", "structure", True, "an event was added")
EVENT_REMOVED = _rule("RGD104", "event-removed", "structure", True, "an event was removed")
NEWLY_REACHABLE = _rule("RGD201", "state-newly-reachable", "reachability", True, "a state that no run could reach is now reachable")
NO_LONGER_REACHABLE = _rule("RGD202", "state-no-longer-reachable", "reachability", True, "a state that some run could reach no longer is")
SUCCESS_PATH_LOST = _rule("RGD203", "success-path-lost", "reachability", True, "a success terminal lost its paths from a state")
PERMISSION_WIDENED = _rule("RGD301", "permission-widened", "permissions", True, "a role can now fire an event in a state where it could not")
PERMISSION_NARROWED = _rule("RGD302", "permission-narrowed", "permissions", False, "a role can no longer fire an event in a state where it could")
GUARD_WEAKENED = _rule("RGD401", "guard-weakened", "guards", True, "a guard now holds in a configuration where it did not")
GUARD_STRENGTHENED = _rule("RGD402", "guard-strengthened", "guards", False, "a guard no longer holds in a configuration where it did")
INVARIANT_REMOVED = _rule("RGD501", "invariant-removed", "invariants", True, "an invariant was removed")
INVARIANT_WEAKENED = _rule("RGD502", "invariant-weakened", "invariants", True, "an invariant now allows a configuration it forbade")
INVARIANT_ADDED = _rule("RGD503", "invariant-added", "invariants", False, "an invariant was added")
INVARIANT_STRENGTHENED = _rule("RGD504", "invariant-strengthened", "invariants", False, "an invariant now forbids a configuration it allowed")
COMPENSATION_LOST = _rule("RGD601", "compensation-lost", "fail-closed", True, "an effect lost its compensation")
ERROR_EXIT_LOST = _rule("RGD602", "error-exit-lost", "fail-closed", True, "a state lost its error exit")
NEWLY_IRREVERSIBLE = _rule("RGD603", "effect-newly-irreversible", "fail-closed", True, "an effect is now irreversible")
ERROR_EXIT_MOVED = _rule("RGD604", "error-exit-moved", "fail-closed", True, "a state's error exit goes to another failure terminal")
OTHER_CHANGE = _rule("RGD901", "behaviour-changed", "other", True, "a change to behaviour that the other rules do not classify")


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference. ``location`` is in NEW (the nearest enclosing part for something
    removed); ``old_location`` in OLD. ``witness`` is a configuration (and actor, params) that
    shows a Z3 finding, as plain data. ``undecided``: the solver could not decide, so the
    finding says what was being compared and counts for review."""

    rule: DiffRule
    subject: str
    message: str
    location: Location = field(default_factory=Location)
    old_location: Location | None = None
    witness: Mapping[str, Any] | None = field(default=None, compare=False)
    undecided: bool = False

    @property
    def review(self) -> bool:
        """Whether this finding needs review (fails the gate)."""
        return self.rule.review or self.undecided

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rule": self.rule.id,
            "name": self.rule.name,
            "category": self.rule.category,
            "review": self.review,
            "subject": self.subject,
            "message": self.message,
            "location": _location_data(self.location),
        }
        if self.old_location is not None:
            data["old_location"] = _location_data(self.old_location)
        if self.undecided:
            data["undecided"] = True
        if self.witness is not None:
            data["witness"] = dict(self.witness)
        return data


def _location_data(loc: Location) -> dict[str, Any]:
    return {"file": loc.file, "line": loc.line, "column": loc.column}


@dataclass(frozen=True)
class DiffReport:
    """The findings of comparing ``old`` with ``new``."""

    old: Spec
    new: Spec
    findings: tuple[Finding, ...]

    @property
    def behavioural(self) -> bool:
        """Whether the change does anything to behaviour."""
        return any(f.rule is not NO_BEHAVIOUR_CHANGE for f in self.findings)

    @property
    def review(self) -> bool:
        """Whether some finding is in a review category (or undecided)."""
        return any(f.review for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0 when nothing in a review category changed, 1 otherwise."""
        return 1 if self.review else 0

    def by_rule(self, rule: DiffRule) -> list[Finding]:
        return [f for f in self.findings if f.rule is rule]

    def to_json(self) -> dict[str, Any]:
        """The report as plain data (a versioned shape)."""
        return {
            "version": 1,
            "old": {"name": self.old.name, "file": self.old.source, "contentHash": self.old.content_hash},
            "new": {"name": self.new.name, "file": self.new.source, "contentHash": self.new.content_hash},
            "behavioural": self.behavioural,
            "review": self.review,
            "exitCode": self.exit_code,
            "findings": [f.to_data() for f in self.findings],
        }

    def to_text(self) -> str:
        """One line per finding, then a verdict line."""
        lines = []
        for f in self.findings:
            mark = "review" if f.review else "note"
            lines.append(f"{f.location}: {mark}: {f.rule.id} {f.rule.name}: {f.message}")
            if f.witness is not None:
                lines.append("    witness: " + ", ".join(f"{k}={_show(v)}" for k, v in f.witness.items()))
        if not self.behavioural:
            verdict = "no behavioural difference"
        elif self.review:
            count = sum(1 for f in self.findings if f.review)
            verdict = f"{count} change{'s' if count != 1 else ''} to review"
        else:
            verdict = "behaviour changed, nothing to review"
        lines.append(f"railguard diff: {self.old.source} -> {self.new.source}: {verdict}")
        return "\n".join(lines) + "\n"

    def to_sarif(self, version: str, *, root: str | Path | None = None) -> dict[str, Any]:
        """A SARIF 2.1.0 log: review findings are errors, the others notes; locations in NEW."""
        base = Path.cwd() if root is None else Path(root)
        rules = sorted(DIFF_RULES.values(), key=lambda r: r.id)
        index = {r.id: i for i, r in enumerate(rules)}
        artifact = _artifact(self.new.source, base)
        results = []
        for f in self.findings:
            entry: dict[str, Any] = {
                "ruleId": f.rule.id,
                "ruleIndex": index[f.rule.id],
                "level": "error" if f.review else "note",
                "message": {"text": _sentence(f.message)},
                "locations": [{"physicalLocation": _physical(artifact, f.location)}],
                "partialFingerprints": {"railguardDiff/v1": _fingerprint(self.new, f)},
                "properties": {"subject": f.subject, "category": f.rule.category, "review": f.review, "undecided": f.undecided},
            }
            if f.witness is not None:
                entry["properties"]["witness"] = dict(f.witness)
            if f.old_location is not None:
                entry["properties"]["oldLocation"] = _location_data(f.old_location)
            results.append(entry)
        return {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "railguard-diff",
                            "version": version,
                            "semanticVersion": version,
                            "informationUri": "https://railguard.dev",
                            "rules": [
                                {
                                    "id": r.id,
                                    "name": r.name,
                                    "shortDescription": {"text": _sentence(r.summary)},
                                    "fullDescription": {"text": _sentence(r.summary)},
                                    "defaultConfiguration": {"level": "error" if r.review else "note"},
                                    "properties": {"category": r.category, "tags": ["railguard", "diff", r.category]},
                                }
                                for r in rules
                            ],
                        }
                    },
                    "invocations": [{"executionSuccessful": True, "exitCode": self.exit_code}],
                    "artifacts": [{"location": dict(artifact), "roles": ["analysisTarget"]}],
                    "columnKind": "unicodeCodePoints",
                    "results": results,
                    "properties": {"old": self.old.content_hash, "new": self.new.content_hash},
                }
            ],
        }


def _show(value: object) -> str:
    if value is None:
        return "unset"
    return str(value)


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _artifact(file: str, root: Path) -> dict[str, str]:
    path = Path(file)
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        relative = absolute.resolve().relative_to(root.resolve())
    except ValueError:
        return {"uri": absolute.resolve().as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": "%SRCROOT%"}


def _physical(artifact: dict[str, str], loc: Location) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": dict(artifact)}
    if loc.line:
        region = {"startLine": loc.line}
        if loc.column:
            region["startColumn"] = loc.column
        physical["region"] = region
    return physical


def _fingerprint(spec: Spec, finding: Finding) -> str:
    key = "\0".join((spec.name, finding.rule.id, finding.subject))
    return hashlib.sha256(key.encode()).hexdigest()


# ---------------------------------------------------------------------- shared encoding


def shared_systems(old: Spec, new: Spec, extra_names: Iterable[str] = ()) -> tuple[System, System]:
    """The symbolic systems of ``old`` and ``new`` over one table of enum and state codes.

    Both systems name their constants after the variables (``tag.name``), so a variable of the
    same name and sort in both specs is the same Z3 constant in ``old.state(tag)`` and
    ``new.state(tag)``, and an enum value or state name has the same code in both: terms of
    one spec can be compared with, or assigned to, those of the other. Raises
    :class:`~railguard.verifier.z3expr.Unsupported` when either spec has no encoding."""
    first, second = System(old), System(new)
    codes = Codes([*first.codes.names, *second.codes.names, *extra_names])
    first.codes = codes
    second.codes = codes
    return first, second


def _check(solver: z3.Solver) -> Literal["sat", "unsat", "unknown"]:
    answer = solver.check()
    if answer == z3.sat:
        return "sat"
    if answer == z3.unsat:
        return "unsat"
    return "unknown"


def _solver(budget: Budget) -> z3.Solver:
    solver = z3.Solver()
    budget.apply(solver)
    return solver


def _space(system: System, s: State) -> z3.BoolRef:
    """Configurations ``system``'s domains and state invariants allow (invariants are proved
    by the spec's certificate, so every reachable configuration satisfies them)."""
    parts = [system.domain(s)]
    for inv in system.spec.invariants:
        if inv.expr is None:
            continue
        sym = system.invariant(inv.expr.tree, s)
        parts.append(z3.And(sym.ok, sym.term) if inv.kind == "always" else z3.And(sym.ok, z3.Not(sym.term)))
    return z3.And(parts)


def _decode_config(systems: Sequence[System], model: z3.ModelRef, s: Sequence[State], i: Inputs | None, event: str | None) -> dict[str, Any]:
    """A witness configuration as plain data: state, variables, actor's roles, params."""
    out: dict[str, Any] = {}
    people: dict[int, str] = {}

    def person(identity: int) -> str | None:
        if identity == UNSET:
            return None
        if identity == SYSTEM_ID:
            return "system"
        return people.setdefault(identity, f"user{len(people) + 1}")

    def scalar(system: System, kind: str, term: Any) -> Any:
        value = model.eval(term, model_completion=True)
        if kind == "bool":
            return bool(z3.is_true(value))
        if kind == "int":
            return value.as_long()
        if kind == "decimal":
            return str(value.as_decimal(12)).rstrip("?")
        if kind == "enum":
            return system.codes.names[value.as_long()]
        if kind == "str":
            return value.as_string()
        if kind == "principal":
            return person(value.as_long())
        return str(value)

    first = systems[0]
    out["state"] = first.codes.names[model.eval(s[0]["@state"], model_completion=True).as_long()]
    for system, vector in zip(systems, s, strict=True):
        for variable in system.spec.variables:
            if variable.name in out:
                continue
            if variable.type.kind == "set" and variable.type.of is not None and variable.type.of.kind not in ("enum", "bool"):
                # An array-encoded set: shown as the model's array, which names its members.
                out[variable.name] = str(model.eval(vector[variable.name], model_completion=True))
            elif variable.type.kind == "set":
                assert variable.type.of is not None
                keys = variable.type.of.values if variable.type.of.kind == "enum" else ("True", "False")
                out[variable.name] = sorted(k for k in keys if z3.is_true(model.eval(vector[f"{variable.name}#{k}"], model_completion=True)))
            else:
                out[variable.name] = scalar(system, variable.type.kind, vector[variable.name])
    if i is not None:
        out["actor"] = person(model.eval(i["@actor"], model_completion=True).as_long())
        roles = []
        for system in systems:
            for role in system.roles:
                if role not in roles and z3.is_true(model.eval(i[f"@actor@{role}"], model_completion=True)):
                    roles.append(role)
        out["roles"] = roles
        if event is not None:
            for system in systems:
                for name, declared in system.event_params.get(event, {}).items():
                    key = f"params.{name}"
                    if key not in out and declared.kind != "set":
                        out[key] = scalar(system, declared.kind, i[f"@p:{event}:{name}"])
    return out


# ---------------------------------------------------------------------- the diff


def _plain_spec(spec: Spec) -> Spec:
    """``spec`` with every description cleared (what behaviour does not depend on)."""
    return replace(
        spec,
        description="",
        variables=tuple(replace(v, description="") for v in spec.variables),
        states=tuple(replace(s, description="") for s in spec.states),
        transitions=tuple(replace(t, description="") for t in spec.transitions),
        invariants=tuple(replace(i, description="") for i in spec.invariants),
    )


def diff(old: Spec, new: Spec, budget: Budget | None = None) -> DiffReport:
    """Compare two versions of a spec; see the module docstring for what is reported."""
    budget = budget or Budget(rlimit=50_000_000)
    if _plain_spec(old) == _plain_spec(new):
        what = "the specs are identical" if old.content_hash == new.content_hash else "only descriptions or formatting changed"
        return DiffReport(old, new, (Finding(NO_BEHAVIOUR_CHANGE, new.name, f"{what}: no behavioural difference", new.location()),))
    return DiffReport(old, new, tuple(_Differ(old, new, budget).run()))


def _pairs(spec: Spec) -> dict[tuple[str, str, str], list[Transition]]:
    """Transitions by (event, source, target), in declaration order."""
    out: dict[tuple[str, str, str], list[Transition]] = {}
    for t in spec.transitions:
        for source in t.sources:
            out.setdefault((t.event, source, t.target), []).append(t)
    return out


def _success_from(spec: Spec) -> dict[str, set[str]]:
    """For each state, the success terminals it can reach through ordinary transitions."""
    succ: dict[str, set[str]] = {s.name: set() for s in spec.states}
    for t in spec.transitions:
        for source in t.sources:
            succ[source].add(t.target)
    out: dict[str, set[str]] = {}
    for state in spec.states:
        seen, stack = {state.name}, [state.name]
        while stack:
            for nxt in succ[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        out[state.name] = {n for n in seen if spec.state_map[n].terminal == "success"}
    return out


class _Differ:
    def __init__(self, old: Spec, new: Spec, budget: Budget) -> None:
        self.old, self.new, self.budget = old, new, budget
        self.findings: list[Finding] = []
        self.systems: tuple[System, System] | None = None
        self.unsupported = ""
        try:
            self.systems = shared_systems(old, new)
            for system in self.systems:
                _ = Prover(system, budget).relation  # the encoding is built lazily: fail here, not mid-way
        except Unsupported as exc:
            self.systems = None
            self.unsupported = str(exc)

    def add(self, rule: DiffRule, subject: str, message: str, location: Location, old_location: Location | None = None, witness: Mapping[str, Any] | None = None, undecided: bool = False) -> None:
        self.findings.append(Finding(rule, subject, message, location, old_location, witness, undecided))

    def run(self) -> list[Finding]:
        self.names()
        self.reachability()
        self.permissions()
        self.guards()
        self.invariants()
        self.fail_closed()
        self.others()
        if self.unsupported:
            self.add(OTHER_CHANGE, self.new.name, f"the data comparisons could not run ({self.unsupported}); permissions, guards and invariants were not compared", self.new.location(), undecided=True)
        return self.findings

    # ------------------------------------------------------------------ names

    def names(self) -> None:
        old, new = self.old, self.new
        for s in new.states:
            if s.name not in old.state_map:
                self.add(STATE_ADDED, s.name, f"state `{s.name}` was added", new.location("states", s.name))
        for s in old.states:
            if s.name not in new.state_map:
                self.add(STATE_REMOVED, s.name, f"state `{s.name}` was removed", new.location("states"), old.location("states", s.name))
        old_events, new_events = set(old.events), set(new.events)
        for event in new.events:
            if event not in old_events:
                first = next(t for t in new.transitions if t.event == event)
                self.add(EVENT_ADDED, event, f"event `{event}` was added", new.location("transitions", first.index - 1))
        for event in old.events:
            if event not in new_events:
                first = next(t for t in old.transitions if t.event == event)
                self.add(EVENT_REMOVED, event, f"event `{event}` was removed", new.location("transitions"), old.location("transitions", first.index - 1))

    # ------------------------------------------------------------------ reachability

    def _reachable(self, spec: Spec, symbolic: bool) -> dict[str, bool | None]:
        """Per state: reachable (a run that replays, or Spacer), unreachable (graph or Spacer),
        or None (undecided). Without a symbolic encoding, the graph's answer (an
        over-approximation: graph-reachable states count as undecided)."""
        graph = reachable_states(spec)
        out: dict[str, bool | None] = {s.name: (s.name in graph) for s in spec.states}
        if not symbolic:
            for name in graph:
                if not spec.state_map[name].initial:
                    out[name] = None
            return out
        own = System(spec)  # own codes: Spacer's invariant text names states by code
        prover = Prover(own, self.budget)
        goals: dict[Hashable, Bad] = {name: _in_state(own, name) for name in graph if not spec.state_map[name].initial}
        # Runs are cheap to find step by step; Spacer is for what no run of `max_depth` reaches.
        found, exhausted = prover.bmc(goals, self.budget.max_depth)
        rest: list[Hashable] = []
        for key in goals:
            name = str(key)
            witness = found.get(key)
            if witness is not None:
                try:
                    replay_counterexample(spec, decode(own, witness, final_step=False))
                except ReplayError:
                    out[name] = None
            elif key in exhausted:
                out[name] = None
            else:
                rest.append(key)
        if not rest:
            return out
        group = prover.spacer(*(goals[k] for k in rest))
        for key in rest:
            status = group.status if group.status == "safe" or len(rest) == 1 else prover.spacer(goals[key]).status
            out[str(key)] = {"safe": False, "unsafe": True}.get(status)
        return out

    def reachability(self) -> None:
        old, new = self.old, self.new
        before = self._reachable(old, self.systems is not None)
        after = self._reachable(new, self.systems is not None)
        for s in new.states:
            if s.name not in old.state_map:
                continue
            was, now = before[s.name], after[s.name]
            loc, old_loc = new.location("states", s.name), old.location("states", s.name)
            if was is None or now is None:
                if self.systems is None and (s.name in reachable_states(old)) == (s.name in reachable_states(new)):
                    continue  # no encoding: only graph differences are shown (the gate fails anyway)
                side = "OLD" if was is None else "NEW"
                rule = NO_LONGER_REACHABLE if now is False else NEWLY_REACHABLE
                self.add(rule, s.name, f"whether state `{s.name}` is reachable could not be decided in {side}", loc, old_loc, undecided=True)
                continue
            if now and not was:
                self.add(NEWLY_REACHABLE, s.name, f"state `{s.name}` is now reachable; no run could reach it before", loc, old_loc)
            elif was and not now:
                rule = SUCCESS_PATH_LOST if s.terminal == "success" else NO_LONGER_REACHABLE
                self.add(rule, s.name, f"state `{s.name}` can no longer be reached by any run", loc, old_loc)
        old_success, new_success = _success_from(old), _success_from(new)
        for s in new.states:
            if s.name not in old.state_map or s.terminal is not None:
                continue
            lost = sorted((old_success[s.name] & set(new.state_map)) - new_success[s.name])
            for terminal in lost:
                if new.state_map[terminal].terminal != "success":
                    continue
                self.add(SUCCESS_PATH_LOST, f"{s.name} -> {terminal}", f"from state `{s.name}`, success terminal `{terminal}` can no longer be reached through ordinary transitions", new.location("states", s.name), old.location("states", s.name))

    # ------------------------------------------------------------------ permissions

    def _can_fire(self, system: System, state: str, event: str, role: str | None, tag: str) -> tuple[str, z3.ModelRef | None, State, Inputs]:
        s, i = system.state(tag), system.inputs(tag + "in")
        moves = [m for m in system.moves if m.kind == "transition" and m.source == state and m.event == event]
        granted = set(system.spec.role_map[role].permissions) if role is not None and role in system.spec.role_map else set()
        if not any(m.transition is not None and (m.transition.permission == "public" or m.transition.permission in granted) for m in moves):
            return "unsat", None, s, i  # deny by default: no candidate's permission is granted
        solver = _solver(self.budget)
        solver.add(_space(system, s), system.in_state(state, s), system.actor_valid(s, i))
        for r in system.roles:
            solver.add(i[f"@actor@{r}"] if r == role else z3.Not(i[f"@actor@{r}"]))
        solver.add(z3.Or([z3.And(i["@move"] == m.index, system.condition(m, s, i)) for m in moves]))
        verdict = _check(solver)
        return verdict, (solver.model() if verdict == "sat" else None), s, i

    def permissions(self) -> None:
        if self.systems is None:
            return
        old_sys, new_sys = self.systems
        old, new = self.old, self.new
        # What an actor may do in a state depends on these and on the candidates themselves.
        same_context = (old.variables, old.invariants, old.exclusive_roles) == (new.variables, new.invariants, new.exclusive_roles)
        for state in new.states:
            if state.is_terminal:
                continue
            for event in dict.fromkeys(t.event for t in new.transitions_from(state.name)):
                first = next(t for t in new.transitions_from(state.name) if t.event == event)
                loc = new.location("transitions", first.index - 1)
                unchanged = same_context and state.name in old.state_map and _candidates(old, state.name, event) == _candidates(new, state.name, event)
                for role in [r.name for r in new.roles]:
                    before_role = old.role_map.get(role)
                    if unchanged and before_role is not None and set(before_role.permissions) == set(new.role_map[role].permissions):
                        continue
                    now, model, s, i = self._can_fire(new_sys, state.name, event, role, "pn")
                    in_old = state.name in old.state_map and role in old.role_map
                    was = self._can_fire(old_sys, state.name, event, role, "po")[0] if in_old else "unsat"
                    subject = f"{role}: {event} in {state.name}"
                    if now == "sat" and was == "unsat":
                        assert model is not None
                        witness = _decode_config([new_sys], model, [s], i, event)
                        self.add(PERMISSION_WIDENED, subject, f"role `{role}` can now fire `{event}` in state `{state.name}`, which it could not before", loc, witness=witness)
                    elif now == "unsat" and was == "sat":
                        self.add(PERMISSION_NARROWED, subject, f"role `{role}` can no longer fire `{event}` in state `{state.name}`", loc)
                    elif "unknown" in (now, was) and now != "unsat" and was != "sat":
                        # a widening is possible and could not be ruled out
                        self.add(PERMISSION_WIDENED, subject, f"whether role `{role}` can now fire `{event}` in state `{state.name}` could not be decided", loc, undecided=True)

    # ------------------------------------------------------------------ guards

    def guards(self) -> None:
        if self.systems is None:
            return
        old_sys, new_sys = self.systems
        old_pairs, new_pairs = _pairs(self.old), _pairs(self.new)
        for key, new_ts in new_pairs.items():
            old_ts = old_pairs.get(key)
            if not old_ts:
                continue
            for t_old, t_new in zip(old_ts, new_ts, strict=False):
                if t_old.guard == t_new.guard:
                    continue
                self._compare_guards(old_sys, new_sys, key[1], t_old, t_new)

    def _guard_terms(self, system: System, t: Transition, move_source: str, s: State, i: Inputs) -> z3.BoolRef:
        move = next(m for m in system.moves if m.transition is t and m.kind == "transition" and m.source == move_source)
        params = system.param_syms(t.event, i)
        holds, defined = system.guard(t, s, params, system.actor(i, move))
        return z3.And(defined, holds)

    def _compare_guards(self, old_sys: System, new_sys: System, source: str, t_old: Transition, t_new: Transition) -> None:
        s_old, s_new = old_sys.state("g"), new_sys.state("g")
        i_old, i_new = old_sys.inputs("gi"), new_sys.inputs("gi")
        base = z3.And(
            _space(old_sys, s_old), _space(new_sys, s_new),
            old_sys.in_state(source, s_old),
            old_sys.actor_valid(s_old, i_old), new_sys.actor_valid(s_new, i_new),
            old_sys.params_valid(t_old.event, i_old), new_sys.params_valid(t_new.event, i_new),
        )
        g_old = self._guard_terms(old_sys, t_old, source, s_old, i_old)
        g_new = self._guard_terms(new_sys, t_new, source, s_new, i_new)
        loc = self.new.location("transitions", t_new.index - 1, "guard")
        old_loc = self.old.location("transitions", t_old.index - 1, "guard")
        subject = f"{t_new.label} from {source}"
        old_text = t_old.guard.text if t_old.guard else "True"
        new_text = t_new.guard.text if t_new.guard else "True"
        for rule, holds, fails, verb in ((GUARD_WEAKENED, g_new, g_old, "now holds where it did not"), (GUARD_STRENGTHENED, g_old, g_new, "no longer holds where it did")):
            solver = _solver(self.budget)
            solver.add(base, holds, z3.Not(fails))
            verdict = _check(solver)
            if verdict == "sat":
                witness = _decode_config([new_sys, old_sys], solver.model(), [s_new, s_old], i_new, t_new.event)
                self.add(rule, subject, f"the guard of {t_new.label} from `{source}` {verb} (`{old_text}` became `{new_text}`)", loc, old_loc, witness)
            elif verdict == "unknown":
                self.add(rule, subject, f"whether the guard of {t_new.label} from `{source}` {verb} could not be decided (`{old_text}` became `{new_text}`)", loc, old_loc, undecided=True)

    # ------------------------------------------------------------------ invariants

    def invariants(self) -> None:
        old, new = self.old, self.new
        new_by_name = {inv.name: (pos, inv) for pos, inv in enumerate(new.invariants)}
        old_by_name = {inv.name: (pos, inv) for pos, inv in enumerate(old.invariants)}
        for pos, inv in enumerate(old.invariants):
            match = new_by_name.get(inv.name)
            old_loc = old.location("invariants", pos)
            if match is None:
                same = next((n for n in new.invariants if replace(n, name=inv.name, description="") == replace(inv, description="")), None)
                if same is None:
                    self.add(INVARIANT_REMOVED, inv.name, f"invariant `{inv.name}` was removed", new.location("invariants"), old_loc)
                continue
            new_pos, now = match
            loc = new.location("invariants", new_pos)
            if replace(now, description="") == replace(inv, description=""):
                continue
            if inv.kind == "precedes" or now.kind == "precedes":
                self.add(INVARIANT_WEAKENED, inv.name, f"invariant `{inv.name}` changed from {_describe(inv)} to {_describe(now)}; the two cannot be compared, so the old guarantee is gone", loc, old_loc)
                continue
            self._compare_invariants(inv, now, loc, old_loc)
        for pos, inv in enumerate(new.invariants):
            if inv.name not in old_by_name:
                self.add(INVARIANT_ADDED, inv.name, f"invariant `{inv.name}` was added", new.location("invariants", pos))

    def _compare_invariants(self, before: Invariant, after: Invariant, loc: Location, old_loc: Location) -> None:
        if self.systems is None:
            self.add(INVARIANT_WEAKENED, before.name, f"invariant `{before.name}` changed and could not be compared", loc, old_loc, undecided=True)
            return
        old_sys, new_sys = self.systems
        s_old, s_new = old_sys.state("v"), new_sys.state("v")
        base = z3.And(old_sys.domain(s_old), new_sys.domain(s_new))

        def holds(system: System, inv: Invariant, s: State) -> z3.BoolRef:
            assert inv.expr is not None
            sym = system.invariant(inv.expr.tree, s)
            return z3.And(sym.ok, sym.term) if inv.kind == "always" else z3.And(sym.ok, z3.Not(sym.term))

        h_old, h_new = holds(old_sys, before, s_old), holds(new_sys, after, s_new)
        for rule, yes, no, verb in ((INVARIANT_WEAKENED, h_new, h_old, "now allows a configuration it forbade"), (INVARIANT_STRENGTHENED, h_old, h_new, "now forbids a configuration it allowed")):
            solver = _solver(self.budget)
            solver.add(base, yes, z3.Not(no))
            verdict = _check(solver)
            if verdict == "sat":
                witness = _decode_config([new_sys, old_sys], solver.model(), [s_new, s_old], None, None)
                self.add(rule, after.name, f"invariant `{after.name}` {verb} ({_describe(before)} became {_describe(after)})", loc, old_loc, witness)
            elif verdict == "unknown":
                self.add(rule, after.name, f"whether invariant `{after.name}` {verb} could not be decided", loc, old_loc, undecided=True)

    # ------------------------------------------------------------------ fail-closed

    def fail_closed(self) -> None:
        old, new = self.old, self.new
        old_pairs, new_pairs = _pairs(old), _pairs(new)
        for key, new_ts in new_pairs.items():
            for t_old, t_new in zip(old_pairs.get(key, []), new_ts, strict=False):
                loc = new.location("transitions", t_new.index - 1)
                old_loc = old.location("transitions", t_old.index - 1)
                if t_old.compensate is not None and t_new.compensate != t_old.compensate:
                    self.add(COMPENSATION_LOST, f"{t_new.label} from {key[1]}", f"{t_new.label} from `{key[1]}` lost its compensation `{t_old.compensate}`", loc, old_loc)
                if t_new.irreversible and not t_old.irreversible:
                    self.add(NEWLY_IRREVERSIBLE, f"{t_new.label} from {key[1]}", f"the effect of {t_new.label} from `{key[1]}` is now irreversible", loc, old_loc)
        # An effect that no transition of OLD marked irreversible, and a new transition of NEW now does.
        reversible_before = {t.effect for t in old.transitions if t.effect is not None and not t.irreversible}
        irreversible_before = {t.effect for t in old.transitions if t.irreversible}
        for key, new_ts in new_pairs.items():
            for t_new in new_ts[len(old_pairs.get(key, [])) :]:
                if t_new.irreversible and t_new.effect in reversible_before - irreversible_before:
                    self.add(NEWLY_IRREVERSIBLE, f"{t_new.label} from {key[1]}", f"effect `{t_new.effect}` is now irreversible in the new {t_new.label} from `{key[1]}`; no transition of OLD made it irreversible", new.location("transitions", t_new.index - 1))
        for state in new.states:
            if state.name not in old.state_map or state.is_terminal:
                continue
            before, after = old.error_target(state.name), new.error_target(state.name)
            loc = new.location("states", state.name)
            if before is not None and after is None:
                self.add(ERROR_EXIT_LOST, state.name, f"state `{state.name}` lost its error exit to `{before}`", loc, old.location("states", state.name))
            elif before is not None and after != before:
                self.add(ERROR_EXIT_MOVED, state.name, f"the error exit of state `{state.name}` now goes to `{after}` instead of `{before}`", loc, old.location("states", state.name))

    # ------------------------------------------------------------------ everything else

    def others(self) -> None:
        old, new = self.old, self.new
        if old.name != new.name:
            self.add(OTHER_CHANGE, "name", f"the workflow was renamed from `{old.name}` to `{new.name}`", new.location("name"))
        for v in new.variables:
            before = old.variable_map.get(v.name)
            loc = new.location("variables", v.name)
            if before is None:
                self.add(OTHER_CHANGE, f"variable {v.name}", f"variable `{v.name}` was added", loc)
            elif replace(before, description="") != replace(v, description=""):
                self.add(OTHER_CHANGE, f"variable {v.name}", f"variable `{v.name}` changed ({_var(before)} became {_var(v)})", loc)
        for v in old.variables:
            if v.name not in new.variable_map:
                self.add(OTHER_CHANGE, f"variable {v.name}", f"variable `{v.name}` was removed", new.location("variables"), old.location("variables", v.name))
        for role in new.roles:
            before_role = old.role_map.get(role.name)
            if before_role is None or set(before_role.permissions) != set(role.permissions):
                what = "was added" if before_role is None else "grants other permissions"
                self.add(OTHER_CHANGE, f"role {role.name}", f"role `{role.name}` {what}: {', '.join(role.permissions) or 'none'}", new.location("roles", role.name))
        for role in old.roles:
            if role.name not in new.role_map:
                self.add(OTHER_CHANGE, f"role {role.name}", f"role `{role.name}` was removed", new.location("roles"), old.location("roles", role.name))
        if old.initial_state.name != new.initial_state.name:
            self.add(OTHER_CHANGE, "initial", f"instances now start in `{new.initial_state.name}` instead of `{old.initial_state.name}`", new.location("states", new.initial_state.name))
        for state in new.states:
            before_state = old.state_map.get(state.name)
            if before_state is None:
                continue
            if before_state.terminal != state.terminal:
                self.add(OTHER_CHANGE, f"state {state.name}", f"state `{state.name}` changed from {before_state.terminal or 'non-terminal'} to {state.terminal or 'non-terminal'}", new.location("states", state.name))
            if before_state.timeout != state.timeout:
                self.add(OTHER_CHANGE, f"state {state.name}", f"the timeout of state `{state.name}` changed", new.location("states", state.name))
        old_pairs, new_pairs = _pairs(old), _pairs(new)
        for key, new_ts in new_pairs.items():
            old_ts = old_pairs.get(key, [])
            for pos, t_new in enumerate(new_ts):
                loc = new.location("transitions", t_new.index - 1)
                where = f"`{key[0]}` from `{key[1]}` to `{key[2]}`"
                if pos >= len(old_ts):
                    if key[0] in set(old.events):
                        self.add(OTHER_CHANGE, f"{t_new.label} from {key[1]}", f"a transition on {where} was added", loc)
                    continue
                t_old = old_ts[pos]
                changes = [
                    name
                    for name, a, b in (
                        ("permission", t_old.permission, t_new.permission),
                        ("params", t_old.params, t_new.params),
                        ("assignments", t_old.assign, t_new.assign),
                        ("effect", t_old.effect, t_new.effect),
                    )
                    if a != b
                ]
                if t_new.compensate is not None and t_new.compensate != t_old.compensate:
                    changes.append("compensation")
                if t_old.irreversible and not t_new.irreversible:
                    changes.append("irreversible")
                if changes:
                    self.add(OTHER_CHANGE, f"{t_new.label} from {key[1]}", f"{t_new.label} from `{key[1]}` changed its {', '.join(changes)}", loc, old.location("transitions", t_old.index - 1))
        for key, old_ts in old_pairs.items():
            new_count = len(new_pairs.get(key, []))
            for t_old in old_ts[new_count:]:
                if key[0] in set(new.events) and key[1] in new.state_map:
                    self.add(OTHER_CHANGE, f"{t_old.label} from {key[1]}", f"the transition on `{key[0]}` from `{key[1]}` to `{key[2]}` was removed", new.location("transitions"), old.location("transitions", t_old.index - 1))
        if old.exclusive_roles != new.exclusive_roles:
            self.add(OTHER_CHANGE, "exclusive_roles", "the exclusive roles changed", new.location("exclusive_roles"))
        if old.waivers != new.waivers:
            self.add(OTHER_CHANGE, "waivers", "the waivers changed", new.location("waivers"))


def _candidates(spec: Spec, state: str, event: str) -> list[tuple[object, ...]]:
    """What decides whether ``event`` fires in ``state``: its candidates, in order."""
    return [(t.permission, t.guard, t.params, t.assign, t.target) for t in spec.transitions_from(state) if t.event == event]


def _in_state(system: System, name: str) -> Bad:
    def bad(s: State, i: Inputs) -> z3.BoolRef:
        return system.in_state(name, s)

    return bad


def _describe(inv: Invariant) -> str:
    if inv.kind == "precedes" or inv.expr is None:
        return f"`{inv.then}` only after `{inv.first}`"
    return f"{inv.kind} `{inv.expr.text}`"


def _var(v: Variable) -> str:
    text = v.type.describe()
    if v.initial is not None:
        text += f", initially {encode_value(v.initial)}"
    if v.context:
        text += ", context"
    return text
