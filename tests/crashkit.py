"""Helpers for the crash and concurrency tests: scripted plans, an idempotent external
system, a driver that pushes instances forward, worker processes, and a replay check.

Everything here is shared by the test process and the worker processes
(``tests/crash_worker.py``); nothing here is a test.

- :func:`plan_for` derives from an instance id (``order-<batch>-<n>`` or ``refund-<batch>-<n>``)
  what the driver does at each state, which steps must end up accepted, which effects fail,
  and where the instance must come to rest.
- :class:`ExternalSystem` plays a payment API: an append-only log file, one line per call,
  each call written and fsynced before the handler returns; a key already applied is
  answered from the log (``dedup``) instead of being applied again.
- :class:`Driver` fires the scripted events of each instance from whatever state it is in
  (so a restarted process carries on where the store says it is), sometimes re-delivers an
  event that was already accepted (a client retrying after a crash), and calls ``run_due``.
- :func:`harness_replay_log` re-derives an instance's state, variables, status and owed compensations
  from its audit records using the reference semantics, checking each record on the way.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from railguard.runtime import (
    AuditRecord,
    EffectCall,
    Effects,
    Engine,
    InstanceExists,
    RetryPolicy,
    StaticDirectory,
    Store,
    SystemClock,
)
from railguard.runtime.codec import decode_params, decode_values, encode_values
from railguard.runtime.lifecycle import (
    EffectPending,
    LifecycleError,
    Owed,
    Phase,
    RecordKind,
    Status,
    advance,
)
from railguard.spec import Spec, load
from railguard.spec.semantics import Fired, Refusal, fire

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
WORKER = HERE / "crash_worker.py"
WORKFLOWS = ("order", "refund")

PEOPLE = StaticDirectory({
    "carol": ["customer"],
    "ops": ["system"],
    "ops2": ["system"],
    "ops3": ["system"],
    "ops4": ["system"],
    "sue": ["support"],
    "mona": ["support", "manager"],
    "max": ["manager"],
    "mia": ["manager"],
    "mel": ["manager"],
    "moe": ["manager"],
    "bot": ["payments"],
})

#: Codes a refusal may carry when two callers race or a client re-delivers an event.
RACE_CODES = frozenset({"not-enabled", "busy"})
TERMINAL_STATUSES = frozenset({Status.DONE, Status.STUCK})


# ---------------------------------------------------------------------- plans


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call the driver makes in a state; ``refused`` is the code it must be refused with,
    or None for the call that moves the instance on."""

    event: str
    actor: str
    params: Mapping[str, Any] = field(default_factory=dict)
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What happens to one instance, derived from its id alone."""

    instance: str
    workflow: str
    starter: str
    moves: Mapping[str, tuple[Attempt, ...]]
    accepted: tuple[str, ...]
    final_state: str
    final_status: str
    applied: tuple[str, ...]
    fail: frozenset[str] = frozenset()
    flaky: frozenset[str] = frozenset()

    @property
    def path(self) -> tuple[str, ...]:
        """The states the accepted steps pass through, initial state first."""
        states = [next(iter(self.moves))]
        for event in self.accepted:
            attempt = next(a for a in self.moves[states[-1]] if a.event == event and a.refused is None)
            states.append(TARGETS[self.workflow][attempt.event])
        return tuple(states)

    def scripted_codes(self) -> dict[tuple[str, str], str]:
        """(event, actor) of each scripted refusal -> the code it must carry."""
        return {(a.event, a.actor): a.refused for moves in self.moves.values() for a in moves if a.refused}

    def done_events(self, state: str) -> tuple[str, ...]:
        """Events that were certainly accepted before an instance reached ``state``."""
        path = self.path
        if state in path:
            return self.accepted[: path.index(state)]
        return self.accepted


TARGETS = {
    "order": {"place": "placed", "reserve": "reserved", "charge": "charged", "ship": "shipped", "cancel": "cancelled"},
    "refund": {"request": "requested", "approve": "approved", "pay": "paid", "reject": "rejected", "cancel": "cancelled"},
}


def instance_ids(batches: int, per_batch: int) -> list[str]:
    """Ids of ``batches`` batches, each with ``per_batch`` orders and ``per_batch`` refunds."""
    return [
        f"{workflow}-{batch:03d}-{n:02d}"
        for batch in range(batches)
        for n in range(per_batch)
        for workflow in WORKFLOWS
    ]


def plan_for(instance: str) -> Plan:
    workflow, batch, n = instance.split("-")[:3]
    index = int(batch) * 7 + int(n)
    return _order_plan(instance, index) if workflow == "order" else _refund_plan(instance, index)


def _order_plan(instance: str, i: int) -> Plan:
    total = 1 + (i * 37) % 900
    place = Attempt("place", "carol", {"total": total})
    moves: dict[str, tuple[Attempt, ...]] = {
        "new": (place,),
        "placed": (Attempt("reserve", "ops"),),
        "reserved": (Attempt("charge", "ops"),),
        "charged": (Attempt("ship", "ops"),),
    }
    flaky = frozenset({"inventory.reserve", "payments.charge", "inventory.release"}) if i % 4 == 3 else frozenset()
    kind = i % 6
    full = ("place", "reserve", "charge", "ship")
    if kind == 1:  # the card is declined: the reservation is released, the order fails
        return Plan(instance, "order", "carol", moves, full[:2], "failed", "done", ("inventory.reserve", "inventory.release"), frozenset({"payments.charge"}), flaky)
    if kind == 2:  # the customer cancels after the reservation: it is released
        moves["reserved"] = (Attempt("cancel", "carol"),)
        return Plan(instance, "order", "carol", moves, (*full[:2], "cancel"), "cancelled", "done", ("inventory.reserve", "inventory.release"), frozenset(), flaky)
    if kind == 3:  # shipping fails: refund then release, in reverse order
        return Plan(instance, "order", "carol", moves, full[:3], "failed", "done", ("inventory.reserve", "payments.charge", "payments.refund", "inventory.release"), frozenset({"shipping.dispatch"}), flaky)
    if kind == 4:  # the customer may not charge; the system does
        moves["reserved"] = (Attempt("charge", "carol", refused="permission-denied"), Attempt("charge", "ops"))
    if kind == 5:  # shipping fails and so does the refund: stuck, visibly, in `charged`
        return Plan(instance, "order", "carol", moves, full[:3], "charged", "stuck", ("inventory.reserve", "payments.charge"), frozenset({"shipping.dispatch", "payments.refund"}), flaky)
    return Plan(instance, "order", "carol", moves, full, "shipped", "done", ("inventory.reserve", "payments.charge", "shipping.dispatch"), frozenset(), flaky)


def _refund_plan(instance: str, i: int) -> Plan:
    amount = 1 + (i * 53) % 5000
    kind = i % 5
    requester = "mona" if kind == 1 else "sue"
    moves: dict[str, tuple[Attempt, ...]] = {
        "draft": (Attempt("request", requester, {"amount": amount}),),
        "requested": (Attempt("approve", "max"),),
        "approved": (Attempt("pay", "bot"),),
    }
    flaky = frozenset({"payments.refund"}) if i % 3 == 2 else frozenset()
    full = ("request", "approve", "pay")
    if kind == 1:  # four eyes: the requester may not approve
        moves["requested"] = (Attempt("approve", "mona", refused="guard-false"), Attempt("approve", "max"))
    if kind == 2:  # support may not approve; the manager rejects
        moves["requested"] = (Attempt("approve", "sue", refused="permission-denied"), Attempt("reject", "max"))
        return Plan(instance, "refund", requester, moves, ("request", "reject"), "rejected", "done", (), frozenset(), flaky)
    if kind == 3:  # over the limit first, then cancelled after approval
        moves["draft"] = (Attempt("request", "sue", {"amount": 9000}, refused="guard-false"), *moves["draft"])
        moves["approved"] = (Attempt("cancel", "sue"),)
        return Plan(instance, "refund", requester, moves, ("request", "approve", "cancel"), "cancelled", "done", (), frozenset(), flaky)
    if kind == 4:  # the payment provider declines: error exit to `cancelled`
        return Plan(instance, "refund", requester, moves, full[:2], "cancelled", "done", (), frozenset({"payments.refund"}), flaky)
    return Plan(instance, "refund", requester, moves, full, "paid", "done", ("payments.refund",), frozenset(), flaky)


# ---------------------------------------------------------------------- the external system


class Declined(RuntimeError):
    """The external system refuses the call (nothing applied)."""


class ExternalSystem:
    """An append-only log file standing for every external system the effects touch.

    Each call takes an exclusive lock, appends one JSON line (``apply`` for a key not seen
    before, ``dedup`` for a key already applied, ``declined`` when it refuses) and fsyncs
    before returning — so a line exists for every effect the outside world saw, even if the
    caller is killed the next instant. Like a payment API, it applies each key at most once.
    """

    def __init__(self, path: str | os.PathLike[str], *, latency: float = 0.0, seed: int = 0) -> None:
        self.path = Path(path)
        self.latency = latency
        self.rng = random.Random(seed)
        self._offset = 0
        self._applied: dict[str, dict[str, Any]] = {}

    def _catch_up(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size <= self._offset:
            return
        data = os.pread(fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            entry = json.loads(line)
            if entry["op"] == "apply":
                self._applied[entry["key"]] = entry
        self._offset += end

    def call(self, call: EffectCall, *, decline: bool) -> dict[str, Any]:
        self._pause()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._catch_up(fd)
            op = "declined" if decline else "dedup" if call.key in self._applied else "apply"
            entry = {
                "op": op, "key": call.key, "effect": call.effect, "instance": call.instance,
                "step": call.step, "compensation": call.compensation, "attempt": call.attempt, "pid": os.getpid(),
            }
            os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
            os.fsync(fd)
            if op == "apply":
                self._applied[call.key] = entry
        finally:
            os.close(fd)  # also releases the lock
        if decline:
            raise Declined(f"{call.effect} declined for `{call.instance}`")
        self._pause()  # the reply is on its way back: a kill now loses only the reply
        return {"ref": f"{call.effect}/{call.key[:12]}"}

    def _pause(self) -> None:
        if self.latency > 0:
            time.sleep(self.rng.uniform(0, self.latency))


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete line of an external system's log."""
    file = Path(path)
    if not file.exists():
        return []
    text = file.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def make_effects(spec: Spec, system: ExternalSystem, *, scripted: bool = True) -> Effects:
    """Handlers for every effect of ``spec``, failing where the instance's plan says so
    (never, when not ``scripted``)."""

    def handler(call: EffectCall) -> dict[str, Any]:
        if not scripted:
            return system.call(call, decline=False)
        plan = plan_for(call.instance)
        if call.effect in plan.flaky and call.attempt == 1:
            raise ConnectionError(f"{call.effect} timed out")
        return system.call(call, decline=call.effect in plan.fail)

    effects = Effects()
    policy = RetryPolicy(attempts=2, backoff=0.01, factor=1.0)
    for t in spec.transitions:
        for name in (t.effect, t.compensate):
            if name is not None:
                effects.register(name, handler, policy)
    return effects


