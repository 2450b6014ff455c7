"""Gates on the code itself: the wheel's contents, the public API, ruff and mypy."""

from __future__ import annotations

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
