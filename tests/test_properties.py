"""Property-based tests: railguard checks itself with its own strategies (STYLE item 12).

Generated specs and expressions come from :mod:`railguard.verifier.strategies`; the
properties tie the parser, the type checker, the evaluator, the loader and the dumps
together. The examples at the end pin the bugs these properties found.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from railguard.spec import (
    EvaluationError,
    ExpressionError,
    LoadError,
    Spec,
    content_hash,
    dump_data,
    dumps,
    evaluate,
    load_data,
    loads,
)
from railguard.spec.expr import (
    BoolOp,
    Compare,
    ExprType,
    Literal,
    Node,
    Scope,
    assignable,
    check,
    parse,
    unparse,
)
from railguard.spec.types import Type
from railguard.verifier.strategies import (
    PRINCIPALS,
    Environment,
    environments,
    expressions,
    loaded_specs,
    scopes,
    specs,
    values,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=300, deadline=None)

COLORS = Type("enum", values=("red", "green", "blue"))
#: A scope holding one name of every kind, for text that was not generated from a scope.
RICH_SCOPE = Scope(
    variables={
        "x": Type("int", min=0, max=3),
        "y": Type("int", min=-2, max=2),
        "flag": Type("bool"),
        "color": COLORS,
        "tags": Type("set", of=COLORS),
        "owner": Type("principal"),
        "amount": Type("decimal", min=Decimal(0), max=Decimal(100), places=2),
        "label": Type("str", max_length=4),
    },
    states=("s0", "s1", "done"),
    params={"n": Type("int", min=0, max=3), "tone": COLORS, "ok": Type("bool")},
    allow_actor=True,
)


# --------------------------------------------------------------------------- helpers


def _declared(want: ExprType) -> Type:
    """The declared type a value of expression type ``want`` may be assigned to."""
    if want.kind == "enum":
        return Type("enum", values=want.values)
    if want.kind == "set":
        assert want.elem is not None
        return Type("set", of=_declared(want.elem))
    return Type(want.kind)  # type: ignore[arg-type]


def _conforms(checked: ExprType, want: ExprType) -> bool:
    """Whether ``check`` gave the requested type (exactly, for bool, int and decimal)."""
    if want.kind in ("bool", "int", "decimal"):
        return checked == want
    return assignable(_declared(want), checked)


def _has_type(value: Any, want: ExprType) -> bool:
    kind = want.kind
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "decimal":
        # A decimal-typed expression may yield an int when only ints reached it.
        return isinstance(value, int | Decimal) and not isinstance(value, bool)
    if kind == "enum":
        return isinstance(value, str) and value in want.values
    if kind == "principal":
        return value is None or value in PRINCIPALS
    if kind == "set":
        assert want.elem is not None
        return isinstance(value, frozenset) and all(_has_type(v, want.elem) for v in value)
    raise AssertionError(f"unexpected type {want}")


def _wanted_types(scope: Scope) -> list[ExprType]:
    wanted = [ExprType("bool"), ExprType("int"), ExprType("decimal"), ExprType("principal")]
    declared = [*scope.variables.values(), *(scope.params or {}).values()]
    wanted += [ExprType.of(t) for t in declared if t.kind in ("enum", "set")]
    if scope.states:
        wanted.append(ExprType("enum", scope.states))
    return wanted


def _run(tree: Node, env: Environment) -> Any:
    return evaluate(tree, env.variables, env.params, env.actor, env.state)


def _transition_scope(spec: Spec, index: int) -> Scope:
    transition = spec.transitions[index]
    return Scope(
        {v.name: v.type for v in spec.variables},
        tuple(s.name for s in spec.states),
        {p.name: p.type for p in transition.params},
        allow_actor=True,
    )


@contextmanager
def _no_dynamic_code() -> Iterator[None]:
    """``eval`` and ``exec`` raise; ``compile`` only builds syntax trees (as ``ast.parse`` does)."""
    real_compile = builtins.compile

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("railguard called eval or exec")

    def ast_only(
        source: Any, filename: Any, mode: str, flags: int = 0, *args: Any, **kwargs: Any
    ) -> Any:
        if not flags & ast.PyCF_ONLY_AST:
            raise AssertionError("railguard compiled code")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builtins, "eval", refuse)
        patch.setattr(builtins, "exec", refuse)
        patch.setattr(builtins, "compile", ast_only)
        yield


# --------------------------------------------------------------------------- specs


@SOME
@given(specs(sets=True, decimals=True))
def test_a_generated_spec_survives_yaml_and_json_round_trips_with_its_content_hash(
    document: dict[str, Any],
) -> None:
    spec = load_data(document)
    from_yaml = loads(dumps(spec))
    from_json = loads(dumps(spec, "json"), "x.json")
    assert from_yaml == spec
    assert from_json == spec
    assert content_hash(from_yaml) == content_hash(from_json) == content_hash(spec)


@FAST
@given(loaded_specs(sets=True, decimals=True))
def test_dump_data_is_idempotent(spec: Spec) -> None:
    once = dump_data(spec)
    assert dump_data(load_data(once)) == once


@FAST
@given(specs())
def test_default_specs_are_finite_with_one_initial_state_and_both_kinds_of_terminal(
    document: dict[str, Any],
) -> None:
    spec = load_data(document)
    assert all(v.type.is_finite for v in spec.variables)
    assert sum(s.initial for s in spec.states) == 1
    terminals = {s.terminal for s in spec.states}
    assert {"success", "failure"} <= terminals
    assert spec.on_error is not None
    assert spec.state_map[spec.on_error].terminal == "failure"


# --------------------------------------------------------------------------- expressions


@MANY
@given(st.data())
def test_unparse_then_parse_gives_back_the_tree_and_check_gives_the_requested_type(
    data: st.DataObject,
) -> None:
    scope = data.draw(scopes(), label="scope")
    want = data.draw(st.sampled_from(_wanted_types(scope)), label="type")
    tree = data.draw(expressions(scope, want), label="tree")
    text = unparse(tree)
    assert parse(text) == tree
    assert unparse(parse(text)) == text
    assert _conforms(check(tree, scope), want)


@SOME
@given(st.data())
def test_a_chained_comparison_parses_as_the_and_of_its_pairs(data: st.DataObject) -> None:
    scope = data.draw(scopes(max_vars=2, max_params=0))
    operands = [data.draw(expressions(scope, "int", max_depth=2)) for _ in range(3)]
    ops = data.draw(
        st.lists(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), min_size=2, max_size=2)
    )
    texts = [f"({unparse(o)})" for o in operands]
    chained = parse(f"{texts[0]} {ops[0]} {texts[1]} {ops[1]} {texts[2]}")
    pairs = (Compare(ops[0], operands[0], operands[1]), Compare(ops[1], operands[1], operands[2]))
    assert chained == BoolOp("and", pairs)


@MANY
@given(st.data())
def test_generated_expressions_evaluate_to_a_value_of_their_type_or_raise_evaluation_error(
    data: st.DataObject,
) -> None:
    scope = data.draw(scopes(), label="scope")
    want = data.draw(st.sampled_from(_wanted_types(scope)), label="type")
    tree = data.draw(expressions(scope, want), label="tree")
    env = data.draw(environments(scope), label="environment")
    try:
        value = _run(tree, env)
    except EvaluationError:
        return
    if want.kind == "enum" and want.values == scope.states:
        assert value in scope.states
    else:
        assert _has_type(value, want), (unparse(tree), value)


@SOME
@given(st.data())
def test_every_guard_and_assignment_of_a_generated_spec_evaluates_without_eval_or_exec(
    data: st.DataObject,
) -> None:
    document = data.draw(specs(sets=True, decimals=True), label="spec")
    with _no_dynamic_code():
        spec = load_data(document)
    for index, transition in enumerate(spec.transitions):
        env = data.draw(environments(_transition_scope(spec, index)))
        wanted = [(e, ExprType.of(spec.variable_map[n].type)) for n, e in transition.assign]
        if transition.guard is not None:
            wanted.append((transition.guard, ExprType("bool")))
        for expression, want in wanted:
            with _no_dynamic_code():
                fn = spec.compiled(expression)
                try:
                    value = fn(env.variables, env.params, env.actor, env.state)
                except EvaluationError:
                    continue
            # The value has the variable's type, though it may leave the declared domain.
            assert _has_type(value, want), (expression.text, value)


# --------------------------------------------------------------------------- hostile input

FRAGMENTS = (
    # operators and punctuation
    "+", "-", "*", "/", "//", "%", "**", "@", "~", "&", "|", "^", "<<", ">>", ":=", ".",
    "==", "!=", "<", "<=", ">", ">=", "(", ")", "[", "]", "{", "}", ",", ":", ";", "\\",
    # keywords and names
    "and", "or", "not", "in", "not in", "is", "is not", "if", "else", "lambda", "for",
    "await", "yield", "True", "False", "None", "x", "y", "flag", "color", "tags", "owner",
    "amount", "label", "unknown", "actor", "state", "params", "params.n", "params.tone",
    "params._x", "params.n.real", "implies", "min", "max", "abs", "len", "eval", "exec",
    "__import__", "__class__", "__builtins__", "_", "print",
    # literals
    "0", "1", "-1", "3", "1_000", "0x1F", "1.5", "0.1", "1e999", "1e-999", "1e2", "1j",
    "...", '"red"', "'green'", '"blue"', '"\\d"', '"\\ud800"', "b'x'", "f'{x}'", "\"\"\"a\nb\"\"\"",
    "#", "\n", " ", "\t",
)  # fmt: skip

grammar_text = st.lists(st.sampled_from(FRAGMENTS), max_size=14).flatmap(
    lambda parts: st.sampled_from([" ".join(parts), "".join(parts)])
)


def _parse_check_run(text: str, env: Environment) -> None:
    """Parse, check and run ``text``: each stage succeeds or raises railguard's own error."""
    try:
        tree = parse(text)
    except ExpressionError:
        return
    assert parse(unparse(tree)) == tree
    try:
        kind = check(tree, RICH_SCOPE)
    except ExpressionError:
        return
    try:
        value = _run(tree, env)
    except EvaluationError:
        return
    if kind.kind == "set":
        assert _has_type(value, ExprType.of(Type("set", of=COLORS)))
    elif kind.kind in ("bool", "int", "decimal", "principal"):
        assert _has_type(value, kind)


