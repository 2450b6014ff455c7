"""The reference semantics of one step: the rules the runtime executes and the verifier encodes.

A step is an event fired by an actor holding some roles, with params. It is refused —
leaving state and variables exactly as they were — unless, in this order:

1. the event exists in the spec (``unknown-event``) and has a transition from the current
   state (``not-enabled``);
2. some such transition's permission is ``public`` or granted by one of the actor's roles
   (``permission-denied``); a step fired by the system (a timeout) skips this check;
3. the params match the event's signature: no unknown names, every required param present,
   every value of its declared type and domain (``bad-params``); defaults fill the rest;
4. among the permitted transitions, in declaration order, the first whose guard holds is
   chosen (``guard-false`` if none); a guard that cannot be evaluated refuses the step
   (``guard-error``);
5. the chosen transition's assignments are evaluated together on the values before the step
   (``assign-error``) and every new value must lie in its variable's domain (``domain``).

:func:`fire` runs per-(state, event) step functions made once per spec (:func:`stepper`).
Their fast half, the :func:`decider`, takes the steps that happen in compiled closures and
never refuses a step itself: any step it does not take goes to the general algorithm
(``_general``), which is the rule above written out and says why a step is refused. The two
are property-tested equal, down to the types of params and values (``tests/test_stepper.py``).
"""

from __future__ import annotations

import decimal
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, TypeVar, get_args

from .errors import EvaluationError
from .evaluate import FAULTS, Compiled, compile_unguarded, fault
from .model import Parameter, Spec, Transition
from .types import Type, Value

__all__ = [
    "MAX_PARAM_DIGITS",
    "REFUSAL_CODES",
    "SYSTEM",
    "Decider",
    "Fired",
    "Refusal",
    "RefusalCode",
    "Stepper",
    "admit",
    "check_params",
    "decider",
    "fire",
    "permitted",
    "signature",
    "stepper",
]

#: The actor id of steps the system fires itself (timeouts).
SYSTEM = "system"

RefusalCode = Literal[
    "unknown-event",
    "not-enabled",
    "permission-denied",
    "bad-params",
    "guard-false",
    "guard-error",
    "assign-error",
    "domain",
]
REFUSAL_CODES: tuple[RefusalCode, ...] = get_args(RefusalCode)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused step: why (``code``), in one sentence (``message``), and where."""

    code: RefusalCode
    message: str
    event: str
    state: str


@dataclass(frozen=True, slots=True)
class Fired:
    """A step that happened: the transition taken, the params used and the values after it."""

    transition: Transition
    source: str
    target: str
    params: Mapping[str, Value] = field(default_factory=dict)
    values: Mapping[str, Value] = field(default_factory=dict)


_new = object.__new__
_SET_FIRED = tuple(Fired.__dict__[name].__set__ for name in ("transition", "source", "target", "params", "values"))


def _fired(transition: Transition, source: str, target: str, params: Mapping[str, Value], values: Mapping[str, Value]) -> Fired:
    """A :class:`Fired`, made through its slots: the same frozen value as ``Fired(...)`` at half
    the cost of the dataclass ``__init__`` (which sets each field through ``object.__setattr__``),
    on the runtime's hottest path."""
    fired: Fired = _new(Fired)
    st, so, ta, pa, va = _SET_FIRED
    st(fired, transition)
    so(fired, source)
    ta(fired, target)
    pa(fired, params)
    va(fired, values)
    return fired


def permitted(spec: Spec, transition: Transition, roles: frozenset[str]) -> bool:
    """Whether an actor holding ``roles`` may fire ``transition`` (deny by default)."""
    if transition.permission == "public":
        return True
    role_map = spec.role_map
    return any(transition.permission in role_map[r].permissions for r in roles if r in role_map)


#: The most digits a number given as a param may have, and the largest power of ten (either
#: way) a decimal param may carry: the step is refused beyond them, so one huge number cannot
#: cost the runtime gigabytes in exact arithmetic.
MAX_PARAM_DIGITS = 100
#: The longest text that is read as a decimal number.
_MAX_NUMBER_TEXT = 1_000


