"""Import W3C SCXML statecharts as railguard specs, by flattening them.

**The flattening rule.** railguard machines are flat; an SCXML machine is a hierarchy of
compound, parallel and history states. The importer runs the W3C SCXML interpretation
algorithm (Appendix D: microsteps, eventless transitions, the internal queue, conflict
resolution, history, ``done.state.*`` events) on every *stable* point — a configuration plus
the recorded history values — that the machine can reach, for every event it names. Each
stable point becomes one railguard state (named after its active atomic states, its
description lists them); each macrostep (an external event and everything that follows it
until the machine is stable again) becomes one railguard transition. So the verifier and the
runtime see exactly SCXML's configuration semantics for what is imported. A railguard state
``start`` stands before the machine is initialised: its event ``start`` runs the initial
macrostep (so a machine that ends during initialisation is still a valid spec).

**Data.** ``<data>`` with a number, boolean or string literal becomes a typed variable
(``int``, ``decimal``, ``bool``, ``str``); ``<assign>`` of an expression over such variables,
and conditions built from them, ``In()``, comparisons, ``and``/``or``/``not`` (``&&``,
``||``, ``!``, ``===`` in ECMAScript) are mapped exactly: a macrostep that branches on data
becomes one railguard transition per path, guarded by the path's condition over the values
before the event, with the composed assignments. Anything else — ``<script>``,
``<foreach>``, a value that is not a literal, ``_event`` — makes the variables it touches
*untracked*: conditions over them may go either way (over-approximated, reported).
``<send>`` and ``<invoke>`` are over-approximated: every event the machine names can be
fired at any time from outside, which includes whatever a send or an invoked service
would deliver. ``<log>`` and ``<cancel>`` change no control flow.

**Bounds.** At most ``max_states`` stable points (default :data:`MAX_STATES`), at most
:data:`MAX_MICROSTEPS` microsteps in one macrostep and :data:`MAX_PATHS` data paths per
event; beyond any of them the import is refused with one sentence, never truncated.

**Roles and errors.** Every event's permission is the event's railguard name; without a
roles file one role ``caller`` grants them all. A failure terminal ``aborted`` is the
workflow's ``on_error`` (railguard's operator abort; SCXML itself has no effects to fail).
Top-level ``<final>`` states become success terminals.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from railguard.spec.errors import EvaluationError, ExpressionError, Location
from railguard.spec.evaluate import evaluate
from railguard.spec.expr import (
    Binary,
    BoolOp,
    Call,
    Compare,
    Conditional,
    ListExpr,
    Literal,
    Node,
    Param,
    Unary,
    Var,
    children,
    parse,
    unparse,
)

from . import Finding, FindingKind, ImportResult, InteropError
from .common import MAX_BYTES, MAX_DEPTH, MAX_NODES, Names, load_spec, read_bounded, roles_for

__all__ = [
    "MAX_MICROSTEPS",
    "MAX_PATHS",
    "MAX_STATES",
    "import_scxml",
    "import_scxml_text",
]

MAX_STATES = 2000
MAX_MICROSTEPS = 1000
MAX_PATHS = 256

NS = "{http://www.w3.org/2005/07/scxml}"
START = "start"
ABORTED = "aborted"
STATE_KINDS = ("state", "parallel", "final")


# --------------------------------------------------------------------------- reading


class _LineBuilder(TreeBuilder):
    """A tree builder that remembers each element's line and refuses deep or huge trees."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.parser: Any = None
        self.lines: dict[int, int] = {}
        self.depth = 0
        self.count = 0

    def start(self, tag: Any, attrs: Any) -> Element:
        self.depth += 1
        self.count += 1
        if self.depth > MAX_DEPTH:
            raise InteropError(f"`{self.source}` nests elements more than {MAX_DEPTH} levels deep")
        if self.count > MAX_NODES:
            raise InteropError(f"`{self.source}` has more than {MAX_NODES} elements, more than an import accepts")
        element = super().start(tag, attrs)
        if self.parser is not None:
            self.lines[id(element)] = int(self.parser.parser.CurrentLineNumber)
        return element

    def end(self, tag: Any) -> Element:
        self.depth -= 1
        return super().end(tag)


def _read_xml(text: str, source: str) -> tuple[Element, dict[int, int]]:
    from defusedxml import DefusedXmlException

    if len(text) > MAX_BYTES:
        raise InteropError(f"`{source}` is longer than {MAX_BYTES} characters, more than an import accepts")
    from defusedxml.ElementTree import DefusedXMLParser

    builder = _LineBuilder(source)
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder.parser = parser
    try:
        parser.feed(text)
        root: Element = parser.close()
    except DefusedXmlException as exc:
        what = type(exc).__name__.replace("Forbidden", "").lower()
        kind = {"dtd": "a DTD", "entities": "entity declarations", "externalreference": "an external reference"}.get(what, "a forbidden construct")
        raise InteropError(f"`{source}` contains {kind}, which an import refuses (no DTDs, entities or external references)") from None
    except ParseError as exc:
        raise InteropError(f"`{source}` is not well-formed XML: {exc}") from None
    except RecursionError:
        raise InteropError(f"`{source}` is nested too deeply") from None
    return root, builder.lines


# --------------------------------------------------------------------------- the document


@dataclass(eq=False)
class _Action:
    kind: str  # assign raise if send log havoc
    location: str = ""
    expr: str | None = None
    event: str = ""
    branches: list[tuple[str | None, list[_Action]]] = field(default_factory=list)
    line: int = 0


@dataclass(eq=False)
class _Transition:
    source: _State
    events: tuple[str, ...]
    cond: str | None
    targets: tuple[str, ...]
    internal: bool
    actions: list[_Action]
    order: int
    line: int


