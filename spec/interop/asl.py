"""Import Amazon States Language (AWS Step Functions) state machines as railguard specs.

The document is validated first (:mod:`.asl_check`): an invalid definition is refused with
its first defect named. Then each ASL state maps as follows (railguard names are the ASL
names with other characters replaced by ``_``):

- **Task** ``T`` — a state ``T`` and an event ``T`` to its ``Next`` whose effect is ``T``
  (the handler bound at run time; the ``Resource`` is kept in the description). A
  ``TimeoutSeconds`` becomes the state's timeout: it fires the catch event of the catcher
  covering ``States.Timeout`` (or ``States.ALL``), else takes the error exit.
- **Retry** — per retrier, a counter ``T_retry_<n>`` (``0..MaxAttempts``) and an event
  ``T_retry_<n>`` that loops on ``T`` while attempts remain: a bounded retry loop. Leaving
  ``T`` resets the counters.
- **Catch** — per catcher, an event ``T_catch_<n>`` from ``T`` to the catcher's ``Next``
  (the worker reports the caught error). An uncaught error is railguard's error exit to the
  failure terminal ``failed``.
- **Pass** — an event ``P`` to ``Next``. **Wait** — a state whose timeout fires the event
  ``W`` after ``Seconds`` (a path or timestamp is over-approximated: ``W`` may fire at any
  time). **Succeed** / **Fail** — success / failure terminals; ``End: true`` goes to the
  success terminal ``succeeded``.
- **Choice** — an event ``C`` with one transition per rule, guarded by the rule over event
  params named after the paths (``$.order.total`` -> ``params.order_total``; numbers are
  ``decimal``, strings ``str``, booleans ``bool``): all comparison operators, ``And``,
  ``Or``, ``Not``; ``Default`` is guarded by the negation of every rule. String and timestamp
  ordering, ``StringMatches`` and the ``Is*`` type tests become a ``bool`` param stating the
  test's outcome (over-approximated, reported). A JSONata ``Condition`` that is a comparison
  of ``$states.input...`` paths or variables with literals, joined by ``and``/``or``/``$not``,
  is mapped the same way; any other becomes a ``bool`` param.
- **Parallel** — the interleaving product of its branches (each branch flattened the same
  way): a railguard state per combination of branch positions, an event moves one branch;
  when the last branch ends the product goes to ``Next``; a ``Fail`` in a branch goes to the
  Parallel's matching catcher or to ``failed``. Timeouts inside branches are dropped (their
  events may fire at any time: over-approximated). Bounded by ``max_states``.
- **Map** — its item processor once per item, for any number of items one after another:
  the event ``M_item`` starts an item, the processor's end returns to ``M``, the event ``M``
  leaves to ``Next``. Items run concurrently in Step Functions; their interleavings are not
  represented (over-approximated for the item count, reported).
- **Saga** — when tasks on the main path catch into chains of compensating tasks that end in
  a ``Fail`` (``T_k`` catches into ``C_k``, then ``C_{k-1}``, ..., ``C_1``, ``Fail``), each
  ``T_k`` gets ``compensate: C_k`` and its error exit goes to that ``Fail`` state: railguard's
  runtime then runs the owed compensations in reverse order, as the chain does. Each chain is
  checked: a chain that skips or reorders an earlier step's compensation is reported, and the
  verifier's fail-closed checks see every effect left without compensation.

Every transition's permission is its event; without a roles file the role ``caller`` grants
all of them. Template placeholders such as ``${LambdaArn}`` are accepted wherever a string is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from railguard.spec.errors import Location
from railguard.spec.expr import Literal, unparse

from . import Finding, FindingKind, ImportResult, InteropError
from .asl_check import validate_asl
from .common import Names, load_spec, read_bounded, roles_for, safe_json

__all__ = ["MAX_STATES", "import_asl", "import_asl_data"]

MAX_STATES = 2000
DONE = "@done"
FAIL = "@fail:"
SUCCEEDED = "succeeded"
FAILED = "failed"


@dataclass
class _Piece:
    """A flattened scope: railguard states and transitions; targets may be DONE or FAIL:<error>."""

    start: str
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    transitions: list[dict[str, Any]] = field(default_factory=list)


class _Importer:
    def __init__(self, data: Mapping[str, Any], source: str, text: str, max_states: int) -> None:
        self.data = data
        self.source = source
        self.text = text
        self.max_states = max_states
        self.findings: list[Finding] = []
        self.state_names = Names([SUCCEEDED, FAILED])
        self.event_names = Names()
        self.params_names = Names()
        self.variables: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, tuple[str, ...]] = {}
        self.compensation: dict[str, str] = {}
        self.saga_fail: dict[str, str] = {}
        self.skipped: set[str] = set()
        self.used_succeeded = False

    # ---- reporting

    def where(self, name: str) -> Location:
        key = f'"{name}"'
        index = self.text.find(key + ":")
        if index < 0:
            index = self.text.find(key)
        line = self.text.count("\n", 0, index) + 1 if index >= 0 else 0
        return Location(self.source, line, 1, ("States", name))

    def note(self, kind: FindingKind, construct: str, message: str, name: str) -> None:
        self.findings.append(Finding(kind, construct, message, self.where(name)))

    # ---- naming

    def sname(self, asl: str) -> str:
        made = self.state_names(asl)
        self.sources.setdefault(made, (asl,))
        return made

    def ename(self, asl: str) -> str:
        return self.event_names(asl)

    # ---- scopes

    def scope(self, scope: Mapping[str, Any], top: bool) -> _Piece:
        states: Mapping[str, Any] = scope["States"]
        piece = _Piece(self.target(scope["StartAt"], states, top))
        for name, body in states.items():
            if name in self.skipped:
                continue
            self.state(name, body, states, top, piece)
        return piece

    def target(self, name: str, states: Mapping[str, Any], top: bool) -> str:
        body = states[name]
        kind = body.get("Type")
        if not top and kind == "Succeed":
            return DONE
        if not top and kind == "Fail":
            return FAIL + str(body.get("Error", "States.ALL"))
        return self.sname(name)

    def next_of(self, body: Mapping[str, Any], states: Mapping[str, Any], top: bool) -> str:
        if body.get("End") is True:
            if top:
                self.used_succeeded = True
                return SUCCEEDED
            return DONE
        return self.target(body["Next"], states, top)

    def transition(self, piece: _Piece, event: str, source: str | list[str], target: str, **extra: Any) -> None:
        body = {"event": event, "from": source, "to": target, "permission": event}
        body.update({k: v for k, v in extra.items() if v not in (None, {}, "")})
        piece.transitions.append(body)

    def state(self, name: str, body: Mapping[str, Any], states: Mapping[str, Any], top: bool, piece: _Piece) -> None:
        kind = body["Type"]
        here = self.sname(name)
        if kind == "Succeed":
            if top:
                piece.states[here] = {"terminal": "success", "description": f"ASL Succeed `{name}`"}
            self.note(FindingKind.MAPPED, kind, f"Succeed `{name}` is mapped to a success terminal", name)
            return
        if kind == "Fail":
            if top:
                piece.states[here] = {"terminal": "failure", "description": f"ASL Fail `{name}` ({body.get('Error', 'no error name')})"}
            self.note(FindingKind.MAPPED, kind, f"Fail `{name}` is mapped to a failure terminal", name)
            return
        state: dict[str, Any] = {"description": f"ASL {kind} `{name}`"}
        if here in self.saga_fail:
            state["on_error"] = self.saga_fail[here]
        piece.states[here] = state
        event = self.ename(name)
        resets = self.retries(name, body, here, piece)
        if kind == "Task":
            resource = body.get("Resource")
            shown = resource if isinstance(resource, str) else "a CloudFormation reference"
            state["description"] += f"; Resource: {shown}"
            compensate = self.compensation.get(here)
            self.transition(piece, event, here, self.next_of(body, states, top), effect=event, compensate=compensate, assign=resets)
            timeout = body.get("TimeoutSeconds")
            if isinstance(timeout, int) and not isinstance(timeout, bool):
                state["timeout"] = {"after": f"{timeout}s"}
                # States.Timeout goes to a catcher that covers it (outside a saga), else the error exit.
                catcher = next((i for i, c in enumerate(body.get("Catch", []), start=1)
                                if {"States.Timeout", "States.ALL"} & set(c["ErrorEquals"])), None)
                if catcher is not None and here not in self.saga_fail:
                    state["timeout"]["event"] = self.ename(f"{name}_catch_{catcher}")
            elif timeout is not None or "TimeoutSecondsPath" in body:
                self.note(FindingKind.OVER_APPROXIMATED, "TimeoutSeconds", f"Task `{name}`: a timeout from a path or JSONata is not modelled", name)
            self.note(FindingKind.MAPPED, kind, f"Task `{name}` is mapped to event `{event}` with effect `{event}`" + (f" and compensation `{compensate}`" if compensate else ""), name)
        elif kind == "Pass":
            self.transition(piece, event, here, self.next_of(body, states, top))
            self.note(FindingKind.MAPPED, kind, f"Pass `{name}` is mapped to event `{event}` (its data is not modelled)", name)
        elif kind == "Wait":
            seconds = body.get("Seconds")
            self.transition(piece, event, here, self.next_of(body, states, top))
            if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0:
                state["timeout"] = {"after": f"{seconds}s", "event": event}
                self.note(FindingKind.OVER_APPROXIMATED, kind, f"Wait `{name}` is mapped to a {seconds}s timeout firing `{event}` (a caller holding permission `{event}` may also fire it early)", name)
            else:
                self.note(FindingKind.OVER_APPROXIMATED, kind, f"Wait `{name}` waits for a path, timestamp or zero seconds: `{event}` may fire at any time", name)
        elif kind == "Choice":
            self.choice(name, body, states, top, piece, here, event)
        inside: list[str] = []
        if kind == "Parallel":
            inside = self.parallel(name, body, states, top, piece, here, event, resets)
        elif kind == "Map":
            inside = self.map(name, body, states, top, piece, here, event, resets)
        if inside:
            # An error anywhere inside a Parallel or Map is the state's error: its retriers
            # restart it and its catchers take over from every inner state.
            retry = {self.event_names.given.get(f"{name}_retry_{i}") for i in range(1, len(body.get("Retry", [])) + 1)}
            for transition in piece.transitions:
                if transition["event"] in retry and transition["from"] == here:
                    transition["from"] = [here, *inside]
        self.catches(name, body, states, top, piece, [here, *inside], resets)

    def retries(self, name: str, body: Mapping[str, Any], here: str, piece: _Piece) -> dict[str, str]:
        resets: dict[str, str] = {}
        for index, retrier in enumerate(body.get("Retry", []), start=1):
            attempts = int(retrier.get("MaxAttempts", 3))
            if attempts <= 0:
                continue
            counter = self.params_names(f"{here}_retry_{index}")
            self.variables[counter] = {"type": "int", "min": 0, "max": attempts, "initial": 0}
            event = self.ename(f"{name}_retry_{index}")
            self.transition(piece, event, here, here, guard=f"{counter} < {attempts}", assign={counter: f"{counter} + 1"})
            resets[counter] = "0"
            errors = ", ".join(retrier.get("ErrorEquals", []))
            self.note(FindingKind.MAPPED, "Retry", f"`{name}` retries on {errors} at most {attempts} times: event `{event}` bounded by `{counter}`", name)
        return resets

    def catches(self, name: str, body: Mapping[str, Any], states: Mapping[str, Any], top: bool, piece: _Piece, sources: list[str], resets: dict[str, str]) -> None:
        here = sources[0]
        if here in self.saga_fail:
            self.note(FindingKind.MAPPED, "Catch", f"`{name}`'s Catch chain is a saga: its error exit runs the owed compensations and ends in `{self.saga_fail[here]}`", name)
            return
        for index, catcher in enumerate(body.get("Catch", []), start=1):
            event = self.ename(f"{name}_catch_{index}")
            target = self.target(catcher["Next"], states, top)
            self.transition(piece, event, here if len(sources) == 1 else sources, target, assign=resets, description="caught: " + ", ".join(catcher["ErrorEquals"]))
            self.note(FindingKind.MAPPED, "Catch", f"`{name}` catches {', '.join(catcher['ErrorEquals'])}: event `{event}` goes to `{catcher['Next']}`", name)

    def fail_target(self, body: Mapping[str, Any], error: str, states: Mapping[str, Any], top: bool) -> str:
        for catcher in body.get("Catch", []):
            if error in catcher["ErrorEquals"] or "States.ALL" in catcher["ErrorEquals"]:
                return self.target(catcher["Next"], states, top)
        return FAILED if top else FAIL + error

    # ---- Choice

    def choice(self, name: str, body: Mapping[str, Any], states: Mapping[str, Any], top: bool, piece: _Piece, here: str, event: str) -> None:
        rules = _Rules(self, name)
        guards: list[str] = []
        for index, rule in enumerate(body["Choices"], start=1):
            guard = rules.rule(rule, index)
            guards.append(guard)
            self.transition(piece, event, here, self.target(rule["Next"], states, top), guard=guard, params=rules.params)
        if "Default" in body:
            default = " and ".join(f"not ({g})" for g in guards)
            self.transition(piece, event, here, self.target(body["Default"], states, top), guard=default, params=rules.params)
        for transition in piece.transitions:
            if transition["event"] == event:
                transition["params"] = dict(rules.params)
        self.note(FindingKind.MAPPED, "Choice", f"Choice `{name}` is mapped to event `{event}` with {len(guards)} guarded rules over params {', '.join(sorted(rules.params)) or '(none)'}", name)

    # ---- Parallel and Map

    def parallel(self, name: str, body: Mapping[str, Any], states: Mapping[str, Any], top: bool, piece: _Piece, here: str, event: str, resets: dict[str, str]) -> list[str]:
        """Flatten the branches into their product; returns the product's states."""
        branches = [self.scope(branch, top=False) for branch in body["Branches"]]
        after = self.next_of(body, states, top)
        # `here` is entered first; the event `P` starts the branches.
        start = tuple(b.start for b in branches)
        names: dict[tuple[str, ...], str] = {}
        dropped = False

        def resolve(position: tuple[str, ...]) -> str:
            if all(p == DONE for p in position):
                return after
            for p in position:
                if p.startswith(FAIL):
                    return self.fail_target(body, p[len(FAIL):], states, top)
            found = names.get(position)
            if found is None:
                if len(names) >= self.max_states:
                    raise InteropError(f"`{self.source}`: Parallel `{name}` has more than {self.max_states} combinations of branch states, the import's size bound")
                found = names[position] = self.state_names.fresh(f"{here}__" + "__".join("end" if p == DONE else p for p in position))
                self.sources[found] = tuple(p for p in position if p != DONE)
                todo.append(position)
            return found

        todo: list[tuple[str, ...]] = []
        first = resolve(start)
        self.transition(piece, event, here, first, assign=resets)
        while todo:
            position = todo.pop(0)
            current = names[position]
            described = [p for p in position if p != DONE]
            piece.states[current] = {"description": f"Parallel `{name}`: branches at {', '.join(described)}"}
            for i, branch in enumerate(branches):
                local = position[i]
                if local == DONE:
                    continue
                if branch.states.get(local, {}).get("timeout"):
                    dropped = True
                for t in branch.transitions:
                    if t["from"] != local:
                        continue
                    moved = (*position[:i], t["to"], *position[i + 1:])
                    self.transition(piece, t["event"], current, resolve(moved), **{k: v for k, v in t.items() if k not in ("event", "from", "to", "permission")})
        self.note(FindingKind.MAPPED, "Parallel", f"Parallel `{name}`: {len(branches)} branches flattened into {len(names)} interleaved states", name)
        if dropped:
            self.note(FindingKind.OVER_APPROXIMATED, "Parallel", f"Parallel `{name}`: timeouts inside its branches are not modelled; their events may fire at any time", name)
        return list(names.values())

    def map(self, name: str, body: Mapping[str, Any], states: Mapping[str, Any], top: bool, piece: _Piece, here: str, event: str, resets: dict[str, str]) -> list[str]:
        """Embed the item processor as a loop on the Map state; returns the processor's states."""
        processor = body.get("ItemProcessor") or body["Iterator"]
        inner = self.scope(processor, top=False)
        item = self.ename(f"{name}_item")
        for local, state in inner.states.items():
            piece.states[local] = {**state, "description": f"Map `{name}` item: " + state.get("description", "")}

        def resolve(target: str) -> str:
            if target == DONE:
                return here
            if target.startswith(FAIL):
                return self.fail_target(body, target[len(FAIL):], states, top)
            return target

        self.transition(piece, item, here, resolve(inner.start))
        for t in inner.transitions:
            piece.transitions.append({**t, "to": resolve(t["to"])})
        self.transition(piece, event, here, self.next_of(body, states, top), assign=resets)
        self.note(FindingKind.OVER_APPROXIMATED, "Map", f"Map `{name}`: its item processor runs for any number of items, one after another (`{item}` starts one, `{event}` ends the Map); concurrent items are not interleaved", name)
        return list(inner.states)


