"""The gateway: serve verified workflows to agents as tools, every call admitted, executed and
audited.

:class:`Gateway` is what ``railguard serve`` puts behind the Model Context Protocol, and what a
program that drives its own model loop calls directly: the same tools, the same answers.

- :meth:`Gateway.tools` lists, for an authenticated :class:`Principal`, the tools of the plan
  gate's tool export (:func:`railguard.verifier.tools.tools`) for the events its roles may ever
  fire — so a model is constrained before it speaks — plus ``start_instance``,
  ``get_instance`` and ``submit_plan``, each with an ``inputSchema`` and an ``outputSchema``.
- :meth:`Gateway.call` answers one tool call with a :class:`ToolAnswer`: the structured
  result (matching the tool's output schema) and one sentence. An event tool is a one-step
  plan: admitted (:class:`~railguard.verifier.admission.Gate`), then executed by the runtime
  through :class:`~railguard.runtime.gate.PlanGateway`, so it is audited with its plan note.
  ``submit_plan`` runs a whole plan the same way.

Every refusal — an admission rejection, a step refused at execution time, an unknown tool, a
tool this principal may not use, arguments of the wrong shape, a conflict — is an answer with
``is_error`` and a structured body (``code``, ``message`` and the repair fields), never an
exception. Refusals are audited: on the instance's own hash chain when it exists and the
arguments were well formed (the plan gate's ``plan-rejected`` note, or the engine's refusal
record), and otherwise in the gateway's *access log*. Arguments that are not well formed never
touch the instance: its row and its log stay as they were.

The access log is one hash-chained pseudo-instance in the same store (id
:data:`ACCESS_LOG`, workflow :data:`ACCESS_WORKFLOW`): each record is an ``access`` record
that vouches for the row it leaves, committed with the store's optimistic version check like
every step, so ``railguard audit verify`` checks it with everything else and no record is lost
to a concurrent writer. No engine runs that workflow, so no event can be fired on it.

Who acts is never an argument: the principal is the authenticated caller, given beside the
call. An argument named like an identity (``actor``, ``roles``, ``as``, ...) is refused.
Calls are serialised in-process (one lock per gateway): the engine and the stores keep
per-connection state that is not made for concurrent threads; calls from other processes on
the same store are serialised by the store's versioning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from typing import Any, Final

from railguard.spec import Spec
from railguard.spec.model import Parameter
from railguard.verifier.admission import (
    AdmissionError,
    Admitted,
    Gate,
    Principal,
    Rejected,
    allowed_events,
)
from railguard.verifier.plans import IDENTITY_FIELDS, PlanError, event_signature, parse_plan
from railguard.verifier.tools import SUBMIT_PLAN, fit_tool_name, tool_names
from railguard.verifier.tools import tools as export_tools

from .audit import GENESIS, AuditRecord, chain, recordable
from .auth import NotAuthenticated
from .clock import Clock, SystemClock
from .codec import encode_values
from .directory import Directory, knows
from .engine import Engine, StepResult
from .errors import ConflictError, ExecutionError, InstanceExists
from .gate import Execution, PlanGateway
from .integrity import ROW_FIELD, row_digest
from .store import InstanceRow, Store

logger = logging.getLogger(__name__)

__all__ = [
    "ACCESS_LOG",
    "ACCESS_SPEC_HASH",
    "ACCESS_WORKFLOW",
    "GATEWAY_CODES",
    "GET_INSTANCE",
    "MAX_ARGUMENT_BYTES",
    "START_INSTANCE",
    "SUBMIT_PLAN",
    "AccessLog",
    "Gateway",
    "NotAuthenticated",
    "ToolAnswer",
    "token_digest",
]

#: The access log's instance id, workflow name and spec hash (no spec has this hash).
ACCESS_LOG: Final = "railguard:gateway-access"
ACCESS_WORKFLOW: Final = "railguard.gateway-access"
ACCESS_SPEC_HASH: Final = "sha256:" + hashlib.sha256(b"railguard gateway access log, format 1").hexdigest()
#: Tool arguments whose canonical JSON is longer than this are refused unread (``too-large``).
MAX_ARGUMENT_BYTES: Final = 256_000
START_INSTANCE: Final = "start_instance"
GET_INSTANCE: Final = "get_instance"
MAX_CONFLICT_RETRIES: Final = 50
#: Codes of refusals the gateway makes before admission (admission's own are its reason codes).
GATEWAY_CODES: Final = (
    "unknown-tool",
    "tool-not-allowed",
    "bad-arguments",
    "identity",
    "too-large",
    "unknown-instance",
    "instance-exists",
    "not-a-participant",
    "conflict",
    "unavailable",
    "internal-error",
)


def token_digest(token: str) -> str:
    """``sha256:<hex>`` of a bearer token: what a directory stores instead of the token."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    """The answer to one tool call: ``is_error`` for every refusal, ``structured`` matching the
    tool's output schema, and ``text``, one sentence saying what happened."""

    is_error: bool
    structured: Mapping[str, Any]
    text: str

    @property
    def code(self) -> str | None:
        """The refusal's code (``None`` for an answer that is not an error)."""
        code = self.structured.get("code")
        return str(code) if self.is_error and code is not None else None


