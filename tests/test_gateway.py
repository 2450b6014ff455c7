"""The gateway's Python API: the tools a principal sees, event tools and plans admitted then
executed and audited, every refusal an answer with a structured body, audited on the
instance's chain or in the access log, and the store's audit verifying throughout."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from railguard.runtime import Effects, SQLiteStore, StaticDirectory
from railguard.runtime.auth import NotAuthenticated
from railguard.runtime.engine import Engine
from railguard.runtime.gateway import ACCESS_LOG, ACCESS_WORKFLOW, Gateway, ToolAnswer, token_digest
from railguard.runtime.integrity import verify_store
from railguard.spec import load
from railguard.verifier.admission import Principal
from railguard.verifier.certificate import issue, sign
from railguard.verifier.checks import verify
from railguard.verifier.keys import generate_key
from railguard.verifier.tools import TOOL_NAME, fit_tool_name

from .conftest import EXAMPLES

KEY = generate_key()
PEOPLE = {
    "alice": ["support"],
    "bob": ["manager"],
    "carol": ["payments"],
    "dana": ["support", "manager"],
    "erin": ["manager", "payments"],
    "zed": [],
}


@pytest.fixture(scope="module")
def refund() -> Any:
    spec = load(EXAMPLES / "refund.yaml")
    return spec, sign(issue(verify(spec)), KEY)


def _gateway(refund: Any, store: Any = None, directory: Any = None) -> Gateway:
    spec, certificate = refund
    effects = Effects()
    effects.register("payments.refund", lambda call: {"refund_id": f"re-{call.instance}", "amount": call.values["amount"]})
    engine = Engine(spec, store or SQLiteStore(":memory:"), directory or StaticDirectory(PEOPLE), effects=effects, certificate=certificate, trusted_keys=[KEY])
    return Gateway(spec, engine, certificate=certificate, trusted_keys=[KEY])


def _valid(gateway: Gateway, principal: Principal, tool: str, answer: ToolAnswer) -> None:
    """The structured answer matches the tool's declared output schema."""
    schemas = {t["name"]: t["outputSchema"] for t in gateway.tools(principal)}
    if tool in schemas:
        jsonschema.validate(answer.structured, schemas[tool])


def _snapshot(gateway: Gateway, instance: str) -> Any:
    return gateway.store.get(instance), [r.hash for r in gateway.store.audit(instance)]


def test_two_principals_see_the_tools_of_their_roles_and_nothing_else(refund: Any) -> None:
    gateway = _gateway(refund)
    alice = [t["name"] for t in gateway.tools(gateway.principal("alice"))]
    bob = [t["name"] for t in gateway.tools(gateway.principal("bob"))]
    assert alice == ["request", "cancel", "start_instance", "get_instance", "submit_plan"]
    assert bob == ["approve", "reject", "start_instance", "get_instance", "submit_plan"]
    assert gateway.tools(gateway.principal("zed")) == []
    for tool in gateway.tools(gateway.principal("dana")):
        assert tool["outputSchema"]["type"] == "object"
        jsonschema.Draft202012Validator.check_schema(tool["inputSchema"])
        jsonschema.Draft202012Validator.check_schema(tool["outputSchema"])
    request = next(t for t in gateway.tools(gateway.principal("alice")) if t["name"] == "request")
    assert request["inputSchema"]["required"] == ["instance", "amount"]
    assert request["inputSchema"]["additionalProperties"] is False
    plan = next(t for t in gateway.tools(gateway.principal("alice")) if t["name"] == "submit_plan")
    events = [o["properties"]["event"]["enum"][0] for o in plan["inputSchema"]["properties"]["steps"]["items"]["anyOf"]]
    assert events == ["request", "cancel"]


def test_roles_given_at_launch_only_narrow_what_the_directory_gives(refund: Any) -> None:
    gateway = _gateway(refund)
    assert gateway.principal("dana", ["support"]).roles == frozenset({"support"})
    assert [t["name"] for t in gateway.tools(gateway.principal("dana", ["manager"]))][:2] == ["approve", "reject"]
    with pytest.raises(NotAuthenticated, match="does not give `alice` the role `manager`"):
        gateway.principal("alice", ["manager"])
    with pytest.raises(NotAuthenticated, match="`mallory` is not a principal"):
        gateway.principal("mallory")


