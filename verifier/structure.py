"""Structural checks on the transition graph (networkx): cheap, pure, run before any solver.

Each ``*_states``/``*_transitions`` function returns the offenders in declaration order;
:func:`check_structure` turns them into :class:`~railguard.verifier.results.Result` values.
Graph checks over-approximate the data: a state reachable here may still be unreachable
once guards are taken into account, which the symbolic checks decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from railguard.spec import Spec, Transition

from . import results as R
from .results import Result

if TYPE_CHECKING:
    import networkx as nx

__all__ = [
    "check_structure",
    "failure_reachable_states",
    "irreversible_not_last",
    "reachable_states",
    "states_without_error_exit",
    "terminal_transitions",
    "transition_graph",
    "trap_states",
    "uncompensated_effects",
    "ungranted_permissions",
    "unreachable_states",
    "unreachable_success_terminals",
    "unused_permissions",
]


def transition_graph(spec: Spec, *, error_exits: bool = True) -> nx.DiGraph:
    """The state graph: one node per state, an edge per (source, target) pair of a transition,
    plus, when ``error_exits``, an edge from each non-terminal state to its error target."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(s.name for s in spec.states)
    # One bulk insert of the distinct edges: `add_edge` per transition dominated the checks
    # of large specs (1M transitions).
    edges = {(source, t.target) for t in spec.transitions for source in t.sources}
    if error_exits:
        edges.update(_error_edges(spec))
    graph.add_edges_from(edges)
    return graph


def _error_edges(spec: Spec) -> set[tuple[str, str]]:
    edges = set()
    for state in spec.states:
        target = spec.error_target(state.name)
        if target is not None:
            edges.add((state.name, target))
    return edges


def _error_only_edges(spec: Spec) -> set[tuple[str, str]]:
    """Error-exit edges that no ordinary transition also provides."""
    ordinary = {(source, t.target) for t in spec.transitions for source in t.sources}
    return _error_edges(spec) - ordinary


#: node -> its successors (or predecessors); an ``nx.DiGraph``'s ``succ``/``pred`` views qualify.
Adjacency = Mapping[str, Iterable[str]]