@MANY
@given(st.text(), environments(RICH_SCOPE))
def test_arbitrary_text_parses_and_checks_or_raises_expression_error(
    text: str, env: Environment
) -> None:
    _parse_check_run(text, env)


@MANY
@given(grammar_text, environments(RICH_SCOPE))
def test_grammar_like_text_parses_and_checks_or_raises_expression_error(
    text: str, env: Environment
) -> None:
    with _no_dynamic_code():
        _parse_check_run(text, env)


JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.decimals(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["s0", "s1", "ev0", "perm.0", "x0", "int", "enum", "public", "true", "15m"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["type", "min", "max", "initial", "from", "to", "event", "values", "of"]
            )
            | st.text(max_size=6),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _spoil(document: dict[str, Any], path: tuple[Any, ...], junk: Any, how: str) -> Any:
    """A copy of ``document`` with ``junk`` at ``path``: replacing it, or added inside it."""
    if not path:
        return junk
    root: Any = _copy(document)
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    target = parent[path[-1]]
    if how == "add" and isinstance(target, dict):
        target["extra" if "extra" not in target else "more"] = junk
    elif how == "add" and isinstance(target, list):
        target.append(junk)
    else:
        parent[path[-1]] = junk
    return root


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@SOME
@given(st.data())
def test_junk_anywhere_in_a_spec_document_loads_or_raises_load_error(data: st.DataObject) -> None:
    document = data.draw(specs(max_states=4, max_transitions=4), label="spec")
    path = data.draw(st.sampled_from(list(_paths(document))), label="path")
    junk = data.draw(JUNK, label="junk")
    how = data.draw(st.sampled_from(["replace", "add"]), label="how")
    spoiled = _spoil(document, path, junk, how)
    try:
        spec = load_data(spoiled)
    except LoadError:
        return
    assert loads(dumps(spec)) == spec


# --------------------------------------------------------------------------- strategies


@FAST
@given(st.data())
def test_environments_hold_values_inside_every_declared_domain(data: st.DataObject) -> None:
    scope = data.draw(scopes(decimals=True))
    env = data.draw(environments(scope))
    assert all(scope.variables[n].contains(v) for n, v in env.variables.items())
    assert all((scope.params or {})[n].contains(v) for n, v in env.params.items())
    assert set(env.variables) == set(scope.variables)
    assert env.actor in PRINCIPALS
    assert env.state in scope.states


@FAST
@given(st.data())
def test_values_of_a_type_are_inside_its_domain(data: st.DataObject) -> None:
    declared = data.draw(
        st.sampled_from(
            [
                Type("int"),
                Type("int", min=-1, max=1),
                Type("int", max=-20),
                Type("decimal", min=Decimal("0.25")),
                Type("decimal", min=Decimal("0.5"), max=Decimal("2"), places=1),
                Type("decimal"),
                Type("str", max_length=2),
                Type("set", of=COLORS, max_size=2),
                Type("principal"),
            ]
        )
    )
    assert declared.contains(data.draw(values(declared)))


def test_strategies_refuse_impossible_limits() -> None:
    from hypothesis.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        specs(max_states=2)
    with pytest.raises(InvalidArgument):
        specs(int_range=(3, 0))


# --------------------------------------------------------------------------- pinned findings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-7 // 2", -4),
        ("-7 % 2", 1),
        ("7 // -2", -4),
        ("7 % -2", -1),
        ("-7 % -2", -1),
    ],
)
def test_floor_division_and_modulo_keep_python_semantics_with_negative_operands(
    text: str, expected: int
) -> None:
    assert evaluate(parse(text), {}) == expected


