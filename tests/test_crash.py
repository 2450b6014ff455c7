"""Crash safety: worker processes are SIGKILLed at random moments, hundreds of times, while
they drive order and refund instances through effects and compensations; a final clean run
finishes the work. Nothing committed may be lost, nothing applied twice, no effect key may
reach the outside world twice, every audit chain verifies and replays to the stored state,
and every instance rests where its plan says (done, or visibly stuck).

Both stores run the same campaign: SQLite in a file, PostgreSQL in a fresh schema.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from railguard.runtime import (
    EffectCall,
    Effects,
    Engine,
    ManualClock,
    RetryPolicy,
    SQLiteStore,
    StaticDirectory,
)
from railguard.runtime.checkpoint import load_checkpoint, verify_log

from .crashkit import (
    Driver,
    ExternalSystem,
    Findings,
    KillStats,
    Zygote,
    check_store,
    drive_to_rest,
    instance_ids,
    kill_cycle,
    load_specs,
    make_engines,
    open_store,
    postgres_target,
)

KILLS = 200
PARALLEL = 3
PER_BATCH = 4  # orders and as many refunds per batch
# A new batch joins every few kill cycles, so kills always meet live work; a worker lives a
# random time in LIFE seconds. PostgreSQL round trips are slower, so its workers get longer.
PACE = {"sqlite": (4, (0.1, 0.4)), "postgres": (6, (0.15, 0.5))}
LEASE = 0.2


@dataclass
class Campaign:
    stats: KillStats
    instances: list[str]
    findings: Findings
    seconds: float
    stragglers: list[str]
    by_workers: int  # audit records written before the final clean run


def crash_campaign(target: Mapping[str, str], tmp_path: Path, seed: int, *, latency: float = 0.01) -> Campaign:
    """Kill cycles until KILLS workers died mid-work, then a clean run to rest, then the checks.
    ``latency`` is the most an external call waits before and after it applies."""
    began = time.monotonic()
    log = tmp_path / "external.log"
    rng = random.Random(seed)
    stats = KillStats()
    upto = 0
    cycles_per_batch, life = PACE[target["kind"]]
    open_store(target).close()  # set the schema up before the first kill
    zygote = Zygote(tmp_path / "worker-errors.txt")
    try:
        while stats.kills < KILLS and not zygote.failures():
            upto = stats.cycles // cycles_per_batch
            configs = [
                {
                    "store": dict(target), "log": str(log), "seed": seed * 100_000 + stats.cycles * 10 + k,
                    "upto": upto, "per_batch": PER_BATCH, "lease": LEASE, "latency": latency, "redeliver": 0.1,
                    "checkpoints": str(tmp_path / "checkpoints"),
                }
                for k in range(PARALLEL)
            ]
            kill_cycle(zygote, configs, rng, stats, life=life)
    finally:
        zygote.close()
    assert zygote.failures() == ""
    instances = instance_ids(upto + 1, PER_BATCH)
    store = open_store(target)
    try:
        by_workers = len(store.audit())
        engines = make_engines(store, ExternalSystem(log), lease=LEASE, worker="final")
        driver = Driver(engines, store, instances, rng=random.Random(seed), redeliver=0.0)
        stragglers = drive_to_rest(driver, deadline=60.0)
        findings = check_store(store, log, instances, load_specs())
        heads = [load_checkpoint(p) for p in sorted((tmp_path / "checkpoints").glob("checkpoint-*.json"))]
        logged = verify_log(store, heads)
        if not heads or not logged.ok or logged.checkpoints != len(heads):
            findings.problems.append(f"the global log with {len(heads)} checkpoints from killed workers: {logged.problem}")
    finally:
        store.close()
    return Campaign(stats, instances, findings, time.monotonic() - began, stragglers, by_workers)


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"kind": "sqlite", "path": str(tmp_path / "railguard.db")}
    else:
        yield from postgres_target("crash")


@pytest.mark.slow
def test_hundreds_of_kills_lose_no_step_apply_nothing_twice_and_leave_every_chain_verifiable(
    target: dict[str, str], tmp_path: Path
) -> None:
    campaign = crash_campaign(target, tmp_path, seed=20260101)
    found = campaign.findings
    print(
        f"\n{target['kind']}: {campaign.stats.kills} kills in {campaign.stats.cycles} cycles, "
        f"{len(campaign.instances)} instances, {found.records} audit records "
        f"({campaign.by_workers} written by the killed workers), "
        f"{found.applied} effects applied, {found.dedups} repeated calls answered by key, "
        f"refusals {dict(found.refusals)}, {campaign.seconds:.1f} s"
    )
    assert campaign.stats.kills >= KILLS
    assert campaign.stats.exited == 0  # every worker was alive when its kill came
    assert campaign.stragglers == []
    assert found.problems == []
    assert found.applied > 0
    assert found.dedups > 0, "no kill landed between an effect and its recorded outcome"


# ---------------------------------------------------------------------- pinned crashes


class Died(BaseException):
    """The process dies inside a handler (not an Exception: the engine must not catch it)."""


def test_an_operator_retry_cut_short_by_a_crash_is_resumed_by_the_next_worker(tmp_path: Path) -> None:
    spec, clock = load_specs()["order"], ManualClock()
    refund_mode = {"now": "fail"}

    def handler(call: EffectCall) -> dict[str, str]:
        if call.effect == "shipping.dispatch":
            raise RuntimeError("no truck")
        if call.effect == "payments.refund" and refund_mode["now"] == "fail":
            raise RuntimeError("the bank is down")
        if call.effect == "payments.refund" and refund_mode["now"] == "die":
            raise Died
        return {"ok": call.key}

    effects = Effects()
    for name in ("inventory.reserve", "inventory.release", "payments.charge", "payments.refund", "shipping.dispatch"):
        effects.register(name, handler, RetryPolicy(attempts=1))
    people = StaticDirectory({"carol": ["customer"], "ops": ["system"], "op": ["operator"]})
    engine = Engine(spec, SQLiteStore(tmp_path / "o.db"), people, effects=effects, clock=clock, allow_unverified="test", lease=1.0)
    engine.start("o1", "carol")
    engine.fire("o1", "place", "carol", {"total": 5})
    engine.fire("o1", "reserve", "ops")
    engine.fire("o1", "charge", "ops")
    assert engine.fire("o1", "ship", "ops").status == "stuck"
    refund_mode["now"] = "die"
    with pytest.raises(Died):
        engine.retry_stuck("o1", "op")
    refund_mode["now"] = "ok"
    clock.advance(2)
    engine.run_due()
    after = engine.get("o1")
    assert (after.state, after.status, after.owed) == ("failed", "done", ())
    assert [r.kind for r in engine.history("o1")][-4:] == ["retry", "compensation", "compensation", "error-exit"]


def test_the_checks_catch_an_effect_applied_twice_and_a_step_lost(tmp_path: Path) -> None:
    target = {"kind": "sqlite", "path": str(tmp_path / "railguard.db")}
    log = tmp_path / "external.log"
    instances = instance_ids(1, 2)
    store = open_store(target)
    engines = make_engines(store, ExternalSystem(log), lease=LEASE, worker="clean")
    assert drive_to_rest(Driver(engines, store, instances, rng=random.Random(1)), deadline=30.0) == []
    assert check_store(store, log, instances, load_specs()).problems == []
    store.close()
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines) + next(line for line in lines if '"op": "apply"' in line))
    with sqlite3.connect(target["path"]) as db:  # roll an order back one step, audit untouched
        db.execute("UPDATE instances SET state = 'charged', status = 'active' WHERE id = 'order-000-00'")
    store = open_store(target)
    problems = check_store(store, log, instances, load_specs()).problems
    store.close()
    assert any(p.startswith("effects applied more than once") for p in problems)
    assert any(p.startswith("order-000-00: ends charged/active") for p in problems)
    assert any("replay gives" in p and "order-000-00" in p for p in problems)
