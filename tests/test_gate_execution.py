"""Admitted plans run through the engine step by step, audited with the plan, the admission
and the certificate; a step refused at execution time stops the plan fail-closed."""

from __future__ import annotations

from typing import Any

import pytest

from railguard.runtime import (
    CallableDirectory,
    Effects,
    SQLiteStore,
    StaticDirectory,
    replay_log,
    verify_chain,
)
from railguard.runtime.engine import Engine
from railguard.runtime.gate import PlanGateway
from railguard.spec import load
from railguard.verifier.admission import Gate
from railguard.verifier.certificate import issue, sign
from railguard.verifier.checks import verify
from railguard.verifier.keys import generate_key
from railguard.verifier.plans import OPEN, parse_plan

from .conftest import EXAMPLES

#: The issuer's key: tests sign their certificates, and the gate and engine trust it.
KEY = generate_key()

PEOPLE = {"alice": ["support"], "bob": ["manager"], "carol": ["payments"]}


def _effects() -> Effects:
    effects = Effects()
    effects.register("payments.refund", lambda call: {"ok": True})
    return effects


@pytest.fixture
def refund() -> Any:
    spec = load(EXAMPLES / "refund.yaml")
    return spec, sign(issue(verify(spec)), KEY)


def _gateway(spec: Any, certificate: Any, directory: Any) -> PlanGateway:
    engine = Engine(spec, SQLiteStore(":memory:"), directory, effects=_effects(), certificate=certificate, trusted_keys=[KEY])
    return PlanGateway(engine, Gate(spec, certificate, trusted_keys=[KEY]))


def test_an_admitted_plan_runs_and_its_plan_admission_and_certificate_are_audited(refund: Any) -> None:
    spec, certificate = refund
    gateway = _gateway(spec, certificate, StaticDirectory(PEOPLE))
    run = gateway.execute(parse_plan({"workflow": "refund", "steps": [{"event": "request", "params": {"amount": 120}}]}), "alice", instance="r-1")
    assert run.completed
    assert run.state == "requested"
    assert run.admission.admitted
    assert run.admission.end == run.state
    records = gateway.engine.history("r-1")
    assert [r.kind for r in records] == ["start", "note", "step", "note"]
    note = records[1].payload
    assert note["note"] == "plan"
    assert note["actor"] == "alice"
    assert note["certificate"] == certificate.fingerprint
    assert note["plan"]["steps"][0]["event"] == "request"
    assert note["admission"]["path"] == ["draft", "requested"]
    assert records[-1].payload["note"] == "plan-done"
    assert verify_chain(records) is None
    assert replay_log(spec, records).ok
    from railguard.runtime.integrity import verify_store

    assert verify_store(gateway.engine.store).ok


def test_later_plans_continue_an_existing_instance(refund: Any) -> None:
    spec, certificate = refund
    gateway = _gateway(spec, certificate, StaticDirectory(PEOPLE))
    gateway.execute(parse_plan({"workflow": "refund", "steps": [{"event": "request", "params": {"amount": 120}}]}), "alice", instance="r-1")
    gateway.execute(parse_plan({"workflow": "refund", "steps": [{"event": "approve"}]}), "bob", instance="r-1")
    run = gateway.execute(parse_plan({"workflow": "refund", "steps": [{"event": "pay"}]}), "carol", instance="r-1", goal="paid")
    assert run.completed
    assert gateway.engine.get("r-1").state == "paid"
    assert replay_log(spec, gateway.engine.history("r-1")).ok


def test_a_rejected_plan_starts_nothing_and_is_audited_on_an_existing_instance(refund: Any) -> None:
    spec, certificate = refund
    gateway = _gateway(spec, certificate, StaticDirectory(PEOPLE))
    run = gateway.execute(parse_plan({"workflow": "refund", "steps": [{"event": "pay"}]}), "carol", instance="r-9")
    assert not run.admission.admitted
    assert run.instance is None
    assert run.results == ()
    assert gateway.engine.store.get("r-9") is None
    gateway.execute(parse_plan({"workflow": "refund", "steps": [{"event": "request", "params": {"amount": 1}}]}), "alice", instance="r-1")
    again = gateway.execute(parse_plan({"workflow": "refund", "steps": [{"event": "pay"}]}), "carol", instance="r-1")
    assert again.stopped_at == 0
    last = gateway.engine.history("r-1")[-1]
    assert last.payload["note"] == "plan-rejected"
    assert last.payload["admission"]["code"] == "not-enabled"
    assert gateway.engine.get("r-1").state == "requested"


