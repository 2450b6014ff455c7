"""The runtime's command line: ``run``, ``worker``, ``audit``, ``replay`` and ``demo``.

`add_commands` adds them to the ``railguard`` parser; each sets ``func``, which
returns the exit code. Exit codes: 0 done, 1 a refused step, a tampered log or a replay that
does not match, 2 unusable input (bad arguments, spec, certificate, database). The handlers
raise; the one error boundary of :func:`railguard.cli.main` (:func:`railguard._cliutil.run_command`)
turns an error into one sentence on stderr and exit 2, with a traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import railguard
from railguard.runtime import (
    AuditRecord,
    EffectCall,
    Effects,
    Engine,
    ExecutionError,
    RetryPolicy,
    SQLiteStore,
    StaticDirectory,
    StepResult,
    Store,
)
from railguard.runtime.codec import encode_values
from railguard.runtime.engine import handler_names
from railguard.runtime.replay import ReplayReport, replay_instance
from railguard.spec import RailguardError, Spec, load

__all__ = ["DEMO_DB", "UsageError", "add_commands", "certificate_gate"]

DEFAULT_DB = "railguard.db"
DEMO_DB = "railguard-demo.db"
DEMO_EXAMPLES = ("refund", "order", "deploy")


class UsageError(RailguardError):
    """Unusable input to a command, said in one sentence: the error boundary of
    :func:`railguard.cli.main` prints it and exits 2."""


# ---------------------------------------------------------------------- arguments


def _json_object(text: str | None, what: str) -> dict[str, Any]:
    if text is None:
        return {}
    from railguard.spec.source import JSONProblem, strict_json

    try:
        data = strict_json(text, 64)
    except JSONProblem as exc:
        raise UsageError(f"{what} {exc.message}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{what} must be a JSON object, like '{{\"amount\": 120}}'")
    return data


def _add_store(parser: argparse.ArgumentParser, *, positional: bool = False) -> None:
    where = parser.add_mutually_exclusive_group()
    if positional:
        parser.add_argument("db_file", nargs="?", metavar="DB", help=f"SQLite database file (default: {DEFAULT_DB}); or --db FILE")
    where.add_argument("--db", metavar="FILE", help=f"SQLite database file (default: {DEFAULT_DB})")
    where.add_argument("--dsn", metavar="URL", help="PostgreSQL database, e.g. postgresql://user@host/db")


def _add_engine(parser: argparse.ArgumentParser, *, directory_required: bool = False) -> None:
    parser.add_argument(
        "--directory",
        metavar="FILE",
        required=directory_required,
        help="YAML file mapping principal ids to their roles",
    )
    if directory_required:
        parser.add_argument(
            "--authenticator",
            metavar="MODULE:NAME",
            help="who the caller is: an Authenticator (or a class taking the directory) to import; "
            "by default `--as` is trusted for any principal the directory lists",
        )
    parser.add_argument(
        "--effects",
        metavar="MODULE:NAME",
        help="the effect handlers: an Effects object (or a function returning one) to import",
    )
    gate = parser.add_mutually_exclusive_group()
    gate.add_argument("--certificate", metavar="FILE", help="the spec's certificate (from `railguard check --certificate`)")
    gate.add_argument("--allow-unverified", metavar="REASON", help="run without a certificate; the reason is audited")
    parser.add_argument(
        "--trust", metavar="KEY.pub", action="append", default=[],
        help="a public key whose signature on the certificate is accepted (repeat for several)",
    )
    parser.add_argument(
        "--earlier-spec", metavar="SPEC", action="append", default=[],
        help="an earlier version of the spec that migrated instances ran on (their logs replay under it)",
    )


@contextmanager
def _store(args: argparse.Namespace, *, must_exist: bool, readonly: bool = False) -> Iterator[Store]:
    dsn = getattr(args, "dsn", None)
    store: Store
    given = getattr(args, "db_file", None)
    if given is not None:
        if getattr(args, "db", None) not in (None, given):
            raise UsageError(f"give the SQLite file once: `{given}` or --db `{args.db}`, not both")
        args.db = given
    if dsn and getattr(args, "db", None):
        raise UsageError("give a SQLite file or --dsn URL, not both")
    if dsn:
        from railguard.runtime.postgres import PostgresStore

        store = PostgresStore(dsn, readonly=readonly)
    else:
        path = getattr(args, "db", None) or DEFAULT_DB
        if must_exist and not Path(path).is_file():
            raise UsageError(f"no database `{path}`: give an existing SQLite file (or --dsn URL)")
        store = SQLiteStore(path, readonly=readonly)
    try:
        yield store
    finally:
        store.close()


def _load_spec(path: str) -> Spec:
    if not Path(path).is_file():
        raise UsageError(f"no spec file `{path}`")
    return load(path)


def _import(reference: str, what: str) -> Any:
    """The object ``module:attribute`` names, imported from the current folder or the path."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"{what} must be `module:name`, not `{reference}`")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot import {what} `{reference}`: {exc}") from None


