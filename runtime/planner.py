"""Planners and the repair loop: a model proposes, the gate disposes.

A :class:`Planner` turns a :class:`PlanningContext` (the request, the spec, where the instance
is, and every earlier attempt with its structured rejection) into plan data — JSON as a model
writes it. :func:`plan_with_repair` asks for a plan, admits it with the
:class:`~railguard.verifier.admission.Gate`, and hands each rejection back to the planner, up
to a bound. A plan that is not a plan (unusable JSON, an ``actor`` field) counts as an
attempt too, answered with its one-sentence error.

:class:`ScriptedPlanner` replays fixed answers (deterministic: tests and the demo).
:class:`OpenAIPlanner` and :class:`AnthropicPlanner` call the official SDKs (extras
``railguard[openai]`` and ``railguard[anthropic]``) with the spec's ``submit_plan`` tool forced;
their request building (:meth:`~OpenAIPlanner.build_request`) and response parsing
(:meth:`~OpenAIPlanner.parse_response`) are plain functions of SDK types, tested without a
network. Who acts is never asked of the model: the principal is passed beside the plan.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from railguard.spec.codec import canonical_json, encode_values
from railguard.spec.model import Spec
from railguard.verifier.admission import (
    Admission,
    Admitted,
    Configuration,
    Gate,
    Principal,
    Rejected,
)
from railguard.verifier.plans import PlanError, parse_plan
from railguard.verifier.tools import SUBMIT_PLAN, tools

from .errors import ExecutionError

__all__ = [
    "AnthropicPlanner",
    "Attempt",
    "OpenAIPlanner",
    "Planner",
    "PlanningContext",
    "PlanningOutcome",
    "ScriptedPlanner",
    "plan_with_repair",
    "rejection_summary",
]

DEFAULT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Attempt:
    """One proposal: the data the planner returned and the gate's answer (an admission, or
    the :class:`PlanError` of a proposal that is not a usable plan)."""

    proposal: Any
    answer: Admission | PlanError

    @property
    def admitted(self) -> bool:
        return isinstance(self.answer, Admitted)

    def feedback(self) -> dict[str, Any]:
        """What the planner is told about this attempt (JSON data)."""
        if isinstance(self.answer, PlanError):
            return {"admitted": False, "code": "unusable", "message": self.answer.message}
        return self.answer.to_json()


@dataclass(frozen=True, slots=True)
class PlanningContext:
    """What a planner sees: the request, the spec, the principal's roles (for the tools it is
    offered; its identity is not the model's to choose), where the instance is, the goal, and
    the earlier attempts."""

    request: str
    spec: Spec
    roles: frozenset[str]
    state: str
    values: Mapping[str, Any]
    goal: str | None = None
    instance: str | None = None
    attempts: tuple[Attempt, ...] = ()

    def prompt(self) -> str:
        """The user-facing text of the request, with where the instance is."""
        where = f"The `{self.spec.name}` instance{f' `{self.instance}`' if self.instance else ''} is in state `{self.state}` with {canonical_json(encode_values(self.values))}."
        goal = f" The plan must end in `{self.goal}`." if self.goal else ""
        return f"{self.request}\n\n{where}{goal} Call `{SUBMIT_PLAN}` with the whole plan."


class Planner(Protocol):
    """Context in, plan data out."""

    def propose(self, context: PlanningContext) -> Any: ...


@dataclass(frozen=True, slots=True)
class PlanningOutcome:
    """Every attempt in order; ``admission`` is the admitted one, if any."""

    attempts: tuple[Attempt, ...]

    @property
    def admission(self) -> Admitted | None:
        last = self.attempts[-1].answer if self.attempts else None
        return last if isinstance(last, Admitted) else None


def plan_with_repair(
    gate: Gate,
    planner: Planner,
    principal: Principal,
    start: Configuration,
    *,
    request: str,
    goal: str | None = None,
    max_attempts: int = DEFAULT_ATTEMPTS,
) -> PlanningOutcome:
    """Ask ``planner`` for a plan and admit it; on a rejection ask again with the rejection in
    the context, at most ``max_attempts`` times in all."""
    if max_attempts < 1:
        raise ExecutionError("the repair loop needs at least one attempt")
    attempts: list[Attempt] = []
    for _ in range(max_attempts):
        context = PlanningContext(request, gate.spec, principal.roles, start.state, start.values, goal, start.instance, tuple(attempts))
        proposal = planner.propose(context)
        try:
            plan = parse_plan(proposal)
        except PlanError as exc:
            attempts.append(Attempt(proposal, exc))
            continue
        answer = gate.admit(plan, principal, start, goal=goal)
        attempts.append(Attempt(proposal, answer))
        if isinstance(answer, Admitted):
            break
    return PlanningOutcome(tuple(attempts))


@dataclass
class ScriptedPlanner:
    """Answers with ``script`` in order: plan data, or a function of the context that returns
    it. Running out of answers is an error (a test that asks more than it scripted)."""

    script: Sequence[Any | Callable[[PlanningContext], Any]]
    seen: list[PlanningContext] = field(default_factory=list)

    def propose(self, context: PlanningContext) -> Any:
        if len(self.seen) >= len(self.script):
            raise ExecutionError(f"the scripted planner has only {len(self.script)} answers")
        answer = self.script[len(self.seen)]
        self.seen.append(context)
        return answer(context) if callable(answer) else answer


SYSTEM_PROMPT = (
    "You plan steps of a verified workflow. You cannot execute anything: you propose a whole "
    "plan with the `submit_plan` tool, and the gate admits it only if every step is allowed "
    "for the caller. If a plan is rejected, read the reason, the allowed events and the "
    "suggested completion, and submit a repaired plan. Never try to choose who acts."
)


def _plan_tool(spec: Spec, fmt: str, roles: Iterable[str]) -> dict[str, Any]:
    offered = tools(spec, fmt, roles=roles)  # type: ignore[arg-type]
    return next(t for t in offered if (t.get("function") or t).get("name") == SUBMIT_PLAN)


def _arguments(proposal: Any) -> str:
    return json.dumps(proposal, ensure_ascii=False, default=str)


class OpenAIPlanner:
    """A planner backed by the OpenAI Chat Completions API (``pip install railguard[openai]``).

    ``client`` is an ``openai.OpenAI`` (or anything with ``chat.completions.create``)."""

    def __init__(self, client: Any, model: str, *, temperature: float | None = None) -> None:
        self.client = client
        self.model = model
        self.temperature = temperature

    def build_request(self, context: PlanningContext) -> dict[str, Any]:
        """The keyword arguments of ``client.chat.completions.create`` for ``context``: the
        prompt, the spec's strict ``submit_plan`` tool (forced), and each earlier attempt as
        the assistant's tool call followed by the gate's answer as the tool's result."""
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": context.prompt()},
        ]
        for number, attempt in enumerate(context.attempts, start=1):
            call_id = f"call_{number}"
            messages.append({
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": call_id, "type": "function", "function": {"name": SUBMIT_PLAN, "arguments": _arguments(attempt.proposal)}}],
            })
            messages.append({"role": "tool", "tool_call_id": call_id, "content": json.dumps(attempt.feedback(), ensure_ascii=False)})
        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "tools": [_plan_tool(context.spec, "openai", context.roles)],
            "tool_choice": {"type": "function", "function": {"name": SUBMIT_PLAN}},
            "parallel_tool_calls": False,
        }
        if self.temperature is not None:
            request["temperature"] = self.temperature
        return request

    @staticmethod
    def parse_response(response: Any) -> Any:
        """The plan data in a ``ChatCompletion``: the arguments of its ``submit_plan`` call, as
        JSON data (or the raw text if it is not JSON, which the gate then refuses as
        unusable). No such call is an :class:`ExecutionError`."""
        for choice in response.choices:
            for call in choice.message.tool_calls or ():
                function = getattr(call, "function", None)
                if function is not None and function.name == SUBMIT_PLAN:
                    try:
                        return json.loads(function.arguments)
                    except json.JSONDecodeError:
                        return function.arguments
        raise ExecutionError("the model answered without calling `submit_plan`")

    def propose(self, context: PlanningContext) -> Any:
        return self.parse_response(self.client.chat.completions.create(**self.build_request(context)))


