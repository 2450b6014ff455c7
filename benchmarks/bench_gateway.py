"""Load on the gateway: concurrent MCP client sessions against ``railguard serve`` over HTTP.

Eight sessions (the ``mcp`` package's own streamable-HTTP client, each with its own bearer
token) make 200 tool calls each, against two gateway server processes on 127.0.0.1 that share
one store — a SQLite file, then a PostgreSQL schema — four sessions on each server. Each
session runs 40 rounds of five calls on the refund example:

1. ``start_instance`` its own instance ``s<i>-<r>``;
2. ``request`` an amount on it;
3. ``approve`` it itself — refused by the four-eyes guard (``guard-false``), audited on the
   instance's chain;
4. ``approve`` the shared instance ``shared-<r>``, which all eight sessions race for at once
   from two processes: exactly one may win, the others must be answered;
5. ``cancel`` its own instance.

Afterwards the store is checked: every own instance holds exactly the records its five calls
call for (no step lost or duplicated), every shared instance exactly one ``approve`` step,
every refusal answered with a code and a sentence, and ``verify_store`` (what
``railguard audit verify`` runs) passes. Printed: calls per second (all calls, wall clock)
and the latency percentiles of single calls as the client sees them.

    python benchmarks/bench_gateway.py                  # SQLite and PostgreSQL, 8 x 200
    python benchmarks/bench_gateway.py sqlite 8 200     # one store, sessions, calls each

PostgreSQL is ``RAILGUARD_TEST_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
in a fresh schema dropped afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REFUND = ROOT / "examples" / "refund.yaml"
PG_DSN = os.environ.get("RAILGUARD_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")
CALLS_PER_ROUND = 5
SERVERS = 2


def agent(i: int) -> str:
    return f"agent-{i}"


def agent_token(i: int) -> str:
    return f"bench-token-{i}-5d1c"


# ---------------------------------------------------------------------- the server side


def prepare(folder: Path, sessions: int) -> None:
    """The certificate, trusted key and directory of the run, in ``folder``."""
    from railguard.runtime.gateway import token_digest
    from railguard.spec import load
    from railguard.verifier.certificate import issue, sign
    from railguard.verifier.checks import verify
    from railguard.verifier.keys import generate_key, write_key_pair

    spec = load(REFUND)
    key = generate_key()
    write_key_pair(key, folder / "ci.key")
    (folder / "refund.cert.json").write_text(sign(issue(verify(spec)), key).dumps(), encoding="utf-8")
    lines = ["requester: [support]"]
    lines += [f"{agent(i)}: {{roles: [support, manager], tokens: ['{token_digest(agent_token(i))}']}}" for i in range(sessions)]
    (folder / "people.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def open_store(kind: str, target: str) -> Any:
    from railguard.runtime import SQLiteStore
    from railguard.runtime.postgres import PostgresStore

    return SQLiteStore(target) if kind == "sqlite" else PostgresStore(PG_DSN, schema=target)


def gateway(folder: Path, store: Any) -> Any:
    from railguard.runtime import Effects, Engine, load_directory
    from railguard.runtime.auth import KnownPrincipals
    from railguard.runtime.gateway import Gateway
    from railguard.spec import load
    from railguard.verifier.certificate import load_certificate
    from railguard.verifier.keys import TrustSet

    spec = load(REFUND)
    certificate = load_certificate(folder / "refund.cert.json")
    trusted = TrustSet.load([str(folder / "ci.key.pub")])
    directory = load_directory(folder / "people.yaml")
    effects = Effects()
    effects.register("payments.refund", lambda call: {"ok": True})
    engine = Engine(spec, store, directory, effects=effects, certificate=certificate, trusted_keys=trusted, authenticator=KnownPrincipals(directory))
    return Gateway(spec, engine, certificate=certificate, trusted_keys=trusted)


def seed(folder: Path, kind: str, target: str, rounds: int) -> None:
    """The shared instances, requested by ``requester``, before the sessions start."""
    store = open_store(kind, target)
    try:
        served = gateway(folder, store)
        requester = served.principal("requester")
        for r in range(rounds):
            served.call(requester, "start_instance", {"instance": f"shared-{r}"})
            answer = served.call(requester, "request", {"instance": f"shared-{r}", "amount": 10 + r})
            assert not answer.is_error, answer.text
    finally:
        store.close()


def serve(folder: str, kind: str, target: str, port: int) -> None:
    """One gateway server process (``python bench_gateway.py --serve ...``)."""
    from railguard.mcp_server import serve_http

    store = open_store(kind, target)
    try:
        serve_http(gateway(Path(folder), store), port=port)
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def servers(folder: Path, kind: str, target: str, count: int) -> Iterator[list[str]]:
    """``count`` gateway server processes on one store; yields their URLs."""
    ports = [_free_port() for _ in range(count)]
    processes = [
        subprocess.Popen([sys.executable, __file__, "--serve", str(folder), kind, target, str(port)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in ports
    ]
    try:
        for process, port in zip(processes, ports, strict=True):
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"a gateway server exited with {process.returncode}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        yield [f"http://127.0.0.1:{port}/mcp" for port in ports]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ---------------------------------------------------------------------- the client side


@dataclass
class Call:
    session: int
    round: int
    tool: str
    instance: str
    seconds: float
    is_error: bool
    body: dict[str, Any]


@dataclass
class Report:
    store: str
    sessions: int
    calls: int
    seconds: float
    latencies: list[float]
    answers: list[Call]
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def raced(self) -> int:
        """Refusals of calls admitted but refused by the engine's re-check at execution time
        (another session's step got there first)."""
        return sum(1 for call in self.answers if call.is_error and call.body.get("steps"))

    def codes(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for call in self.answers:
            if call.is_error:
                code = str(call.body.get("code"))
                found[code] = found.get(code, 0) + 1
        return found


async def _session(url: str, i: int, rounds: int, out: list[Call], start: Any) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with (
        create_mcp_http_client(headers={"Authorization": f"Bearer {agent_token(i)}"}) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await session.list_tools()
        await start.wait()
        for r in range(rounds):
            mine = f"s{i}-{r}"
            plan = [
                ("start_instance", {"instance": mine}),
                ("request", {"instance": mine, "amount": 1 + r}),
                ("approve", {"instance": mine}),
                ("approve", {"instance": f"shared-{r}"}),
                ("cancel", {"instance": mine}),
            ]
            for tool, arguments in plan:
                began = time.perf_counter()
                result = await session.call_tool(tool, arguments)
                took = time.perf_counter() - began
                out.append(Call(i, r, tool, arguments["instance"], took, bool(result.is_error), dict(result.structured_content or {})))


async def _clients(urls: list[str], sessions: int, rounds: int, out: list[Call]) -> float:
    import anyio

    start = anyio.Event()
    async with anyio.create_task_group() as group:
        for i in range(sessions):
            group.start_soon(_session, urls[i % len(urls)], i, rounds, out, start)
        await anyio.sleep(1.0)  # every session initialised and listed before the clock starts
        began = time.perf_counter()
        start.set()
    return time.perf_counter() - began


def check(kind: str, target: str, sessions: int, rounds: int, answers: list[Call]) -> list[str]:
    """What went wrong, as sentences (empty: nothing)."""
    from railguard.runtime.integrity import verify_store
    from railguard.spec import load

    problems: list[str] = []
    by_key = {(c.session, c.round, c.tool, c.instance): c for c in answers}
    if len(answers) != sessions * rounds * CALLS_PER_ROUND:
        problems.append(f"{len(answers)} answers, not {sessions * rounds * CALLS_PER_ROUND}")
    for call in answers:
        if call.is_error and not (call.body.get("code") and call.body.get("message")):
            problems.append(f"session {call.session} round {call.round} `{call.tool}`: a refusal without a code and a sentence")
    store = open_store(kind, target)
    try:
        expected = [("start", None), ("note", "plan"), ("step", "request"), ("note", "plan-done"), ("note", "plan-rejected"), ("note", "plan"), ("step", "cancel"), ("note", "plan-done")]
        for i in range(sessions):
            for r in range(rounds):
                mine = f"s{i}-{r}"
                kinds = [(rec.kind, rec.payload.get("note") if rec.kind == "note" else rec.payload.get("event")) for rec in store.audit(mine)]
                if kinds != expected:
                    problems.append(f"`{mine}` holds {kinds}")
                self_approval = by_key.get((i, r, "approve", mine))
                if self_approval is None or self_approval.body.get("code") != "guard-false":
                    problems.append(f"`{mine}`: the self-approval was not refused by the four-eyes guard")
        for r in range(rounds):
            approvals = [rec for rec in store.audit(f"shared-{r}") if rec.kind == "step" and rec.payload.get("event") == "approve"]
            won = [c for c in answers if c.instance == f"shared-{r}" and not c.is_error]
            if len(approvals) != 1 or len(won) != 1:
                problems.append(f"`shared-{r}`: {len(approvals)} approve steps and {len(won)} accepted answers, not 1 and 1")
        report = verify_store(store, [load(REFUND)])
        if not report.ok:
            problems.append(f"audit: {report.tamper}")
    finally:
        store.close()
    return problems


def run(kind: str, sessions: int = 8, calls: int = 200) -> Report:
    """One load run on a fresh store of ``kind`` (``sqlite`` or ``postgres``)."""
    import anyio

    rounds = calls // CALLS_PER_ROUND
    with tempfile.TemporaryDirectory(prefix="rg-gateway-load-") as place:
        folder = Path(place)
        prepare(folder, sessions)
        target = str(folder / "load.db") if kind == "sqlite" else f"rg_gw_load_{uuid.uuid4().hex[:12]}"
        try:
            seed(folder, kind, target, rounds)
            answers: list[Call] = []
            with servers(folder, kind, target, SERVERS) as urls:
                seconds = anyio.run(_clients, urls, sessions, rounds, answers)
            report = Report(kind, sessions, len(answers), seconds, [c.seconds for c in answers], answers)
            report.problems = check(kind, target, sessions, rounds, answers)
            return report
        finally:
            if kind == "postgres":
                cleaner = open_store(kind, target)
                cleaner.drop()
                cleaner.close()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        serve(argv[1], argv[2], argv[3], int(argv[4]))
        return 0
    kinds = [argv[0]] if argv else ["sqlite", "postgres"]
    sessions = int(argv[1]) if len(argv) > 1 else 8
    calls = int(argv[2]) if len(argv) > 2 else 200
    import mcp

    import railguard

    print(f"railguard {railguard.__version__}, mcp {getattr(mcp, '__version__', '2.x')}, Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{sessions} sessions x {calls} calls, {SERVERS} server processes on one store")
    print(f"{'store':>9} {'calls':>6} {'seconds':>8} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'raced':>6}  refusals")
    failed = False
    for kind in kinds:
        report = run(kind, sessions, calls)
        codes = ", ".join(f"{code} {n}" for code, n in sorted(report.codes().items()))
        print(f"{kind:>9} {report.calls:>6} {report.seconds:>8.1f} {report.rate:>8.1f} {report.percentile(50) * 1000:>7.0f} {report.percentile(99) * 1000:>7.0f} {max(report.latencies) * 1000:>7.0f} {report.raced():>6}  {codes}")
        for problem in report.problems:
            failed = True
            print(f"  PROBLEM: {problem}")
    print(json.dumps({"ok": not failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