def test_a_refund_runs_to_success_through_event_tools_with_every_step_audited(refund: Any) -> None:
    gateway = _gateway(refund)
    alice, bob, carol = (gateway.principal(p) for p in ("alice", "bob", "carol"))
    started = gateway.call(alice, "start_instance", {"instance": "r-1"})
    assert not started.is_error
    assert started.structured["state"] == "draft"
    assert [o["tool"] for o in started.structured["allowed"]] == ["request", "cancel"]
    _valid(gateway, alice, "start_instance", started)
    requested = gateway.call(alice, "request", {"instance": "r-1", "amount": 120})
    assert not requested.is_error, requested.text
    assert requested.structured["state"] == "requested"
    assert requested.structured["steps"][0]["accepted"] is True
    _valid(gateway, alice, "request", requested)
    approved = gateway.call(bob, "approve", {"instance": "r-1"})
    assert approved.structured["state"] == "approved"
    paid = gateway.call(carol, "pay", {"instance": "r-1"})
    assert not paid.is_error
    assert paid.structured["state"] == "paid"
    assert paid.structured["status"] == "done"
    assert paid.structured["steps"][0]["effects"] == [{"name": "payments.refund", "ok": True, "attempts": 1, "result": {"refund_id": "re-r-1", "amount": 120}}]
    _valid(gateway, carol, "pay", paid)
    kinds = [(r.kind, r.payload.get("note"), r.payload.get("event")) for r in gateway.store.audit("r-1")]
    assert kinds == [
        ("start", None, None),
        ("note", "plan", None), ("step", None, "request"), ("note", "plan-done", None),
        ("note", "plan", None), ("step", None, "approve"), ("note", "plan-done", None),
        ("note", "plan", None), ("effect-call", None, "pay"), ("step", None, "pay"), ("note", "plan-done", None),
    ]
    assert gateway.store.audit("r-1")[4].payload["actor"] == "bob"
    assert verify_store(gateway.store, [refund[0]]).ok


def test_a_self_approval_is_refused_with_the_four_eyes_guard_and_audited_on_the_instance(refund: Any) -> None:
    gateway = _gateway(refund)
    dana = gateway.principal("dana")
    gateway.call(dana, "start_instance", {"instance": "r-2"})
    gateway.call(dana, "request", {"instance": "r-2", "amount": 300})
    before = gateway.store.get("r-2")
    refused = gateway.call(dana, "approve", {"instance": "r-2"})
    assert refused.is_error
    assert refused.code == "guard-false"
    assert "actor != requested_by" in refused.structured["message"]
    assert refused.structured["state"] == "requested"
    assert {o["event"] for o in refused.structured["allowed"]} == {"approve", "reject", "cancel"}
    _valid(gateway, dana, "approve", refused)
    after = gateway.store.get("r-2")
    assert after is not None
    assert before is not None
    assert (after.state, after.values) == (before.state, before.values)
    last = gateway.store.audit("r-2")[-1].payload
    assert last["note"] == "plan-rejected"
    assert last["admission"]["code"] == "guard-false"
    assert last["actor"] == "dana"
    approved = gateway.call(gateway.principal("bob"), "approve", {"instance": "r-2"})
    assert approved.structured["state"] == "approved"
    assert verify_store(gateway.store, [refund[0]]).ok


def test_a_rejected_plan_is_repaired_from_its_completion_and_runs_to_success(refund: Any) -> None:
    gateway = _gateway(refund)
    alice, erin = gateway.principal("alice"), gateway.principal("erin")
    gateway.call(alice, "start_instance", {"instance": "r-3"})
    gateway.call(alice, "request", {"instance": "r-3", "amount": 80})
    rejected = gateway.call(erin, "submit_plan", {"workflow": "refund", "instance": "r-3", "steps": [{"event": "pay", "params": {}}]})
    assert rejected.is_error
    assert rejected.code == "not-enabled"
    assert rejected.structured["step"] == 0
    completion = rejected.structured["completion"]
    assert [s["event"] for s in completion] == ["approve", "pay"]
    _valid(gateway, erin, "submit_plan", rejected)
    repaired = gateway.call(erin, "submit_plan", {"workflow": "refund", "instance": "r-3", "steps": completion})
    assert not repaired.is_error, repaired.text
    assert repaired.structured["path"] == ["requested", "approved", "paid"]
    assert [s["event"] for s in repaired.structured["steps"]] == ["approve", "pay"]
    assert repaired.structured["state"] == "paid"
    _valid(gateway, erin, "submit_plan", repaired)
    notes = [r.payload.get("note") for r in gateway.store.audit("r-3") if r.kind == "note"]
    assert notes == ["plan", "plan-done", "plan-rejected", "plan", "plan-done"]