def check_params(spec: Spec, event: str, params: Mapping[str, Any]) -> dict[str, Value] | Refusal:
    """Validate ``params`` against the event's signature; return them with defaults filled.

    Numbers are bounded (:data:`MAX_PARAM_DIGITS`), text must be valid Unicode (no lone
    surrogates), and a value outside its domain is refused saying how (out of range, too many
    decimal places, not of the type).
    """
    expected = signature(spec, event)
    state = ""
    for name in params:
        if name not in expected:
            known = ", ".join(f"`{p}`" for p in expected) or "none"
            shown = f"`{name}`" if isinstance(name, str) and _is_text(name) else "that is not a name"
            return Refusal("bad-params", f"event `{event}` has no param {shown} (params: {known})", event, state)
    result: dict[str, Value] = {}
    for name, param in expected.items():
        if name in params:
            value, problem = admit(param.type, params[name])
            if problem is not None:
                return Refusal("bad-params", f"param `{name}` of `{event}` {problem}", event, state)
            result[name] = value
        elif param.required:
            return Refusal("bad-params", f"event `{event}` needs param `{name}`", event, state)
        else:
            result[name] = param.default
    return result


def admit(declared: Type, value: Any) -> tuple[Any, str | None]:
    """``value``, given from outside (a param, a context variable), as a value of
    ``declared`` — a decimal from an int or its text, a set from a list — and ``None``; or, if
    it is not a member of the domain, how it misses, as the end of a sentence about it
    (``"has too many decimal places: ..."``). Never raises."""
    kind = declared.kind
    if kind == "decimal":
        value = _decimal(value)
    elif kind == "set":
        if not isinstance(value, list | tuple | set | frozenset):
            return value, f"must be {declared.describe()} given as a list, not {_show(value)}"
        of = declared.of
        try:
            value = frozenset(_decimal(v) if of is not None and of.kind == "decimal" else v for v in value)
        except TypeError:
            return value, f"must be {declared.describe()}, not a list of {_show(value)}"
    problem = _unusable(value)
    if problem is not None:
        return value, f"is {problem}"
    if not declared.contains(value):
        return value, _outside(declared, value)
    return value, None


def _unusable(value: object) -> str | None:
    """Why ``value`` cannot be taken at all (a number too large, text with lone surrogates),
    or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if value >= 10**MAX_PARAM_DIGITS or value <= -(10**MAX_PARAM_DIGITS):
            return f"a number of more than {MAX_PARAM_DIGITS} digits"
        return None
    if isinstance(value, Decimal):
        if value.is_finite() and (len(value.as_tuple().digits) > MAX_PARAM_DIGITS or abs(value.adjusted()) > MAX_PARAM_DIGITS):
            return f"a number of more than {MAX_PARAM_DIGITS} digits or beyond 1e{MAX_PARAM_DIGITS} (either way)"
        return None
    if isinstance(value, str):
        return None if _is_text(value) else "not valid text (it holds a lone surrogate)"
    if isinstance(value, frozenset):
        for item in value:
            problem = _unusable(item)
            if problem is not None:
                return f"a set holding {problem}"
    return None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeError:
        return False
    return True


def _outside(declared: Type, value: object) -> str:
    """How ``value`` misses ``declared``'s domain, as the end of a sentence about it."""
    shown = _show(value)
    if declared.kind == "decimal" and isinstance(value, Decimal) and value.is_finite() and declared.places is not None:
        exponent = value.normalize(_WIDE).as_tuple().exponent
        if isinstance(exponent, int) and -exponent > declared.places:
            return f"has too many decimal places: {shown} has {-exponent}, at most {declared.places} allowed"
    numeric = (declared.kind == "int" and type(value) is int) or (declared.kind == "decimal" and isinstance(value, Decimal) and value.is_finite())
    if numeric:
        return f"is out of range: {shown} is not {declared.describe()}"
    return f"must be {declared.describe()}, not {shown}"