@dataclass(eq=False)
class _State:
    id: str
    kind: str  # scxml state parallel final history
    parent: _State | None
    order: int
    line: int
    children: list[_State] = field(default_factory=list)
    transitions: list[_Transition] = field(default_factory=list)
    onentry: list[_Action] = field(default_factory=list)
    onexit: list[_Action] = field(default_factory=list)
    initial: tuple[str, ...] = ()
    initial_actions: list[_Action] = field(default_factory=list)
    deep: bool = False
    ancestors: tuple[_State, ...] = ()

    def __repr__(self) -> str:
        return f"<{self.kind} {self.id}>"

    @property
    def states(self) -> list[_State]:
        return [c for c in self.children if c.kind in STATE_KINDS]

    @property
    def compound(self) -> bool:
        return self.kind == "state" and bool(self.states)

    @property
    def atomic(self) -> bool:
        return self.kind in ("state", "final") and not self.states


@dataclass
class ScxmlMachine:
    """A parsed SCXML document: its states in document order, by id, and what was noted."""

    source: str
    name: str
    root: _State
    by_id: dict[str, _State]
    order: list[_State]
    datamodel: str
    data: list[tuple[str, str | None, int]]
    findings: list[Finding]
    metadata: bool = False

    def find(self, finding: Finding) -> None:
        self.findings.append(finding)


def _local(tag: str) -> str:
    return tag[len(NS):] if tag.startswith(NS) else tag


def parse_scxml(text: str, source: str = "<scxml>") -> ScxmlMachine:
    """Parse SCXML text into a :class:`ScxmlMachine` (hardened XML reader; no DTDs or entities)."""
    root, lines = _read_xml(text, source)
    if _local(root.tag) != "scxml":
        raise InteropError(f"`{source}` is not an SCXML document (its root is `{_local(root.tag)}`, not `scxml`)")
    findings: list[Finding] = []
    machine = ScxmlMachine(source, root.get("name") or "", _State("<scxml>", "scxml", None, 0, lines.get(id(root), 1)), {}, [], root.get("datamodel", "null"), [], findings)

    def loc(element: Element) -> Location:
        return Location(source, lines.get(id(element), 0), 1)

    counter = [0]
    transitions_order = [0]
    anonymous = [0]

    def note(kind: FindingKind, construct: str, message: str, element: Element) -> None:
        findings.append(Finding(kind, construct, message, loc(element)))

    def actions(element: Element) -> list[_Action]:
        result: list[_Action] = []
        for child in element:
            tag = _local(child.tag)
            line = lines.get(id(child), 0)
            if tag == "assign":
                expr = child.get("expr")
                if expr is None and (child.text or "").strip():
                    expr = (child.text or "").strip()
                result.append(_Action("assign", location=child.get("location", ""), expr=expr, line=line))
            elif tag == "raise":
                result.append(_Action("raise", event=child.get("event", ""), line=line))
            elif tag == "if":
                branches: list[tuple[str | None, list[_Action]]] = [(child.get("cond", "false"), [])]
                for part in child:
                    ptag = _local(part.tag)
                    if ptag == "elseif":
                        branches.append((part.get("cond", "false"), []))
                    elif ptag == "else":
                        branches.append((None, []))
                    else:
                        holder = Element("x")
                        holder.append(part)
                        branches[-1][1].extend(actions(holder))
                result.append(_Action("if", branches=branches, line=line))
            elif tag == "send":
                target = child.get("target")
                event = child.get("event") or ""
                quoted = re.fullmatch(r"""\s*(['"])([^'"]+)\1\s*""", child.get("eventexpr") or "")
                if not event and quoted:
                    event = quoted.group(2)
                if target == "#_internal" and event and child.get("delay") is None and child.get("delayexpr") is None:
                    note(FindingKind.MAPPED, "send", f"`<send target=\"#_internal\" event=\"{event}\">` is mapped as `<raise>`", child)
                    result.append(_Action("raise", event=event, line=line))
                else:
                    note(FindingKind.OVER_APPROXIMATED, "send", f"`<send{' event=' + repr(event) if event else ''}>` is over-approximated: the event it sends may be fired at any time", child)
                    result.append(_Action("havoc", location=child.get("idlocation", ""), line=line))
            elif tag in ("log", "cancel"):
                if tag == "cancel":
                    note(FindingKind.OVER_APPROXIMATED, "cancel", "`<cancel>` is over-approximated (sent events may still arrive)", child)
            elif tag == "script":
                note(FindingKind.OVER_APPROXIMATED, "script", "`<script>` is over-approximated: every variable becomes untracked", child)
                result.append(_Action("havoc", location="*", line=line))
            elif tag == "foreach":
                note(FindingKind.OVER_APPROXIMATED, "foreach", "`<foreach>` is over-approximated: the variables it assigns become untracked", child)
                havocked = [child.get("item", ""), child.get("index", "")]
                havocked.extend(_assigned_locations(child))
                result.extend(_Action("havoc", location=name, line=line) for name in havocked if name)
            else:
                note(FindingKind.OVER_APPROXIMATED, tag, f"`<{tag}>` is not understood and is ignored as executable content", child)
        return result

    def build(element: Element, state: _State) -> None:
        for child in element:
            tag = _local(child.tag)
            if tag in ("state", "parallel", "final", "history"):
                counter[0] += 1
                sid = child.get("id")
                if not sid:
                    anonymous[0] += 1
                    sid = f"_anon{anonymous[0]}"
                if sid in machine.by_id:
                    raise InteropError(f"`{source}`:{lines.get(id(child), 0)}: state id `{sid}` is declared twice")
                sub = _State(sid, tag, state, counter[0], lines.get(id(child), 0))
                sub.ancestors = (state, *state.ancestors)
                machine.by_id[sid] = sub
                machine.order.append(sub)
                state.children.append(sub)
                if tag == "history":
                    sub.deep = child.get("type", "shallow") == "deep"
                    note(FindingKind.MAPPED, "history", f"{'deep' if sub.deep else 'shallow'} history `{sid}` is mapped: history values are part of each flattened state", child)
                if child.get("initial"):
                    sub.initial = tuple(child.get("initial", "").split())
                build(child, sub)
            elif tag == "transition":
                transitions_order[0] += 1
                cond = child.get("cond")
                targets = tuple((child.get("target") or "").split())
                events = tuple(e for e in (child.get("event") or "").split())
                state.transitions.append(_Transition(state, events, cond, targets, child.get("type") == "internal", actions(child), transitions_order[0], lines.get(id(child), 0)))
            elif tag == "onentry":
                state.onentry.extend(actions(child))
            elif tag == "onexit":
                state.onexit.extend(actions(child))
            elif tag == "initial":
                for part in child:
                    if _local(part.tag) == "transition":
                        state.initial = tuple((part.get("target") or "").split())
                        state.initial_actions = actions(part)
            elif tag == "datamodel":
                for data in child:
                    if _local(data.tag) != "data":
                        continue
                    expr = data.get("expr")
                    if expr is None and data.get("src") is None and (data.text or "").strip():
                        expr = (data.text or "").strip()
                    if data.get("src") is not None:
                        note(FindingKind.OVER_APPROXIMATED, "data", f"`<data id=\"{data.get('id')}\" src=...>` is over-approximated: untracked", data)
                        expr = None
                    machine.data.append((data.get("id", ""), expr, lines.get(id(data), 0)))
            elif tag == "invoke":
                note(FindingKind.OVER_APPROXIMATED, "invoke", "`<invoke>` is over-approximated: the service is not run, and the events it could send may be fired at any time", child)
            elif tag == "donedata":
                note(FindingKind.OVER_APPROXIMATED, "donedata", "`<donedata>` is ignored: done events carry no data in railguard", child)
            elif tag == "script":
                note(FindingKind.OVER_APPROXIMATED, "script", "a top-level `<script>` is over-approximated: every variable becomes untracked", child)
                machine.data.append(("*", None, lines.get(id(child), 0)))
            elif child.tag.startswith("{urn:railguard:"):
                machine.metadata = True
            else:
                note(FindingKind.OVER_APPROXIMATED, tag, f"`<{tag}>` is not understood and is ignored", child)

    machine.root.initial = tuple((root.get("initial") or "").split())
    build(root, machine.root)
    if not machine.root.states:
        raise InteropError(f"`{source}` declares no states")
    _check_targets(machine)
    return machine


