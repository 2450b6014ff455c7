"""Bad input to ``railguard serve``: malformed JSON-RPC, unknown methods and tools, params of
the wrong type, extra fields, an identity argument, oversized requests. Each gets a
protocol-correct error (a JSON-RPC error, or a tool result with ``isError``), the server keeps
serving, and the instance's row and audit log are exactly as they were; tool-level refusals
are audited in the access log."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from railguard.runtime import SQLiteStore
from railguard.runtime.gateway import ACCESS_LOG
from railguard.runtime.integrity import verify_store
from railguard.spec import load

from .gatewaykit import REFUND, HttpServer, environment, http_server, make_folder, serve_args, token

PROTOCOL = "2025-06-18"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}

#: (tool, arguments, the refusal's code): each well-formed JSON-RPC, each refused by the gateway
BAD_CALLS: list[tuple[str, Any, str]] = [
    ("transfer_everything", {"instance": "bad-1"}, "unknown-tool"),
    ("request", {"instance": "bad-1", "amount": True}, "bad-arguments"),
    ("request", {"instance": "bad-1", "amount": "100"}, "bad-arguments"),
    ("request", {"instance": "bad-1", "amount": 100, "memo": "extra"}, "bad-arguments"),
    ("request", {"instance": "bad-1", "amount": 100, "actor": "bob"}, "identity"),
    ("submit_plan", {"workflow": "refund", "instance": "bad-1", "roles": ["manager"], "steps": []}, "identity"),
    ("request", {"instance": "bad-1", "amount": "9" * 300_000}, "too-large"),
    ("get_instance", {"instance": ["bad-1"]}, "bad-arguments"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("hostile"))


def _snapshot(db: Path, instance: str) -> tuple[Any, list[str]]:
    store = SQLiteStore(db, readonly=True)
    try:
        return store.get(instance), [r.hash for r in store.audit(instance)]
    finally:
        store.close()


def _access(db: Path) -> list[dict[str, Any]]:
    store = SQLiteStore(db, readonly=True)
    try:
        return [dict(r.payload) for r in store.audit(ACCESS_LOG)]
    finally:
        store.close()


def _verified(db: Path) -> bool:
    store = SQLiteStore(db, readonly=True)
    try:
        return verify_store(store, [load(REFUND)]).ok
    finally:
        store.close()


class RawStdio:
    """A ``railguard serve`` subprocess spoken to in raw lines of JSON."""

    def __init__(self, folder: Path, db: Path, actor: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *serve_args(str(db), "--actor", actor)], cwd=folder, env=environment(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def send(self, line: bytes | str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((line.encode() if isinstance(line, str) else line) + b"\n")
        self.process.stdin.flush()

    def ask(self, line: bytes | str | dict[str, Any]) -> dict[str, Any]:
        self.send(json.dumps(line) if isinstance(line, dict) else line)
        answer: dict[str, Any] = json.loads(self.lines.get(timeout=60))
        return answer

    def call(self, ident: int, name: str, arguments: Any) -> dict[str, Any]:
        return self.ask({"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": {"name": name, "arguments": arguments}})

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def raw(folder: Path, tmp_path: Path) -> Iterator[tuple[RawStdio, Path]]:
    db = tmp_path / "raw.db"
    server = RawStdio(folder, db, "alice")
    try:
        assert server.ask(INITIALIZE)["result"]["protocolVersion"] == PROTOCOL
        server.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        assert server.call(2, "start_instance", {"instance": "bad-1"})["result"]["isError"] is False
        assert server.call(3, "request", {"instance": "bad-1", "amount": 50})["result"]["structuredContent"]["state"] == "requested"
        yield server, db
    finally:
        server.close()


def test_malformed_json_rpc_over_stdio_gets_the_protocol_errors_and_changes_nothing(raw: tuple[RawStdio, Path]) -> None:
    server, db = raw
    before = _snapshot(db, "bad-1")
    assert server.ask("{this is not json")["error"]["code"] == -32700
    assert server.ask("{this is not json")["id"] is None
    assert server.ask('{"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": "request"}') == {"jsonrpc": "2.0", "id": 41, "error": {"code": -32600, "message": "Invalid Request"}}
    assert server.ask("[1, 2, 3]")["error"]["code"] == -32600
    assert server.ask({"jsonrpc": "2.0", "id": 42, "method": "tools/obliterate"})["error"]["code"] == -32601
    invalid = server.ask({"jsonrpc": "2.0", "id": 43, "method": "tools/call", "params": {"name": "request", "arguments": "amount=100"}})
    assert (invalid["id"], invalid["error"]["code"]) == (43, -32602)
    assert server.ask(b'{"jsonrpc": "2.0", "id": 44, "method": "tools/list"}\xff')["error"]["code"] in (-32700, -32600)
    assert server.call(45, "get_instance", {"instance": "bad-1"})["result"]["structuredContent"]["state"] == "requested"
    assert _snapshot(db, "bad-1") == before
    assert _access(db) == []
    assert _verified(db)


def test_bad_tool_calls_over_stdio_are_refused_with_is_error_audited_and_change_nothing(raw: tuple[RawStdio, Path]) -> None:
    server, db = raw
    before = _snapshot(db, "bad-1")
    for ident, (tool, arguments, code) in enumerate(BAD_CALLS, 100):
        answer = server.call(ident, tool, arguments)
        assert answer["id"] == ident
        result = answer["result"]
        assert result["isError"] is True, (tool, arguments)
        assert result["structuredContent"]["code"] == code, (tool, result["structuredContent"]["message"])
        assert result["content"][0]["text"].startswith(f"Refused ({code}): ")
        assert "Traceback" not in json.dumps(result)
    assert _snapshot(db, "bad-1") == before
    logged = _access(db)
    assert [(p["event"], p["code"], p["actor"], p["transport"]) for p in logged] == [("refused", code, "alice", "stdio") for _, _, code in BAD_CALLS]
    assert _verified(db)


# ---------------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[HttpServer]:
    with http_server(folder, folder / "hostile-http.db") as running:
        yield running


def _session(http: httpx2.Client, server: HttpServer) -> dict[str, str]:
    opened = http.post(server.url, content=json.dumps(INITIALIZE).encode(), headers={**HEADERS, "authorization": f"Bearer {token('alice')}"})
    assert opened.status_code == 200
    headers = {**HEADERS, "authorization": f"Bearer {token('alice')}", "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": PROTOCOL}
    http.post(server.url, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(), headers=headers)
    return headers


def _started(server: HttpServer, instance: str) -> None:
    async def main() -> None:
        async with (
            create_mcp_http_client(headers={"Authorization": f"Bearer {token('alice')}"}) as http,
            streamable_http_client(server.url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await session.call_tool("start_instance", {"instance": instance})
            await session.call_tool("request", {"instance": instance, "amount": 20})

    anyio.run(main)


def test_malformed_and_oversized_http_requests_get_protocol_errors_and_change_nothing(server: HttpServer) -> None:
    _started(server, "hh-1")
    before, logged = _snapshot(server.db, "hh-1"), len(_access(server.db))
    with httpx2.Client() as http:
        headers = _session(http, server)
        broken = http.post(server.url, content=b"{this is not json", headers=headers)
        assert broken.status_code == 400
        assert broken.json()["error"]["code"] == -32700
        assert broken.json()["id"] is None
        shapeless = http.post(server.url, content=b'{"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": "request"}', headers=headers)
        assert shapeless.status_code == 400
        assert shapeless.json()["error"]["code"] in (-32600, -32602)
        huge = http.post(server.url, content=b'{"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "request", "arguments": {"x": "' + b"9" * 2_000_000 + b'"}}}', headers=headers)
        assert huge.status_code == 413
    assert _snapshot(server.db, "hh-1") == before
    assert len(_access(server.db)) == logged
    assert _verified(server.db)


def test_bad_tool_calls_over_http_are_refused_with_is_error_audited_and_change_nothing(server: HttpServer) -> None:
    _started(server, "hh-2")
    before, logged = _snapshot(server.db, "hh-2"), len(_access(server.db))
    results: list[Any] = []

    async def main() -> None:
        async with (
            create_mcp_http_client(headers={"Authorization": f"Bearer {token('alice')}"}) as http,
            streamable_http_client(server.url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for tool, arguments, _ in BAD_CALLS:
                results.append(await session.call_tool(tool, {**arguments, "instance": "hh-2"} if "instance" in arguments and isinstance(arguments["instance"], str) else arguments))

    anyio.run(main)
    assert [(r.is_error, r.structured_content["code"]) for r in results] == [(True, code) for _, _, code in BAD_CALLS]
    assert _snapshot(server.db, "hh-2") == before
    assert [(p["code"], p["transport"]) for p in _access(server.db)[logged:]] == [(code, "http") for _, _, code in BAD_CALLS]
    assert _verified(server.db)