def test_a_step_refused_at_execution_time_stops_the_plan_fail_closed(refund: Any) -> None:
    spec, certificate = refund
    holder: dict[str, PlanGateway] = {}

    def lookup(who: str) -> set[str]:
        # erin's support role is revoked as soon as her first step has run: the world changed
        store = holder["gateway"].engine.store
        stepped = store.get("r-1") is not None and any(r.kind == "step" for r in store.audit("r-1"))
        return set() if stepped else {"support"}

    gateway = holder["gateway"] = _gateway(spec, certificate, CallableDirectory(lookup))
    plan = parse_plan({"workflow": "refund", "steps": [{"event": "request", "params": {"amount": 5}}, {"event": "cancel"}]})
    run = gateway.execute(plan, "erin", instance="r-1")
    assert run.admission.admitted
    assert not run.completed
    assert run.stopped_at == 1
    assert run.results[-1].code == "permission-denied"
    assert gateway.engine.get("r-1").state == "requested"
    records = gateway.engine.history("r-1")
    assert records[-1].payload["note"] == "plan-stopped"
    assert records[-1].payload["step"] == 1
    assert replay_log(spec, records).ok


def test_an_open_param_takes_its_value_at_run_time_or_stops_the_plan() -> None:
    spec = load(EXAMPLES / "deploy.yaml")
    certificate = sign(issue(verify(spec)), KEY)
    engine = Engine(spec, SQLiteStore(":memory:"), StaticDirectory({"c": ["author", "ci"]}), effects=Effects().register("cluster.rollout", lambda call: {}), certificate=certificate, trusted_keys=[KEY])
    gateway = PlanGateway(engine, Gate(spec, certificate, trusted_keys=[KEY]))
    plan = parse_plan({"workflow": "deploy", "steps": [{"event": "submit", "params": {"environment": {"$open": True}}}, {"event": "report_green"}]})
    assert plan.steps[0].params["environment"] is OPEN
    run = gateway.execute(plan, "c", instance="d-1", bindings={0: {"environment": "production"}})
    assert run.completed
    assert engine.get("d-1").values["environment"] == "production"
    stopped = gateway.execute(plan, "c", instance="d-2")
    assert stopped.stopped_at == 0
    assert "no value" in stopped.reason



def test_the_readme_plan_gate_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import ROOT

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code = text.split("## The plan gate", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(ROOT)
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["answer"].code == "guard-false"
    assert scope["answer"].completion


def test_the_cli_executes_an_admitted_plan_and_admits_the_next_one_on_the_stored_instance(tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from railguard.cli import main

    (tmp_path / "gate_effects.py").write_text(
        "from railguard.runtime import Effects\n\n"
        "def effects():\n    return Effects().register('payments.refund', lambda call: {'ok': True})\n"
    )
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "gate.db"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"workflow": "refund", "steps": [{"event": "request", "params": {"amount": 120}}]}))
    spec = str(EXAMPLES / "refund.yaml")
    base = ["admit", spec, str(plan), "--actor", "alice", "--roles", "support", "--format", "json", "--effects", "gate_effects:effects"]
    assert main([*base, "--execute", "--db", str(db), "--instance", "r-1"]) == 0
    ran = json.loads(capsys.readouterr().out)
    assert ran["completed"] is True
    assert ran["steps"][0]["state"] == "requested"
    plan.write_text(json.dumps({"workflow": "refund", "steps": [{"event": "request", "params": {"amount": 5}}]}))
    assert main([*base, "--db", str(db), "--instance", "r-1"]) == 1
    assert json.loads(capsys.readouterr().out)["code"] == "not-enabled"
    with SQLiteStore(db) as store:
        assert [r.kind for r in store.audit("r-1")] == ["start", "note", "step", "note"]


def test_the_cli_exports_tools_for_each_format(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from railguard.cli import main

    for fmt, key in (("openai", "function"), ("anthropic", "input_schema"), ("mcp", "inputSchema"), ("json-schema", "schema")):
        assert main(["tools", str(EXAMPLES / "order.yaml"), "--format", fmt, "--for", "customer"]) == 0
        defined = json.loads(capsys.readouterr().out)
        assert all(key in tool for tool in defined)
        assert len(defined) == 3  # place, cancel, submit_plan
    assert main(["tools", str(EXAMPLES / "nowhere.yaml")]) == 2
