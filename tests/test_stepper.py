"""The fast step functions against the reference algorithm: every step a per-(state, event)
stepper or decider takes is the step `_general` takes, with the same params and values down
to their types (``True`` is not ``1``, ``Decimal("1")`` is not ``1``), and every refusal is
the same refusal — on a spec with every param kind and on generated specs, with params of
every shape a caller can send."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from railguard.spec import Spec, loads
from railguard.spec.evaluate import _eq, _member, evaluate
from railguard.spec.expr import parse
from railguard.spec.semantics import (
    Fired,
    Refusal,
    _general,
    _table,
    decider,
    fire,
    signature,
    stepper,
)
from railguard.spec.types import Type
from railguard.verifier.strategies import PRINCIPALS, loaded_specs, values
from railguard.verifier.strategies import params as param_values

RICH = """
railguard: 1
name: rich
description: Every param kind, guards over params and context sets, assignments that can leave their domains.
roles:
  clerk: [work]
  boss:  [work, approve]
variables:
  names:   {type: set, of: {type: str, max_length: 8}, context: true, initial: []}
  nums:    {type: set, of: {type: int, min: -5, max: 5}, context: true, initial: []}
  flags:   {type: set, of: {type: bool}, context: true, initial: []}
  rates:   {type: set, of: {type: decimal, min: 0, max: 10, places: 2}, context: true, initial: []}
  n:       {type: int, min: 0, max: 5, initial: 0}
  total:   {type: decimal, min: 0, max: 10, places: 1, initial: 0}
  label:   {type: str, max_length: 4, initial: ""}
  owner:   {type: principal}
  on:      {type: bool, initial: false}
  color:   {type: enum, values: [red, green], initial: red}
  picked:  {type: set, of: {type: int, min: 0, max: 3}, max_size: 2, initial: []}
  amounts: {type: set, of: {type: decimal, min: 0, max: 5, places: 1}, initial: []}
states:
  a:      {initial: true}
  b:      {}
  done:   {terminal: success}
  failed: {terminal: failure}
on_error: failed
transitions:
  - event: name
    from: [a, b]
    to: b
    permission: work
    params:
      who: {type: str, max_length: 8}
    guard: params.who in names
    assign:
      label: params.who
  - event: num
    from: [a, b]
    to: b
    permission: work
    params:
      k: {type: int, min: -5, max: 5}
      extra: {type: int, min: 0, max: 3, default: 1}
    guard: params.k in nums and params.k not in [0]
    assign:
      n: params.k + params.extra
  - event: flag
    from: [a, b]
    to: a
    permission: work
    params:
      f: {type: bool}
    guard: params.f in flags
    assign:
      on: params.f
  - event: rate
    from: [a, b]
    to: b
    permission: work
    params:
      r: {type: decimal, min: 0, max: 10, places: 2}
    guard: params.r in rates or params.r in [1, 2.5]
    assign:
      total: params.r
  - event: add
    from: [a, b]
    to: a
    permission: work
    params:
      by: {type: int, min: 0, max: 9}
    guard: 10 // params.by >= 1
    assign:
      n: n + params.by
      total: total + params.by
      amounts: "[params.by, total]"
  - event: claim
    from: [a, b]
    to: b
    permission: approve
    assign:
      owner: actor
  - event: give
    from: b
    to: b
    permission: approve
    params:
      tag: {type: str}
    guard: owner != actor and len(params.tag) <= 2
    assign:
      owner: actor
      label: params.tag
  - event: route
    from: [a, b]
    to: done
    permission: work
    params:
      c: {type: enum, values: [red, green, blue]}
      note: {type: str, max_length: 3, default: "x"}
    guard: params.c == color
  - event: route
    from: b
    to: a
    permission: approve
    params:
      c: {type: enum, values: [red, green, blue]}
      note: {type: str, max_length: 3, default: "x"}
    guard: params.c != "blue"
    assign:
      color: green
  - event: pick
    from: [a, b]
    to: b
    permission: public
    params:
      i: {type: int, min: 0, max: 5}
    assign:
      picked: "[params.i, n]"
      total: params.i
  - event: toggle
    from: [a, b]
    to: a
    permission: public
    params:
      v: {type: bool, default: true}
    assign:
      on: params.v
  - event: mark
    from: [a, b]
    to: a
    permission: public
    params:
      b: {type: bool}
      x: {type: int, min: 0, max: 2}
      s: {type: str, max_length: 2}
      e: {type: enum, values: [red, blue], default: red}
      d: {type: decimal, min: 0, max: 1, places: 1, default: 0.5}
      big: {type: int, default: 0}
  - event: probe
    from: [a, b]
    to: b
    permission: work
    params:
      who: {type: str, max_length: 8}
    guard: params.who in names
  - event: leave
    from: [a, b]
    to: failed
    permission: work
