"""The spec model: immutable values, validated when the loaders or the builder make them.

Every class is a frozen dataclass with generated equality. Source positions are kept in
:attr:`Spec.locations`, which takes no part in equality or the content hash. A spec built
from these classes directly (generated specs in benchmarks and strategies) skips the
loader's validation: its maker answers for it. Facts that several layers need (an event's
signature, the handler names, the permission rule) are computed once per spec, on first use.
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
    "PUBLIC",
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
#: The permission every authenticated caller holds; no role lists it (deny by default
#: otherwise: a transition names a permission, and only the roles granting it may fire it).
PUBLIC = "public"


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

    @property
    def is_public(self) -> bool:
        """Whether any authenticated caller may fire it (``permission: public``)."""
        return self.permission == PUBLIC

    @property
    def signature(self) -> tuple[Parameter, ...]:
        """Its params by name, whatever order they were written in: every transition of an
        event has the same signature (the loader refuses a spec where they differ)."""
        return tuple(sorted(self.params, key=lambda p: p.name))

    @property
    def handlers(self) -> tuple[str, ...]:
        """The handler names it calls: its ``effect`` and its ``compensate``, when given."""
        return tuple(name for name in (self.effect, self.compensate) if name is not None)

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

    @cached_property
    def initial_state(self) -> State:
        return next(s for s in self.states if s.initial)

    @cached_property
    def terminal_states(self) -> tuple[State, ...]:
        return tuple(s for s in self.states if s.terminal is not None)

    @cached_property
    def events(self) -> tuple[str, ...]:
        """Every event name, in order of first declaration."""
        return tuple(self.event_transitions)

    @cached_property
    def permissions(self) -> tuple[str, ...]:
        """Every permission some role grants, in declaration order."""
        return tuple(self.granting)

    # ------------------------------------------------------------------ facts, computed once

    @cached_property
    def event_transitions(self) -> Mapping[str, tuple[Transition, ...]]:
        """Each event (in order of first declaration) and its transitions, in source order."""
        found: dict[str, list[Transition]] = {}
        for transition in self.transitions:
            found.setdefault(transition.event, []).append(transition)
        return {event: tuple(group) for event, group in found.items()}

    @cached_property
    def signatures(self) -> Mapping[str, Mapping[str, Parameter]]:
        """Each event's params by name, as its first transition declares them (every
        transition of an event takes the same params)."""
        return {
            event: {p.name: p for p in group[0].params}
            for event, group in self.event_transitions.items()
        }

    def signature(self, event: str) -> Mapping[str, Parameter]:
        """The params of ``event`` by name; empty for an event without params or unknown."""
        return self.signatures.get(event, {})

    @cached_property
    def handlers(self) -> tuple[str, ...]:
        """Every handler name the spec calls (effects and compensations), sorted."""
        return tuple(sorted({name for t in self.transitions for name in t.handlers}))

    @cached_property
    def event_handlers(self) -> Mapping[str, tuple[str, ...]]:
        """Per event, the handler names its own transitions call (effect and compensate),
        sorted; empty for an event without effects. Compensations owed by earlier steps
        are not included: they depend on the run, not on the event."""
        return {
            event: tuple(sorted({name for t in group for name in t.handlers}))
            for event, group in self.event_transitions.items()
        }

    @cached_property
    def granting(self) -> Mapping[str, frozenset[str]]:
        """Each permission some role grants (in declaration order) and the roles granting it."""
        found: dict[str, set[str]] = {}
        for role in self.roles:
            for permission in role.permissions:
                found.setdefault(permission, set()).add(role.name)
        return {permission: frozenset(roles) for permission, roles in found.items()}

    def permits(self, transition: Transition, roles: frozenset[str] | set[str]) -> bool:
        """The permission rule: whether a caller holding ``roles`` may fire ``transition``.

        A `public` transition is open to every authenticated caller; any other needs a role
        that grants its permission. Roles the spec does not declare grant nothing.
        """
        if transition.permission == PUBLIC:
            return True
        granted_by = self.granting.get(transition.permission)
        return granted_by is not None and not granted_by.isdisjoint(roles)

    @cached_property
    def _outgoing(self) -> Mapping[str, tuple[Transition, ...]]:
        found: dict[str, list[Transition]] = {}
        for transition in self.transitions:
            for source in transition.sources:
                found.setdefault(source, []).append(transition)
        return {state: tuple(group) for state, group in found.items()}

    def error_target(self, state: str) -> str | None:
        """Where an instance in ``state`` goes on an error exit (state override, else ``on_error``)."""
        declared = self.state_map[state]
        if declared.terminal is not None:
            return None
        return declared.on_error or self.on_error

    def transitions_from(self, state: str) -> tuple[Transition, ...]:
        """The transitions that may leave ``state``, in source order."""
        return self._outgoing.get(state, ())

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
