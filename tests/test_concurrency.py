"""Concurrency: several processes fire the same events at the same instances at the same
moment, on both stores. Optimistic versioning with retries must lose no update: every
accepted step is applied once and its effect reaches the outside world once, every refused
attempt has its own audit record saying why, versions count the records, chains verify.

The last tests pin, in one process with a manual clock, the interleavings the races above
exposed: a resumed effect racing its slow owner, a refusal landing while an effect is being
resumed, and two workflows' engines sharing one store's due work.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from railguard.runtime import (
    EffectCall,
    Effects,
    Engine,
    ManualClock,
    SQLiteStore,
    StaticDirectory,
    verify_chain,
)
from railguard.runtime.replay import replay_instance
from railguard.spec import Spec, loads

from .crashkit import (
    ExternalSystem,
    by_instance,
    effect_keys,
    harness_replay_log,
    load_specs,
    make_engines,
    open_store,
    postgres_target,
    race_script,
    read_log,
    worker_command,
)

RACERS = 4
SHARED = 10  # refunds and as many orders


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"kind": "sqlite", "path": str(tmp_path / "railguard.db")}
    else:
        yield from postgres_target("race")


def set_up(target: dict[str, str], log: Path) -> list[str]:
    """Refunds requested by mona, orders placed by carol: the racers' starting line."""
    store = open_store(target)
    engines = make_engines(store, ExternalSystem(log), lease=30.0, worker="setup", scripted=False)
    ids = []
    for n in range(SHARED):
        refund, order = f"refund-race-{n:02d}", f"order-race-{n:02d}"
        engines["refund"].start(refund, "mona")
        assert engines["refund"].fire(refund, "request", "mona", {"amount": 100 + n}).accepted
        engines["order"].start(order, "carol")
        assert engines["order"].fire(order, "place", "carol", {"total": 10 + n}).accepted
        ids += [refund, order]
    store.close()
    return ids