def _assigned_locations(element: Element) -> list[str]:
    return [e.get("location", "") for e in element.iter() if _local(e.tag) == "assign"]


def _check_targets(machine: ScxmlMachine) -> None:
    for state in [machine.root, *machine.order]:
        refs = [(state.initial, state.line)] + [(t.targets, t.line) for t in state.transitions]
        for targets, line in refs:
            for target in targets:
                if target not in machine.by_id:
                    raise InteropError(f"`{machine.source}`:{line}: target `{target}` names no state")
        if state.initial and state.kind in ("state", "scxml"):
            for target in state.initial:
                found = machine.by_id[target]
                if state not in found.ancestors:
                    raise InteropError(f"`{machine.source}`:{state.line}: initial state `{target}` is not inside `{state.id}`")
        if state.kind == "history" and len(state.transitions) > 1:
                raise InteropError(f"`{machine.source}`:{state.line}: history `{state.id}` has more than one default transition")


# --------------------------------------------------------------------------- expressions

_IN = re.compile(r"""\bIn\(\s*(['"])([^'"]*)\1\s*\)""")
_JS = [
    (re.compile(r"==="), "=="),
    (re.compile(r"!=="), "!="),
    (re.compile(r"&&"), " and "),
    (re.compile(r"\|\|"), " or "),
    (re.compile(r"!(?!=)"), " not "),
    (re.compile(r"\btrue\b"), "True"),
    (re.compile(r"\bfalse\b"), "False"),
]

#: A condition the importer cannot decide: it may go either way.
UNKNOWN = Var("__unknown__")
#: The prefix of the `bool` params that resolve undecidable conditions.
UNKNOWN_PARAM = "unknown_"


class _Exprs:
    """Translates SCXML expressions into railguard expression trees (``In('s')`` as ``_in_N``)."""

    def __init__(self, datamodel: str, tracked: Mapping[str, Any]) -> None:
        self.ecmascript = datamodel.lower() == "ecmascript"
        self.tracked = tracked
        self.in_names: dict[str, str] = {}
        self.cache: dict[str, Node] = {}

    def tree(self, text: str | None) -> Node:
        if text is None:
            return UNKNOWN
        cached = self.cache.get(text)
        if cached is not None:
            return cached
        made = self.cache[text] = self._tree(text)
        return made

    def _tree(self, text: str) -> Node:
        def in_name(match: re.Match[str]) -> str:
            return self.in_names.setdefault(match.group(2), f"_in_{len(self.in_names)}")

        translated = _IN.sub(in_name, text)
        for pattern, replacement in _JS if self.ecmascript else _JS[-2:]:
            translated = pattern.sub(replacement, translated)
        try:
            tree = parse(translated)
        except ExpressionError:
            return UNKNOWN
        for name in _var_names(tree):
            if not name.startswith("_in_") and name not in self.tracked:
                return UNKNOWN
        return tree


def _var_names(tree: Node) -> set[str]:
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Var):
            found.add(node.name)
        elif type(node).__name__ in ("Param", "Actor", "StateRef"):
            found.add("__unsupported__")
        stack.extend(children(node))
    return found


