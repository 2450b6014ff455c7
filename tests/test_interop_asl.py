"""Amazon States Language import: each state type's mapping, sagas, and the asl-validator corpus."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from railguard.runtime import Engine, ManualClock, SQLiteStore, StaticDirectory
from railguard.spec.interop import FindingKind, ImportResult, InteropError
from railguard.spec.interop.asl import import_asl, import_asl_data
from railguard.spec.interop.asl_check import jsonata_problem, validate_asl
from railguard.verifier import verify

from .fakes import Ledger
from .test_interop_scxml import corpus

SAGA: dict[str, Any] = {
    "Comment": "Book a trip; undo what was booked if a step fails.",
    "StartAt": "BookHotel",
    "States": {
        "BookHotel": {"Type": "Task", "Resource": "${BookHotelArn}", "Next": "BookFlight",
                      "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "CancelHotel"}]},
        "BookFlight": {"Type": "Task", "Resource": "${BookFlightArn}", "Next": "BookCar",
                       "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "CancelFlight"}]},
        "BookCar": {"Type": "Task", "Resource": "${BookCarArn}", "Next": "Booked",
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "CancelCar"}]},
        "Booked": {"Type": "Succeed"},
        "CancelCar": {"Type": "Task", "Resource": "${CancelCarArn}", "Next": "CancelFlight"},
        "CancelFlight": {"Type": "Task", "Resource": "${CancelFlightArn}", "Next": "CancelHotel"},
        "CancelHotel": {"Type": "Task", "Resource": "${CancelHotelArn}", "Next": "BookingFailed"},
        "BookingFailed": {"Type": "Fail", "Error": "BookingFailed"},
    },
}


def machine(states: dict[str, Any], start: str = "A", **top: Any) -> dict[str, Any]:
    return {"StartAt": start, "States": states, **top}


def engine(result: ImportResult, ledger: Ledger | None = None, clock: ManualClock | None = None) -> Engine:
    ledger = ledger or Ledger()
    return Engine(result.spec, SQLiteStore(":memory:"), StaticDirectory({"u": ["caller"]}),
                  effects=ledger.effects(result.spec), clock=clock or ManualClock(), allow_unverified="interop test")


def test_a_saga_written_as_catch_chains_becomes_compensations_the_runtime_runs_in_reverse() -> None:
    result = import_asl_data(SAGA)
    spec = result.spec
    compensations = {t.event: t.compensate for t in spec.transitions if t.effect}
    assert compensations == {"BookHotel": "CancelHotel", "BookFlight": "CancelFlight", "BookCar": "CancelCar"}
    assert {spec.error_target(s) for s in ("BookHotel", "BookFlight", "BookCar")} == {"BookingFailed"}
    assert not result.of_kind(FindingKind.REFUSED)
    assert not [r for r in verify(spec, symbolic=False).results if r.outcome != "proved"]
    ledger = Ledger("BookCar")
    e = engine(result, ledger)
    e.start("trip", "u")
    for event in ("StartExecution", "BookHotel", "BookFlight"):
        e.fire("trip", event, "u")
    failed = e.fire("trip", "BookCar", "u")
    assert failed.state == "BookingFailed"
    assert [name for name, _, _ in ledger.calls if name.startswith("Cancel")] == ["CancelFlight", "CancelHotel"]


def test_a_saga_chain_that_skips_a_compensation_is_reported_and_the_verifier_sees_it() -> None:
    broken = copy.deepcopy(SAGA)
    broken["States"]["CancelCar"]["Next"] = "CancelHotel"
    broken["States"]["CancelFlight"]["Next"] = "CancelHotel"
    result = import_asl_data(broken)
    refused = [f.message for f in result.of_kind(FindingKind.REFUSED)]
    assert any("`BookCar`" in m and "`CancelFlight`" in m for m in refused)


def test_choice_rules_become_guards_over_typed_params_with_default_as_the_negation() -> None:
    result = import_asl_data(machine({
        "A": {"Type": "Choice", "Default": "D", "Choices": [
            {"Variable": "$.total", "NumericGreaterThanEquals": 100, "Next": "Big"},
            {"And": [{"Variable": "$.kind", "StringEquals": "gift"}, {"Not": {"Variable": "$.vip", "BooleanEquals": True}}], "Next": "Gift"},
            {"Or": [{"Variable": "$.total", "NumericLessThanPath": "$.limit"}, {"Variable": "$.note", "IsPresent": True}], "Next": "D"},
        ]},
        "Big": {"Type": "Succeed"}, "Gift": {"Type": "Succeed"}, "D": {"Type": "Fail"},
    }))
    choice = [t for t in result.spec.transitions if t.event == "A"]
    assert [t.target for t in choice] == ["Big", "Gift", "D", "D"]
    assert {p.name: p.type.kind for p in choice[0].params} == {"total": "decimal", "kind": "str", "vip": "bool", "limit": "decimal", "note_is_present": "bool"}
    e = engine(result)
    e.start("i", "u")
    e.fire("i", "StartExecution", "u")
    values = {"total": Decimal(5), "kind": "gift", "vip": False, "limit": Decimal(1), "note_is_present": False}
    assert e.fire("i", "A", "u", values).state == "Gift"
    e.start("j", "u")
    e.fire("j", "StartExecution", "u")
    assert e.fire("j", "A", "u", {**values, "kind": "toy"}).state == "D"


@pytest.mark.parametrize(("condition", "guard"), [
    ("{% $states.input.n > 3 %}", "params.n > 3"),
    ("{% $states.input.s = 'a' and $not($flag) %}", 'params.s == "a" and not params.flag'),
])
def test_a_simple_jsonata_condition_is_mapped_to_a_guard(condition: str, guard: str) -> None:
    result = import_asl_data(machine({
        "A": {"Type": "Choice", "QueryLanguage": "JSONata", "Default": "B", "Choices": [{"Condition": condition, "Next": "B"}]},
        "B": {"Type": "Succeed"},
    }))
    assert result.spec.transitions[1].guard is not None
    assert result.spec.transitions[1].guard.text == guard


def test_a_jsonata_condition_beyond_comparisons_is_an_over_approximated_bool_param() -> None:
    result = import_asl_data(machine({
        "A": {"Type": "Choice", "QueryLanguage": "JSONata", "Default": "B", "Choices": [{"Condition": "{% $count($states.input.items) > 3 %}", "Next": "B"}]},
        "B": {"Type": "Succeed"},
    }))
    assert [p.type.kind for p in result.spec.transitions[1].params] == ["bool"]
    assert any(f.construct == "Choice" for f in result.of_kind(FindingKind.OVER_APPROXIMATED))


def test_wait_is_a_timeout_and_retry_is_a_bounded_loop() -> None:
    result = import_asl_data(machine({
        "A": {"Type": "Wait", "Seconds": 30, "Next": "T"},
        "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": True, "TimeoutSeconds": 60,
              "Retry": [{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 2}]},
    }))
    spec = result.spec
    wait = spec.state_map["A"].timeout
    assert wait is not None
    assert (wait.seconds, wait.event) == (30, "A")
    task = spec.state_map["T"].timeout
    assert task is not None
    assert (task.seconds, task.event) == (60, None)
    assert spec.variable_map["T_retry_1"].type.max == 2
    clock = ManualClock()
    e = engine(result, clock=clock)
    e.start("i", "u")
    e.fire("i", "StartExecution", "u")
    clock.advance(31)
    e.run_due()
    assert e.get("i").state == "T"
    assert [e.fire("i", "T_retry_1", "u").accepted for _ in range(3)] == [True, True, False]
    assert e.fire("i", "T", "u").state == "succeeded"


def test_a_task_timeout_goes_to_the_catcher_that_covers_it() -> None:
    result = import_asl_data(machine({
        "A": {"Type": "Task", "Resource": "${Fn}", "Next": "Done", "TimeoutSeconds": 5,
              "Catch": [{"ErrorEquals": ["Oops"], "Next": "Done"}, {"ErrorEquals": ["States.Timeout"], "Next": "Late"}]},
        "Late": {"Type": "Fail"}, "Done": {"Type": "Succeed"},
    }))
    timeout = result.spec.state_map["A"].timeout
    assert timeout is not None
    assert (timeout.seconds, timeout.event) == (5, "A_catch_2")


def test_a_catch_goes_to_its_handler_and_an_uncaught_error_fails_closed() -> None:
    result = import_asl_data(machine({
        "A": {"Type": "Task", "Resource": "${Fn}", "Next": "Done", "Catch": [{"ErrorEquals": ["Oops"], "Next": "Handle"}]},
        "Handle": {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    }))
    spec = result.spec
    assert [(t.sources, t.target) for t in spec.transitions if t.event == "A_catch_1"] == [(("A",), "Handle")]
    assert spec.error_target("A") == "failed"
    assert spec.state_map["failed"].terminal == "failure"


def test_parallel_branches_are_interleaved_and_join_when_all_end() -> None:
    result = import_asl_data(machine({
        "A": {"Type": "Parallel", "Next": "Z", "Branches": [
            {"StartAt": "L1", "States": {"L1": {"Type": "Pass", "Next": "L2"}, "L2": {"Type": "Pass", "End": True}}},
            {"StartAt": "R1", "States": {"R1": {"Type": "Task", "Resource": "${R}", "End": True}}},
        ]},
        "Z": {"Type": "Succeed"},
    }))
    spec = result.spec
    assert len([s for s in spec.states if s.name.startswith("A__")]) == 5  # (L1|L2|end) x (R1|end) less the joined end
    e = engine(result)
    e.start("i", "u")
    for event in ("StartExecution", "A", "L1", "R1"):
        assert e.fire("i", event, "u").accepted
    assert e.fire("i", "L2", "u").state == "Z"


def test_a_map_runs_its_processor_for_any_number_of_items() -> None:
    result = import_asl_data(machine({
        "A": {"Type": "Map", "Next": "Z", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Task", "Resource": "${P}", "End": True}}}},
        "Z": {"Type": "Succeed"},
    }))
    e = engine(result)
    e.start("i", "u")
    for event in ("StartExecution", "A_item", "P", "A_item", "P"):
        assert e.fire("i", event, "u").accepted
    assert e.fire("i", "A", "u").state == "Z"
    assert any(f.construct == "Map" for f in result.of_kind(FindingKind.OVER_APPROXIMATED))


def test_an_invalid_definition_is_refused_with_its_defect_named() -> None:
    with pytest.raises(InteropError, match=r"goes to `Nowhere`.*`/States/A/Next`"):
        import_asl_data(machine({"A": {"Type": "Pass", "Next": "Nowhere"}}))


@pytest.mark.parametrize(("text", "ok"), [
    ("{% 1+2 %}", True), ("{% $a ? $b : {} %}", True), ("{% $f($x) { $y } %}", True),
    ("{% 1 + %}", False), ("{%1%}", False), ("{% (1 %}", False), ("{% 420. %}", False),
])
def test_jsonata_syntax_is_checked_without_running_it(text: str, ok: bool) -> None:
    assert (jsonata_problem(text) is None) is ok


# --------------------------------------------------------------------------- corpus

#: For each invalid definition of asl-validator, words the reported defects must contain.
EXPECTED_DEFECTS = {
    "invalid-assign.asl.json": "JSONata", "invalid-cfn-definition-substitutions.json": "placeholder",
    "invalid-choice-state-variable.json": "`Variable`", "invalid-choice-state.json": "needs `Next`",
    "invalid-dupe-fields.asl.json": "appears twice", "invalid-duplicate-fields-nested.json": "appears twice",
    "invalid-duplicate-fields.json": "appears twice", "invalid-error-equals-type.json": "`ErrorEquals`",
    "invalid-error-equals.json": "`Error Equals` is not a field", "invalid-exercise-ajv-additional-properties.asl.json": "`bugInputPath`",
    "invalid-exercise-ajv.asl.json": "`InputPath`", "invalid-fail-dupe-cause.json": "`Cause` and `CausePath`",
    "invalid-fail-dupe-error.json": "`Error` and `ErrorPath`", "invalid-inexistant-state.json": "`Finished`",
    "invalid-json-path.json": "`ResultPath`", "invalid-json-surround-syntax-extra-spaces.json": "JSONata",
    "invalid-jsonata-fields.json": "`Parameters` (a JSONPath field)", "invalid-jsonata-path-fields.asl.json": "`OutputPath` (a JSONPath field)",
    "invalid-jsonata-surround-syntax-no-close.json": "JSONata", "invalid-jsonata-surround-syntax-no-open.json": "JSONata",
    "invalid-jsonata-surround-syntax-no-spaces.json": "JSONata", "invalid-jsonata-syntax-arithmetic.json": "operator",
    "invalid-jsonata-syntax-jsonpath-in-jsonata-surround.json": "JSONata", "invalid-jsonata-syntax-mismatched-parens.json": "not closed",
    "invalid-map-distributed.asl.json": "`MaxItems` and `MaxItemsPath`", "invalid-map-dupe-state.json": "used twice",
    "invalid-map-item-batcher-dupe-subfields.json": "`ItemBatcher`", "invalid-map-items.asl.json": "`ItemsPath`",
    "invalid-map-missing-iterator.json": "`ItemProcessor`", "invalid-map-ob-link.json": "not a state of its own scope",
    "invalid-map-tolerated-value.json": "between 0 and 100", "invalid-map-tolerated.json": "`ToleratedFailureCount` and",
    "invalid-math-add.json": "MathAdd", "invalid-missing-terminal-map.json": "needs `Next` or `End",
    "invalid-missing-terminal-parallel.json": "needs `Next` or `End", "invalid-missing-terminal.json": "no terminal state",
    "invalid-next-with-end.json": "both `Next` and `End`", "invalid-parallel-branch-type.json": "branch",
    "invalid-parallel-missing-branches.json": "`Branches`", "invalid-parallel-ob-link.json": "not a state of its own scope",
    "invalid-payload-template.asl.json": "`lorem.$`", "invalid-state-name-too-long.json": "longer than 80",
    "invalid-task-alias-function.json": "Lambda function ARN", "invalid-task-credentials-null.json": "`Credentials`",
    "invalid-task-credentials-object.json": "`expectPath.$`", "invalid-task-heartbeat.json": "`HeartbeatSeconds` and",
    "invalid-task-timout.json": "`TimeoutSeconds` and", "invalid-unreachable-state.json": "cannot be reached",
    "invalid-variable-result-path.json": "`ResultPath`", "invalid-wait-duration.json": "exactly one of",
}


def definitions(prefix: str) -> list[Path]:
    return sorted(p for p in corpus("asl-validator").iterdir() if p.name.startswith(prefix) and p.suffix == ".json")


def test_every_invalid_asl_validator_definition_is_refused_naming_its_defect() -> None:
    from railguard.spec.interop.common import read_bounded, safe_json

    invalid = definitions("invalid-")
    assert len(invalid) == len(EXPECTED_DEFECTS) == 50
    missed = {}
    for path in invalid:
        with pytest.raises(InteropError):
            import_asl(str(path))
        messages = [p.message for p in validate_asl(safe_json(read_bounded(str(path)), str(path)))]
        if not any(EXPECTED_DEFECTS[path.name] in m for m in messages):
            missed[path.name] = messages
    assert missed == {}


def test_every_valid_asl_validator_definition_imports_into_a_spec_that_loads() -> None:
    valid = definitions("valid-")
    assert len(valid) == 62
    for path in valid:
        result = import_asl(str(path))
        assert result.spec.initial_state.name == "start"
        assert result.spec.on_error == "failed"


def test_a_parallel_catch_and_retry_apply_from_every_interleaved_state() -> None:
    result = import_asl_data(machine({
        "A": {"Type": "Parallel", "Next": "Z",
              "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 1}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Oops"}],
              "Branches": [
                  {"StartAt": "L", "States": {"L": {"Type": "Task", "Resource": "${L}", "End": True}}},
                  {"StartAt": "R", "States": {"R": {"Type": "Task", "Resource": "${R}", "End": True}}},
              ]},
        "Z": {"Type": "Succeed"}, "Oops": {"Type": "Fail"},
    }))
    inner = {s.name for s in result.spec.states if s.name.startswith("A__")}
    (catch,) = [t for t in result.spec.transitions if t.event == "A_catch_1"]
    (retry,) = [t for t in result.spec.transitions if t.event == "A_retry_1"]
    assert set(catch.sources) == set(retry.sources) == {"A"} | inner
    assert (catch.target, retry.target) == ("Oops", "A")


def test_a_yaml_definition_with_cloudformation_short_forms_imports(tmp_path: Path) -> None:
    path = tmp_path / "machine.asl.yaml"
    path.write_text(
        "StartAt: Call\n"
        "States:\n"
        "  Call:\n"
        "    Type: Task\n"
        "    Resource: !GetAtt Fn.Arn\n"
        "    End: true\n",
        encoding="utf-8",
    )
    result = import_asl(str(path))
    assert [t.effect for t in result.spec.transitions if t.effect] == ["Call"]
    assert "Fn.Arn" in result.spec.state_map["Call"].description
