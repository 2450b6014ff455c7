"""Hypothesis strategies that generate railguard specs, expressions and the values they see.

The toolkit tests itself with these (STYLE item 12): random well-typed expressions check the
parser, the type checker and the evaluator against each other, and random specs check the
loader, the dumps and, by default small and *finite* (ints in ``0..3``, bools, enums,
principals, optionally sets of small enums and decimals), let the Z3 verifier be
cross-checked against explicit search.

>>> from hypothesis import given
>>> from railguard.spec import load_data
>>> @given(specs())
... def test_every_generated_spec_loads(document):
...     load_data(document)

Every strategy produces canonical trees (see :class:`railguard.spec.expr.Node`), so
``parse(unparse(tree)) == tree`` holds for all of them. Expressions may divide by zero at
run time; assignments may leave the declared domain: those are findings of the evaluator or
the verifier, not load errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, cast

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from railguard.spec import EvaluationError, Spec, load_data
from railguard.spec.expr import (
    Actor,
    Binary,
    BoolOp,
    Call,
    Compare,
    Conditional,
    ExprType,
    ListExpr,
    Literal,
    Node,
    Param,
    Scope,
    StateRef,
    Unary,
    Var,
    unparse,
)
from railguard.spec.types import Type, Value

__all__ = [
    "PRINCIPALS",
    "Action",
    "DrawnPlan",
    "Environment",
    "actions",
    "deep_specs",
    "default_principals",
    "environments",
    "expressions",
    "loaded_specs",
    "params",
    "plans",
    "runs",
    "scopes",
    "specs",
    "values",
]

#: The principal ids that environments draw from; few, so that identities repeat.
PRINCIPALS: tuple[str, ...] = ("alice", "bob", "carol")
#: Enum values; some are YAML-sensitive on purpose (``yes``, ``null``, ``0``).
ENUM_VALUES: tuple[str, ...] = ("red", "green", "blue", "yes", "null", "0")
#: Decimal literals and bounds: exact, a few places, positive and negative.
DECIMALS: tuple[Decimal, ...] = tuple(
    Decimal(text) for text in ("0.0", "0.5", "1.25", "-1.5", "2", "10.75")
)
#: How far an unbounded int or decimal strays from zero in an environment.
UNBOUNDED = 5

_BOOL = ExprType("bool")
_INT = ExprType("int")
_DECIMAL = ExprType("decimal")
_PRINCIPAL = ExprType("principal")
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
_ARITHMETIC = ("+", "-", "*", "//", "%")


# --------------------------------------------------------------------------- values


def values(declared: Type) -> st.SearchStrategy[Value]:
    """Values inside the domain of ``declared``; an unbounded number stays near its bound or 0.

    A principal is unset (``None``) or one of :data:`PRINCIPALS`.
    """
    kind = declared.kind
    if kind == "bool":
        return st.booleans()
    if kind == "int":
        low, high = _bounds(declared)
        return st.integers(int(low), int(high))
    if kind == "decimal":
        places = declared.places if declared.places is not None else 2
        low_d, high_d = (Decimal(b) for b in _bounds(declared))
        return st.decimals(low_d, high_d, places=places, allow_nan=False, allow_infinity=False)
    if kind == "enum":
        return st.sampled_from(declared.values)
    if kind == "str":
        return st.text(max_size=declared.max_length if declared.max_length is not None else 8)
    if kind == "principal":
        return st.none() | st.sampled_from(PRINCIPALS)
    if kind == "set":
        if declared.of is None:
            raise InvalidArgument("a set type needs an element type")
        items = st.frozensets(values(declared.of), max_size=declared.max_size)
        return cast("st.SearchStrategy[Value]", items)
    raise InvalidArgument(f"no values for type kind {kind!r}")


def _bounds(declared: Type) -> tuple[int | Decimal, int | Decimal]:
    """The declared bounds, a missing one :data:`UNBOUNDED` beyond the other (or zero)."""
    low, high = declared.min, declared.max
    if low is None:
        low = (high if high is not None else 0) - UNBOUNDED
    if high is None:
        high = low + 2 * UNBOUNDED
    return low, high


@dataclass(frozen=True)
class Environment:
    """What a compiled expression is called with: ``fn(variables, params, actor, state)``."""

    variables: Mapping[str, Value] = field(default_factory=dict)
    params: Mapping[str, Value] = field(default_factory=dict)
    actor: str | None = None
    state: str = ""


def environments(scope: Scope) -> st.SearchStrategy[Environment]:
    """Values for every variable and param of ``scope``, each inside its declared domain.

    The actor is one of :data:`PRINCIPALS` when the scope allows ``actor``, else ``None``;
    the state is one of the scope's states (``""`` if it has none).
    """
    variables = st.fixed_dictionaries({n: values(t) for n, t in scope.variables.items()})
    params = st.fixed_dictionaries({n: values(t) for n, t in (scope.params or {}).items()})
    actor = st.sampled_from(PRINCIPALS) if scope.allow_actor else st.none()
    state = st.sampled_from(scope.states) if scope.states else st.just("")
    return st.builds(Environment, variables, params, actor, state)


# --------------------------------------------------------------------------- types and scopes


def _kinds(*, sets: bool, decimals: bool, principals: bool = True) -> list[str]:
    kinds = ["int", "bool", "enum"]
    if principals:
        kinds.append("principal")
    if sets:
        kinds.append("set")
    if decimals:
        kinds.append("decimal")
    return kinds


def _enum_values(draw: st.DrawFn) -> tuple[str, ...]:
    chosen = draw(st.lists(st.sampled_from(ENUM_VALUES), min_size=1, max_size=3, unique=True))
    return tuple(chosen)


def _declared(draw: st.DrawFn, kind: str, int_range: tuple[int, int]) -> Type:
    """A finite declared type of ``kind``."""
    if kind == "int":
        low = draw(st.integers(*int_range))
        high = draw(st.integers(low, int_range[1]))
        return Type("int", min=low, max=high)
    if kind == "decimal":
        low_d = draw(st.sampled_from(DECIMALS))
        high_d = draw(st.sampled_from([d for d in DECIMALS if d >= low_d]))
        needed = max(_places(low_d), _places(high_d), 1)
        places = draw(st.integers(needed, needed + 1))
        return Type("decimal", min=low_d, max=high_d, places=places)
    if kind == "bool":
        return Type("bool")
    if kind == "enum":
        return Type("enum", values=_enum_values(draw))
    if kind == "principal":
        return Type("principal")
    if kind == "set":
        of = Type("enum", values=_enum_values(draw))
        max_size = draw(st.none() | st.integers(len(of.values), 3))
        return Type("set", of=of, max_size=max_size)
    raise InvalidArgument(f"unknown type kind {kind!r}")


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _check_range(int_range: tuple[int, int]) -> None:
    low, high = int_range
    if low > high:
        raise InvalidArgument(f"int_range {int_range!r} is empty")


def scopes(
    max_vars: int = 4,
    max_params: int = 2,
    *,
    transition: bool = True,
    sets: bool = True,
    decimals: bool = False,
    int_range: tuple[int, int] = (0, 3),
) -> st.SearchStrategy[Scope]:
    """Scopes with up to ``max_vars`` finite variables ``x0, x1, ...`` and states ``s0, ...``.

    Variables are ints within ``int_range``, bools, enums and principals; sets of enums too
    unless ``sets`` is false, and decimals with ``decimals``. Params are never principals.

    With ``transition`` (the scope of a guard or an assignment) the scope also has up to
    ``max_params`` params ``p0, p1, ...`` and allows ``actor``; without it, it is the scope
    of an invariant.
    """
    _check_range(int_range)

    @st.composite
    def build(draw: st.DrawFn) -> Scope:
        kinds = _kinds(sets=sets, decimals=decimals)
        count = draw(st.integers(0, max_vars))
        variables = {
            f"x{i}": _declared(draw, draw(st.sampled_from(kinds)), int_range) for i in range(count)
        }
        states = tuple(f"s{i}" for i in range(draw(st.integers(1, 4))))
        if not transition:
            return Scope(variables, states)
        param_kinds = _kinds(sets=False, decimals=decimals, principals=False)
        pcount = draw(st.integers(0, max_params))
        params = {
            f"p{i}": _declared(draw, draw(st.sampled_from(param_kinds)), int_range)
            for i in range(pcount)
        }
        return Scope(variables, states, params, allow_actor=True)

    return build()


# --------------------------------------------------------------------------- expressions


def _negate(node: Node) -> Node:
    """``-node`` in canonical form: a number literal takes the sign itself."""
    value = node.value if isinstance(node, Literal) else None
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return Literal(-value)
    return Unary("-", node)


class _Generator:
    """Draws well-typed trees over one scope, down to a depth budget."""

    def __init__(self, draw: st.DrawFn, scope: Scope, *, decimals: bool) -> None:
        self.draw = draw
        self.scope = scope
        self.decimals = decimals
        self.names: dict[ExprType, list[Node]] = {}
        for name, declared in scope.variables.items():
            self.names.setdefault(ExprType.of(declared), []).append(Var(name))
        for name, declared in (scope.params or {}).items():
            self.names.setdefault(ExprType.of(declared), []).append(Param(name))
        if scope.allow_actor:
            self.names.setdefault(_PRINCIPAL, []).append(Actor())
        if scope.states:
            self.names.setdefault(ExprType("enum", scope.states), []).append(StateRef())

    # ------------------------------------------------------------------ helpers

    def pick(self, options: list[Callable[[int], Node]], depth: int) -> Node:
        """Call one of ``options``; the first is the leaf, where shrinking heads."""
        if depth <= 0:
            return options[0](depth)
        index = self.draw(st.integers(0, len(options) - 1))
        return options[index](depth - 1)

    def named(self, want: ExprType) -> list[Node]:
        return self.names.get(want, [])

    def enum_types(self) -> list[ExprType]:
        return [t for t in self.names if t.kind == "enum"]

    def set_types(self) -> list[ExprType]:
        return [t for t in self.names if t.kind == "set"]

    def numeric_kind(self) -> ExprType:
        if self.decimals:
            return self.draw(st.sampled_from([_INT, _DECIMAL]))
        return _INT

    def cond(self, depth: int) -> Node:
        return self.expr(_BOOL, depth)

    # ------------------------------------------------------------------ by type

    def expr(self, want: ExprType, depth: int) -> Node:
        kind = want.kind
        if kind == "bool":
            return self.boolean(depth)
        if kind == "int":
            return self.integer(depth)
        if kind == "decimal":
            return self.decimal(depth)
        if kind == "enum":
            return self.enum(want, depth)
        if kind == "principal":
            return self.principal(depth)
        if kind == "set":
            return self.set(want, depth)
        raise InvalidArgument(f"cannot generate expressions of type {want.describe()}")

    def leaf(self, want: ExprType, literals: list[Node]) -> Node:
        return self.draw(st.sampled_from(self.named(want) + literals))

    def boolean(self, depth: int) -> Node:
        draw = self.draw

        def leaf(_: int) -> Node:
            return self.leaf(_BOOL, [Literal(True), Literal(False)])

        def negation(d: int) -> Node:
            return Unary("not", self.cond(d))

        def boolop(d: int) -> Node:
            count = draw(st.integers(2, 3))
            return BoolOp(
                draw(st.sampled_from(["and", "or"])), tuple(self.cond(d) for _ in range(count))
            )

        def comparison(d: int) -> Node:
            kind = self.numeric_kind()
            op = draw(st.sampled_from(_COMPARISONS))
            return Compare(op, self.expr(kind, d), self.expr(self.numeric_kind(), d))

        def chain(d: int) -> Node:
            # `a < b <= c` parses as the `and` of its pairs, sharing the middle operand.
            first, middle, last = (self.expr(self.numeric_kind(), d) for _ in range(3))
            op1, op2 = draw(st.sampled_from(_COMPARISONS)), draw(st.sampled_from(_COMPARISONS))
            return BoolOp("and", (Compare(op1, first, middle), Compare(op2, middle, last)))

        def equality(d: int) -> Node:
            op = draw(st.sampled_from(["==", "!="]))
            choices: list[ExprType] = [_BOOL, _PRINCIPAL, *self.enum_types(), *self.set_types()]
            kind = draw(st.sampled_from(choices))
            return Compare(op, self.expr(kind, d), self.expr(kind, d))

        def membership(d: int) -> Node:
            op = draw(st.sampled_from(["in", "not in"]))
            choices: list[ExprType] = [self.numeric_kind(), _PRINCIPAL, *self.enum_types()]
            kind = draw(st.sampled_from(choices))
            sets = [t for t in self.set_types() if t.elem == kind]
            use_set: bool = draw(st.booleans())
            if sets and use_set:
                return Compare(op, self.expr(kind, d), self.expr(draw(st.sampled_from(sets)), d))
            count = draw(st.integers(0, 3))
            items = tuple(self.expr(kind, d) for _ in range(count))
            return Compare(op, self.expr(kind, d), ListExpr(items))

        def conditional(d: int) -> Node:
            return Conditional(self.cond(d), self.cond(d), self.cond(d))

        def implies(d: int) -> Node:
            return Call("implies", (self.cond(d), self.cond(d)))

        options = [
            leaf,
            negation,
            boolop,
            comparison,
            chain,
            equality,
            membership,
            conditional,
            implies,
        ]
        return self.pick(options, depth)

    def integer(self, depth: int) -> Node:
        draw = self.draw

        def leaf(_: int) -> Node:
            return self.leaf(_INT, [Literal(v) for v in (0, 1, 2, 3, -1, -2)])

        def negation(d: int) -> Node:
            return _negate(self.integer(d))

        def binary(d: int) -> Node:
            return Binary(draw(st.sampled_from(_ARITHMETIC)), self.integer(d), self.integer(d))

        def conditional(d: int) -> Node:
            return Conditional(self.cond(d), self.integer(d), self.integer(d))

        def extremum(d: int) -> Node:
            count = draw(st.integers(2, 3))
            return Call(
                draw(st.sampled_from(["min", "max"])), tuple(self.integer(d) for _ in range(count))
            )

        def absolute(d: int) -> Node:
            return Call("abs", (self.integer(d),))

        def length(d: int) -> Node:
            choices: list[ExprType] = [_INT, *self.enum_types(), *self.set_types()]
            kind = draw(st.sampled_from(choices))
            if kind.kind == "set":
                return Call("len", (self.set(kind, d),))
            count = draw(st.integers(0, 3))
            return Call("len", (ListExpr(tuple(self.expr(kind, d) for _ in range(count))),))

        return self.pick([leaf, negation, binary, conditional, extremum, absolute, length], depth)

    def decimal(self, depth: int) -> Node:
        """A tree whose type is exactly decimal: every operation has a decimal operand."""
        draw = self.draw

        def leaf(_: int) -> Node:
            return self.leaf(_DECIMAL, [Literal(v) for v in DECIMALS])

        def number(d: int) -> Node:
            return self.expr(self.numeric_kind(), d)

        def negation(d: int) -> Node:
            return _negate(self.decimal(d))

        def binary(d: int) -> Node:
            op = draw(st.sampled_from(["+", "-", "*"]))
            pair = [self.decimal(d), number(d)]
            if draw(st.booleans()):
                pair.reverse()
            return Binary(op, pair[0], pair[1])

        def conditional(d: int) -> Node:
            branches = [self.decimal(d), number(d)]
            if draw(st.booleans()):
                branches.reverse()
            return Conditional(self.cond(d), branches[0], branches[1])

        def extremum(d: int) -> Node:
            args = (self.decimal(d), *(number(d) for _ in range(draw(st.integers(1, 2)))))
            return Call(draw(st.sampled_from(["min", "max"])), args)

        def absolute(d: int) -> Node:
            return Call("abs", (self.decimal(d),))

        return self.pick([leaf, negation, binary, conditional, extremum, absolute], depth)

    def enum(self, want: ExprType, depth: int) -> Node:
        def leaf(_: int) -> Node:
            return self.leaf(want, [Literal(v) for v in want.values])

        def conditional(d: int) -> Node:
            return Conditional(self.cond(d), self.enum(want, d), self.enum(want, d))

        return self.pick([leaf, conditional], depth)

    def principal(self, depth: int) -> Node:
        def leaf(_: int) -> Node:
            return self.leaf(_PRINCIPAL, [Literal(None)])

        def conditional(d: int) -> Node:
            return Conditional(self.cond(d), self.principal(d), self.principal(d))

        return self.pick([leaf, conditional], depth)

    def set(self, want: ExprType, depth: int) -> Node:
        assert want.elem is not None
        elem = want.elem

        def leaf(_: int) -> Node:
            named = self.named(want)
            use_name: bool = self.draw(st.booleans())
            if named and use_name:
                return self.draw(st.sampled_from(named))
            chosen = self.draw(
                st.lists(st.sampled_from(elem.values), max_size=len(elem.values), unique=True)
            )
            return ListExpr(tuple(Literal(v) for v in chosen))

        def conditional(d: int) -> Node:
            return Conditional(self.cond(d), self.set(want, d), self.set(want, d))

        return self.pick([leaf, conditional], depth)


def _want(kind: str | ExprType | Type, scope: Scope, draw: st.DrawFn) -> ExprType:
    if isinstance(kind, ExprType):
        return kind
    if isinstance(kind, Type):
        return ExprType.of(kind)
    if kind == "enum":
        declared = [
            t
            for t in (*scope.variables.values(), *(scope.params or {}).values())
            if t.kind == "enum"
        ]
        options = [ExprType.of(t) for t in declared]
        if scope.states:
            options.append(ExprType("enum", scope.states))
        if not options:
            options.append(ExprType("enum", ENUM_VALUES[:2]))
        return draw(st.sampled_from(options))
    if kind in ("bool", "int", "decimal", "principal"):
        return ExprType(kind)
    raise InvalidArgument(f"cannot generate expressions of type {kind!r}")


def expressions(
    scope: Scope,
    type: str | ExprType | Type = "bool",
    *,
    max_depth: int = 4,
    decimals: bool = True,
) -> st.SearchStrategy[Node]:
    """Well-typed, canonical expression trees over ``scope``.

    ``type`` is ``"bool"``, ``"int"``, ``"decimal"``, ``"principal"``, ``"enum"`` (one of the
    scope's enum types, the states included), an :class:`~railguard.spec.expr.ExprType` or a
    declared :class:`~railguard.spec.Type` (an enum or a set of enums, say). ``check`` gives
    exactly that type for bool, int and decimal; for an enum, a set or a principal it gives a
    type assignable to it (``"a" if c else "b"`` is literal text of an enum's values; a tree
    made only of ``None`` is of type ``none``). Every operator of the language occurs:
    ``and or not``, comparisons (chained too), ``in``/``not in`` lists and sets, ``+ - * //
    %``, ``if``/``else``, ``implies min max abs len``, ``params.x``, ``actor`` and ``state``.
    Trees reach at most ``max_depth`` operators deep. With ``decimals`` false, decimals occur
    only where the scope or the requested type brings them.
    """
    if max_depth < 0:
        raise InvalidArgument("max_depth must be at least 0")

    @st.composite
    def build(draw: st.DrawFn) -> Node:
        want = _want(type, scope, draw)
        depth = draw(st.integers(0, max_depth))
        has_decimals = want.kind == "decimal" or any(
            t.kind == "decimal" for t in (*scope.variables.values(), *(scope.params or {}).values())
        )
        return _Generator(draw, scope, decimals=decimals or has_decimals).expr(want, depth)

    return build()


# --------------------------------------------------------------------------- specs


def _text(draw: st.DrawFn) -> str:
    # Descriptions: any text a YAML or JSON file can carry (no lone surrogates).
    alphabet = st.characters(exclude_categories=["Cs"])
    return draw(st.text(alphabet, min_size=1, max_size=12))


def _value_data(value: Value) -> Any:
    """A value as plain document data (decimals as text, sets as lists)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset):
        return sorted(value, key=str)
    return value


