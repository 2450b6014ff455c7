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