def test_a_plan_for_a_new_instance_starts_it_and_runs(refund: Any) -> None:
    gateway = _gateway(refund)
    answer = gateway.call(gateway.principal("alice"), "submit_plan", {"workflow": "refund", "instance": "r-new", "steps": [{"event": "request", "params": {"amount": 10}}]})
    assert not answer.is_error, answer.text
    assert answer.structured["state"] == "requested"
    assert [r.kind for r in gateway.store.audit("r-new")][:2] == ["start", "note"]


def test_a_plan_rejected_for_a_new_instance_creates_nothing_and_is_audited_in_the_access_log(refund: Any) -> None:
    gateway = _gateway(refund)
    answer = gateway.call(gateway.principal("alice"), "submit_plan", {"workflow": "refund", "instance": "r-never", "steps": [{"event": "pay"}]})
    assert answer.is_error
    assert answer.code == "not-enabled"
    assert gateway.store.get("r-never") is None
    logged = gateway.access.records()[-1].payload
    assert (logged["event"], logged["actor"], logged["target"], logged["code"], logged["step"]) == ("plan-rejected", "alice", "r-never", "not-enabled", 0)
    assert logged["plan"]["steps"] == [{"event": "pay", "params": {}}]
    assert verify_store(gateway.store).ok


def test_get_instance_shows_state_variables_and_the_events_this_principal_may_fire_now(refund: Any) -> None:
    gateway = _gateway(refund)
    alice, bob = gateway.principal("alice"), gateway.principal("bob")
    gateway.call(alice, "start_instance", {"instance": "r-4"})
    gateway.call(alice, "request", {"instance": "r-4", "amount": 50})
    shown = gateway.call(bob, "get_instance", {"instance": "r-4"})
    assert not shown.is_error
    assert shown.structured["values"] == {"amount": 50, "requested_by": "alice", "approved_by": None}
    assert [o["event"] for o in shown.structured["allowed"]] == ["approve", "reject"]
    assert shown.structured["allowed"][0]["params"]["properties"] == {}
    _valid(gateway, bob, "get_instance", shown)
    alice_view = gateway.call(alice, "get_instance", {"instance": "r-4"})
    assert [o["event"] for o in alice_view.structured["allowed"]] == ["cancel"]


def test_a_tool_the_principal_may_not_use_is_refused_and_audited_on_the_instance(refund: Any) -> None:
    gateway = _gateway(refund)
    alice = gateway.principal("alice")
    gateway.call(alice, "start_instance", {"instance": "r-5"})
    gateway.call(alice, "request", {"instance": "r-5", "amount": 50})
    row = gateway.store.get("r-5")
    refused = gateway.call(alice, "approve", {"instance": "r-5"})
    assert refused.is_error
    assert refused.code == "tool-not-allowed"
    assert [o["tool"] for o in refused.structured["allowed"]] == ["cancel"]
    last = gateway.store.audit("r-5")[-1].payload
    assert (last["kind"], last["note"], last["tool"], last["actor"]) == ("note", "gateway-refused", "approve", "alice")
    after = gateway.store.get("r-5")
    assert after is not None
    assert row is not None
    assert (after.state, after.values, after.version) == (row.state, row.values, row.version + 1)
    assert verify_store(gateway.store, [refund[0]]).ok