def _show(value: object) -> str:
    if not isinstance(value, str | int | float | Decimal | list | tuple | set | frozenset | dict) and value is not None:
        return f"a {type(value).__name__}"  # never an address: refusals are deterministic
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: ``step(values, actor, roles, params, system) -> Fired | Refusal``: one (state, event)
#: of a spec, prepared by :func:`stepper`.
Stepper: TypeAlias = Callable[[Mapping[str, Value], str | None, frozenset[str], Mapping[str, Any] | None, bool], Fired | Refusal]


def fire(
    spec: Spec,
    state: str,
    values: Mapping[str, Value],
    event: str,
    actor: str | None,
    roles: frozenset[str] = frozenset(),
    params: Mapping[str, Any] | None = None,
    *,
    system: bool = False,
) -> Fired | Refusal:
    """Apply one step to (``state``, ``values``) and return what happened; never mutates input."""
    return stepper(spec, state, event)(values, actor, roles, params, system)


def stepper(spec: Spec, state: str, event: str) -> Stepper:
    """The step function of ``event`` in ``state``: :func:`fire` with those two fixed, prepared
    once per spec (a closure specialised to the transition when the event has one transition
    from the state and takes no params; otherwise the :func:`decider` of the pair for the
    steps that happen and the general algorithm for every other). Callers that fire the same
    events many times keep the result."""
    table = _table(spec)
    found, candidates = _lookup(table, table.steppers, state, event)
    if found is not None:
        return found
    if candidates is None:
        return _refuser(spec, table, state, event)
    made = _specialised(spec, state, event, candidates) if not table.has_params.get(event, False) and len(candidates) == 1 else None
    if made is None:
        made = _compiled(spec, table, state, event, candidates)
    table.steppers[(state, event)] = made
    return made


_T = TypeVar("_T")


def _lookup(table: _Table, cache: Mapping[tuple[str, str], _T], state: str, event: Any) -> tuple[_T | None, list[_Step] | None]:
    """The function ``cache`` already holds for ``(state, event)``, else ``None`` and the
    transitions the pair can take (``None`` if none can: also for an event that is not even
    a string or not hashable)."""
    try:
        found = cache.get((state, event))
    except TypeError:  # an unhashable "event": no transition has it
        return None, None
    if found is not None:
        return found, None
    return None, (table.steps.get((state, event)) if isinstance(event, str) else None)


def _refuser(spec: Spec, table: _Table, state: str, event: Any) -> Stepper:
    def refuse(values: Mapping[str, Value], actor: str | None, roles: frozenset[str], params: Mapping[str, Any] | None, system: bool) -> Fired | Refusal:
        if event not in table.events:
            return Refusal("unknown-event", f"`{event}` is not an event of `{spec.name}`{_did_you_mean(event, table.events)}", event, state)
        return Refusal("not-enabled", f"`{event}` cannot happen in state `{state}`", event, state)

    return refuse


def _denied(actor: str | None, candidates: list[_Step], event: str, state: str) -> Refusal:
    needed = " or ".join(f"`{p}`" for p in dict.fromkeys(c.transition.permission for c in candidates))
    return Refusal("permission-denied", f"`{actor}` lacks permission {needed} for `{event}` in state `{state}`", event, state)


def _guards_false(allowed: list[_Step], event: str, state: str) -> Refusal:
    guards = list(dict.fromkeys(str(c.transition.guard) for c in allowed if c.transition.guard is not None))
    if len(guards) == 1:
        why = f"its guard `{guards[0]}` is false"
    else:
        why = "none of its guards holds (" + ", ".join(f"`{g}`" for g in guards) + ")"
    return Refusal("guard-false", f"`{event}` is not allowed now: {why}", event, state)