# ---------------------------------------------------------------------- stores


def open_store(target: Mapping[str, str]) -> Store:
    """``{"kind": "sqlite", "path": ...}`` or ``{"kind": "postgres", "dsn": ..., "schema": ...}``."""
    if target["kind"] == "sqlite":
        from railguard.runtime import SQLiteStore

        return SQLiteStore(target["path"])
    from railguard.runtime.postgres import PostgresStore

    return PostgresStore(target["dsn"], schema=target["schema"])


@functools.cache
def load_specs() -> dict[str, Spec]:
    return {name: load(EXAMPLES / f"{name}.yaml") for name in WORKFLOWS}


def make_engines(store: Store, system: ExternalSystem, *, lease: float, worker: str, scripted: bool = True, checkpoints: Any = None) -> dict[str, Engine]:
    return {
        name: Engine(
            spec, store, PEOPLE, effects=make_effects(spec, system, scripted=scripted), clock=SystemClock(),
            allow_unverified="crash test: the examples are verified by test_examples", lease=lease, worker=worker,
            checkpoints=checkpoints,
        )
        for name, spec in load_specs().items()
    }


# ---------------------------------------------------------------------- the driver


class Driver:
    """Pushes instances along their plans from whatever the store says they are."""

    def __init__(self, engines: Mapping[str, Engine], store: Store, instances: Sequence[str], *, rng: random.Random, redeliver: float = 0.1) -> None:
        self.engines = engines
        self.store = store
        self.instances = list(instances)
        self.rng = rng
        self.redeliver = redeliver
        self.resting: set[str] = set()  # done or stuck: they never move again

    def finished(self) -> list[str]:
        rows = {i: self.store.get(i) for i in self.instances}
        return [i for i, row in rows.items() if row is not None and row.status in TERMINAL_STATUSES]

    def tick(self) -> int:
        """One pass over the instances and the due work; how many instances are not resting."""
        busy = 0
        order = self.instances[:]
        self.rng.shuffle(order)
        for instance in order:
            busy += self.step(instance)
        engines = list(self.engines.values())
        self.rng.shuffle(engines)
        for engine in engines:
            engine.run_due(limit=50)
        return busy

    def step(self, instance: str) -> bool:
        plan = plan_for(instance)
        engine = self.engines[plan.workflow]
        if instance in self.resting and self.rng.random() >= self.redeliver:
            return False
        row = self.store.get(instance)
        if row is None:
            with contextlib.suppress(InstanceExists):
                engine.start(instance, plan.starter)
            return True
        if self.rng.random() < self.redeliver:
            self._redeliver(engine, plan, row.state, row.pending)
        if row.status in TERMINAL_STATUSES:
            self.resting.add(instance)
            return False
        if row.status != Status.ACTIVE:
            return True
        for attempt in plan.moves.get(row.state, ()):
            result = engine.fire(instance, attempt.event, attempt.actor, dict(attempt.params))
            if result.accepted or result.state != row.state:
                break
        return True

    def _redeliver(self, engine: Engine, plan: Plan, state: str, pending: Mapping[str, Any] | None) -> None:
        """A client that does not know whether its last call landed sends it again."""
        events = list(plan.done_events(state))
        if pending is not None and pending.get("kind") == "effect":
            events.append(pending["base"]["event"])
        if not events:
            return
        event = self.rng.choice(events)
        attempt = next(a for moves in plan.moves.values() for a in moves if a.event == event and a.refused is None)
        engine.fire(plan.instance, attempt.event, attempt.actor, dict(attempt.params))