@pytest.mark.parametrize(
    ("tool", "arguments", "code"),
    [
        ("request", {"instance": "r-6", "amount": True}, "bad-arguments"),
        ("request", {"instance": "r-6", "amount": "100"}, "bad-arguments"),
        ("request", {"instance": "r-6", "amount": 100.5}, "bad-arguments"),
        ("request", {"instance": "r-6", "amount": 100, "note": "x"}, "bad-arguments"),
        ("request", {"instance": "r-6"}, "bad-arguments"),
        ("request", {"instance": 7, "amount": 100}, "bad-arguments"),
        ("request", {"instance": "r-6", "amount": 100, "actor": "bob"}, "identity"),
        ("request", {"instance": "r-6", "amount": 100, "roles": ["manager"]}, "identity"),
        ("submit_plan", {"workflow": "refund", "instance": "r-6", "actor": "bob", "steps": []}, "identity"),
        ("submit_plan", {"workflow": "refund", "instance": "r-6", "steps": [{"event": "request", "as": "bob"}]}, "identity"),
        ("start_instance", {"instance": "r-6", "as": "bob"}, "identity"),
        ("request", {"instance": "r-6", "amount": "9" * 300_000}, "too-large"),
        ("no_such_tool", {"instance": "r-6"}, "unknown-tool"),
        ("request", {"instance": "railguard:gateway-access", "amount": 100}, "bad-arguments"),
    ],
)
def test_malformed_arguments_are_refused_before_admission_and_leave_the_instance_unchanged(refund: Any, tool: str, arguments: dict[str, Any], code: str) -> None:
    gateway = _gateway(refund)
    alice = gateway.principal("alice")
    gateway.call(alice, "start_instance", {"instance": "r-6"})
    before = _snapshot(gateway, "r-6")
    answer = gateway.call(alice, tool, arguments)
    assert answer.is_error
    assert answer.code == code, answer.text
    assert answer.structured["ok"] is False
    assert "Traceback" not in answer.text
    assert _snapshot(gateway, "r-6") == before
    logged = gateway.access.records()[-1].payload
    assert (logged["kind"], logged["event"], logged["code"], logged["actor"]) == ("access", "refused", code, "alice")
    assert verify_store(gateway.store, [refund[0]]).ok


def test_a_value_outside_the_domain_is_admissions_to_refuse_with_a_repair_hint(refund: Any) -> None:
    gateway = _gateway(refund)
    alice = gateway.principal("alice")
    gateway.call(alice, "start_instance", {"instance": "r-7"})
    answer = gateway.call(alice, "request", {"instance": "r-7", "amount": 6000})
    assert answer.is_error
    assert answer.code == "guard-false"
    assert gateway.store.audit("r-7")[-1].payload["note"] == "plan-rejected"


def test_an_unknown_instance_and_another_workflows_row_are_refused_alike(refund: Any) -> None:
    gateway = _gateway(refund)
    alice = gateway.principal("alice")
    gateway.call(alice, "request", {"instance": "r-8"})  # malformed: audited in the access log
    missing = gateway.call(alice, "request", {"instance": "nope", "amount": 5})
    assert missing.code == "unknown-instance"
    hidden = gateway.call(alice, "get_instance", {"instance": ACCESS_LOG})
    assert hidden.code == "bad-arguments"
    assert gateway.store.get("nope") is None
    row = gateway.store.get(ACCESS_LOG)
    assert row is not None
    assert row.workflow == ACCESS_WORKFLOW
    assert [r.payload["code"] for r in gateway.access.records()] == ["bad-arguments", "unknown-instance", "bad-arguments"]
    assert verify_store(gateway.store, [refund[0]]).ok


def test_a_principal_with_no_part_in_the_workflow_is_refused_every_tool(refund: Any) -> None:
    gateway = _gateway(refund)
    gateway.call(gateway.principal("alice"), "start_instance", {"instance": "r-9"})
    zed = gateway.principal("zed")
    assert gateway.call(zed, "get_instance", {"instance": "r-9"}).code == "tool-not-allowed"
    assert gateway.call(zed, "approve", {"instance": "r-9"}).code == "tool-not-allowed"


def test_starting_an_existing_instance_is_refused_and_the_instance_is_unchanged(refund: Any) -> None:
    gateway = _gateway(refund)
    alice = gateway.principal("alice")
    gateway.call(alice, "start_instance", {"instance": "r-10"})
    before = _snapshot(gateway, "r-10")
    again = gateway.call(alice, "start_instance", {"instance": "r-10"})
    assert again.code == "instance-exists"
    assert _snapshot(gateway, "r-10") == before


def test_the_access_log_id_taken_by_a_workflow_instance_is_refused_at_construction(refund: Any) -> None:
    spec, certificate = refund
    store = SQLiteStore(":memory:")
    engine = Engine(spec, store, StaticDirectory(PEOPLE), effects=_gateway(refund).workflows["refund"].engine.effects, certificate=certificate, trusted_keys=[KEY])
    engine.start("taken", "alice")
    from railguard.runtime import ExecutionError

    with pytest.raises(ExecutionError, match="cannot be the gateway's access log"):
        Gateway(spec, engine, certificate=certificate, trusted_keys=[KEY], access_log="taken")