def _specialised(spec: Spec, state: str, event: str, candidates: list[_Step]) -> Stepper | None:
    """The step of a lone transition without params, as one closure: permission, guard,
    assignments and their domain checks inlined (``None`` when a domain needs the general
    check)."""
    (only,) = candidates
    transition = only.transition
    if any(inside is None for _, _, _, inside in only.assigns):
        return None
    general = _general(spec, _table(spec), state, event, candidates)
    target = transition.target
    label = transition.label
    open_to_all = only.public
    granting = only.granting
    guard = None if transition.guard is None else compile_unguarded(transition.guard.tree)
    guard_text = "" if transition.guard is None else transition.guard.text
    assigns = tuple((name, compile_unguarded(expr.tree), expr.text) for name, expr in transition.assign)
    checks = tuple((name, inside, declared) for name, _, declared, inside in only.assigns)
    empty: Mapping[str, Any] = MappingProxyType({})

    def step(values: Mapping[str, Value], actor: str | None, roles: frozenset[str], params: Mapping[str, Any] | None, system: bool) -> Fired | Refusal:
        if params:
            return general(values, actor, roles, params, system)  # refused as bad params there
        if not (open_to_all or system) and granting.isdisjoint(roles):
            return _denied(actor, candidates, event, state)
        if guard is not None:
            try:
                holds = guard(values, empty, actor, state)
            except FAULTS as exc:
                return Refusal("guard-error", f"{label}: the guard failed: {fault(exc, guard_text).message}", event, state)
            if not holds:
                return _guards_false(candidates, event, state)
        after = dict(values)
        for name, fn, text in assigns:
            try:
                after[name] = fn(values, empty, actor, state)
            except FAULTS as exc:
                return Refusal("assign-error", f"{label}: an assignment failed: {fault(exc, text).message}", event, state)
        for name, inside, declared in checks:
            if not inside(after[name]):  # type: ignore[misc]
                return Refusal("domain", f"{label}: `{name}` would become {after[name]!r}, outside {declared.describe()}", event, state)
        return _fired(transition, state, target, {}, after)

    if len(assigns) != 1:
        return step
    # The commonest shape, one assignment, without the loops.
    ((name, fn, text),) = assigns
    ((_, inside, declared),) = checks
    assert inside is not None

    def step_one(values: Mapping[str, Value], actor: str | None, roles: frozenset[str], params: Mapping[str, Any] | None, system: bool) -> Fired | Refusal:
        if params:
            return general(values, actor, roles, params, system)
        if not (open_to_all or system) and granting.isdisjoint(roles):
            return _denied(actor, candidates, event, state)
        try:
            if guard is not None and not guard(values, empty, actor, state):
                return _guards_false(candidates, event, state)
        except FAULTS as exc:
            return Refusal("guard-error", f"{label}: the guard failed: {fault(exc, guard_text).message}", event, state)
        try:
            value = fn(values, empty, actor, state)
        except FAULTS as exc:
            return Refusal("assign-error", f"{label}: an assignment failed: {fault(exc, text).message}", event, state)
        if not inside(value):
            return Refusal("domain", f"{label}: `{name}` would become {value!r}, outside {declared.describe()}", event, state)
        after = dict(values)
        after[name] = value
        return _fired(transition, state, target, {}, after)

    return step_one


#: What a compiled param or domain check returns for a value it does not admit.
_NO: Any = object()


def _compiled(spec: Spec, table: _Table, state: str, event: str, candidates: list[_Step]) -> Stepper:
    """The step of (state, event) through its :func:`decider`: the :class:`Fired` of a step
    the decider takes, :func:`_general`'s answer (a refusal, or a step of an unusual shape)
    for every other."""
    decide = _decider(spec, table, state, event, candidates)
    general = _general(spec, table, state, event, candidates)

    def step(values: Mapping[str, Value], actor: str | None, roles: frozenset[str], params: Mapping[str, Any] | None, system: bool) -> Fired | Refusal:
        taken = decide(values, actor, roles, params, system)
        if taken is None:
            return general(values, actor, roles, params, system)
        transition, checked, after = taken
        return _fired(transition, state, transition.target, dict(checked) if checked is params else checked, dict(after) if after is values else after)

    return step