def _substitute(tree: Node, env: Mapping[str, Node]) -> Node:
    if tree is UNKNOWN:
        return UNKNOWN
    if isinstance(tree, Var):
        return env.get(tree.name, tree)
    kids = children(tree)
    if not kids:
        return tree
    new = [_substitute(k, env) for k in kids]
    if any(k is UNKNOWN for k in new):
        return UNKNOWN
    if isinstance(tree, Unary):
        made: Node = replace(tree, operand=new[0])
    elif isinstance(tree, Compare):
        made = replace(tree, left=new[0], right=new[1])
    elif isinstance(tree, BoolOp):
        made = replace(tree, operands=tuple(new))
    elif isinstance(tree, Conditional):
        made = replace(tree, cond=new[0], then=new[1], orelse=new[2])
    elif isinstance(tree, Binary):
        made = replace(tree, left=new[0], right=new[1])
    elif isinstance(tree, ListExpr):
        made = replace(tree, items=tuple(new))
    elif isinstance(tree, Call):
        made = replace(tree, args=tuple(new))
    else:
        return tree
    return _fold(made)


def _fold(tree: Node) -> Node:
    """Evaluate ``tree`` when it has no variables left; short-circuit known booleans."""
    if isinstance(tree, BoolOp):
        kept = []
        for operand in tree.operands:
            if isinstance(operand, Literal) and isinstance(operand.value, bool):
                if operand.value == (tree.op == "or"):
                    return Literal(operand.value)
                continue
            kept.append(operand)
        if not kept:
            return Literal(tree.op == "and")
        if len(kept) == 1:
            return kept[0]
        tree = replace(tree, operands=tuple(kept))
    if _var_names(tree):
        return tree
    try:
        value = evaluate(tree, {})
    except (EvaluationError, TypeError, ValueError, ZeroDivisionError, ArithmeticError):
        return tree
    if isinstance(value, bool | int | str | Decimal):
        return Literal(value)
    return tree


def _negate(tree: Node) -> Node:
    if isinstance(tree, Unary) and tree.op == "not":
        return tree.operand
    return _fold(Unary("not", tree))


# --------------------------------------------------------------------------- interpretation


class _Refused(Exception):
    pass


class _Repeated(Exception):
    """A data path of a macrostep came back to a point it had passed: it adds nothing."""


@dataclass(frozen=True)
class _Point:
    """A stable point: the configuration (state ids) and the recorded history values."""

    configuration: frozenset[str]
    history: frozenset[tuple[str, frozenset[str]]]
    done: bool


@dataclass
class _Path:
    """One data path of a macrostep: what was assumed, and the values it computed."""

    choices: list[bool]
    position: int = 0
    guards: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class _Outcome:
    guards: tuple[Node, ...]
    env: tuple[tuple[str, Node], ...]
    point: _Point
    fired: bool