MANAGERS = ("max", "mia", "mel", "moe")
OPERATORS = ("ops", "ops2", "ops3", "ops4")


def race_script(instance: str, racer: int) -> list[Attempt]:
    """What racer number ``racer`` fires at a shared instance: everyone the same events, each
    as a different principal. Refunds start `requested` by mona, orders `placed`."""
    if instance.startswith("refund"):
        return [Attempt("approve", "mona"), Attempt("approve", MANAGERS[racer]), Attempt("pay", "bot")]
    return [Attempt("reserve", OPERATORS[racer]), Attempt("charge", OPERATORS[racer]), Attempt("cancel", "carol")]


def drive_to_rest(driver: Driver, *, deadline: float, pause: float = 0.02) -> list[str]:
    """Tick until every instance rests (done or stuck) and no work is due; the instances
    still moving at ``deadline`` (seconds from now) are returned."""
    end = time.monotonic() + deadline
    quiet = 0
    while time.monotonic() < end:
        if driver.tick() == 0:
            quiet += 1
            if quiet >= 3:
                return []
        else:
            quiet = 0
        time.sleep(pause)
    return [i for i in driver.instances if i not in set(driver.finished())]


# ---------------------------------------------------------------------- worker processes


def worker_command(mode: str, **options: Any) -> list[str]:
    args = [sys.executable, str(WORKER), "--mode", mode]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", value if isinstance(value, str) else json.dumps(value)]
    return args