def test_division_and_modulo_by_zero_raise_evaluation_error() -> None:
    for text in ("x // 0", "x % y"):
        with pytest.raises(EvaluationError, match="division by zero"):
            evaluate(parse(text), {"x": 1, "y": 0})


def test_a_bool_never_equals_or_is_a_member_among_ints() -> None:
    with pytest.raises(ExpressionError):
        check(parse("flag == 1"), RICH_SCOPE)
    with pytest.raises(ExpressionError):
        check(parse("flag in [1, 2]"), RICH_SCOPE)
    # Values from outside do not mix either.
    assert evaluate(parse("v == 1"), {"v": True}) is False
    assert evaluate(parse("v in [1, 2]"), {"v": True}) is False
    assert evaluate(parse("v not in [1]"), {"v": True}) is True
    assert Literal(True) != Literal(1)


def test_decimal_literals_and_decimal_arithmetic_are_exact() -> None:
    assert evaluate(parse("0.1 + 0.2 == 0.3"), {}) is True
    big = Decimal("12345678901234567890.12")
    product = evaluate(parse("x * 1000000000.5"), {"x": big})
    assert product == Decimal("12345678907407407340737283945.060")
    assert evaluate(parse("-x"), {"x": Decimal("-1234567890123456789012345678901.5")}) == Decimal(
        "1234567890123456789012345678901.5"
    )
    assert evaluate(
        parse("abs(x)"), {"x": Decimal("-1234567890123456789012345678901.5")}
    ) == Decimal("1234567890123456789012345678901.5")