def _effects(reference: str | None, spec: Spec, needed: set[str] | None) -> Effects:
    """Import the handlers named ``module:attribute``. ``needed`` are the handlers this command
    can call (``None``: every handler of the spec); the others are bound to placeholders that
    refuse to run, so a command is not asked for handlers it never calls."""
    if reference is None:
        effects = Effects()
    else:
        found = _import(reference, "the effects")
        if callable(found) and not isinstance(found, Effects):
            found = found()
        if not isinstance(found, Effects):
            raise UsageError(f"`{reference}` is not an Effects registry (nor a function returning one)")
        effects = found
    unbound = handler_names(spec) - set(effects.handlers)
    missing = sorted(unbound if needed is None else unbound & needed)
    if missing:
        raise UsageError(f"spec `{spec.name}` uses effect `{missing[0]}`, which has no handler: give --effects MODULE:NAME")
    for name in sorted(unbound):
        effects.register(name, _not_bound)
    return effects


def _not_bound(call: EffectCall) -> Any:  # pragma: no cover - never called: see `_effects`
    raise ExecutionError(f"effect `{call.effect}` is not bound in this command")


def _engine(args: argparse.Namespace, spec: Spec, store: Store, *, needed: set[str] | None = None) -> Engine:
    from railguard.runtime import load_directory
    from railguard.runtime.auth import KnownPrincipals

    directory = load_directory(args.directory) if getattr(args, "directory", None) else StaticDirectory({})
    certificate = None
    trusted: Any = None
    if getattr(args, "certificate", None):
        from railguard.verifier.certificate import load_certificate
        from railguard.verifier.keys import TrustSet

        certificate = load_certificate(args.certificate)
        trusted = TrustSet.load(getattr(args, "trust", None) or ())
    effects = _effects(getattr(args, "effects", None), spec, needed)
    authenticator: Any = KnownPrincipals(directory)
    reference = getattr(args, "authenticator", None)
    if reference:
        authenticator = _import(reference, "the authenticator")
        if isinstance(authenticator, type):  # a class: built with the directory
            authenticator = authenticator(directory)
        if not callable(getattr(authenticator, "authenticate", None)):
            raise UsageError(f"`{reference}` is not an Authenticator (an object with `authenticate(credential)`)")
    return Engine(
        spec, store, directory, effects=effects, certificate=certificate, trusted_keys=trusted,
        earlier_specs=[_load_spec(p) for p in getattr(args, "earlier_spec", None) or ()],
        allow_unverified=getattr(args, "allow_unverified", None), authenticator=authenticator,
    )


# ---------------------------------------------------------------------- run


def _result_json(result: StepResult) -> dict[str, Any]:
    return {
        "instance": result.instance,
        "accepted": result.accepted,
        "event": result.event,
        "code": result.code,
        "reason": result.reason,
        "state": result.state,
        "status": result.status,
        "version": result.version,
        "values": encode_values(result.values),
        "records": [r.seq for r in result.records],
    }


def _result_text(result: StepResult) -> str:
    where = f"state `{result.state}` ({result.status}, version {result.version})"
    if result.accepted and result.event is None:
        return f"`{result.instance}`: started in {where}"
    if result.accepted:
        return f"`{result.instance}`: `{result.event}` done; now in {where}"
    undone = [r.payload["compensation"]["name"] for r in result.records if r.kind == "compensation"]
    tail = f"; compensated: {', '.join(f'`{n}`' for n in undone)}" if undone else ""
    what = f"`{result.event}` refused ({result.code})" if result.code not in ("error-exit", "stuck") else f"{result.code}"
    return f"`{result.instance}`: {what}: {result.reason}{tail}; now in {where}"