# ---------------------------------------------------------------------- the access log


class AccessLog:
    """The gateway's own hash chain in ``store``: refusals that have no instance to be audited
    on (an unknown token, tool or instance; malformed arguments). Created on first use."""

    def __init__(self, store: Store, instance: str = ACCESS_LOG, clock: Clock | None = None) -> None:
        self.store = store
        self.instance = instance
        self.clock = clock or SystemClock()

    def check(self) -> None:
        """Refuse (ExecutionError) an access-log id that another workflow's instance holds."""
        row = self.store.get(self.instance)
        if row is not None and (row.workflow, row.spec_hash) != (ACCESS_WORKFLOW, ACCESS_SPEC_HASH):
            raise ExecutionError(f"instance `{self.instance}` runs workflow `{row.workflow}`, so it cannot be the gateway's access log: choose another access-log id")

    def append(self, body: Mapping[str, Any]) -> AuditRecord:
        """Commit one ``access`` record (``body`` made recordable) at the end of the chain."""
        for _ in range(MAX_CONFLICT_RETRIES):
            row = self.store.get(self.instance)
            now = self.clock.now()
            payload: dict[str, Any] = {
                "workflow": ACCESS_WORKFLOW,
                "spec_hash": ACCESS_SPEC_HASH,
                "at": now.astimezone(UTC).isoformat(),
                "kind": "access",
                # the record's own `instance` is the log's id: the instance a refusal is about is its `target`
                **{("target" if k == "instance" else str(k)): recordable(v) for k, v in body.items()},
            }
            if row is None:
                new = InstanceRow(
                    id=self.instance, workflow=ACCESS_WORKFLOW, spec_hash=ACCESS_SPEC_HASH, state="open", values={},
                    version=1, status="active", audit_head=GENESIS, created_at=now.timestamp(), updated_at=now.timestamp(),
                )
                payload[ROW_FIELD] = row_digest(new)
                record = chain(self.instance, GENESIS, 1, payload)
                try:
                    self.store.create(InstanceRow(**{**_fields(new), "audit_head": record.hash}), [record])
                except InstanceExists:
                    continue
                return record
            if (row.workflow, row.spec_hash) != (ACCESS_WORKFLOW, ACCESS_SPEC_HASH):
                self.check()
            moved = InstanceRow(**{**_fields(row), "version": row.version + 1, "updated_at": now.timestamp()})
            payload[ROW_FIELD] = row_digest(moved)
            record = chain(self.instance, row.audit_head, row.version + 1, payload)
            try:
                self.store.commit(InstanceRow(**{**_fields(moved), "audit_head": record.hash}), row.version, [record])
            except ConflictError:
                continue
            return record
        raise ConflictError(f"the access log `{self.instance}` kept changing; the access record was not written")

    def records(self) -> list[AuditRecord]:
        """The access log's records, oldest first."""
        return self.store.audit(self.instance)


def _fields(row: InstanceRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in InstanceRow.__slots__}


# ---------------------------------------------------------------------- output schemas

_ANY_OBJECT: Final = {"type": "object"}
_NULLABLE_STRING: Final = {"type": ["string", "null"]}
_EVENTS: Final = {
    "type": "array",
    "description": "the events you may fire now (guards aside), with the tool to call and the JSON Schema of its params",
    "items": {
        "type": "object",
        "properties": {"event": {"type": "string"}, "tool": {"type": "string"}, "params": _ANY_OBJECT},
        "required": ["event", "tool", "params"],
    },
}
REFUSAL_SCHEMA: Final = {
    "type": "object",
    "description": "a refusal: nothing was done beyond what `steps` lists; `allowed` and `completion` say what may be done instead",
    "properties": {
        "ok": {"const": False},
        "code": {"type": "string"},
        "message": {"type": "string"},
        "tool": {"type": "string"},
        "instance": _NULLABLE_STRING,
        "state": _NULLABLE_STRING,
        "step": {"type": ["integer", "null"]},
        "allowed": _EVENTS,
        "completion": {"type": ["array", "null"], "items": _ANY_OBJECT},
        "breaking": {"type": "array", "items": _ANY_OBJECT},
        "steps": {"type": "array", "items": _ANY_OBJECT},
        "path": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["ok", "code", "message", "tool", "instance", "state", "step", "allowed", "completion"],
}
_STEP: Final = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "accepted": {"type": "boolean"},
        "state": {"type": "string"},
        "status": {"type": "string"},
        "code": _NULLABLE_STRING,
        "reason": {"type": "string"},
        "effects": {"type": "array", "items": _ANY_OBJECT},
    },
    "required": ["event", "accepted", "state", "status", "code", "reason", "effects"],
}
_INSTANCE_PROPERTIES: Final = {
    "ok": {"const": True},
    "instance": {"type": "string"},
    "workflow": {"type": "string"},
    "state": {"type": "string"},
    "status": {"type": "string"},
    "version": {"type": "integer"},
    "allowed": _EVENTS,
}
RAN_SCHEMA: Final = {
    "type": "object",
    "description": "what ran: each step's record (accepted, new state, effect results) and where the instance is now",
    "properties": {**_INSTANCE_PROPERTIES, "steps": {"type": "array", "items": _STEP}, "path": {"type": "array", "items": {"type": "string"}}, "certificate": _NULLABLE_STRING},
    "required": ["ok", "instance", "workflow", "state", "status", "version", "allowed", "steps", "path", "certificate"],
}
INSTANCE_SCHEMA: Final = {
    "type": "object",
    "description": "the instance: state, status, variables and the events you may fire now",
    "properties": {**_INSTANCE_PROPERTIES, "values": _ANY_OBJECT, "context": _ANY_OBJECT, "owed": {"type": "array", "items": {"type": "string"}}},
    "required": ["ok", "instance", "workflow", "state", "status", "version", "allowed", "values", "context", "owed"],
}