class _Run:
    """One execution of a macrostep under fixed data choices (the W3C algorithm)."""

    def __init__(self, m: _Interpreter, point: _Point | None, env: dict[str, Node], path: _Path) -> None:
        self.m = m
        self.config: set[_State] = set() if point is None else {m.by_id[s] for s in point.configuration}
        self.history: dict[str, set[_State]] = {} if point is None else {h: {m.by_id[s] for s in v} for h, v in point.history}
        self.env = env
        self.path = path
        self.queue: list[str] = []
        self.running = True
        self.microsteps = 0
        self.fired = False

    # ---- data

    def holds(self, text: str | None) -> bool:
        if text is None:
            return True
        tree = self.m.exprs.tree(text)
        if tree is not UNKNOWN:
            env = dict(self.env)
            for state_id, name in self.m.exprs.in_names.items():
                env[name] = Literal(any(s.id == state_id for s in self.config))
            tree = _substitute(tree, env)
        if isinstance(tree, Literal):
            if isinstance(tree.value, bool):
                return tree.value
            return bool(tree.value)
        if tree is not UNKNOWN:
            if tree in self.path.guards:
                return True
            if _negate(tree) in self.path.guards:
                return False
        position = self.path.position
        choice = self.choose()
        if tree is UNKNOWN:
            # An undecidable condition is resolved by the caller: a `bool` param per choice,
            # so both outcomes stay possible (railguard takes the first enabled transition).
            tree = Param(f"{UNKNOWN_PARAM}{position + 1}")
        self.path.guards.append(tree if choice else _negate(tree))
        return choice

    def choose(self) -> bool:
        path = self.path
        if path.position < len(path.choices):
            value = path.choices[path.position]
        else:
            value = True
            path.choices.append(True)
        path.position += 1
        if path.position > 64:
            raise _Refused("a macrostep branches on data more than 64 times")
        return value

    def execute(self, actions: Sequence[_Action]) -> None:
        for action in actions:
            if action.kind == "assign":
                if action.location in self.m.tracked:
                    tree = self.m.exprs.tree(action.expr)
                    if tree is UNKNOWN:
                        raise _Refused(f"assignment to tracked `{action.location}` is not understood")
                    self.env[action.location] = _substitute(tree, self.env)
            elif action.kind == "raise":
                self.queue.append(action.event)
            elif action.kind == "if":
                for cond, body in action.branches:
                    if cond is None or self.holds(cond):
                        self.execute(body)
                        break

    # ---- structure

    @staticmethod
    def descendant(s: _State, of: _State) -> bool:
        return of in s.ancestors

    def in_final(self, s: _State) -> bool:
        if s.compound:
            return any(c.kind == "final" and c in self.config for c in s.states)
        if s.kind == "parallel":
            return all(self.in_final(c) for c in s.states)
        return False

    def matches(self, t: _Transition, event: str | None) -> bool:
        if event is None:
            return not t.events
        for descriptor in t.events:
            d = descriptor.removesuffix(".*").removesuffix(".")
            if d in ("*", event) or event.startswith(d + "."):
                return True
        return False

    def select(self, event: str | None) -> list[_Transition]:
        enabled: list[_Transition] = []
        atomic = sorted((s for s in self.config if s.atomic), key=lambda s: s.order)
        for state in atomic:
            found = False
            for owner in (state, *state.ancestors):
                for t in owner.transitions:
                    if self.matches(t, event) and self.holds(t.cond):
                        if t not in enabled:
                            enabled.append(t)
                        found = True
                        break
                if found:
                    break
        return self.remove_conflicts(enabled)

    def remove_conflicts(self, enabled: list[_Transition]) -> list[_Transition]:
        filtered: list[_Transition] = []
        for t1 in enabled:
            preempted = False
            remove: list[_Transition] = []
            for t2 in filtered:
                if self.exit_set([t1]) & self.exit_set([t2]):
                    if self.descendant(t1.source, t2.source):
                        remove.append(t2)
                    else:
                        preempted = True
                        break
            if not preempted:
                filtered = [t for t in filtered if t not in remove]
                filtered.append(t1)
        return filtered

    def effective_targets(self, t: _Transition) -> list[_State]:
        result: list[_State] = []
        for target_id in t.targets:
            s = self.m.by_id[target_id]
            if s.kind == "history":
                if s.id in self.history:
                    result.extend(x for x in self.history[s.id] if x not in result)
                else:
                    default = s.transitions[0] if s.transitions else None
                    if default is not None:
                        result.extend(x for x in self.effective_targets(default) if x not in result)
            elif s not in result:
                result.append(s)
        return result

    def domain(self, t: _Transition) -> _State | None:
        targets = self.effective_targets(t)
        if not targets:
            return None
        if t.internal and t.source.compound and all(self.descendant(s, t.source) for s in targets):
            return t.source
        return self.lcca([t.source, *targets])

    def lcca(self, states: list[_State]) -> _State:
        for anc in states[0].ancestors:
            if (anc.kind == "scxml" or anc.compound) and all(self.descendant(s, anc) for s in states[1:]):
                return anc
        return self.m.root

    def exit_set(self, transitions: list[_Transition]) -> set[_State]:
        result: set[_State] = set()
        for t in transitions:
            if t.targets:
                domain = self.domain(t)
                if domain is None:
                    continue
                result.update(s for s in self.config if self.descendant(s, domain))
        return result

    def microstep(self, enabled: list[_Transition]) -> None:
        self.microsteps += 1
        if self.microsteps > MAX_MICROSTEPS:
            raise _Refused(f"a macrostep takes more than {MAX_MICROSTEPS} microsteps (an eventless loop?)")
        self.fired = True
        exiting = sorted(self.exit_set(enabled), key=lambda s: -s.order)
        for s in exiting:
            for h in s.children:
                if h.kind == "history":
                    if h.deep:
                        self.history[h.id] = {x for x in self.config if x.atomic and self.descendant(x, s)}
                    else:
                        self.history[h.id] = {x for x in self.config if x.parent is s}
        for s in exiting:
            self.execute(s.onexit)
            self.config.discard(s)
        for t in enabled:
            self.execute(t.actions)
        self.enter(enabled)

    def enter(self, enabled: list[_Transition]) -> None:
        to_enter: set[_State] = set()
        default_entry: set[_State] = set()
        history_content: dict[str, list[_Action]] = {}
        for t in enabled:
            for target_id in t.targets:
                self.add_descendants(self.m.by_id[target_id], to_enter, default_entry, history_content)
            ancestor = self.domain(t)
            for s in self.effective_targets(t):
                self.add_ancestors(s, ancestor, to_enter, default_entry, history_content)
        for s in sorted(to_enter, key=lambda s: s.order):
            self.config.add(s)
            self.execute(s.onentry)
            if s in default_entry:
                self.execute(s.initial_actions)
            if s.id in history_content:
                self.execute(history_content[s.id])
            if s.kind == "final":
                parent = s.parent
                assert parent is not None
                if parent.kind == "scxml":
                    self.running = False
                else:
                    self.queue.append(f"done.state.{parent.id}")
                    grand = parent.parent
                    if grand is not None and grand.kind == "parallel" and all(self.in_final(c) for c in grand.states):
                        self.queue.append(f"done.state.{grand.id}")

    def initial_of(self, s: _State) -> list[_State]:
        if s.initial:
            return [self.m.by_id[i] for i in s.initial]
        return [s.states[0]]

    def add_descendants(self, s: _State, to_enter: set[_State], default_entry: set[_State], hc: dict[str, list[_Action]]) -> None:
        if s.kind == "history":
            parent = s.parent
            assert parent is not None
            if s.id in self.history:
                for x in self.history[s.id]:
                    self.add_descendants(x, to_enter, default_entry, hc)
                for x in self.history[s.id]:
                    self.add_ancestors(x, parent, to_enter, default_entry, hc)
            else:
                default = s.transitions[0] if s.transitions else None
                targets = [self.m.by_id[i] for i in default.targets] if default else self.initial_of(parent)
                if default is not None:
                    hc[parent.id] = default.actions
                for x in targets:
                    self.add_descendants(x, to_enter, default_entry, hc)
                for x in targets:
                    self.add_ancestors(x, parent, to_enter, default_entry, hc)
            return
        to_enter.add(s)
        if s.compound:
            default_entry.add(s)
            initial = self.initial_of(s)
            for x in initial:
                self.add_descendants(x, to_enter, default_entry, hc)
            for x in initial:
                self.add_ancestors(x, s, to_enter, default_entry, hc)
        elif s.kind == "parallel":
            for child in s.states:
                if not any(self.descendant(x, child) or x is child for x in to_enter):
                    self.add_descendants(child, to_enter, default_entry, hc)

    def add_ancestors(self, s: _State, ancestor: _State | None, to_enter: set[_State], default_entry: set[_State], hc: dict[str, list[_Action]]) -> None:
        for anc in s.ancestors:
            if anc is ancestor or anc.kind == "scxml":
                break
            to_enter.add(anc)
            if anc.kind == "parallel":
                for child in anc.states:
                    if not any(self.descendant(x, child) or x is child for x in to_enter):
                        self.add_descendants(child, to_enter, default_entry, hc)

    def settle(self) -> None:
        seen: dict[tuple[Any, ...], int] = {}
        while self.running:
            # Back where this macrostep already was (same configuration, history, queue and
            # values): the rest of this path repeats a continuation the other choices explore,
            # so it is dropped; this ends loops on undecidable conditions.
            signature = (
                frozenset(s.id for s in self.config),
                frozenset((h, frozenset(x.id for x in v)) for h, v in self.history.items()),
                tuple(self.queue),
                tuple(sorted(self.env.items(), key=lambda item: item[0])),
            )
            if signature in seen:
                if seen[signature] == self.path.position:
                    raise _Refused("an eventless loop never ends (it repeats a configuration without any choice)")
                raise _Repeated()
            seen[signature] = self.path.position
            enabled = self.select(None)
            if not enabled:
                if not self.queue:
                    return
                enabled = self.select(self.queue.pop(0))
            if enabled:
                self.microstep(enabled)

    def initialise(self) -> None:
        root = self.m.root
        first = _Transition(root, (), None, root.initial or (root.states[0].id,), False, [], 0, root.line)
        self.fired = True
        self.enter([first])
        self.settle()

    def external(self, event: str) -> None:
        enabled = self.select(event)
        if enabled:
            self.microstep(enabled)
            self.settle()

    def point(self) -> _Point:
        history = frozenset((h, frozenset(s.id for s in v)) for h, v in self.history.items())
        return _Point(frozenset(s.id for s in self.config), history, not self.running)