def _type_data(declared: Type) -> dict[str, Any]:
    data: dict[str, Any] = {"type": declared.kind}
    if declared.min is not None:
        data["min"] = _value_data(declared.min)
    if declared.max is not None:
        data["max"] = _value_data(declared.max)
    if declared.places is not None:
        data["places"] = declared.places
    if declared.values:
        data["values"] = list(declared.values)
    if declared.of is not None:
        data["of"] = _type_data(declared.of)
    if declared.max_size is not None:
        data["max_size"] = declared.max_size
    return data


@dataclass
class _Signature:
    """The params of one event: declared types, their document form, whether any is required."""

    params: dict[str, Type] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)
    required: bool = False


def _copy_data(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_data(v) for v in value]
    return value


def _transition_document(
    draw: st.DrawFn,
    variables: Mapping[str, Type],
    states: list[str],
    active: list[str],
    permissions: list[str],
    event_pool: list[str],
    index: int,
    max_params: int,
    param_kinds: list[str],
    int_range: tuple[int, int],
    decimals: bool,
    max_depth: int,
    signatures: dict[str, _Signature],
    events_from: dict[str, set[str]],
) -> dict[str, Any]:
    """One transition; records its event's params and, per source state, its event."""
    event = draw(st.sampled_from(event_pool))
    sources = draw(st.lists(st.sampled_from(active), min_size=1, max_size=2, unique=True))
    body: dict[str, Any] = {
        "event": event,
        "from": sources[0] if len(sources) == 1 and draw(st.booleans()) else sources,
        "to": draw(st.sampled_from(states)),
        "permission": draw(st.sampled_from([*permissions, "public"])),
    }
    signature = signatures.get(event)
    if signature is None:
        # Every transition of an event takes the same params (the runtime checks them per event).
        signature = signatures[event] = _Signature()
        for i in range(draw(st.integers(0, max_params))):
            declared = _declared(draw, draw(st.sampled_from(param_kinds)), int_range)
            pbody = _type_data(declared)
            if draw(st.booleans()):
                pbody["default"] = _value_data(draw(values(declared)))
            else:
                signature.required = True
            signature.params[f"p{i}"] = declared
            signature.documents[f"p{i}"] = pbody
    if signature.documents:
        body["params"] = _copy_data(signature.documents)
    scope = Scope(variables, tuple(states), signature.params, allow_actor=True)
    generator = _Generator(draw, scope, decimals=decimals)
    if draw(st.booleans()):
        body["guard"] = unparse(generator.expr(_BOOL, draw(st.integers(0, max_depth))))
    targets: list[str] = []
    if variables:
        targets = draw(st.lists(st.sampled_from(sorted(variables)), unique=True))
    if targets:
        body["assign"] = {
            name: unparse(
                generator.expr(ExprType.of(variables[name]), draw(st.integers(0, max_depth)))
            )
            for name in targets
        }
    effect = draw(st.integers(0, 3))
    if effect:
        body["effect"] = f"svc.effect{index}"
        if effect == 2:
            body["compensate"] = f"svc.undo{index}"
        elif effect == 3:
            body["irreversible"] = True
    if draw(st.integers(0, 4)) == 0:
        body["description"] = _text(draw)
    for source in sources:
        events_from.setdefault(source, set()).add(event)
    return body


