"""The gateway over the Model Context Protocol, built on the official ``mcp`` package.

:func:`build_server` puts a :class:`~railguard.runtime.gateway.Gateway` behind the package's
low-level :class:`mcp.server.lowlevel.Server`: ``tools/list`` answers with
:meth:`Gateway.tools` for the connection's principal, ``tools/call`` with
:meth:`Gateway.call`, as a ``CallToolResult`` whose ``structuredContent`` matches the tool's
``outputSchema`` (``isError`` on every refusal) and whose text content is the answer's
sentence and its JSON. The protocol — framing, the handshake, JSON-RPC errors, sessions — is
the package's; railguard adds no protocol of its own.

- :func:`serve_stdio`: one connection over stdin/stdout, as the principal fixed at launch. The
  package drops a line it cannot parse; the gateway answers it as JSON-RPC 2.0 requires, with
  the package's own error types: ``-32700`` (id ``null``) for text that is not JSON, ``-32600``
  (with the request's id when it has one) for JSON that is not a JSON-RPC message.
- :func:`http_app` / :func:`serve_http`: the package's streamable-HTTP app, with its bearer
  authentication (:class:`mcp.server.auth.middleware.bearer_auth.BearerAuthBackend` and
  ``RequireAuthMiddleware``) fed by a :class:`DirectoryTokens` verifier: a token is mapped to a
  principal by the directory's token digests. A request with no token or an unknown one gets
  401 with ``WWW-Authenticate: Bearer`` and is audited in the access log (never the token;
  the first 12 hex digits of its SHA-256 at most). Request bodies are bounded by the package
  (413 above ``max_body`` bytes). Each session belongs to the principal that opened it.

Calls run in a worker thread (the event loop keeps serving other sessions); the gateway
serialises them in-process.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import railguard
from railguard.runtime.gateway import Gateway, ToolAnswer, token_digest
from railguard.verifier.admission import Principal

__all__ = ["MAX_BODY", "DirectoryTokens", "build_server", "http_app", "serve_http", "serve_stdio"]

#: The largest HTTP request body accepted (bytes); larger ones get 413 from the package.
MAX_BODY = 1_000_000

#: Who the caller of a request is: ``None`` when the connection proves no principal.
PrincipalOf = Callable[[ServerRequestContext[Any, Any]], Principal | None]


def _result(answer: ToolAnswer) -> types.CallToolResult:
    return types.CallToolResult(
        content=[
            types.TextContent(type="text", text=answer.text),
            types.TextContent(type="text", text=json.dumps(answer.structured, ensure_ascii=False, sort_keys=True)),
        ],
        structured_content=dict(answer.structured),
        is_error=answer.is_error,
    )


def build_server(gateway: Gateway, principal_of: PrincipalOf, *, transport: str) -> Server[Any]:
    """The low-level MCP server of ``gateway``; ``principal_of`` says who each request's
    caller is (fixed on stdio, the bearer token's principal on HTTP)."""

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        principal = principal_of(ctx)
        listed = [] if principal is None else gateway.tools(principal)
        return types.ListToolsResult(tools=[types.Tool.model_validate(tool, by_name=False) for tool in listed])

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        principal = principal_of(ctx)
        if principal is None:  # the HTTP app refuses such requests first; deny by default anyway
            return _result(ToolAnswer(True, {"ok": False, "code": "unauthenticated", "message": "the caller proves no principal"}, "Refused (unauthenticated): the caller proves no principal."))
        answer = await anyio.to_thread.run_sync(partial(gateway.call, principal, params.name, params.arguments, transport=transport))
        return _result(answer)

    return Server(
        "railguard",
        version=railguard.__version__,
        instructions=(
            "Each tool fires one event of a verified workflow as you, the authenticated caller; submit_plan runs a whole plan. "
            "Every call is admitted against the verified machine first: a refusal says why and what you may do instead."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


# ---------------------------------------------------------------------- stdio


def _unparseable(item: Exception) -> types.JSONRPCError:
    """The JSON-RPC 2.0 answer to a line the package could not read as a message."""
    request_id: Any = None
    if isinstance(item, ValidationError):
        errors = item.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return types.JSONRPCError(jsonrpc="2.0", id=None, error=types.ErrorData(code=types.PARSE_ERROR, message="Parse error"))
        for error in errors:
            found = error.get("input")
            if isinstance(found, dict) and isinstance(found.get("id"), str | int) and not isinstance(found.get("id"), bool):
                request_id = found["id"]
                break
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=types.INVALID_REQUEST, message="Invalid Request"))


async def _relay(
    source: ObjectReceiveStream[SessionMessage | Exception],
    target: ObjectSendStream[SessionMessage | Exception],
    answers: ObjectSendStream[SessionMessage],
) -> None:
    async with target:
        async for item in source:
            if isinstance(item, Exception):
                await answers.send(SessionMessage(_unparseable(item)))
            else:
                await target.send(item)


async def _serve_stdio(gateway: Gateway, principal: Principal) -> None:
    server = build_server(gateway, lambda ctx: principal, transport="stdio")
    async with stdio_server() as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        async with anyio.create_task_group() as group:
            group.start_soon(_relay, read_stream, send, write_stream)
            await server.run(receive, write_stream, server.create_initialization_options())
            group.cancel_scope.cancel()


def serve_stdio(gateway: Gateway, principal: Principal) -> None:
    """Serve ``gateway`` over stdin/stdout as ``principal`` until stdin closes."""
    anyio.run(_serve_stdio, gateway, principal)


# ---------------------------------------------------------------------- HTTP


class DirectoryTokens:
    """The package's ``TokenVerifier``: a bearer token proves the principal whose digest the
    directory stores (``principal_for_token``); the principal's id is the token's client id."""

    def __init__(self, gateway: Gateway) -> None:
        lookup = getattr(gateway.directory, "principal_for_token", None)
        if not callable(lookup):
            from railguard.runtime import ExecutionError

            raise ExecutionError("serving over HTTP needs a directory with bearer-token digests (a directory file whose principals list `tokens`)")
        self._lookup: Callable[[str], str | None] = lookup

    async def verify_token(self, token: str) -> AccessToken | None:
        principal = self._lookup(token)
        if principal is None:
            return None
        return AccessToken(token=token_digest(token)[:19], client_id=principal, scopes=[])


def _http_principal(gateway: Gateway) -> PrincipalOf:
    def principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal | None:
        request = ctx.request
        scope = getattr(request, "scope", None)
        user = scope.get("user") if isinstance(scope, dict) else None
        if not isinstance(user, AuthenticatedUser):
            return None
        try:
            return gateway.principal(user.access_token.client_id)
        except Exception:
            return None

    return principal_of


class _AuditRefusedTokens:
    """Audits every request the bearer authentication answers with 401 in the gateway's access
    log (the token's digest prefix, never the token)."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and int(message["status"]) == 401:
                await self._audit(scope)  # committed before the caller learns of the refusal
            await send(message)

        await self.app(scope, receive, watched)

    async def _audit(self, scope: Scope) -> None:
        header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"authorization"), None)
        token = header[7:] if header is not None and header.lower().startswith("bearer ") else None
        reason = "no bearer token" if header is None else ("an unknown bearer token" if token is not None else "an authorization that is not a bearer token")
        where = f"{scope.get('method', '')} {scope.get('path', '')}"
        await anyio.to_thread.run_sync(partial(self.gateway.refuse_unauthenticated, reason=reason, transport="http", token=token, where=where))


def http_app(gateway: Gateway, *, host: str = "127.0.0.1", max_body: int = MAX_BODY) -> ASGIApp:
    """The package's streamable-HTTP ASGI app for ``gateway`` (at ``/mcp``), behind its bearer
    authentication with :class:`DirectoryTokens`, auditing every 401."""
    verifier = DirectoryTokens(gateway)
    server = build_server(gateway, _http_principal(gateway), transport="http")
    app = server.streamable_http_app(host=host, token_verifier=verifier, max_request_body_size=max_body)
    authenticated = AuthenticationMiddleware(AuthContextMiddleware(app), backend=BearerAuthBackend(verifier))
    return _AuditRefusedTokens(authenticated, gateway)


def serve_http(gateway: Gateway, *, host: str = "127.0.0.1", port: int = 8000, max_body: int = MAX_BODY) -> None:
    """Serve ``gateway`` over streamable HTTP at ``http://host:port/mcp`` until interrupted."""
    import uvicorn

    app = http_app(gateway, host=host, max_body=max_body)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    print(f"railguard serve: listening on http://{host}:{port}/mcp", file=sys.stderr, flush=True)
    uvicorn.Server(config).run()