def test_numerically_equal_decimal_literals_print_the_same_so_equal_specs_hash_the_same() -> None:
    for text in ("x > 1.50", "x > 1.5", "x > 1.500", "x > 15e-1"):
        assert unparse(parse(text)) == "x > 1.5"
    assert unparse(parse("x > 1e2")) == "x > 100.0"
    assert unparse(parse("x > -0.0")) == "x > 0.0"
    base = {
        "railguard": 1,
        "name": "n",
        "roles": {"r": ["p"]},
        "variables": {"x": {"type": "decimal", "initial": "0"}},
        "states": {
            "a": {"initial": True},
            "b": {"terminal": "success"},
            "f": {"terminal": "failure"},
        },
        "on_error": "f",
        "transitions": [
            {"event": "e", "from": "a", "to": "b", "permission": "p", "guard": "x > 1.0"}
        ],
    }
    other = _copy(base)
    other["transitions"][0]["guard"] = "x > 1.00"
    assert load_data(base) == load_data(other)
    assert content_hash(load_data(base)) == content_hash(load_data(other))


def test_a_decimal_literal_too_large_to_print_is_refused() -> None:
    with pytest.raises(ExpressionError, match="too large or too precise"):
        parse("x > 1e999999999")


def test_text_that_closes_the_line_wrapping_parenthesis_is_refused() -> None:
    with pytest.raises(ExpressionError, match="unmatched"):
        parse("x) + (\ny")
    assert parse("(x +\n y)") == parse("x + y")


