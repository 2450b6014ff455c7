"""Migrating instances of one spec version (OLD) to another (NEW), and proving it safe.

A migration file (YAML or JSON) says which versions it connects and how a resting instance
of OLD becomes one of NEW::

    railguard-migration: 1
    from: sha256:…          # OLD's content hash (`railguard dump --format hash OLD`)
    to: sha256:…            # NEW's content hash
    description: move requests into review
    states:                 # OLD state -> NEW state
      requested: review     # a state left out keeps its name (NEW must have it)
    values:                 # NEW variable -> expression over OLD's variables and `state`
      amount: amount
      reviewed: False       # a variable left out keeps OLD's value of the same name,
                            # or else starts at NEW's `initial`

Value expressions are parsed and type-checked by the spec language's own parser (never
``eval``), against OLD's variables; ``state`` is OLD's state. Terminal states of OLD may be
left out of the state map: instances resting there are finished and stay on OLD; a terminal
that is listed must map to a terminal of the same kind.

:func:`check_migration` proves, with Z3, for every configuration reachable in OLD (Spacer
finds an inductive invariant of OLD, so the proof covers every run, not a bounded number of
steps) that the mapped configuration

- can be computed (no division by zero in a value expression),
- lies in NEW's domains, and satisfies NEW's ``always``/``never`` invariants,
- is in a state from which NEW can still reach a terminal through ordinary transitions
  (the same notion as the verifier's trap check),
- owes no compensation NEW cannot run: every compensation an instance may owe in OLD is
  declared by NEW, and no instance that owes one is mapped into a failure terminal
  (where the compensations would never run),

and, with a second pair of Horn clauses over NEW started from every migrated instance
(``InvNew(m(x)) ⇐ InvOld(x)``, ``InvNew(y) ⇐ InvNew(z) ∧ T_new``), that every run a migrated
instance goes on with in NEW keeps NEW's invariants — ``always``/``never`` and ``precedes``,
whose monitors carry over from the instance's OLD history — even from configurations that
NEW alone never reaches (its certificate covers only instances started on NEW).

Each obligation ends ``proved``, ``violated`` (with a :class:`MigrationCounterexample`: a
concrete OLD instance, the run that reaches it — replayed through the reference semantics —
and what it maps to, re-checked with the Python evaluator) or ``unknown`` (which fails).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path as FilePath
from typing import Any, Literal

import z3

from railguard.spec import Expression, Invariant, LoadError, Location, Spec
from railguard.spec.codec import canonical_json, encode_value, encode_values
from railguard.spec.errors import EvaluationError, ExpressionError
from railguard.spec.evaluate import compile_expression
from railguard.spec.expr import (
    ExprType,
    ListExpr,
    Node,
    Scope,
    assignable,
    check,
    children,
    parse,
    unparse,
)
from railguard.spec.expr import Literal as LiteralNode
from railguard.spec.semantics import SYSTEM, Fired, fire
from railguard.spec.source import Document, one_line, read_text
from railguard.spec.types import Type, Value

from .budget import Budget
from .counterexample import Counterexample, ReplayError, Step, decode, replay_counterexample
from .diff import shared_systems
from .errors import VerifierError
from .prover import Prover, Witness
from .structure import reachable_states
from .system import Inputs, State, System
from .z3expr import SYSTEM_ID, TRUE, UNSET, Sym, Unsupported, as_string, compile_z3, sym_eq

__all__ = [
    "MIGRATION_FORMAT",
    "MIGRATION_RULES",
    "Migration",
    "MigrationCheck",
    "MigrationCounterexample",
    "MigrationError",
    "Obligation",
    "check_migration",
    "load_migration",
    "loads_migration",
]

MIGRATION_FORMAT = 1
_KEYS = ("railguard-migration", "from", "to", "description", "states", "values")

#: Obligation kinds: rule id -> (name, summary).
MIGRATION_RULES: dict[str, tuple[str, str]] = {
    "RGM101": ("migration-defined", "every value expression can be computed for every instance"),
    "RGM102": ("migration-domain", "every migrated value lies in NEW's domain"),
    "RGM103": ("migration-invariant", "every migrated instance satisfies NEW's invariants"),
    "RGM104": ("migration-progress", "every migrated instance can still reach a terminal in NEW"),
    "RGM105": ("migration-compensation", "every compensation a migrated instance owes can run in NEW"),
    "RGM106": ("migration-continuation", "NEW's invariants keep holding on every run a migrated instance goes on with"),
}

Outcome = Literal["proved", "violated", "unknown"]


class MigrationError(VerifierError):
    """A migration file is unusable, or an instance cannot be migrated; ``location`` says where."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = one_line(message)
        self.location = location or Location("<migration>")
        super().__init__(f"{self.location}: {self.message}" if self.location.line else self.message)


@dataclass(frozen=True)
class Migration:
    """A loaded, type-checked migration from ``from_hash`` to ``to_hash``.

    ``states`` maps every OLD state whose instances move (every non-terminal state, and the
    terminals the file lists) to a NEW state; ``values`` gives every NEW variable its
    expression over OLD. Both are complete: defaults are filled in at load time, so what is
    checked is what runs."""

    from_hash: str
    to_hash: str
    states: tuple[tuple[str, str], ...]
    values: tuple[tuple[str, Expression], ...]
    description: str = ""
    source: str = field(default="<migration>", compare=False)
    #: Which entries the file wrote itself (the others are defaults).
    written: frozenset[str] = field(default=frozenset(), compare=False)
    locations: Mapping[tuple[str, ...], Location] = field(default_factory=dict, compare=False, repr=False)

    @property
    def state_map(self) -> dict[str, str]:
        return dict(self.states)

    def to_data(self) -> dict[str, Any]:
        """The canonical plain data of the migration (every default written out)."""
        data: dict[str, Any] = {
            "railguard-migration": MIGRATION_FORMAT,
            "from": self.from_hash,
            "to": self.to_hash,
            "states": dict(self.states),
            "values": {name: expr.text for name, expr in self.values},
        }
        if self.description:
            data["description"] = self.description
        return data

    @property
    def content_hash(self) -> str:
        """``sha256:<hex>`` of the canonical data: what an audited ``migrated`` record names."""
        return "sha256:" + hashlib.sha256(canonical_json(self.to_data()).encode()).hexdigest()

    def location(self, *path: str) -> Location:
        key = tuple(path)
        while key:
            if key in self.locations:
                return self.locations[key]
            key = key[:-1]
        return self.locations.get((), Location(self.source))

    def apply(self, new: Spec, state: str, values: Mapping[str, Value]) -> tuple[str, dict[str, Value]]:
        """The NEW state and values of an OLD instance resting in ``state`` with ``values``.

        Raises :class:`MigrationError` when ``state`` has no mapping, a value cannot be
        computed, or a value falls outside NEW's domain. This is the one function the runtime
        calls to migrate an instance, so what was proved is what runs."""
        target = self.state_map.get(state)
        if target is None:
            raise MigrationError(f"instances in state `{state}` are not migrated (the state map does not list it)", self.location("states"))
        out: dict[str, Value] = {}
        for name, expr in self.values:
            try:
                value = compile_expression(expr.tree)(values, {}, None, state)
            except EvaluationError as exc:
                raise MigrationError(f"the value of `{name}` cannot be computed: {exc.message}", self.location("values", name)) from None
            declared = new.variable_map[name].type
            value = _as_declared(declared, value)
            if not declared.contains(value):
                raise MigrationError(f"the value of `{name}` would be {encode_value(value)!r}, outside NEW's domain ({declared.describe()})", self.location("values", name))
            out[name] = value
        return target, out


