"""Export a railguard spec as an Amazon States Language state machine (JSONata).

The exported machine runs the spec in Step Functions, one event at a time:

- ``Init`` (a Pass) assigns the variables' initial values as state-machine variables.
- Each non-terminal railguard state ``S`` is a Task ``S`` whose resource
  ``${RailguardNextEvent}`` (a callback or activity the deployer binds) returns the next
  step as ``{"event": ..., "params": {...}, "actor": ...}``; a state timeout is its
  ``TimeoutSeconds``, caught (``States.Timeout``) into the timeout event's step or the error exit;
  any other error of the wait (an operator's abort) is caught into the error exit.
- ``S / event`` (a Choice) picks the first transition whose JSONata ``Condition`` holds: the
  event name and the guard (variables are ``$name``, params ``$states.input.params.name``,
  the actor ``$states.input.actor``); no match goes back to ``S`` (a refused step changes nothing).
- Each transition is a state ``S / event #n``: a Task with resource ``${effect}`` when it has
  an effect (errors caught into the error exit), else a Pass; its ``Assign`` performs the
  assignments (evaluated on the values before the step, as in railguard).
- Success terminals are Succeed states; failure terminals are Fail states.

Permissions, roles, param types, compensations and invariants have no ASL form: the whole
spec travels as canonical JSON after the marker ``railguard-spec:`` in the top-level
``Comment``. The importer restores the spec exactly when the rest of the document is still what
this exporter writes for it, and imports it from its structure otherwise.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from railguard.spec.dump import dump_data
from railguard.spec.expr import (
    Actor,
    Binary,
    BoolOp,
    Call,
    Compare,
    Conditional,
    ListExpr,
    Literal,
    Node,
    Param,
    StateRef,
    Unary,
    Var,
)
from railguard.spec.model import Spec, Transition

from . import InteropError

__all__ = ["MARKER", "export_asl", "jsonata"]

MARKER = "railguard-spec:"
NEXT_EVENT = "${RailguardNextEvent}"


def jsonata(node: Node, state: str) -> str:
    """A railguard expression as JSONata (``state`` is the state it is evaluated in)."""
    match node:
        case Literal(value=value):
            if isinstance(value, bool):
                return "true" if value else "false"
            if value is None:
                return "null"
            if isinstance(value, int | Decimal):
                return str(value)
            return json.dumps(value, ensure_ascii=False).replace("'", "\\u0027")
        case Var(name=name):
            return f"${name}"
        case Param(name=name):
            return f"$states.input.params.{name}"
        case Actor():
            return "$states.input.actor"
        case StateRef():
            return json.dumps(state)
        case Unary(op="not", operand=operand):
            return f"$not({jsonata(operand, state)})"
        case Unary(operand=operand):
            return f"(-{jsonata(operand, state)})"
        case Binary(op="//", left=left, right=right):
            return f"$floor({jsonata(left, state)} / {jsonata(right, state)})"
        case Binary(op=op, left=left, right=right):
            return f"({jsonata(left, state)} {op} {jsonata(right, state)})"
        case BoolOp(op=op, operands=operands):
            return "(" + f" {op} ".join(jsonata(o, state) for o in operands) + ")"
        case Compare(op=op, left=left, right=right):
            text = {"==": "=", "not in": "in"}.get(op, op)
            made = f"({jsonata(left, state)} {text} {jsonata(right, state)})"
            return f"$not{made}" if op == "not in" else made
        case ListExpr(items=items):
            return "[" + ", ".join(jsonata(i, state) for i in items) + "]"
        case Conditional(cond=cond, then=then, orelse=orelse):
            return f"({jsonata(cond, state)} ? {jsonata(then, state)} : {jsonata(orelse, state)})"
        case Call(func="implies", args=(a, b)):
            return f"($not({jsonata(a, state)}) or {jsonata(b, state)})"
        case Call(func="len", args=(a,)):
            return f"$count({jsonata(a, state)})"
        case Call(func="abs", args=(a,)):
            return f"$abs({jsonata(a, state)})"
        case Call(func=func, args=args):
            return f"${func}([" + ", ".join(jsonata(a, state) for a in args) + "])"
    raise InteropError(f"cannot write expression node `{type(node).__name__}` as JSONata")


def _value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value == value.to_integral_value() or len(str(value)) < 16 else str(value)
    if isinstance(value, frozenset | set | tuple | list):
        return sorted(_value(v) for v in value)
    return value


def _never(t: Transition) -> bool:
    """A transition whose guard is a constant false has no behaviour and no ASL state."""
    from railguard.spec.errors import EvaluationError
    from railguard.spec.evaluate import evaluate

    if t.guard is None:
        return False
    try:
        return evaluate(t.guard.tree, {}) is False
    except (EvaluationError, KeyError, TypeError, ArithmeticError):
        return False


def _reachable(states: dict[str, Any]) -> dict[str, Any]:
    """Only the states reachable from `Init` (Step Functions refuses unreachable ones; a state
    the spec cannot reach has no behaviour to export)."""
    seen = {"Init"}
    todo = ["Init"]
    while todo:
        body = states[todo.pop()]
        targets = [body.get("Next"), body.get("Default")]
        targets += [c["Next"] for c in body.get("Choices", []) + body.get("Catch", [])]
        for target in targets:
            if target is not None and target not in seen:
                seen.add(target)
                todo.append(target)
    return {name: body for name, body in states.items() if name in seen}


def _step(t: Transition, source: str) -> str:
    return f"{source} / {t.event} #{t.index}"


def export_asl(spec: Spec) -> str:
    """The spec as an ASL definition (JSON text; see the module docstring)."""
    meta = json.dumps(dump_data(spec), ensure_ascii=False, separators=(",", ":"))
    states: dict[str, Any] = {}
    initial = {v.name: _value(v.initial) for v in spec.variables}
    init: dict[str, Any] = {"Type": "Pass", "Next": spec.initial_state.name}
    if initial:
        init["Assign"] = {name: ("{% null %}" if value is None else value) for name, value in initial.items()}
    states["Init"] = init
    for state in spec.states:
        name = state.name
        if state.terminal == "success":
            states[name] = {"Type": "Succeed"}
            continue
        if state.terminal == "failure":
            states[name] = {"Type": "Fail", "Error": name}
            continue
        error = spec.error_target(name)
        outgoing = [t for t in spec.transitions_from(name) if not _never(t)]
        task: dict[str, Any] = {"Type": "Task", "Resource": NEXT_EVENT, "Next": f"{name} / event"}
        catch = []
        if state.timeout is not None:
            task["TimeoutSeconds"] = state.timeout.seconds
            fired = next((t for t in outgoing if t.event == state.timeout.event), None)
            catch.append({"ErrorEquals": ["States.Timeout"], "Next": _step(fired, name) if fired else error})
        if error is not None:
            # railguard's error exit (an operator's abort, a failure while waiting) from any state.
            catch.append({"ErrorEquals": ["States.ALL"], "Next": error})
        if catch:
            task["Catch"] = catch
        states[name] = task
        choices = []
        for t in outgoing:
            condition = f"$states.input.event = {json.dumps(t.event)}"
            if t.guard is not None:
                condition += f" and {jsonata(t.guard.tree, name)}"
            choices.append({"Condition": "{% " + condition + " %}", "Next": _step(t, name)})
        states[f"{name} / event"] = {"Type": "Choice", "Choices": choices, "Default": name} if choices else {"Type": "Pass", "Next": name}
        for t in outgoing:
            body: dict[str, Any] = {"Type": "Task", "Resource": "${" + t.effect + "}"} if t.effect else {"Type": "Pass"}
            if t.assign:
                body["Assign"] = {var: "{% " + jsonata(expr.tree, name) + " %}" for var, expr in t.assign}
            if t.effect and error is not None:
                body["Catch"] = [{"ErrorEquals": ["States.ALL"], "Next": error}]
            body["Next"] = t.target
            states[_step(t, name)] = body
    states = _reachable(states)
    long = next((n for n in states if len(n) > 80), None)
    if long is not None:
        raise InteropError(f"spec `{spec.name}`: the ASL state `{long[:40]}...` would be longer than 80 characters; shorten the state or event names")
    document = {
        "Comment": f"{spec.description or spec.name}\n{MARKER}{meta}",
        "QueryLanguage": "JSONata",
        "StartAt": "Init",
        "States": states,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