@st.composite
def _spec_document(
    draw: st.DrawFn,
    max_states: int,
    max_vars: int,
    max_transitions: int,
    max_params: int,
    max_roles: int,
    invariants: bool,
    sets: bool,
    decimals: bool,
    int_range: tuple[int, int],
    max_depth: int,
) -> dict[str, Any]:
    doc: dict[str, Any] = {"railguard": 1}
    doc["name"] = draw(st.sampled_from(["generated", "gen.flow", "gen-2:a"]))
    if draw(st.booleans()):
        doc["description"] = _text(draw)

    # roles and permissions
    permissions = [f"perm.{i}" for i in range(draw(st.integers(1, 4)))]
    role_names = [f"role{i}" for i in range(draw(st.integers(1, max_roles)))]
    roles = {
        name: draw(st.lists(st.sampled_from(permissions), max_size=len(permissions), unique=True))
        for name in role_names
    }
    doc["roles"] = roles

    # variables
    kinds = _kinds(sets=sets, decimals=decimals)
    variables: dict[str, Type] = {}
    var_docs: dict[str, Any] = {}
    for i in range(draw(st.integers(0, max_vars))):
        name = f"x{i}"
        declared = _declared(draw, draw(st.sampled_from(kinds)), int_range)
        var_doc = _type_data(declared)
        if declared.kind != "principal":
            var_doc["initial"] = _value_data(draw(values(declared)))
        elif draw(st.booleans()):
            var_doc["initial"] = None
        if draw(st.integers(0, 4)) == 0:
            var_doc["description"] = _text(draw)
        variables[name] = declared
        var_docs[name] = var_doc
    doc["variables"] = var_docs

    # states: one initial, at least one success and one failure terminal
    count = draw(st.integers(3, max_states))
    extra = [draw(st.sampled_from([None, None, "success", "failure"])) for _ in range(count - 3)]
    roles_of_states: list[str | None] = ["initial", "success", "failure", *extra]
    order = draw(st.permutations(range(count)))
    states = [f"s{i}" for i in range(count)]
    kind_of = {states[order[i]]: roles_of_states[i] for i in range(count)}
    failures = [s for s in states if kind_of[s] == "failure"]
    active = [s for s in states if kind_of[s] in (None, "initial")]
    state_docs: dict[str, Any] = {}
    for state in states:
        body: dict[str, Any] = {}
        role = kind_of[state]
        if role == "initial":
            body["initial"] = True
        elif role is not None:
            body["terminal"] = role
        if role in (None, "initial") and draw(st.integers(0, 3)) == 0:
            body["on_error"] = draw(st.sampled_from(failures))
        state_docs[state] = body
    doc["states"] = state_docs
    doc["on_error"] = draw(st.sampled_from(failures))

    # transitions
    event_pool = [f"ev{i}" for i in range(max(1, (max_transitions + 1) // 2))]
    param_kinds = _kinds(sets=False, decimals=decimals, principals=False)
    transitions: list[dict[str, Any]] = []
    signatures: dict[str, _Signature] = {}
    events_from: dict[str, set[str]] = {}
    for _ in range(draw(st.integers(0, max_transitions))):
        transitions.append(
            _transition_document(
                draw,
                variables,
                states,
                active,
                permissions,
                event_pool,
                len(transitions),
                max_params,
                param_kinds,
                int_range,
                decimals,
                max_depth,
                signatures,
                events_from,
            )
        )
    doc["transitions"] = transitions

    # timeouts: the error exit, or an event the system can fire from that state
    for state in active:
        if draw(st.integers(0, 3)) != 0:
            continue
        timeout: dict[str, Any] = {
            "after": draw(st.sampled_from(["15m", "1h30m", "45s", "2d", 90]))
        }
        usable = sorted(e for e in events_from.get(state, set()) if not signatures[e].required)
        with_event: bool = draw(st.booleans())
        if usable and with_event:
            timeout["event"] = draw(st.sampled_from(usable))
        state_docs[state]["timeout"] = timeout

    # invariants
    if invariants:
        scope = Scope(variables, tuple(states))
        generator = _Generator(draw, scope, decimals=decimals)
        events = sorted({t["event"] for t in transitions})
        items: list[dict[str, Any]] = []
        for i in range(draw(st.integers(0, 3))):
            kinds_of_invariant = ["always", "never"] + (["precedes"] if events else [])
            kind = draw(st.sampled_from(kinds_of_invariant))
            item: dict[str, Any] = {"name": f"inv-{i}"}
            if kind == "precedes":
                item["precedes"] = {
                    "first": draw(st.sampled_from(events)),
                    "then": draw(st.sampled_from(events)),
                }
            else:
                item[kind] = unparse(generator.expr(_BOOL, draw(st.integers(0, max_depth))))
            items.append(item)
        if items:
            doc["invariants"] = items

    if len(role_names) >= 2 and draw(st.integers(0, 3)) == 0:
        doc["exclusive_roles"] = [
            draw(st.lists(st.sampled_from(role_names), min_size=2, max_size=2, unique=True))
        ]
    if draw(st.integers(0, 4)) == 0:
        reason = "because " + _text(draw)
        doc["waivers"] = [
            {
                "check": "structure.reachable",
                "target": draw(st.sampled_from(states)),
                "reason": reason,
            }
        ]
    return doc


def specs(
    max_states: int = 6,
    max_vars: int = 3,
    max_transitions: int = 10,
    *,
    max_params: int = 2,
    max_roles: int = 3,
    invariants: bool = True,
    sets: bool = False,
    decimals: bool = False,
    int_range: tuple[int, int] = (0, 3),
    max_depth: int = 3,
) -> st.SearchStrategy[dict[str, Any]]:
    """Spec documents (plain data in the YAML format) that :func:`~railguard.spec.load_data` accepts.

    Each has roles with permissions; up to ``max_vars`` variables ``x0, ...`` of finite types
    (ints within ``int_range``, bools, enums, principals; sets of enums with ``sets``,
    decimals with ``decimals``) with initial values in their domains; 3 to ``max_states``
    states ``s0, ...`` with exactly one initial, at least one success and one failure
    terminal, and ``on_error`` a failure terminal; up to ``max_transitions`` transitions from
    non-terminal states, with params, guards and assignments that are generated well-typed
    expressions (an assignment may leave its variable's domain: a verifier finding, not a load
    error), effects, compensations and timeouts; and, with ``invariants``, ``always``,
    ``never`` and ``precedes`` properties. Events repeat (every transition of an event takes
    the same params), so determinism can fail too.
    """
    if max_states < 3:
        raise InvalidArgument("max_states must be at least 3: an initial state and two terminals")
    if min(max_vars, max_transitions, max_params, max_depth) < 0 or max_roles < 1:
        raise InvalidArgument("the size limits must not be negative, and max_roles at least 1")
    _check_range(int_range)
    return _spec_document(
        max_states,
        max_vars,
        max_transitions,
        max_params,
        max_roles,
        invariants,
        sets,
        decimals,
        int_range,
        max_depth,
    )


def loaded_specs(**kwargs: Any) -> st.SearchStrategy[Spec]:
    """:func:`specs` mapped through :func:`~railguard.spec.load_data`; takes the same arguments."""
    return specs(**kwargs).map(load_data)


# --------------------------------------------------------------------------- deep specs


def _deep_guard(draw: st.DrawFn, bound: int, generator: _Generator, max_depth: int) -> str | None:
    """A guard that reads the counter ``c`` (most of the time), or a generated one, or none."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return None
    if choice == 1:
        return unparse(generator.expr(_BOOL, draw(st.integers(0, max_depth))))
    threshold = draw(st.integers(0, bound))
    if choice == 2:
        return f"c >= {threshold}"
    if choice == 3:
        return f"c < {threshold} or f"
    if choice == 4:
        return f'c == {threshold} and m != "hi"'
    return f"not f or c > {threshold}"


@st.composite
def _deep_spec_document(
    draw: st.DrawFn,
    min_states: int,
    max_states: int,
    max_extra_vars: int,
    max_counter: int,
    max_depth: int,
    principals: bool,
) -> dict[str, Any]:
    bound = draw(st.integers(2, max_counter))
    count = draw(st.integers(min_states, max_states))
    chain = [f"s{i}" for i in range(count)]
    terminals = {"done": {"terminal": "success"}, "failed": {"terminal": "failure"}}
    states = [*chain, *terminals]
    variables: dict[str, Type] = {
        "c": Type("int", min=0, max=bound),
        "f": Type("bool"),
        "m": Type("enum", values=("lo", "mid", "hi")),
    }
    var_docs: dict[str, Any] = {
        "c": {"type": "int", "min": 0, "max": bound, "initial": 0},
        "f": {"type": "bool", "initial": False},
        "m": {"type": "enum", "values": ["lo", "mid", "hi"], "initial": "lo"},
    }
    if principals:
        variables["who"] = Type("principal")
        var_docs["who"] = {"type": "principal"}
    for i in range(draw(st.integers(0, max_extra_vars))):
        declared = _declared(draw, draw(st.sampled_from(["int", "bool", "enum"])), (0, 2))
        variables[f"x{i}"] = declared
        var_docs[f"x{i}"] = {**_type_data(declared), "initial": _value_data(draw(values(declared)))}
    roles = {"worker": ["work"], "boss": ["work", "approve"], "clerk": ["approve"]}
    scope = Scope(variables, tuple(states), {}, allow_actor=True)
    generator = _Generator(draw, scope, decimals=False)
    transitions: list[dict[str, Any]] = []

    def add(event: str, sources: list[str], target: str, *, permission: str = "work", guard: str | None = None, assign: dict[str, str] | None = None) -> None:
        body: dict[str, Any] = {"event": event, "from": sources[0] if len(sources) == 1 else sources, "to": target, "permission": permission}
        if guard is not None:
            body["guard"] = guard
        if assign:
            body["assign"] = assign
        transitions.append(body)

    # The spine: `next` moves one state along, gated by the counter, often resetting it, so
    # that reaching the end takes many increments; a second `next` from the same state (its
    # guard usually the complement) moves back, so one event has several transitions.
    for i in range(count - 1):
        source, target = chain[i], chain[i + 1]
        threshold = draw(st.integers(0, bound))
        reset = draw(st.sampled_from(["0", "c", "max(c - 1, 0)", "c // 2"]))
        assign = {"c": reset} if reset != "c" else {}
        if draw(st.booleans()):
            assign["m"] = draw(st.sampled_from(['"mid"', f'"hi" if c == {bound} else m', "m"]))
        add("next", [source], target, guard=f"c >= {threshold}", assign=assign)
        if i > 0 and draw(st.integers(0, 2)) == 0:
            back = chain[draw(st.integers(0, i - 1))]
            guard = draw(st.sampled_from([f"c < {threshold}", f"c <= {threshold}", "f"]))
            add("next", [source], back, guard=guard, assign={"f": "not f"})
    # Self-loops that count up (guarded, or not: then an increment can leave the domain).
    guarded = draw(st.integers(0, 4)) != 0
    for number, source in enumerate(chain):
        if number == 0 or draw(st.integers(0, 3)) != 0:
            add("inc", [source], source, guard=f"c < {bound}" if guarded else None, assign={"c": "c + 1"})
    flip_sources = draw(st.lists(st.sampled_from(chain), max_size=3, unique=True))
    for source in flip_sources:
        add("flip", [source], source, permission=draw(st.sampled_from(["work", "approve"])),
            guard=_deep_guard(draw, bound, generator, max_depth), assign={"f": "not f", "m": '"lo" if f else m'})
    if principals:
        claim = draw(st.sampled_from(chain[:-1] or chain))
        add("claim", [claim], claim, assign={"who": "actor"})
        add("check", [chain[-1]], chain[-1], permission="approve", guard="actor != who", assign={"f": "True"})
    # Random transitions whose guards and assignments come from the expression generator.
    for _ in range(draw(st.integers(0, 3))):
        source = draw(st.sampled_from(chain))
        target = draw(st.sampled_from(states))
        extra: dict[str, str] = {}
        for name in draw(st.lists(st.sampled_from(sorted(variables)), max_size=2, unique=True)):
            tree = generator.expr(ExprType.of(variables[name]), draw(st.integers(0, max_depth)))
            extra[name] = unparse(tree)
        add(draw(st.sampled_from(["jump", "inc", "next"])), [source], target,
            permission=draw(st.sampled_from(["work", "approve", "public"])),
            guard=_deep_guard(draw, bound, generator, max_depth), assign=extra)
    add("finish", [chain[-1]], "done", permission="approve", guard=draw(st.sampled_from([None, "f", f"c >= {bound - 1}"])))
    abort_sources = draw(st.lists(st.sampled_from(chain), min_size=1, max_size=count, unique=True))
    add("abort", abort_sources, "failed")

    # Invariants that fail (if at all) only deep in a run: at the end of the chain with the
    # counter high, or a `precedes` pair whose `first` happens on the way.
    firsts = sorted({t["event"] for t in transitions} & {"flip", "inc", "claim", "check", "jump"})
    end_condition = draw(st.sampled_from(["f", "c >= 1", 'm != "lo"', "not f"]))
    invariants: list[dict[str, Any]] = [
        {"name": "deep-never", "never": f'state == "{chain[-1]}" and c == {draw(st.integers(1, bound))}'},
        {"name": "deep-always", "always": f'implies(state in ["{chain[-1]}", "done"], {end_condition})'},
        {"name": "deep-precedes", "precedes": {"first": draw(st.sampled_from(firsts)), "then": "finish"}},
    ]
    if draw(st.booleans()):
        invariants.append({"name": "generated", draw(st.sampled_from(["always", "never"])): unparse(
            _Generator(draw, Scope(variables, tuple(states)), decimals=False).expr(_BOOL, draw(st.integers(0, max_depth))))})
    return {
        "railguard": 1,
        "name": "deep",
        "roles": roles,
        "variables": var_docs,
        "states": {chain[0]: {"initial": True}, **{s: {} for s in chain[1:]}, **terminals},
        "on_error": "failed",
        "transitions": transitions,
        "invariants": invariants,
    }


def deep_specs(
    min_states: int = 5,
    max_states: int = 8,
    *,
    max_extra_vars: int = 1,
    max_counter: int = 4,
    max_depth: int = 2,
    principals: bool = True,
) -> st.SearchStrategy[dict[str, Any]]:
    """Spec documents with long runs: ``min_states`` to ``max_states`` non-terminal states in a
    chain ``s0 -> s1 -> ...`` (plus ``done`` and ``failed``), and variables that gate it.

    A counter ``c`` (``0..bound``, bound at most ``max_counter``), a flag ``f`` and an enum ``m``
    are read by the guards and written by the assignments: ``next`` moves along the chain once
    ``c`` reaches a threshold and often resets it; ``inc`` self-loops count ``c`` up (sometimes
    unguarded, so an increment can leave the domain); ``next`` may also lead back, so one event
    has several transitions from one state (which may overlap: nondeterminism); ``flip`` self-loops
    toggle ``f``; with ``principals``, ``claim`` stores the actor and a later ``check`` requires a
    different one. A few more transitions come from the expression generator, as does one
    invariant at most. The invariants ``deep-never``, ``deep-always`` and ``deep-precedes`` can
    only fail at the end of the chain, so a violation takes many steps (six or more when the
    chain and the thresholds are long). Every document loads with :func:`~railguard.spec.load_data`
    and is finite, so explicit search can check what the verifier says.
    """
    if min_states < 2 or max_states < min_states:
        raise InvalidArgument("deep specs need min_states >= 2 and max_states >= min_states")
    if max_counter < 2 or max_extra_vars < 0 or max_depth < 0:
        raise InvalidArgument("max_counter must be at least 2; the other limits must not be negative")
    return _deep_spec_document(min_states, max_states, max_extra_vars, max_counter, max_depth, principals)


# --------------------------------------------------------------------------- runs and plans


@dataclass(frozen=True, slots=True)
class Action:
    """One step a test takes: ``event`` fired by ``actor`` with ``params``; ``kind`` is
    ``"error"`` for the error exit (an effect failed, an operator aborted)."""

    event: str
    actor: str
    params: Mapping[str, Value] = field(default_factory=dict)
    kind: str = "step"

    def to_data(self) -> dict[str, Any]:
        """The step as plan data (values encoded with :mod:`railguard.spec.codec`)."""
        from railguard.spec.codec import encode_values

        if self.kind == "error":
            return {"event": "error", "actor": self.actor}
        data: dict[str, Any] = {"event": self.event, "actor": self.actor}
        if self.params:
            data["params"] = encode_values(self.params)
        return data


def default_principals(spec: Spec) -> dict[str, frozenset[str]]:
    """A directory for tests: two principals per role (``<role>-1``, ``<role>-2``), two holding
    every role ``exclusive_roles`` allows together (``all-1``, ``all-2``), and ``nobody``."""
    principals: dict[str, frozenset[str]] = {}
    for role in spec.roles:
        for n in (1, 2):
            principals[f"{role.name}-{n}"] = frozenset({role.name})
    everything: set[str] = set()
    for role in spec.roles:
        if not any(role.name in group and everything & set(group) for group in spec.exclusive_roles):
            everything.add(role.name)
    principals["all-1"] = principals["all-2"] = frozenset(everything)
    principals["nobody"] = frozenset()
    return principals


def _signature_of(spec: Spec, event: str) -> tuple[Any, ...]:
    for transition in spec.transitions:
        if transition.event == event:
            return transition.params
    return ()


def _int_literals(spec: Spec) -> set[int]:
    """The int literals of the spec's guards, assignments and invariants: boundaries worth trying."""
    found: set[int] = set()
    trees = [t.guard.tree for t in spec.transitions if t.guard is not None]
    trees += [e.tree for t in spec.transitions for _, e in t.assign]
    trees += [i.expr.tree for i in spec.invariants if i.expr is not None]
    stack: list[Any] = list(trees)
    while stack:
        node = stack.pop()
        if isinstance(node, Literal):
            if isinstance(node.value, int) and not isinstance(node.value, bool):
                found.add(node.value)
            continue
        for item in fields(node):
            value = getattr(node, item.name)
            if isinstance(value, Node):
                stack.append(value)
            elif isinstance(value, tuple):
                stack.extend(v for v in value if isinstance(v, Node))
    return found


def params(spec: Spec, event: str, *, valid: bool = True) -> st.SearchStrategy[dict[str, Value]]:
    """Params of ``event`` drawn from their declared domains (optional ones sometimes left out);
    an int param also takes the int literals of the spec's expressions and their neighbours,
    so boundaries such as ``params.amount <= 5000`` are tried.

    With ``valid`` false the params may also be outside the signature: a value just outside
    a declared int range, a required param missing, or an unknown name.
    """
    signature = _signature_of(spec, event)
    literals = _int_literals(spec)
    domains: dict[str, st.SearchStrategy[Value]] = {}
    for param in signature:
        domains[param.name] = values(param.type)
        if param.type.kind == "int":
            near = sorted({v + d for v in literals for d in (-1, 0, 1) if param.type.contains(v + d)})
            if near:
                domains[param.name] = domains[param.name] | st.sampled_from(near)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Value]:
        out: dict[str, Value] = {}
        for param in signature:
            if not param.required and draw(st.integers(0, 3)) == 0:
                continue
            out[param.name] = draw(domains[param.name])
        if not valid:
            broken = draw(st.integers(0, 2))
            ints = [p for p in signature if p.type.kind == "int" and (p.type.min is not None or p.type.max is not None)]
            required = [p for p in signature if p.required]
            if broken == 0 and ints:
                param = draw(st.sampled_from(ints))
                limit = param.type.min if param.type.min is not None else param.type.max
                assert limit is not None
                out[param.name] = int(limit) - 1 if param.type.min is not None else int(limit) + 1
            elif broken == 1 and required:
                out.pop(draw(st.sampled_from(required)).name, None)
            else:
                out["unknown_param"] = 0
        return out

    return build()


class _ActionSpace:
    """The action strategies of one spec and directory, built once per state."""

    def __init__(self, spec: Spec, directory: Mapping[str, frozenset[str]], errors: bool) -> None:
        self.spec = spec
        self.errors = errors
        self.names = sorted(directory)
        self.events = list(spec.events)
        self.valid = {event: params(spec, event) for event in self.events}
        self.any_params = {event: params(spec, event) | params(spec, event, valid=False) for event in self.events}
        self.granted: dict[int, list[str]] = {}
        self.denied: dict[int, list[str]] = {}
        for t in spec.transitions:
            ok = [n for n in self.names if t.permission == "public" or any(t.permission in spec.role_map[r].permissions for r in directory[n] if r in spec.role_map)]
            self.granted[t.index] = ok
            self.denied[t.index] = [n for n in self.names if n not in ok]
        self.cache: dict[tuple[str | None, Any], st.SearchStrategy[Action]] = {}

    def split(self, state: str, values: Mapping[str, Value], avoid: frozenset[int]) -> tuple[tuple[tuple[int, tuple[str, ...]], ...], tuple[tuple[int, tuple[str, ...]], ...]]:
        """The transitions from ``state`` whose guard holds on ``values``, each with the
        principals holding its permission for whom it holds, and those with principals for whom
        it is false. A guard that reads ``params`` counts as both (some params decide); the
        transitions in ``avoid`` are left out of the first."""
        holding: list[tuple[int, tuple[str, ...]]] = []
        failing: list[tuple[int, tuple[str, ...]]] = []
        for t in self.spec.transitions_from(state):
            granted = tuple(self.granted[t.index] or self.names)
            if t.guard is None:
                yes: tuple[str, ...] = granted
                no: tuple[str, ...] = ()
            else:
                guard = self.spec.compiled(t.guard)
                try:
                    yes = tuple(n for n in granted if guard(values, {}, n, state))
                    no = tuple(n for n in granted if n not in yes)
                except (EvaluationError, KeyError):  # it reads params: let the step find out
                    yes = no = granted
            if yes and t.index not in avoid:
                holding.append((t.index, yes))
            if no:
                failing.append((t.index, no))
        return tuple(holding), tuple(failing)

    def at(self, state: str | None, values: Mapping[str, Value] | None = None, avoid: frozenset[int] = frozenset()) -> st.SearchStrategy[Action]:
        split = self.split(state, values, avoid) if state is not None and values is not None else None
        key = (state, split)
        found = self.cache.get(key)
        if found is None:
            found = self.cache[key] = self._build(state, split)
        return found

    def _build(self, state: str | None, split: Any) -> st.SearchStrategy[Action]:
        spec, names = self.spec, self.names
        here = spec.transitions_from(state) if state is not None else ()
        options: list[st.SearchStrategy[Action]] = []
        weights: list[int] = []

        def by(transition: Any, actors: Any) -> st.SearchStrategy[Action]:
            return st.builds(Action, st.just(transition.event), st.sampled_from(list(actors)), self.valid[transition.event])

        def deep(pairs: Any) -> list[st.SearchStrategy[Action]]:
            # Steps that stay out of the terminals count thrice, so that runs go deep.
            return [
                by(spec.transitions[index - 1], actors)
                for index, actors in pairs
                for _ in range(1 if spec.state_map[spec.transitions[index - 1].target].is_terminal else 3)
            ]

        if split is not None:
            holding, failing = split
            if holding:
                options.append(st.one_of(deep(holding)))
                weights.append(10)
            if failing:
                # the guard's other outcome: off-by-one bugs and four-eyes rules live here
                options.append(st.one_of([by(spec.transitions[i - 1], actors) for i, actors in failing]))
                weights.append(4)
        if here:
            options.append(st.one_of(deep((t.index, self.granted[t.index] or names) for t in here)))
            weights.append(2 if split is not None else 10)
        denied = [by(t, self.denied[t.index]) for t in here if self.denied[t.index]]
        if denied:
            options.append(st.one_of(denied))
            weights.append(2)
        if self.events:
            options.append(st.one_of([st.builds(Action, st.just(e), st.sampled_from(names), self.any_params[e]) for e in self.events]))
            weights.append(1)
        if self.errors and state is not None and spec.error_target(state) is not None:
            options.append(st.builds(Action, st.just("error"), st.sampled_from(names), st.just({}), st.just("error")))
            weights.append(1)
        if not options:
            return st.just(Action("no-event", names[0] if names else "nobody"))
        # A weighted choice: the enabled steps come first, where shrinking heads.
        return st.one_of([option for option, weight in zip(options, weights, strict=True) for _ in range(weight)])


_SPACES: dict[tuple[int, tuple[tuple[str, frozenset[str]], ...], bool], tuple[Spec, _ActionSpace]] = {}


def actions(
    spec: Spec,
    state: str | None = None,
    principals: Mapping[str, frozenset[str]] | None = None,
    *,
    errors: bool = False,
    values: Mapping[str, Value] | None = None,
    avoid: frozenset[int] = frozenset(),
) -> st.SearchStrategy[Action]:
    """One action, mostly one that the spec allows from ``state`` (a transition from it, fired
    by a principal that holds its permission, with valid params; int params favour the spec's
    boundaries), often the same transitions by a principal that lacks the permission, and
    sometimes any event of the spec by anyone with params that may be invalid; with
    ``errors``, now and then the error exit. Given the current ``values`` too, transitions whose
    guard holds are favoured (except those in ``avoid``: swarm testing leaves some out of a run so
    that others are taken more often), and each guard's false outcome is tried too. Without
    ``state`` every event is drawn alike."""
    directory = dict(principals) if principals is not None else default_principals(spec)
    key = (id(spec), tuple(sorted(directory.items())), errors)
    cached = _SPACES.get(key)
    if cached is None or cached[0] is not spec:
        if len(_SPACES) > 256:
            _SPACES.clear()
        cached = _SPACES[key] = (spec, _ActionSpace(spec, directory, errors))
    return cached[1].at(state, values, avoid)


def runs(
    spec: Spec,
    principals: Mapping[str, frozenset[str]] | None = None,
    *,
    max_steps: int = 20,
) -> st.SearchStrategy[list[Action]]:
    """Event sequences: each action drawn by :func:`actions` from the state the reference
    semantics (:func:`railguard.spec.semantics.fire`) reaches after the previous ones, so most
    steps are accepted and runs go deep; refused steps stay in the run."""
    from railguard.spec.semantics import Fired, fire

    directory = dict(principals) if principals is not None else default_principals(spec)

    @st.composite
    def build(draw: st.DrawFn) -> list[Action]:
        state = spec.initial_state.name
        values_now = spec.initial_values()
        out: list[Action] = []
        for _ in range(draw(st.integers(0, max_steps))):
            action = draw(actions(spec, state, directory, values=values_now))
            out.append(action)
            outcome = fire(spec, state, values_now, action.event, action.actor, directory.get(action.actor, frozenset()), dict(action.params))
            if isinstance(outcome, Fired):
                state, values_now = outcome.target, dict(outcome.values)
        return out

    return build()


@dataclass(frozen=True, slots=True)
class DrawnPlan:
    """A plan for the gate and what the reference semantics says of it: ``plan`` is the data a
    planner sends (``workflow``, ``instance``, ``steps`` of ``event`` and ``params``; never the
    actor), ``actor`` and ``roles`` the authenticated caller, ``refused_at`` the index of the
    first step the spec refuses (``None`` when every step is admitted)."""

    plan: Mapping[str, Any]
    actor: str
    roles: frozenset[str]
    refused_at: int | None

    @property
    def admissible(self) -> bool:
        return self.refused_at is None


def plans(
    spec: Spec,
    *,
    admissible: bool = True,
    principals: Mapping[str, frozenset[str]] | None = None,
    max_steps: int = 8,
    instance: str = "i-1",
) -> st.SearchStrategy[DrawnPlan]:
    """Plans of one caller from the initial state: with ``admissible``, every step is one the
    spec allows in turn; without, an allowed prefix ends in one step the spec refuses."""
    from railguard.spec.codec import encode_values
    from railguard.spec.semantics import Fired, fire

    directory = dict(principals) if principals is not None else default_principals(spec)
    names = sorted(directory)

    @st.composite
    def build(draw: st.DrawFn) -> DrawnPlan:
        actor = draw(st.sampled_from(names))
        roles = directory[actor]
        one = {actor: roles}
        state = spec.initial_state.name
        values_now = spec.initial_values()
        steps: list[dict[str, Any]] = []
        refused: int | None = None
        wanted = draw(st.integers(0 if admissible else 1, max_steps))
        for _ in range(wanted * 4):
            if len(steps) >= wanted:
                break
            action = draw(actions(spec, state, one, values=values_now))
            outcome = fire(spec, state, values_now, action.event, actor, roles, dict(action.params))
            last = len(steps) == wanted - 1
            if isinstance(outcome, Fired):
                if not admissible and last:
                    continue
                steps.append({"event": action.event, "params": encode_values(action.params)})
                state, values_now = outcome.target, dict(outcome.values)
            elif not admissible and (last or draw(st.integers(0, 3)) == 0):
                steps.append({"event": action.event, "params": encode_values(action.params)})
                refused = len(steps) - 1
                break
        if not admissible and refused is None:
            steps.append({"event": "no-such-event", "params": {}})
            refused = len(steps) - 1
        return DrawnPlan({"workflow": spec.name, "instance": instance, "steps": steps}, actor, roles, refused)

    return build()