class _Rules:
    """Choice rules as railguard guard text over typed params."""

    NUMERIC_OPS: ClassVar[dict[str, str]] = {"Equals": "==", "LessThan": "<", "GreaterThan": ">", "LessThanEquals": "<=", "GreaterThanEquals": ">="}

    def __init__(self, importer: _Importer, state: str) -> None:
        self.importer = importer
        self.state = state
        self.params: dict[str, dict[str, str]] = {}
        self.by_path: dict[tuple[str, str], str] = {}
        from railguard.spec.expr import RESERVED_NAMES

        self.names = Names(RESERVED_NAMES)

    def param(self, path: str, kind: str, suffix: str = "") -> str:
        key = (path + suffix, kind)
        found = self.by_path.get(key)
        if found is None:
            base = re.sub(r"^\$\$", "context", path)
            base = re.sub(r"^\$\.?", "", base) or "input"
            found = self.by_path[key] = self.names(base + suffix + ("" if not any(k[0] == path + suffix and k[1] != kind for k in self.by_path) else f"_{kind}"))
            self.params[found] = {"type": kind}
        return f"params.{found}"

    def over(self, what: str, index: int, path: str, suffix: str) -> str:
        self.importer.note(FindingKind.OVER_APPROXIMATED, "Choice", f"Choice `{self.state}` rule {index}: {what} is not expressible in railguard; a `bool` param states its outcome", self.state)
        return self.param(path, "bool", suffix)

    def rule(self, rule: Mapping[str, Any], index: int) -> str:
        if "And" in rule:
            return " and ".join(f"({self.rule(r, index)})" for r in rule["And"])
        if "Or" in rule:
            return " or ".join(f"({self.rule(r, index)})" for r in rule["Or"])
        if "Not" in rule:
            return f"not ({self.rule(rule['Not'], index)})"
        if "Condition" in rule:
            return self.condition(rule["Condition"], index)
        variable = rule["Variable"]
        op = next(k for k in rule if k not in ("Variable", "Next", "Comment", "Assign", "Output"))
        value = rule[op]
        by_path = op.endswith("Path") and op != "IsPresent"
        base = op.removesuffix("Path") if by_path else op
        if base.startswith("Is"):
            test = self.param(variable, "bool", "_" + re.sub(r"(?<!^)([A-Z])", r"_\1", base).lower())
            return test if value else f"not {test}"
        if base == "StringMatches":
            return self.over(f"`StringMatches` {value!r}", index, variable, "_matches")
        for prefix, kind in (("Numeric", "decimal"), ("String", "str"), ("Timestamp", "str"), ("Boolean", "bool")):
            if base.startswith(prefix):
                relation = base[len(prefix):]
                symbol = self.NUMERIC_OPS[relation]
                if kind == "str" and symbol != "==":
                    return self.over(f"`{op}` (ordering of text)", index, variable, f"_{relation.lower()}_{len(self.params)}")
                left = self.param(variable, kind)
                right = self.param(value, kind) if by_path else _literal(value)
                return f"{left} {symbol} {right}"
        raise InteropError(f"`{self.importer.source}`: Choice `{self.state}` rule {index} uses `{op}`, which the importer does not know")

    _TOKEN = re.compile(r"\s*(?:(?P<not>\$not\()|(?P<path>\$states\.input(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\$[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)|(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'[^'\\]*'|\"[^\"\\]*\")|(?P<op><=|>=|!=|=|<|>)|(?P<word>and|or|true|false)|(?P<paren>[()]))")

    def condition(self, text: str, index: int) -> str:
        """A JSONata condition of comparisons over paths and literals, or a `bool` param."""
        inner = text.strip()
        if inner.startswith("{%") and inner.endswith("%}"):
            inner = inner[2:-2].strip()
        tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(inner):
            match = self._TOKEN.match(inner, position)
            if match is None or match.end() == position:
                return self.over(f"the JSONata condition {text!r}", index, f"condition_{index}", "")
            position = match.end()
            kind = match.lastgroup or ""
            tokens.append((kind, match.group(kind)))
        if any(k == "path" and i + 1 < len(tokens) and tokens[i + 1][1] == "(" for i, (k, _) in enumerate(tokens)):
            return self.over(f"the JSONata condition {text!r}", index, f"condition_{index}", "")
        saved = dict(self.params), dict(self.by_path)
        out: list[str] = []
        for i, (kind, value) in enumerate(tokens):
            if kind == "path":
                neighbours = [tokens[j] for j in (i - 2, i - 1, i + 1, i + 2) if 0 <= j < len(tokens)]
                near = [v for k, v in neighbours if k in ("num", "str") or (k == "word" and v in ("true", "false"))]
                compared = any(k == "op" for k, _ in neighbours[1:3]) or (i > 0 and tokens[i - 1][0] == "op") or (i + 1 < len(tokens) and tokens[i + 1][0] == "op")
                if not compared or (near and near[0] in ("true", "false")):
                    kind_of = "bool"  # a bare test, or compared with `true`/`false`
                else:
                    kind_of = "str" if near and near[0][0] in "'\"" else "decimal"
                path = "$." + value.removeprefix("$states.input.") if value.startswith("$states.input") else "$" + value.removeprefix("$")
                out.append(self.param(path, kind_of))
            elif kind == "op":
                out.append({"=": "=="}.get(value, value))
            elif kind == "word":
                out.append({"true": "True", "false": "False"}.get(value, value))
            elif kind == "not":
                out.append("not (")
            elif kind == "str":
                out.append(_literal(value[1:-1]))
            else:
                out.append(value)
        guard = " ".join(out)
        from railguard.spec.errors import ExpressionError
        from railguard.spec.expr import parse

        try:
            parse(guard)
        except ExpressionError:
            self.params, self.by_path = saved
            return self.over(f"the JSONata condition {text!r}", index, f"condition_{index}", "")
        self.importer.note(FindingKind.MAPPED, "Condition", f"Choice `{self.state}` rule {index}: JSONata condition mapped to `{guard}`", self.state)
        return guard


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(Decimal(str(value)), "f")
    return unparse(Literal(str(value)))