"""


class Tag(str):
    """Text of a subclass of ``str``: the fast checks leave it to the general algorithm."""

    __slots__ = ()


class Count(int):
    """An int of a subclass: refused as an int param by both."""

    __slots__ = ()


#: Param values of every shape a caller can send: in and out of domains, of the wrong type,
#: ``True`` where ``1`` is meant, decimals as text, numbers past the digit limit, lone
#: surrogates, lists, ``None``, subclasses.
NASTY: st.SearchStrategy[Any] = st.one_of(
    st.integers(-7, 12),
    st.sampled_from([10**100, -(10**100), 10**99, 2**63, Count(2)]),
    st.booleans(),
    st.none(),
    st.sampled_from([Decimal("1.25"), Decimal("2.50"), Decimal("1.005"), Decimal("NaN"), Decimal("Infinity"), Decimal("1E+1"), Decimal("-0"), Decimal("2.5"), Decimal("1")]),
    st.sampled_from(["1", "2.5", "1_0", " 2 ", "NaN", "", "red", "blue", "green", "ann", "abcdefghi", "ab", "\ud800", "x" * 1001, Tag("ann"), Tag("red")]),
    st.sampled_from([1.5, 2.0]),
    st.lists(st.sampled_from([1, True, "a", Decimal("1"), None]), max_size=3),
    st.text(max_size=10),
)
#: Values one type is taken for in another: ``True`` for ``1``, text for numbers, and so on.
CONFUSED: st.SearchStrategy[Any] = st.sampled_from([0, 1, 2, True, False, "1", "true", "", Decimal(1), Decimal("0.5"), 1.0, None, [], ["red"], Tag("x")])
ROLES = st.sampled_from([frozenset(), frozenset({"clerk"}), frozenset({"boss"}), frozenset({"clerk", "boss"}), frozenset({"ghost"})])
ACTORS = st.sampled_from([*PRINCIPALS, "u"])


def exact(value: Any) -> Any:
    """``value`` with every scalar tagged by its type, so that ``True``, ``1``, ``1.0`` and
    ``Decimal("1")`` — equal in Python — compare different."""
    if isinstance(value, frozenset):
        return ("set", frozenset(exact(v) for v in value))
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), exact(v)) for k, v in value.items())))
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    return (type(value).__name__, value)


def assert_same(fast: Fired | Refusal, slow: Fired | Refusal) -> None:
    """The same step, or the same refusal, down to the types of params and values."""
    assert type(fast) is type(slow)
    if isinstance(fast, Refusal):
        assert fast == slow
        return
    assert isinstance(slow, Fired)
    assert (fast.transition, fast.source, fast.target) == (slow.transition, slow.source, slow.target)
    assert exact(fast.params) == exact(slow.params)
    assert exact(fast.values) == exact(slow.values)


def check_every_event(spec: Spec, state: str, vals: Mapping[str, Any], actor: str | None, roles: frozenset[str], params: Mapping[str, Any] | None, system: bool) -> list[Fired | Refusal]:
    """Each event of ``spec`` (and one that is not) in ``state``: the stepper, :func:`fire`
    and the decider agree with the general algorithm. Returns the reference outcomes."""
    table = _table(spec)
    outcomes: list[Fired | Refusal] = []
    for event in [*spec.events, "nope"]:
        candidates = table.steps.get((state, event))
        fast = stepper(spec, state, event)(vals, actor, roles, params, system)
        assert_same(fire(spec, state, vals, event, actor, roles, params, system=system), fast)
        decided = decider(spec, state, event)(vals, actor, roles, params, system)
        if candidates is None:
            assert isinstance(fast, Refusal)
            assert decided is None
            outcomes.append(fast)
            continue
        slow = _general(spec, table, state, event, candidates)(vals, actor, roles, params, system)
        assert_same(fast, slow)
        if isinstance(slow, Fired) and _plain(params):
            # The decider takes every step of the shapes callers send (it is the fast path).
            assert decided is not None
        if decided is not None:
            # The decider never takes a step the reference refuses, and takes it the same way.
            assert isinstance(slow, Fired)
            transition, taken_params, after = decided
            assert transition == slow.transition
            assert exact(taken_params) == exact(slow.params)
            assert exact(after) == exact(slow.values)
        outcomes.append(slow)
    return outcomes


def _edges(declared: Type) -> list[Any]:
    """Values at and just past the ends of a declared range, as ints, decimals and text."""
    out: list[Any] = []
    if declared.min is not None:
        out += [declared.min - 1] * 3 + [declared.min, str(declared.min), Decimal(declared.min) - Decimal("0.01")]
    if declared.max is not None:
        out += [declared.max + 1] * 3 + [declared.max, str(declared.max), Decimal(declared.max) + Decimal("0.01")]
    if declared.kind == "int" and declared.min is None:
        out += [-(10**100), -(10**100) + 1]
    if declared.kind == "int" and declared.max is None:
        out += [10**100, 10**100 - 1]
    if declared.max_length is not None:
        out += ["a" * declared.max_length, "a" * (declared.max_length + 1)]
    return out or [None]


@st.composite
def _params_of(draw: st.DrawFn, spec: Spec, event: str, known: list[str]) -> dict[str, Any]:
    """Params for ``event`` from its domains (text often one of the ``known`` names), with —
    half the time — one thing wrong: a value at or past an edge of its domain, of another
    type (:data:`CONFUSED`) or of any shape (:data:`NASTY`); a param left out; a name the
    event does not take."""
    expected = signature(spec, event)
    out: dict[str, Any] = {}
    for name, param in expected.items():
        if not param.required and draw(st.booleans()):
            continue
        domain = values(param.type)
        if param.type.kind == "str":
            domain = domain | st.sampled_from(known)
        out[name] = draw(domain)
    wrong = draw(st.integers(0, 5))
    if wrong <= 2 and expected:
        name = draw(st.sampled_from(sorted(expected)))
        out[name] = draw([st.sampled_from(_edges(expected[name].type)), CONFUSED, NASTY][wrong])
    elif wrong == 3 and out:
        del out[draw(st.sampled_from(sorted(out)))]
    elif wrong == 4 or (wrong <= 2 and not expected):
        out[draw(st.sampled_from(["bogus", "k", "who"]))] = draw(NASTY)
    return out


def _plain(params: Mapping[str, Any] | None) -> bool:
    """Params in a ``dict`` (or none) of values of exact plain types and lists of them."""
    if params is None:
        return True
    if type(params) is not dict:
        return False
    return all(type(v) in (int, bool, str, Decimal, type(None)) or (type(v) is list and all(type(i) in (int, bool, str, Decimal, type(None)) for i in v)) for v in params.values())


def _shaped(raw: dict[str, Any] | None, shape: int) -> Mapping[str, Any] | None:
    if raw is None or shape == 0:
        return raw
    return MappingProxyType(raw) if shape == 1 else dict(raw)


@st.composite
def _rich_cases(draw: st.DrawFn) -> tuple[str, dict[str, Any], str | None, frozenset[str], dict[str, Mapping[str, Any] | None], bool]:
    """A state, values, a caller, and params for every event of the rich spec."""
    spec = _rich()
    state = draw(st.sampled_from(["a", "b", "a", "b", "done"]))
    vals: dict[str, Any] = {v.name: draw(values(v.type)) for v in spec.variables}
    known = sorted(vals["names"]) or ["ann"]
    if draw(st.integers(0, 9)) == 0:  # now and then a value no store would hold
        vals[draw(st.sampled_from(sorted(vals)))] = draw(NASTY)
    per_event: dict[str, Mapping[str, Any] | None] = {}
    for event in spec.events:
        raw = draw(_params_of(spec, event, known))
        per_event[event] = None if draw(st.integers(0, 15)) == 0 else _shaped(raw, draw(st.integers(0, 6)))
    return state, vals, draw(ACTORS | st.none()), draw(ROLES), per_event, draw(st.integers(0, 5)) == 0


_RICH: list[Spec] = []


def _rich() -> Spec:
    if not _RICH:
        _RICH.append(loads(RICH))
    return _RICH[0]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rich_cases())
def test_the_fast_steps_take_the_reference_steps_on_a_spec_of_every_param_kind(case: tuple[str, dict[str, Any], str | None, frozenset[str], dict[str, Mapping[str, Any] | None], bool]) -> None:
    state, vals, actor, roles, per_event, system = case
    spec = _rich()
    for params in per_event.values():
        # Each event's params are tried on every event: most are then bad params elsewhere.
        check_every_event(spec, state, vals, actor, roles, params, system)


@st.composite
def _valid_rich_steps(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any], frozenset[str]]]]:
    """A context and a run of steps with params drawn from the events' own domains (so
    that most steps happen and runs reach values the single-step cases do not)."""
    spec = _rich()
    context = {name: draw(values(spec.variable_map[name].type)) for name in ("names", "nums", "flags", "rates")}
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        event = draw(st.sampled_from(spec.events))
        steps.append((event, draw(param_values(spec, event, valid=draw(st.booleans()))), draw(ROLES)))
    return context, steps


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_valid_rich_steps())
def test_runs_of_mostly_valid_steps_agree_with_the_reference_step_by_step(case: tuple[dict[str, Any], list[tuple[str, dict[str, Any], frozenset[str]]]]) -> None:
    context, steps = case
    spec = _rich()
    state, vals = spec.initial_state.name, {**spec.initial_values(), **context}
    table = _table(spec)
    for event, params, roles in steps:
        check_every_event(spec, state, vals, "alice", roles, params, False)
        candidates = table.steps.get((state, event))
        if candidates is None:
            continue
        outcome = _general(spec, table, state, event, candidates)(vals, "alice", roles, params, False)
        if isinstance(outcome, Fired):
            state, vals = outcome.target, dict(outcome.values)


@st.composite
def _generated_cases(draw: st.DrawFn) -> tuple[Spec, str, dict[str, Any], str | None, frozenset[str], dict[str, Mapping[str, Any] | None], bool]:
    """A generated spec (sets and decimals too), a state, values, a caller, and params
    for every event: from the event's domains, at their edges, or of every other shape."""
    spec = draw(loaded_specs(max_states=4, max_vars=4, max_transitions=8, max_params=3, sets=True, decimals=True))
    state = draw(st.sampled_from([s.name for s in spec.states]))
    vals: dict[str, Any] = {v.name: draw(values(v.type)) for v in spec.variables}
    per_event: dict[str, Mapping[str, Any] | None] = {}
    for event in spec.events:
        raw = dict(draw(param_values(spec, event, valid=draw(st.booleans())))) if draw(st.booleans()) else draw(_params_of(spec, event, ["alice", "red"]))
        per_event[event] = _shaped(raw, draw(st.integers(0, 6)))
    roles = frozenset(draw(st.sets(st.sampled_from([r.name for r in spec.roles] + ["ghost"]))))
    return spec, state, vals, draw(ACTORS), roles, per_event, draw(st.integers(0, 5)) == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_generated_cases())
