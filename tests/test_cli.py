"""The command line: exit codes, text and JSON reports, schema, render and dump."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from railguard import __version__
from railguard.cli import main
from railguard.verifier.report import JSON_REPORT_VERSION

from .conftest import EXAMPLES, ROOT

MALFORMED = ROOT / "tests" / "malformed"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "railguard", *args],
        capture_output=True,
        text=True,
        cwd=ROOT / "tests",
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )


def test_check_on_the_examples_exits_zero_and_reports_each_file() -> None:
    result = run("check", str(EXAMPLES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sum(line.startswith("✔") for line in result.stdout.splitlines()) == 3


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"railguard {__version__}"
    assert run("--version").stdout.strip() == f"railguard {__version__}"


def _modules_after(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``statement``."""
    program = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    return set(json.loads(done.stderr.splitlines()[-1]))


HEAVY = {"z3", "networkx", "railguard.verifier.checks", "railguard.verifier.properties"}


def test_the_version_flag_loads_neither_the_language_nor_the_verifier() -> None:
    loaded = _modules_after("from railguard.cli import main\nassert main(['--version']) == 0")
    assert loaded & {*HEAVY, "railguard.spec", "yaml"} == set()
    assert "railguard.cli" in loaded


def test_building_the_parser_loads_no_solver_and_no_graph_library() -> None:
    loaded = _modules_after("from railguard.cli import build_parser\nbuild_parser().parse_args(['check', 'x'])")
    assert loaded & HEAVY == set()
    assert "railguard.runtime_cli" in loaded


def test_version_after_the_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["schema", "--version"])
    assert exited.value.code == 2


def test_check_json_report_is_versioned_and_lists_results(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", str(EXAMPLES / "refund.yaml"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["railguard_report"] == JSON_REPORT_VERSION
    assert report["exit_code"] == 0
    (entry,) = report["files"]
    assert entry["status"] == "clean"
    assert entry["content_hash"].startswith("sha256:")
    assert {r["outcome"] for r in entry["results"]} == {"proved"}


def test_check_exits_one_on_findings_and_names_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        (EXAMPLES / "refund.yaml")
        .read_text()
        .replace(
            "  rejected:  {terminal: failure}", "  rejected:  {terminal: failure}\n  limbo: {}"
        )
    )
    spec = tmp_path / "refund.yaml"
    spec.write_text(text)
    assert main(["check", str(spec), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = [r for r in report["files"][0]["results"] if r["outcome"] == "violated"]
    assert {(r["name"], r["subject"]) for r in failed} == {("unreachable-state", "limbo")}
    assert failed[0]["location"]["line"] == text.splitlines().index("  limbo: {}") + 1


def test_check_exits_two_on_an_unusable_spec_with_a_located_sentence(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        (EXAMPLES / "refund.yaml")
        .read_text()
        .replace("actor != requested_by", "actor != aproved_byy")
    )
    result = run("check", str(spec))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{spec}:41:" in result.stdout
    assert "unknown variable `aproved_byy`" in result.stdout


def test_check_json_report_carries_load_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "railguard: 1\nname: x\nstates: {a: {initial: true}}\ntransitions: [{event: go, from: a, to: b, permission: public}]\n"
    )
    assert main(["check", str(spec), "--format", "json"]) == 2
    entry = json.loads(capsys.readouterr().out)["files"][0]
    assert entry["status"] == "error"
    assert entry["problems"][0]["location"]["line"] == 4
    assert "unknown state `b`" in entry["problems"][0]["message"]


def test_a_missing_file_is_unusable_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read the file" in capsys.readouterr().out


def test_an_empty_folder_is_unusable_input(tmp_path: Path) -> None:
    assert main(["check", str(tmp_path)]) == 2


@pytest.mark.skipif(not MALFORMED.is_dir(), reason="the malformed corpus is not present")
def test_every_malformed_spec_exits_two_without_a_traceback() -> None:
    files = sorted(p for p in MALFORMED.iterdir() if p.is_file())
    assert len(files) >= 30
    # One real process for the whole corpus: a traceback anywhere would show on stderr.
    result = run("check", *map(str, files), "--format", "json")
    assert result.returncode == 2
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert [entry["status"] for entry in report["files"]] == ["error"] * len(files)
    for entry in report["files"]:
        problems = entry["problems"]
        assert problems, entry["file"]
        assert all("\n" not in p["message"] and p["location"]["line"] for p in problems), entry[
            "file"
        ]


def test_schema_command_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from railguard.spec import json_schema

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_dump_prints_canonical_yaml_that_loads_to_the_same_spec(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from railguard.spec import load, loads

    assert main(["dump", str(EXAMPLES / "deploy.yaml")]) == 0
    assert loads(capsys.readouterr().out) == load(EXAMPLES / "deploy.yaml")
    assert main(["dump", str(EXAMPLES / "deploy.yaml"), "--format", "hash"]) == 0
    assert capsys.readouterr().out.strip() == load(EXAMPLES / "deploy.yaml").content_hash


@pytest.mark.parametrize("fmt", ["svg", "dot", "mermaid", "png"])
def test_render_writes_each_format(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"refund.{fmt}"
    assert main(["render", str(EXAMPLES / "refund.yaml"), "--format", fmt, "-o", str(out)]) == 0
    data = out.read_bytes()
    expected = {
        "svg": b"<svg",
        "dot": b"digraph",
        "mermaid": b"stateDiagram-v2",
        "png": b"\x89PNG",
    }[fmt]
    assert expected in data[:2000]


def test_render_highlights_a_trace(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "workflow": "refund",
                "steps": [{"event": "request", "params": {"amount": 10}}, {"event": "approve"}],
            }
        )
    )
    out = tmp_path / "trace.dot"
    assert (
        main(["render", str(EXAMPLES / "refund.yaml"), "--trace", str(plan), "-o", str(out)]) == 0
    )
    assert "penwidth" in out.read_text()


def test_render_refuses_an_impossible_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"event": "pay"}]}))
    assert (
        main(
            [
                "render",
                str(EXAMPLES / "refund.yaml"),
                "--trace",
                str(plan),
                "-o",
                str(tmp_path / "x.svg"),
            ]
        )
        == 2
    )
    assert "`pay`" in capsys.readouterr().err


