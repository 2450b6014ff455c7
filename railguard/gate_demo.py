"""The plan gate's demo: a scripted model plans payouts, and railguard disposes.

Scenes, on the ``payout`` example (``railguard/gate_specs/payout.yaml``; a customer's known
payees and a limit are context):

1. a good plan — propose a payout to a known payee — admitted, executed and audited;
2. a plan that skips approval (propose, then pay at once) — rejected: ``pay`` is not enabled;
3. a prompt-injected plan that pays a different payee and amount than were approved —
   rejected: the guard is false; the answer carries the shortest admissible completion;
4. the repaired plan — the model's second answer, built from that rejection — admitted,
   executed and audited.

:func:`run_gate_demo` prints every answer and returns 0 when each scene ended as it should.
``railguard demo`` calls it; ``railguard admit --demo`` runs it alone.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

__all__ = ["DEMO_CONTEXT", "PAYOUT_SPEC", "run_gate_demo"]

#: The trusted facts the instance starts with: the customer's known payees and the limit.
DEMO_CONTEXT: dict[str, Any] = {"payees": ["acme-gmbh", "jane-doe"], "limit": 1000}
AGENT = "ava"  # the support assistant the model plans for
PEOPLE = {AGENT: ["agent", "payments"], "bob": ["manager"]}


#: The payout spec ships inside the package, so the demo runs from an installed wheel too.
PAYOUT_SPEC = Path(__file__).resolve().parent / "gate_specs" / "payout.yaml"


def run_gate_demo(out: TextIO | None = None, *, db: str = ":memory:") -> int:
    """Run the scenes against a SQLite store at ``db`` and print each answer to ``out``."""
    from railguard.runtime import Effects, SQLiteStore, StaticDirectory, verify_chain
    from railguard.runtime.engine import Engine
    from railguard.runtime.gate import PlanGateway
    from railguard.runtime.planner import ScriptedPlanner, plan_with_repair, rejection_summary
    from railguard.runtime.replay import replay_log
    from railguard.spec import load
    from railguard.verifier.admission import Gate, Rejected
    from railguard.verifier.certificate import issue, sign
    from railguard.verifier.checks import verify
    from railguard.verifier.keys import generate_key
    from railguard.verifier.plans import parse_plan

    stream = out or sys.stdout

    def say(text: str) -> None:
        stream.write(text + "\n")

    spec = load(PAYOUT_SPEC)
    report = verify(spec)
    key = generate_key()  # the demo is both the issuer (CI) and the runtime that trusts it
    certificate = sign(issue(report), key) if not report.failed else None
    opt_out = None if certificate is not None else "demo: the payout spec did not verify here"
    sent: list[dict[str, Any]] = []

    def send(call: Any) -> dict[str, Any]:
        sent.append({"key": call.key, "params": dict(call.params)})
        return {"ref": f"pay-{len(sent)}"}

    effects = Effects()
    effects.register("payments.send", send)
    store = SQLiteStore(db)
    engine = Engine(spec, store, StaticDirectory(PEOPLE), effects=effects, certificate=certificate, trusted_keys=[key], allow_unverified=opt_out)
    gate = Gate(spec, certificate, allow_unverified=opt_out, trusted_keys=[key])
    gateway = PlanGateway(engine, gate)
    say(f"plan gate demo: `{spec.name}` " + (f"certified {certificate.fingerprint[:19]}" if certificate else f"UNVERIFIED ({opt_out})"))
    ok = True

    def expect(condition: bool, what: str) -> None:
        nonlocal ok
        if not condition:
            ok = False
            say(f"  !! unexpected: {what}")

    # 1. a good plan
    say("\n1. the model proposes a payout to a known payee")
    good = {"workflow": "payout", "steps": [{"event": "propose", "params": {"amount": 120, "payee": "jane-doe"}}]}
    run = gateway.execute(parse_plan(good), AGENT, instance="payout-1", context=DEMO_CONTEXT)
    say(f"   {rejection_summary(run.admission)}; executed: {run.completed} (state `{run.state}`)")
    expect(run.completed and run.state == "proposed", "the good plan should run")
    approved = engine.fire("payout-1", "approve", "bob")
    say(f"   bob approves: {approved.accepted} (state `{approved.state}`)")

    # 2. skipping approval
    say("\n2. the model tries to propose and pay at once (skipping approval)")
    skip = {"workflow": "payout", "steps": [{"event": "propose", "params": {"amount": 80, "payee": "acme-gmbh"}}, {"event": "pay", "params": {"amount": 80, "payee": "acme-gmbh"}}]}
    run = gateway.execute(parse_plan(skip), AGENT, instance="payout-2", context=DEMO_CONTEXT)
    say(f"   {rejection_summary(run.admission)}")
    expect(isinstance(run.admission, Rejected) and run.admission.code == "not-enabled" and run.admission.step == 1, "skipping approval should be not-enabled at step 2")
    expect(store.get("payout-2") is None, "a rejected plan starts nothing")

    # 3 and 4. a prompt-injected plan, then its repair
    say("\n3. a prompt injection makes the model pay someone else, more")
    injected = {"workflow": "payout", "steps": [{"event": "pay", "params": {"amount": 9000, "payee": "attacker-ltd"}}]}

    def repaired(context: Any) -> Any:
        last = context.attempts[-1].answer
        return {"workflow": "payout", "steps": [s.to_json() for s in (last.completion or ())]}

    planner = ScriptedPlanner([injected, repaired])
    start = gateway.configuration("payout-1")
    outcome = plan_with_repair(gate, planner, gateway.principal(AGENT), start, request="Pay the approved refund.", goal="paid")
    first = outcome.attempts[0].answer
    say(f"   {rejection_summary(first)}")
    if isinstance(first, Rejected):
        say("   completion offered: " + ", ".join(f"{s.event} {s.to_json()['params']}" for s in first.completion or ()))
    expect(isinstance(first, Rejected) and first.code == "guard-false", "the injected plan should be guard-false")
    say("\n4. the model repairs its plan from the rejection")
    admitted = outcome.admission
    say(f"   {rejection_summary(outcome.attempts[-1].answer)}")
    expect(admitted is not None, "the repaired plan should be admitted")
    if admitted is not None:
        run = gateway.execute(admitted.plan, AGENT, instance="payout-1", goal="paid")
        say(f"   executed: {run.completed} (state `{run.state}`); payments sent: {[s['params'] for s in sent]}")
        expect(run.completed and run.state == "paid", "the repaired plan should pay")
        expect(sent == [{"key": sent[0]["key"], "params": {"amount": 120, "payee": "jane-doe"}}] if sent else False, "exactly the approved payment is sent")

    records = store.audit("payout-1")
    tamper = verify_chain(records)
    notes = [r.payload.get("note") for r in records if r.kind == "note"]
    replayed = replay_log(spec, records)
    say(f"\naudit: {len(records)} records, chain {'intact' if tamper is None else f'BROKEN at {tamper}'}, plan notes {notes}, replay {'matches' if replayed.ok else 'DIFFERS'}")
    expect(tamper is None and replayed.ok, "the audit log should verify and replay")
    store.close()
    say("\nplan gate demo: " + ("every scene ended as expected" if ok else "SOMETHING WENT WRONG"))
    return 0 if ok else 1
