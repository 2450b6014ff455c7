"""``railguard import`` and ``railguard export``: other tools' formats in and out.

Formats are looked up in :data:`IMPORTERS` and :data:`EXPORTERS` (``"module:function"``) and
imported only when used, so the command line starts fast and a format's optional dependency
is needed only by those who use it.

- an importer is ``function(path: str, *, roles: Mapping[str, Sequence[str]] | None) ->
  railguard.spec.interop.ImportResult``
- an exporter is ``function(spec: Spec) -> str``
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from railguard._cliutil import fail, load_or_report, write

__all__ = ["EXPORTERS", "IMPORTERS", "add_commands"]

# format -> "module:function"
IMPORTERS: dict[str, str] = {
    "python-statemachine": "railguard.spec.interop.pystatemachine:import_python_statemachine",
    "scxml": "railguard.spec.interop.scxml:import_scxml",
    "asl": "railguard.spec.interop.asl:import_asl",
}
EXPORTERS: dict[str, str] = {
    "promela": "railguard.verifier.promela:to_promela",
    "python-statemachine": "railguard.spec.interop.pystatemachine:to_python_statemachine",
    "scxml": "railguard.spec.interop.export_scxml:export_scxml",
    "asl": "railguard.spec.interop.export_asl:export_asl",
}


def _resolve(reference: str) -> Callable[..., Any]:
    module, _, name = reference.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def cmd_export(args: argparse.Namespace) -> int:
    spec = load_or_report(args.spec)
    if spec is None:
        return 2
    # a spec the format cannot express raises a railguard error: one sentence, exit 2
    write(args.output, _resolve(EXPORTERS[args.format])(spec))
    return 0


def _roles(path: str | None) -> Mapping[str, Sequence[str]] | None:
    if path is None:
        return None
    from railguard.spec.source import read_text

    data = read_text(Path(path).read_text(encoding="utf-8"), path).data
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(p, str) for p in v)
        for k, v in data.items()
    ):
        raise ValueError(f"`{path}` must map each role to a list of permissions")
    return data


def _guess_format(path: str) -> str | None:
    name = Path(path).name.lower()
    if name.endswith((".asl.json", ".asl.yaml", ".asl.yml")):
        return "asl"
    suffix = Path(path).suffix.lower()
    return {".scxml": "scxml", ".asl": "asl", ".py": "python-statemachine"}.get(suffix)


def cmd_import(args: argparse.Namespace) -> int:
    from railguard.spec import SpecError, dumps

    fmt = args.from_format or _guess_format(args.source)
    if fmt is None:
        return fail(f"cannot tell the format of `{args.source}`: give `--from` ({', '.join(sorted(IMPORTERS))})")
    if fmt not in IMPORTERS:
        return fail(f"unknown import format `{fmt}` (formats: {', '.join(sorted(IMPORTERS)) or 'none'})")
    try:
        result = _resolve(IMPORTERS[fmt])(args.source, roles=_roles(args.roles))
    except (SpecError, ValueError) as exc:
        return fail(str(exc))
    write(args.output, dumps(result.spec))
    if args.report_format == "json":
        report = [
            {"kind": f.kind.value, "construct": f.construct, "message": f.message, "location": str(f.location)}
            for f in result.findings
        ]
        print(json.dumps(report, indent=2, ensure_ascii=False), file=sys.stderr)
    else:
        for finding in result.findings:
            print(f"{finding.location}: {finding.kind.value}: {finding.message}", file=sys.stderr)
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``import`` and ``export`` to a parser's subparsers."""
    export = subparsers.add_parser("export", help="write a spec in another tool's format")
    export.add_argument("spec", metavar="SPEC")
    export.add_argument("--format", choices=sorted(EXPORTERS), default="promela")
    export.add_argument("-o", "--output", help="write to this file")
    export.set_defaults(func=cmd_export)

    imp = subparsers.add_parser("import", help="import another tool's workflow as a railguard spec")
    imp.add_argument("source", metavar="FILE", help="the document (or MODULE:CLASS) to import")
    imp.add_argument("--from", dest="from_format", choices=sorted(IMPORTERS) or None, metavar="FORMAT",
                     help="the source format (default: from the file's suffix)")
    imp.add_argument("-o", "--output", help="write the spec (YAML) here (default: standard output)")
    imp.add_argument("--roles", metavar="FILE", help="a YAML/JSON file mapping roles to permissions")
    imp.add_argument("--report-format", choices=("text", "json"), default="text",
                     help="how the import report is printed on standard error")
    imp.set_defaults(func=cmd_import)