def _as_declared(declared: Type, value: Any) -> Value:
    if declared.kind == "decimal" and isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if declared.kind == "set" and isinstance(value, list | tuple | set):
        return frozenset(value)
    result: Value = value
    return result


# ---------------------------------------------------------------------- loading


def load_migration(path: str | os.PathLike[str], old: Spec, new: Spec) -> Migration:
    """Load a migration file for ``old`` -> ``new``, or raise :class:`MigrationError` naming
    the file, line and column of the first problem in one sentence."""
    name = os.fspath(path)
    try:
        text = FilePath(name).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else "cannot be read"
        raise MigrationError(f"cannot read the migration file: {reason}", Location(name)) from None
    except UnicodeDecodeError:
        raise MigrationError("the migration file is not UTF-8 text", Location(name)) from None
    return loads_migration(text, old, new, name)


def loads_migration(text: str, old: Spec, new: Spec, file: str = "<migration>") -> Migration:
    """Load a migration from YAML or JSON text (see :func:`load_migration`)."""
    if not text.strip():
        raise MigrationError("the migration file is empty: it needs at least `from` and `to`", Location(file))
    try:
        doc = read_text(text, file)
    except LoadError as exc:
        first = exc.problems[0]
        raise MigrationError(first.message, first.location) from None
    return _Reader(doc, old, new).migration()