# --------------------------------------------------------------------------- sagas


def _saga(importer: _Importer, data: Mapping[str, Any]) -> None:
    """Recognise a saga on the main path and record compensations and error exits."""
    states: Mapping[str, Any] = data["States"]
    path: list[str] = []
    name: str | None = data["StartAt"]
    while name is not None and name not in path:
        body = states[name]
        if body["Type"] not in ("Task", "Pass"):
            break
        path.append(name)
        name = body.get("Next")

    visited: set[str] = set()

    def chain(start: str) -> tuple[list[str], str] | None:
        found: list[str] = []
        seen: list[str] = []
        current: str | None = start
        while current is not None and current not in seen:
            body = states[current]
            if body["Type"] == "Fail":
                visited.update(seen)
                return found, current
            if body["Type"] not in ("Task", "Pass") or body.get("Catch") or body.get("End"):
                return None
            seen.append(current)
            if body["Type"] == "Task":
                found.append(current)
            current = body.get("Next")
        return None

    tasks = [n for n in path if states[n]["Type"] == "Task"]
    chains: dict[str, tuple[list[str], str]] = {}
    for task in tasks:
        catchers = states[task].get("Catch", [])
        if len(catchers) == 1:
            made = chain(catchers[0]["Next"])
            if made is not None:
                chains[task] = made
    if len(chains) < 2:
        return
    # A compensating state that something else also goes to is a state of its own: no saga.
    for other, body in states.items():
        if other in visited:
            continue
        targets = [body.get("Next"), body.get("Default")] + [c.get("Next") for c in body.get("Choices", [])]
        targets += [c.get("Next") for c in body.get("Catch", []) if other not in chains]
        if any(t in visited for t in targets if isinstance(t, str)):
            return
    forward = [t for t in tasks if t in chains or states[t].get("Catch")]
    if any(t in chains for t in forward) and not all(t in chains for t in tasks):
        for t in tasks:
            if t not in chains:
                importer.note(FindingKind.REFUSED, "saga", f"saga: task `{t}` has no Catch chain, so if it fails the steps before it are not undone", t)
    compensations: list[str] = []
    previous: list[str] = []
    for task in tasks:
        if task not in chains:
            continue
        run, fail = chains[task]
        new = [c for c in run if c not in previous]
        own = new[0] if new else None
        expected = list(reversed(compensations))
        rest = run[1:] if own is not None and run and run[0] == own else run
        if rest != expected:
            missing = [c for c in expected if c not in rest]
            what = f"does not undo {', '.join(f'`{m}`' for m in missing)}" if missing else f"runs {rest} instead of {expected}"
            importer.note(FindingKind.REFUSED, "saga", f"saga: when `{task}` fails, its Catch chain {what}", task)
        if own is not None:
            importer.compensation[importer.sname(task)] = importer.ename(own)
            compensations.append(own)
        importer.saga_fail[importer.sname(task)] = importer.sname(fail)
        previous = run
    importer.skipped.update(visited)
    importer.note(FindingKind.MAPPED, "saga", f"saga recognised: {len(chains)} steps with compensations {', '.join(f'`{c}`' for c in compensations)}", tasks[0])