@dataclass
class KillStats:
    kills: int = 0
    exited: int = 0
    cycles: int = 0
    lifetimes: list[float] = field(default_factory=list)


class Zygote:
    """A warm parent process (``crash_worker.py --mode zygote``) that forks crash workers on
    request; the test kills the workers by pid."""

    def __init__(self, errors: Path) -> None:
        self.errors = errors
        self.proc = subprocess.Popen(worker_command("zygote"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise AssertionError(f"the zygote failed to start: {line!r}")

    def spawn(self, config: Mapping[str, Any]) -> int:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({**config, "errors": str(self.errors)}) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def failures(self) -> str:
        return self.errors.read_text() if self.errors.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def kill_cycle(zygote: Zygote, configs: Sequence[Mapping[str, Any]], rng: random.Random, stats: KillStats, *, life: tuple[float, float]) -> None:
    """Fork one worker per config, let each live a random time in ``life`` seconds, then
    SIGKILL it (a worker that is already gone has failed: see :meth:`Zygote.failures`)."""
    born = time.monotonic()
    pids = [zygote.spawn(config) for config in configs]
    for at, pid in sorted((rng.uniform(*life), pid) for pid in pids):
        delay = at - (time.monotonic() - born)
        if delay > 0:
            time.sleep(delay)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            stats.exited += 1
        else:
            stats.kills += 1
            stats.lifetimes.append(at)
    stats.cycles += 1


# ---------------------------------------------------------------------- replay


@dataclass(frozen=True, slots=True)
class Replayed:
    state: str
    values: dict[str, Any]
    status: str
    owed: tuple[str, ...]
    records: int


class ReplayMismatch(AssertionError):
    pass


def harness_replay_log(spec: Spec, records: Sequence[AuditRecord]) -> Replayed:
    """Re-derive an instance from its audit records with the reference semantics, the status
    moving by the runtime's one lifecycle function; raise :class:`ReplayMismatch` naming the
    first record that does not follow from those before."""
    phase: Phase | None = None
    values: dict[str, Any] = {}

    def check(ok: bool, record: AuditRecord, why: str) -> None:
        if not ok:
            raise ReplayMismatch(f"{record.instance} record {record.seq} ({record.kind}): {why}")

    def recompute(p: Mapping[str, Any]) -> Fired | Refusal:
        assert phase is not None
        system = p.get("decision", {}).get("permission") == "system"
        params = decode_params(spec, p["event"], p.get("params") or {})
        return fire(spec, phase.state, values, p["event"], p["actor"], frozenset(p.get("roles", ())), params, system=system)

    for n, record in enumerate(records, start=1):
        p = record.payload
        kind = record.kind
        check(record.seq == n, record, f"expected position {n}")
        facts: dict[str, Any] = {}
        if kind == RecordKind.START:
            check(n == 1, record, "a start record after the first")
            values = decode_values(spec, p["after"]["values"])
            facts["target"] = p["after"]["state"]
        elif phase is None:
            check(False, record, "the log does not begin with a start record")
        elif kind == RecordKind.REFUSAL:
            code = p["decision"]["code"]
            check(p["state"] == phase.state, record, f"refused in `{p['state']}` but the instance was in `{phase.state}`")
            if phase.status == Status.ACTIVE:
                outcome = recompute(p)
                check(isinstance(outcome, Refusal) and outcome.code == code, record, f"semantics say {outcome!r}, the record says {code}")
            else:
                expected = "not-enabled" if phase.status == Status.DONE else "busy"
                check(code == expected, record, f"an instance that is {phase.status} must refuse with {expected}, not {code}")
        elif kind == RecordKind.EFFECT_CALL:
            outcome = recompute(p)
            check(isinstance(outcome, Fired), record, f"semantics refuse it: {outcome!r}")
            assert isinstance(outcome, Fired)
            check(outcome.transition.index == p["transition"] and outcome.target == p["intended"]["state"], record, "a different transition")
            check(encode_values(outcome.values) == p["intended"]["values"], record, "different intended values")
            base = {"transition": p["transition"], "params": p.get("params") or {}}
            facts["pending"] = EffectPending(n, p["effect"]["key"], p["effect"]["name"], base, outcome.target, p["intended"]["values"])
        elif kind == RecordKind.STEP:
            check(p["before"] == {"state": phase.state, "values": encode_values(values)}, record, "its `before` is not the replayed state")
            pending = phase.effect
            if p.get("effect") is not None:
                check(pending is not None and (pending.key, pending.transition) == (p["effect"]["key"], p["transition"]), record, "completes an effect that was not pending")
                check(p["effect"]["ok"] is True, record, "a step recorded for a failed effect")
            else:
                check(pending is None, record, "a step without the outcome of the effect in flight")
            outcome = recompute(p)
            check(isinstance(outcome, Fired), record, f"semantics refuse it: {outcome!r}")
            assert isinstance(outcome, Fired)
            transition = outcome.transition
            check(transition.index == p["transition"] and outcome.target == p["after"]["state"], record, "a different transition or target")
            check(encode_values(outcome.values) == p["after"]["values"], record, "different values after the step")
            values = dict(outcome.values)
            facts["target"] = outcome.target
            if p.get("effect") is not None and transition.compensate is not None:
                assert pending is not None
                facts["owed"] = Owed(transition.compensate, pending.step, transition.event, p.get("params") or {}, p["after"]["values"])
        elif kind == RecordKind.EFFECT_FAILED:
            pending = phase.effect
            check(pending is not None and p["effect"]["key"] == pending.key, record, "fails an effect that was not pending")
            check(p["effect"]["ok"] is False, record, "an effect-failed record for a call that succeeded")
        elif kind == RecordKind.COMPENSATION:
            check(bool(phase.owed) and phase.owed[-1].compensate == p["compensation"]["name"], record, f"compensation out of order (owed {phase.owed})")
            check(p["compensation"]["ok"] is True, record, "a failed compensation recorded as done")
        elif kind in (RecordKind.ERROR_EXIT, RecordKind.REST):
            check(p["before"] == {"state": phase.state}, record, "its `before` is not the replayed state")
            target = p["after"]["state"]
            check(spec.state_map[target].terminal == "failure", record, f"rests in `{target}`, not a failure terminal")
            check(target == phase.heading, record, f"`{target}` is not where the error exit of `{phase.state}` goes")
        try:
            phase = advance(spec, phase, kind, **facts)
        except LifecycleError as exc:
            check(False, record, str(exc))
    assert phase is not None
    return Replayed(phase.state, encode_values(values), str(phase.status), tuple(o.compensate for o in phase.owed), len(records))


def by_instance(records: Iterable[AuditRecord]) -> dict[str, list[AuditRecord]]:
    grouped: dict[str, list[AuditRecord]] = {}
    for record in records:
        grouped.setdefault(record.instance, []).append(record)
    return grouped


def effect_keys(records: Iterable[AuditRecord]) -> Counter[tuple[str, str]]:
    """(key, outcome) of every effect and compensation outcome recorded: ``ok``/``failed``."""
    found: Counter[tuple[str, str]] = Counter()
    for record in records:
        p = record.payload
        info = p.get("effect") if record.kind in {"step", "effect-failed"} else p.get("compensation")
        if isinstance(info, Mapping) and "ok" in info:
            found[(info["key"], "ok" if info["ok"] else "failed")] += 1
    return found


# ---------------------------------------------------------------------- the checks


@dataclass
class Findings:
    """What the checks found: ``problems`` must stay empty; the rest is for the report."""

    problems: list[str] = field(default_factory=list)
    instances: int = 0
    records: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    applied: int = 0
    dedups: int = 0
    declined: int = 0


def check_store(store: Store, log: str | os.PathLike[str], instances: Sequence[str], specs: Mapping[str, Spec]) -> Findings:
    """Check every guarantee the crash and race tests rely on; see the module docstring."""
    from railguard.runtime import verify_chain

    try:
        from railguard.runtime.replay import replay_instance as lead_replay
    except ImportError:
        lead_replay = None
    found = Findings(instances=len(instances))
    problems = found.problems
    everything = store.audit()
    tamper = verify_chain(everything)
    if tamper is not None:
        problems.append(f"the audit chain breaks: {tamper}")
    grouped = by_instance(everything)
    extra = sorted(set(grouped) - set(instances))
    if extra:
        problems.append(f"audit records of unknown instances: {extra[:5]}")
    audit_ok: dict[str, str] = {}
    for instance in instances:
        plan = plan_for(instance)
        spec = specs[plan.workflow]
        row = store.get(instance)
        records = grouped.get(instance, [])
        found.records += len(records)
        if row is None:
            problems.append(f"{instance}: missing")
            continue
        if row.state not in spec.state_map:
            problems.append(f"{instance}: rests in undeclared state `{row.state}`")
        if (row.state, row.status) != (plan.final_state, plan.final_status):
            problems.append(f"{instance}: ends {row.state}/{row.status}, expected {plan.final_state}/{plan.final_status}")
        if len(records) != row.version:
            problems.append(f"{instance}: version {row.version} but {len(records)} audit records")
        try:
            replayed = harness_replay_log(spec, records)
        except ReplayMismatch as exc:
            problems.append(f"replay: {exc}")
        else:
            owed = tuple(c["compensate"] for c in row.compensations)
            if (replayed.state, replayed.values, replayed.status, replayed.owed) != (row.state, row.values, row.status, owed):
                problems.append(f"{instance}: replay gives {replayed} but the row is {row.state} {row.values} {row.status} {owed}")
        if lead_replay is not None:  # the runtime's own replay must agree as well
            report = lead_replay(store, spec, instance)
            if not report.ok:
                problems.append(f"railguard.runtime.replay: {report.mismatch}")
        accepted = tuple(r.payload["event"] for r in records if r.kind == "step")
        if accepted != plan.accepted:
            problems.append(f"{instance}: accepted steps {accepted}, expected exactly {plan.accepted}")
        scripted = plan.scripted_codes()
        seen_codes: set[tuple[str, str, str]] = set()
        for r in records:
            if r.kind != "refusal":
                continue
            code = r.payload["decision"]["code"]
            who = (r.payload["event"], r.payload["actor"])
            found.refusals[code] += 1
            seen_codes.add((*who, code))
            if code not in RACE_CODES and scripted.get(who) != code:
                problems.append(f"{instance}: {who} refused with unexpected code {code}")
        for who, code in scripted.items():
            if (*who, code) not in seen_codes:
                problems.append(f"{instance}: the scripted refusal {who} -> {code} never happened")
        calls = Counter(r.payload["effect"]["key"] for r in records if r.kind == "effect-call")
        outcomes = effect_keys(records)
        found.outcomes.update(Counter(outcome for _, outcome in outcomes.elements()))
        for key, n in calls.items():
            settled = outcomes[(key, "ok")] + outcomes[(key, "failed")]
            if n != 1 or settled != 1:
                problems.append(f"{instance}: effect key {key} started {n} times and settled {settled} times")
        for (key, outcome), n in outcomes.items():
            if n != 1:
                problems.append(f"{instance}: key {key} recorded {outcome} {n} times")
            if outcome == "ok":
                audit_ok[key] = instance
    entries = read_log(log)
    applies = Counter(e["key"] for e in entries if e["op"] == "apply")
    found.applied = sum(applies.values())
    found.dedups = sum(1 for e in entries if e["op"] == "dedup")
    found.declined = sum(1 for e in entries if e["op"] == "declined")
    twice = sorted(k for k, n in applies.items() if n > 1)
    if twice:
        problems.append(f"effects applied more than once: {twice[:5]}")
    if set(applies) != set(audit_ok):
        problems.append(
            f"applied but not recorded: {sorted(set(applies) - set(audit_ok))[:5]}; "
            f"recorded but not applied: {sorted(set(audit_ok) - set(applies))[:5]}"
        )
    per_instance: dict[str, list[str]] = {}
    for e in entries:
        if e["op"] == "apply":
            per_instance.setdefault(e["instance"], []).append(e["effect"])
    for instance in instances:
        plan = plan_for(instance)
        if sorted(per_instance.get(instance, [])) != sorted(plan.applied):
            problems.append(f"{instance}: the outside world saw {per_instance.get(instance, [])}, expected {list(plan.applied)}")
    return found


# ---------------------------------------------------------------------- PostgreSQL


PG_DSN = os.environ.get("RAILGUARD_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_target(prefix: str) -> Iterator[dict[str, str]]:
    """A fresh schema on the test server for one test (dropped afterwards); skips the test,
    saying why, when there is no server or no PostgreSQL store."""
    import uuid

    import pytest

    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed, so the PostgreSQL store cannot be tested")
    try:
        from railguard.runtime.postgres import PostgresStore  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"railguard.runtime.postgres is not available: {exc}")
    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL server at {PG_DSN}: {str(exc).strip().splitlines()[0]}")
    schema = f"rg_{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield {"kind": "postgres", "dsn": PG_DSN, "schema": schema}
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