class _Reader:
    def __init__(self, doc: Document, old: Spec, new: Spec) -> None:
        self.doc, self.old, self.new = doc, old, new
        self.locations: dict[tuple[str, ...], Location] = {}

    def at(self, *path: str | int, key: bool = False) -> Location:
        return self.doc.at(tuple(path), key=key)

    def fail(self, message: str, *path: str | int, key: bool = False) -> MigrationError:
        return MigrationError(message, self.at(*path, key=key))

    def mapping(self, value: Any, what: str, *path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{what} must be a mapping", *path)
        return value

    def migration(self) -> Migration:
        data = self.mapping(self.doc.data, "a migration file", )
        for key in data:
            if key not in _KEYS:
                raise self.fail(f"unknown key `{key}` (a migration has {', '.join(f'`{k}`' for k in _KEYS)})", key, key=True)
        version = data.get("railguard-migration", MIGRATION_FORMAT)
        if version != MIGRATION_FORMAT or isinstance(version, bool):
            raise self.fail(f"`railguard-migration` must be {MIGRATION_FORMAT}, not {version!r}", "railguard-migration")
        from_hash = self.hash(data, "from", self.old, "OLD")
        to_hash = self.hash(data, "to", self.new, "NEW")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("`description` must be text", "description")
        written: set[str] = set()
        states = self.states(data.get("states", {}), written)
        values = self.values(data.get("values", {}), written)
        self.locations[()] = self.at()
        return Migration(from_hash, to_hash, states, values, description, self.doc.file, frozenset(written), dict(self.locations))

    def hash(self, data: Mapping[str, Any], key: str, spec: Spec, side: str) -> str:
        if key not in data:
            raise self.fail(f"the migration needs `{key}`: the content hash of {side} `{spec.name}` (`railguard dump --format hash`)")
        value = data[key]
        if not isinstance(value, str):
            raise self.fail(f"`{key}` must be a content hash such as `sha256:…`, not {type(value).__name__}", key)
        if value != spec.content_hash:
            raise self.fail(f"`{key}` is `{value}`, but {side} `{spec.name}` ({spec.source}) hashes to `{spec.content_hash}`: the migration was written for another version", key)
        self.locations[(key,)] = self.at(key)
        return value

    def states(self, raw: Any, written: set[str]) -> tuple[tuple[str, str], ...]:
        old, new = self.old, self.new
        given = self.mapping(raw, "`states` (OLD state -> NEW state)", "states")
        self.locations[("states",)] = self.at("states")
        for source, target in given.items():
            if source not in old.state_map:
                raise self.fail(f"state map: `{source}` is not a state of OLD `{old.name}`", "states", source, key=True)
            if not isinstance(target, str) or target not in new.state_map:
                shown = target if isinstance(target, str) else type(target).__name__
                raise self.fail(f"state map: `{source}` maps to `{shown}`, which is not a state of NEW `{new.name}`", "states", source)
            before, after = old.state_map[source].terminal, new.state_map[target].terminal
            if before is not None and after != before:
                raise self.fail(f"state map: `{source}` is a {before} terminal and must map to a {before} terminal, not `{target}`", "states", source)
            self.locations[("states", source)] = self.at("states", source)
            written.add(f"states.{source}")
        out: list[tuple[str, str]] = []
        for state in old.states:
            if state.name in given:
                out.append((state.name, given[state.name]))
            elif state.terminal is None:
                if state.name not in new.state_map:
                    raise self.fail(f"state map: instances in OLD state `{state.name}` need a NEW state, and NEW `{new.name}` has no state of that name", "states")
                if new.state_map[state.name].terminal is not None:
                    raise self.fail(f"state map: OLD state `{state.name}` would map to NEW terminal `{state.name}`; map it explicitly if that is meant", "states")
                out.append((state.name, state.name))
        return tuple(out)

    def values(self, raw: Any, written: set[str]) -> tuple[tuple[str, Expression], ...]:
        old, new = self.old, self.new
        given = self.mapping(raw, "`values` (NEW variable -> expression over OLD)", "values")
        self.locations[("values",)] = self.at("values")
        scope = Scope({v.name: v.type for v in old.variables}, tuple(s.name for s in old.states))
        for name in given:
            if name not in new.variable_map:
                raise self.fail(f"value map: `{name}` is not a variable of NEW `{new.name}`", "values", name, key=True)
        out: list[tuple[str, Expression]] = []
        for variable in new.variables:
            name = variable.name
            if name in given:
                expr, kind = self.expression(given[name], name, scope)
                written.add(f"values.{name}")
                self.locations[("values", name)] = self.at("values", name)
            elif name in old.variable_map and assignable(variable.type, ExprType.of(old.variable_map[name].type)):
                tree: Node = parse(name)
                expr, kind = Expression(tree, name), ExprType.of(old.variable_map[name].type)
            elif variable.initial is not None or variable.type.kind == "principal":
                tree = _literal(variable.initial)
                expr = Expression(tree, unparse(tree))
                kind = check(tree, scope)
            else:
                raise self.fail(f"value map: NEW variable `{name}` needs a value (OLD has no variable `{name}` of a compatible type and NEW gives it no `initial`)", "values")
            if not assignable(variable.type, kind):
                raise self.fail(f"value map: `{name}` is {variable.type.describe()}, and its value `{expr.text}` is {kind.describe()}", "values", name)
            out.append((name, expr))
        return tuple(out)

    def expression(self, raw: Any, name: str, scope: Scope) -> tuple[Expression, ExprType]:
        path = ("values", name)
        if isinstance(raw, bool):
            raw = "True" if raw else "False"
        elif isinstance(raw, int | Decimal):
            raw = str(raw)
        if not isinstance(raw, str):
            what = "empty" if raw is None else f"a {type(raw).__name__}"
            raise self.fail(f"value map: the value of `{name}` must be an expression, not {what}", *path)
        try:
            tree = parse(raw)
            kind = check(tree, scope)
        except ExpressionError as exc:
            message = exc.message.rstrip(".")
            raise MigrationError(f"value map: `{name}`: {message}", self._expr_at(path, exc)) from None
        return Expression(tree, raw), kind

    def _expr_at(self, path: tuple[str, ...], exc: ExpressionError) -> Location:
        base = self.doc.at(path)
        offset = self.doc.scalar_offsets.get(path)
        if base.line and offset is not None and exc.line == 1:
            return Location(base.file, base.line, base.column + offset + exc.column - 1, path)
        return base


def walk_literals(node: Node) -> list[str]:
    """The string literals in ``node`` (they need codes in the shared Z3 table)."""
    found = [node.value] if isinstance(node, LiteralNode) and isinstance(node.value, str) else []
    for child in children(node):
        found.extend(walk_literals(child))
    return found


def _literal(value: Value) -> Node:
    if isinstance(value, frozenset):
        return ListExpr(tuple(LiteralNode(v) for v in sorted(value, key=repr)))
    return LiteralNode(value)


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class MigrationCounterexample:
    """A concrete OLD instance that the migration gets wrong: where it rests (``state``,
    ``values``), the run from the initial state that reaches it (replayed through the
    reference semantics), and what the migration makes of it (``mapped_values`` holds the
    values that could be computed)."""

    state: str
    values: Mapping[str, Value]
    run: Counterexample
    mapped_state: str
    mapped_values: Mapping[str, Value]
    #: For a run property (RGM106): the steps NEW takes after the migration, each replayed
    #: through the reference semantics from the migrated instance.
    after: tuple[Step, ...] = ()

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "instance": {"state": self.state, "values": encode_values(self.values)},
            "run": self.run.to_plan(),
            "migrated": {"state": self.mapped_state, "values": encode_values(self.mapped_values)},
        }
        if self.after:
            data["after"] = [
                {"event": s.event, "actor": s.actor, "roles": list(s.roles), "params": encode_values(s.params), "to": s.state, "values": encode_values(s.values)}
                for s in self.after
            ]
        return data


@dataclass(frozen=True)
class Obligation:
    """One proof obligation of a migration, for instances resting in OLD state ``state``
    (``"*"`` for an obligation about every migrated instance, such as RGM106)."""

    rule: str
    subject: str
    state: str
    outcome: Outcome
    message: str
    location: Location = field(default_factory=Location)
    counterexample: MigrationCounterexample | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return MIGRATION_RULES[self.rule][0]

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rule": self.rule,
            "name": self.name,
            "subject": self.subject,
            "state": self.state,
            "outcome": self.outcome,
            "message": self.message,
            "location": {"file": self.location.file, "line": self.location.line, "column": self.location.column},
        }
        if self.counterexample is not None:
            data["counterexample"] = self.counterexample.to_data()
        return data


@dataclass(frozen=True)
class MigrationCheck:
    """Every obligation of one migration; ``outcome`` is violated if one is, else unknown if
    one is, else proved. Only ``proved`` passes."""

    migration: Migration
    obligations: tuple[Obligation, ...]

    @property
    def outcome(self) -> Outcome:
        outcomes = {o.outcome for o in self.obligations}
        if "violated" in outcomes:
            return "violated"
        if "unknown" in outcomes:
            return "unknown"
        return "proved"

    @property
    def passed(self) -> bool:
        return self.outcome == "proved"

    @property
    def counterexamples(self) -> list[MigrationCounterexample]:
        return [o.counterexample for o in self.obligations if o.counterexample is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "migration": {**self.migration.to_data(), "file": self.migration.source, "contentHash": self.migration.content_hash},
            "outcome": self.outcome,
            "obligations": [o.to_data() for o in self.obligations],
        }

    def to_text(self) -> str:
        marks = {"proved": "✔", "violated": "✘", "unknown": "?"}
        lines = [f"{o.location}: {marks[o.outcome]} {o.rule} {o.name} [{o.state}]: {o.message}" for o in self.obligations if o.outcome != "proved"]
        proved = sum(1 for o in self.obligations if o.outcome == "proved")
        for o in self.obligations:
            cex = o.counterexample
            if cex is None:
                continue
            lines.append(f"  counterexample for {o.rule} [{o.state}]: an instance in `{cex.state}` with " + ", ".join(f"{k}={_show(v)}" for k, v in cex.values.items()))
            for number, step in enumerate(cex.run.steps, 1):
                who = f" by {step.actor} ({', '.join(step.roles) or 'no roles'})" if step.kind != "error" else ""
                params = f" {dict(encode_values(step.params))}" if step.params else ""
                lines.append(f"    {number}. {step.event}{who}{params} -> {step.state}")
            lines.append(f"    migrates to `{cex.mapped_state}` with " + ", ".join(f"{k}={_show(v)}" for k, v in cex.mapped_values.items()))
            for number, step in enumerate(cex.after, 1):
                who = f" by {step.actor} ({', '.join(step.roles) or 'no roles'})" if step.kind != "error" else ""
                lines.append(f"    then in NEW {number}. {step.event}{who} -> {step.state}")
        verdict = {"proved": "proved safe", "violated": "refused: a counterexample shows it unsafe", "unknown": "refused: not proved (unknown)"}[self.outcome]
        lines.append(f"railguard migrate check: {self.migration.source}: {verdict} ({proved} of {len(self.obligations)} obligations proved)")
        return "\n".join(lines) + "\n"