class AnthropicPlanner:
    """A planner backed by the Anthropic Messages API (``pip install railguard[anthropic]``).

    ``client`` is an ``anthropic.Anthropic`` (or anything with ``messages.create``)."""

    def __init__(self, client: Any, model: str, *, max_tokens: int = 2048) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    def build_request(self, context: PlanningContext) -> dict[str, Any]:
        """The keyword arguments of ``client.messages.create`` for ``context``: the prompt,
        the spec's ``submit_plan`` tool (forced), and each earlier attempt as the assistant's
        ``tool_use`` followed by the gate's answer as an error ``tool_result``."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": context.prompt()}]
        for number, attempt in enumerate(context.attempts, start=1):
            use_id = f"toolu_{number:02d}"
            proposal = attempt.proposal if isinstance(attempt.proposal, dict) else {"text": str(attempt.proposal)}
            messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": use_id, "name": SUBMIT_PLAN, "input": proposal}]})
            messages.append({
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use_id, "content": json.dumps(attempt.feedback(), ensure_ascii=False), "is_error": not attempt.admitted}],
            })
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": SYSTEM_PROMPT,
            "messages": messages,
            "tools": [_plan_tool(context.spec, "anthropic", context.roles)],
            "tool_choice": {"type": "tool", "name": SUBMIT_PLAN},
        }

    @staticmethod
    def parse_response(response: Any) -> Any:
        """The plan data in a ``Message``: the input of its ``submit_plan`` tool use."""
        for block in response.content:
            if getattr(block, "type", None) == "tool_use" and block.name == SUBMIT_PLAN:
                return block.input
        raise ExecutionError("the model answered without calling `submit_plan`")

    def propose(self, context: PlanningContext) -> Any:
        return self.parse_response(self.client.messages.create(**self.build_request(context)))


def rejection_summary(answer: Admission | PlanError) -> str:
    """One line for people: ``admitted`` or the reason code and sentence."""
    if isinstance(answer, PlanError):
        return f"unusable: {answer.message}"
    if isinstance(answer, Rejected):
        return f"rejected at step {answer.step + 1} ({answer.code}): {answer.message}"
    return "admitted: " + " → ".join(answer.path)
