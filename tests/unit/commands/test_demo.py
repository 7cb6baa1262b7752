"""The demo writes valid CRI pod logs, and a restarted demo never repeats its trace ids."""

from __future__ import annotations

from pathlib import Path

import orjson

from commands.demo import run_demo


def trace_ids(root: Path) -> set[str]:
    ids = set()
    for log in root.rglob("0.log"):
        for line in log.read_text().splitlines():
            content = line.split(" ", 3)[3]
            if content.startswith("{") and "traceId" in content:
                ids.add(orjson.loads(content)["traceId"])
    return ids


async def test_each_start_uses_new_trace_ids(tmp_path: Path) -> None:
    await run_demo(tmp_path / "a", rate=100_000, pods=3, duration=0.05)
    await run_demo(tmp_path / "b", rate=100_000, pods=3, duration=0.05)
    first, second = trace_ids(tmp_path / "a"), trace_ids(tmp_path / "b")
    assert first and second and not first & second


async def test_a_given_seed_repeats_the_same_ids(tmp_path: Path) -> None:
    await run_demo(tmp_path / "a", rate=1000, pods=2, duration=0.02, seed=7)
    await run_demo(tmp_path / "b", rate=1000, pods=2, duration=0.02, seed=7)
    a, b = trace_ids(tmp_path / "a"), trace_ids(tmp_path / "b")
    assert a and (a <= b or b <= a)