class _Interpreter:
    def __init__(self, machine: ScxmlMachine, tracked: Mapping[str, Node]) -> None:
        self.machine = machine
        self.by_id = machine.by_id
        self.root = machine.root
        self.tracked = tracked
        self.exprs = _Exprs(machine.datamodel, tracked)

    def outcomes(self, point: _Point | None, event: str | None) -> Iterator[_Outcome]:
        """Every data path of the macrostep from ``point`` on ``event`` (``None``: initialise)."""
        pending: list[list[bool]] = [[]]
        paths = 0
        completed = 0
        while pending:
            choices = pending.pop()
            paths += 1
            if paths > MAX_PATHS:
                raise _Refused(f"a macrostep has more than {MAX_PATHS} data paths")
            start = len(choices)
            env: dict[str, Node] = dict(self.tracked) if point is None else {name: Var(name) for name in self.tracked}
            run = _Run(self, point, env, _Path(list(choices)))
            repeated = False
            try:
                if point is None:
                    run.initialise()
                else:
                    run.external(event or "")
            except _Repeated:
                repeated = True
            for position in range(len(run.path.choices) - 1, start - 1, -1):
                if run.path.choices[position]:
                    pending.append([*run.path.choices[:position], False])
            if repeated:
                if not pending and not completed:
                    raise _Refused("every path of a macrostep loops forever")
                continue
            completed += 1
            changed = tuple((k, v) for k, v in run.env.items() if not (isinstance(v, Var) and v.name == k))
            guards = tuple(run.path.guards)
            yield _Outcome(guards, changed, run.point(), run.fired)


# --------------------------------------------------------------------------- import


def _literal_type(text: str | None, datamodel: str) -> tuple[str, Any] | None:
    if text is None:
        return None
    raw = text.strip()
    raw = {"true": "True", "false": "False"}.get(raw, raw)
    try:
        tree = parse(raw)
    except ExpressionError:
        return None
    if not isinstance(tree, Literal) or tree.value is None:
        return None
    value = tree.value
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        return "int", value
    if isinstance(value, Decimal):
        return "decimal", value
    return "str", value


def _tracked(machine: ScxmlMachine, *, typed: bool = True) -> tuple[dict[str, Node], dict[str, tuple[str, Any]], list[Finding]]:
    """The variables the import tracks exactly, with their initial trees and types (none
    unless ``typed``)."""
    from railguard.spec.expr import RESERVED_NAMES

    findings: list[Finding] = []
    candidates: dict[str, tuple[str, Any]] = {}
    everything_untracked = not typed or any(name == "*" for name, _, _ in machine.data)
    for name, expr, line in machine.data:
        if name == "*":
            continue
        literal = _literal_type(expr, machine.datamodel)
        where = Location(machine.source, line, 1)
        if everything_untracked or literal is None or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or name in RESERVED_NAMES:
            findings.append(Finding(FindingKind.OVER_APPROXIMATED, "data", f"variable `{name}` is untracked (its value is not a number, boolean or string literal, or a script may change it): conditions over it may go either way", where))
            continue
        candidates[name] = literal
    assigns: list[_Action] = []

    def collect(actions: Sequence[_Action]) -> None:
        for action in actions:
            if action.kind in ("assign", "havoc"):
                assigns.append(action)
            for _, body in action.branches:
                collect(body)

    for state in [machine.root, *machine.order]:
        collect(state.onentry)
        collect(state.onexit)
        collect(state.initial_actions)
        for t in state.transitions:
            collect(t.actions)
    changed = True
    while changed:
        changed = False
        exprs = _Exprs(machine.datamodel, candidates)
        for action in assigns:
            if action.location == "*":
                dropped = list(candidates)
            elif action.location in candidates and (action.kind == "havoc" or exprs.tree(action.expr) is UNKNOWN):
                dropped = [action.location]
            else:
                continue
            for name in dropped:
                candidates.pop(name, None)
                findings.append(Finding(FindingKind.OVER_APPROXIMATED, "assign", f"variable `{name}` is untracked: an assignment to it is not a simple expression over tracked variables", Location(machine.source, action.line, 1)))
                changed = True
            if changed:
                break
    for name, _, line in machine.data:
        if name not in candidates:
            continue
        findings.append(Finding(FindingKind.MAPPED, "data", f"variable `{name}` is mapped to a typed `{candidates[name][0]}` variable", Location(machine.source, line, 1)))
    return {name: Literal(value) for name, (_, value) in candidates.items()}, candidates, findings


