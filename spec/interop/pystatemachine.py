"""python-statemachine 3.x, both ways.

**Export** (:func:`to_python_statemachine` writes the module source, ``railguard export SPEC
--format python-statemachine``; :func:`python_statemachine_class` returns the class). The
generated ``StateMachine`` subclass embeds the spec and decides every step with railguard's own
compiled evaluator through :class:`Binding`: each event's *validator* takes the actor and the
actor's roles and raises :class:`StepRefused` (``permission-denied``, ``bad-params``) when no
transition of the event from the current state is permitted or the params do not match the
signature; each transition's *cond* holds exactly when the reference semantics
(:func:`railguard.spec.semantics.fire`) picks that transition (so guards, declaration order and
domain checks of assignments are railguard's); its *on* action applies the assignments.
Variables live in ``machine.values``. Fire an event with
``machine.send("request", actor="sam", roles={"support"}, params={"amount": 10})``; the error
exit is the event ``rg_error``. A step no transition allows raises python-statemachine's
``TransitionNotAllowed``. Effects are not run by the generated class.

**Import** (:func:`import_python_statemachine`, ``railguard import FILE_OR_MODULE:CLASS --from
python-statemachine``): a ``StateMachine``/``StateChart`` class named as ``module:Class`` or
``path/to/file.py:Class``, or a SCXML/JSON/YAML document read with python-statemachine's own
``statemachine.io.load(..., trusted=False)``. What cannot be analysed is over-approximated and
reported, never dropped:

- a condition (``cond``/``unless``/validators; a method, a property, a callable or an
  expression string) becomes a boolean param of its event, ``params.<name>``: the caller may
  pick either value, so the spec allows at least what the class allows. ``and``/``or``/``not``
  in a condition string are kept.
- actions (``on``/``before``/``after``/``enter``/``exit``), data models, scripts and invokes
  are not analysed: the spec has no variables they could change, which is sound because every
  condition that might read them is unconstrained.
- compound states are **flattened**: a compound state is replaced by its leaf descendants
  (named ``parent__child``); a transition from a compound state leaves from each of its leaves;
  a transition into a compound state enters its initial child, recursively; a history state is
  over-approximated by its parent's initial child. Parallel states are refused.
- final states become success terminals; an added failure terminal ``rg_failed`` is the error
  exit railguard requires.
- every transition needs a permission: ``<event>`` granted by ``roles`` (a mapping of role to
  permissions) or, without it, by one role ``user`` that holds every permission.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import keyword
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from railguard.spec.errors import Location, SpecError
from railguard.spec.model import Spec
from railguard.spec.semantics import Fired, Refusal, check_params, fire, permitted
from railguard.spec.types import Value

from . import Finding, FindingKind, ImportResult, InteropError

__all__ = [
    "Binding",
    "StepRefused",
    "import_python_statemachine",
    "python_statemachine_class",
    "to_python_statemachine",
]

#: Names the generated class must not use for states or events.
_RESERVED = {"values", "send", "model", "rg_error", "current_state", "configuration", "states", "events", "name", "id"}


class StepRefused(SpecError):
    """The generated class refused a step before any transition was considered; ``code`` is
    the refusal code of the reference semantics."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Binding:
    """The railguard side of a generated class: one spec's compiled guards, assignments and
    permission checks, called by the class's validators, conditions and actions."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    def initial(self, context: Mapping[str, Value] | None = None) -> dict[str, Value]:
        values = self.spec.initial_values()
        values.update(context or {})
        return values

    def permit(self, state: str, event: str, actor: str | None, roles: Iterable[str], params: Mapping[str, Any] | None) -> None:
        """The validator: some transition of ``event`` from ``state`` is permitted for
        ``roles``, and ``params`` match the event's signature; else :class:`StepRefused`."""
        held = frozenset(roles)
        candidates = [t for t in self.spec.transitions if t.event == event and state in t.sources]
        if candidates and not any(permitted(self.spec, t, held) for t in candidates):
            raise StepRefused("permission-denied", f"`{actor}` lacks permission for `{event}` in state `{state}`")
        checked = check_params(self.spec, event, dict(params or {}))
        if isinstance(checked, Refusal):
            raise StepRefused(checked.code, checked.message)

    def _step(self, state: str, values: Mapping[str, Value], event: str, actor: str | None, roles: Iterable[str], params: Mapping[str, Any] | None) -> Fired | Refusal:
        return fire(self.spec, state, values, event, actor, frozenset(roles), dict(params or {}))

    def allows(self, index: int, state: str, values: Mapping[str, Value], event: str, actor: str | None, roles: Iterable[str], params: Mapping[str, Any] | None) -> bool:
        """The condition of transition ``index``: the semantics picks exactly it."""
        outcome = self._step(state, values, event, actor, roles, params)
        return isinstance(outcome, Fired) and outcome.transition.index == index

    def assign(self, state: str, values: Mapping[str, Value], event: str, actor: str | None, roles: Iterable[str], params: Mapping[str, Any] | None) -> dict[str, Value]:
        """The action: the values after the step."""
        outcome = self._step(state, values, event, actor, roles, params)
        assert isinstance(outcome, Fired), outcome
        return dict(outcome.values)