def _print_result(result: StepResult, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(_result_json(result), indent=2, ensure_ascii=False))
    else:
        print(_result_text(result))


def cmd_run_start(args: argparse.Namespace) -> int:
    spec = _load_spec(args.spec)
    context = _json_object(args.context, "--context")
    with _store(args, must_exist=False) as store:
        engine = _engine(args, spec, store, needed=set())
        result = engine.start(args.instance, args.actor, context)
    _print_result(result, args.format)
    return 0


def cmd_run_fire(args: argparse.Namespace) -> int:
    spec = _load_spec(args.spec)
    params = _json_object(args.params, "--params")
    with _store(args, must_exist=True) as store:
        # the handlers this event can call, and the compensations the instance owes (its
        # error path runs them)
        row = store.get(args.instance)
        owed = {str(c.get("compensate")) for c in row.compensations} if row is not None else set()
        engine = _engine(args, spec, store, needed=handler_names(spec, [args.event]) | owed)
        result = engine.fire(args.instance, args.event, args.actor, params)
    _print_result(result, args.format)
    return 0 if result.accepted else 1


def _instance_json(store: Store, instance: str) -> dict[str, Any]:
    row = store.get(instance)
    if row is None:
        raise UsageError(f"no instance `{instance}`")
    return {
        "instance": row.id,
        "workflow": row.workflow,
        "spec_hash": row.spec_hash,
        "state": row.state,
        "status": row.status,
        "version": row.version,
        "values": row.values,
        "context": row.context,
        "owed": [c.get("compensate") for c in row.compensations],
        "pending": row.pending,
        "audit_head": row.audit_head,
    }


def cmd_run_show(args: argparse.Namespace) -> int:
    with _store(args, must_exist=True) as store:
        shown = _instance_json(store, args.instance)
        last = store.audit(args.instance)[-1:]
    if args.format == "json":
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return 0
    lines = [
        ("instance", shown["instance"]),
        ("workflow", f"{shown['workflow']} ({shown['spec_hash'][:19]}…)"),
        ("state", f"{shown['state']} ({shown['status']})"),
        ("version", str(shown["version"])),
        ("values", _pairs(shown["values"])),
        ("context", _pairs(shown["context"])),
        ("owed", ", ".join(shown["owed"]) or "-"),
    ]
    if last:
        lines.append(("last", f"record {last[0].seq}: {_describe(last[0])}"))
    for label, text in lines:
        print(f"{label:<9} {text}")
    return 0


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in values.items()) or "-"


def _short(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------- worker


def cmd_worker(args: argparse.Namespace) -> int:
    spec = _load_spec(args.spec)
    if args.interval <= 0:
        raise UsageError("--interval must be a positive number of seconds")
    from railguard.runtime.worker import SignalStop

    stop = SignalStop()  # not a threading.Event: setting one from a signal handler can deadlock

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    with _store(args, must_exist=False) as store:
        engine = _engine(args, spec, store)
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, on_signal)
        except ValueError:  # not the main thread: rely on --once or the caller
            pass
        try:
            from railguard.runtime.worker import work

            print(f"worker: running due work of `{spec.name}` every {args.interval:g} s", flush=True)
            done = work(engine, interval=args.interval, limit=args.limit, once=args.once, stop=stop, report=lambda r: print(_result_text(r), flush=True))
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
    print(f"worker: stopped after {done} piece{'s' if done != 1 else ''} of work", flush=True)
    return 0


# ---------------------------------------------------------------------- audit


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from railguard.runtime.integrity import verify_store
    from railguard.trust_cli import verify_global_log

    specs = [_load_spec(path) for path in args.spec]
    with _store(args, must_exist=True, readonly=True) as store:
        report = verify_store(store, specs)
        if report.tamper is not None:
            print(f"audit: TAMPERED: {report.tamper}")
            return 1
        logged = verify_global_log(args, store)
    if logged is None:
        return 1
    records, instances = report.records, report.instances
    print(f"audit: OK: {records} record{'s' if records != 1 else ''} of {instances} instance{'s' if instances != 1 else ''}; every hash chain verifies and ends at its instance's head; {logged}")
    return 0