#: ``decide(values, actor, roles, params, system) -> (transition, params, values) | None``:
#: the step of one (state, event) when it happens — the transition taken, the params with
#: defaults filled and the values after it; the given ``params`` and ``values`` themselves,
#: not copies, when they are already those (copy before changing them) — or ``None`` when
#: it is refused or of a shape only the step function decides; made by :func:`decider`.
Decider: TypeAlias = Callable[
    [Mapping[str, Value], str | None, frozenset[str], Mapping[str, Any] | None, bool],
    "tuple[Transition, Mapping[str, Value], Mapping[str, Value]] | None",
]


def decider(spec: Spec, state: str, event: str) -> Decider:
    """The fast half of :func:`stepper` (``event`` in ``state``), made once per spec: for a
    step that happens, the same transition, params and values as the :class:`Fired` of
    :func:`fire`, without building it; ``None`` for any other step, which the caller then
    gives to :func:`stepper` for the answer (a refusal and its reason, or the rare step of a
    shape the decider leaves to the general algorithm, such as params in a mapping that is
    not a ``dict``). It never admits a step :func:`fire` refuses."""
    table = _table(spec)
    found, candidates = _lookup(table, table.deciders, state, event)
    if found is not None:
        return found
    if candidates is None:
        return _never
    made = table.deciders[(state, event)] = _decider(spec, table, state, event, candidates)
    return made


def _never(values: Mapping[str, Value], actor: str | None, roles: frozenset[str], params: Mapping[str, Any] | None, system: bool) -> None:
    """The decider of an event that cannot happen in a state: every step is refused."""
    return


def _decider(spec: Spec, table: _Table, state: str, event: str, candidates: list[_Step]) -> Decider:
    """One closure that takes the steps of (state, event) that happen: the params checked by
    one per-event closure (:func:`_param_parser`), guards and assignments compiled without
    fault translation, new values checked by per-variable closures (:func:`_settler`).

    It never builds a refusal: whenever a check fails (permission, params, a guard false or
    faulting, an assignment faulting or leaving its domain) it answers ``None``, and
    :func:`_general` decides the step from scratch and says why. A step it takes is the one
    :func:`_general` takes (property-tested in ``tests/test_stepper.py``).
    """
    parse = _param_parser(spec, table, event)
    variables = spec.variable_map
    prepared = tuple(
        (
            c.public,
            c.granting,
            None if c.transition.guard is None else compile_unguarded(c.transition.guard.tree),
            c.transition,
            tuple((name, compile_unguarded(expr.tree), _settler(variables[name].type)) for name, expr in c.transition.assign),
        )
        for c in candidates
    )

    def decide(values: Mapping[str, Value], actor: str | None, roles: frozenset[str], params: Mapping[str, Any] | None, system: bool) -> tuple[Transition, Mapping[str, Value], Mapping[str, Value]] | None:
        checked: dict[str, Value] | None = None
        for public, granting, guard, transition, assigns in prepared:
            if not (public or system) and granting.isdisjoint(roles):
                continue
            if checked is None:
                # The params are checked once, after the first permitted transition.
                checked = parse(params)
                if checked is None:
                    return None
            try:
                if guard is not None and not guard(values, checked, actor, state):
                    continue
                after = dict(values)
                for name, fn, settle in assigns:
                    value = settle(fn(values, checked, actor, state))
                    if value is _NO:
                        return None
                    after[name] = value
            except FAULTS:
                return None
            return transition, checked, after
        return None

    if len(prepared) != 1:
        return decide
    # A lone transition (the commonest shape), without the loop over candidates.
    ((public, granting, guard, transition, assigns),) = prepared

    def decide_one(values: Mapping[str, Value], actor: str | None, roles: frozenset[str], params: Mapping[str, Any] | None, system: bool) -> tuple[Transition, Mapping[str, Value], Mapping[str, Value]] | None:
        if not (public or system) and granting.isdisjoint(roles):
            return None
        checked = parse(params)
        if checked is None:
            return None
        try:
            if guard is not None and not guard(values, checked, actor, state):
                return None
            after = dict(values)
            for name, fn, settle in assigns:
                value = settle(fn(values, checked, actor, state))
                if value is _NO:
                    return None
                after[name] = value
        except FAULTS:
            return None
        return transition, checked, after

    expected = signature(spec, event)
    if assigns or len(expected) != 1 or not next(iter(expected.values())).required:
        return decide_one
    # A lone transition that assigns nothing and takes one required param (a tool-like check,
    # such as a payee lookup): the param checked in place.
    ((only, param),) = expected.items()
    admit_only = _param_admitter(param.type)

    def decide_check(values: Mapping[str, Value], actor: str | None, roles: frozenset[str], params: Mapping[str, Any] | None, system: bool) -> tuple[Transition, Mapping[str, Value], Mapping[str, Value]] | None:
        if not (public or system) and granting.isdisjoint(roles):
            return None
        if type(params) is not dict or len(params) != 1 or only not in params:
            return None
        if admit_only(params[only]) is _NO:
            return None
        # The one value is admitted as it is, so the caller's params are the checked params
        # (and the values are unchanged): both handed back as they are, for the caller to copy.
        try:
            if guard is not None and not guard(values, params, actor, state):
                return None
        except FAULTS:
            return None
        return transition, params, values

    return decide_check