# --------------------------------------------------------------------------- export


def _identifier(kind: str, name: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name) or name in _RESERVED or name.startswith("_"):
        raise InteropError(f"{kind} `{name}` cannot be a python-statemachine attribute: rename it to a Python identifier that is not reserved")
    return name


def _class_name(spec: Spec) -> str:
    parts = [p for p in "".join(c if c.isalnum() else " " for c in spec.name).split() if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Workflow"
    return name if name[0].isalpha() else f"Workflow{name}"


def to_python_statemachine(spec: Spec) -> str:
    """The source of a module defining a python-statemachine class for ``spec`` (see the module
    docstring). The module embeds the spec as canonical YAML and needs railguard and
    python-statemachine to import."""
    from railguard.spec.dump import dumps

    for state in spec.states:
        _identifier("state", state.name)
    for event in spec.events:
        _identifier("event", event)
        if event in spec.state_map:
            raise InteropError(f"event `{event}` has the name of a state, and python-statemachine keeps both as attributes of one class: rename one")
    name = _class_name(spec)
    lines = [
        f'"""A python-statemachine class for railguard spec `{spec.name}` ({spec.content_hash}), generated by railguard."""',
        "",
        "from statemachine import State, StateMachine",
        "",
        "from railguard.spec import loads",
        "from railguard.spec.interop.pystatemachine import Binding",
        "",
        "SPEC = loads(",
        *(f"    {line!r}" for line in dumps(spec).splitlines(keepends=True)),
        f"    , {spec.name + '.yaml'!r},",
        ")",
        "_RG = Binding(SPEC)",
        "",
        "",
        f"class {name}(StateMachine):",
        f"    {('Workflow ' + repr(spec.name) + ': ' + (spec.description or 'generated from a railguard spec.'))!r}",
        "",
    ]
    for state in spec.states:
        flags = []
        if state.initial:
            flags.append("initial=True")
        if state.terminal is not None:
            flags.append("final=True")
        lines.append(f"    {state.name} = State({', '.join(flags)})")
    lines.append("")
    for event in spec.events:
        parts = []
        for t in spec.transitions:
            if t.event != event:
                continue
            for source in t.sources:
                parts.append(f'{source}.to({t.target}, validators="_rg_permit_{event}", cond="_rg_t{t.index}", on="_rg_assign")')
        lines.append(f"    {event} = (\n        " + "\n        | ".join(parts) + "\n    )")
    errors = [f"{s.name}.to({spec.error_target(s.name)})" for s in spec.states if spec.error_target(s.name) is not None]
    if errors:
        lines.append("    rg_error = (\n        " + "\n        | ".join(errors) + "\n    )")
    lines += [
        "",
        "    def __init__(self, *args, context=None, **kwargs):",
        "        self.values = _RG.initial(context)",
        "        super().__init__(*args, **kwargs)",
        "",
        "    def _rg_state(self):",
        "        (state,) = self.configuration",
        "        return state.id",
        "",
        "    def _rg_assign(self, event, actor=None, roles=(), params=None):",
        "        self.values = _RG.assign(self._rg_state(), self.values, str(event), actor, roles, params)",
    ]
    for event in spec.events:
        lines += [
            "",
            f"    def _rg_permit_{event}(self, actor=None, roles=(), params=None):",
            f"        _RG.permit(self._rg_state(), {event!r}, actor, roles, params)",
        ]
    for t in spec.transitions:
        lines += [
            "",
            f"    def _rg_t{t.index}(self, actor=None, roles=(), params=None):",
            f"        return _RG.allows({t.index}, self._rg_state(), self.values, {t.event!r}, actor, roles, params)",
        ]
    lines.append("")
    return "\n".join(lines)


def python_statemachine_class(spec: Spec) -> type[Any]:
    """The python-statemachine class of :func:`to_python_statemachine`, built by running that
    generated source in a fresh module ``railguard_psm_<name>``."""
    import types

    source = to_python_statemachine(spec)
    module = types.ModuleType(f"railguard_psm_{abs(hash(spec.content_hash))}")
    exec(compile(source, f"<python-statemachine export of {spec.name}>", "exec"), module.__dict__)  # our own generated code
    cls: type[Any] = module.__dict__[_class_name(spec)]
    return cls


# --------------------------------------------------------------------------- import


def _load_class(reference: str) -> tuple[type[Any], list[Finding], str]:
    """The class a reference names, the findings of reading it, and its name."""
    path, sep, attribute = reference.rpartition(":")
    findings: list[Finding] = []
    if sep and (path.endswith(".py") or "/" in path or "\\" in path):
        file = Path(path)
        if not file.is_file():
            raise InteropError(f"cannot read `{path}`: no such file")
        spec_ = importlib.util.spec_from_file_location(f"_rg_import_{file.stem}", file)
        if spec_ is None or spec_.loader is None:
            raise InteropError(f"cannot import `{path}` as a Python module")
        module = importlib.util.module_from_spec(spec_)
        sys.modules[spec_.name] = module
        spec_.loader.exec_module(module)
        found = getattr(module, attribute, None)
    elif sep and Path(reference).suffix.lower() not in (".scxml", ".json", ".yaml", ".yml"):
        try:
            module = importlib.import_module(path)
        except ImportError as exc:
            raise InteropError(f"cannot import module `{path}`: {exc}") from None
        found = getattr(module, attribute, None)
    else:
        from statemachine.io import load

        try:
            found = load(reference, trusted=False)
        except Exception as exc:  # the reader's own errors, reported in one sentence
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InteropError(f"python-statemachine cannot read `{reference}`: {first}") from None
        attribute = getattr(found, "__name__", Path(reference).stem)
        findings.append(Finding(FindingKind.MAPPED, "document", f"read `{reference}` with `statemachine.io.load(trusted=False)`", Location(reference)))
    if not isinstance(found, type) or not hasattr(found, "states"):
        raise InteropError(f"`{reference}` does not name a python-statemachine class")
    return found, findings, attribute


def _leaves(state: Any) -> list[Any]:
    children = [s for s in getattr(state, "states", []) if not getattr(s, "is_history", False)]
    if not children:
        return [state]
    return [leaf for child in children for leaf in _leaves(child)]


def _entry(state: Any) -> Any:
    """Where entering ``state`` ends up: its initial child, recursively."""
    children = [s for s in getattr(state, "states", []) if not getattr(s, "is_history", False)]
    if not children:
        return state
    initial = next((s for s in children if s.initial), children[0])
    return _entry(initial)


def _condition_text(spec_obj: Any) -> str:
    for key in ("attr", "func"):
        value = getattr(spec_obj, key, None)
        if isinstance(value, str):
            return value
    func = getattr(spec_obj, "func", None)
    return getattr(func, "__name__", None) or str(spec_obj)


def _guard_from(text: str, event: str, names: dict[str, str]) -> str:
    """A condition string as a railguard guard over boolean params (``and``/``or``/``not`` kept)."""

    def param(name: str) -> str:
        clean = "".join(c if c.isalnum() else "_" for c in name).strip("_") or "cond"
        if clean[0].isdigit():
            clean = f"c_{clean}"
        key = f"cond_{clean}"
        names[key] = name
        return f"params.{key}"

    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        return param(text)

    def walk(node: ast.AST) -> str:
        if isinstance(node, ast.BoolOp):
            op = " and " if isinstance(node.op, ast.And) else " or "
            return "(" + op.join(walk(v) for v in node.values) + ")"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return f"not {walk(node.operand)}"
        if isinstance(node, ast.Name):
            return param(node.id)
        return param(ast.unparse(node))

    return walk(tree)


def import_python_statemachine(source: str, *, roles: Mapping[str, Sequence[str]] | None = None) -> ImportResult:
    """Import a python-statemachine class or document as a railguard spec (see the module
    docstring); ``source`` is ``module:Class``, ``file.py:Class`` or a SCXML/JSON/YAML file."""
    from railguard.spec.loader import load_data

    cls, findings, class_name = _load_class(source)
    where = Location(source)
    top = list(getattr(cls, "states", []))
    for state in _all_states(top):
        if getattr(state, "parallel", False):
            raise InteropError(f"state `{state.id}` of `{class_name}` is parallel, which railguard cannot flatten")
    leaf_name: dict[int, str] = {}

    def name_of(state: Any) -> str:
        chain = [state.id]
        parent = getattr(state, "parent", None)
        while parent is not None:
            chain.append(parent.id)
            parent = getattr(parent, "parent", None)
        return "__".join(reversed(chain))

    leaves = [leaf for s in top for leaf in _leaves(s)]
    for leaf in leaves:
        leaf_name[id(leaf)] = name_of(leaf)
    for state in _all_states(top):
        if _leaves(state) != [state]:
            findings.append(Finding(FindingKind.OVER_APPROXIMATED, f"state `{state.id}`", f"compound state `{state.id}` is flattened into its leaves {', '.join(f'`{leaf_name[id(x)]}`' for x in _leaves(state))}", where))
        if getattr(state, "is_history", False):
            findings.append(Finding(FindingKind.OVER_APPROXIMATED, f"state `{state.id}`", f"history state `{state.id}` is entered as its parent's initial state", where))
    initial = _entry(next((s for s in top if s.initial), top[0]))
    states: dict[str, Any] = {}
    for leaf in leaves:
        body: dict[str, Any] = {}
        if leaf is initial:
            body["initial"] = True
        if leaf.final:
            body["terminal"] = "success"
        states[leaf_name[id(leaf)]] = body
    states["rg_failed"] = {"terminal": "failure"}
    findings.append(Finding(FindingKind.MAPPED, "error exit", "added failure terminal `rg_failed` as the error exit railguard requires", where))

    transitions: list[dict[str, Any]] = []
    params_of: dict[str, dict[str, str]] = {}
    noted: set[str] = set()

    def note(kind: FindingKind, construct: str, message: str) -> None:
        if message not in noted:
            noted.add(message)
            findings.append(Finding(kind, construct, message, where))

    for state in _all_states(top):
        for t in getattr(state, "transitions", []):
            if getattr(t, "initial", False):
                continue  # a compound state's initial transition: the flattening rule's entry
            events = [str(e) for e in getattr(t, "events", [])] or []
            if not events:
                findings.append(Finding(FindingKind.REFUSED, f"transition from `{state.id}`", f"an eventless transition from `{state.id}` is not imported: railguard steps are events", where))
                continue
            targets = list(getattr(t, "targets", [])) or [t.target]
            if len(targets) != 1 or targets[0] is None:
                findings.append(Finding(FindingKind.REFUSED, f"transition from `{state.id}`", f"a transition from `{state.id}` with {len(targets)} targets is not imported", where))
                continue
            target = targets[0]
            if getattr(target, "is_history", False):
                target = _entry(getattr(target, "parent", target))
            target_name = leaf_name.get(id(_entry(target)))
            if target_name is None:
                raise InteropError(f"transition from `{state.id}` goes to `{target.id}`, which cannot be flattened")
            guard_parts: list[str] = []
            for kind in ("validators", "cond", "unless"):
                for item in _callbacks(cls, getattr(t, kind, None)):
                    text = _condition_text(item)
                    names = params_of.setdefault(events[0], {})
                    guard = _guard_from(text, events[0], names)
                    negated = kind == "unless" or getattr(item, "expected_value", True) is False
                    guard_parts.append(f"not ({guard})" if negated else guard)
                    note(FindingKind.OVER_APPROXIMATED, f"condition `{text}`", f"{'validator' if kind == 'validators' else 'condition'} `{text}` of `{events[0]}` from `{state.id}` is not analysed: it is the unconstrained boolean {guard}")
            for kind in ("on", "before", "after"):
                for item in _callbacks(cls, getattr(t, kind, None)):
                    note(FindingKind.OVER_APPROXIMATED, f"action `{_condition_text(item)}`", f"{kind} action `{_condition_text(item)}` of `{events[0]}` is not analysed: its effects on data are not modelled")
            sources = [leaf_name[id(x)] for x in _leaves(state)]
            for event in events:
                body = {"event": event, "from": sources if len(sources) > 1 else sources[0], "to": target_name, "permission": event}
                if guard_parts:
                    body["guard"] = " and ".join(guard_parts)
                transitions.append(body)
    for state in _all_states(top):
        for kind in ("enter", "exit"):
            for item in _callbacks(cls, getattr(state, kind, None)):
                note(FindingKind.OVER_APPROXIMATED, f"action `{_condition_text(item)}`", f"{kind} action `{_condition_text(item)}` of state `{state.id}` is not analysed: its effects on data are not modelled")
    for transition in transitions:
        names = params_of.get(transition["event"], {})
        if names:
            transition["params"] = {key: {"type": "bool", "default": False} for key in sorted(names)}
    permissions = sorted({t["permission"] for t in transitions})
    role_map = {k: list(v) for k, v in roles.items()} if roles is not None else {"user": permissions}
    if roles is None:
        findings.append(Finding(FindingKind.MAPPED, "permissions", "every event needs a permission of its own name, all granted by role `user`", where))
    document = {
        "railguard": 1,
        "name": class_name,
        "description": (getattr(cls, "__doc__", None) or f"imported from python-statemachine class `{class_name}`").strip().splitlines()[0],
        "roles": role_map,
        "states": states,
        "on_error": "rg_failed",
        "transitions": transitions,
    }
    return ImportResult(load_data(document, source), tuple(findings))


def _callbacks(cls: type[Any], specs: Any) -> list[Any]:
    """The callbacks of a group that exist: a naming-convention callback (``on_enter_red``)
    counts only when the class defines it; an explicit one always does."""
    out = []
    for item in list(specs or []):
        if getattr(item, "is_convention", False) and not hasattr(cls, getattr(item, "attr_name", "") or ""):
            continue
        out.append(item)
    return out


def _all_states(top: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    stack = list(top)
    while stack:
        state = stack.pop(0)
        out.append(state)
        stack.extend(getattr(state, "states", []))
    return out