def test_the_access_log_survives_a_concurrent_writer_without_losing_a_record(refund: Any, tmp_path: Any) -> None:
    path = tmp_path / "shared.db"
    first = _gateway(refund, SQLiteStore(path))
    second = _gateway(refund, SQLiteStore(path))
    alice = first.principal("alice")
    for n in range(10):
        (first if n % 2 else second).call(alice, "nothing", {"n": n})
    codes = [r.payload["code"] for r in first.access.records()]
    assert codes == ["unknown-tool"] * 10
    assert verify_store(SQLiteStore(path), [refund[0]]).ok


def test_directory_tokens_are_stored_as_digests_and_matched_in_constant_time(tmp_path: Any) -> None:
    from railguard.runtime import ExecutionError, load_directory

    path = tmp_path / "people.yaml"
    path.write_text(f"alice: [support]\nbob:\n  roles: [manager]\n  tokens: ['{token_digest('s3cret-bob')}']\n", encoding="utf-8")
    directory = load_directory(path)
    assert directory.roles_of("bob") == frozenset({"manager"})
    assert directory.principal_for_token("s3cret-bob") == "bob"
    assert directory.principal_for_token("s3cret-bo") is None
    assert directory.principal_for_token(token_digest("s3cret-bob")) is None
    path.write_text("bob:\n  roles: [manager]\n  tokens: ['s3cret-bob']\n", encoding="utf-8")
    with pytest.raises(ExecutionError, match="must be stored as `sha256:<64 hex digits>`"):
        load_directory(path)