def test_the_fast_steps_take_the_reference_steps_on_generated_specs(case: tuple[Spec, str, dict[str, Any], str | None, frozenset[str], dict[str, Mapping[str, Any] | None], bool]) -> None:
    spec, state, vals, actor, roles, per_event, system = case
    for params in [*per_event.values(), None, {}]:
        check_every_event(spec, state, vals, actor, roles, params, system)


# ---------------------------------------------------------------------- membership


def _scanning_member(x: Any, collection: Any) -> bool:
    """The definition `_member` replaced: Python's ``in``, then a scan for an item equal by
    `_eq` (bool never equal to a number)."""
    return x in collection and any(_eq(x, item) for item in collection)


SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.integers(-3, 3),
    st.booleans(),
    st.sampled_from([Decimal("0"), Decimal("1"), Decimal("1.0"), Decimal("-0"), Decimal("2"), Decimal("0.5"), Decimal("NaN"), Decimal("Infinity")]),
    st.sampled_from(["", "a", "1", "True"]),
)


@settings(max_examples=500, deadline=None)
@given(SCALARS, st.lists(SCALARS, max_size=5))
def test_membership_in_one_lookup_agrees_with_the_scanning_definition(x: Any, items: list[Any]) -> None:
    for collection in (frozenset(items), items):
        assert _member(x, collection) == _scanning_member(x, collection)


