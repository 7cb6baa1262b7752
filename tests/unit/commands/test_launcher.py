"""The launcher's terminal: what a part's output shows, and the progress line's arithmetic."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from commands.dev_run import Progress, compact
from commands.dev_stack import Part
from commands.launcher import Launcher

SCRIPT = r"""
print("[2026-12-02 10:00:00,000] [1] [INFO] [^Worker]: Ready")
print("2026-12-02 10:00:00,001 WARNING x: disk nearly full")
print("[2026-12-02 10:00:00,002] [1] [WARNING] producer buffer full size 101")
print("Traceback (most recent call last):")
print('  File "x.py", line 1, in <module>')
print("ValueError: boom")
print("plain info line")
print("READY NOW")
"""


async def test_terminal_shows_warnings_and_whole_tracebacks_and_the_log_file_keeps_everything(
        tmp_path: Path, capsys: object) -> None:
    launcher = Launcher([], tmp_path, verbose=False)
    child = await launcher.start(Part("demo", [sys.executable, "-c", SCRIPT], ready_line="READY NOW"))
    await child.process.wait()
    await asyncio.gather(*launcher._pumps)
    child.log.close()
    shown = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "disk nearly full" in shown
    assert "Traceback" in shown and 'File "x.py"' in shown and "ValueError: boom" in shown
    assert "[^Worker]" not in shown and "plain info line" not in shown
    assert "producer buffer full" not in shown  # routine faust warning: the file only
    assert child.saw_ready_line.is_set()
    logged = (tmp_path / "demo.log").read_text()
    assert "plain info line" in logged and "producer buffer full" in logged and "[^Worker]" in logged


def test_progress_rates_from_two_reads() -> None:
    def stats(lines_in: float, out: float) -> dict[str, object]:
        return {"totals": {"lines": {"parse_in": lines_in},
                           "sink_lines": {"file": out, "postgres": out},
                           "dead_letters": {"parse/bad_json": 2.0}, "sink_dead_letters": {"file": 1.0},
                           "lag": {"logs.raw/0": 5.0, "sink.file/1": 7.0},
                           "open_traces": 42.0 if lines_in < 1000 else 123_456.0}}

    progress = Progress()
    progress.line(stats(100, 40), now=10.0)
    line = progress.line(stats(300, 90), now=12.0)
    assert "lines/s in 100 out 50 |" in line
    assert "open traces 42" in line and "lag 12 |" in line and "dead letters 3" in line
    busy = Progress()
    busy.line(stats(0, 0), now=0.0)
    assert len(busy.line(stats(1_234_567, 1_200_000), now=100.0)) <= 80  # fits a terminal at busy figures


def test_compact_counts() -> None:
    assert [compact(v) for v in (0, 9_999, 12_345, 123_456, 1_234_567, 987_654_321)] == \
        ["0", "9,999", "12.3k", "123k", "1.2M", "988M"]