def _output(success: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "object", "anyOf": [dict(success), dict(REFUSAL_SCHEMA)]}


# ---------------------------------------------------------------------- the gateway


@dataclass(frozen=True, slots=True)
class _Route:
    """What a tool name stands for: its workflow and what it does (an event, or a gateway tool)."""

    workflow: str
    event: str | None = None
    tool: str = ""


@dataclass(frozen=True, slots=True)
class _Bad:
    code: str
    message: str
    path: tuple[str, ...] = field(default=())


class _AsPrincipal(PlanGateway):
    """A :class:`PlanGateway` that admits as one given principal (the directory's roles,
    perhaps narrowed): the engine re-checks every step with the directory's roles, a superset."""

    def __init__(self, engine: Engine, gate: Gate, principal: Principal) -> None:
        super().__init__(engine, gate)
        self._principal = principal

    def principal(self, actor: str) -> Principal:
        if actor == self._principal.id:
            return self._principal
        return super().principal(actor)


class Gateway:
    """Serves ``spec`` run by ``engine`` (and the workflows of ``more``, on the same store) as
    tools for authenticated principals.

    ``gate`` admits the plans; without one it is built from ``certificate`` and
    ``trusted_keys`` (or ``allow_unverified``), as :class:`~railguard.verifier.admission.Gate`
    builds it. ``more`` are further workflows as :class:`PlanGateway` objects; with more than one
    workflow every event tool is named ``<workflow>__<tool>`` (fitted to ``[A-Za-z0-9_-]{1,64}`` by :func:`~railguard.verifier.tools.fit_tool_name`) and ``start_instance`` takes a
    ``workflow``. ``access_log`` is the id of the access log's pseudo-instance.
    """

    def __init__(
        self,
        spec: Spec,
        engine: Engine,
        *,
        gate: Gate | None = None,
        certificate: Any = None,
        trusted_keys: Any = None,
        allow_unverified: str | None = None,
        more: Sequence[PlanGateway] = (),
        access_log: str = ACCESS_LOG,
        max_argument_bytes: int = MAX_ARGUMENT_BYTES,
    ) -> None:
        if engine.spec.content_hash != spec.content_hash:
            raise ExecutionError(f"the engine runs spec {engine.spec.content_hash[:19]}, not `{spec.name}` {spec.content_hash[:19]}")
        if gate is None:
            try:
                gate = Gate(spec, certificate, trusted_keys=trusted_keys, allow_unverified=allow_unverified)
            except AdmissionError as exc:
                raise ExecutionError(str(exc)) from None
        first = PlanGateway(engine, gate)
        self.workflows: dict[str, PlanGateway] = {}
        for served in (first, *more):
            name = served.engine.spec.name
            if name in self.workflows:
                raise ExecutionError(f"workflow `{name}` is served twice: serve each workflow once")
            if served.engine.store is not engine.store:
                raise ExecutionError(f"workflow `{name}` runs on another store: every workflow of a gateway shares one store")
            for event in served.engine.spec.events:
                if any(p.name == "instance" for p in event_signature(served.engine.spec, event)):
                    raise ExecutionError(f"event `{event}` of `{name}` has a param named `instance`, which the gateway's event tools use for the instance id")
            self.workflows[name] = served
        self.store = engine.store
        self.directory: Directory = engine.directory
        self.access = AccessLog(engine.store, access_log, engine.clock)
        self.access.check()
        self.max_argument_bytes = max_argument_bytes
        self._lock = threading.Lock()
        self._prefixed = len(self.workflows) > 1

    # ------------------------------------------------------------------ principals

    def principal(self, actor: str, roles: Iterable[str] | None = None) -> Principal:
        """The principal ``actor`` with the roles the directory gives it, narrowed to ``roles``
        when given; :class:`NotAuthenticated` for an actor the directory does not know or a
        role it does not give (``roles`` may only narrow)."""
        if not actor or not knows(self.directory, actor):
            raise NotAuthenticated(f"`{actor}` is not a principal of the directory")
        held = self.directory.roles_of(actor)
        if roles is None:
            return Principal(actor, held)
        wanted = frozenset(roles)
        extra = sorted(wanted - held)
        if extra:
            raise NotAuthenticated(f"the directory does not give `{actor}` the role `{extra[0]}`: roles may only narrow what the directory gives")
        return Principal(actor, wanted)

    def refuse_unauthenticated(self, *, reason: str, transport: str, token: str | None = None, where: str = "") -> AuditRecord:
        """Audit a caller that proved no principal (a missing, unknown or forged token) in the
        access log: never the token, at most the first 12 hex digits of its SHA-256."""
        body: dict[str, Any] = {"event": "unauthenticated", "transport": transport, "reason": reason, "where": where}
        body["token"] = None if token is None else token_digest(token)[:19]
        with self._lock:
            return self.access.append(body)

    # ------------------------------------------------------------------ tools

    def _name(self, workflow: str, tool: str) -> str:
        return fit_tool_name(f"{workflow}__{tool}") if self._prefixed else tool

    def _routes(self, principal: Principal) -> dict[str, _Route]:
        routes: dict[str, _Route] = {}
        for name, served in self.workflows.items():
            for tool, event in tool_names(served.engine.spec, principal.roles).items():
                routes[self._name(name, tool)] = _Route(name, event, tool)
        if routes:
            for tool in (START_INSTANCE, GET_INSTANCE, SUBMIT_PLAN):
                routes[tool] = _Route("", None, tool)
        return routes

    def _all_routes(self) -> dict[str, _Route]:
        routes: dict[str, _Route] = {}
        for name, served in self.workflows.items():
            for tool, event in tool_names(served.engine.spec).items():
                routes[self._name(name, tool)] = _Route(name, event, tool)
        for tool in (START_INSTANCE, GET_INSTANCE, SUBMIT_PLAN):
            routes[tool] = _Route("", None, tool)
        return routes

    def _participates(self, principal: Principal, workflow: str) -> bool:
        return bool(tool_names(self.workflows[workflow].engine.spec, principal.roles))

    def tools(self, principal: Principal) -> list[dict[str, Any]]:
        """The MCP tool definitions ``principal`` may call: an event tool for each event its
        roles may ever fire (the tool export's schema, plus the ``instance`` argument), then
        ``start_instance``, ``get_instance`` and ``submit_plan`` — nothing at all for a principal
        that takes part in no served workflow. Each has an ``outputSchema``."""
        out: list[dict[str, Any]] = []
        mine = [name for name in self.workflows if self._participates(principal, name)]
        if not mine:
            return out
        plans: list[dict[str, Any]] = []
        for name in mine:
            spec = self.workflows[name].engine.spec
            for tool in export_tools(spec, "mcp", roles=principal.roles, submit_plan=True):
                if tool["name"] == SUBMIT_PLAN:
                    plan = dict(tool["inputSchema"])
                    plan["required"] = sorted({*plan.get("required", ()), "instance"})
                    plans.append(plan)
                    continue
                schema = dict(tool["inputSchema"])
                schema["properties"] = {"instance": {"type": "string", "minLength": 1, "description": f"the id of the `{name}` instance to act on"}, **schema["properties"]}
                schema["required"] = ["instance", *schema.get("required", ())]
                out.append({**tool, "name": self._name(name, tool["name"]), "inputSchema": schema, "outputSchema": _output(RAN_SCHEMA)})
        out.append(self._start_tool(mine))
        out.append({
            "name": GET_INSTANCE,
            "description": "Where an instance is: its state, status and variables, and the events you may fire now with the JSON Schema of their params.",
            "inputSchema": {"type": "object", "properties": {"instance": {"type": "string", "minLength": 1}}, "required": ["instance"], "additionalProperties": False},
            "outputSchema": _output(INSTANCE_SCHEMA),
            "annotations": {"title": "get instance", "readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False},
        })
        plan_schema = plans[0] if len(plans) == 1 else {"type": "object", "anyOf": plans}
        out.append({
            "name": SUBMIT_PLAN,
            "description": (
                "Submit a whole plan for an instance: the steps, in order, run as you. It is admitted only if every step is allowed for you "
                "from the state the steps before it reach; otherwise nothing runs and the answer says which step fails, why, and the "
                "shortest completion you may submit instead. An instance that does not exist yet is started first."
            ),
            "inputSchema": plan_schema,
            "outputSchema": _output(RAN_SCHEMA),
            "annotations": {"title": "submit plan", "readOnlyHint": False, "destructiveHint": any(t.irreversible for n in mine for t in self.workflows[n].engine.spec.transitions), "idempotentHint": False, "openWorldHint": True},
        })
        return out

    def _start_tool(self, mine: list[str]) -> dict[str, Any]:
        properties: dict[str, Any] = {"instance": {"type": "string", "minLength": 1, "description": "the id of the new instance"}}
        required = ["instance"]
        if self._prefixed:
            properties["workflow"] = {"type": "string", "enum": mine}
            required.append("workflow")
        context: dict[str, Any] = {}
        for name in mine:
            for variable in self.workflows[name].engine.spec.variables:
                if variable.context:
                    from railguard.verifier.plans import param_schema

                    context[variable.name] = param_schema(variable.type, description=variable.description)
        properties["context"] = {"type": "object", "properties": context, "additionalProperties": False, "description": "the values of the workflow's context variables"}
        return {
            "name": START_INSTANCE,
            "description": "Start a new instance in its initial state, with the values of its context variables; you are recorded as who started it.",
            "inputSchema": {"type": "object", "properties": properties, "required": required, "additionalProperties": False},
            "outputSchema": _output(INSTANCE_SCHEMA),
            "annotations": {"title": "start instance", "readOnlyHint": False, "destructiveHint": False, "idempotentHint": False, "openWorldHint": False},
        }

    # ------------------------------------------------------------------ calls

    def call(self, principal: Principal, name: str, arguments: Mapping[str, Any] | None = None, *, transport: str = "python") -> ToolAnswer:
        """Answer the tool call ``name(arguments)`` by ``principal`` (see the module docstring).
        Never raises for anything the caller sent: every refusal is an answer."""
        with self._lock:
            try:
                return self._call(principal, name, dict(arguments or {}) if isinstance(arguments, Mapping) else arguments, transport)
            except ConflictError as exc:
                return self._refused(principal, _text(name), None, "conflict", f"{exc}; nothing more was done: look at the instance and try again", transport)
            except ExecutionError as exc:  # e.g. a row its log does not vouch for: the engine does not act on it
                return self._refused(principal, _text(name), None, "unavailable", str(exc), transport)
            except Exception as exc:  # a bug in railguard: said in one sentence, never a traceback to the caller
                logger.exception("the gateway failed on a call to %r", name)
                first = (str(exc).splitlines() or [""])[0][:300]
                return ToolAnswer(True, self._refusal_body(_text(name), "internal-error", f"the gateway failed ({type(exc).__name__}: {first}); nothing more was done", None, None, []), "Refused (internal-error): the gateway failed; nothing more was done.")

    def _call(self, principal: Principal, name: Any, arguments: Any, transport: str) -> ToolAnswer:
        tool = name if isinstance(name, str) else ""
        if not isinstance(arguments, dict):
            return self._refused(principal, tool, None, "bad-arguments", f"the arguments of `{_show(tool)}` must be a JSON object", transport)
        size = _size(arguments)
        if size is None or size > self.max_argument_bytes:
            what = "are not JSON data" if size is None else f"are {size:,} bytes of JSON, more than the {self.max_argument_bytes:,} a call may carry"
            return self._refused(principal, tool, None, "too-large" if size is not None else "bad-arguments", f"the arguments of `{_show(tool)}` {what}", transport)
        routes = self._routes(principal)
        route = routes.get(tool)
        if route is None:
            if tool in self._all_routes():
                instance = arguments.get("instance") if isinstance(arguments.get("instance"), str) else None
                return self._not_allowed(principal, tool, instance, transport)
            return self._refused(principal, tool, None, "unknown-tool", f"there is no tool `{_show(tool)}`: call one of the tools listed for you", transport)
        if not all(isinstance(k, str) for k in arguments):
            return self._refused(principal, tool, None, "bad-arguments", f"the arguments of `{_show(tool)}` must be named by strings", transport)
        identity = sorted(k for k in arguments if k.strip().lower() in IDENTITY_FIELDS and not self._declared(route, k))
        if identity:
            return self._refused(principal, tool, None, "identity", f"`{_show(tool)}` was given `{_show(identity[0])}`, but who acts is the authenticated caller: remove the `{_show(identity[0])}` argument", transport)
        if route.tool == START_INSTANCE:
            return self._start(principal, arguments, transport)
        if route.tool == GET_INSTANCE:
            return self._get(principal, arguments, transport)
        if route.tool == SUBMIT_PLAN:
            return self._submit(principal, arguments, transport)
        return self._event(principal, tool, route, arguments, transport)

    def _declared(self, route: _Route, argument: str) -> bool:
        if route.event is None:
            return False
        return any(p.name == argument for p in event_signature(self.workflows[route.workflow].engine.spec, route.event))

    # -- event tools

    def _event(self, principal: Principal, tool: str, route: _Route, arguments: dict[str, Any], transport: str) -> ToolAnswer:
        served = self.workflows[route.workflow]
        spec = served.engine.spec
        assert route.event is not None
        instance = arguments.pop("instance", None)
        bad = _instance_id(instance) or _check_params(event_signature(spec, route.event), route.event, arguments)
        if bad is not None:
            return self._refused(principal, tool, instance if isinstance(instance, str) else None, bad.code, f"`{tool}`: {bad.message}", transport)
        assert isinstance(instance, str)
        row = self.store.get(instance)
        if row is None or row.workflow != route.workflow:
            return self._missing(principal, tool, instance, row, transport)
        plan = parse_plan({"workflow": route.workflow, "instance": instance, "steps": [{"event": route.event, "params": arguments}]})
        return self._run(principal, tool, served, plan, instance, transport)

    # -- submit_plan

    def _submit(self, principal: Principal, arguments: dict[str, Any], transport: str) -> ToolAnswer:
        try:
            plan = parse_plan(arguments)
        except PlanError as exc:
            code = "identity" if exc.code == "identity" else "bad-arguments"
            return self._refused(principal, SUBMIT_PLAN, None, code, f"`{SUBMIT_PLAN}`: {exc.message}", transport)
        if plan.instance is None:
            return self._refused(principal, SUBMIT_PLAN, None, "bad-arguments", f"`{SUBMIT_PLAN}`: the plan must name its `instance`", transport)
        served = self.workflows.get(plan.workflow)
        if served is None or not self._participates(principal, plan.workflow):
            return self._refused(principal, SUBMIT_PLAN, plan.instance, "wrong-workflow", f"`{SUBMIT_PLAN}`: there is no workflow `{_show(plan.workflow)}` for you: plan for one of {', '.join(f'`{n}`' for n in self._mine(principal))}", transport)
        bad = _instance_id(plan.instance)
        if bad is not None:
            return self._refused(principal, SUBMIT_PLAN, None, bad.code, f"`{SUBMIT_PLAN}`: {bad.message}", transport)
        row = self.store.get(plan.instance)
        if row is not None and row.workflow != plan.workflow:
            return self._missing(principal, SUBMIT_PLAN, plan.instance, row, transport)
        return self._run(principal, SUBMIT_PLAN, served, plan, plan.instance, transport)

    def _mine(self, principal: Principal) -> list[str]:
        return [n for n in self.workflows if self._participates(principal, n)]

    def _run(self, principal: Principal, tool: str, served: PlanGateway, plan: Any, instance: str, transport: str) -> ToolAnswer:
        runner = _AsPrincipal(served.engine, served.gate, principal)
        try:
            execution = runner.execute(plan, principal.id, instance=instance)
        except AdmissionError as exc:  # the new instance's context is unusable
            return self._refused(principal, tool, instance, "bad-arguments", f"`{tool}`: {exc}", transport)
        except InstanceExists:  # another gateway started it between admission and start: nothing ran
            return self._refused(principal, tool, instance, "instance-exists", f"`{tool}`: instance `{_show(instance)}` was started by someone else first: call `{GET_INSTANCE}` and plan from where it is", transport)
        admission = execution.admission
        if isinstance(admission, Rejected) and not execution.notes:
            # no instance to note it on (the plan would have started it): the access log has it
            self.access.append({
                "event": "plan-rejected",
                "transport": transport,
                "actor": principal.id,
                "roles": sorted(principal.roles),
                "tool": tool[:200],
                "instance": instance[:200],
                "code": admission.code,
                "step": admission.step,
                "reason": admission.message[:2000],
                "plan": plan.to_json() if len(plan.steps) <= 50 else {"workflow": plan.workflow, "steps": len(plan.steps)},
            })
        return self._executed(principal, tool, served, execution, instance)

    def _executed(self, principal: Principal, tool: str, served: PlanGateway, execution: Execution, instance: str) -> ToolAnswer:
        spec = served.engine.spec
        admission = execution.admission
        row = self.store.get(instance)
        state = row.state if row is not None else None
        steps = [_step_json(result) for result in execution.results]
        body: dict[str, Any]
        if isinstance(admission, Rejected):
            body = {
                "ok": False,
                "code": admission.code,
                "message": admission.message,
                "tool": tool,
                "instance": instance,
                "state": admission.state,
                "step": admission.step,
                "allowed": self._options(spec, [(o.event, o.params) for o in admission.allowed]),
                "completion": None if admission.completion is None else [s.to_json() for s in admission.completion],
                "breaking": [{"step": s, "param": p, "value": v} for s, p, v in admission.breaking],
                "steps": [],
            }
            hint = ""
            if admission.completion:
                hint = "; a plan that is admitted from there: " + ", ".join(f"`{s.event}`" for s in admission.completion)
            return ToolAnswer(True, _jsonable(body), f"Refused ({admission.code}): {admission.message}{hint}.")
        assert isinstance(admission, Admitted)
        allowed = self._now(principal, spec, row)
        if not execution.completed:
            last = execution.results[-1] if execution.results else None
            body = {
                "ok": False,
                "code": (last.code if last is not None and last.code else "stopped"),
                "message": execution.reason,
                "tool": tool,
                "instance": instance,
                "state": state,
                "step": execution.stopped_at,
                "allowed": allowed,
                "completion": None,
                "breaking": [],
                "steps": steps,
                "path": list(admission.path),
            }
            return ToolAnswer(True, _jsonable(body), f"Stopped: {execution.reason}.")
        assert row is not None
        body = {
            "ok": True,
            "instance": instance,
            "workflow": spec.name,
            "state": row.state,
            "status": row.status,
            "version": row.version,
            "allowed": allowed,
            "steps": steps,
            "path": list(admission.path),
            "certificate": admission.certificate,
        }
        done = ", ".join(f"`{s['event']}`" for s in steps) or "nothing"
        return ToolAnswer(False, _jsonable(body), f"Done: {done} on `{instance}`; it is now in state `{row.state}` ({row.status}).")

    # -- start_instance / get_instance

    def _start(self, principal: Principal, arguments: dict[str, Any], transport: str) -> ToolAnswer:
        extra = sorted(set(arguments) - {"instance", "context", "workflow"})
        mine = self._mine(principal)
        workflow = arguments.get("workflow", mine[0] if not self._prefixed else None)
        instance = arguments.get("instance")
        context = arguments.get("context", {})
        bad = (
            _Bad("bad-arguments", f"unknown argument `{_show(extra[0])}` (arguments: instance, context{', workflow' if self._prefixed else ''})") if extra
            else _instance_id(instance)
            or (None if isinstance(context, dict) else _Bad("bad-arguments", "`context` must be an object of context variable values"))
            or (None if isinstance(workflow, str) and workflow in mine else _Bad("bad-arguments", f"`workflow` must be one of {', '.join(f'`{n}`' for n in mine)}"))
        )
        if bad is not None:
            return self._refused(principal, START_INSTANCE, None, bad.code, f"`{START_INSTANCE}`: {bad.message}", transport)
        assert isinstance(instance, str) and isinstance(workflow, str) and isinstance(context, dict)
        served = self.workflows[workflow]
        if self.store.get(instance) is not None:
            return self._refused(principal, START_INSTANCE, instance, "instance-exists", f"`{START_INSTANCE}`: instance `{_show(instance)}` already exists: choose another id, or call `{GET_INSTANCE}`", transport)
        try:
            result = served.engine.start(instance, principal.id, _decimals(context))
        except InstanceExists:
            return self._refused(principal, START_INSTANCE, instance, "instance-exists", f"`{START_INSTANCE}`: instance `{_show(instance)}` already exists", transport)
        except ExecutionError as exc:
            return self._refused(principal, START_INSTANCE, instance, "bad-arguments", f"`{START_INSTANCE}`: {exc}", transport)
        row = self.store.get(instance)
        assert row is not None
        body = self._instance_body(principal, served, row)
        return ToolAnswer(False, body, f"Started `{instance}` ({workflow}) in state `{result.state}`.")

    def _get(self, principal: Principal, arguments: dict[str, Any], transport: str) -> ToolAnswer:
        extra = sorted(set(arguments) - {"instance"})
        instance = arguments.get("instance")
        bad = _Bad("bad-arguments", f"unknown argument `{_show(extra[0])}` (arguments: instance)") if extra else _instance_id(instance)
        if bad is not None:
            return self._refused(principal, GET_INSTANCE, None, bad.code, f"`{GET_INSTANCE}`: {bad.message}", transport)
        assert isinstance(instance, str)
        row = self.store.get(instance)
        if row is None or row.workflow not in self.workflows:
            return self._missing(principal, GET_INSTANCE, instance, row, transport)
        if not self._participates(principal, row.workflow):
            return self._refused(principal, GET_INSTANCE, instance, "not-a-participant", f"`{GET_INSTANCE}`: you take no part in workflow `{row.workflow}`, so its instances are not shown to you", transport)
        served = self.workflows[row.workflow]
        served.engine.get(instance)  # read through the engine: a row its log does not vouch for is refused
        body = self._instance_body(principal, served, row)
        return ToolAnswer(False, body, f"`{instance}` ({row.workflow}) is in state `{row.state}` ({row.status}), version {row.version}.")

    def _instance_body(self, principal: Principal, served: PlanGateway, row: InstanceRow) -> dict[str, Any]:
        snapshot = served.engine.snapshot(row)
        return _jsonable({
            "ok": True,
            "instance": row.id,
            "workflow": row.workflow,
            "state": row.state,
            "status": row.status,
            "version": row.version,
            "allowed": self._now(principal, served.engine.spec, row),
            "values": encode_values(snapshot.values),
            "context": encode_values(snapshot.context),
            "owed": list(snapshot.owed),
        })

    def _now(self, principal: Principal, spec: Spec, row: InstanceRow | None) -> list[dict[str, Any]]:
        if row is None or row.status != "active":
            return []
        return self._options(spec, [(o.event, o.params) for o in allowed_events(spec, row.state, principal.roles)])

    def _options(self, spec: Spec, options: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        names = {event: tool for tool, event in tool_names(spec).items()}
        return [{"event": event, "tool": self._name(spec.name, names.get(event, event)), "params": dict(params)} for event, params in options]

    # -- refusals

    def _missing(self, principal: Principal, tool: str, instance: str, row: InstanceRow | None, transport: str) -> ToolAnswer:
        # an instance of another workflow (or the access log) is not shown: it does not exist here
        return self._refused(principal, tool, instance, "unknown-instance", f"`{tool}`: there is no instance `{_show(instance)}` you can act on here: call `{START_INSTANCE}` first", transport)

    def _not_allowed(self, principal: Principal, tool: str, instance: str | None, transport: str) -> ToolAnswer:
        """A tool that exists but that ``principal`` may not use: refused, and audited on the
        instance's chain when the instance exists (the instance is otherwise unchanged)."""
        message = f"you may not use `{_show(tool)}`: your roles ({', '.join(sorted(principal.roles)) or 'none'}) do not permit it; call one of the tools listed for you"
        row = self.store.get(instance) if instance is not None else None
        if row is not None and row.workflow in self.workflows:
            served = self.workflows[row.workflow]
            try:
                served.engine.get(row.id)  # vouched for before a note vouches for it in turn
                note = served._note(row.id, principal.id, {"note": "gateway-refused", "tool": tool, "code": "tool-not-allowed", "reason": message, "roles": sorted(principal.roles)})
            except ExecutionError:
                note = None
            if note is not None:
                fresh = self.store.get(row.id)
                body = self._refusal_body(tool, "tool-not-allowed", message, row.id, fresh.state if fresh else row.state, self._now(principal, served.engine.spec, fresh))
                return ToolAnswer(True, body, f"Refused (tool-not-allowed): {message}.")
        return self._refused(principal, tool, instance, "tool-not-allowed", message, transport)

    def _refused(self, principal: Principal, tool: str, instance: str | None, code: str, message: str, transport: str, *, audit: bool = True) -> ToolAnswer:
        """A refusal made before anything ran, audited in the access log."""
        if audit:
            self.access.append({
                "event": "refused",
                "transport": transport,
                "actor": principal.id,
                "roles": sorted(principal.roles),
                "tool": tool[:200],
                "instance": None if instance is None else instance[:200],
                "code": code,
                "reason": message[:2000],
            })
        return ToolAnswer(True, self._refusal_body(tool, code, message, instance, None, []), f"Refused ({code}): {message}.")

    @staticmethod
    def _refusal_body(tool: str, code: str, message: str, instance: str | None, state: str | None, allowed: list[dict[str, Any]]) -> dict[str, Any]:
        return _jsonable({
            "ok": False, "code": code, "message": message, "tool": tool, "instance": instance, "state": state,
            "step": None, "allowed": allowed, "completion": None, "breaking": [], "steps": [],
        })


# ---------------------------------------------------------------------- helpers


def _text(name: object) -> str:
    return name[:200] if isinstance(name, str) else ""


def _show(text: object) -> str:
    shown = str(text)
    shown = shown if len(shown) <= 48 else shown[:48] + "…"
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in shown).replace("`", "'")


def _size(arguments: Mapping[str, Any]) -> int | None:
    try:
        return len(json.dumps(arguments, ensure_ascii=False, allow_nan=False, default=str).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError, RecursionError):
        return None


def _instance_id(instance: Any) -> _Bad | None:
    if not isinstance(instance, str) or not instance:
        return _Bad("bad-arguments", "`instance` must be an instance id (a non-empty string)")
    if len(instance) > 200 or not instance.isprintable():
        return _Bad("bad-arguments", "`instance` must be at most 200 printable characters")
    if instance == ACCESS_LOG or instance.startswith("railguard:"):
        return _Bad("bad-arguments", "instance ids beginning `railguard:` are reserved")
    return None


_JSON_TYPES: Final[dict[str, tuple[str, Callable[[Any], bool]]]] = {
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "decimal": ("a decimal written as a string", lambda v: isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))),
    "bool": ("a boolean", lambda v: isinstance(v, bool)),
    "enum": ("a string", lambda v: isinstance(v, str)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "principal": ("a string", lambda v: isinstance(v, str)),
    "set": ("an array", lambda v: isinstance(v, list)),
}


