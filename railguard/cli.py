"""The ``railguard`` command line: ``check``, ``certificate verify``, ``render``, ``schema``,
``dump``.

Exit codes: 0 clean, 1 findings (a check violated or unknown; a certificate that does not
verify), 2 unusable input (bad spec, bad arguments, unreadable file or certificate). Every
command runs inside one error boundary (:func:`railguard._cliutil.run_command`): an error is
one sentence on stderr, never a traceback; an internal error says it is a bug, and
``railguard --debug COMMAND`` (or ``RAILGUARD_DEBUG=1``) shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from railguard import __version__
from railguard._cliutil import DEBUG_ENV, fail, load_or_report, positive_number, run_command, write

# Each command imports what it needs when it runs: `railguard --version` and building the
# parser load neither the spec language nor the verifier (Z3, networkx).
if TYPE_CHECKING:
    from railguard.spec.diagram import Trace
    from railguard.verifier.budget import Budget

__all__ = ["COMMAND_MODULES", "main"]

# Command groups that live in modules of their own. Each module has
# ``add_commands(subparsers)``, which adds its commands with ``func`` set; the handlers import
# what they need when they run, so that building the parser stays cheap.
COMMAND_MODULES: tuple[str, ...] = (
    "railguard.evolve_cli",
    "railguard.interop_cli",
    "railguard.runtime_cli",
    "railguard.gate_cli",
    "railguard.trust_cli",
    "railguard.serve_cli",
)

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
FORMATS = ("text", "json", "sarif", "junit")


def _colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty()


# A top-level `railguard:` key in block YAML starts a line (quoted or not); JSON and flow YAML
# documents are objects, read with the JSON parser when they are JSON.
_BLOCK_KEY = re.compile(r"""^(?:railguard|"railguard"|'railguard')[ \t]*:(?:[ \t]|$)""", re.MULTILINE)
_FLOW_KEY = re.compile(r"""[{,]\s*(?:railguard|"railguard"|'railguard')\s*:""")


def _declares_railguard(path: Path) -> bool:
    """Whether a file declares ``railguard:`` at the top level (it is meant as a spec).

    Read as text without the spec loader, so a spec with a syntax error still counts (and is
    reported), while certificates, directories, reports and other YAML or JSON do not. A file
    that cannot be read counts, so that the loader says why."""
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError:
        return True
    if _BLOCK_KEY.search(text):
        return True
    body = text.lstrip()
    if not body.startswith("{"):
        return False
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return _FLOW_KEY.search(body) is not None
    return isinstance(data, dict) and "railguard" in data


def _expand(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """The files to check and the files skipped: every file named explicitly, and in folders the
    ``.yaml``/``.yml``/``.json`` files that declare ``railguard:`` (the others are skipped)."""
    files: list[str] = []
    skipped: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            files.append(raw)
            continue
        for found in sorted(path.rglob("*")):
            if found.suffix.lower() in SPEC_SUFFIXES and found.is_file():
                (files if _declares_railguard(found) else skipped).append(str(found))
    return files, skipped


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
    from dataclasses import replace

    from railguard.verifier.budget import Budget

    budget = Budget()
    if args.rlimit is not None:
        budget = replace(budget, rlimit=int(args.rlimit))
    if args.timeout is not None:
        budget = replace(budget, timeout_ms=max(1, round(args.timeout * 1000)))
    if args.depth is not None:
        depth = int(args.depth)
        budget = replace(budget, bmc_depth=depth, max_depth=max(budget.max_depth, depth))
    if getattr(args, "budget", None) is not None:
        budget = replace(budget, seconds=max(1, -int(-args.budget // 1)))
    return budget


def cmd_check(args: argparse.Namespace) -> int:
    from railguard.spec import LoadError, load
    from railguard.verifier.budget import overall
    from railguard.verifier.certificate import issue
    from railguard.verifier.checks import verify
    from railguard.verifier.report import FileOutcome, exit_code

    files, skipped = _expand(args.specs)
    for name in skipped:
        print(f"railguard: skipped `{name}`: it does not declare `railguard:` at the top level, so it is not a spec", file=sys.stderr)
    if not files:
        return fail("no spec files found in " + ", ".join(f"`{p}`" for p in args.specs))
    if args.certificate is not None and len(files) != 1:
        return fail(f"`--certificate` needs exactly one spec, and {len(files)} were given")
    budget = _budget(args)
    symbolic = not args.no_data
    progress = _Progress(sys.stderr, sys.stderr.isatty() and (len(files) > 1 or symbolic))
    outcomes: list[FileOutcome] = []
    # `--budget` bounds the whole run: every file shares it.
    seconds = args.budget if getattr(args, "budget", None) is not None else budget.seconds
    try:
        with overall(seconds):
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
        from railguard.verifier.report import to_json

        write(args.output, json.dumps(to_json(outcomes, __version__), indent=2) + "\n")
    elif args.format == "sarif":
        from railguard.verifier.sarif import to_sarif

        write(args.output, json.dumps(to_sarif(outcomes, __version__), indent=2) + "\n")
    elif args.format == "junit":
        from railguard.verifier.junit import to_junit

        write(args.output, to_junit(outcomes, __version__))
    else:
        from railguard.verifier.report import to_text

        colour = args.output in (None, "-") and _colour(sys.stdout)
        write(args.output, to_text(outcomes, colour=colour))
    report = outcomes[0].report
    if args.certificate is not None and report is not None:
        cert = issue(report, budget, symbolic=symbolic)
        if args.sign_key is not None:
            from railguard.verifier.certificate import sign
            from railguard.verifier.keys import load_signing_key

            cert = sign(cert, load_signing_key(args.sign_key))
        Path(args.certificate).write_text(cert.dumps(), encoding="utf-8")
        verdict = "every check passed" if cert.passed else "the spec did not pass, so it authorises nothing"
        if not symbolic:
            verdict += "; issued with `--no-data`, it never authorises execution"
        if cert.key_id is None:
            verdict += "; unsigned (no `--sign-key`), it authorises nothing"
        else:
            verdict += f"; signed by `{cert.key_id}`"
        print(f"railguard: wrote certificate `{args.certificate}` ({verdict})", file=sys.stderr)
    return exit_code(outcomes)


def cmd_certificate_verify(args: argparse.Namespace) -> int:
    from railguard.verifier.certificate import load_certificate, verify_certificate
    from railguard.verifier.keys import TrustSet

    spec = load_or_report(args.spec)
    if spec is None:
        return 2
    cert = load_certificate(args.certificate)
    valid, reason = verify_certificate(spec, cert, TrustSet.load(args.trust))
    print(("✔ " if valid else "✘ ") + reason)
    return 0 if valid else 1


def _is_result(data: object) -> bool:
    return isinstance(data, dict) and {"rule", "subject", "outcome"} <= data.keys()


def _drawable(result: dict[str, Any]) -> dict[str, Any] | None:
    """A result's counterexample, else its witness (a plan), else None."""
    for key in ("counterexample", "witness"):
        plan = result.get(key)
        if isinstance(plan, dict):
            return plan
    return None


def _label(result: dict[str, Any]) -> str:
    return f"{result['rule']}:{result['subject']}"


def _matches(result: dict[str, Any], rule: str, subject: str | None) -> bool:
    if rule not in (result["rule"], result.get("name")):
        return False
    return subject is None or subject in (result["subject"], result["subject"].replace("`", ""))


def _some(results: list[dict[str, Any]]) -> str:
    shown = [f"`{_label(r)}`" for r in results[:5]]
    more = f" and {len(results) - 5} more" if len(results) > 5 else ""
    return ", ".join(shown) + more


def plan_from_report(data: object, spec_name: str, choice: str | None = None) -> tuple[dict[str, Any], str] | None:
    """The run to draw from a JSON report of ``railguard check`` or one result of it, and the
    result's ``RULE:SUBJECT``; None when ``data`` is neither (a plan or trace file).

    ``choice`` picks a result: ``RULE:SUBJECT`` (the rule by id or name; the subject as the
    report writes it, backticks optional) or ``RULE`` alone when one result of that rule has
    a run; its counterexample or witness is drawn. Without a choice, the report must hold
    exactly one counterexample for the spec named ``spec_name`` (or be a single result with
    a run). Raises :class:`~railguard.spec.diagram.DiagramError` (one sentence) when nothing,
    or more than one run, fits.
    """
    from railguard.spec.diagram import DiagramError

    if _is_result(data):
        results = [cast(dict[str, Any], data)]
        where = "the result"
    elif isinstance(data, dict) and "railguard_report" in data:
        files = [f for f in data.get("files", []) if isinstance(f, dict) and "results" in f]
        mine = [f for f in files if f.get("spec") == spec_name]
        if not mine:
            named = ", ".join(f"`{f.get('spec')}`" for f in files) or "no spec that loaded"
            raise DiagramError(f"the report has no results for spec `{spec_name}` (it checked {named})")
        results = [r for f in mine for r in f["results"] if _is_result(r)]
        where = f"the report for spec `{spec_name}`"
    else:
        return None
    drawable = [r for r in results if _drawable(r) is not None]
    if choice is not None:
        rule, colon, subject = choice.partition(":")
        chosen = [r for r in results if _matches(r, rule, subject if colon else None)]
        if not chosen:
            hint = f"; results with a run to draw: {_some(drawable)}" if drawable else ""
            raise DiagramError(f"{where} has no result `{choice}`{hint}")
        if not colon and len(chosen) > 1:
            chosen = [r for r in chosen if _drawable(r) is not None] or chosen
            if len(chosen) > 1:
                raise DiagramError(f"{where} has {len(chosen)} results of `{rule}`: give `--trace-result {rule}:SUBJECT`, one of {_some(chosen)}")
        plan = _drawable(chosen[0])
        if plan is None:
            raise DiagramError(f"result `{_label(chosen[0])}` has neither a counterexample nor a witness to draw")
        return plan, _label(chosen[0])
    runs = [r for r in results if isinstance(r.get("counterexample"), dict)]
    if len(runs) == 1:
        return runs[0]["counterexample"], _label(runs[0])
    if len(results) == 1 and drawable:
        return cast(dict[str, Any], _drawable(results[0])), _label(results[0])
    if not runs:
        hint = f": draw a witness with `--trace-result RULE:SUBJECT`, one of {_some(drawable)}" if drawable else ""
        raise DiagramError(f"{where} has no counterexample{hint}")
    raise DiagramError(f"{where} has {len(runs)} counterexamples: choose one with `--trace-result RULE:SUBJECT`, one of {_some(runs)}")


def _trace(path: str, spec_name: str, choice: str | None) -> Trace:
    """The trace ``render --trace`` draws: a plan or trace file, a JSON report or one result."""
    from railguard.spec.diagram import DiagramError, load_trace, trace_from_data

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        data = None
    found = plan_from_report(data, spec_name, choice)
    if found is None:
        if choice is not None:
            raise DiagramError(f"`--trace-result` picks a result of a JSON report, and `{path}` is not one")
        return load_trace(path)
    plan, label = found
    return trace_from_data(plan, f"{path} ({label})")


def cmd_render(args: argparse.Namespace) -> int:
    from railguard.spec import load
    from railguard.spec.diagram import render

    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
        fmt = {"gv": "dot", "mmd": "mermaid", "md": "mermaid"}.get(suffix, suffix) or "svg"
    if fmt == "png" and args.output in (None, "-"):
        return fail("png output is binary: give a file with `-o FILE`")
    if args.trace_result is not None and args.trace is None:
        return fail("`--trace-result` picks a result of the report given with `--trace FILE`")
    spec = load(args.spec)
    trace = _trace(args.trace, spec.name, args.trace_result) if args.trace else None
    data = render(spec, fmt, trace)
    if args.output in (None, "-"):
        sys.stdout.write(data.decode("utf-8"))
    else:
        Path(args.output).write_bytes(data)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from railguard.spec import json_schema

    write(args.output, json.dumps(json_schema(), indent=2) + "\n")
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    from railguard.spec import dumps

    spec = load_or_report(args.spec)
    if spec is None:
        return 2
    if args.format == "hash":
        write(args.output, spec.content_hash + "\n")
    else:
        write(args.output, dumps(spec, args.format))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``railguard`` parser with every command; cheap to build (no verifier, no Z3)."""
    from railguard.verifier.budget import Budget

    parser = argparse.ArgumentParser(
        prog="railguard",
        description="Declare workflows as state machines, prove them, run them under guard.",
    )
    parser.add_argument("--version", action="version", version=f"railguard {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of an internal error (also: {DEBUG_ENV}=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="load, type-check and verify specs (the pre-deploy gate)")
    check.add_argument("specs", nargs="+", metavar="SPEC", help="spec files or folders of specs")
    check.add_argument("--format", choices=FORMATS, default="text", help="report format (default: text)")
    check.add_argument("-o", "--output", metavar="FILE", help="write the report to this file")
    check.add_argument(
        "--timeout",
        type=positive_number(float, "a positive number of seconds"),
        metavar="SECONDS",
        help="wall-clock limit per solver query (default: none; the rlimit already bounds each query)",
    )
    check.add_argument(
        "--rlimit",
        type=positive_number(int, "a positive integer"),
        metavar="N",
        help=f"deterministic solver budget per query, in Z3 resource units (default: {Budget().rlimit})",
    )
    check.add_argument(
        "--depth",
        type=positive_number(int, "a positive integer"),
        metavar="N",
        help=f"steps the bounded search unrolls before the unbounded proof (default: {Budget().bmc_depth})",
    )
    check.add_argument(
        "--budget",
        type=positive_number(float, "a positive number of seconds"),
        metavar="SECONDS",
        help=f"wall-clock budget for the whole run; checks still open when it is spent end `unknown` (default: {Budget().seconds})",
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
    check.add_argument(
        "--sign-key",
        metavar="KEY",
        help="sign the certificate with this private key (from `railguard keys generate`)",
    )
    check.set_defaults(func=cmd_check)

    certificate = sub.add_parser("certificate", help="work with certificates")
    certificate_sub = certificate.add_subparsers(dest="action", required=True, metavar="ACTION")
    certificate_verify = certificate_sub.add_parser(
        "verify", help="check that a certificate authorises running a spec"
    )
    certificate_verify.add_argument("spec", metavar="SPEC")
    certificate_verify.add_argument("certificate", metavar="FILE")
    certificate_verify.add_argument(
        "--trust", metavar="KEY.pub", action="append", default=[],
        help="a public key whose signature is accepted (repeat for several; none accepts nothing)",
    )
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
        "--trace",
        metavar="FILE",
        help="highlight a run: a plan or counterexample file, or a JSON report of `railguard check` (or one result of it)",
    )
    render.add_argument(
        "--trace-result",
        metavar="RULE:SUBJECT",
        help="which result of the report to draw (e.g. `RG404:transition 3 (`retry`): `attempts``); "
        "default: the report's only counterexample",
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


def _asks_for_version(argv: Sequence[str]) -> bool:
    """Whether ``--version`` comes before the command, where the full parser would act on it."""
    for token in argv:
        if token == "--version":
            return True
        if not token.startswith("-") or token == "--":
            return False
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if _asks_for_version(arguments):
        # Answered before the parser is built: the command modules import their layers.
        print(f"railguard {__version__}")
        return 0
    args = build_parser().parse_args(arguments)
    return run_command(args.func, args, debug=args.debug)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