@pytest.mark.parametrize(
    ("x", "items", "expected"),
    [
        (True, [1], False),
        (1, [True], False),
        (False, [0], False),
        (0, [False, 2], False),
        (1, [Decimal("1.0")], True),
        (Decimal("2"), [2], True),
        (True, [True, 2], True),
        ("a", ["a", 1], True),
        (2, [1, 3], False),
    ],
)
def test_bool_is_never_a_member_where_only_a_number_equals_it(x: Any, items: list[Any], expected: bool) -> None:
    assert _member(x, frozenset(items)) is expected


def test_a_guard_over_a_context_set_of_bools_does_not_take_one_for_true() -> None:
    spec = _rich()
    vals = {**spec.initial_values(), "flags": frozenset({True})}
    fired = fire(spec, "a", vals, "flag", "alice", frozenset({"clerk"}), {"f": True})
    assert isinstance(fired, Fired)
    assert fired.values["on"] is True
    refused = fire(spec, "a", vals, "flag", "alice", frozenset({"clerk"}), {"f": 1})
    assert isinstance(refused, Refusal)
    assert (refused.code, refused.message) == ("bad-params", "param `f` of `flag` must be bool, not 1")
    assert evaluate(parse("1 in [2, 1]"), {}) is True


def test_a_decimal_param_given_as_text_is_taken_as_the_reference_takes_it() -> None:
    spec = _rich()
    vals = {**spec.initial_values(), "rates": frozenset({Decimal("1.25")})}
    fired = fire(spec, "a", vals, "rate", "alice", frozenset({"clerk"}), {"r": "1.25"})
    assert isinstance(fired, Refusal)  # 1.25 has two places; `total` takes one
    assert fired.code == "domain"
    taken = fire(spec, "a", vals, "rate", "alice", frozenset({"clerk"}), {"r": "2.5"})
    assert isinstance(taken, Fired)
    assert exact(taken.values["total"]) == ("Decimal", "2.5")
    assert exact(taken.params) == ("map", (("r", ("Decimal", "2.5")),))