def _check_params(signature: Sequence[Parameter], event: str, given: Mapping[str, Any]) -> _Bad | None:
    """The arguments against the tool's input schema, by JSON type only (domains, guards and
    everything else that depends on the instance are admission's to decide)."""
    declared = {p.name: p for p in signature}
    for name in given:
        if name not in declared:
            names = ", ".join(f"`{p}`" for p in ["instance", *declared])
            return _Bad("bad-arguments", f"unknown argument `{_show(name)}` (arguments: {names})", (name,))
    for param in signature:
        if param.name not in given:
            if param.required:
                return _Bad("bad-arguments", f"param `{param.name}` of `{event}` is missing", (param.name,))
            continue
        value = given[param.name]
        if value is None and not param.required:
            continue
        what, fits = _JSON_TYPES[param.type.kind]
        if not fits(value):
            return _Bad("bad-arguments", f"param `{param.name}` of `{event}` must be {what}, not {_kind(value)}", (param.name,))
        if param.type.kind == "set" and param.type.of is not None:
            item_what, item_fits = _JSON_TYPES[param.type.of.kind]
            if not all(item_fits(item) for item in value):
                return _Bad("bad-arguments", f"each item of param `{param.name}` of `{event}` must be {item_what}", (param.name,))
    return None


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        return f"the string {json.dumps(_show(value))}"
    if isinstance(value, int | float | Decimal):
        return f"the number {value}"
    if value is None:
        return "null"
    return "a list" if isinstance(value, list) else "an object"


def _decimals(values: Mapping[str, Any]) -> dict[str, Any]:
    """Context values as the engine admits them: a float (JSON numbers with a fraction) as the
    exact decimal it was written as."""
    return {k: Decimal(repr(v)) if isinstance(v, float) else v for k, v in values.items()}


def _step_json(result: StepResult) -> dict[str, Any]:
    effects = []
    for record in result.records:
        effect = record.payload.get("effect")
        if isinstance(effect, Mapping) and "ok" in effect:
            shown = {"name": effect.get("name"), "ok": effect.get("ok"), "attempts": effect.get("attempts")}
            shown["result" if effect.get("ok") else "error"] = effect.get("result" if effect.get("ok") else "error")
            effects.append(shown)
    return {
        "event": result.event or "",
        "accepted": result.accepted,
        "state": result.state,
        "status": result.status,
        "code": result.code,
        "reason": result.reason,
        "effects": effects,
    }


def _jsonable(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` as plain JSON data (decimals and sets as the value codec writes them)."""
    out: dict[str, Any] = recordable(dict(body))
    return out
