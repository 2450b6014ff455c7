"""`railguard import` and `railguard export` for SCXML and ASL, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from railguard.cli import main
from railguard.spec import load

from .conftest import EXAMPLES
from .test_interop_asl import SAGA


def test_import_writes_a_spec_that_loads_and_reports_findings_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "trip.asl.json"
    source.write_text(json.dumps(SAGA), encoding="utf-8")
    out = tmp_path / "trip.yaml"
    assert main(["import", str(source), "--from", "asl", "-o", str(out), "--report-format", "json"]) == 0
    report = json.loads(capsys.readouterr().err)
    assert {f["kind"] for f in report} == {"mapped"}
    assert any(f["construct"] == "saga" for f in report)
    spec = load(out)
    assert {t.compensate for t in spec.transitions if t.effect} == {"CancelHotel", "CancelFlight", "CancelCar"}


def test_import_guesses_scxml_from_the_suffix_and_uses_a_roles_file(tmp_path: Path) -> None:
    source = tmp_path / "door.scxml"
    source.write_text('<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"><state id="shut">'
                      '<transition event="open" target="ajar"/></state><final id="ajar"/></scxml>', encoding="utf-8")
    roles = tmp_path / "roles.yaml"
    roles.write_text("porter: [start, open]\n", encoding="utf-8")
    out = tmp_path / "door.yaml"
    assert main(["import", str(source), "--roles", str(roles), "-o", str(out)]) == 0
    assert [r.name for r in load(out).roles] == ["porter"]


def test_import_refuses_a_hostile_document_with_exit_two_and_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "bomb.scxml"
    source.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><scxml/>', encoding="utf-8")
    assert main(["import", str(source)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "DTD" in err


@pytest.mark.parametrize("fmt", ["scxml", "asl"])
def test_export_then_import_gives_back_the_example(tmp_path: Path, fmt: str) -> None:
    exported = tmp_path / f"order.{fmt}"
    assert main(["export", str(EXAMPLES / "order.yaml"), "--format", fmt, "-o", str(exported)]) == 0
    back = tmp_path / "order.yaml"
    assert main(["import", str(exported), "--from", fmt, "-o", str(back)]) == 0
    assert load(back) == load(EXAMPLES / "order.yaml")


def test_the_readme_interop_example_runs() -> None:
    from .conftest import ROOT

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Interop: SCXML and Amazon States Language", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
