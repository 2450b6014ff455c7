"""``railguard serve`` end to end, with the ``mcp`` package's own client: over stdio (the
server a subprocess the client launches) and over streamable HTTP on 127.0.0.1 (a server
subprocess, bearer tokens mapped to principals by the directory). Assertions are on tool
names, ``isError``, ``structuredContent`` and the audit records left in the store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jsonschema
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from railguard.runtime import SQLiteStore
from railguard.runtime.gateway import ACCESS_LOG
from railguard.runtime.integrity import verify_store
from railguard.spec import load

from .gatewaykit import REFUND, HttpServer, environment, http_server, make_folder, serve_args, token

HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("gateway"))


@asynccontextmanager
async def stdio_session(folder: Path, db: Path, actor: str, *extra: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=sys.executable, args=serve_args(str(db), "--actor", actor, *extra), cwd=folder, env=environment())
    with open(folder / f"stderr-{actor}.txt", "a", encoding="utf-8") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def http_session(server: HttpServer, principal: str) -> AsyncIterator[ClientSession]:
    async with (
        create_mcp_http_client(headers={"Authorization": f"Bearer {token(principal)}"}) as http,
        streamable_http_client(server.url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _store_ok(db: Path) -> None:
    store = SQLiteStore(db, readonly=True)
    try:
        report = verify_store(store, [load(REFUND)])
        assert report.ok, report.tamper
    finally:
        store.close()


def _audit(db: Path, instance: str) -> list[dict[str, Any]]:
    store = SQLiteStore(db, readonly=True)
    try:
        return [dict(r.payload) for r in store.audit(instance)]
    finally:
        store.close()


async def _names(session: ClientSession) -> list[str]:
    return [tool.name for tool in (await session.list_tools()).tools]


# ---------------------------------------------------------------------- stdio


def test_a_stdio_client_lists_the_principals_tools_and_reads_structured_results_and_errors(folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "stdio.db"
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with stdio_session(folder, db, "alice") as session:
            listed = (await session.list_tools()).tools
            seen["tools"] = [t.name for t in listed]
            seen["schemas"] = {t.name: t.output_schema for t in listed}
            seen["start"] = await session.call_tool("start_instance", {"instance": "s-1"})
            seen["request"] = await session.call_tool("request", {"instance": "s-1", "amount": 120})
            seen["approve"] = await session.call_tool("approve", {"instance": "s-1"})
            seen["unknown"] = await session.call_tool("transfer_everything", {"instance": "s-1"})
            seen["typed"] = await session.call_tool("request", {"instance": "s-1", "amount": "100"})
            seen["get"] = await session.call_tool("get_instance", {"instance": "s-1"})

    anyio.run(main)
    assert seen["tools"] == ["request", "cancel", "start_instance", "get_instance", "submit_plan"]
    assert all(schema is not None and schema["type"] == "object" for schema in seen["schemas"].values())
    start, request, approve = seen["start"], seen["request"], seen["approve"]
    assert (start.is_error, start.structured_content["state"]) == (False, "draft")
    assert request.is_error is False
    assert request.structured_content["state"] == "requested"
    assert request.structured_content["steps"][0]["accepted"] is True
    jsonschema.validate(request.structured_content, seen["schemas"]["request"])
    assert approve.is_error is True
    assert approve.structured_content["code"] == "tool-not-allowed"
    assert json.loads(approve.content[1].text) == approve.structured_content
    assert (seen["unknown"].is_error, seen["unknown"].structured_content["code"]) == (True, "unknown-tool")
    assert (seen["typed"].is_error, seen["typed"].structured_content["code"]) == (True, "bad-arguments")
    assert seen["get"].structured_content["values"]["amount"] == 120
    jsonschema.validate(seen["get"].structured_content, seen["schemas"]["get_instance"])
    audit = _audit(db, "s-1")
    assert [(p["kind"], p.get("note"), p.get("actor")) for p in audit] == [
        ("start", None, "alice"), ("note", "plan", "alice"), ("step", None, "alice"), ("note", "plan-done", "alice"), ("note", "gateway-refused", "alice"),
    ]
    access = _audit(db, ACCESS_LOG)
    assert [(p["event"], p["code"], p["transport"]) for p in access] == [("refused", "unknown-tool", "stdio"), ("refused", "bad-arguments", "stdio")]
    _store_ok(db)


def test_two_principals_see_different_tools_and_roles_given_at_launch_narrow_the_list(folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    lists: dict[str, list[str]] = {}

    async def main() -> None:
        async with stdio_session(folder, db, "alice") as alice, stdio_session(folder, db, "dana", "--roles", "manager") as dana:  # one store, two sessions
            lists["alice"], lists["dana"] = await _names(alice), await _names(dana)

    anyio.run(main)
    assert lists["alice"] == ["request", "cancel", "start_instance", "get_instance", "submit_plan"]
    assert lists["dana"] == ["approve", "reject", "start_instance", "get_instance", "submit_plan"]


def test_a_stdio_server_refuses_to_start_for_an_unknown_actor_or_a_role_the_directory_does_not_give(folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "refused.db"
    widened = subprocess.run([sys.executable, *serve_args(str(db), "--actor", "alice", "--roles", "support,manager")], check=False, cwd=folder, env=environment(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert widened.returncode == 2
    assert widened.stderr.strip().splitlines() == ["railguard: error: the directory does not give `alice` the role `manager`: roles may only narrow what the directory gives"]
    stranger = subprocess.run([sys.executable, *serve_args(str(db), "--actor", "mallory")], check=False, cwd=folder, env=environment(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert stranger.returncode == 2
    assert "`mallory` is not a principal of the directory" in stranger.stderr


@pytest.mark.slow
def test_the_refund_scene_over_stdio_a_self_approval_refused_a_second_person_approves_a_plan_repaired(folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "scene.db"
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with stdio_session(folder, db, "dana") as dana:
            await dana.call_tool("start_instance", {"instance": "refund-1"})
            await dana.call_tool("request", {"instance": "refund-1", "amount": 300})
            seen["self"] = await dana.call_tool("approve", {"instance": "refund-1"})
        async with stdio_session(folder, db, "bob") as bob:
            seen["approve"] = await bob.call_tool("approve", {"instance": "refund-1"})
        async with stdio_session(folder, db, "carol") as carol:
            seen["pay"] = await carol.call_tool("pay", {"instance": "refund-1"})
        async with stdio_session(folder, db, "dana") as dana:
            await dana.call_tool("submit_plan", {"workflow": "refund", "instance": "refund-2", "steps": [{"event": "request", "params": {"amount": 40}}]})
        async with stdio_session(folder, db, "erin") as erin:
            seen["rejected"] = await erin.call_tool("submit_plan", {"workflow": "refund", "instance": "refund-2", "steps": [{"event": "pay", "params": {}}]})
            completion = seen["rejected"].structured_content["completion"]
            seen["repaired"] = await erin.call_tool("submit_plan", {"workflow": "refund", "instance": "refund-2", "steps": completion})

    anyio.run(main)
    assert seen["self"].is_error is True
    assert seen["self"].structured_content["code"] == "guard-false"
    assert "actor != requested_by" in seen["self"].structured_content["message"]
    assert seen["approve"].structured_content["state"] == "approved"
    pay = seen["pay"].structured_content
    assert (pay["state"], pay["status"]) == ("paid", "done")
    assert pay["steps"][0]["effects"][0]["result"] == {"refund_id": "re-refund-1", "amount": 300}
    rejected = seen["rejected"].structured_content
    assert (rejected["code"], rejected["step"]) == ("not-enabled", 0)
    assert [s["event"] for s in rejected["completion"]] == ["approve", "pay"]
    assert seen["repaired"].is_error is False
    assert seen["repaired"].structured_content["path"] == ["requested", "approved", "paid"]
    notes = [p.get("note") for p in _audit(db, "refund-1") if p["kind"] == "note"]
    assert notes == ["plan", "plan-done", "plan-rejected", "plan", "plan-done", "plan", "plan-done"]
    _store_ok(db)


# ---------------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[HttpServer]:
    with http_server(folder, folder / "http.db") as running:
        yield running


def test_an_http_client_acts_as_the_principal_its_bearer_token_proves(server: HttpServer) -> None:
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with http_session(server, "alice") as alice, http_session(server, "bob") as bob:
            seen["alice"], seen["bob"] = await _names(alice), await _names(bob)
            seen["start"] = await alice.call_tool("start_instance", {"instance": "h-1"})
            seen["request"] = await alice.call_tool("request", {"instance": "h-1", "amount": 75})
            seen["forbidden"] = await alice.call_tool("approve", {"instance": "h-1"})
            seen["approve"] = await bob.call_tool("approve", {"instance": "h-1"})
            seen["actor"] = await bob.call_tool("reject", {"instance": "h-1", "actor": "alice"})

    anyio.run(main)
    assert seen["alice"] == ["request", "cancel", "start_instance", "get_instance", "submit_plan"]
    assert seen["bob"] == ["approve", "reject", "start_instance", "get_instance", "submit_plan"]
    assert seen["request"].structured_content["state"] == "requested"
    assert (seen["forbidden"].is_error, seen["forbidden"].structured_content["code"]) == (True, "tool-not-allowed")
    assert (seen["approve"].is_error, seen["approve"].structured_content["state"]) == (False, "approved")
    assert (seen["actor"].is_error, seen["actor"].structured_content["code"]) == (True, "identity")
    audit = _audit(server.db, "h-1")
    assert [(p["kind"], p.get("event"), p["actor"]) for p in audit if p["kind"] in ("start", "step")] == [("start", None, "alice"), ("step", "request", "alice"), ("step", "approve", "bob")]
    assert audit[-1]["note"] == "plan-done"
    _store_ok(server.db)


def test_an_http_request_without_a_token_or_with_a_forged_one_gets_401_and_is_audited(server: HttpServer) -> None:
    forged = "forged-token-123456"
    body = json.dumps(INITIALIZE).encode()
    with httpx2.Client() as http:
        missing = http.post(server.url, content=body, headers=HEADERS)
        wrong = http.post(server.url, content=body, headers={**HEADERS, "authorization": f"Bearer {forged}"})
        hashed = http.post(server.url, content=body, headers={**HEADERS, "authorization": "Bearer sha256:" + "0" * 64})
    for answer in (missing, wrong, hashed):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer ")
    access = [p for p in _audit(server.db, ACCESS_LOG) if p["event"] == "unauthenticated"]
    assert [(p["reason"], p["where"]) for p in access[-3:]] == [("no bearer token", "POST /mcp"), ("an unknown bearer token", "POST /mcp"), ("an unknown bearer token", "POST /mcp")]
    assert access[-3]["token"] is None
    assert access[-2]["token"].startswith("sha256:")
    assert len(access[-2]["token"]) == 19
    assert all(forged not in json.dumps(p) for p in _audit(server.db, ACCESS_LOG))
    _store_ok(server.db)


def test_a_session_opened_with_one_token_cannot_be_used_with_another(server: HttpServer) -> None:
    body = json.dumps(INITIALIZE).encode()
    with httpx2.Client() as http:
        opened = http.post(server.url, content=body, headers={**HEADERS, "authorization": f"Bearer {token('alice')}"})
        assert opened.status_code == 200
        session = opened.headers["mcp-session-id"]
        listing = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).encode()
        stolen = http.post(server.url, content=listing, headers={**HEADERS, "authorization": f"Bearer {token('bob')}", "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"})
    assert stolen.status_code in (403, 404)
    assert "approve" not in stolen.text


def test_a_client_of_the_2026_protocol_over_stdio_gets_the_same_tools_and_answers(folder: Path, tmp_path: Path) -> None:
    from mcp import Client

    db = tmp_path / "modern.db"
    seen: dict[str, Any] = {}

    async def main() -> None:
        params = StdioServerParameters(command=sys.executable, args=serve_args(str(db), "--actor", "alice"), cwd=folder, env=environment())
        async with Client(params) as client:
            seen["version"] = client.session.protocol_version
            seen["tools"] = [t.name for t in (await client.list_tools()).tools]
            seen["start"] = await client.call_tool("start_instance", {"instance": "m-1"})
            seen["approve"] = await client.call_tool("approve", {"instance": "m-1"})

    anyio.run(main)
    assert seen["version"] == "2026-07-28"
    assert seen["tools"] == ["request", "cancel", "start_instance", "get_instance", "submit_plan"]
    assert (seen["start"].is_error, seen["start"].structured_content["state"]) == (False, "draft")
    assert (seen["approve"].is_error, seen["approve"].structured_content["code"]) == (True, "tool-not-allowed")