def _note_states(machine: ScxmlMachine) -> None:
    """One `mapped` finding per state and per transition of the source, with its line."""
    for state in machine.order:
        if state.kind == "history":
            continue
        what = "parallel" if state.kind == "parallel" else "final" if state.kind == "final" else "compound" if state.compound else "atomic"
        machine.find(Finding(FindingKind.MAPPED, state.kind, f"{what} state `{state.id}` is flattened: it is active in the configurations whose description lists it", Location(machine.source, state.line, 1)))
        for t in state.transitions:
            on = f"on `{' '.join(t.events)}`" if t.events else "eventless"
            to = f"to `{' '.join(t.targets)}`" if t.targets else "targetless"
            machine.find(Finding(FindingKind.MAPPED, "transition", f"transition {on} {to} from `{state.id}` is part of the macrosteps it can take", Location(machine.source, t.line, 1)))


def _note_conditions(machine: ScxmlMachine, exprs: _Exprs) -> None:
    """Report every condition the import cannot decide and every assignment SCXML would
    answer with `error.execution` (undeclared location), which the import does not model."""
    declared = {name for name, _, _ in machine.data}

    def actions(items: Sequence[_Action]) -> None:
        for action in items:
            if action.kind == "assign" and action.location not in declared:
                machine.find(Finding(FindingKind.REFUSED, "assign", f"assignment to undeclared `{action.location}`: SCXML raises `error.execution`, which the import does not model", Location(machine.source, action.line, 1)))
            for cond, body in action.branches:
                if cond is not None and exprs.tree(cond) is UNKNOWN:
                    machine.find(Finding(FindingKind.OVER_APPROXIMATED, "cond", f"condition `{cond}` is not understood: a `bool` param decides it", Location(machine.source, action.line, 1)))
                actions(body)

    for state in [machine.root, *machine.order]:
        for items in (state.onentry, state.onexit, state.initial_actions):
            actions(items)
        for t in state.transitions:
            if t.cond is not None and exprs.tree(t.cond) is UNKNOWN:
                machine.find(Finding(FindingKind.OVER_APPROXIMATED, "cond", f"condition `{t.cond}` is not understood: a `bool` param decides it", Location(machine.source, t.line, 1)))
            actions(t.actions)


def _events(machine: ScxmlMachine) -> list[str]:
    events: list[str] = []
    for state in machine.order:
        for t in state.transitions:
            for descriptor in t.events:
                d = descriptor.removesuffix(".*").removesuffix(".")
                if d and d != "*" and d not in events:
                    events.append(d)
    return events


def import_scxml_text(
    text: str,
    source: str = "<scxml>",
    *,
    roles: Mapping[str, Sequence[str]] | None = None,
    max_states: int = MAX_STATES,
    name: str | None = None,
) -> ImportResult:
    """Import SCXML text; see the module docstring for the flattening rule and its bounds."""
    restored = _restore(text, source)
    if restored is not None:
        return restored
    machine = parse_scxml(text, source)
    if machine.metadata:
        machine.find(Finding(FindingKind.OVER_APPROXIMATED, "rg:spec", "the document carries railguard metadata but was changed since it was exported: it is imported from its structure", Location(source, 1, 1)))
    base = list(machine.findings)
    try:
        return _flatten(machine, source, roles, max_states, name, typed=True)
    except InteropError as exc:
        if "does not load" not in str(exc) or not machine.data:
            raise
        machine.findings[:] = base
        machine.find(Finding(FindingKind.OVER_APPROXIMATED, "data", f"typed variables do not load ({exc}); every variable is untracked", Location(source, 1, 1)))
        return _flatten(machine, source, roles, max_states, name, typed=False)