# --------------------------------------------------------------------------- entry points


def import_asl_data(
    data: Any,
    source: str = "<asl>",
    *,
    roles: Mapping[str, Sequence[str]] | None = None,
    text: str = "",
    max_states: int = MAX_STATES,
    name: str | None = None,
) -> ImportResult:
    """Import a parsed ASL definition (validated first; see the module docstring)."""
    restored = _restore(data, source)
    if restored is not None:
        return restored
    problems = validate_asl(data)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InteropError(f"`{source}` is not a valid state machine: {first.message} at `{first.pointer}`{more}")
    importer = _Importer(data, source, text, max_states)
    _saga(importer, data)
    piece = importer.scope(data, top=True)
    states: dict[str, dict[str, Any]] = {"start": {"initial": True, "description": "the execution has not started"}}
    if "start" in piece.states or importer.state_names.given.get("start"):
        raise InteropError(f"`{source}`: a state named `start` clashes with the importer's initial state")
    states.update(piece.states)
    if importer.used_succeeded:
        states[SUCCEEDED] = {"terminal": "success", "description": "the execution ended (`End: true`)"}
    states[FAILED] = {"terminal": "failure", "description": "an uncaught error failed the execution"}
    begin = importer.ename("StartExecution")
    transitions = [{"event": begin, "from": "start", "to": piece.start, "permission": begin}, *piece.transitions]
    for skipped in (n for n in data["States"] if n in importer.skipped):
        kind = data["States"][skipped]["Type"]
        what = "a `compensate` handler" if kind == "Task" else "part of the compensation chain"
        importer.note(FindingKind.MAPPED, "saga", f"compensating {kind} `{skipped}` is {what}, not a state", skipped)
    spec_data: dict[str, Any] = {
        "railguard": 1,
        "name": name or "state_machine",
        "description": str(data.get("Comment") or f"imported from Amazon States Language `{os.path.basename(source)}`")[:500],
        "roles": roles_for([t["permission"] for t in transitions], roles),
        "variables": importer.variables,
        "states": states,
        "on_error": FAILED,
        "transitions": transitions,
    }
    if "TimeoutSeconds" in data:
        importer.findings.append(Finding(FindingKind.OVER_APPROXIMATED, "TimeoutSeconds", "the machine-wide `TimeoutSeconds` is not modelled", Location(source)))
    spec = load_spec(spec_data, source)
    return ImportResult(spec, tuple(importer.findings), states=dict(importer.sources), events=dict(importer.event_names.given))


def _restore(data: Any, source: str) -> ImportResult | None:
    """The spec a railguard export carries, when the document is still that export."""
    from .export_asl import MARKER, export_asl

    comment = data.get("Comment") if isinstance(data, dict) else None
    if not isinstance(comment, str) or MARKER not in comment:
        return None
    try:
        spec = load_spec(safe_json(comment.split(MARKER, 1)[1], source), source)
    except InteropError as exc:
        raise InteropError(f"`{source}`: its railguard metadata (`{MARKER}` in `Comment`) is broken: {exc}") from None
    if safe_json(export_asl(spec), source) != data:
        return None
    finding = Finding(FindingKind.MAPPED, "Comment", f"a railguard export of `{spec.name}`, unchanged: the spec is restored exactly", Location(source, 1, 1))
    return ImportResult(spec, (finding,))


def import_asl(path: str, *, roles: Mapping[str, Sequence[str]] | None = None) -> ImportResult:
    """Import the ASL definition (JSON or YAML) at ``path`` (``railguard import --from asl``)."""
    text = read_bounded(path)
    data = safe_json(text, path)
    base = os.path.basename(path).split(".")[0] or "state_machine"
    return import_asl_data(data, path, roles=roles, text=text, name=Names()(base))
