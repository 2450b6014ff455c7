"""``railguard tools`` and ``railguard admit``: the plan gate from a shell.

``railguard tools SPEC --format openai|anthropic|mcp|json-schema [--for ROLES]`` prints the
spec's tool definitions (one per event, then ``submit_plan``) as JSON.

``railguard admit SPEC PLAN --actor ID --roles R1,R2 [--context JSON] [--instance ID --db FILE]
[--goal STATE] [--execute] [--format text|json]`` admits a plan (a file, or ``-`` for stdin)
for the authenticated actor. Exit codes: 0 admitted (and, with ``--execute``, every step ran),
1 rejected (or stopped at execution time), 2 unusable input (a plan that is not JSON or not a
plan, a bad spec, certificate or argument). Without ``--certificate`` or
``--allow-unverified`` the spec is checked now and admitted plans rest on that fresh result.
``railguard admit --demo`` runs the scripted-model demo.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from railguard.runtime_cli import UsageError, _json_object, _load_spec

__all__ = ["add_commands"]


def _roles(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [r.strip() for r in text.split(",") if r.strip()]


def cmd_tools(args: argparse.Namespace) -> int:
    from railguard.verifier.tools import tools

    spec = _load_spec(args.spec)
    defined = tools(spec, args.format, roles=_roles(args.roles), submit_plan=not args.no_submit_plan)
    sys.stdout.write(json.dumps(defined, indent=2, ensure_ascii=False) + "\n")
    return 0


def _read_plan(source: str) -> Any:
    from railguard.verifier.plans import MAX_PLAN_BYTES, loads_plan

    if source == "-":
        data = sys.stdin.buffer.read(MAX_PLAN_BYTES + 1)
    else:
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"no plan file `{source}`")
        with path.open("rb") as handle:
            data = handle.read(MAX_PLAN_BYTES + 1)
    return loads_plan(data)


def _certificate(args: argparse.Namespace, spec: Any) -> tuple[Any, str | None, Any]:
    """The certificate, the opt-out reason and the trust set. A certificate file is accepted
    only when signed by a key given with ``--trust``; without one, the spec is verified here
    and its certificate signed by a key made for this process alone."""
    if args.allow_unverified:
        return None, args.allow_unverified, None
    from railguard.verifier.certificate import issue, load_certificate, sign
    from railguard.verifier.keys import TrustSet, generate_key

    if args.certificate:
        return load_certificate(args.certificate), None, TrustSet.load(args.trust or ())
    from railguard.verifier import verify

    report = verify(spec)
    if report.failed:
        raise UsageError(f"spec `{spec.name}` does not pass `railguard check`, so no plan can be admitted for it (or opt out with --allow-unverified REASON)")
    key = generate_key()
    return sign(issue(report), key), None, TrustSet.of([key])


def _print(answer: dict[str, Any], fmt: str, text: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(answer, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        sys.stdout.write(text)


def _admission_text(admission: Any) -> str:
    if admission.admitted:
        lines = [f"admitted: {' → '.join(admission.path)} ({len(admission.plan.steps)} step{'s' if len(admission.plan.steps) != 1 else ''}; certificate {admission.certificate or 'none: unverified'})"]
        return "\n".join(lines) + "\n"
    lines = [f"rejected at step {admission.step + 1} ({admission.code}): {admission.message}"]
    if admission.allowed:
        lines.append("  you may fire here: " + ", ".join(f"`{o.event}`" for o in admission.allowed))
    if admission.completion is not None:
        shown = "; ".join(f"{s.event} {json.dumps(s.to_json()['params'], ensure_ascii=False)}" for s in admission.completion) or "nothing: you are there"
        lines.append(f"  shortest completion: {shown}")
    else:
        lines.append("  no admissible completion for you from here")
    for step, param, value in admission.breaking:
        lines.append(f"  breaks for: step {step + 1} `{param}` = {json.dumps(value, ensure_ascii=False, default=str)}")
    return "\n".join(lines) + "\n"


def cmd_admit(args: argparse.Namespace) -> int:
    if args.demo:
        from railguard.gate_demo import run_gate_demo

        return run_gate_demo()
    if args.spec is None or args.plan is None:
        raise UsageError("give a SPEC and a PLAN (or --demo)")
    if not args.actor:
        raise UsageError("give the authenticated --actor the plan runs as")
    spec = _load_spec(args.spec)
    plan = _read_plan(args.plan)
    roles = frozenset(_roles(args.roles) or ())
    context = _json_object(args.context, "--context")
    certificate, opt_out, trusted = _certificate(args, spec)
    from railguard.verifier.admission import Gate, Principal, new_instance

    gate = Gate(spec, certificate, allow_unverified=opt_out, trusted_keys=trusted)
    if args.instance is None and not args.execute:
        admission = gate.admit(plan, Principal(args.actor, roles), new_instance(spec, context), goal=args.goal)
        _print(admission.to_json(), args.format, _admission_text(admission))
        return 0 if admission.admitted else 1
    return _with_runtime(args, spec, plan, roles, context, certificate, opt_out, gate, trusted)


def _with_runtime(args: argparse.Namespace, spec: Any, plan: Any, roles: frozenset[str], context: dict[str, Any], certificate: Any, opt_out: str | None, gate: Any, trusted: Any) -> int:
    from railguard.runtime import SQLiteStore, StaticDirectory
    from railguard.runtime.engine import Engine, handler_names
    from railguard.runtime.gate import PlanGateway
    from railguard.runtime_cli import _effects

    if args.db is None and not args.execute:
        raise UsageError("--instance needs --db FILE: the store that holds the instance")
    path = args.db or ":memory:"
    store: Any
    if path.startswith(("postgresql://", "postgres://")):
        from railguard.runtime.postgres import PostgresStore

        store = PostgresStore(path)
    else:
        path = path.removeprefix("sqlite:///")
        if path != ":memory:" and args.instance and not args.execute and not Path(path).is_file():
            raise UsageError(f"no database `{path}`")
        store = SQLiteStore(path)
    try:
        # the handlers the plan's steps can call and the compensations the instance owes (its
        # error path runs them); admitting alone calls none
        row = store.get(args.instance or plan.instance or "")
        owed = {str(c.get("compensate")) for c in row.compensations} if row is not None else set()
        needed = handler_names(spec, [s.event for s in plan.steps]) | owed if args.execute else set()
        effects = _effects(args.effects, spec, needed)
        engine = Engine(spec, store, StaticDirectory({args.actor: sorted(roles)}), effects=effects, certificate=certificate, trusted_keys=trusted, allow_unverified=opt_out)
        gateway = PlanGateway(engine, gate)
        instance = args.instance or plan.instance or "plan-1"
        if not args.execute:
            admission = gateway.admit(plan, args.actor, instance=instance, goal=args.goal)
            _print(admission.to_json(), args.format, _admission_text(admission))
            return 0 if admission.admitted else 1
        run = gateway.execute(plan, args.actor, instance=instance, context=context or None, goal=args.goal)
        text = _admission_text(run.admission)
        if run.admission.admitted:
            text += f"executed on `{instance}`: " + ("every step ran" if run.completed else f"stopped at step {(run.stopped_at or 0) + 1}: {run.reason}") + f" (state `{run.state}`)\n"
        _print(run.to_json(), args.format, text)
        return 0 if run.completed else 1
    finally:
        store.close()


def add_commands(subparsers: Any) -> None:
    """Add ``tools`` and ``admit`` to the main parser."""
    from railguard.verifier.tools import FORMATS

    tools = subparsers.add_parser("tools", help="tool definitions for LLM APIs: one per event and `submit_plan`")
    tools.add_argument("spec", metavar="SPEC")
    tools.add_argument("--format", choices=FORMATS, default="json-schema", help="the API the tools are for (default: json-schema)")
    tools.add_argument("--for", dest="roles", metavar="ROLES", help="comma-separated roles: only the events they may ever fire")
    tools.add_argument("--no-submit-plan", action="store_true", help="leave out the `submit_plan` tool")
    tools.set_defaults(func=cmd_tools)

    admit = subparsers.add_parser("admit", help="admit a plan for an actor (exit 0 admitted, 1 rejected, 2 unusable)")
    admit.add_argument("spec", metavar="SPEC", nargs="?")
    admit.add_argument("plan", metavar="PLAN", nargs="?", help="the plan's JSON file, or - for stdin")
    admit.add_argument("--actor", metavar="ID", help="the authenticated principal the plan runs as")
    admit.add_argument("--roles", metavar="R1,R2", help="the actor's roles")
    admit.add_argument("--context", metavar="JSON", help="context values of a new instance")
    admit.add_argument("--instance", metavar="ID", help="an existing instance (with --db)")
    admit.add_argument("--db", metavar="URL", help="the store holding the instance: a SQLite file (or sqlite:///FILE) or a postgresql:// URL")
    admit.add_argument("--goal", metavar="STATE", help="a state the plan must end in")
    admit.add_argument("--execute", action="store_true", help="run an admitted plan through the runtime, audited")
    admit.add_argument("--effects", metavar="MODULE:NAME", help="effect handlers for --execute")
    admit.add_argument("--format", choices=("text", "json"), default="text")
    gate = admit.add_mutually_exclusive_group()
    gate.add_argument("--certificate", metavar="FILE", help="the spec's signed certificate (with --trust)")
    admit.add_argument("--trust", action="append", metavar="KEY.pub", help="a public key whose signature on the certificate is accepted (repeat for several)")
    gate.add_argument("--allow-unverified", metavar="REASON", help="admit without a certificate; every invariant is checked per step")
    admit.add_argument("--demo", action="store_true", help="run the scripted-model demo of the plan gate")
    admit.set_defaults(func=cmd_admit)