def _flatten(
    machine: ScxmlMachine,
    source: str,
    roles: Mapping[str, Sequence[str]] | None,
    max_states: int,
    name: str | None,
    *,
    typed: bool,
) -> ImportResult:
    """Flatten a parsed statechart into a spec (``typed``: track the typed data)."""
    initial_env, types, data_findings = _tracked(machine, typed=typed)
    machine.findings.extend(data_findings)
    interp = _Interpreter(machine, initial_env)
    _note_conditions(machine, interp.exprs)
    _note_states(machine)
    events = _events(machine)
    if any("*" in t.events for s in machine.order for t in s.transitions):
        machine.find(Finding(FindingKind.MAPPED, "transition", "`event=\"*\"` transitions are mapped: every named event also matches them (an event the machine never names is not part of the spec)"))

    names = Names([START, ABORTED])
    event_names = Names([START])
    point_names: dict[_Point, str] = {}
    descriptions: dict[str, tuple[str, ...]] = {}

    def state_name(point: _Point) -> str:
        found = point_names.get(point)
        if found is not None:
            return found
        if len(point_names) >= max_states:
            raise InteropError(f"flattening `{source}` gives more than {max_states} configurations, the import's size bound; split the statechart or raise the bound")
        leaves = sorted((machine.by_id[s] for s in point.configuration if machine.by_id[s].atomic), key=lambda s: s.order)
        made = names.fresh("__".join(s.id for s in leaves) or "empty")
        point_names[point] = made
        descriptions[made] = tuple(s.id for s in leaves)
        return made

    transitions: list[dict[str, Any]] = []
    states: dict[str, dict[str, Any]] = {START: {"initial": True, "description": "before the statechart is initialised; `start` runs the initial macrostep"}}
    pending: list[_Point] = []
    seen: set[_Point] = set()

    def add(event: str, source_name: str, outcome: _Outcome) -> None:
        target = state_name(outcome.point)
        if outcome.point not in seen:
            seen.add(outcome.point)
            pending.append(outcome.point)
        body: dict[str, Any] = {"event": event, "from": source_name, "to": target, "permission": event}
        if outcome.guards:
            guard = outcome.guards[0] if len(outcome.guards) == 1 else BoolOp("and", outcome.guards)
            body["guard"] = unparse(guard)
        if outcome.env:
            body["assign"] = {k: unparse(v) for k, v in outcome.env}
        transitions.append(body)

    try:
        for outcome in interp.outcomes(None, None):
            add(START, START, outcome)
        while pending:
            point = pending.pop(0)
            here = point_names[point]
            if point.done:
                continue
            for event in events:
                for outcome in interp.outcomes(point, event):
                    if outcome.fired:
                        add(event_names(event), here, outcome)
    except _Refused as exc:
        raise InteropError(f"`{source}` cannot be flattened: {exc}") from None

    for point, sname in point_names.items():
        text = "configuration: " + ", ".join(sorted(point.configuration, key=lambda s: machine.by_id[s].order))
        if point.history:
            text += "; history: " + "; ".join(f"{h} = {', '.join(sorted(v))}" for h, v in sorted(point.history))
        body: dict[str, Any] = {"description": text}
        if point.done:
            body["terminal"] = "success"
        states[sname] = body
    states[ABORTED] = {"terminal": "failure", "description": "railguard's error exit (operator abort)"}
    _share_params(transitions)
    merged = _merge(transitions)
    permissions = [t["permission"] for t in merged]
    variables = {
        n: {"type": kind, "initial": _plain(value)}
        for n, (kind, value) in types.items()
    }
    spec_name = name or _spec_name(machine, source)
    data: dict[str, Any] = {
        "railguard": 1,
        "name": spec_name,
        "description": f"imported from SCXML `{os.path.basename(source)}` by flattening its configurations",
        "roles": roles_for(permissions, roles),
        "variables": variables,
        "states": states,
        "on_error": ABORTED,
        "transitions": merged,
    }
    spec = load_spec(data, source)
    machine.find(Finding(FindingKind.MAPPED, "scxml", f"{len(machine.order)} SCXML states flattened into {len(point_names)} configurations and {len(merged)} transitions", Location(source, machine.root.line, 1)))
    event_map = {e: event_names.given[e] for e in events if e in event_names.given}
    return ImportResult(spec, tuple(machine.findings), states=descriptions, events=event_map)


def _share_params(transitions: list[dict[str, Any]]) -> None:
    """Give every transition of an event the `unknown_<n>` params any of them uses (each
    optional, default false): railguard requires one signature per event."""
    used: dict[str, set[str]] = {}
    pattern = re.compile(rf"params\.({UNKNOWN_PARAM}\d+)")
    for body in transitions:
        used.setdefault(body["event"], set()).update(pattern.findall(body.get("guard", "")))
    for body in transitions:
        names = sorted(used[body["event"]], key=lambda n: int(n[len(UNKNOWN_PARAM):]))
        if names:
            body["params"] = {n: {"type": "bool", "default": False} for n in names}


def _canonical(element: Element) -> tuple[Any, ...]:
    return (
        element.tag,
        tuple(sorted(element.attrib.items())),
        (element.text or "").strip(),
        tuple(_canonical(child) for child in element),
    )


def _restore(text: str, source: str) -> ImportResult | None:
    """The spec a railguard export carries, when the document is still that export."""
    from .common import safe_json
    from .export_scxml import RG_NS, export_scxml

    if RG_NS not in text:
        return None
    root, _ = _read_xml(text, source)
    meta = root.find(f"{{{RG_NS}}}spec")
    if meta is None or not (meta.text or "").strip():
        return None
    where = Location(source, 1, 1)
    try:
        spec = load_spec(safe_json(meta.text or "", source), source)
    except InteropError as exc:
        raise InteropError(f"`{source}`: its railguard metadata (`rg:spec`) is broken: {exc}") from None
    again, _ = _read_xml(export_scxml(spec), source)
    if _canonical(again) != _canonical(root):
        return None
    finding = Finding(FindingKind.MAPPED, "rg:spec", f"a railguard export of `{spec.name}`, unchanged: the spec is restored exactly", where)
    return ImportResult(spec, (finding,))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value


def _merge(transitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join transitions that differ only in their source state into one ``from`` list."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for body in transitions:
        key = (body["event"], body["to"], body.get("guard"), tuple(sorted(body.get("assign", {}).items())))
        found = merged.get(key)
        if found is None:
            merged[key] = {**body, "from": [body["from"]]}
        elif body["from"] not in found["from"]:
            found["from"].append(body["from"])
    result = []
    for body in merged.values():
        if len(body["from"]) == 1:
            body["from"] = body["from"][0]
        result.append(body)
    return result


def _spec_name(machine: ScxmlMachine, source: str) -> str:
    base = machine.name or os.path.splitext(os.path.basename(source))[0] or "statechart"
    return Names()(base)


def import_scxml(path: str, *, roles: Mapping[str, Sequence[str]] | None = None) -> ImportResult:
    """Import the SCXML document at ``path`` (the ``railguard import --from scxml`` entry)."""
    return import_scxml_text(read_bounded(path), path, roles=roles)

