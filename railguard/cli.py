"""The ``railguard`` command line: ``check``, ``render``, ``schema``, ``dump``.

Exit codes: 0 clean, 1 findings, 2 unusable input (bad spec, bad arguments, unreadable file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from railguard import __version__
from railguard.spec import LoadError, SpecError, dumps, json_schema, load
from railguard.verifier import verify
from railguard.verifier.report import FileOutcome, exit_code, to_json, to_text

__all__ = ["main"]

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def _colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty()


def _fail(message: str) -> int:
    print(f"railguard: error: {message}", file=sys.stderr)
    return 2


def _expand(paths: Sequence[str]) -> list[str]:
    files: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                str(p)
                for p in sorted(path.rglob("*"))
                if p.suffix.lower() in SPEC_SUFFIXES and p.is_file()
            )
        else:
            files.append(raw)
    return files


def _write(output: str | None, text: str) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def cmd_check(args: argparse.Namespace) -> int:
    files = _expand(args.specs)
    if not files:
        return _fail("no spec files found in " + ", ".join(f"`{p}`" for p in args.specs))
    outcomes: list[FileOutcome] = []
    for file in files:
        try:
            spec = load(file)
        except LoadError as exc:
            outcomes.append(FileOutcome(file, problems=exc.problems))
            continue
        outcomes.append(FileOutcome(file, report=verify(spec)))
    if args.format == "json":
        _write(args.output, json.dumps(to_json(outcomes, __version__), indent=2) + "\n")
    else:
        colour = args.output in (None, "-") and _colour(sys.stdout)
        _write(args.output, to_text(outcomes, colour=colour))
    return exit_code(outcomes)


def cmd_render(args: argparse.Namespace) -> int:
    from railguard.spec.diagram import load_trace, render

    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
        fmt = {"gv": "dot", "mmd": "mermaid", "md": "mermaid"}.get(suffix, suffix) or "svg"
    if fmt in ("svg", "png") and args.output in (None, "-") and fmt == "png":
        return _fail("png output is binary: give a file with `-o FILE`")
    try:
        spec = load(args.spec)
        trace = load_trace(args.trace) if args.trace else None
        data = render(spec, fmt, trace)
    except LoadError as exc:
        for problem in exc.problems:
            print(f"{problem.location}: error: {problem.message}", file=sys.stderr)
        return 2
    except SpecError as exc:
        return _fail(str(exc))
    if args.output in (None, "-"):
        sys.stdout.write(data.decode("utf-8"))
    else:
        Path(args.output).write_bytes(data)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    _write(args.output, json.dumps(json_schema(), indent=2) + "\n")
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    try:
        spec = load(args.spec)
    except LoadError as exc:
        for problem in exc.problems:
            print(f"{problem.location}: error: {problem.message}", file=sys.stderr)
        return 2
    if args.format == "hash":
        _write(args.output, spec.content_hash + "\n")
    else:
        _write(args.output, dumps(spec, args.format))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="railguard",
        description="Declare workflows as state machines, prove them, run them under guard.",
    )
    parser.add_argument("--version", action="version", version=f"railguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="load, type-check and verify specs (the pre-deploy gate)")
    check.add_argument("specs", nargs="+", metavar="SPEC", help="spec files or folders of specs")
    check.add_argument("--format", choices=("text", "json"), default="text", help="report format")
    check.add_argument("-o", "--output", help="write the report to this file")
    check.set_defaults(func=cmd_check)

    render = sub.add_parser("render", help="draw a spec's state diagram")
    render.add_argument("spec", metavar="SPEC")
    render.add_argument(
        "--format",
        choices=("dot", "svg", "png", "mermaid"),
        help="default: from -o's suffix, else svg",
    )
    render.add_argument("-o", "--output", help="output file (stdout for text formats)")
    render.add_argument(
        "--trace", metavar="FILE", help="highlight the steps of a plan or counterexample"
    )
    render.set_defaults(func=cmd_render)

    schema = sub.add_parser("schema", help="print the JSON Schema of the spec format")
    schema.add_argument("-o", "--output", help="write the schema to this file")
    schema.set_defaults(func=cmd_schema)

    dump = sub.add_parser("dump", help="print a spec in canonical form, or its content hash")
    dump.add_argument("spec", metavar="SPEC")
    dump.add_argument("--format", choices=("yaml", "json", "hash"), default="yaml")
    dump.add_argument("-o", "--output", help="write to this file")
    dump.set_defaults(func=cmd_dump)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except OSError as exc:
        where = exc.filename or "output"
        return _fail(f"cannot write `{where}`: {(exc.strerror or 'failed').lower()}")
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
