"""``railguard diff`` and ``railguard migrate check``: evolving a spec while instances run.

- ``railguard diff OLD NEW [--format text|json|sarif]`` reports what the change does to
  behaviour (:mod:`railguard.verifier.diff`). Exit 0 when nothing in a review category
  changed, 1 otherwise, 2 when a spec is unusable.
- ``railguard migrate check OLD NEW MIGRATION [--format text|json]`` proves a migration file
  safe for every instance OLD can reach (:mod:`railguard.verifier.migration`). Exit 0 when
  proved, 1 when violated or unknown, 2 when a spec or the migration file is unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from railguard.spec import Spec
    from railguard.verifier.engine import Budget

__all__ = ["add_commands"]


def _fail(message: str) -> int:
    print(f"railguard: error: {message}", file=sys.stderr)
    return 2


def _write(output: str | None, text: str) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def _load(path: str) -> Spec | None:
    from railguard.spec import LoadError, load

    try:
        return load(path)
    except LoadError as exc:
        for problem in exc.problems:
            print(f"{problem.location}: error: {problem.message}", file=sys.stderr)
        return None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a positive integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"`{text}` is not a positive integer")
    return value


def _budget(args: argparse.Namespace, default: Budget) -> Budget:
    budget = default
    if args.rlimit is not None:
        budget = replace(budget, rlimit=args.rlimit)
    if args.depth is not None:
        budget = replace(budget, bmc_depth=args.depth, max_depth=max(budget.max_depth, args.depth))
    return budget


def cmd_diff(args: argparse.Namespace) -> int:
    from railguard import __version__
    from railguard.verifier.diff import diff
    from railguard.verifier.engine import Budget

    old, new = _load(args.old), _load(args.new)
    if old is None or new is None:
        return 2
    report = diff(old, new, _budget(args, Budget(rlimit=50_000_000)))
    if args.format == "json":
        _write(args.output, json.dumps(report.to_json(), indent=2) + "\n")
    elif args.format == "sarif":
        _write(args.output, json.dumps(report.to_sarif(__version__), indent=2) + "\n")
    else:
        _write(args.output, report.to_text())
    return report.exit_code


def cmd_migrate_check(args: argparse.Namespace) -> int:
    from railguard.verifier.engine import Budget
    from railguard.verifier.migration import MigrationError, check_migration, load_migration

    old, new = _load(args.old), _load(args.new)
    if old is None or new is None:
        return 2
    try:
        migration = load_migration(args.migration, old, new)
    except MigrationError as exc:
        print(f"{exc.location}: error: {exc.message}", file=sys.stderr)
        return 2
    result = check_migration(old, new, migration, _budget(args, Budget()))
    if args.format == "json":
        _write(args.output, json.dumps(result.to_json(), indent=2) + "\n")
    else:
        _write(args.output, result.to_text())
    return 0 if result.passed else 1


def _solver_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rlimit", type=_positive, metavar="N", help="deterministic solver budget per query, in Z3 resource units")
    parser.add_argument("--depth", type=_positive, metavar="N", help="steps the bounded search unrolls before the unbounded proof")
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
