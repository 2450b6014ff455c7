"""The ``railguard`` command line: ``check``, ``certificate verify``, ``render``, ``schema``,
``dump``.

Exit codes: 0 clean, 1 findings (a check violated or unknown; a certificate that does not
verify), 2 unusable input (bad spec, bad arguments, unreadable file or certificate).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from railguard import __version__
from railguard.spec import LoadError, Spec, SpecError, dumps, json_schema, load
from railguard.verifier import verify
from railguard.verifier.certificate import (
    CertificateError,
    issue,
    load_certificate,
    verify_certificate,
)
from railguard.verifier.engine import Budget
from railguard.verifier.junit import to_junit
from railguard.verifier.report import FileOutcome, exit_code, to_json, to_text
from railguard.verifier.sarif import to_sarif

__all__ = ["COMMAND_MODULES", "main"]

# Command groups that live in modules of their own. Each module has
# ``add_commands(subparsers)``, which adds its commands with ``func`` set; the handlers import
# what they need when they run, so that building the parser stays cheap.
COMMAND_MODULES: tuple[str, ...] = (
    "railguard.interop_cli",
    "railguard.runtime_cli",
)

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
FORMATS = ("text", "json", "sarif", "junit")


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


def _number(kind: Callable[[str], float], what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{text}` is not {what}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"`{text}` is not {what}")
        return value

    return parse


class _Progress:
    """``checking 3/10 order.yaml…`` on one line of a terminal's stderr, erased when done."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled

    def show(self, text: str) -> None:
        if self.enabled:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r\033[K" + text[:width])
            self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _budget(args: argparse.Namespace) -> Budget:
    budget = Budget()
    if args.rlimit is not None:
        budget = replace(budget, rlimit=int(args.rlimit))
    if args.timeout is not None:
        budget = replace(budget, timeout_ms=max(1, round(args.timeout * 1000)))
    if args.depth is not None:
        depth = int(args.depth)
        budget = replace(budget, bmc_depth=depth, max_depth=max(budget.max_depth, depth))
    return budget


def cmd_check(args: argparse.Namespace) -> int:
    files = _expand(args.specs)
    if not files:
        return _fail("no spec files found in " + ", ".join(f"`{p}`" for p in args.specs))
    if args.certificate is not None and len(files) != 1:
        return _fail(f"`--certificate` needs exactly one spec, and {len(files)} were given")
    budget = _budget(args)
    symbolic = not args.no_data
    progress = _Progress(sys.stderr, sys.stderr.isatty() and (len(files) > 1 or symbolic))
    outcomes: list[FileOutcome] = []
    try:
        for number, file in enumerate(files, 1):
            progress.show(f"checking {number}/{len(files)} {Path(file).name}…")
            try:
                spec = load(file)
            except LoadError as exc:
                outcomes.append(FileOutcome(file, problems=exc.problems))
                continue
            outcomes.append(FileOutcome(file, report=verify(spec, budget, symbolic=symbolic)))
            if args.emit_tests is not None:
                from railguard.verifier.emit import emit_tests

                emit_tests(outcomes[-1].report, args.emit_tests, file)  # type: ignore[arg-type]
    finally:
        progress.clear()
    if args.format == "json":
        _write(args.output, json.dumps(to_json(outcomes, __version__), indent=2) + "\n")
    elif args.format == "sarif":
        _write(args.output, json.dumps(to_sarif(outcomes, __version__), indent=2) + "\n")
    elif args.format == "junit":
        _write(args.output, to_junit(outcomes, __version__))
    else:
        colour = args.output in (None, "-") and _colour(sys.stdout)
        _write(args.output, to_text(outcomes, colour=colour))
    report = outcomes[0].report
    if args.certificate is not None and report is not None:
        cert = issue(report, budget, symbolic=symbolic)
        Path(args.certificate).write_text(cert.dumps(), encoding="utf-8")
        verdict = "every check passed" if cert.passed else "the spec did not pass, so it authorises nothing"
        if not symbolic:
            verdict += "; issued with `--no-data`, it never authorises execution"
        print(f"railguard: wrote certificate `{args.certificate}` ({verdict})", file=sys.stderr)
    return exit_code(outcomes)


def cmd_certificate_verify(args: argparse.Namespace) -> int:
    spec = _load_or_report(args.spec)
    if spec is None:
        return 2
    try:
        cert = load_certificate(args.certificate)
    except CertificateError as exc:
        return _fail(str(exc))
    valid, reason = verify_certificate(spec, cert)
    print(("✔ " if valid else "✘ ") + reason)
    return 0 if valid else 1


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


def _load_or_report(path: str) -> Spec | None:
    """Load a spec, or print its problems (one line each) to stderr and return None."""
    try:
        return load(path)
    except LoadError as exc:
        for problem in exc.problems:
            print(f"{problem.location}: error: {problem.message}", file=sys.stderr)
        return None


def cmd_schema(args: argparse.Namespace) -> int:
    _write(args.output, json.dumps(json_schema(), indent=2) + "\n")
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    spec = _load_or_report(args.spec)
    if spec is None:
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
    check.add_argument("--format", choices=FORMATS, default="text", help="report format (default: text)")
    check.add_argument("-o", "--output", metavar="FILE", help="write the report to this file")
    check.add_argument(
        "--timeout",
        type=_number(float, "a positive number of seconds"),
        metavar="SECONDS",
        help="wall-clock limit per solver query (default: none; the rlimit already bounds each query)",
    )
    check.add_argument(
        "--rlimit",
        type=_number(int, "a positive integer"),
        metavar="N",
        help=f"deterministic solver budget per query, in Z3 resource units (default: {Budget().rlimit})",
    )
    check.add_argument(
        "--depth",
        type=_number(int, "a positive integer"),
        metavar="N",
        help=f"steps the bounded search unrolls before the unbounded proof (default: {Budget().bmc_depth})",
    )
    check.add_argument(
        "--no-data",
        action="store_true",
        help="structural checks only: skip the data checks and invariants (Z3)",
    )
    check.add_argument(
        "--certificate",
        metavar="FILE",
        help="write a certificate of the result to FILE (exactly one spec)",
    )
    check.add_argument(
        "--emit-tests",
        metavar="DIR",
        help="write a pytest file and a trace file for every counterexample and witness into DIR",
    )
    check.set_defaults(func=cmd_check)

    certificate = sub.add_parser("certificate", help="work with certificates")
    certificate_sub = certificate.add_subparsers(dest="action", required=True, metavar="ACTION")
    certificate_verify = certificate_sub.add_parser(
        "verify", help="check that a certificate authorises running a spec"
    )
    certificate_verify.add_argument("spec", metavar="SPEC")
    certificate_verify.add_argument("certificate", metavar="FILE")
    certificate_verify.set_defaults(func=cmd_certificate_verify)

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
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
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
