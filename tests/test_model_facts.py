"""Facts about a spec computed once on the model: signatures, handlers, the permission rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from railguard.spec import Spec, load, loads
from railguard.spec.model import PUBLIC

EXAMPLES = Path(__file__).parent.parent / "examples"

SPEC = """
railguard: 1
name: facts
roles:
  clerk: [pay.start, pay.send]
  auditor: [pay.send]
variables:
  amount: {type: int, min: 0, max: 100, initial: 0}
states:
  new: {initial: true}
  ready: {}
  sent: {terminal: success}
  failed: {terminal: failure}
on_error: failed
transitions:
  - event: start
    from: new
    to: ready
    permission: pay.start
    params: {amount: {type: int, min: 1, max: 100}, note: {type: str, default: ""}}
    assign: {amount: params.amount}
  - event: start
    from: ready
    to: ready
    permission: pay.start
    params: {note: {type: str, default: ""}, amount: {type: int, min: 1, max: 100}}
  - event: send
    from: ready
    to: sent
    permission: pay.send
    effect: bank.send
    compensate: bank.recall
  - event: peek
    from: [new, ready]
    to: failed
    permission: public
"""


@pytest.fixture(scope="module")
def spec() -> Spec:
    return loads(SPEC)


def test_events_and_their_transitions_are_in_declaration_order(spec: Spec) -> None:
    assert spec.events == ("start", "send", "peek")
    assert [t.index for t in spec.event_transitions["start"]] == [1, 2]


def test_an_event_has_one_signature_by_name(spec: Spec) -> None:
    assert list(spec.signature("start")) == ["amount", "note"]
    assert spec.signature("start")["note"].required is False
    assert spec.signature("send") == {}
    assert spec.signature("no-such-event") == {}
    first, second = spec.event_transitions["start"]
    assert first.signature == second.signature


def test_handlers_are_listed_for_the_spec_and_per_event(spec: Spec) -> None:
    assert spec.handlers == ("bank.recall", "bank.send")
    assert spec.event_handlers == {
        "start": (),
        "send": ("bank.recall", "bank.send"),
        "peek": (),
    }


@pytest.mark.parametrize(
    ("event", "roles", "allowed"),
    [
        ("start", {"clerk"}, True),
        ("start", {"auditor"}, False),
        ("send", {"auditor"}, True),
        ("send", {"stranger"}, False),
        ("send", set(), False),
        ("peek", set(), True),
    ],
)
def test_the_permission_rule_denies_by_default(
    spec: Spec, event: str, roles: set[str], allowed: bool
) -> None:
    transition = spec.event_transitions[event][0]
    assert spec.permits(transition, frozenset(roles)) is allowed
    assert transition.is_public is (transition.permission == PUBLIC)


def test_granting_maps_each_permission_to_its_roles(spec: Spec) -> None:
    assert spec.granting == {
        "pay.start": frozenset({"clerk"}),
        "pay.send": frozenset({"clerk", "auditor"}),
    }
    assert spec.permissions == ("pay.start", "pay.send")


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_the_cached_facts_agree_with_the_plain_definitions(example: Path) -> None:
    spec = load(example)
    for state in spec.states:
        assert spec.transitions_from(state.name) == tuple(
            t for t in spec.transitions if state.name in t.sources
        )
    assert spec.events == tuple(dict.fromkeys(t.event for t in spec.transitions))
    for transition in spec.transitions:
        for role in spec.roles:
            expected = transition.permission == PUBLIC or transition.permission in role.permissions
            assert spec.permits(transition, {role.name}) is expected
        assert spec.signature(transition.event) == {p.name: p for p in transition.params}