def _reason(text: str) -> str:
    """The first line of a solver's reason, without the clause it quotes."""
    first = (text or "no reason given").splitlines()[0]
    return first.split(" in <null>")[0].strip() or "no reason given"


def _show(value: object) -> str:
    if value is None:
        return "unset"
    encoded = encode_value(value)  # type: ignore[arg-type]
    return str(encoded)


# ---------------------------------------------------------------------- the proof


Bad = Callable[[State, Inputs], z3.BoolRef]


@dataclass
class _Goal:
    rule: str
    subject: str
    state: str
    bad: Bad
    describe: str
    location: Location
    #: Re-checks a replayed witness: True (a real violation), or a message for `unknown`.
    confirm: Callable[[Counterexample, Any], bool | str]


def check_migration(old: Spec, new: Spec, migration: Migration, budget: Budget | None = None) -> MigrationCheck:
    """Prove ``migration`` safe for every instance OLD can reach (see the module docstring)."""
    budget = budget or Budget()
    return MigrationCheck(migration, tuple(_Prover(old, new, migration, budget).run()))


def _ordinary_reach(spec: Spec, start: str, skip_events: frozenset[str] = frozenset()) -> set[str]:
    succ: dict[str, set[str]] = {s.name: set() for s in spec.states}
    for t in spec.transitions:
        if t.event in skip_events:
            continue
        for source in t.sources:
            succ[source].add(t.target)
    seen, stack = {start}, [start]
    while stack:
        for nxt in succ[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


class _Prover:
    def __init__(self, old: Spec, new: Spec, migration: Migration, budget: Budget) -> None:
        self.old, self.new, self.migration, self.budget = old, new, migration, budget
        new_compensations = {t.compensate for t in new.transitions if t.compensate is not None}
        self.failure_targets = {s.name for s in new.states if s.terminal == "failure"}
        #: OLD events with a compensation NEW cannot run (or that a failure-terminal mapping strands).
        self.compensated = {t.event for t in old.transitions if t.compensate is not None}
        self.missing = {t.compensate for t in old.transitions if t.compensate is not None and t.compensate not in new_compensations}
        old_events = set(old.events)
        firsts = {inv.first for inv in new.invariants if inv.kind == "precedes" and inv.first in old_events}
        monitors = sorted((self.compensated | {f for f in firsts if f is not None}) - {"error"})
        extra = tuple(Invariant(f"@monitor:{e}", "precedes", first=e, then=e) for e in monitors)
        # OLD with a monitor per event whose firing matters (compensations owed, `precedes`):
        # its runs and semantics are OLD's; only the verifier's bookkeeping grows.
        self.old_tracked = replace(old, invariants=old.invariants + extra)
        self.literals = [n for _, e in migration.values for n in walk_literals(e.tree)]

    def run(self) -> list[Obligation]:
        try:
            self.old_sys, self.new_sys = shared_systems(self.old_tracked, self.new, self.literals)
            for system in (self.old_sys, self.new_sys):
                _ = Prover(system, self.budget).relation  # the encoding is built lazily: fail here
        except Unsupported as exc:
            return [Obligation("RGM103", "migration", "*", "unknown", f"the migration cannot be checked symbolically: {exc}", self.migration.location())]
        reachable = self.reachable = reachable_states(self.old)
        results: list[Obligation] = []
        goals: list[_Goal] = []
        for source, target in self.migration.states:
            loc = self.migration.location("states", source)
            if source not in reachable:
                for rule in MIGRATION_RULES:
                    results.append(Obligation(rule, f"{source} -> {target}", source, "proved", f"no run of OLD reaches `{source}`", loc))
                continue
            try:
                goals.extend(self.goals(source, target, results))
            except Unsupported as exc:
                results.append(Obligation("RGM103", f"{source} -> {target}", source, "unknown", f"the value map has no symbolic encoding: {exc}", loc))
        results.extend(self.decide(goals))
        if any(o.outcome != "proved" and o.rule in ("RGM101", "RGM102", "RGM103") for o in results):
            results.append(Obligation("RGM106", "continuation", "*", "unknown", "the runs after migration were not checked, because the migrated instances themselves are refused", self.migration.location()))
        else:
            try:
                results.extend(self.continuation())
            except Unsupported as exc:
                results.append(Obligation("RGM106", "continuation", "*", "unknown", f"the runs after migration cannot be checked symbolically: {exc}", self.migration.location()))
        order = {s.name: n for n, s in enumerate(self.old.states)}
        results.sort(key=lambda o: (order.get(o.state, -1), o.rule))
        return results

    # ------------------------------------------------------------------ the mapped configuration

    def mapped(self, s: State, target: str) -> tuple[dict[str, Any], dict[str, z3.BoolRef], dict[str, z3.BoolRef]]:
        """NEW's state vector for OLD's ``s`` mapped into ``target``; per variable, whether its
        expression evaluates and whether its value lies in NEW's domain."""
        old_sys, new_sys = self.old_sys, self.new_sys
        old_vars = old_sys.var_syms(s)
        vector: dict[str, Any] = {"@state": z3.IntVal(new_sys.codes[target])}
        ok: dict[str, z3.BoolRef] = {}
        inside: dict[str, z3.BoolRef] = {}
        for name, expr in self.migration.values:
            declared = self.new.variable_map[name].type
            sym = compile_z3(expr.tree, old_vars, {}, None, s["@state"], old_sys.codes)
            ok[name] = sym.ok
            if declared.kind == "set" and declared.of is not None and declared.of.kind not in ("enum", "bool"):
                # Sets of str, int, decimal and principals are Z3 arrays, mapped whole.
                if sym.kind != "array":
                    raise Unsupported(f"a value for the set `{name}` that is not a set of the same kind")
                inside[name] = new_sys.value_in(declared, sym)
                vector[name] = sym.term
                continue
            if declared.kind == "set":
                assert declared.of is not None
                keys = list(declared.of.values) if declared.of.kind == "enum" else ["True", "False"]
                bits, outside = self._set_bits(sym, keys)
                for key in keys:
                    vector[f"{name}#{key}"] = bits[key]
                inside[name] = z3.And(new_sys.value_in(declared, Sym("set", bits, TRUE, declared.of.kind, tuple(keys))), z3.Not(outside))
                continue
            inside[name] = new_sys.value_in(declared, sym)
            vector[name] = self._coerce(declared, sym)
        return vector, ok, inside

    def _set_bits(self, sym: Sym, keys: list[str]) -> tuple[dict[str, z3.BoolRef], z3.BoolRef]:
        codes = self.old_sys.codes
        if sym.kind == "set":
            bits = {k: sym.term.get(k, z3.BoolVal(False)) for k in keys}
            stray = [bit for k, bit in sym.term.items() if k not in keys]
            return bits, (z3.Or(stray) if stray else z3.BoolVal(False))
        bits = {}
        for key in keys:
            probe = Sym("strlit", key, TRUE) if key not in ("True", "False") else Sym("bool", z3.BoolVal(key == "True"), TRUE)
            bits[key] = z3.Or([sym_eq(item, probe, codes) for item in sym.term]) if sym.term else z3.BoolVal(False)
        return bits, z3.BoolVal(False)

    def _coerce(self, declared: Type, sym: Sym) -> Any:
        codes = self.new_sys.codes
        if declared.kind == "decimal" and sym.kind == "int":
            return z3.ToReal(sym.term)
        if declared.kind == "enum" and sym.kind == "strlit":
            code = codes.get(sym.term)
            return z3.IntVal(-1 if code is None else code)
        if declared.kind == "str" and sym.kind in ("strlit", "enum"):
            return as_string(sym, codes)
        if declared.kind == "principal" and sym.kind == "none":
            return z3.IntVal(UNSET)
        return sym.term

    def concrete(self, state: str, values: Mapping[str, Value]) -> tuple[str, dict[str, Value], dict[str, str]]:
        """The Python evaluator's answer for one instance: the NEW state, the values that could
        be computed, and per variable what went wrong (``error`` or ``domain``)."""
        target = self.migration.state_map[state]
        out: dict[str, Value] = {}
        problems: dict[str, str] = {}
        for name, expr in self.migration.values:
            try:
                value = _as_declared(self.new.variable_map[name].type, compile_expression(expr.tree)(values, {}, None, state))
            except EvaluationError:
                problems[name] = "error"
                continue
            out[name] = value
            if not self.new.variable_map[name].type.contains(value):
                problems[name] = "domain"
        return target, out, problems

    # ------------------------------------------------------------------ obligations

    def goals(self, source: str, target: str, results: list[Obligation]) -> list[_Goal]:
        old_sys, new, migration = self.old_sys, self.new, self.migration
        loc = migration.location("states", source)
        subject = f"{source} -> {target}"

        def in_source(s: State) -> z3.BoolRef:
            return old_sys.in_state(source, s)

        goals: list[_Goal] = []

        def undefined(s: State, i: Inputs) -> z3.BoolRef:
            _, ok, _ = self.mapped(s, target)
            return z3.And(in_source(s), z3.Not(z3.And(list(ok.values())))) if ok else z3.BoolVal(False)

        def confirm_undefined(cex: Counterexample, end: Any) -> bool | str:
            return "error" in self.concrete(end.state, end.values)[2].values() or "the Python evaluator computes every value"

        goals.append(_Goal("RGM101", subject, source, undefined, f"the value map for instances in `{source}`", loc, confirm_undefined))
        for name, _ in migration.values:
            vloc = migration.location("values", name)

            def escapes(s: State, i: Inputs, name: str = name) -> z3.BoolRef:
                _, ok, inside = self.mapped(s, target)
                return z3.And(in_source(s), z3.And(list(ok.values())), z3.Not(inside[name]))

            def confirm_escape(cex: Counterexample, end: Any, name: str = name) -> bool | str:
                return self.concrete(end.state, end.values)[2].get(name) == "domain" or f"the Python evaluator keeps `{name}` inside its domain"

            goals.append(_Goal("RGM102", f"{subject}: {name}", source, escapes, f"the migrated value of `{name}` from `{source}`", vloc, confirm_escape))
        values_loc = migration.location("values") if any(w.startswith("values.") for w in migration.written) else loc
        for inv in new.invariants:
            if inv.kind == "precedes":
                continue  # a property of runs: see `continuation`
            assert inv.expr is not None
            tree = inv.expr.tree

            def breaks(s: State, i: Inputs, inv: Invariant = inv, tree: Node = tree) -> z3.BoolRef:
                vector, ok, inside = self.mapped(s, target)
                sym = self.new_sys.invariant(tree, vector)
                holds = z3.And(sym.ok, sym.term) if inv.kind == "always" else z3.And(sym.ok, z3.Not(sym.term))
                return z3.And(in_source(s), z3.And(list(ok.values()) + list(inside.values())), z3.Not(holds))

            def confirm_break(cex: Counterexample, end: Any, inv: Invariant = inv) -> bool | str:
                state, values, problems = self.concrete(end.state, end.values)
                if problems:
                    return "the instance's values cannot all be migrated"
                assert inv.expr is not None
                try:
                    value = bool(new.compiled(inv.expr)(values, {}, None, state))
                except EvaluationError:
                    return True
                return (not value if inv.kind == "always" else value) or "the Python evaluator finds the invariant holds"

            goals.append(_Goal("RGM103", f"{subject}: {inv.name}", source, breaks, f"invariant `{inv.name}` after migrating from `{source}`", values_loc, confirm_break))
        # Progress: NEW can still reach a terminal from the target (ordinary transitions).
        reach = _ordinary_reach(new, target)
        if any(new.state_map[n].terminal is not None for n in reach):
            results.append(Obligation("RGM104", subject, source, "proved", f"NEW can reach a terminal from `{target}`", loc))
        else:
            goals.append(_Goal("RGM104", subject, source, lambda s, i: in_source(s), f"instances in `{source}`", loc, lambda cex, end: True))
        goals.extend(self.compensation_goal(source, target, loc, results))
        return goals

    def compensation_goal(self, source: str, target: str, loc: Location, results: list[Obligation]) -> list[_Goal]:
        subject = f"{source} -> {target}"
        stranded = self.compensated if target in self.failure_targets else {t.event for t in self.old.transitions if t.compensate in self.missing}
        # Only events whose firing can precede `source` (graph) can leave a debt there.
        events = sorted(e for e in stranded if any(source in _ordinary_reach(self.old, t.target) for t in self.old.transitions if t.event == e and t.compensate is not None))
        if not events:
            results.append(Obligation("RGM105", subject, source, "proved", f"instances in `{source}` owe no compensation that NEW cannot run in `{target}`", loc))
            return []
        old_sys = self.old_sys

        def owes(s: State, i: Inputs) -> z3.BoolRef:
            return z3.And(old_sys.in_state(source, s), z3.Or([s[f"@seen:{e}"] for e in events]))

        bad_compensations = self.missing if target not in self.failure_targets else {t.compensate for t in self.old.transitions if t.compensate}

        def confirm(cex: Counterexample, end: Any) -> bool | str:
            for step in cex.steps:
                t = self.old.transitions[step.transition - 1] if step.transition else None
                if t is not None and t.compensate in bad_compensations:
                    return True
            return "the run reaching it fired no transition whose compensation is missing"

        why = "a failure terminal, where owed compensations would never run" if target in self.failure_targets else "NEW, which does not declare " + ", ".join(f"`{c}`" for c in sorted(self.missing))
        return [_Goal("RGM105", subject, source, owes, f"compensations owed in `{source}` (mapped to {why})", loc, confirm)]

    # ------------------------------------------------------------------ deciding

    def decide(self, goals: list[_Goal]) -> list[Obligation]:
        if not goals:
            return []
        prover = Prover(self.old_sys, self.budget)
        verdicts: dict[int, Obligation] = {}
        bads: dict[Hashable, Any] = {n: g.bad for n, g in enumerate(goals)}
        found, exhausted = prover.bmc(bads, self.budget.bmc_depth)
        for key, witness in found.items():
            assert isinstance(key, int)
            verdicts[key] = self.witnessed(goals[key], witness)
        for key in exhausted:
            assert isinstance(key, int)
            g = goals[key]
            verdicts[key] = Obligation(g.rule, g.subject, g.state, "unknown", f"{g.describe}: the solver ran out of budget in the bounded search", g.location)
        rest = [n for n in range(len(goals)) if n not in verdicts]
        self.group(prover, goals, rest, verdicts)
        return [verdicts[n] for n in range(len(goals))]

    def group(self, prover: Prover, goals: list[_Goal], keys: list[int], verdicts: dict[int, Obligation]) -> None:
        if not keys:
            return
        answer = prover.spacer(*(goals[k].bad for k in keys))
        if answer.status == "safe":
            for k in keys:
                g = goals[k]
                verdicts[k] = Obligation(g.rule, g.subject, g.state, "proved", f"{g.describe}: safe for every instance OLD can reach (inductive invariant found)", g.location)
            return
        if len(keys) > 1:
            for k in keys:
                self.group(prover, goals, [k], verdicts)
            return
        (k,) = keys
        g = goals[k]
        if answer.status == "unknown":
            verdicts[k] = Obligation(g.rule, g.subject, g.state, "unknown", f"{g.describe}: undecided (Spacer gave up: {_reason(answer.reason)}); no violation within {self.budget.bmc_depth} steps", g.location)
            return
        found, _ = prover.bmc({k: g.bad}, self.budget.max_depth, start=self.budget.bmc_depth + 1)
        witness = found.get(k)
        if witness is None:
            verdicts[k] = Obligation(g.rule, g.subject, g.state, "unknown", f"{g.describe}: Spacer shows an unsafe instance exists, but no run of at most {self.budget.max_depth} steps reaching one was found", g.location)
            return
        verdicts[k] = self.witnessed(g, witness)

    def witnessed(self, g: _Goal, witness: Witness) -> Obligation:
        cex = decode(self.old_sys, witness, final_step=False)
        try:
            end = replay_counterexample(self.old_tracked, cex)
        except ReplayError as exc:
            return Obligation(g.rule, g.subject, g.state, "unknown", f"{g.describe}: a counterexample did not replay ({exc}); please report this", g.location)
        verdict = g.confirm(cex, end)
        if verdict is not True:
            return Obligation(g.rule, g.subject, g.state, "unknown", f"{g.describe}: not proved: {verdict}", g.location)
        mapped_state, mapped_values, _ = self.concrete(end.state, end.values)
        steps = len(cex.steps)
        example = MigrationCounterexample(end.state, dict(end.values), replace(cex, spec=self.old.name), mapped_state, mapped_values)
        return Obligation(g.rule, g.subject, g.state, "violated", f"{g.describe}: violated by an instance that a run of {steps} step{'s' if steps != 1 else ''} reaches", g.location, example)

    # ------------------------------------------------------------------ continuing in NEW

    def _role_of(self, identity: Any, role: str, x: State) -> z3.BoolRef:
        """The OLD role bit of whoever ``identity`` is (a person stored in an OLD principal)."""
        result: z3.BoolRef = z3.BoolVal(False)
        for q in reversed(self.old_sys.principals):
            result = z3.If(identity == x[q], x[f"{q}@{role}"], result)
        return z3.If(z3.Or(identity == UNSET, identity == SYSTEM_ID), z3.BoolVal(False), result)

    def migrates(self, x: State, z: State) -> z3.BoolRef:
        """``z`` is NEW's configuration for OLD's ``x`` (a mapped state that OLD's graph reaches).

        A person keeps the roles OLD knew them by; roles NEW alone has are left free (every
        assignment), and the `precedes` monitors carry over from OLD's run."""
        old_sys, new_sys = self.old_sys, self.new_sys
        options = []
        for source, target in self.migration.states:
            if source not in self.reachable:
                continue
            vector, ok, inside = self.mapped(x, target)
            parts = [old_sys.in_state(source, x), *ok.values(), *inside.values()]
            parts.extend(z[key] == term for key, term in vector.items())
            for p in new_sys.principals:
                for role in new_sys.roles:
                    if role in old_sys.roles:
                        parts.append(z[f"{p}@{role}"] == self._role_of(vector[p], role, x))
            for event in new_sys.monitors:
                seen = x[f"@seen:{event}"] if event in old_sys.monitors else z3.BoolVal(False)
                parts.append(z[f"@seen:{event}"] == seen)
            parts.append(new_sys.domain(z))
            options.append(z3.And(parts))
        return z3.Or(options) if options else z3.BoolVal(False)

    def continuation_goals(self) -> list[tuple[Invariant, Callable[[State, Inputs], z3.BoolRef]]]:
        new_sys = self.new_sys
        goals: list[tuple[Invariant, Callable[[State, Inputs], z3.BoolRef]]] = []
        for inv in self.new.invariants:
            if inv.kind == "precedes":
                firing = [t for t in self.new.transitions if t.event == inv.then]
                first = inv.first

                def run_bad(z: State, j: Inputs, firing: list[Any] = firing, first: str | None = first) -> z3.BoolRef:
                    fires = z3.Or([new_sys.fires(t, z, j) for t in firing]) if firing else z3.BoolVal(False)
                    return z3.And(z3.Not(z[f"@seen:{first}"]), fires)

                goals.append((inv, run_bad))
                continue

            def state_bad(z: State, j: Inputs, inv: Invariant = inv) -> z3.BoolRef:
                assert inv.expr is not None
                sym = new_sys.invariant(inv.expr.tree, z)
                return z3.Not(z3.And(sym.ok, sym.term)) if inv.kind == "always" else z3.Or(z3.Not(sym.ok), sym.term)

            goals.append((inv, state_bad))
        return goals

    def spacer_continuation(self, bads: list[Callable[[State, Inputs], z3.BoolRef]]) -> tuple[str, str]:
        old_sys, new_sys = self.old_sys, self.new_sys
        x, i, y = old_sys.state("cx"), old_sys.inputs("ci"), old_sys.state("cy")
        z, j, w = new_sys.state("cz"), new_sys.inputs("cj"), new_sys.state("cw")
        flat = System.flat
        xs, ins, ys, zs, js, ws = flat(x), flat(i), flat(y), flat(z), flat(j), flat(w)
        inv_old = z3.Function("InvOld", *[v.sort() for v in xs], z3.BoolSort())
        inv_new = z3.Function("InvNew", *[v.sort() for v in zs], z3.BoolSort())
        solver = z3.SolverFor("HORN")
        self.budget.apply(solver)
        solver.add(z3.ForAll(xs, z3.Implies(old_sys.init(x), inv_old(*xs))))
        solver.add(z3.ForAll(xs + ins + ys, z3.Implies(z3.And(inv_old(*xs), old_sys.step(x, i, y)), inv_old(*ys))))
        solver.add(z3.ForAll(xs + zs, z3.Implies(z3.And(inv_old(*xs), self.migrates(x, z)), inv_new(*zs))))
        solver.add(z3.ForAll(zs + js + ws, z3.Implies(z3.And(inv_new(*zs), new_sys.step(z, j, w)), inv_new(*ws))))
        bad = z3.Or([b(z, j) for b in bads])
        solver.add(z3.ForAll(zs + js, z3.Implies(z3.And(inv_new(*zs), bad), z3.BoolVal(False))))
        try:
            answer = solver.check()
        except z3.Z3Exception as exc:
            return "unknown", str(exc)
        if answer == z3.sat:
            return "safe", ""
        if answer == z3.unsat:
            return "unsafe", ""
        return "unknown", solver.reason_unknown()

    def bmc_continuation(self, bad: Callable[[State, Inputs], z3.BoolRef]) -> tuple[z3.ModelRef, list[State], list[Inputs], list[State], list[Inputs]] | None:
        """The shortest-first search for OLD steps, the migration, then NEW steps reaching ``bad``."""
        old_sys, new_sys = self.old_sys, self.new_sys
        depth = self.budget.bmc_depth
        solver = z3.Solver()
        self.budget.apply(solver)
        xs, ins = [old_sys.state("b0")], [old_sys.inputs("bi0")]
        solver.add(old_sys.init(xs[0]))
        for k in range(depth + 1):
            if k:
                xs.append(old_sys.state(f"b{k}"))
                ins.append(old_sys.inputs(f"bi{k}"))
                solver.add(old_sys.step(xs[k - 1], ins[k - 1], xs[k]))
            solver.push()
            zs, js = [new_sys.state(f"m{k}.0")], [new_sys.inputs(f"mj{k}.0")]
            solver.add(self.migrates(xs[k], zs[0]))
            for n in range(depth + 1 - k):
                if n:
                    zs.append(new_sys.state(f"m{k}.{n}"))
                    js.append(new_sys.inputs(f"mj{k}.{n}"))
                    solver.add(new_sys.step(zs[n - 1], js[n - 1], zs[n]))
                solver.push()
                solver.add(bad(zs[n], js[n]))
                if solver.check() == z3.sat:
                    return solver.model(), xs[: k + 1], ins[:k], list(zs), list(js)
                solver.pop()
            solver.pop()
        return None

    def continuation(self) -> list[Obligation]:
        goals = self.continuation_goals()
        if not goals:
            return []
        loc = self.migration.location("states")
        status, reason = self.spacer_continuation([bad for _, bad in goals])
        if status == "safe":
            names = ", ".join(f"`{inv.name}`" for inv, _ in goals)
            return [Obligation("RGM106", "continuation", "*", "proved", f"every run a migrated instance goes on with in NEW keeps {names} (inductive invariants of OLD and of NEW after migration found)", loc)]
        out = []
        for inv, bad in goals:
            subject = f"continuation: {inv.name}"
            single, reason = (status, reason) if len(goals) == 1 else self.spacer_continuation([bad])
            if single == "safe":
                out.append(Obligation("RGM106", subject, "*", "proved", f"every run a migrated instance goes on with in NEW keeps `{inv.name}`", loc))
                continue
            found = self.bmc_continuation(bad)
            if found is None:
                why = f"Spacer gave up: {_reason(reason)}" if single == "unknown" else "Spacer shows a violation exists, but no run within the bound was found"
                out.append(Obligation("RGM106", subject, "*", "unknown", f"whether runs after migration keep `{inv.name}` is undecided ({why}; no violation within {self.budget.bmc_depth} steps)", loc))
                continue
            out.append(self.continued(inv, subject, loc, *found))
        return out

    def continued(self, inv: Invariant, subject: str, loc: Location, model: z3.ModelRef, xs: list[State], ins: list[Inputs], zs: list[State], js: list[Inputs]) -> Obligation:
        """Re-check a run through OLD, the migration and NEW with the reference semantics."""
        cex = decode(self.old_sys, Witness(model, xs, ins), final_step=False)
        try:
            end = replay_counterexample(self.old_tracked, cex)
        except ReplayError as exc:
            return Obligation("RGM106", subject, "*", "unknown", f"a counterexample did not replay in OLD ({exc}); please report this", loc)
        state, values, problems = self.concrete(end.state, end.values)
        if problems:
            return Obligation("RGM106", subject, "*", "unknown", "a counterexample's instance cannot be migrated; please report this", loc)
        people = _people(self.old_sys, model, xs[-1], end.values)
        precedes = inv.kind == "precedes"
        steps = _new_steps(self.new_sys, model, zs, js, people, final=precedes)
        seen = set(end.seen)
        here, now = state, dict(values)
        for number, step in enumerate(steps, 1):
            last = precedes and number == len(steps)
            if step.kind == "error":
                target = self.new.error_target(here)
                if target is None or target != step.state:
                    return Obligation("RGM106", subject, "*", "unknown", f"step {number} after migration did not replay in NEW; please report this", loc)
                here = target
                continue
            outcome = fire(self.new, here, now, step.event, step.actor, frozenset(step.roles), dict(step.params), system=step.kind == "timeout")
            if not isinstance(outcome, Fired) or outcome.transition.index != step.transition:
                return Obligation("RGM106", subject, "*", "unknown", f"step {number} (`{step.event}`) after migration did not replay in NEW; please report this", loc)
            if last:
                if outcome.transition.event != inv.then or inv.first in seen:
                    return Obligation("RGM106", subject, "*", "unknown", f"the final step of a counterexample for `{inv.name}` was not confirmed; please report this", loc)
                break
            here, now = outcome.target, dict(outcome.values)
            seen.add(step.event)
        if not precedes:
            assert inv.expr is not None
            try:
                value = bool(self.new.compiled(inv.expr)(now, {}, None, here))
                broken = not value if inv.kind == "always" else value
            except EvaluationError:
                broken = True
            if not broken:
                return Obligation("RGM106", subject, "*", "unknown", f"a counterexample for `{inv.name}` was not confirmed by the Python evaluator; please report this", loc)
        example = MigrationCounterexample(end.state, dict(end.values), replace(cex, spec=self.old.name), state, values, tuple(steps))
        count = len(steps)
        return Obligation("RGM106", subject, end.state, "violated", f"invariant `{inv.name}` of NEW is violated {count} step{'s' if count != 1 else ''} after migrating an instance from `{end.state}`", loc, example)


def _people(system: System, model: z3.ModelRef, x: State, values: Mapping[str, Value]) -> dict[int, str]:
    """Identity -> name for the people OLD's decoded run stored, so NEW's steps name them alike."""
    people: dict[int, str] = {}
    for p in system.principals:
        name = values.get(p)
        if isinstance(name, str):
            people[model.eval(x[p], model_completion=True).as_long()] = name
    return people


def _scalar(system: System, declared: Type, value: Any, people: dict[int, str]) -> Value:
    kind = declared.kind
    if kind == "bool":
        return bool(z3.is_true(value))
    if kind == "int":
        return int(value.as_long())
    if kind == "decimal":
        fraction = value.as_fraction()
        return Decimal(fraction.numerator) / Decimal(fraction.denominator)
    if kind == "enum":
        return str(system.codes.names[value.as_long()])
    if kind == "str":
        return str(value.as_string())
    if kind == "principal":
        identity = value.as_long()
        if identity == UNSET:
            return None
        if identity == SYSTEM_ID:
            return SYSTEM
        return people.setdefault(identity, f"person{len(people) + 1}")
    raise Unsupported(f"no value of kind {kind}")


def _new_steps(system: System, model: z3.ModelRef, zs: list[State], js: list[Inputs], people: dict[int, str], *, final: bool) -> list[Step]:
    """NEW's steps after migration, decoded from the model (the last inputs as a final step)."""

    def ev(term: Any) -> Any:
        return model.eval(term, model_completion=True)

    def values(z: State) -> dict[str, Value]:
        out: dict[str, Value] = {}
        for variable in system.spec.variables:
            declared = variable.type
            if declared.kind == "set":
                assert declared.of is not None
                keys = declared.of.values if declared.of.kind == "enum" else ("True", "False")
                out[variable.name] = frozenset((k if declared.of.kind == "enum" else k == "True") for k in keys if z3.is_true(ev(z[f"{variable.name}#{k}"])))
            else:
                out[variable.name] = _scalar(system, declared, ev(z[variable.name]), people)
        return out

    steps = []
    count = len(zs) - 1 + (1 if final else 0)
    for n in range(count):
        j = js[n]
        move = system.moves[ev(j["@move"]).as_long()]
        after = values(zs[n + 1]) if n + 1 < len(zs) else {}
        if move.kind == "error":
            steps.append(Step("error", "error", None, (), {}, move.target, after))
            continue
        transition = move.transition
        assert transition is not None
        if move.kind == "timeout":
            steps.append(Step(transition.event, "timeout", SYSTEM, (), {p.name: p.default for p in transition.params}, move.target, after, transition.index))
            continue
        roles = tuple(r for r in system.roles if z3.is_true(ev(j[f"@actor@{r}"])))
        actor = _scalar(system, Type("principal"), ev(j["@actor"]), people)
        params: dict[str, Value] = {}
        for p in transition.params:
            key = f"@p:{transition.event}:{p.name}"
            if p.type.kind == "set":
                assert p.type.of is not None
                keys = p.type.of.values if p.type.of.kind == "enum" else ("True", "False")
                params[p.name] = frozenset((k if p.type.of.kind == "enum" else k == "True") for k in keys if z3.is_true(ev(j[f"{key}#{k}"])))
            else:
                params[p.name] = _scalar(system, p.type, ev(j[key]), people)
        steps.append(Step(transition.event, "transition", actor if isinstance(actor, str) else None, roles, params, move.target, after, transition.index))
    return steps