def _settler(declared: Type) -> Callable[[Any], Any]:
    """The new value of a variable declared ``declared`` — an int widened to a decimal for a
    decimal variable, as :func:`_general` does — or :data:`_NO` if it is outside the domain."""
    inside = _fast_check(declared)
    if inside is not None:
        check = inside
        return lambda value: value if check(value) else _NO
    kind = declared.kind
    of_decimal = kind == "set" and declared.of is not None and declared.of.kind == "decimal"
    contains = declared.contains

    def settle(value: Any) -> Any:
        if kind == "decimal" and isinstance(value, int) and not isinstance(value, bool):
            value = Decimal(value)
        elif of_decimal and isinstance(value, frozenset):
            value = frozenset(Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)
        return value if contains(value) else _NO

    # Values of exact types decided in place; any other goes to `Type.contains`, as in `_general`.
    if kind == "str":
        longest = declared.max_length
        if longest is None:
            return lambda value: value if type(value) is str else settle(value)
        return lambda value: value if type(value) is str and len(value) <= longest else settle(value)
    if kind == "principal":
        return lambda value: value if value is None or (type(value) is str and value != "") else settle(value)
    return settle


#: Beyond this magnitude an int param is refused (:data:`MAX_PARAM_DIGITS`).
_INT_LIMIT = 10**MAX_PARAM_DIGITS


def _param_admitter(declared: Type) -> Callable[[Any], Any]:
    """``value`` as :func:`admit` takes it for ``declared``, or :data:`_NO` — for a value of
    an exact plain type, decided in a few comparisons; anything else (a subclass, a decimal,
    a set, a value :func:`admit` would refuse) through :func:`admit` itself, or refused."""
    kind = declared.kind
    if kind == "int":
        # Both rules at once: inside the declared bounds and short of MAX_PARAM_DIGITS digits.
        low = -_INT_LIMIT + 1 if declared.min is None else max(declared.min, -_INT_LIMIT + 1)
        high = _INT_LIMIT - 1 if declared.max is None else min(declared.max, _INT_LIMIT - 1)
        return lambda value: value if type(value) is int and low <= value <= high else _NO
    if kind == "bool":
        return lambda value: value if type(value) is bool else _NO
    if kind == "enum":
        members = frozenset(declared.values)
        return lambda value: value if type(value) is str and value in members and (value.isascii() or _is_text(value)) else _NO
    if kind == "str":
        longest = declared.max_length
        if longest is None:
            return lambda value: value if type(value) is str and (value.isascii() or _is_text(value)) else _NO
        return lambda value: value if type(value) is str and len(value) <= longest and (value.isascii() or _is_text(value)) else _NO
    if kind == "principal":
        # `None` (unset) is left to `admit`: a plan's null for an optional param means its
        # default, which the gate's screening decides before the step function sees it.
        return lambda value: value if type(value) is str and value != "" and (value.isascii() or _is_text(value)) else _NO
    return _by_admit(declared)