def test_racing_approvals_from_two_gateways_on_one_store_apply_once_and_the_other_is_answered(refund: Any, tmp_path: Any) -> None:
    import threading

    path = tmp_path / "race.db"
    setup = _gateway(refund, SQLiteStore(path))
    alice = setup.principal("alice")
    for n in range(6):
        setup.call(alice, "start_instance", {"instance": f"race-{n}"})
        setup.call(alice, "request", {"instance": f"race-{n}", "amount": 10})
    gateways = [_gateway(refund, SQLiteStore(path)) for _ in range(2)]
    answers: list[list[ToolAnswer]] = [[], []]
    barrier = threading.Barrier(2)

    def approve(side: int) -> None:
        gateway = gateways[side]
        who = gateway.principal("bob" if side == 0 else "erin")
        for n in range(6):
            barrier.wait()
            answers[side].append(gateway.call(who, "approve", {"instance": f"race-{n}"}))

    threads = [threading.Thread(target=approve, args=(side,)) for side in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = SQLiteStore(path)
    for n in range(6):
        pair = (answers[0][n], answers[1][n])
        assert sorted(a.is_error for a in pair) == [False, True]
        refused = next(a for a in pair if a.is_error)
        assert refused.code in ("not-enabled", "conflict")
        assert refused.structured["message"]
        steps = [r for r in store.audit(f"race-{n}") if r.kind == "step" and r.payload["event"] == "approve"]
        assert len(steps) == 1
        row = store.get(f"race-{n}")
        assert row is not None
        assert row.state == "approved"
    assert verify_store(store, [refund[0]]).ok


def test_a_row_edited_behind_the_engines_back_is_refused_as_unavailable_and_not_acted_on(refund: Any, tmp_path: Any) -> None:
    import sqlite3

    path = tmp_path / "edited.db"
    gateway = _gateway(refund, SQLiteStore(path))
    alice = gateway.principal("alice")
    gateway.call(alice, "start_instance", {"instance": "r-edit"})
    gateway.call(alice, "request", {"instance": "r-edit", "amount": 10})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE instances SET vals = ? WHERE id = 'r-edit'", ('{"amount":4000,"approved_by":null,"requested_by":"alice"}',))
    fresh = _gateway(refund, SQLiteStore(path))
    shown = fresh.call(fresh.principal("bob"), "get_instance", {"instance": "r-edit"})
    assert shown.code == "unavailable"
    assert "not vouched for by its audit log" in shown.structured["message"]
    approved = fresh.call(fresh.principal("bob"), "approve", {"instance": "r-edit"})
    assert approved.code == "unavailable"
    row = fresh.store.get("r-edit")
    assert row is not None
    assert (row.state, row.version) == ("requested", 4)


def test_the_readme_gateway_example_runs(refund: Any) -> None:
    from .conftest import ROOT

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## The gateway (MCP)", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python", 2)[2].split("```", 1)[0]
    spec, certificate = refund
    engine = _gateway(refund).workflows["refund"].engine
    scope: dict[str, Any] = {"spec": spec, "engine": engine, "certificate": certificate, "ci": KEY}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["answer"].is_error is False
    assert scope["answer"].structured["state"] == "requested"


def test_serve_hash_token_prints_the_digest_a_directory_stores(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from railguard.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-bob\n"))
    assert main(["serve", "--hash-token"]) == 0
    assert capsys.readouterr().out == token_digest("s3cret-bob") + "\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve"], "give at least one SPEC to serve"),
        (["serve", str(EXAMPLES / "refund.yaml"), "--allow-unverified", "t", "--actor", "alice"], "give the --directory FILE"),
        (["serve", str(EXAMPLES / "refund.yaml"), "--allow-unverified", "t", "--directory", "people.yaml"], "give --actor ID"),
        (["serve", str(EXAMPLES / "refund.yaml"), "--allow-unverified", "t", "--directory", "people.yaml", "--transport", "http", "--actor", "bob"], "--actor and --roles are for stdio"),
    ],
)
def test_serve_refuses_unusable_arguments_in_one_sentence(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from railguard.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("railguard: error: ")
    assert message in err[0]


def test_two_workflows_on_one_store_are_served_with_prefixed_tools(refund: Any) -> None:
    from railguard.runtime.engine import handler_names
    from railguard.runtime.gate import PlanGateway
    from railguard.verifier.admission import Gate

    order = load(EXAMPLES / "order.yaml")
    order_certificate = sign(issue(verify(order)), KEY)
    directory = StaticDirectory({**PEOPLE, "cus": ["customer"], "sam": ["customer", "support"]})
    first = _gateway(refund, directory=directory)
    store = first.store
    effects = Effects()
    for name in handler_names(order):
        effects.register(name, lambda call: {"ok": True})
    engine = Engine(order, store, directory, effects=effects, certificate=order_certificate, trusted_keys=[KEY])
    refund_engine = first.workflows["refund"].engine
    gateway = Gateway(refund[0], refund_engine, certificate=refund[1], trusted_keys=[KEY], more=[PlanGateway(engine, Gate(order, order_certificate, trusted_keys=[KEY]))])
    sam = gateway.principal("sam")
    names = [t["name"] for t in gateway.tools(sam)]
    assert names == ["refund__request", "refund__cancel", "order__place", "order__cancel", "start_instance", "get_instance", "submit_plan"]
    assert all(TOOL_NAME.fullmatch(name) for name in names)  # still valid OpenAI/Anthropic tool names
    assert fit_tool_name("w" * 40 + "__" + "e" * 40) != fit_tool_name("w" * 40 + "__" + "e" * 39 + "f")
    assert all(TOOL_NAME.fullmatch(fit_tool_name(text)) for text in ("w" * 80, "a.b", "ü__x"))
    start = next(t for t in gateway.tools(sam) if t["name"] == "start_instance")
    assert start["inputSchema"]["properties"]["workflow"]["enum"] == ["refund", "order"]
    assert gateway.call(sam, "start_instance", {"instance": "o-1"}).code == "bad-arguments"
    started = gateway.call(sam, "start_instance", {"instance": "o-1", "workflow": "order"})
    assert started.structured["workflow"] == "order"
    assert [o["tool"] for o in started.structured["allowed"]] == ["order__place"]
    assert gateway.call(sam, "refund__request", {"instance": "o-1", "amount": 5}).code == "unknown-instance"
    assert [t["name"] for t in gateway.tools(gateway.principal("cus"))][:2] == ["order__place", "order__cancel"]
    assert gateway.call(gateway.principal("alice"), "get_instance", {"instance": "o-1"}).code == "not-a-participant"


def test_python_callers_passing_objects_get_answers_not_exceptions(refund: Any) -> None:
    gateway = _gateway(refund)
    alice = gateway.principal("alice")
    gateway.call(alice, "start_instance", {"instance": "r-py"})
    before = _snapshot(gateway, "r-py")
    assert gateway.call(alice, "request", {1: "x", "instance": "r-py"}).code == "bad-arguments"
    assert gateway.call(alice, "request", ["instance", "r-py"]).code == "bad-arguments"  # type: ignore[arg-type]
    assert gateway.call(alice, "request", {"instance": "r-py", "amount": object()}).code == "bad-arguments"
    assert gateway.call(alice, None, {}).code == "unknown-tool"  # type: ignore[arg-type]
    assert _snapshot(gateway, "r-py") == before
