"""The Z3 verifier cross-checked against an independent explicit-state search (STYLE item 12).

On generated finite specs (:func:`railguard.verifier.strategies.specs`), every verdict of the
data checks must equal what :mod:`tests.explicit` finds by enumerating configurations:
reachability of each state (RG401, with the graph check RG101), dead transitions (RG402),
nondeterminism (RG403), domain escapes (RG404) and invariants (RG501). ``unknown`` is a
disagreement. Every witness and counterexample must replay through the reference semantics
and end in a configuration the explicit search reached, where the final step does what the
result claims.

A budget that is too small must give ``unknown``, and ``unknown`` never passes: not in a
report, not on the command line.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from railguard.cli import main
from railguard.spec import EvaluationError, Invariant, Spec, Transition, load, load_data
from railguard.spec.semantics import Fired
from railguard.verifier import Report, Result, verify
from railguard.verifier.budget import Budget
from railguard.verifier.counterexample import Counterexample, replay_counterexample
from railguard.verifier.strategies import deep_specs, specs

from .conftest import EXAMPLES
from .explicit import Config, Exploration, Monitor, canonical, explore, remember, select

#: The cross-check runs on this many generated specs (the acceptance point asks for 1,000),
#: and on this many more that have sets of enums too.
EXAMPLES_CHECKED = 1000
SETS_CHECKED = 200
#: The default budget; the generated specs are small, so BMC at depth 8 finds most witnesses
#: and Spacer decides the rest.
BUDGET = Budget()
COMPARED = ("RG101", "RG400", "RG401", "RG402", "RG403", "RG404", "RG501")
#: Rules whose violations must come with a counterexample.
SAFETY = ("RG403", "RG404", "RG501")


# --------------------------------------------------------------------------- generation


#: The default generated specs are finite: ints in 0..3, bools, enums, principals.
finite_specs = specs()


# --------------------------------------------------------------------------- expectations


def z3_verdicts(report: Report) -> Counter[tuple[str, str, str]]:
    """``(rule, subject, outcome)`` of every compared result, counted (RG403 subjects repeat)."""
    return Counter((r.rule.id, r.subject, r.outcome) for r in report.results if r.rule.id in COMPARED)


def graph_reachable(spec: Spec) -> set[str]:
    """States reachable in the transition graph (error exits included), guards ignored."""
    reached = {spec.initial_state.name}
    frontier = list(reached)
    while frontier:
        state = frontier.pop()
        targets = [t.target for t in spec.transitions if state in t.sources]
        error = spec.error_target(state)
        for target in [*targets, *([error] if error is not None else [])]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    return reached


def explicit_verdicts(spec: Spec, found: Exploration) -> Counter[tuple[str, str, str]]:
    """The verdicts that the explicit search (and a graph search, for RG101 and for which
    questions the data checks ask) gives."""
    expected: Counter[tuple[str, str, str]] = Counter()
    graph_sources = graph_reachable(spec)
    assert found.states <= graph_sources
    graph_unreachable = [s.name for s in spec.states if s.name not in graph_sources]
    for state in graph_unreachable:
        expected[("RG101", state, "violated")] += 1
    if not graph_unreachable:
        expected[("RG101", spec.name, "proved")] += 1
    for state in spec.states:
        if not state.initial and state.name in graph_sources:
            expected[("RG401", state.name, "proved" if found.reachable(state.name) else "violated")] += 1
    for t in spec.transitions:
        if any(src in graph_sources for src in t.sources):
            expected[("RG402", t.label, "proved" if t.index in found.fired else "violated")] += 1
        else:
            assert t.index not in found.fired
        for name, _ in t.assign:
            escapes = (t.index, name) in found.escapes
            expected[("RG404", f"{t.label}: `{name}`", "violated" if escapes else "proved")] += 1
    for pos, t1 in enumerate(spec.transitions):
        for t2 in spec.transitions[pos + 1 :]:
            if t1.event != t2.event:
                continue
            for src in t1.sources:
                if src in t2.sources and src in graph_sources:
                    overlap = (src, t1.index, t2.index) in found.overlaps
                    expected[("RG403", f"{t1.label} and {t2.label} from `{src}`", "violated" if overlap else "proved")] += 1
    for invariant in spec.invariants:
        expected[("RG501", invariant.name, "violated" if invariant.name in found.violated else "proved")] += 1
    return expected


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class End:
    """Where a replayed run ends, as a canonical configuration, with the values by name."""

    config: Config
    values: dict[str, Any]
    seen: frozenset[str]


def end_of(spec: Spec, cex: Counterexample) -> End:
    """Replay ``cex`` and check that its actors are data-independent principals: each name
    always holds the same roles, and the system never acts as a person."""
    for step in (*cex.steps, *((cex.final,) if cex.final is not None else ())):
        if step.kind == "transition":
            assert step.actor is not None
            assert step.actor != "system"
            assert tuple(cex.principals[step.actor]) == tuple(step.roles), (step, cex.principals)
    replayed = replay_counterexample(spec, cex)
    roles = {name: frozenset(r) for name, r in cex.principals.items()}
    config = canonical(spec, replayed.state, replayed.values, roles, replayed.seen)
    return End(config, dict(replayed.values), replayed.seen)


def check_run(spec: Spec, found: Exploration, result: Result) -> None:
    """A violation of a safety rule comes with a run; every run replays, ends in a
    configuration the search reached, and there (or in its final step, for a step property)
    shows what the result says."""
    rule = result.rule.id
    cex = result.counterexample or result.witness
    if cex is None:
        assert not (result.outcome == "violated" and rule in SAFETY), result
        return
    end = end_of(spec, cex)
    assert end.config in found.configs, (rule, result.subject, end.config)
    final = cex.final
    if final is None:
        assert rule in ("RG401", "RG501"), result
        if rule == "RG401":
            assert end.config.state == result.subject
            return
        invariant = spec_invariant(spec, result.subject)
        assert invariant.expr is not None
        try:
            violated = bool(spec.compiled(invariant.expr)(end.values, {}, None, end.config.state)) != (invariant.kind == "always")
        except EvaluationError:
            violated = True
        assert violated, (invariant, end.values)
        return
    picked = select(
        spec, end.config.state, end.values, final.event, final.actor, frozenset(final.roles),
        dict(final.params), system=final.kind == "timeout",
    )
    labels = {t.index: t.label for t in spec.transitions}
    if rule == "RG402":
        assert picked.chosen is not None
        assert picked.evaluated
        assert picked.chosen.label == result.subject
    elif rule == "RG404":
        assert picked.chosen is not None
        assert result.subject in {f"{picked.chosen.label}: `{name}`" for name in picked.escapes}, (picked, result.subject)
    elif rule == "RG403":
        pairs = {(a, f"{labels[a]} and {labels[b]} from `{end.config.state}`") for a, b in picked.overlaps}
        assert (final.transition, result.subject) in pairs, (picked.overlaps, result.subject)
    else:
        assert rule == "RG501", result
        invariant = spec_invariant(spec, result.subject)
        assert invariant.kind == "precedes"
        assert isinstance(picked.outcome, Fired)
        assert picked.outcome.transition.event == invariant.then
        assert invariant.first not in end.seen


def spec_invariant(spec: Spec, name: str) -> Invariant:
    return next(i for i in spec.invariants if i.name == name)


# --------------------------------------------------------------------------- tests


def assert_agree(spec: Spec, monitor: Monitor = remember) -> Exploration:
    """Z3 and the explicit search give the same verdicts, and every Z3 run checks out."""
    found = explore(spec, monitor=monitor)
    report = verify(spec, BUDGET)
    z3 = z3_verdicts(report)
    expected = explicit_verdicts(spec, found)
    assert z3 == expected, {"z3 only": z3 - expected, "explicit only": expected - z3}
    for result in report.results:
        if result.rule.id in COMPARED:
            check_run(spec, found, result)
    return found


CROSS_CHECK = settings(
    max_examples=EXAMPLES_CHECKED,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@CROSS_CHECK
@given(finite_specs)
def test_z3_verdicts_equal_the_explicit_search_on_a_thousand_generated_finite_specs(document: dict[str, Any]) -> None:
    assert_agree(load_data(document))


@settings(CROSS_CHECK, max_examples=SETS_CHECKED)
@given(specs(sets=True))
def test_z3_verdicts_equal_the_explicit_search_on_generated_specs_with_sets(document: dict[str, Any]) -> None:
    assert_agree(load_data(document))


SPEC_BASE: dict[str, Any] = {"railguard": 1, "on_error": "failed"}
TERMINALS = {"done": {"terminal": "success"}, "failed": {"terminal": "failure"}}

#: Hand-written specs that go deeper than most generated ones: stored principals acting
#: again, counters that reach their bound, timeouts, ``precedes`` and sets.
DEEP_SPECS: dict[str, dict[str, Any]] = {
    "four-eyes": {
        **SPEC_BASE,
        "name": "four-eyes",
        "roles": {"clerk": ["ask", "pay"], "boss": ["approve", "pay"], "both": ["ask", "approve"]},
        "exclusive_roles": [["clerk", "both"]],
        "variables": {
            "asker": {"type": "principal"},
            "approver": {"type": "principal"},
            "rounds": {"type": "int", "min": 0, "max": 2, "initial": 0},
        },
        "states": {"open": {"initial": True}, "asked": {"timeout": {"after": "1h", "event": "remind"}}, "ok": {}, **TERMINALS},
        "transitions": [
            {"event": "ask", "from": "open", "to": "asked", "permission": "ask", "assign": {"asker": "actor", "rounds": "rounds + 1"}},
            {"event": "remind", "from": "asked", "to": "open", "permission": "ask", "guard": "rounds < 2"},
            {"event": "remind", "from": "asked", "to": "failed", "permission": "ask"},
            {"event": "approve", "from": "asked", "to": "ok", "permission": "approve", "guard": "actor != asker", "assign": {"approver": "actor"}},
            {"event": "approve", "from": "asked", "to": "asked", "permission": "approve", "guard": "actor == asker"},
            {"event": "pay", "from": "ok", "to": "done", "permission": "pay", "guard": "actor != approver"},
        ],
        "invariants": [
            {"name": "two-people", "never": "approver != None and approver == asker"},
            {"name": "approved-first", "precedes": {"first": "approve", "then": "pay"}},
            {"name": "few-rounds", "always": "rounds <= 1"},
        ],
    },
    "counter": {
        **SPEC_BASE,
        "name": "counter",
        "roles": {"user": ["tick"]},
        "variables": {
            "n": {"type": "int", "min": 0, "max": 3, "initial": 0},
            "tags": {"type": "set", "of": {"type": "enum", "values": ["a", "b", "c"]}, "max_size": 2, "initial": []},
        },
        "states": {"run": {"initial": True, "timeout": {"after": "5m", "event": "tick"}}, **TERMINALS},
        "transitions": [
            {"event": "tick", "from": "run", "to": "run", "permission": "tick", "params": {"step": {"type": "int", "min": 1, "max": 2, "default": 1}},
             "guard": "n < 3", "assign": {"n": "n + params.step", "tags": '["a", "b", "c"] if n == 2 else ["a"] if n == 1 else tags'}},
            {"event": "tick", "from": "run", "to": "done", "permission": "tick", "params": {"step": {"type": "int", "min": 1, "max": 2, "default": 1}}},
            {"event": "split", "from": "run", "to": "run", "permission": "tick", "guard": "6 // (n - 1) > 2", "assign": {"n": "n % 2"}},
            # a list literal too long for `max_size` (Z3 once let it through)
            {"event": "fill", "from": "run", "to": "run", "permission": "tick", "guard": "n == 3", "assign": {"tags": '["b", "c", "a"]'}},
        ],
        "invariants": [
            {"name": "bounded", "always": "n <= 3 and len(tags) <= 2"},
            {"name": "no-c", "never": '"c" in tags'},
        ],
    },
    "context": {
        **SPEC_BASE,
        "name": "context",
        "roles": {"owner": ["spend", "close"], "guest": ["spend"]},
        "variables": {
            "limit": {"type": "int", "min": 0, "max": 3, "context": True},
            "owner": {"type": "principal", "context": True},
            "deputy": {"type": "principal", "context": True},
            "spent": {"type": "int", "min": 0, "max": 3, "initial": 0},
        },
        "states": {"open": {"initial": True}, **TERMINALS},
        "transitions": [
            {"event": "spend", "from": "open", "to": "open", "permission": "spend", "params": {"k": {"type": "int", "min": 1, "max": 2}},
             "guard": "spent + params.k <= limit", "assign": {"spent": "spent + params.k"}},
            {"event": "close", "from": "open", "to": "done", "permission": "close", "guard": "actor == owner or actor == deputy"},
            {"event": "close", "from": "open", "to": "failed", "permission": "close", "guard": "owner == None"},
        ],
        "invariants": [
            {"name": "within-limit", "always": "spent <= limit"},
            {"name": "owned", "never": "state == \"done\" and owner == None and deputy == None"},
        ],
    },
}


@pytest.mark.parametrize("name", sorted(DEEP_SPECS))
def test_z3_verdicts_equal_the_explicit_search_on_hand_written_deeper_specs(name: str) -> None:
    found = assert_agree(load_data(DEEP_SPECS[name]))
    assert len(found.configs) > 10


def test_z3_verdicts_equal_the_explicit_search_on_the_deploy_example() -> None:
    found = assert_agree(load(EXAMPLES / "deploy.yaml"))
    assert len(found.configs) > 100
    assert found.violated == set()


def test_a_witness_and_a_counterexample_end_where_the_explicit_search_says() -> None:
    spec = load_data({
        **SPEC_BASE,
        "name": "counter",
        "roles": {"clerk": ["count"]},
        "variables": {"n": {"type": "int", "min": 0, "max": 2, "initial": 0}, "who": {"type": "principal"}},
        "states": {"open": {"initial": True}, **TERMINALS},
        "transitions": [
            {"event": "count", "from": "open", "to": "open", "permission": "count", "assign": {"n": "n + 1", "who": "actor"}},
            {"event": "close", "from": "open", "to": "done", "permission": "count", "guard": "n == 2 and actor == who"},
        ],
        "invariants": [{"name": "small", "always": "n <= 1"}],
    })
    found = assert_agree(spec)
    report = verify(spec, BUDGET)
    outcomes = {(r.rule.id, r.subject): r.outcome for r in report.results}
    assert outcomes[("RG501", "small")] == "violated"
    assert outcomes[("RG404", "transition 1 (`count`): `n`")] == "violated"
    assert outcomes[("RG401", "done")] == "proved"
    assert (found.violated, found.escapes, found.fired) == ({"small"}, {(1, "n")}, {1, 2})
    runs = [r for r in report.results if r.counterexample is not None or r.witness is not None]
    assert {(r.rule.id, r.subject) for r in runs} >= {("RG501", "small"), ("RG401", "done"), ("RG402", "transition 2 (`close`)")}


def test_the_explicit_search_names_principals_canonically_and_keeps_one_role_set_per_permission_set() -> None:
    spec = load_data({
        **SPEC_BASE,
        "name": "pass",
        "roles": {"a": ["take"], "b": ["take"], "c": []},
        "variables": {"holder": {"type": "principal"}, "last": {"type": "principal"}},
        "states": {"s": {"initial": True}, **TERMINALS},
        "transitions": [
            {"event": "take", "from": "s", "to": "s", "permission": "take", "guard": "actor != holder", "assign": {"last": "holder", "holder": "actor"}},
            {"event": "stop", "from": "s", "to": "done", "permission": "public"},
        ],
    })
    found = assert_agree(spec)
    in_s = {(c.values, c.roles) for c in found.configs if c.state == "s"}
    take = frozenset({"a"})  # `b` grants the same permissions, so `a` stands for both
    assert in_s == {((None, None), ()), (("p0", None), (take,)), (("p0", "p1"), (take, take))}


def test_a_budget_too_small_to_decide_anything_gives_unknown_and_fails_the_report() -> None:
    spec = load(EXAMPLES / "deploy.yaml")
    assert not verify(spec, BUDGET).failed
    report = verify(spec, Budget(rlimit=1))
    symbolic = [r for r in report.results if r.rule.family in ("data", "properties")]
    assert symbolic
    assert {r.outcome for r in symbolic} == {"unknown"}
    assert all(r.failed for r in symbolic)
    assert report.failed


def test_unknown_never_passes_the_command_line_gate(capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(EXAMPLES / "deploy.yaml")
    assert main(["check", spec, "--format", "json"]) == 0
    capsys.readouterr()
    assert main(["check", spec, "--rlimit", "1", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    outcomes = {r["outcome"] for f in report["files"] for r in f["results"]}
    assert "unknown" in outcomes
    assert report["exit_code"] == 1


# --------------------------------------------------------------------------- deep specs

#: Deep specs are checked by Z3 and by explicit search on this many examples (each takes
#: seconds: the invariants need Spacer or long unrollings).
DEEP_CHECKED = 12
#: The configuration counts are compared on this many specs of each generator.
SIZES_COMPARED = 40


def _collect(strategy: Any, count: int, spec_of: Any = load_data) -> list[Exploration]:
    found: list[Exploration] = []

    @settings(CROSS_CHECK, max_examples=count)
    @given(strategy)
    def run(document: dict[str, Any]) -> None:
        found.append(explore(spec_of(document)))

    run()
    return found


@pytest.mark.slow
@settings(CROSS_CHECK, max_examples=DEEP_CHECKED)
@given(deep_specs(max_states=6, max_counter=3))
def test_z3_verdicts_equal_the_explicit_search_on_deep_generated_specs(document: dict[str, Any]) -> None:
    assert_agree(load_data(document))


def test_deep_specs_reach_many_more_configurations_and_violate_invariants_only_after_six_steps() -> None:
    shallow = [len(f.configs) for f in _collect(specs(), SIZES_COMPARED)]
    deep_found = _collect(deep_specs(), SIZES_COMPARED)
    deep = [len(f.configs) for f in deep_found]
    assert sum(deep) / len(deep) >= 10 * sum(shallow) / len(shallow)
    assert sorted(deep)[len(deep) // 2] >= 30
    lengths = [n for f in deep_found for n in f.violated_at.values()]
    assert max(lengths) >= 6
    assert max(f.depth for f in deep_found) >= 10


def _last_event_only(seen: frozenset[str], transition: Transition) -> frozenset[str]:
    """A broken monitor: it remembers only the event that fired last."""
    return frozenset({transition.event})


def _forgets_self_loops(seen: frozenset[str], transition: Transition) -> frozenset[str]:
    """A broken monitor: a step that stays in its state is not recorded."""
    return seen if transition.is_self_loop else seen | {transition.event}


def _precedes_verdicts(found: Exploration) -> set[str]:
    return {i.name for i in found.spec.invariants if i.kind == "precedes" and i.name in found.violated}


@pytest.mark.parametrize("broken", [_last_event_only, _forgets_self_loops])
def test_a_broken_precedes_monitor_changes_verdicts_on_deep_specs_where_shallow_ones_hide_it(broken: Monitor) -> None:
    def caught(strategy: Any) -> int:
        count = 0

        @settings(CROSS_CHECK, max_examples=SIZES_COMPARED)
        @given(strategy)
        def run(document: dict[str, Any]) -> None:
            nonlocal count
            spec = load_data(document)
            if _precedes_verdicts(explore(spec)) != _precedes_verdicts(explore(spec, monitor=broken)):
                count += 1

        run()
        return count

    deep, shallow = caught(deep_specs()), caught(specs())
    assert deep >= SIZES_COMPARED // 10
    assert deep > shallow


def test_the_cross_check_fails_when_the_oracles_precedes_monitor_is_broken() -> None:
    document: dict[str, Any] = {
        **SPEC_BASE,
        "name": "monitor",
        "roles": {"user": ["go"]},
        "variables": {"c": {"type": "int", "min": 0, "max": 2, "initial": 0}},
        "states": {"a": {"initial": True}, "b": {}, **TERMINALS},
        "transitions": [
            {"event": "inc", "from": "a", "to": "a", "permission": "go", "guard": "c < 2", "assign": {"c": "c + 1"}},
            {"event": "next", "from": "a", "to": "b", "permission": "go", "guard": "c == 2"},
            {"event": "finish", "from": "b", "to": "done", "permission": "go"},
        ],
        "invariants": [{"name": "counted-first", "precedes": {"first": "inc", "then": "finish"}}],
    }
    spec = load_data(document)
    assert_agree(spec)
    with pytest.raises(AssertionError):
        assert_agree(spec, monitor=_last_event_only)
