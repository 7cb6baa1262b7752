"""The house rules that keep the layout easy to see, checked by tools rather than by review.

- import-linter contracts in pyproject.toml (collectors and sinks never import faust, agents or
  tables; sinks are independent; tables never import agents; the app core imports nothing above it);
- a collector process never imports faust (python -X importtime shows every module loaded);
- mypy --strict and ruff are clean;
- no async test or test helper blocks its event loop with a synchronous wait (docs/testing.md).
"""

from __future__ import annotations

import ast
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


BLOCKING_WAITS = {"wait_http_ok", "wait_for_sync", "time.sleep"}  # each has an awaitable counterpart


def blocking_waits_in_async_code(source: str) -> list[tuple[int, str]]:
    """(line, call) of each blocking wait made directly in an `async def` (not in a function nested in it,
    which may run in a thread)."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_async: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.AsyncFunctionDef):
                visit(child, True)
            elif isinstance(child, ast.FunctionDef | ast.Lambda):
                visit(child, False)
            else:
                if in_async and isinstance(child, ast.Call) and ast.unparse(child.func) in BLOCKING_WAITS:
                    found.append((child.lineno, ast.unparse(child.func)))
                visit(child, in_async)

    visit(ast.parse(source), False)
    return found


def test_the_check_for_blocking_waits_finds_them() -> None:
    source = (
        "async def t():\n"
        "    wait_http_ok(url, 5)\n"
        "    def in_a_thread():\n"
        "        time.sleep(1)\n"
        "    await asyncio.to_thread(in_a_thread)\n"
        "    time.sleep(0.1)\n"
        "def sync_test():\n"
        "    wait_for_sync(check, what='x')\n"
    )
    assert blocking_waits_in_async_code(source) == [(2, "wait_http_ok"), (6, "time.sleep")]


def test_async_tests_never_block_their_event_loop() -> None:
    """A test feeding from one task while it waits for another (a worker joining, a process starting)
    stops feeding if the wait blocks: CI failed that way (docs/testing.md)."""
    found = [f"{path.relative_to(ROOT)}:{line} {call}" for path in sorted((ROOT / "tests").rglob("*.py"))
             for line, call in blocking_waits_in_async_code(path.read_text())]
    assert not found, "blocking waits in async code (use wait_http_ok_in_thread, wait_for, asyncio.sleep): " + \
        ", ".join(found)