def test_the_largest_numbers_a_param_may_carry_are_taken_by_the_decider() -> None:
    spec = _rich()
    vals = spec.initial_values()
    for big in (10**100 - 1, -(10**100) + 1):
        decided = decider(spec, "a", "mark")(vals, "alice", frozenset(), {"b": True, "x": 0, "s": "", "big": big}, False)
        assert decided is not None
        assert decided[1]["big"] == big


def test_an_int_assigned_to_a_decimal_variable_becomes_a_decimal_on_both_paths() -> None:
    spec = _rich()
    vals = spec.initial_values()
    decided = decider(spec, "a", "pick")(vals, "alice", frozenset(), {"i": 3}, False)
    assert decided is not None
    assert exact(decided[2]["total"]) == ("Decimal", "3")
    fired = fire(spec, "a", vals, "pick", "alice", frozenset(), {"i": 3})
    assert isinstance(fired, Fired)
    assert exact(fired.values["total"]) == ("Decimal", "3")
    assert exact(fired.values["picked"]) == ("set", frozenset({("int", 3), ("int", 0)}))


def test_a_param_of_a_str_subclass_is_left_to_the_general_algorithm_and_taken() -> None:
    spec = _rich()
    vals = {**spec.initial_values(), "names": frozenset({"ann"})}
    assert decider(spec, "a", "name")(vals, "alice", frozenset({"clerk"}), {"who": Tag("ann")}, False) is None
    fired = fire(spec, "a", vals, "name", "alice", frozenset({"clerk"}), {"who": Tag("ann")})
    assert isinstance(fired, Fired)
    assert fired.values["label"] == "ann"