def test_check_writes_sarif_and_junit_reports_to_a_file(tmp_path: Path) -> None:
    sarif = tmp_path / "railguard.sarif"
    assert main(["check", str(EXAMPLES), "--format", "sarif", "-o", str(sarif)]) == 0
    log = json.loads(sarif.read_text())
    assert log["version"] == "2.1.0"
    assert log["runs"][0]["results"] == []
    assert len(log["runs"][0]["artifacts"]) == 3
    junit = tmp_path / "railguard.xml"
    assert main(["check", str(EXAMPLES), "--format", "junit", "-o", str(junit)]) == 0
    root = ElementTree.fromstring(junit.read_text())
    assert len(root.findall("testsuite")) == 3
    assert root.get("failures") == "0"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_and_is_erased(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["check", str(EXAMPLES), "--no-data"]) == 0
    shown = terminal.getvalue()
    assert "checking 1/3 deploy.yaml…" in shown
    assert "checking 3/3 refund.yaml…" in shown
    assert shown.endswith("\r\033[K")
    assert "checking" not in capsys.readouterr().out


def test_progress_never_shows_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EXAMPLES), "--no-data"]) == 0
    assert capsys.readouterr().err == ""


def test_budget_flags_reach_the_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    from railguard.spec import Spec
    from railguard.verifier import Report, checks
    from railguard.verifier.budget import Budget

    calls: list[tuple[Budget | None, bool]] = []

    def fake_verify(spec: Spec, budget: Budget | None = None, *, symbolic: bool = True) -> Report:
        calls.append((budget, symbolic))
        return Report(spec)

    monkeypatch.setattr(checks, "verify", fake_verify)
    spec = str(EXAMPLES / "refund.yaml")
    assert main(["check", spec, "--timeout", "2.5", "--rlimit", "1000", "--depth", "12"]) == 0
    assert main(["check", spec, "--no-data"]) == 0
    (budget, symbolic), (default, structural) = calls
    assert budget == Budget(rlimit=1000, timeout_ms=2500, bmc_depth=12, max_depth=Budget().max_depth)
    assert symbolic is True
    assert default == Budget()
    assert structural is False


