"""``railguard diff`` and ``railguard migrate check``: evolving a spec while instances run.

- ``railguard diff OLD NEW [--format text|json|sarif]`` reports what the change does to
  behaviour (:mod:`railguard.verifier.diff`). Exit 0 when nothing in a review category
  changed, 1 otherwise, 2 when a spec is unusable.
- ``railguard migrate check OLD NEW MIGRATION [--format text|json]`` proves a migration file
  safe for every instance OLD can reach (:mod:`railguard.verifier.migration`). Exit 0 when
  proved, 1 when violated or unknown, 2 when a spec or the migration file is unusable.
- ``railguard migrate run --db URL OLD NEW MIGRATION (--instance ID ... | --all)`` proves the
  migration, then moves the resting instances in the database to NEW, each in one transaction
  with an audited ``migrated`` record (:mod:`railguard.runtime.migrate`). Exit 0 when every
  instance asked for is migrated (or finished and stays on OLD), 1 when the migration is not
  proved or an instance was left behind (busy, another spec), 2 for unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from railguard._cliutil import fail, load_or_report, positive_number, write

if TYPE_CHECKING:
    from railguard.runtime.store import Store
    from railguard.spec import Spec
    from railguard.verifier.budget import Budget
    from railguard.verifier.migration import Migration

__all__ = ["add_commands"]


def _specs_and_migration(args: argparse.Namespace) -> tuple[Spec, Spec, Migration] | None:
    """OLD, NEW and the migration file between them, or None once their problems are printed
    (one located line each; the command exits 2)."""
    from railguard.verifier.migration import MigrationError, load_migration

    old, new = load_or_report(args.old), load_or_report(args.new)
    if old is None or new is None:
        return None
    try:
        return old, new, load_migration(args.migration, old, new)
    except MigrationError as exc:
        print(f"{exc.location}: error: {exc.message}", file=sys.stderr)
        return None


def _budget(args: argparse.Namespace, default: Budget) -> Budget:
    budget = default
    if args.rlimit is not None:
        budget = replace(budget, rlimit=args.rlimit)
    if args.depth is not None:
        budget = replace(budget, bmc_depth=args.depth, max_depth=max(budget.max_depth, args.depth))
    return budget


def cmd_diff(args: argparse.Namespace) -> int:
    from railguard import __version__
    from railguard.verifier.budget import Budget
    from railguard.verifier.diff import diff

    old, new = load_or_report(args.old), load_or_report(args.new)
    if old is None or new is None:
        return 2
    report = diff(old, new, _budget(args, Budget(rlimit=50_000_000)))
    if args.format == "json":
        write(args.output, json.dumps(report.to_json(), indent=2) + "\n")
    elif args.format == "sarif":
        write(args.output, json.dumps(report.to_sarif(__version__), indent=2) + "\n")
    else:
        write(args.output, report.to_text())
    return report.exit_code


def cmd_migrate_check(args: argparse.Namespace) -> int:
    from railguard.verifier.budget import Budget
    from railguard.verifier.migration import check_migration

    loaded = _specs_and_migration(args)
    if loaded is None:
        return 2
    old, new, migration = loaded
    result = check_migration(old, new, migration, _budget(args, Budget()))
    if args.format == "json":
        write(args.output, json.dumps(result.to_json(), indent=2) + "\n")
    else:
        write(args.output, result.to_text())
    return 0 if result.passed else 1


_PREFIXES = ("postgresql://", "postgres://")


def cmd_migrate_run(args: argparse.Namespace) -> int:
    from railguard.runtime.migrate import MigrationRefused, migrate_instances
    from railguard.verifier.budget import Budget
    from railguard.verifier.certificate import load_certificate
    from railguard.verifier.migration import check_migration

    loaded = _specs_and_migration(args)
    if loaded is None:
        return 2
    old, new, migration = loaded
    certificate = None
    trusted = None
    if args.certificate is not None:
        from railguard.verifier.keys import TrustSet

        certificate = load_certificate(args.certificate)  # a bad file: the boundary says why (exit 2)
        trusted = TrustSet.load(args.trust)
    elif args.allow_unverified is None:
        return fail(f"NEW spec `{new.name}` needs its own certificate: give --certificate FILE (from `railguard check --certificate`) or --allow-unverified REASON")
    url = args.db
    if not url.startswith(_PREFIXES) and not Path(url).is_file():
        return fail(f"no database `{url}`: give an existing SQLite file or a postgresql:// URL")
    check = check_migration(old, new, migration, _budget(args, Budget()))
    if not check.passed:
        sys.stdout.write(check.to_text().replace("railguard migrate check:", "railguard migrate run:"))
        print(f"railguard: migrate run: refused: `{args.migration}` is not proved safe ({check.outcome}); no instance was touched", file=sys.stderr)
        return 1
    store = _open_store(url, args.schema)
    try:
        run = migrate_instances(
            store, old, new, migration, instances=None if args.all else args.instance, check=check,
            certificate=certificate, trusted_keys=trusted, allow_unverified=args.allow_unverified, by=args.actor or "", dry_run=args.dry_run,
        )
    except MigrationRefused as exc:
        print(f"railguard: migrate run: refused: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.format == "json":
        write(None, json.dumps(run.to_json(), indent=2) + "\n")
    else:
        marks = {"migrated": "✔", "already": "=", "finished": "·"}
        lines = [f"{marks.get(i.outcome, '✘')} {i.outcome}: {i.reason}" for i in run.instances]
        counts = ", ".join(f"{run.count(k)} {k}" for k in ("migrated", "already", "finished", "busy", "other", "missing", "failed") if run.count(k))
        tail = "" if run.complete else "; run it again for those left behind once they rest"
        dry = " (dry run: nothing was changed)" if args.dry_run else ""
        lines.append(f"railguard migrate run: {migration.source}: {counts or 'no instances of OLD'}{tail}{dry}")
        write(None, "\n".join(lines) + "\n")
    return 0 if run.complete else 1


def _open_store(url: str, schema: str) -> Store:
    if url.startswith(_PREFIXES):
        from railguard.runtime.postgres import PostgresStore

        return PostgresStore(url, schema=schema)
    from railguard.runtime import SQLiteStore

    return SQLiteStore(url)


def _solver_options(parser: argparse.ArgumentParser, *, output: bool = True) -> None:
    positive = positive_number(int, "a positive integer")
    parser.add_argument("--rlimit", type=positive, metavar="N", help="deterministic solver budget per query, in Z3 resource units")
    parser.add_argument("--depth", type=positive, metavar="N", help="steps the bounded search unrolls before the unbounded proof")
    if output:
        parser.add_argument("-o", "--output", metavar="FILE", help="write the report to this file")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``diff`` and ``migrate`` to the main parser."""
    diff = sub.add_parser("diff", help="what a change to a spec does to behaviour (a review gate for pull requests)")
    diff.add_argument("old", metavar="OLD", help="the spec as it was")
    diff.add_argument("new", metavar="NEW", help="the spec as it is to be")
    diff.add_argument("--format", choices=("text", "json", "sarif"), default="text", help="report format (default: text)")
    _solver_options(diff)
    diff.set_defaults(func=cmd_diff)

    migrate = sub.add_parser("migrate", help="move running instances to a new version of their spec")
    actions = migrate.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="prove a migration file safe for every instance OLD can reach")
    check.add_argument("old", metavar="OLD", help="the spec the instances run on")
    check.add_argument("new", metavar="NEW", help="the spec they move to")
    check.add_argument("migration", metavar="MIGRATION", help="the migration file (YAML or JSON)")
    check.add_argument("--format", choices=("text", "json"), default="text", help="report format (default: text)")
    _solver_options(check)
    check.set_defaults(func=cmd_migrate_check)

    run = actions.add_parser("run", help="prove a migration, then move the resting instances in a database to NEW")
    run.add_argument("old", metavar="OLD", help="the spec the instances run on")
    run.add_argument("new", metavar="NEW", help="the spec they move to")
    run.add_argument("migration", metavar="MIGRATION", help="the migration file (YAML or JSON)")
    run.add_argument("--db", required=True, metavar="URL", help="a SQLite file, or a postgresql:// URL")
    run.add_argument("--schema", default="railguard", metavar="NAME", help="the PostgreSQL schema (default: railguard)")
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--instance", action="append", metavar="ID", help="an instance to migrate (repeatable)")
    which.add_argument("--all", action="store_true", help="every instance running on OLD")
    gate = run.add_mutually_exclusive_group()
    gate.add_argument("--certificate", metavar="NEW_CERT", help="NEW's certificate (from `railguard check --certificate`)")
    gate.add_argument("--allow-unverified", metavar="REASON", help="migrate to NEW without a certificate; the reason is audited")
    run.add_argument("--trust", metavar="KEY.pub", action="append", default=[], help="a public key whose signature on NEW's certificate is accepted (repeatable)")
    run.add_argument("--as", dest="actor", metavar="NAME", help="who runs the migration (recorded in each `migrated` record)")
    run.add_argument("--dry-run", action="store_true", help="prove and decide every instance, but change nothing")
    run.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    _solver_options(run, output=False)
    run.set_defaults(func=cmd_migrate_run)