def test_a_decider_answers_none_for_every_refused_step_and_the_step_function_says_why() -> None:
    spec = _rich()
    vals = {**spec.initial_values(), "nums": frozenset({5})}
    clerk = frozenset({"clerk"})
    cases = [
        ("num", {"k": 5, "extra": 3}, clerk, "domain", "transition 2 (`num`): `n` would become 8, outside int in [0, 5]"),
        ("num", {"k": 4}, clerk, "guard-false", "`num` is not allowed now: its guard `params.k in nums and params.k not in [0]` is false"),
        ("num", {"k": True}, clerk, "bad-params", "param `k` of `num` must be int in [-5, 5], not True"),
        ("num", {"k": 10**100}, clerk, "bad-params", "param `k` of `num` is a number of more than 100 digits"),
        ("num", {"k": 5, "bogus": 1}, clerk, "bad-params", "event `num` has no param `bogus` (params: `k`, `extra`)"),
        ("num", {}, clerk, "bad-params", "event `num` needs param `k`"),
        ("num", {"k": 5}, frozenset(), "permission-denied", "`alice` lacks permission `work` for `num` in state `a`"),
        ("add", {"by": 0}, clerk, "guard-error", "transition 5 (`add`): the guard failed: division by zero in `10 // params.by >= 1`"),
        ("name", {"who": "\ud800"}, clerk, "bad-params", "param `who` of `name` is not valid text (it holds a lone surrogate)"),
        ("mark", {"b": True, "x": 3, "s": ""}, clerk, "bad-params", "param `x` of `mark` is out of range: 3 is not int in [0, 2]"),
        ("mark", {"b": 1, "x": 0, "s": ""}, clerk, "bad-params", "param `b` of `mark` must be bool, not 1"),
        ("mark", {"b": True, "x": 0, "s": "abc"}, clerk, "bad-params", "param `s` of `mark` must be str of at most 2 characters, not 'abc'"),
        ("mark", {"b": True, "x": 0, "s": "", "big": 10**100}, clerk, "bad-params", "param `big` of `mark` is a number of more than 100 digits"),
        ("mark", {"b": True, "x": 0, "s": "", "big": -(10**100)}, clerk, "bad-params", "param `big` of `mark` is a number of more than 100 digits"),
        ("mark", {"b": True, "x": 0, "s": "", "e": "green"}, clerk, "bad-params", "param `e` of `mark` must be one of red, blue, not 'green'"),
    ]
    for event, params, roles, code, message in cases:
        assert decider(spec, "a", event)(vals, "alice", roles, params, False) is None
        refused = fire(spec, "a", vals, event, "alice", roles, params)
        assert isinstance(refused, Refusal)
        assert (refused.code, refused.message) == (code, message)


def test_a_step_never_hands_the_callers_params_or_values_back_as_its_own() -> None:
    spec = _rich()
    vals = {**spec.initial_values(), "names": frozenset({"ann"})}
    params = {"who": "ann"}
    fired = fire(spec, "a", vals, "probe", "alice", frozenset({"clerk"}), params)
    assert isinstance(fired, Fired)
    assert (fired.params, fired.values) == (params, vals)
    assert fired.params is not params
    assert fired.values is not vals
