"""Demo log generator: CRI-format pod logs of JSON lines with trace ids, as kubelet writes them.

Writes `var/demo/pods/<namespace>_<pod>_<uid>/<container>/0.log`, so `make run` shows the whole
pipeline on a laptop. Traces span pods (a request crossing services); some lines are malformed
on purpose so dead letters show up on the stats page too.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

SERVICES = ("checkout", "payments", "inventory", "shipping", "frontend")
LEVELS = ("debug", "info", "info", "info", "warn", "error")


def rfc3339_nano(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def cri_line(ns: int, content: str, stream: str = "stdout") -> str:
    return f"{rfc3339_nano(ns)} {stream} F {content}\n"


def demo_pod_dirs(root: Path, pods: int, namespace: str = "demo-system") -> list[Path]:
    dirs = []
    for i in range(pods):
        service = SERVICES[i % len(SERVICES)]
        uid = uuid.UUID(int=random.Random(i).getrandbits(128)).hex
        pod = f"{service}-{i:03d}"
        path = root / f"{namespace}_{pod}_{uid}" / service
        path.mkdir(parents=True, exist_ok=True)
        dirs.append(path)
    return dirs


async def run_demo(root: Path, rate: float, pods: int = 10, duration: float | None = None,
                   bad_every: int = 200, seed: int | None = None) -> int:
    """Append about `rate` lines/s across `pods` pod logs; return the number of lines written.

    Trace ids come from a fresh random seed per start (unless `seed` is given): a restarted demo
    must not repeat the trace ids it wrote before, or its output would look duplicated.
    """
    rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(8), "big"))
    files = [open(d / "0.log", "a", buffering=1) for d in demo_pod_dirs(root, pods)]  # noqa: SIM115
    written, started = 0, time.monotonic()
    try:
        while duration is None or time.monotonic() - started < duration:
            trace = uuid.UUID(int=rng.getrandbits(128)).hex
            for step in range(rng.randint(2, 8)):
                pod_index = rng.randrange(len(files))
                now = time.time_ns()
                if written % bad_every == bad_every - 1:
                    content = "this line is not JSON" if (written // bad_every) % 2 else '{"msg":"no trace id here"}'
                else:
                    content = orjson.dumps({
                        "time": rfc3339_nano(now), "level": rng.choice(LEVELS), "traceId": trace,
                        "service": SERVICES[pod_index % len(SERVICES)], "msg": f"step {step} of request",
                        "duration_ms": rng.randint(1, 900),
                    }).decode()
                files[pod_index].write(cri_line(now, content))
                written += 1
            await asyncio.sleep(max(0.0, written / rate - (time.monotonic() - started)))
    finally:
        for handle in files:
            handle.close()
    return written
