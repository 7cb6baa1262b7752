"""Regressions for the memory errors `make fuzz` found in agents/_linescan.c, run under ASan.

Each case runs in a child Python with gcc's ASan and UBSan runtimes preloaded and the extension
built with -fsanitize=address,undefined (tests/fuzz/sanitized.py), so a use-after-free aborts the
child instead of silently reading freed memory; without the fixes both cases abort.
1. `split` re-read `lines` after the fallback callback shrank it (the size check ran only after an
   entry was placed, not when the callback returned None): heap-use-after-free on the item array.
2. Field names given as a generator lived only in the temporary list PySequence_Fast built, which
   `load_names` released while keeping pointers into the names: heap-use-after-free in scan_line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fuzz.sanitized import build

PRELUDE = """
from pathlib import Path
from tests.fuzz.sanitized import load
native = load("agents._linescan", Path({path!r}))
LEVELS = {{"info": "info"}}
"""


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("asan"))["agents._linescan"]


def run_under_asan(sanitized: Path, code: str) -> subprocess.CompletedProcess[str]:
    runtimes = [subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
                for name in ("libasan.so", "libubsan.so")]
    assert all(Path(r).is_absolute() and Path(r).exists() for r in runtimes), \
        f"gcc's sanitizer runtimes are missing ({runtimes}): apt-get install gcc"
    env = {**os.environ, "LD_PRELOAD": " ".join(runtimes), "PYTHONMALLOC": "malloc",
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS": "halt_on_error=1"}
    script = PRELUDE.format(path=str(sanitized)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])


def test_a_fallback_that_shrinks_the_lines_is_refused_not_read_after_free(sanitized: Path) -> None:
    run = run_under_asan(sanitized, """
        lines = [[n, "not json %d" % n, "stdout", 0, 0] for n in range(64)]
        def slow(raw):
            del lines[8:]  # frees the tail and shrinks the item array
            return None
        try:
            native.split(lines, [["traceId"], ["time"], ["level"], ["service"]], LEVELS, 4, 1 << 20, 0, "s", True, 0,
                         slow)
        except RuntimeError as exc:
            print("refused:", exc)
    """)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "refused: lines changed during split" in run.stdout


def test_field_names_from_a_generator_stay_alive_for_the_scan(sanitized: Path) -> None:
    run = run_under_asan(sanitized, """
        def names(base):
            return (base + suffix for suffix in ["", "X"])  # built at run time: owned by the temporary list only
        lines = [[n, '{"traceId":"t%d","time":"2026-12-02T10:00:00Z","level":"info","service":"s"}' % n, "", 0, 0]
                 for n in range(32)]
        slow_calls = []
        fields = [names("trace" + "Id"), names("ti" + "me"), names("lev" + "el"), names("serv" + "ice")]
        out = native.split(lines, fields, LEVELS, 4, 1 << 20, 0, "s", True, 0, lambda raw: slow_calls.append(raw))
        print("parsed", sum(len(v) for v in out.values()), "slow", len(slow_calls))
    """)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "parsed 32 slow 0" in run.stdout