def _by_admit(declared: Type) -> Callable[[Any], Any]:
    def through(value: Any) -> Any:
        admitted, problem = admit(declared, value)
        return _NO if problem is not None else admitted

    return through


def _param_parser(spec: Spec, table: _Table, event: str) -> Callable[[Mapping[str, Any] | None], dict[str, Value] | None]:
    """:func:`check_params` of ``event`` as one closure (made once per event): the params
    with defaults filled, or ``None`` when :func:`check_params` would refuse them (or they are
    of a shape only it decides, such as a mapping that is not a dict)."""
    found = table.parsers.get(event)
    if found is not None:
        return found
    expected = signature(spec, event)
    known = frozenset(expected)
    fields = tuple((name, param.required, param.default, _param_admitter(param.type)) for name, param in expected.items())
    needs = any(param.required for param in expected.values())
    defaults = {name: param.default for name, param in expected.items()}

    def parse(params: Mapping[str, Any] | None) -> dict[str, Value] | None:
        if not params:
            return None if needs else dict(defaults)
        if type(params) is not dict or not known.issuperset(params):
            return None
        result: dict[str, Value] = {}
        for name, required, default, admitter in fields:
            if name in params:
                value = admitter(params[name])
                if value is _NO:
                    return None
                result[name] = value
            elif required:
                return None
            else:
                result[name] = default
        return result

    parser = parse
    if len(fields) == 1 and needs:
        # One required param (a tool call's usual shape): one lookup, one check.
        ((only, _, _, admit_only),) = fields

        def parse_one(params: Mapping[str, Any] | None) -> dict[str, Value] | None:
            if type(params) is not dict or len(params) != 1 or only not in params:
                return None
            value = admit_only(params[only])
            return None if value is _NO else {only: value}

        parser = parse_one
    table.parsers[event] = parser
    return parser


def _general(spec: Spec, table: _Table, state: str, event: str, candidates: list[_Step]) -> Stepper:
    """The step algorithm of the module docstring, for any number of transitions and params."""
    takes_params = table.has_params.get(event, False)

    def step(values: Mapping[str, Value], actor: str | None, roles: frozenset[str], params: Mapping[str, Any] | None, system: bool) -> Fired | Refusal:
        allowed = candidates if system else [c for c in candidates if c.public or not c.granting.isdisjoint(roles)]
        if not allowed:
            return _denied(actor, candidates, event, state)
        if params or takes_params:
            checked = check_params(spec, event, params or {})
            if isinstance(checked, Refusal):
                return Refusal(checked.code, checked.message, event, state)
        else:
            checked = {}
        chosen: _Step | None = None
        for candidate in allowed:
            guard = candidate.guard
            if guard is None:
                chosen = candidate
                break
            try:
                holds = guard(values, checked, actor, state)
            except EvaluationError as exc:
                return Refusal("guard-error", f"{candidate.transition.label}: the guard failed: {exc.message}", event, state)
            if holds:
                chosen = candidate
                break
        if chosen is None:
            return _guards_false(allowed, event, state)
        transition = chosen.transition
        if not chosen.assigns:
            return Fired(transition, state, transition.target, checked, dict(values))
        after = dict(values)
        try:
            for name, fn, _, _ in chosen.assigns:
                after[name] = fn(values, checked, actor, state)
        except EvaluationError as exc:
            return Refusal("assign-error", f"{transition.label}: an assignment failed: {exc.message}", event, state)
        for name, _, declared, inside in chosen.assigns:
            value = after[name]
            if inside is not None:
                if inside(value):
                    continue
            else:
                if declared.kind == "decimal" and isinstance(value, int) and not isinstance(value, bool):
                    value = after[name] = Decimal(value)
                elif declared.kind == "set" and isinstance(value, frozenset) and declared.of is not None and declared.of.kind == "decimal":
                    value = after[name] = frozenset(Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)
                if declared.contains(value):
                    continue
            return Refusal("domain", f"{transition.label}: `{name}` would become {value!r}, outside {declared.describe()}", event, state)
        return Fired(transition, state, transition.target, checked, after)

    return step


