"""The house rules that keep the layout easy to see, checked by tools rather than by review.

- import-linter contracts in pyproject.toml (collectors and sinks never import faust, agents or
  tables; sinks are independent; tables never import agents; the app core imports nothing above it);
- a collector process never imports faust (python -X importtime shows every module loaded);
- mypy --strict and ruff are clean.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PACKAGES = ("core", "kafka_io", "sinks", "collectors", "tables", "agents", "app", "query", "commands")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_import_layers() -> None:
    result = run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", ["kafka_io.publisher", "core.settings", "core.models", "commands.cli",
                                    "collectors.intake.service"])
def test_collector_side_modules_do_not_import_faust(module: str) -> None:
    result = run(sys.executable, "-X", "importtime", "-c", f"import {module}")
    assert result.returncode == 0, result.stderr
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "faust" not in loaded and "mode" not in loaded


def test_mypy_strict_clean() -> None:
    result = run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout[-5000:]


def test_ruff_clean() -> None:
    result = run(str(BIN / "ruff"), "check", *PACKAGES, "tests")
    assert result.returncode == 0, result.stdout[-5000:]
