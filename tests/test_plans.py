"""Plans are data: exactly `workflow`, `instance` and `steps`; who acts is never a field."""

from __future__ import annotations

import json
from decimal import Decimal

import jsonschema
import pytest

from railguard.spec import load
from railguard.verifier.plans import (
    OPEN,
    Plan,
    PlanError,
    PlanStep,
    loads_plan,
    parse_plan,
    plan_schema,
)

from .conftest import EXAMPLES


def test_a_plan_parses_into_steps_with_params() -> None:
    plan = parse_plan({"workflow": "refund", "instance": "r-1", "steps": [{"event": "request", "params": {"amount": 5}}, {"event": "approve"}]})
    assert plan == Plan("refund", (PlanStep("request", {"amount": 5}), PlanStep("approve", {})), "r-1")


def test_a_plan_round_trips_through_json() -> None:
    data = {"workflow": "refund", "steps": [{"event": "request", "params": {"amount": {"$open": True}}}]}
    plan = parse_plan(data)
    assert plan.steps[0].params["amount"] is OPEN
    assert parse_plan(plan.to_json()) == plan


@pytest.mark.parametrize("field", ["actor", "roles", "Actor", "principal"])
def test_a_plan_naming_who_acts_is_unusable(field: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan({"workflow": "refund", field: "mallory", "steps": []})
    assert caught.value.code == "identity"


@pytest.mark.parametrize("field", ["actor", "roles"])
def test_a_step_naming_who_acts_is_unusable(field: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan({"workflow": "refund", "steps": [{"event": "approve", field: ["manager"]}]})
    assert caught.value.code == "identity"
    assert caught.value.path == ("steps", 0, field)


@pytest.mark.parametrize(
    "data",
    [
        [],
        "refund",
        {"steps": []},
        {"workflow": "", "steps": []},
        {"workflow": "refund"},
        {"workflow": "refund", "steps": {}},
        {"workflow": "refund", "steps": ["approve"]},
        {"workflow": "refund", "steps": [{"params": {}}]},
        {"workflow": "refund", "steps": [{"event": 3}]},
        {"workflow": "refund", "steps": [{"event": "a", "params": []}]},
        {"workflow": "refund", "steps": [], "comment": "hi"},
        {"workflow": "refund", "steps": [{"event": "a", "why": "x"}]},
        {"workflow": "refund", "instance": 7, "steps": []},
    ],
)
def test_what_is_not_a_plan_is_unusable(data: object) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(data)
    assert caught.value.code == "not-a-plan"


def test_plan_text_keeps_decimals_exact_and_refuses_nan() -> None:
    plan = loads_plan('{"workflow": "w", "steps": [{"event": "e", "params": {"x": 100.5}}]}')
    assert plan.steps[0].params["x"] == Decimal("100.5")
    with pytest.raises(PlanError) as caught:
        loads_plan('{"workflow": "w", "steps": [{"event": "e", "params": {"x": NaN}}]}')
    assert caught.value.code == "not-json"


def test_deep_json_is_refused_without_recursion() -> None:
    with pytest.raises(PlanError) as caught:
        loads_plan("[" * 20_000 + "]" * 20_000)
    assert caught.value.code == "too-deep"
    nested: object = 1
    for _ in range(5_000):
        nested = [nested]
    with pytest.raises(PlanError) as again:
        parse_plan({"workflow": "w", "steps": [{"event": "e", "params": {"x": nested}}]})
    assert again.value.code == "too-deep"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    plan = loads_plan(json.dumps({"workflow": "w", "steps": [{"event": "[" * 100}]}))
    assert plan.steps[0].event == "[" * 100


def test_the_generic_schema_accepts_plans_and_refuses_an_actor() -> None:
    schema = plan_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"workflow": "refund", "steps": [{"event": "approve"}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"workflow": "refund", "actor": "x", "steps": []}, schema)


def test_the_schema_for_a_spec_types_each_event_s_params() -> None:
    spec = load(EXAMPLES / "refund.yaml")
    schema = plan_schema(spec)
    jsonschema.Draft202012Validator.check_schema(schema)
    good = {"workflow": "refund", "steps": [{"event": "request", "params": {"amount": 120}}, {"event": "approve", "params": {}}]}
    jsonschema.validate(good, schema)
    for bad in (
        {"workflow": "order", "steps": []},
        {"workflow": "refund", "steps": [{"event": "request", "params": {"amount": 0}}]},
        {"workflow": "refund", "steps": [{"event": "request", "params": {"amount": "100"}}]},
        {"workflow": "refund", "steps": [{"event": "launch", "params": {}}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_plan_text_beyond_the_size_bound_is_refused_unread() -> None:
    from railguard.verifier.plans import MAX_PLAN_BYTES

    with pytest.raises(PlanError) as caught:
        loads_plan(b" " * (MAX_PLAN_BYTES + 1))
    assert caught.value.code == "too-large"


@pytest.mark.parametrize(
    "text",
    [
        '{"workflow": "w", "workflow": "x", "steps": []}',
        '{"workflow": "w", "steps": [{"event": "e", "params": {"amount": 1, "amount": 9000}}]}',
        '{"workflow": "w", "steps": [{"event": "e", "event": "f"}]}',
    ],
)
def test_a_key_repeated_in_one_object_makes_the_plan_unusable(text: str) -> None:
    with pytest.raises(PlanError) as caught:
        loads_plan(text)
    assert caught.value.code == "not-a-plan"
    assert "repeats the key" in caught.value.message


@pytest.mark.parametrize(
    "data",
    [
        {"workflow": "w", "steps": [{"event": "\ud800"}]},
        {"workflow": "\udfff", "steps": []},
        {"workflow": "w", "steps": [{"event": "e", "params": {"\udc00": 1}}]},
        {"workflow": "w", "steps": [{"event": "e", "params": {"x": ["ok", "\ud83d"]}}]},
    ],
)
def test_text_with_a_lone_surrogate_makes_the_plan_unusable(data: dict[str, object]) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(data)
    assert caught.value.code == "not-a-plan"
    assert "not valid Unicode" in caught.value.message
    with pytest.raises(PlanError):
        loads_plan(json.dumps(data))


def test_an_escaped_surrogate_pair_is_one_valid_character() -> None:
    plan = loads_plan('{"workflow": "w", "steps": [{"event": "\\ud83d\\ude00"}]}')
    assert plan.steps[0].event == "\U0001f600"


def test_a_leading_byte_order_mark_is_ignored() -> None:
    plan = loads_plan(b'\xef\xbb\xbf{"workflow": "w", "steps": []}')
    assert plan == Plan("w", ())


def test_an_integer_too_long_for_python_is_read_exactly_for_admission_to_refuse() -> None:
    digits = "9" * 5_000
    plan = loads_plan('{"workflow": "w", "steps": [{"event": "e", "params": {"n": ' + digits + "}}]}")
    assert plan.steps[0].params["n"] == Decimal(digits)
    assert loads_plan('{"workflow": "w", "steps": [{"event": "e", "params": {"n": 12}}]}').steps[0].params["n"] == 12