def _fast_check(declared: Type) -> Callable[[Any], bool] | None:
    """A quick membership test for the common domains (None: use :meth:`Type.contains`)."""
    if declared.kind == "int":
        low, high = declared.min, declared.max
        if low is not None and high is not None:
            return lambda x: type(x) is int and low <= x <= high
        if low is not None:
            return lambda x: type(x) is int and low <= x
        if high is not None:
            return lambda x: type(x) is int and x <= high
        return lambda x: type(x) is int
    if declared.kind == "bool":
        return lambda x: type(x) is bool
    if declared.kind == "enum":
        values = frozenset(declared.values)
        return lambda x: type(x) is str and x in values
    return None


@dataclass(frozen=True, slots=True)
class _Step:
    """A transition prepared for fast stepping: who may fire it, its compiled guard and assignments."""

    transition: Transition
    public: bool
    granting: frozenset[str]
    guard: Compiled | None
    assigns: tuple[tuple[str, Compiled, Type, Callable[[Any], bool] | None], ...]


@dataclass(frozen=True, slots=True)
class _Table:
    steps: dict[tuple[str, str], list[_Step]]
    events: frozenset[str]
    has_params: dict[str, bool]
    signatures: dict[str, dict[str, Parameter]] = field(default_factory=dict)
    steppers: dict[tuple[str, str], Stepper] = field(default_factory=dict)
    parsers: dict[str, Callable[[Mapping[str, Any] | None], dict[str, Value] | None]] = field(default_factory=dict)
    deciders: dict[tuple[str, str], Decider] = field(default_factory=dict)


def _table(spec: Spec) -> _Table:
    cached: _Table | None = spec.__dict__.get("_semantics_table")
    if cached is None:
        granting: dict[str, set[str]] = {}
        for role in spec.roles:
            for permission in role.permissions:
                granting.setdefault(permission, set()).add(role.name)
        steps: dict[tuple[str, str], list[_Step]] = {}
        variables = spec.variable_map
        for transition in spec.transitions:
            step = _Step(
                transition,
                transition.permission == "public",
                frozenset(granting.get(transition.permission, ())),
                None if transition.guard is None else spec.compiled(transition.guard),
                tuple((name, spec.compiled(expr), variables[name].type, _fast_check(variables[name].type)) for name, expr in transition.assign),
            )
            for source in transition.sources:
                steps.setdefault((source, transition.event), []).append(step)
        has_params: dict[str, bool] = {}
        for transition in spec.transitions:
            has_params[transition.event] = has_params.get(transition.event, False) or bool(transition.params)
        signatures: dict[str, dict[str, Parameter]] = {}
        for transition in spec.transitions:
            signatures.setdefault(transition.event, {p.name: p for p in transition.params})
        cached = _Table(steps, frozenset(spec.events), has_params, signatures)
        spec.__dict__["_semantics_table"] = cached
    return cached


#: Enough room to normalise any bounded decimal without rounding.
_WIDE = decimal.Context(prec=4 * MAX_PARAM_DIGITS, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def _decimal(value: Any) -> Any:
    """``value`` (an int or decimal text) as a Decimal; anything else, or text too long to be
    a bounded number, unchanged (and refused by the domain check)."""
    if isinstance(value, str) and len(value) > _MAX_NUMBER_TEXT:
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        return value
    try:
        return Decimal(value)
    except ArithmeticError:
        return value


def _did_you_mean(name: object, known: frozenset[str]) -> str:
    if not isinstance(name, str) or not _is_text(name) or len(name) > 200:
        return ""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean `{close[0]}`?" if close else ""


def signature(spec: Spec, event: str) -> Mapping[str, Parameter]:
    """The params ``event`` takes, by name (empty for an unknown event); every transition of
    an event declares the same params, so this is computed once per spec."""
    return _table(spec).signatures.get(event, {})