def _describe(record: AuditRecord) -> str:
    """One readable line for a record."""
    p = record.payload
    kind = record.kind
    event = p.get("event")
    if kind == "start":
        cert = p.get("certificate") or {}
        gate = "certified" if cert.get("verified") else f"unverified: {cert.get('opt_out')}"
        return f"started in `{(p.get('after') or {}).get('state')}` ({gate})"
    if kind == "step":
        move = f"`{(p.get('before') or {}).get('state')}` → `{(p.get('after') or {}).get('state')}`"
        effect = p.get("effect")
        done = f"; effect `{effect.get('name')}` ok" if isinstance(effect, Mapping) else ""
        return f"`{event}`: {move}{done}"
    if kind == "effect-call":
        return f"`{event}`: calls `{(p.get('effect') or {}).get('name')}`"
    if kind == "effect-failed":
        effect = p.get("effect") or {}
        return f"`{event}`: `{effect.get('name')}` failed after {effect.get('attempts')} attempts: {effect.get('error')}"
    if kind == "refusal":
        decision = p.get("decision") or {}
        return f"`{event}` refused ({decision.get('code')}): {decision.get('reason')}"
    if kind == "compensation":
        info = p.get("compensation") or {}
        return f"compensation `{info.get('name')}` ran (undoes record {info.get('step')})"
    if kind in ("error-exit", "rest"):
        return f"`{(p.get('before') or {}).get('state')}` → `{(p.get('after') or {}).get('state')}`: {p.get('reason')}"
    if kind in ("stuck", "abort"):
        return str(p.get("reason"))
    if kind == "timeout":
        return f"state `{p.get('state')}` timed out after {p.get('after_seconds')} s"
    if kind == "retry":
        return "an operator retries the compensations"
    if kind == "migrated":
        before, after = p.get("before") or {}, p.get("after") or {}
        source = str((p.get("from") or {}).get("spec_hash"))[:19]
        by = f" by {p['by']}" if p.get("by") else ""
        return f"migrated{by} from {source} to {str(p.get('spec_hash'))[:19]}: `{before.get('state')}` → `{after.get('state')}`"
    return kind