def race(target: dict[str, str], tmp_path: Path, ids: list[str], log: Path) -> list[dict[str, Any]]:
    results = tmp_path / "results.jsonl"
    procs = [
        subprocess.Popen(
            worker_command("race", store=target, log=str(log), racer=k, instances=ids, results=str(results)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for k in range(RACERS)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.communicate(timeout=30)[1]
        for proc in procs:  # the starting gun
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [json.loads(line) for line in results.read_text().splitlines()]


def reconcile(target: dict[str, str], ids: list[str], results: list[dict[str, Any]], log: Path) -> dict[str, list[str]]:
    """Compare what the racers were told with what the store recorded; return the mismatches
    per instance (empty when every guarantee holds)."""
    specs = load_specs()
    store = open_store(target)
    try:
        everything = store.audit()
        rows = {i: store.get(i) for i in ids}
        lead = {i: replay_instance(store, specs[i.split("-")[0]], i) for i in ids}
    finally:
        store.close()
    problems: dict[str, list[str]] = {i: [f"railguard.runtime.replay: {r.mismatch}"] for i, r in lead.items() if not r.ok}
    tamper = verify_chain(everything)
    if tamper is not None:
        problems["*"] = [f"the audit chain breaks: {tamper}"]
    applied = Counter(e["key"] for e in read_log(log) if e["op"] == "apply")
    twice = sorted(key for key, n in applied.items() if n > 1)
    if twice:
        problems.setdefault("*", []).append(f"effects applied more than once: {twice}")
    recorded_ok = set()
    for instance, records in by_instance(everything).items():
        found: list[str] = []
        row = rows[instance]
        assert row is not None
        spec = specs[row.workflow]
        if len(records) != row.version:
            found.append(f"version {row.version} but {len(records)} records")
        replayed = harness_replay_log(spec, records)
        if (replayed.state, replayed.values, replayed.status) != (row.state, row.values, row.status):
            found.append(f"replay gives {replayed}, the row is {row.state} {row.values} {row.status}")
        if row.status not in {"active", "done"}:
            found.append(f"left {row.status} after every racer returned")
        raced = records[2:]  # after start and request/place
        mine = [r for r in results if r["instance"] == instance]
        told_refused = Counter((r["event"], r["actor"], r["code"]) for r in mine if not r["accepted"])
        audited_refused = Counter((r.payload["event"], r.payload["actor"], r.payload["decision"]["code"]) for r in raced if r.kind == "refusal")
        if told_refused != audited_refused:
            found.append(f"refusals told {dict(told_refused)} but audited {dict(audited_refused)}")
        told_accepted = Counter((r["event"], r["actor"]) for r in mine if r["accepted"])
        steps = Counter((r.payload["event"], r.payload["actor"]) for r in raced if r.kind == "step")
        if told_accepted != steps:
            found.append(f"accepted told {dict(told_accepted)} but stepped {dict(steps)}")
        per_event = Counter(event for event, _ in steps.elements())
        if any(n > 1 for n in per_event.values()):
            found.append(f"an event applied more than once: {dict(per_event)}")
        first = {"refund": "approve", "order": "reserve"}[row.workflow]
        if per_event[first] != 1:
            found.append(f"`{first}` applied {per_event[first]} times, not once")
        calls = sum(1 for r in raced if r.kind == "effect-call")
        refusals = sum(audited_refused.values())
        others = len(raced) - refusals - sum(steps.values()) - calls
        if others != sum(1 for r in raced if r.kind in {"compensation", "rest", "error-exit"}):
            found.append(f"records of unexpected kinds: {[r.kind for r in raced]}")
        recorded_ok |= {key for key, outcome in effect_keys(records) if outcome == "ok"}
        if found:
            problems.setdefault(instance, []).extend(found)
    if set(applied) != recorded_ok:
        problems.setdefault("*", []).append(f"applied {sorted(applied)} but recorded {sorted(recorded_ok)}")
    return problems


@pytest.mark.slow
def test_racing_processes_lose_no_update_and_every_refused_attempt_is_audited(target: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "external.log"
    ids = set_up(target, log)
    results = race(target, tmp_path, ids, log)
    assert len(results) == RACERS * sum(len(race_script(i, 0)) for i in ids)
    assert reconcile(target, ids, results, log) == {}
    codes = Counter(r["code"] for r in results if not r["accepted"])
    accepted = Counter(r["event"] for r in results if r["accepted"])
    print(f"\n{target['kind']}: {len(results)} calls by {RACERS} racers at {len(ids)} instances; accepted {dict(accepted)}; refused {dict(codes)}")
    assert accepted["approve"] == SHARED
    assert accepted["reserve"] == SHARED
    assert codes["guard-false"] > 0  # mona's self-approval, while the refund was still requested
    assert codes["not-enabled"] > 0


# ---------------------------------------------------------------------- pinned interleavings

POKER = """
railguard: 1
name: poker
roles: {clerk: [p.poke, p.finish]}
states: {open: {initial: true}, closed: {terminal: success}, broken: {terminal: failure}}
on_error: broken
transitions:
  - {event: poke, from: open, to: open, permission: p.poke, effect: ext.poke}
  - {event: finish, from: open, to: closed, permission: p.finish}
"""
CLERKS = StaticDirectory({"c": ["clerk"], "sue": ["support"], "max": ["manager"], "bot": ["payments"], "carol": ["customer"], "ops": ["system"]})


class Outside:
    """Handler calls as (effect, key); ``during`` runs inside the first call (an interleaving)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.during: Any = None

    def effects(self, spec: Spec) -> Effects:
        def handler(call: EffectCall) -> dict[str, Any]:
            self.calls.append((call.effect, call.key))
            during, self.during = self.during, None
            if during is not None:
                during(call)
            return {}

        effects = Effects()
        for t in spec.transitions:
            for name in (t.effect, t.compensate):
                if name is not None:
                    effects.register(name, handler)
        return effects


class Died(BaseException):
    """The process dies inside a handler (not an Exception: the engine must not catch it)."""


def test_a_slow_effect_resumed_by_another_worker_is_applied_once_for_one_fire(tmp_path: Path) -> None:
    spec, clock, outside = loads(POKER), ManualClock(), Outside()
    db = tmp_path / "poke.db"
    owner = Engine(spec, SQLiteStore(db), CLERKS, effects=outside.effects(spec), clock=clock, allow_unverified="test", lease=1.0)
    other = Engine(spec, SQLiteStore(db), CLERKS, effects=outside.effects(spec), clock=clock, allow_unverified="test", lease=1.0)
    owner.start("p1", "c")

    def lease_expires_and_another_worker_resumes(call: EffectCall) -> None:
        clock.advance(5)
        assert [r.state for r in other.run_due()] == ["open"]

    outside.during = lease_expires_and_another_worker_resumes
    result = owner.fire("p1", "poke", "c")
    assert (result.accepted, result.state) == (True, "open")
    assert [r.kind for r in owner.history("p1")] == ["start", "effect-call", "step"]
    assert len({key for _, key in outside.calls}) == 1  # the same key twice, never a second poke


def test_a_refusal_during_a_resumed_effect_does_not_strand_the_instance(tmp_path: Path) -> None:
    specs, clock, outside = load_specs(), ManualClock(), Outside()
    refund = Engine(specs["refund"], SQLiteStore(tmp_path / "r.db"), CLERKS, effects=outside.effects(specs["refund"]), clock=clock, allow_unverified="test", lease=1.0)
    refund.start("r1", "sue")
    refund.fire("r1", "request", "sue", {"amount": 5})
    refund.fire("r1", "approve", "max")

    def dies(call: EffectCall) -> None:
        raise Died

    outside.during = dies
    with pytest.raises(Died):
        refund.fire("r1", "pay", "bot")
    outside.during = lambda call: refund.fire("r1", "pay", "bot")  # a client re-sends meanwhile
    clock.advance(2)
    refund.run_due()
    assert (refund.get("r1").state, refund.get("r1").status) == ("paid", "done")
    kinds = [r.kind for r in refund.history("r1")]
    assert kinds == ["start", "step", "step", "effect-call", "refusal", "step"]
    assert refund.history("r1")[4].payload["decision"]["code"] == "busy"
    assert len({key for _, key in outside.calls}) == 1


def test_engines_of_two_workflows_sharing_a_store_each_resume_only_their_own_work(tmp_path: Path) -> None:
    specs, clock, outside = load_specs(), ManualClock(), Outside()
    store = SQLiteStore(tmp_path / "shared.db")
    engines = {name: Engine(spec, store, CLERKS, effects=outside.effects(spec), clock=clock, allow_unverified="test", lease=1.0) for name, spec in specs.items()}
    refund = engines["refund"]
    refund.start("r1", "sue")
    refund.fire("r1", "request", "sue", {"amount": 5})
    refund.fire("r1", "approve", "max")

    def dies(call: EffectCall) -> None:
        raise Died

    outside.during = dies
    with pytest.raises(Died):
        refund.fire("r1", "pay", "bot")
    clock.advance(2)
    assert engines["order"].run_due() == []  # not its work: the claim must lapse, not finish
    clock.advance(2)
    assert [(r.instance, r.state) for r in refund.run_due()] == [("r1", "paid")]
    assert refund.get("r1").status == "done"
