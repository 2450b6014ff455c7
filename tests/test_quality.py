"""Gates on the code itself: the wheel's contents, the public API, ruff and mypy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import railguard
import railguard.runtime
import railguard.spec
import railguard.verifier

from .conftest import ROOT


@pytest.mark.slow
def test_the_wheel_contains_only_the_railguard_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("railguard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"railguard", next(t for t in top if t.endswith(".dist-info"))}
    for layer in ("spec", "verifier", "runtime"):
        assert f"railguard/{layer}/__init__.py" in names
    assert "railguard/py.typed" in names


@pytest.mark.parametrize(
    "module", [railguard, railguard.spec, railguard.verifier, railguard.runtime]
)
def test_public_modules_declare_all_and_every_name_exists(module: object) -> None:
    names = getattr(module, "__all__", None)
    assert names is not None
    assert [name for name in names if not hasattr(module, name)] == []


def test_the_layers_are_imported_from_the_installed_package() -> None:
    assert railguard.spec.__name__ == "railguard.spec"
    assert "spec" not in sys.modules or sys.modules["spec"] is not railguard.spec


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_ruff_reports_nothing() -> None:
    result = subprocess.run(
        ["ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(shutil.which("mypy") is None, reason="mypy is not installed")
@pytest.mark.slow
def test_mypy_strict_reports_nothing(tmp_path: Path) -> None:
    # Run outside the checkout so mypy sees the installed package (strict editable install),
    # where the layer folders are mapped into the `railguard` namespace.
    result = subprocess.run(
        [
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path),
            "-p",
            "railguard",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def _quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.strip().splitlines() if line.strip()]


def test_the_readme_quick_start_has_exactly_two_commands() -> None:
    assert len(_quick_start()) == 2


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _quick_start()[1] in ci


def _pytest(*args: str, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAILGUARD_CI", "PYTEST_ADDOPTS")}
    if ci:
        env["RAILGUARD_CI"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


@pytest.mark.slow
def test_a_ci_run_fails_when_it_left_a_test_out_and_a_local_run_does_not() -> None:
    selection = ["tests/test_builder.py", "-k", "not reproduces"]
    local = _pytest(*selection, ci=False)
    assert local.returncode == 0, local.stdout
    assert "deselected" in local.stdout
    ci = _pytest(*selection, ci=True)
    assert ci.returncode == pytest.ExitCode.TESTS_FAILED, ci.stdout


@pytest.mark.slow
def test_the_slow_tests_listed_in_conftest_exist_and_are_marked_slow() -> None:
    from .conftest import SLOW

    done = _pytest("--collect-only", "-m", "slow", "tests", ci=False)
    assert done.returncode == 0, done.stdout
    collected = {line.split("[")[0].removeprefix("tests/") for line in done.stdout.splitlines() if "::" in line}
    assert sorted(SLOW - collected) == []


def test_ci_fails_when_pytest_collects_no_test(tmp_path: Path) -> None:
    # The `set` line and the README's test command of `.ci/run`, with stand-ins for the
    # installers and a pytest that collected nothing (exit 5).
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    (setting,) = [line for line in lines if line.startswith("set -")]
    command = _quick_start()[1]
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "system-deps").write_text("exit 0\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, code in (("pip", 0), ("pytest", 5)):
        (bin_dir / tool).write_text(f"#!/bin/sh\nexit {code}\n")
        (bin_dir / tool).chmod(0o755)
    script = tmp_path / "run"
    script.write_text(f"{setting}\n{command}\necho after-the-tests\n")
    done = subprocess.run(
        ["bash", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    assert done.returncode == pytest.ExitCode.NO_TESTS_COLLECTED
    assert "after-the-tests" not in done.stdout


def test_ci_runs_with_the_ci_guards_on() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "export RAILGUARD_CI=1" in ci
    assert ci.index("export RAILGUARD_CI=1") < ci.index(_quick_start()[1])