def cmd_audit_show(args: argparse.Namespace) -> int:
    with _store(args, must_exist=True) as store:
        records = store.audit(args.instance)
    if args.instance and not records:
        raise UsageError(f"no audit records for instance `{args.instance}`")
    rows = [
        (r.instance, str(r.seq), str(r.payload.get("at", ""))[:19].replace("T", " "), r.kind, str(r.payload.get("actor") or "-"), _describe(r))
        for r in records
    ]
    header = ("INSTANCE", "SEQ", "AT (UTC)", "KIND", "ACTOR", "WHAT")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) if i != 1 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row[:5], widths, strict=True))) + "  " + row[5])
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    with _store(args, must_exist=True) as store:
        records = store.audit(args.instance)
    lines = "".join(json.dumps(r.to_json(), sort_keys=True, ensure_ascii=False) + "\n" for r in records)
    if args.output in (None, "-"):
        sys.stdout.write(lines)
    else:
        Path(args.output).write_text(lines, encoding="utf-8")
        print(f"audit: wrote {len(records)} records to {args.output}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------- replay


def cmd_replay(args: argparse.Namespace) -> int:
    spec = _load_spec(args.spec)
    others = [_load_spec(path) for path in args.also or ()]
    names = {spec.name, *(other.name for other in others)}
    with _store(args, must_exist=True) as store:
        if args.instance:
            ids = [args.instance]
        else:
            ids = []
            for instance in store.instances():
                row = store.get(instance)
                if row is not None and row.workflow in names:
                    ids.append(instance)
        reports = [replay_instance(store, spec, i, specs=others) for i in ids]
    for report in reports:
        print(("✔ " if report.ok else "✘ ") + str(report))
    if not reports:
        print(f"replay: no instances of `{spec.name}`")
    return 0 if all(r.ok for r in reports) else 1


# ---------------------------------------------------------------------- demo


def certificate_gate(report: Any) -> tuple[Any, str | None]:
    """How the demo runs a verified spec: ``(certificate, None)`` when
    :mod:`railguard.verifier.certificate` can issue one, else ``(None, "demo")`` — an opt-out
    that is audited like any other."""
    try:
        module = importlib.import_module("railguard.verifier.certificate")
    except ImportError:
        return None, "demo"
    issue = getattr(module, "issue", None)
    if not callable(issue) or not callable(getattr(module, "verify_certificate", None)):
        return None, "demo"
    from railguard.verifier.budget import Budget

    return module.sign(issue(report, Budget()), _demo_key()), None


@functools.cache
def _demo_key() -> Any:
    """The demo's signing key: made afresh in each process, so the demo is both the issuer
    (CI) and the runtime that trusts it."""
    from railguard.verifier.keys import generate_key

    return generate_key()


@dataclass
class FakeService:
    """An in-process stand-in for an external system: it remembers every idempotency key it
    served and answers a repeated key with the first result, so nothing happens twice."""

    name: str
    fail_for: frozenset[str] = frozenset()
    failure: str = "declined"
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def __call__(self, call: EffectCall) -> dict[str, Any]:
        self.calls.append(call.key)
        if call.key in self.seen:
            return self.seen[call.key]
        if call.instance in self.fail_for:
            raise RuntimeError(self.failure)
        result = {"service": self.name, "key": call.key, "ref": f"{self.name}-{len(self.seen) + 1}"}
        self.seen[call.key] = result
        return result


DEMO_PEOPLE = {
    "alice": ["support"],
    "bob": ["manager"],
    "carol": ["payments"],
    "erin": ["support", "manager"],
    "dana": ["customer"],
    "order-bot": ["system"],
}


def _find_examples() -> Path:
    """The canonical example specs: those shipped in the package (``railguard.examples``),
    else the checkout's ``examples/`` beside the package."""
    folders: list[Path] = []
    try:
        import railguard.examples as shipped

        folders += [Path(p) for p in shipped.__path__]
    except ImportError:  # pragma: no cover - an install without the examples
        pass
    folders.append(Path(railguard.__file__).resolve().parent.parent / "examples")
    for folder in folders:
        if all((folder / f"{name}.yaml").is_file() for name in DEMO_EXAMPLES):
            return folder
    raise UsageError("cannot find the example specs (refund, order, deploy) that ship with railguard: reinstall it")


class _Narrator:
    def __init__(self) -> None:
        self.section = 0

    def title(self, text: str) -> None:
        self.section += 1
        print(f"\n{self.section}. {text}")

    def line(self, text: str) -> None:
        print(f"   {text}")

    def step(self, result: StepResult, what: str) -> None:
        if result.accepted:
            mark = "✔" if result.status == "done" else "→"
            self.line(f"{result.instance:<9} {what:<40} {mark} {result.state}")
            return
        self.line(f"{result.instance:<9} {what:<40} ✘ {result.code}: {result.reason}")
        for record in result.records:
            if record.kind == "compensation":
                info = record.payload["compensation"]
                self.line(f"{'':<9} {'':<40}   compensation `{info['name']}` ran (undoes record {info['step']})")
        if result.status == "done" and result.code == "error-exit":
            self.line(f"{'':<9} {'':<40}   rests in `{result.state}` (failure terminal, fail-closed)")


def cmd_demo(args: argparse.Namespace) -> int:
    from railguard.runtime.integrity import verify_store
    from railguard.verifier import verify

    folder = Path(args.dir) if args.dir else Path.cwd()
    if not folder.is_dir():
        raise UsageError(f"no folder `{folder}`")
    examples = _find_examples()
    db = folder / DEMO_DB
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    say = _Narrator()
    print(f"railguard demo: workflows proved, then run on SQLite in `{db}` (no server)")

    say.title(f"Verify the shared examples ({_relative(examples)})")
    specs: dict[str, Spec] = {}
    gates: dict[str, tuple[Any, str | None]] = {}
    for name in DEMO_EXAMPLES:
        spec = load(examples / f"{name}.yaml")
        report = verify(spec)
        proved = sum(1 for r in report.results if r.outcome == "proved")
        if report.failed:
            first = next(r for r in report.results if r.failed)
            say.line(f"✘ {name:<7} {first.rule.id} {first.rule.name}: {first.message}")
            print("\nthe demo stops: a shared example does not verify")
            return 1
        say.line(f"✔ {name:<7} {proved} of {len(report.results)} checks proved, none failed")
        specs[name] = spec
        gates[name] = certificate_gate(report)
    certified = [n for n in ("refund", "order") if gates[n][0] is not None]
    if certified:
        say.line(f"certificates issued for {' and '.join(certified)}: the engine refuses to run a spec without one")
    else:
        say.line("no certificate support here: running with an audited opt-out (`demo`)")

    services = {
        "payments.refund": FakeService("payments"),
        "inventory.reserve": FakeService("inventory"),
        "inventory.release": FakeService("inventory"),
        "payments.charge": FakeService("payments", fail_for=frozenset({"order-2"}), failure="card declined"),
        "shipping.dispatch": FakeService("shipping"),
    }
    quick = RetryPolicy(attempts=2, backoff=0.01)
    people = StaticDirectory(DEMO_PEOPLE)

    def engine(name: str, store: Store) -> Engine:
        spec = specs[name]
        effects = Effects()
        for transition in spec.transitions:
            for handler in (transition.effect, transition.compensate):
                if handler is not None:
                    effects.register(handler, services[handler], quick)
        certificate, opt_out = gates[name]
        trusted = [_demo_key().public] if certificate is not None else None
        return Engine(spec, store, people, effects=effects, certificate=certificate, trusted_keys=trusted, allow_unverified=opt_out)

    with SQLiteStore(db) as store:
        refunds, orders = engine("refund", store), engine("order", store)
        say.title("A refund, four eyes: alice requests, bob approves, carol pays")
        say.line("principals: " + "; ".join(f"{p} ({', '.join(r)})" for p, r in DEMO_PEOPLE.items()))
        say.step(refunds.start("refund-1", "alice"), "start by alice")
        say.step(refunds.fire("refund-1", "request", "alice", {"amount": 120}), "request amount=120 by alice")
        say.step(refunds.fire("refund-1", "approve", "bob"), "approve by bob")
        say.step(refunds.fire("refund-1", "pay", "carol"), "pay by carol [payments.refund]")

        say.title("An order, reserved, charged and shipped")
        say.step(orders.start("order-1", "dana"), "start by dana")
        say.step(orders.fire("order-1", "place", "dana", {"total": 4200}), "place total=4200 by dana")
        say.step(orders.fire("order-1", "reserve", "order-bot"), "reserve by order-bot [inventory.reserve]")
        say.step(orders.fire("order-1", "charge", "order-bot"), "charge by order-bot [payments.charge]")
        say.step(orders.fire("order-1", "ship", "order-bot"), "ship by order-bot [shipping.dispatch]")

        say.title("An order whose card charge fails: the reservation is undone")
        say.step(orders.start("order-2", "dana"), "start by dana")
        say.step(orders.fire("order-2", "place", "dana", {"total": 990}), "place total=990 by dana")
        say.step(orders.fire("order-2", "reserve", "order-bot"), "reserve by order-bot [inventory.reserve]")
        say.step(orders.fire("order-2", "charge", "order-bot"), "charge by order-bot [payments.charge]")

        say.title("A self-approval: erin holds support and manager, but four eyes means two people")
        say.step(refunds.start("refund-2", "erin"), "start by erin")
        say.step(refunds.fire("refund-2", "request", "erin", {"amount": 300}), "request amount=300 by erin")
        say.step(refunds.fire("refund-2", "approve", "erin"), "approve by erin")
        say.line("the refusal is audited and the instance is unchanged; bob can still approve it")

        say.title("Replay: every instance re-derived from its audit log by the reference semantics")
        replays: list[ReplayReport] = []
        for instance in store.instances():
            row = store.get(instance)
            assert row is not None
            replays.append(replay_instance(store, specs[row.workflow], instance))
        for replayed in replays:
            say.line(("✔ " if replayed.ok else "✘ ") + str(replayed))

        say.title(f"Audit: `railguard audit verify {db.name}`")
        integrity = verify_store(store)
    if integrity.tamper is not None:
        say.line(f"✘ TAMPERED: {integrity.tamper}")
        return 1
    say.line(f"✔ OK: {integrity.records} records of {integrity.instances} instances; every hash chain verifies")
    from railguard.gate_demo import run_gate_demo

    say.title("The plan gate: a scripted model proposes, railguard disposes")
    gate = run_gate_demo(sys.stdout, db=str(db))
    print(f"\nlook closer: railguard audit show {_relative(db)}   ·   railguard run show --db {_relative(db)} --instance order-2")
    return 0 if gate == 0 and all(r.ok for r in replays) else 1


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------- parser


def add_commands(subparsers: Any) -> None:
    """Add ``run``, ``worker``, ``audit``, ``replay`` and ``demo`` to a parser's subparsers
    (the object ``ArgumentParser.add_subparsers`` returns)."""
    run = subparsers.add_parser("run", help="start an instance, fire an event, show an instance")
    run_sub = run.add_subparsers(dest="run_command", required=True, metavar="ACTION")

    start = run_sub.add_parser("start", help="start an instance of a spec")
    start.add_argument("spec", metavar="SPEC")
    start.add_argument("--instance", required=True, metavar="ID")
    start.add_argument("--as", dest="actor", required=True, metavar="PRINCIPAL", help="the caller, trusted as authenticated (see --authenticator)")
    start.add_argument("--context", metavar="JSON", help="the context variables, as a JSON object")
    _add_store(start)
    _add_engine(start, directory_required=True)
    start.add_argument("--format", choices=("text", "json"), default="text")
    start.set_defaults(func=cmd_run_start)

    fire = run_sub.add_parser("fire", help="fire an event on an instance (exit 1 if refused)")
    fire.add_argument("spec", metavar="SPEC")
    fire.add_argument("event", metavar="EVENT")
    fire.add_argument("--instance", required=True, metavar="ID")
    fire.add_argument("--as", dest="actor", required=True, metavar="PRINCIPAL", help="the caller, trusted as authenticated (see --authenticator)")
    fire.add_argument("--params", metavar="JSON", help="the event's params, as a JSON object")
    _add_store(fire)
    _add_engine(fire, directory_required=True)
    fire.add_argument("--format", choices=("text", "json"), default="text")
    fire.set_defaults(func=cmd_run_fire)

    show = run_sub.add_parser("show", help="show an instance's state, variables and status")
    show.add_argument("--instance", required=True, metavar="ID")
    _add_store(show)
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(func=cmd_run_show)

    worker = subparsers.add_parser("worker", help="run due work: timeouts, interrupted effects and compensations")
    worker.add_argument("spec", metavar="SPEC")
    _add_store(worker)
    _add_engine(worker)
    worker.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between polls when idle (default 1)")
    worker.add_argument("--limit", type=int, default=10, metavar="N", help="pieces of work claimed per poll")
    worker.add_argument("--once", action="store_true", help="do what is due now, then exit")
    worker.set_defaults(func=cmd_worker)

    audit = subparsers.add_parser("audit", help="verify, show or export the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_sub.add_parser("verify", help="check every hash chain (exit 1 names the first tampered record)")
    _add_store(verify, positional=True)
    verify.add_argument("--spec", metavar="SPEC", action="append", default=[], help="also replay each instance of this spec (repeat for several)")
    verify.set_defaults(func=cmd_audit_verify)
    from railguard.trust_cli import add_audit_commands

    add_audit_commands(audit_sub, verify, _add_store)
    show_log = audit_sub.add_parser("show", help="the audit log as a readable table")
    _add_store(show_log, positional=True)
    show_log.add_argument("--instance", metavar="ID", help="only this instance")
    show_log.set_defaults(func=cmd_audit_show)
    export = audit_sub.add_parser("export", help="the audit log as JSON Lines")
    _add_store(export, positional=True)
    export.add_argument("--instance", metavar="ID", help="only this instance")
    export.add_argument("-o", "--output", metavar="FILE", help="write to this file (default: stdout)")
    export.set_defaults(func=cmd_audit_export)

    replay = subparsers.add_parser("replay", help="re-derive instances from their audit logs and compare (exit 1 on a mismatch)")
    replay.add_argument("spec", metavar="SPEC")
    replay.add_argument("--instance", metavar="ID", help="one instance (default: every instance of the spec)")
    replay.add_argument("--also", action="append", metavar="SPEC", help="another version the logs may run on (before a `migrated` record); repeatable")
    _add_store(replay)
    replay.set_defaults(func=cmd_replay)

    demo = subparsers.add_parser("demo", help=f"verify the examples, run them on SQLite ({DEMO_DB}) and verify the audit log")
    demo.add_argument("--dir", metavar="DIR", help="where to put the demo database (default: the current folder)")
    demo.set_defaults(func=cmd_demo)
