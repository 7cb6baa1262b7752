"""Deterministic CRI pod-log data sets with known traces and known malformed lines, for tests and benches."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from commands.demo import cri_line, rfc3339_nano

BASE_NS = 1_749_543_941_000_000_000  # 2025-06-10T08:25:41Z
MALFORMED = {
    "not_json": b"this is not json at all",
    "missing_trace_id": b'{"time":"2025-06-10T08:25:41Z","msg":"no trace"}',
    "bad_time": b'{"traceId":"x-bad-time","time":"not a time"}',
    "not_object": b'["an","array"]',
    "invalid_utf8": b'{"traceId":"x","msg":"\xff\xfe"}',
}


@dataclass
class DataSet:
    """What was written: valid documents by (pod, seq), malformed lines by reason, traces' truth."""

    valid: dict[str, dict[str, object]] = field(default_factory=dict)  # msg id -> document
    malformed: list[tuple[str, bytes]] = field(default_factory=list)
    traces: dict[str, list[int]] = field(default_factory=dict)  # trace id -> event times (ns)
    files: list[Path] = field(default_factory=list)


def pod_log_paths(root: Path, pods: int, namespace: str = "e2e") -> list[Path]:
    paths = []
    for i in range(pods):
        directory = root / f"{namespace}_pod-{i:03d}_{i:08x}-0000-4000-8000-{i:012x}" / "app"
        directory.mkdir(parents=True, exist_ok=True)
        paths.append(directory / "0.log")
    return paths


def write_dataset(root: Path, lines: int, pods: int, traces: int, malformed_every: int = 97,
                  seed: int = 7, data: DataSet | None = None, start: int = 0) -> DataSet:
    """Append `lines` CRI lines spread over `pods` pod logs and `traces` traces (lines of a trace
    cross pods); every `malformed_every`-th line is malformed, cycling through MALFORMED."""
    rng = random.Random(seed + start)
    data = data or DataSet()
    paths = pod_log_paths(root, pods)
    data.files = paths
    handles = [open(p, "ab") for p in paths]  # noqa: SIM115
    reasons = list(MALFORMED)
    try:
        for n in range(start, start + lines):
            pod = rng.randrange(pods)
            ts = BASE_NS + n * 1_000_123
            if n % malformed_every == malformed_every - 1:
                reason = reasons[(n // malformed_every) % len(reasons)]
                content = MALFORMED[reason]
                data.malformed.append((reason, content))
            else:
                trace = f"trace-{n % traces:05d}"
                msg_id = f"m{n:08d}"
                doc = {"time": rfc3339_nano(ts), "traceId": trace, "level": rng.choice(["info", "warn", "error"]),
                       "service": f"svc-{pod % 5}", "msg": msg_id, "n": n, "nested": {"k": [1, 2, {"x": None}]}}
                content = orjson.dumps(doc)
                data.valid[msg_id] = doc
                data.traces.setdefault(trace, []).append(ts)
            handles[pod].write(cri_line(ts, "").encode()[:-1] + content + b"\n")
    finally:
        for handle in handles:
            handle.close()
    return data
