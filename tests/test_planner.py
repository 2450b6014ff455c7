"""The repair loop and the SDK adapters: requests and responses are checked against the
SDKs' own types; nothing calls the network."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from railguard.gate_demo import PAYOUT_SPEC
from railguard.runtime.errors import ExecutionError
from railguard.runtime.planner import (
    AnthropicPlanner,
    Attempt,
    OpenAIPlanner,
    PlanningContext,
    ScriptedPlanner,
    plan_with_repair,
)
from railguard.spec import load
from railguard.verifier.admission import Gate, Principal, Rejected, new_instance
from railguard.verifier.plans import PlanError, parse_plan

CONTEXT = {"payees": ["acme", "jane"], "limit": 1000}
AGENT = Principal("ava", frozenset({"agent", "payments"}))
GOOD = {"workflow": "payout", "instance": None, "steps": [{"event": "propose", "params": {"amount": 10, "payee": "jane"}}]}
BAD = {"workflow": "payout", "instance": None, "steps": [{"event": "propose", "params": {"amount": 10, "payee": "mallory"}}]}


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate(load(PAYOUT_SPEC), allow_unverified="tests")


def _context(gate: Gate, attempts: tuple[Attempt, ...] = ()) -> PlanningContext:
    start = new_instance(gate.spec, CONTEXT)
    return PlanningContext("Refund jane 10.", gate.spec, AGENT.roles, start.state, start.values, "proposed", "p-1", attempts)


def test_the_loop_hands_each_rejection_back_until_a_plan_is_admitted(gate: Gate) -> None:
    planner = ScriptedPlanner([BAD, GOOD])
    outcome = plan_with_repair(gate, planner, AGENT, new_instance(gate.spec, CONTEXT), request="refund jane")
    assert [a.admitted for a in outcome.attempts] == [False, True]
    assert outcome.admission is not None
    assert isinstance(planner.seen[1].attempts[0].answer, Rejected)
    assert planner.seen[1].attempts[0].feedback()["code"] == "guard-false"


def test_the_loop_stops_at_its_bound(gate: Gate) -> None:
    outcome = plan_with_repair(gate, ScriptedPlanner([BAD, BAD]), AGENT, new_instance(gate.spec, CONTEXT), request="x", max_attempts=2)
    assert len(outcome.attempts) == 2
    assert outcome.admission is None


def test_an_unusable_proposal_is_an_attempt_answered_with_its_error(gate: Gate) -> None:
    with_actor = {**GOOD, "actor": "root"}
    outcome = plan_with_repair(gate, ScriptedPlanner([with_actor, GOOD]), AGENT, new_instance(gate.spec, CONTEXT), request="x")
    assert isinstance(outcome.attempts[0].answer, PlanError)
    assert outcome.attempts[0].feedback()["code"] == "unusable"
    assert outcome.admission is not None


def test_a_scripted_planner_that_runs_out_says_so(gate: Gate) -> None:
    with pytest.raises(ExecutionError):
        plan_with_repair(gate, ScriptedPlanner([BAD]), AGENT, new_instance(gate.spec, CONTEXT), request="x", max_attempts=2)


def _attempts(gate: Gate) -> tuple[Attempt, ...]:
    start = new_instance(gate.spec, CONTEXT)
    answer = gate.admit(parse_plan(BAD), AGENT, start)
    return (Attempt(BAD, answer),)


def test_the_openai_request_is_a_valid_sdk_request_with_the_rejection_as_tool_result(gate: Gate) -> None:
    from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
    from pydantic import TypeAdapter

    request = OpenAIPlanner(None, "gpt-test").build_request(_context(gate, _attempts(gate)))
    TypeAdapter(CompletionCreateParamsNonStreaming).validate_python(request)
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "tool"]
    assert json.loads(request["messages"][3]["content"])["code"] == "guard-false"
    assert request["tools"][0]["function"]["name"] == "submit_plan"
    assert "actor" not in json.dumps(request["tools"][0]["function"]["parameters"]["properties"])


def _openai_completion(arguments: str) -> Any:
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate({
        "id": "c1", "object": "chat.completion", "created": 0, "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "submit_plan", "arguments": arguments}}],
        }}],
    })


def test_the_openai_response_is_parsed_from_the_sdk_type(gate: Gate) -> None:
    completion = _openai_completion(json.dumps(GOOD))
    assert OpenAIPlanner.parse_response(completion) == GOOD
    assert OpenAIPlanner.parse_response(_openai_completion("{not json")) == "{not json"


def test_the_openai_planner_drives_a_client_without_a_network(gate: Gate) -> None:
    calls: list[dict[str, Any]] = []

    def create(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return _openai_completion(json.dumps(GOOD))

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    outcome = plan_with_repair(gate, OpenAIPlanner(client, "gpt-test"), AGENT, new_instance(gate.spec, CONTEXT), request="x")
    assert outcome.admission is not None
    assert len(calls) == 1


def test_the_anthropic_request_is_a_valid_sdk_request_with_the_rejection_as_tool_result(gate: Gate) -> None:
    from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
    from pydantic import TypeAdapter

    request = AnthropicPlanner(None, "claude-test").build_request(_context(gate, _attempts(gate)))
    TypeAdapter(MessageCreateParamsNonStreaming).validate_python(request)
    result = request["messages"][2]["content"][0]
    assert result["type"] == "tool_result"
    assert result["is_error"] is True
    assert request["tool_choice"] == {"type": "tool", "name": "submit_plan"}


def test_the_anthropic_response_is_parsed_from_the_sdk_type() -> None:
    from anthropic.types import Message

    message = Message.model_validate({
        "id": "m1", "type": "message", "role": "assistant", "model": "claude-test",
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
        "content": [{"type": "text", "text": "Here is the plan."}, {"type": "tool_use", "id": "toolu_1", "name": "submit_plan", "input": GOOD}],
    })
    assert AnthropicPlanner.parse_response(message) == GOOD
    empty = Message.model_validate({**message.model_dump(), "content": [{"type": "text", "text": "no"}]})
    with pytest.raises(ExecutionError):
        AnthropicPlanner.parse_response(empty)