@pytest.mark.parametrize(
    "flags",
    [["--rlimit", "0"], ["--rlimit", "many"], ["--timeout", "-1"], ["--depth", "1.5"], ["--format", "pdf"]],
)
def test_bad_flag_values_are_unusable_input(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", str(EXAMPLES / "refund.yaml"), *flags])
    assert exited.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_check_with_rlimit_one_exits_one_and_reports_unknown_in_a_real_process() -> None:
    result = run("check", str(EXAMPLES / "refund.yaml"), "--rlimit", "1")
    assert result.returncode == 1
    assert " unknown RG" in result.stdout
    assert result.stderr == ""


# --------------------------------------------------------------------------- the error boundary


def _break_schema(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    import railguard.spec

    def broken() -> object:
        raise error

    monkeypatch.setattr(railguard.spec, "json_schema", broken)


def test_a_railguard_error_from_any_command_is_one_sentence_and_exit_two(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from railguard.verifier import VerifierError

    _break_schema(monkeypatch, VerifierError("the thing `x` broke\nin two lines"))
    assert main(["schema"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "railguard: error: the thing `x` broke in two lines\n"
    assert captured.out == ""


def test_an_internal_error_says_it_is_a_bug_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RAILGUARD_DEBUG", raising=False)
    _break_schema(monkeypatch, ZeroDivisionError("division by zero"))
    assert main(["schema"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("railguard: error: internal error (ZeroDivisionError: division by zero)")
    assert "--debug" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_lets_an_internal_error_through_with_its_traceback(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_schema(monkeypatch, ZeroDivisionError("division by zero"))
    argv = ["schema"]
    if how == "flag":
        monkeypatch.delenv("RAILGUARD_DEBUG", raising=False)
        argv = ["--debug", *argv]
    else:
        monkeypatch.setenv("RAILGUARD_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(argv)


def test_an_unwritable_output_is_unusable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no" / "such" / "folder" / "schema.json"
    assert main(["schema", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"railguard: error: cannot use `{target}`: no such file")
    assert len(err.splitlines()) == 1


def test_a_missing_certificate_or_spec_is_unusable_input_for_render_and_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", str(tmp_path / "nope.yaml"), "--format", "dot"]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert main(["certificate", "verify", str(EXAMPLES / "refund.yaml"), str(tmp_path / "c.json")]) == 2
    assert "cannot read the certificate" in capsys.readouterr().err


def test_version_after_a_global_flag_still_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "--version"]) == 0
    assert capsys.readouterr().out.strip() == f"railguard {__version__}"


# --------------------------------------------------------------------------- folders


def _mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "workflows"
    (folder / "nested").mkdir(parents=True)
    (folder / "refund.yaml").write_text((EXAMPLES / "refund.yaml").read_text())
    assert main(["check", str(folder / "refund.yaml"), "--certificate", str(folder / "refund.cert.json")]) == 0
    (folder / "people.yaml").write_text("alice: [clerk]\nbob: [manager]\n")
    (folder / "nested" / "report.json").write_text(json.dumps({"railguard_report": 1, "files": []}))
    (folder / "nested" / "config.yml").write_text("settings:\n  railguard: 1\n")
    return folder


def test_check_of_a_folder_checks_only_files_that_declare_railguard_and_names_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _mixed_folder(tmp_path)
    capsys.readouterr()
    assert main(["check", str(folder), "--format", "json", "--no-data"]) == 0
    captured = capsys.readouterr()
    assert [Path(f["file"]).name for f in json.loads(captured.out)["files"]] == ["refund.yaml"]
    skipped = sorted(
        Path(line.split("`")[1]).name for line in captured.err.splitlines() if line.startswith("railguard: skipped `")
    )
    assert skipped == ["config.yml", "people.yaml", "refund.cert.json", "report.json"]


def test_a_broken_spec_in_a_folder_is_still_checked_and_a_named_file_is_always_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _mixed_folder(tmp_path)
    (folder / "broken.yaml").write_text("railguard: 1\nname: [unclosed\n")
    capsys.readouterr()
    assert main(["check", str(folder), "--format", "json", "--no-data"]) == 2
    files = {Path(f["file"]).name: f["status"] for f in json.loads(capsys.readouterr().out)["files"]}
    assert files == {"broken.yaml": "error", "refund.yaml": "clean"}
    assert main(["check", str(folder / "people.yaml"), "--format", "json"]) == 2
    assert json.loads(capsys.readouterr().out)["files"][0]["status"] == "error"


def test_a_folder_without_specs_is_unusable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "people.yaml").write_text("alice: [clerk]\n")
    assert main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("railguard: skipped `")
    assert err[-1].startswith("railguard: error: no spec files found in")


@pytest.mark.parametrize(
    ("text", "declares"),
    [
        ("railguard: 1\nname: x\n", True),
        ("# a spec\n---\n'railguard' : 1\n", True),
        ('{"name": "x", "railguard": 1}', True),
        ("{name: x, railguard: 1}", True),
        ("  railguard: 1\n", False),
        ("railguards: 1\n", False),
        ('{"railguard_certificate": 1, "railguard": {"nested": true}}', True),
        ('{"outer": {"railguard": 1}}', False),
        ("- railguard: 1\n", False),
        ("", False),
    ],
)
def test_a_top_level_railguard_key_is_what_makes_a_file_a_spec(tmp_path: Path, text: str, declares: bool) -> None:
    from railguard.cli import _declares_railguard

    path = tmp_path / "x.yaml"
    path.write_text(text)
    assert _declares_railguard(path) is declares


# --------------------------------------------------------------------------- render --trace REPORT


@pytest.fixture(scope="module")
def failing_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A deploy spec whose `retry` can leave the domain of `attempts`, and its JSON report."""
    folder = tmp_path_factory.mktemp("report")
    spec = folder / "deploy.yaml"
    spec.write_text((EXAMPLES / "deploy.yaml").read_text().replace("guard: attempts < 3", "guard: attempts <= 3"))
    report = folder / "report.json"
    assert main(["check", str(spec), "--format", "json", "-o", str(report)]) == 1
    return spec, report


def _results(report: Path) -> list[dict[str, object]]:
    results: list[dict[str, object]] = json.loads(report.read_text())["files"][0]["results"]
    return results


def test_render_draws_the_only_counterexample_of_a_json_report(
    failing_report: tuple[Path, Path], tmp_path: Path
) -> None:
    from railguard.cli import _trace
    from railguard.spec.diagram import trace_from_data

    spec, report = failing_report
    (violated,) = [r for r in _results(report) if r["counterexample"]]
    assert _trace(str(report), "deploy", None) == trace_from_data(violated["counterexample"])
    out = tmp_path / "trace.dot"
    assert main(["render", str(spec), "--trace", str(report), "-o", str(out)]) == 0
    assert "penwidth" in out.read_text()


def test_render_takes_one_result_of_a_report_and_a_witness_chosen_by_rule_and_subject(
    failing_report: tuple[Path, Path], tmp_path: Path
) -> None:
    from railguard.cli import _trace
    from railguard.spec.diagram import trace_from_data

    spec, report = failing_report
    results = _results(report)
    (violated,) = [r for r in results if r["counterexample"]]
    single = tmp_path / "result.json"
    single.write_text(json.dumps(violated))
    assert _trace(str(single), "deploy", None) == trace_from_data(violated["counterexample"])
    (released,) = [r for r in results if (r["rule"], r["subject"]) == ("RG401", "released")]
    assert _trace(str(report), "deploy", "RG401:released") == trace_from_data(released["witness"])
    (release,) = [r for r in results if (r["rule"], r["subject"]) == ("RG402", "transition 8 (`release`)")]
    by_name = _trace(str(report), "deploy", "dead-transition:transition 8 (release)")
    assert by_name == trace_from_data(release["witness"])
    out = tmp_path / "witness.mmd"
    assert main(["render", str(spec), "--trace", str(report), "--trace-result", "RG401:released", "-o", str(out)]) == 0


def test_several_or_no_counterexamples_need_a_choice_said_in_one_sentence(
    failing_report: tuple[Path, Path],
) -> None:
    from railguard.cli import plan_from_report
    from railguard.spec.diagram import DiagramError

    data = json.loads(failing_report[1].read_text())
    results = data["files"][0]["results"]
    (violated,) = [r for r in results if r["counterexample"]]
    results.append({**violated, "subject": "a second finding"})
    with pytest.raises(DiagramError, match=r"has 2 counterexamples: choose one with `--trace-result RULE:SUBJECT`") as raised:
        plan_from_report(data, "deploy")
    assert "`RG404:a second finding`" in str(raised.value)
    assert plan_from_report(data, "deploy", "RG404:a second finding") == (violated["counterexample"], "RG404:a second finding")
    clean = {**data, "files": [{**data["files"][0], "results": [r for r in results if not r["counterexample"]]}]}
    with pytest.raises(DiagramError, match="has no counterexample: draw a witness with `--trace-result"):
        plan_from_report(clean, "deploy")
    with pytest.raises(DiagramError, match="has 7 results of `RG401`"):
        plan_from_report(clean, "deploy", "RG401")
    with pytest.raises(DiagramError, match="neither a counterexample nor a witness"):
        plan_from_report(clean, "deploy", "RG501:bounded-retries")
    assert plan_from_report({"steps": []}, "deploy") is None


def test_render_refuses_a_report_of_another_spec_or_a_choice_without_a_report(
    failing_report: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, report = failing_report
    refund = str(EXAMPLES / "refund.yaml")
    assert main(["render", refund, "--trace", str(report), "--format", "dot"]) == 2
    assert "no results for spec `refund` (it checked `deploy`)" in capsys.readouterr().err
    assert main(["render", refund, "--trace-result", "RG404", "--format", "dot"]) == 2
    assert "--trace FILE" in capsys.readouterr().err
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"event": "request"}]}))
    assert main(["render", refund, "--trace", str(plan), "--trace-result", "RG404", "--format", "dot"]) == 2
    assert "is not one" in capsys.readouterr().err
