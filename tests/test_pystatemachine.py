"""python-statemachine 3.x both ways: generated classes conform to their specs, and the
library's documented example machines import, verify and render."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from statemachine.exceptions import TransitionNotAllowed

from railguard.cli import main
from railguard.runtime import MemoryMachine, StaticDirectory
from railguard.spec import Spec, load
from railguard.spec.interop.pystatemachine import StepRefused, python_statemachine_class
from railguard.spec.semantics import Fired
from railguard.verifier.conformance import check_conformance
from railguard.verifier.strategies import Action, default_principals, runs

from .conftest import EXAMPLES

NAMES = ("deploy", "order", "refund")
CLASSES = {name: python_statemachine_class(load(EXAMPLES / f"{name}.yaml")) for name in NAMES}


class GeneratedAdapter:
    """A generated python-statemachine class as an implementation under test."""

    def __init__(self, cls: type[Any]) -> None:
        self.machine = cls()

    def fire(self, event: str, actor: str, roles: frozenset[str], params: Mapping[str, Any]) -> bool:
        try:
            self.machine.send(event, actor=actor, roles=roles, params=dict(params))
        except (TransitionNotAllowed, StepRefused):
            return False
        return True

    def state(self) -> str:
        state: str = self.machine._rg_state()
        return state

    def variables(self) -> Mapping[str, Any]:
        values: Mapping[str, Any] = self.machine.values
        return values

    def error(self) -> None:
        self.machine.send("rg_error")


@pytest.mark.parametrize("name", NAMES)
def test_the_generated_class_passes_the_conformance_test_against_its_spec(name: str) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")
    check_conformance(spec, lambda: GeneratedAdapter(CLASSES[name]), max_examples=150, derandomize=True)


def _same_run(spec: Spec, cls: type[Any], run: list[Action]) -> None:
    principals = default_principals(spec)
    machine = MemoryMachine(spec, StaticDirectory({n: list(r) for n, r in principals.items()}))
    generated = GeneratedAdapter(cls)
    for action in run:
        fired = isinstance(machine.fire(action.event, action.actor, dict(action.params)), Fired)
        accepted = generated.fire(action.event, action.actor, principals[action.actor], action.params)
        assert accepted == fired, action
        assert generated.state() == machine.state
        assert dict(generated.variables()) == machine.values


@pytest.mark.parametrize("name", NAMES)
def test_random_event_sequences_give_the_same_states_and_variables_in_the_runtime_and_the_generated_class(name: str) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")

    @settings(max_examples=100, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(runs(spec, max_steps=25))
    def check(run: list[Action]) -> None:
        _same_run(spec, CLASSES[name], run)

    check()


def test_a_spec_whose_names_cannot_be_class_attributes_is_refused_in_one_sentence() -> None:
    from railguard.spec import load_data
    from railguard.spec.interop import InteropError
    from railguard.spec.interop.pystatemachine import to_python_statemachine

    base = load(EXAMPLES / "refund.yaml").to_dict()
    clash = {**base, "transitions": [*base["transitions"], {"event": "paid", "from": "approved", "to": "paid", "permission": "refund.pay"}]}
    with pytest.raises(InteropError, match="event `paid` has the name of a state"):
        to_python_statemachine(load_data(clash))
    reserved = {**base, "states": {**base["states"], "values": {}}, "transitions": [*base["transitions"], {"event": "park", "from": "draft", "to": "values", "permission": "refund.cancel"}]}
    with pytest.raises(InteropError, match="state `values` cannot be a python-statemachine attribute"):
        to_python_statemachine(load_data(reserved))


def test_the_export_command_writes_a_module_that_defines_the_class(tmp_path: Path) -> None:
    out = tmp_path / "refund_machine.py"
    assert main(["export", str(EXAMPLES / "refund.yaml"), "--format", "python-statemachine", "-o", str(out)]) == 0
    loaded = importlib.util.spec_from_file_location("refund_machine", out)
    assert loaded is not None
    assert loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    sys.modules["refund_machine"] = module
    try:
        loaded.loader.exec_module(module)
    finally:
        del sys.modules["refund_machine"]
    machine = module.Refund()
    machine.send("request", actor="sam", roles={"support"}, params={"amount": 10})
    assert (machine._rg_state(), machine.values["requested_by"]) == ("requested", "sam")
    with pytest.raises(StepRefused) as refused:
        machine.send("approve", actor="sam", roles={"support"})
    assert refused.value.code == "permission-denied"
    assert module.SPEC.content_hash == load(EXAMPLES / "refund.yaml").content_hash


# --------------------------------------------------------------------------- import

MACHINES = Path(__file__).parent / "psm_machines"
#: The library's documented examples, as classes and as documents its own readers load.
IMPORTS: dict[str, str] = {
    "traffic light": "tests.psm_machines.traffic_light_machine:TrafficLightMachine",
    "order control": "tests.psm_machines.order_control_machine:OrderControl",
    "guess the number": "tests.psm_machines.guess_the_number_machine:GuessTheNumberMachine",
    "campaign": "tests.psm_machines.campaign_machine:CampaignMachine",
    "campaign with validators": "tests.psm_machines.campaign_validators_machine:CampaignValidatorsMachine",
    "air conditioner": "tests.psm_machines.air_conditioner_machine:AirConditioner",
    "all actions": "tests.psm_machines.all_actions_machine:AllActionsMachine",
    "reusing transitions": "tests.psm_machines.reusing_transitions_machine:TrafficLightIsolatedTransitions",
    "compound statechart": "tests.psm_machines.shire_statechart:QuestStatechart",
    "yaml document": str(MACHINES / "traffic_light.yaml"),
    "json document": str(MACHINES / "door.json"),
    "scxml document": str(MACHINES / "microwave.scxml"),
}


@pytest.mark.parametrize("name", sorted(IMPORTS))
def test_each_library_example_imports_verifies_and_renders_with_every_over_approximation_reported(name: str) -> None:
    from railguard.spec import dumps, loads
    from railguard.spec.diagram import render
    from railguard.spec.interop import FindingKind
    from railguard.spec.interop.pystatemachine import import_python_statemachine
    from railguard.verifier import verify

    result = import_python_statemachine(IMPORTS[name])
    spec = result.spec
    assert loads(dumps(spec)) == spec
    report = verify(spec)
    assert {r.outcome for r in report.results} <= {"proved", "violated"}
    assert render(spec, "dot")
    over = result.of_kind(FindingKind.OVER_APPROXIMATED)
    # every guard of the spec stands for a condition that a finding names
    for transition in spec.transitions:
        for param in transition.params:
            assert any(f"params.{param.name}" in f.message for f in over), (transition.label, param.name)
    assert not [f for f in result.of_kind(FindingKind.REFUSED) if "eventless" in f.message]


def test_conditions_keep_their_polarity_and_boolean_structure() -> None:
    from railguard.spec.interop.pystatemachine import import_python_statemachine

    order_spec = import_python_statemachine(IMPORTS["order control"]).spec
    guards = {(t.event, t.target): t.guard.text for t in order_spec.transitions if t.guard is not None}
    assert guards[("receive_payment", "processing")] == "params.cond_payments_enough"
    assert guards[("receive_payment", "waiting_for_payment")] == "not params.cond_payments_enough"
    air = import_python_statemachine(IMPORTS["air conditioner"]).spec
    texts = {t.guard.text for t in air.transitions if t.guard is not None}
    assert "params.cond_is_good and not params.cond_is_hot" in texts


def test_compound_states_are_flattened_into_their_leaves() -> None:
    from railguard.spec.interop import FindingKind
    from railguard.spec.interop.pystatemachine import import_python_statemachine

    result = import_python_statemachine(IMPORTS["compound statechart"])
    spec = result.spec
    assert spec.initial_state.name == "shire__bag_end"
    depart = next(t for t in spec.transitions if t.event == "depart")
    assert (set(depart.sources), depart.target) == ({"shire__bag_end", "shire__green_dragon"}, "road__trollshaws")
    flattened = [f for f in result.of_kind(FindingKind.OVER_APPROXIMATED) if "flattened" in f.message]
    assert len(flattened) == 2


def test_actions_are_reported_as_not_analysed() -> None:
    from railguard.spec.interop import FindingKind
    from railguard.spec.interop.pystatemachine import import_python_statemachine

    result = import_python_statemachine(IMPORTS["all actions"])
    named = {f.construct for f in result.of_kind(FindingKind.OVER_APPROXIMATED)}
    assert {"action `on_inline`", "action `before_inline`", "action `after_inline`", "action `on_enter_final`",
            "action `on_exit_initial`", "condition `validation_1`", "condition `condition_1`", "condition `unless_1`"} <= named


def test_the_import_command_writes_a_spec_and_reports_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    out = tmp_path / "order.yaml"
    assert main(["import", IMPORTS["order control"], "--from", "python-statemachine", "-o", str(out), "--report-format", "json"]) == 0
    report = json.loads(capsys.readouterr().err)
    assert {f["kind"] for f in report} >= {"mapped", "over-approximated"}
    assert load(out).name == "OrderControl"
    assert main(["check", str(out), "--format", "json"]) in (0, 1)


def test_an_exported_class_imports_back_with_the_same_graph(tmp_path: Path) -> None:
    from railguard.spec.interop.pystatemachine import (
        import_python_statemachine,
        to_python_statemachine,
    )

    spec = load(EXAMPLES / "refund.yaml")
    module = tmp_path / "refund_machine.py"
    module.write_text(to_python_statemachine(spec), encoding="utf-8")
    back = import_python_statemachine(f"{module}:Refund").spec

    def edges(s: Spec) -> set[tuple[str, str, str]]:
        return {(t.event, source, t.target) for t in s.transitions for source in t.sources}

    errors = {("rg_error", s.name, "cancelled") for s in spec.states if not s.is_terminal}
    assert edges(back) == edges(spec) | errors
    assert {s.name for s in back.states} == {s.name for s in spec.states} | {"rg_failed"}