def _adjacency(spec: Spec) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Successor and predecessor sets of the state graph, error exits included.

    ``check_structure`` walks these plain dicts: building an ``nx.DiGraph`` of 1M edges costs
    several times more than the checks themselves."""
    succ: dict[str, set[str]] = {s.name: set() for s in spec.states}
    pred: dict[str, set[str]] = {s.name: set() for s in spec.states}
    for t in spec.transitions:
        into = pred[t.target]
        for source in t.sources:
            succ[source].add(t.target)
            into.add(source)
    for source, target in _error_edges(spec):
        succ[source].add(target)
        pred[target].add(source)
    return succ, pred


def _forward(succ: Adjacency, start: str) -> set[str]:
    """``start`` and every node reachable from it (one traversal over the adjacency)."""
    seen = {start}
    stack = [start]
    while stack:
        for nxt in succ[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _backward(
    pred: Adjacency, targets: list[str], skip: set[tuple[str, str]] | None = None
) -> set[str]:
    """``targets`` and every node with a path to one of them, ignoring the ``skip`` edges."""
    seen = {t for t in targets if t in pred}
    stack = list(seen)
    while stack:
        node = stack.pop()
        for prev in pred[node]:
            if prev not in seen and (skip is None or (prev, node) not in skip):
                seen.add(prev)
                stack.append(prev)
    return seen


def reachable_states(spec: Spec, graph: nx.DiGraph | None = None) -> set[str]:
    """States reachable from the initial state, error exits included."""
    succ = _adjacency(spec)[0] if graph is None else graph.succ
    return _forward(succ, spec.initial_state.name)


def unreachable_states(spec: Spec, graph: nx.DiGraph | None = None) -> list[str]:
    """States no path from the initial state reaches."""
    return _unreachable(spec, reachable_states(spec, graph))


def _unreachable(spec: Spec, reached: set[str]) -> list[str]:
    return [s.name for s in spec.states if s.name not in reached]


def trap_states(spec: Spec, graph: nx.DiGraph | None = None) -> list[str]:
    """Reachable non-terminal states from which no terminal is reachable by ordinary transitions."""
    graph = transition_graph(spec) if graph is None else graph
    return _traps(spec, graph.pred, reachable_states(spec, graph))


def _traps(spec: Spec, pred: Adjacency, reached: set[str]) -> list[str]:
    # Walk back from every terminal at once over the ordinary edges (error exits skipped).
    terminals = [t.name for t in spec.terminal_states]
    can_finish = _backward(pred, terminals, skip=_error_only_edges(spec))
    return [
        s.name
        for s in spec.states
        if s.name in reached and s.terminal is None and s.name not in can_finish
    ]


def unreachable_success_terminals(spec: Spec, graph: nx.DiGraph | None = None) -> list[str]:
    """Success terminals that no path reaches."""
    return _unreachable_success(spec, reachable_states(spec, graph))


def _unreachable_success(spec: Spec, reached: set[str]) -> list[str]:
    return [s.name for s in spec.states if s.terminal == "success" and s.name not in reached]


def terminal_transitions(spec: Spec) -> list[tuple[str, Transition]]:
    """(terminal state, transition) pairs where a transition leaves a terminal state."""
    terminals = {s.name for s in spec.terminal_states}
    return [(src, t) for t in spec.transitions for src in t.sources if src in terminals]


def states_without_error_exit(spec: Spec) -> list[str]:
    """Non-terminal states with neither a state `on_error` nor a workflow `on_error`."""
    return [s.name for s in spec.states if s.terminal is None and spec.error_target(s.name) is None]


def failure_reachable_states(spec: Spec, graph: nx.DiGraph | None = None) -> set[str]:
    """States from which some failure terminal can be reached (failure terminals included)."""
    graph = transition_graph(spec) if graph is None else graph
    return _can_fail(spec, graph.pred)


def _can_fail(spec: Spec, pred: Adjacency) -> set[str]:
    return _backward(pred, [s.name for s in spec.states if s.terminal == "failure"])


def uncompensated_effects(spec: Spec, graph: nx.DiGraph | None = None) -> list[Transition]:
    """Reversible effects without a compensation after which a failure terminal can follow."""
    return _uncompensated(spec, failure_reachable_states(spec, graph))


def _uncompensated(spec: Spec, can_fail: set[str]) -> list[Transition]:
    return [
        t
        for t in spec.transitions
        if t.effect is not None
        and t.compensate is None
        and not t.irreversible
        and t.target in can_fail
    ]


def irreversible_not_last(spec: Spec) -> list[Transition]:
    """Irreversible transitions whose target is not a success terminal."""
    return [
        t
        for t in spec.transitions
        if t.irreversible and spec.state_map[t.target].terminal != "success"
    ]


def ungranted_permissions(spec: Spec) -> list[Transition]:
    """Transitions whose permission no role grants (``public`` needs no role)."""
    granted = set(spec.permissions)
    return [t for t in spec.transitions if t.permission != "public" and t.permission not in granted]


def unused_permissions(spec: Spec) -> list[tuple[str, str]]:
    """(role, permission) pairs for permissions no transition requires, first role only."""
    used = {t.permission for t in spec.transitions}
    seen: set[str] = set()
    found = []
    for role in spec.roles:
        for perm in role.permissions:
            if perm not in used and perm not in seen:
                found.append((role.name, perm))
            seen.add(perm)
    return found


def _transition_result(spec: Spec, rule: R.Rule, t: Transition, message: str) -> Result:
    return Result(
        rule,
        t.label,
        "violated",
        message,
        spec.location("transitions", t.index - 1),
        aliases=(t.event, str(t.index)),
    )


def check_structure(spec: Spec) -> list[Result]:
    """Run every structural, fail-closed and static permission check; one result per offender,
    or one ``proved`` result per rule when there is none."""
    succ, pred = _adjacency(spec)
    reached = _forward(succ, spec.initial_state.name)
    out: list[Result] = []

    def proved(rule: R.Rule, found: list[Result]) -> None:
        if found:
            out.extend(found)
        else:
            out.append(Result(rule, spec.name, "proved", rule.summary, spec.location()))

    def state_result(rule: R.Rule, name: str, message: str) -> Result:
        return Result(rule, name, "violated", message, spec.location("states", name))

    proved(
        R.UNREACHABLE_STATE,
        [
            state_result(
                R.UNREACHABLE_STATE,
                s,
                f"state `{s}` cannot be reached from the initial state `{spec.initial_state.name}`",
            )
            for s in _unreachable(spec, reached)
        ],
    )
    proved(
        R.TRAP_STATE,
        [
            state_result(
                R.TRAP_STATE,
                s,
                f"state `{s}` is a trap: no terminal state can be reached from it without an error",
            )
            for s in _traps(spec, pred, reached)
        ],
    )
    success = [s.name for s in spec.states if s.terminal == "success"]
    if not success:
        out.append(
            Result(
                R.UNREACHABLE_SUCCESS,
                spec.name,
                "violated",
                "the workflow has no success terminal (`terminal: success`)",
                spec.location("states"),
            )
        )
    else:
        proved(
            R.UNREACHABLE_SUCCESS,
            [
                state_result(R.UNREACHABLE_SUCCESS, s, f"success terminal `{s}` cannot be reached")
                for s in _unreachable_success(spec, reached)
            ],
        )
    proved(
        R.TERMINAL_OUTGOING,
        [
            _transition_result(
                spec,
                R.TERMINAL_OUTGOING,
                t,
                f"{t.label} leaves terminal state `{src}`; terminals have no outgoing transitions",
            )
            for src, t in terminal_transitions(spec)
        ],
    )
    proved(
        R.NO_ERROR_EXIT,
        [
            state_result(
                R.NO_ERROR_EXIT,
                s,
                f"state `{s}` has no error exit: set `on_error` on the workflow or the state",
            )
            for s in states_without_error_exit(spec)
        ],
    )
    proved(
        R.UNCOMPENSATED_EFFECT,
        [
            _transition_result(
                spec,
                R.UNCOMPENSATED_EFFECT,
                t,
                f"{t.label}: effect `{t.effect}` has no `compensate`, yet a failure terminal can follow it",
            )
            for t in _uncompensated(spec, _can_fail(spec, pred))
        ],
    )
    proved(
        R.IRREVERSIBLE_NOT_LAST,
        [
            _transition_result(
                spec,
                R.IRREVERSIBLE_NOT_LAST,
                t,
                f"{t.label}: irreversible effect `{t.effect}` enters `{t.target}`, which is not a success terminal",
            )
            for t in irreversible_not_last(spec)
        ],
    )
    proved(
        R.UNGRANTED_PERMISSION,
        [
            _transition_result(
                spec,
                R.UNGRANTED_PERMISSION,
                t,
                f"{t.label}: no role grants permission `{t.permission}`",
            )
            for t in ungranted_permissions(spec)
        ],
    )
    proved(
        R.UNUSED_PERMISSION,
        [
            Result(
                R.UNUSED_PERMISSION,
                perm,
                "violated",
                f"role `{role}` grants permission `{perm}`, which no transition requires",
                spec.location("roles", role),
                severity="warning",
            )
            for role, perm in unused_permissions(spec)
        ],
    )
    return out
