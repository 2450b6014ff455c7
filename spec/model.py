"""The spec model: immutable values built by the loaders and the builder, never by hand.

Every class is a frozen dataclass with generated equality. Source positions are kept in
:attr:`Spec.locations`, which takes no part in equality or the content hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from .errors import Location
from .expr import Node, unparse
from .types import Type, Value

if TYPE_CHECKING:
    from .evaluate import Compiled

__all__ = [
    "Expression",
    "Invariant",
    "Parameter",
    "Role",
    "Spec",
    "State",
    "Timeout",
    "Transition",
    "Variable",
    "Waiver",
]

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed, type-checked expression. Equal when the trees are equal."""

    tree: Node
    source: str = field(compare=False)

    @property
    def text(self) -> str:
        """The canonical text of the expression."""
        return unparse(self.tree)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Role:
    """A role and the permissions it grants."""

    name: str
    permissions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Variable:
    """A typed variable. A ``context`` variable is supplied when an instance starts and is read-only."""

    name: str
    type: Type
    initial: Value = None
    context: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Parameter:
    """A typed event parameter; ``required`` is false when it has a ``default``."""

    name: str
    type: Type
    required: bool = True
    default: Value = None


@dataclass(frozen=True, slots=True)
class Timeout:
    """A state timeout: after ``seconds``, fire ``event`` as the system, or take the error exit."""

    seconds: int
    event: str | None = None


@dataclass(frozen=True, slots=True)
class State:
    """A state. ``terminal`` is ``"success"``, ``"failure"`` or ``None``."""

    name: str
    initial: bool = False
    terminal: Literal["success", "failure"] | None = None
    on_error: str | None = None
    timeout: Timeout | None = None
    description: str = ""

    @property
    def is_terminal(self) -> bool:
        return self.terminal is not None


@dataclass(frozen=True, slots=True)
class Transition:
    """A transition, numbered from 1 in source order (``index``)."""

    index: int
    event: str
    sources: tuple[str, ...]
    target: str
    permission: str
    params: tuple[Parameter, ...] = ()
    guard: Expression | None = None
    assign: tuple[tuple[str, Expression], ...] = ()
    effect: str | None = None
    compensate: str | None = None
    irreversible: bool = False
    description: str = ""

    @property
    def label(self) -> str:
        """``transition 3 (`approve`)``: how messages name this transition."""
        return f"transition {self.index} (`{self.event}`)"

    @property
    def is_self_loop(self) -> bool:
        return self.sources == (self.target,)

    def param(self, name: str) -> Parameter | None:
        for param in self.params:
            if param.name == name:
                return param
        return None


@dataclass(frozen=True, slots=True)
class Invariant:
    """A named property: ``always``/``never`` carry ``expr``; ``precedes`` carries ``first``/``then``."""

    name: str
    kind: Literal["always", "never", "precedes"]
    expr: Expression | None = None
    first: str | None = None
    then: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Waiver:
    """A written exception: ``check`` (a rule id) is waived for ``target`` (a state, transition or property)."""

    check: str
    target: str
    reason: str


@dataclass(frozen=True)
class Spec:
    """A loaded, validated workflow spec."""

    name: str
    description: str
    roles: tuple[Role, ...]
    variables: tuple[Variable, ...]
    states: tuple[State, ...]
    transitions: tuple[Transition, ...]
    invariants: tuple[Invariant, ...] = ()
    on_error: str | None = None
    exclusive_roles: tuple[tuple[str, ...], ...] = ()
    waivers: tuple[Waiver, ...] = ()
    version: int = FORMAT_VERSION
    source: str = field(default="<spec>", compare=False)
    locations: Mapping[tuple[str | int, ...], Location] = field(
        default_factory=dict, compare=False, repr=False
    )

    # ------------------------------------------------------------------ lookups

    @cached_property
    def state_map(self) -> Mapping[str, State]:
        return {s.name: s for s in self.states}

    @cached_property
    def variable_map(self) -> Mapping[str, Variable]:
        return {v.name: v for v in self.variables}

    @cached_property
    def role_map(self) -> Mapping[str, Role]:
        return {r.name: r for r in self.roles}

    @property
    def initial_state(self) -> State:
        return next(s for s in self.states if s.initial)

    @property
    def terminal_states(self) -> tuple[State, ...]:
        return tuple(s for s in self.states if s.terminal is not None)

    @property
    def events(self) -> tuple[str, ...]:
        """Every event name, in order of first declaration."""
        return tuple(dict.fromkeys(t.event for t in self.transitions))

    @property
    def permissions(self) -> tuple[str, ...]:
        """Every permission some role grants, in declaration order."""
        return tuple(dict.fromkeys(p for r in self.roles for p in r.permissions))

    def error_target(self, state: str) -> str | None:
        """Where an instance in ``state`` goes on an error exit (state override, else ``on_error``)."""
        declared = self.state_map[state]
        if declared.terminal is not None:
            return None
        return declared.on_error or self.on_error

    def transitions_from(self, state: str) -> tuple[Transition, ...]:
        return tuple(t for t in self.transitions if state in t.sources)

    def location(self, *path: str | int) -> Location:
        """The source location of ``path`` (or its nearest recorded ancestor)."""
        key = tuple(path)
        while key:
            found = self.locations.get(key)
            if found is not None:
                return found
            key = key[:-1]
        return self.locations.get((), Location(self.source))

    def initial_values(self) -> dict[str, Value]:
        """The values of the variables when an instance starts (context variables: their default)."""
        return {v.name: v.initial for v in self.variables}

    # ------------------------------------------------------------------ derived

    @cached_property
    def content_hash(self) -> str:
        """``sha256:<hex>`` of the canonical JSON dump; independent of formatting and key order."""
        from .dump import content_hash

        return content_hash(self)

    def compiled(self, expression: Expression) -> Compiled:
        """The runtime closure for ``expression`` (cached per spec)."""
        # Keyed by identity: hashing a tree on every evaluation would cost more than the guard.
        cache = self._compiled_cache
        entry = cache.get(id(expression))
        if entry is None or entry[0] is not expression:
            from .evaluate import compile_expression

            entry = cache[id(expression)] = (expression, compile_expression(expression.tree))
        return entry[1]

    @cached_property
    def _compiled_cache(self) -> dict[int, tuple[Expression, Compiled]]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The canonical plain-data form (see :func:`railguard.spec.dump_data`)."""
        from .dump import dump_data

        return dump_data(self)

    def _repr_svg_(self) -> str:
        """Jupyter shows a spec as its state diagram."""
        from .diagram import render

        return render(self, "svg").decode()

    def __hash__(self) -> int:
        return hash(self.content_hash)
