"""The gateway under load: concurrent MCP client sessions against ``railguard serve`` over HTTP.

Issue 10's load point: 8 concurrent client sessions making 200 ``tools/call`` each, against one
SQLite store and against one PostgreSQL store. Each session is the ``mcp`` package's own
streamable-HTTP client with a bearer token of its own, so each acts as its own principal.
``--servers 2`` (the default) starts two ``railguard serve --transport http`` processes on the
same store and spreads the sessions over them: a gateway serialises its own calls in-process,
so only a second process makes the store's optimistic versioning really decide races.

The workload is the refund example (``examples/refund.yaml``), ten calls per cycle and session:

0. ``start_instance`` of a new instance of the session's own;
1. ``request`` on it;
2. ``approve`` on it: a self-approval, refused on purpose by the four-eyes guard;
3. ``approve`` on the newest *shared* requested instance of another session (sessions race);
4. ``pay`` on the newest shared approved instance (payers race) — or, for a session without
   the ``payments`` role, ``pay`` on its own instance: a tool it may not use, refused on purpose;
5. ``request`` with an amount that is not an integer: bad params, refused on purpose;
6. ``get_instance`` on a shared instance;
7. ``submit_plan`` of two steps (``request``, ``cancel``) that starts a new instance of its own;
8. ``submit_plan`` of ``pay`` on its own requested instance: rejected with a completion;
9. ``reject`` on a shared requested instance (racing the approvers), or ``cancel`` on its own.

Per call the client records the latency and the answer. Afterwards the store is opened and
checked (:func:`check`): every audit chain verifies (:func:`railguard.runtime.integrity.
verify_store`, the spec's replay included); the accepted steps in the audit logs are exactly
the accepted steps the clients were answered — per instance the same (event, actor) multiset,
and per instance and actor the same order, so no step is lost or duplicated; every instance
started is one a client was told it started; every refusal answer has a code and a message;
every refusal is audited once (the access log's ``refused`` records and the instances'
``plan-rejected``, ``gateway-refused`` and ``plan-stopped`` notes, per actor).

    python benchmarks/bench_gateway.py            # 8 sessions x 200 calls, SQLite and PostgreSQL
    python benchmarks/bench_gateway.py --quick    # 4 sessions x 30 calls
    python benchmarks/bench_gateway.py --stores sqlite --servers 1

PostgreSQL runs in a database of its own, created for the run and dropped after it
(``--dsn`` names the server, default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

__all__ = [
    "PG_DSN",
    "REFUND",
    "Call",
    "Check",
    "Result",
    "check",
    "make_folder",
    "postgres_database",
    "run_load",
    "servers",
    "summary",
    "table",
]

ROOT = Path(__file__).resolve().parent.parent
REFUND = ROOT / "examples" / "refund.yaml"
PG_DSN = os.environ.get("RAILGUARD_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SESSIONS = 8
CALLS = 200
#: the calls of one cycle whose instance is another session's (they race)
SHARED = frozenset({"approve-shared", "pay-shared", "get-shared", "reject-shared"})
#: the calls refused on purpose, and the code each one must get
ON_PURPOSE = {"self-approve": "guard-false", "pay-forbidden": "tool-not-allowed", "bad-params": "bad-arguments"}
#: instance notes that audit a refusal
REFUSAL_NOTES = frozenset({"plan-rejected", "gateway-refused", "plan-stopped"})

EFFECTS = '''
from railguard.runtime import Effects

effects = Effects()
effects.register("payments.refund", lambda call: {"refund_id": "re-" + call.instance, "amount": call.values["amount"]})
'''


# ---------------------------------------------------------------------- the setting


def actor(index: int) -> str:
    """The principal of session ``index``."""
    return f"s{index}"


def pays(index: int) -> bool:
    """Whether session ``index`` holds the ``payments`` role (the even ones)."""
    return index % 2 == 0


def make_folder(place: Path, sessions: int, run: str) -> dict[str, str]:
    """Write the refund certificate (signed with a key generated here), its public key, a
    directory of ``sessions`` principals with token digests and the effects module into
    ``place``; return each principal's bearer token."""
    from railguard.runtime.gateway import token_digest
    from railguard.spec import load
    from railguard.verifier.certificate import issue, sign
    from railguard.verifier.checks import verify
    from railguard.verifier.keys import generate_key, write_key_pair

    spec = load(REFUND)
    key = generate_key()
    write_key_pair(key, place / "ci.key")
    (place / "refund.cert.json").write_text(sign(issue(verify(spec)), key).dumps(), encoding="utf-8")
    tokens: dict[str, str] = {}
    lines = []
    for index in range(sessions):
        name = actor(index)
        tokens[name] = f"tok-{run}-{name}-{uuid.uuid4().hex[:12]}"
        roles = ["support", "manager", *(["payments"] if pays(index) else [])]
        lines.append(f"{name}: {{roles: [{', '.join(roles)}], tokens: ['{token_digest(tokens[name])}']}}")
    (place / "people.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (place / "gw_effects.py").write_text(EFFECTS, encoding="utf-8")
    return tokens


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def servers(folder: Path, store: Sequence[str], count: int) -> Iterator[list[str]]:
    """``count`` processes of ``railguard serve --transport http`` on the store ``store``
    (``["--db", FILE]`` or ``["--dsn", URL]``), each on a free port of 127.0.0.1, until the
    block ends; yields their URLs."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started: list[tuple[subprocess.Popen[bytes], int, Any]] = []
    try:
        for number in range(count):
            port = _free_port()
            errors = open(folder / f"server-{number}.err", "wb")  # noqa: SIM115 - closed below
            command = [
                sys.executable, "-m", "railguard", "serve", str(REFUND), *store, "--directory", "people.yaml",
                "--effects", "gw_effects:effects", "--certificate", "refund.cert.json", "--trust", "ci.key.pub",
                "--transport", "http", "--port", str(port),
            ]
            process = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors)
            started.append((process, port, errors))
            if number == 0:  # the first one creates the store's tables before the next opens it
                _wait(process, port, folder / f"server-{number}.err")
        for number, (process, port, _) in enumerate(started):
            _wait(process, port, folder / f"server-{number}.err")
        yield [f"http://127.0.0.1:{port}/mcp" for _, port, _ in started]
    finally:
        for process, _, errors in started:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            errors.close()


def _wait(process: subprocess.Popen[bytes], port: int, errors: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"railguard serve exited with status {process.returncode}: {errors.read_text(errors='replace').strip()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"railguard serve did not listen on port {port} within 60 s") from None
            time.sleep(0.05)


def postgres_missing(dsn: str = PG_DSN) -> str | None:
    """Why no PostgreSQL server can be used at ``dsn`` (``None`` when one can)."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed: {exc}"
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL server at {dsn}: {str(exc).strip().splitlines()[0]}"
    return None


@contextmanager
def postgres_database(dsn: str = PG_DSN) -> Iterator[str]:
    """A database of its own on the server of ``dsn`` (``railguard serve --dsn`` uses the
    ``railguard`` schema, so a run gets a fresh database), dropped when the block ends;
    yields its DSN."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"rg_gwload_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(dsn)
    params["dbname"] = name
    try:
        yield make_conninfo(**{k: str(v) for k, v in params.items()})
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# ---------------------------------------------------------------------- the clients


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call as a client saw it: who, which call of the cycle (``label``), the answer
    (``is_error``, ``code``, ``message``, the steps it reports as ``(event, accepted)``) and
    the latency in seconds."""

    session: int
    actor: str
    label: str
    tool: str
    instance: str | None
    is_error: bool
    code: str | None
    message: str
    steps: tuple[tuple[str, bool], ...]
    started: bool
    seconds: float

    @property
    def shared(self) -> bool:
        """A call on an instance another session may move too (or, with nothing shared yet,
        on the session's own)."""
        return self.label in SHARED

    @property
    def raced(self) -> bool:
        """A call on another session's instance that was refused: it lost a race (another
        session moved the instance first) and was answered."""
        return self.is_error and self.shared and self.instance is not None and f"-{self.actor}-" not in self.instance


@dataclass
class _Board:
    """Instances the sessions share: requested ones to approve or reject, approved ones to pay
    (newest last). One event loop drives every session, so no lock is needed."""

    requested: list[str] = field(default_factory=list)
    approved: list[str] = field(default_factory=list)

    @staticmethod
    def pick(pool: list[str], mine: str) -> str | None:
        return next((i for i in reversed(pool) if not i.startswith(mine)), None)

    @staticmethod
    def drop(pool: list[str], instance: str) -> None:
        if instance in pool:
            pool.remove(instance)


async def _session(url: str, token: str, index: int, calls: int, run: str, board: _Board, out: list[Call]) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    me = actor(index)
    mine = f"{run}-{me}-"
    async with (
        create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()

        async def call(label: str, tool: str, arguments: dict[str, Any]) -> Call:
            began = time.perf_counter()
            result = await session.call_tool(tool, arguments)
            seconds = time.perf_counter() - began
            body: Mapping[str, Any] = result.structured_content or {}
            steps = tuple((str(s.get("event")), bool(s.get("accepted"))) for s in body.get("steps") or ())
            instance = arguments.get("instance")
            code = body.get("code") if result.is_error else None
            message = str(body.get("message") or "") if result.is_error else ""
            started = (tool == "start_instance" and not result.is_error) or (label == "plan-new" and bool(steps))
            seen = Call(index, me, label, tool, instance if isinstance(instance, str) else None, bool(result.is_error), None if code is None else str(code), message, steps, started, seconds)
            out.append(seen)
            return seen

        k = 0
        done = 0

        def left() -> bool:
            return done < calls

        while left():
            own = f"{mine}{k}"
            script: list[tuple[str, str, Any]] = [
                ("start", "start_instance", {"instance": own}),
                ("request", "request", {"instance": own, "amount": 100 + k}),
                ("self-approve", "approve", {"instance": own}),
                ("approve-shared", "approve", None),
                ("pay-shared" if pays(index) else "pay-forbidden", "pay", None),
                ("bad-params", "request", {"instance": own, "amount": "a lot"}),
                ("get-shared", "get_instance", None),
                ("plan-new", "submit_plan", {"workflow": "refund", "instance": f"{own}-p", "steps": [{"event": "request", "params": {"amount": 50}}, {"event": "cancel", "params": {}}]}),
                ("plan-rejected", "submit_plan", {"workflow": "refund", "instance": own, "steps": [{"event": "pay", "params": {}}]}),
                ("reject-shared" if index % 2 else "cancel-own", "reject" if index % 2 else "cancel", None),
            ]
            for label, tool, given in script:
                if not left():
                    break
                arguments = given
                if arguments is None:
                    if label in ("approve-shared", "reject-shared"):
                        arguments = {"instance": board.pick(board.requested, mine) or own}
                    elif label == "pay-shared":
                        arguments = {"instance": board.pick(board.approved, mine) or own}
                    elif label == "get-shared":
                        arguments = {"instance": board.pick(board.requested + board.approved, mine) or own}
                    else:  # pay-forbidden, cancel-own
                        arguments = {"instance": own}
                seen = await call(label, tool, arguments)
                done += 1
                target = str(arguments["instance"])
                if label == "self-approve":
                    board.requested.append(own)  # others may approve it from now on
                elif not seen.is_error and tool in ("approve", "reject", "cancel", "pay"):
                    board.drop(board.requested, target)
                    board.drop(board.approved, target)
                    if tool == "approve":
                        board.approved.append(target)
            k += 1


@dataclass(frozen=True, slots=True)
class Result:
    """One load run: the store it ran on, the calls the clients saw, the wall-clock seconds
    from the first call to the last answer, the servers, the store check and the load average
    when it started."""

    store: str
    sessions: int
    servers: int
    calls: tuple[Call, ...]
    wall: float
    check: Check
    load: float


async def _load(urls: Sequence[str], tokens: Mapping[str, str], sessions: int, calls: int, run: str) -> tuple[list[Call], float]:
    board = _Board()
    out: list[Call] = []
    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for index in range(sessions):
            group.start_soon(_session, urls[index % len(urls)], tokens[actor(index)], index, calls, run, board, out)
    return out, time.perf_counter() - began


# ---------------------------------------------------------------------- the check


@dataclass(frozen=True, slots=True)
class Check:
    """What the store says after a run, against what the clients were answered. ``problems``
    is empty when every invariant holds."""

    verified: bool
    tamper: str
    records: int
    instances: int
    steps_audited: int
    steps_answered: int
    refusals_audited: int
    refusals_answered: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check(store: Any, calls: Sequence[Call], access_log: str = "railguard:gateway-access") -> Check:
    """Check the store after a run against the calls the clients saw (see the module docstring)."""
    from railguard.runtime.integrity import verify_store
    from railguard.spec import load

    problems: list[str] = []
    report = verify_store(store, [load(REFUND)])
    if not report.ok:
        problems.append(f"the audit does not verify: {report.tamper}")
    # what the clients were told
    answered: dict[str, Counter[tuple[str, str]]] = {}
    order: dict[tuple[str, str], list[str]] = {}
    started_told: Counter[str] = Counter()
    refusals_told: Counter[str] = Counter()
    unexplained = 0
    for call in sorted(calls, key=lambda c: c.session):  # each session's calls stay in order
        if call.started and call.instance is not None:
            started_told[call.instance] += 1
        for event, accepted in call.steps:
            if accepted and call.instance is not None:
                answered.setdefault(call.instance, Counter())[(event, call.actor)] += 1
                order.setdefault((call.instance, call.actor), []).append(event)
        if call.is_error:
            if not call.code or not call.message.strip():
                unexplained += 1
            refusals_told[call.actor] += 1
        want = ON_PURPOSE.get(call.label)
        if want is not None and (not call.is_error or (call.label != "self-approve" and call.code != want)):
            problems.append(f"`{call.label}` by {call.actor} on {call.instance} was answered {call.code or 'ok'}, not {want}")
    if unexplained:
        problems.append(f"{unexplained} refusal answers have no code or an empty message")
    # what the store recorded
    logs: dict[str, list[Any]] = {}
    for record in store.audit():
        logs.setdefault(record.instance, []).append(record)
    audited: dict[str, Counter[tuple[str, str]]] = {}
    audited_order: dict[tuple[str, str], list[str]] = {}
    started_audited: Counter[str] = Counter()
    refusals_audited: Counter[str] = Counter()
    for instance, records in logs.items():
        for record in records:
            payload = record.payload
            if instance == access_log:
                if payload.get("event") == "refused":
                    refusals_audited[str(payload.get("actor"))] += 1
                continue
            if record.kind == "start":
                started_audited[instance] += 1
            elif record.kind == "step":
                key = (str(payload.get("event")), str(payload.get("actor")))
                audited.setdefault(instance, Counter())[key] += 1
                audited_order.setdefault((instance, key[1]), []).append(key[0])
            elif record.kind == "note" and payload.get("note") in REFUSAL_NOTES:
                refusals_audited[str(payload.get("actor"))] += 1
    lost = sum((answered.get(i, Counter()) - audited.get(i, Counter())).total() for i in answered)
    extra = sum((audited.get(i, Counter()) - answered.get(i, Counter())).total() for i in audited)
    if lost:
        problems.append(f"{lost} steps the clients were told were accepted are not in the audit (lost)")
    if extra:
        problems.append(f"{extra} steps in the audit were never answered as accepted (duplicated or unanswered)")
    misordered = sorted(key for key in set(order) | set(audited_order) if order.get(key) != audited_order.get(key))
    if misordered and not lost and not extra:
        problems.append(f"{len(misordered)} (instance, actor) pairs have their steps in another order in the audit than answered, e.g. {misordered[0]}")
    if started_told != started_audited:
        differ = sorted(i for i in set(started_told) | set(started_audited) if started_told[i] != started_audited[i])
        problems.append(f"instances started: {sum(started_told.values())} answered, {sum(started_audited.values())} audited (first that differs: {differ[0]})")
    if refusals_told != refusals_audited:
        diff = {a: (refusals_told[a], refusals_audited[a]) for a in sorted(set(refusals_told) | set(refusals_audited)) if refusals_told[a] != refusals_audited[a]}
        problems.append(f"refusals answered and audited differ per actor (answered, audited): {diff}")
    return Check(
        verified=report.ok,
        tamper=str(report.tamper or ""),
        records=report.records,
        instances=report.instances,
        steps_audited=sum(c.total() for c in audited.values()),
        steps_answered=sum(c.total() for c in answered.values()),
        refusals_audited=sum(refusals_audited.values()),
        refusals_answered=sum(refusals_told.values()),
        problems=tuple(problems),
    )


# ---------------------------------------------------------------------- a run


def _open(kind: str, target: str) -> Any:
    from railguard.runtime import SQLiteStore
    from railguard.runtime.postgres import PostgresStore

    return SQLiteStore(target, readonly=True) if kind == "sqlite" else PostgresStore(target, readonly=True)


def run_load(kind: str, place: Path, *, sessions: int = SESSIONS, calls: int = CALLS, server_count: int = 2, dsn: str = PG_DSN) -> Result:
    """``sessions`` client sessions of ``calls`` calls each against ``server_count`` servers on
    one fresh store (``kind`` ``sqlite``: a file in ``place``; ``postgres``: a database of its
    own on ``dsn``'s server), then the store checked."""
    run = uuid.uuid4().hex[:8]
    folder = place / f"{kind}-{run}"
    folder.mkdir(parents=True)
    tokens = make_folder(folder, sessions, run)
    load = os.getloadavg()[0]

    def go(store_args: list[str], target: str) -> Result:
        with servers(folder, store_args, server_count) as urls:
            seen, wall = anyio.run(_load, urls, tokens, sessions, calls, run)
        store = _open(kind, target)
        try:
            verdict = check(store, seen)
        finally:
            store.close()
        return Result(kind, sessions, server_count, tuple(seen), wall, verdict, load)

    if kind == "sqlite":
        db = str(folder / "load.db")
        return go(["--db", db], db)
    with postgres_database(dsn) as url:
        return go(["--dsn", url], url)


# ---------------------------------------------------------------------- the report


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(result: Result) -> dict[str, Any]:
    """The numbers of one run: calls, calls/s, p50/p99 latency (ms), conflicts answered (a
    call on another session's instance refused because a session moved it first), those
    stopped at execution time (admitted, then refused by the engine's re-check because the
    other server's step committed in between), refusals on purpose, and refusals by code."""
    latencies = [c.seconds for c in result.calls]
    codes = Counter(c.code for c in result.calls if c.is_error)
    return {
        "store": result.store,
        "sessions": result.sessions,
        "servers": result.servers,
        "calls": len(result.calls),
        "per_second": len(result.calls) / result.wall if result.wall else 0.0,
        "p50_ms": 1000 * _quantile(latencies, 0.50),
        "p99_ms": 1000 * _quantile(latencies, 0.99),
        "accepted": sum(not c.is_error for c in result.calls),
        "conflicts": sum(c.raced for c in result.calls),
        "stopped": sum(c.is_error and bool(c.steps) for c in result.calls),
        "on_purpose": sum(c.is_error and c.label in ON_PURPOSE for c in result.calls),
        "refusals": sum(codes.values()),
        "codes": dict(sorted(codes.items(), key=lambda kv: (-kv[1], str(kv[0])))),
    }


def table(results: Sequence[Result]) -> str:
    """A table of the runs and their checks, with the ratios between them."""
    rows = [summary(r) for r in results]
    head = f"{'store':<9}{'sessions':>9}{'servers':>8}{'calls':>7}{'calls/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'accepted':>9}{'conflicts':>10}{'refusals':>9}{'steps':>7}  check"
    lines = [head, "-" * len(head)]
    for row, result in zip(rows, results, strict=True):
        verdict = "ok" if result.check.ok else "FAILED"
        lines.append(
            f"{row['store']:<9}{row['sessions']:>9}{row['servers']:>8}{row['calls']:>7}{row['per_second']:>9.1f}{row['p50_ms']:>8.1f}{row['p99_ms']:>8.1f}"
            f"{row['accepted']:>9}{row['conflicts']:>10}{row['refusals']:>9}{result.check.steps_audited:>7}  {verdict}"
        )
    for row, result in zip(rows, results, strict=True):
        lines.append(f"{row['store']}: refusals by code {row['codes']}; {row['on_purpose']} on purpose, {row['stopped']} stopped at execution time")
        lines.append(
            f"{row['store']}: audit {'verifies' if result.check.verified else 'DOES NOT VERIFY'} ({result.check.records} records, {result.check.instances} chains); "
            f"steps answered {result.check.steps_answered} = audited {result.check.steps_audited}; refusals answered {result.check.refusals_answered}, audited {result.check.refusals_audited}"
        )
        lines.extend(f"{row['store']}: PROBLEM: {p}" for p in result.check.problems)
    if len(rows) == 2 and rows[1]["per_second"]:
        a, b = rows
        lines.append(f"ratios {a['store']}/{b['store']}: calls/s {a['per_second'] / b['per_second']:.2f}x, p99 {a['p99_ms'] / b['p99_ms']:.2f}x")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="4 sessions x 30 calls")
    parser.add_argument("--sessions", type=int, default=None)
    parser.add_argument("--calls", type=int, default=None, help="calls per session")
    parser.add_argument("--servers", type=int, default=2, help="railguard serve processes on the one store (default 2)")
    parser.add_argument("--stores", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--dsn", default=PG_DSN, help="the PostgreSQL server (a database is created on it for the run)")
    args = parser.parse_args(argv)
    sessions = args.sessions or (4 if args.quick else SESSIONS)
    calls = args.calls or (30 if args.quick else CALLS)
    import platform

    import mcp  # noqa: F401 - the client the sessions use

    import railguard

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="rg-bench-gateway-") as place:
        for kind in [s.strip() for s in args.stores.split(",") if s.strip()]:
            if kind == "postgres" and (why := postgres_missing(args.dsn)) is not None:
                print(f"postgres: skipped: {why}")
                continue
            results.append(run_load(kind, Path(place), sessions=sessions, calls=calls, server_count=args.servers, dsn=args.dsn))
    from importlib.metadata import version

    print(f"railguard {railguard.__version__}, mcp {version('mcp')}, Python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"load average at the start of each run: {', '.join(f'{r.store} {r.load:.2f}' for r in results)}")
    print(table(results))
    return 0 if all(r.check.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