def test_an_invalid_escape_is_refused_whatever_the_warning_filters() -> None:
    with pytest.raises(ExpressionError, match="escape"):
        parse('label == "\\d"')


def test_unary_plus_is_only_allowed_before_a_number() -> None:
    assert parse("+3") == Literal(3)
    for text in ("+flag", '+"red"', "+x"):
        with pytest.raises(ExpressionError, match="unary `\\+`"):
            parse(text)


def test_text_with_a_lone_surrogate_round_trips() -> None:
    tree = Literal("a\ud800b")
    assert parse(unparse(tree)) == tree


@pytest.mark.parametrize(
    "text",
    [
        'color == ("red" if flag else "green")',
        'tags == ["red"]',
        "tags == (tags if flag else [])",
        '"red" in (["red"] if flag else tags)',
    ],
)
def test_text_literals_and_lists_of_them_meet_enums_and_sets(text: str) -> None:
    assert check(parse(text), RICH_SCOPE) == ExprType("bool")


def test_text_literal_alternatives_can_be_assigned_to_an_enum_but_not_unknown_ones() -> None:
    assert assignable(COLORS, check(parse('"red" if flag else "green"'), RICH_SCOPE))
    assert not assignable(COLORS, check(parse('"red" if flag else "pink"'), RICH_SCOPE))
    assert assignable(Type("set", of=COLORS), check(parse("tags if flag else []"), RICH_SCOPE))
    with pytest.raises(ExpressionError, match="'pink' is not one of red, green, blue"):
        check(parse('color == ("red" if flag else "pink")'), RICH_SCOPE)


# --------------------------------------------------------------------------- found in the loader and dumps

MINIMAL = {
    "railguard": 1,
    "name": "n",
    "roles": {"r": ["p"], "q": ["p"]},
    "states": {"a": {"initial": True}, "b": {"terminal": "success"}, "f": {"terminal": "failure"}},
    "on_error": "f",
    "transitions": [{"event": "e", "from": "a", "to": "b", "permission": "p"}],
}


def test_a_list_as_a_precedes_event_is_a_load_error() -> None:
    document = {**MINIMAL, "invariants": [{"name": "i", "precedes": {"first": [], "then": "e"}}]}
    with pytest.raises(LoadError):
        load_data(document)


def test_a_list_as_an_exclusive_role_is_a_load_error() -> None:
    with pytest.raises(LoadError):
        load_data({**MINIMAL, "exclusive_roles": [["r", []]]})


def test_yaml_dumps_keep_a_next_line_character() -> None:
    spec = load_data({**MINIMAL, "description": "a\x85b"})
    assert loads(dumps(spec)).description == "a\x85b"
