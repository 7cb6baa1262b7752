"""A live pod-log writer for the live benchmark: one process writing many CRI files at a paced rate.

Run by tests/bench/bench_live.py (several of these share the pods):

    python -m tests.bench.live_writer --root DIR --first 0 --count 100 --rate 20 \
        --start EPOCH --window-start EPOCH --window-end EPOCH [--rotate 0,7]

Each file is written on its own schedule (exponential gaps averaging 1/rate, so files are
independent and unsynchronised), one `write()` per line on an O_APPEND descriptor, as a container
runtime writes: `<RFC3339Nano> stdout F <json>`. Every line is ~250 bytes of JSON with a trace id
(10 consecutive lines per trace) and `wt`, its write time in epoch nanoseconds, taken right before
the write, so a late writer on a loaded machine still stamps the truth. Pods listed in `--rotate`
are rotated once, like kubelet: `0.log` renamed to `0.log.<YYYYmmdd-HHMMSS>`, a new `0.log` created.
Lines are written from `--start` until `--window-end`; at exit the process prints one JSON line:
lines written in total and within [window-start, window-end), and its CPU seconds.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import sys
import time
from pathlib import Path

import orjson

PAD = "request handled by the checkout service; padding to a typical size"


def pod_dir(root: Path, index: int) -> Path:
    """kubelet's layout: <root>/<namespace>_<pod>_<uid>/<container>/0.log."""
    return root / f"shop_checkout-{index:04d}_{index:032x}" / "app"


def line_doc(write_ns: int, pod: int, n: int) -> tuple[str, bytes]:
    """Line `n` of pod `pod` written at `write_ns`: its RFC 3339 stamp and its JSON (which carries `wt`)."""
    seconds, nanos = divmod(write_ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
    doc = orjson.dumps({"time": stamp, "traceId": f"{pod:04x}{n // 10:012x}", "level": "info",
                        "service": "checkout", "msg": PAD, "pod": pod, "n": n, "wt": write_ns,
                        "path": "/api/v1/cart/items"})
    return stamp, doc


def cri_bytes(write_ns: int, pod: int, n: int) -> bytes:
    stamp, doc = line_doc(write_ns, pod, n)
    return stamp.encode() + b" stdout F " + doc + b"\n"


def open_log(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def rotate(path: Path, fd: int) -> int:
    """kubelet's rotation: rename the live file away, start a new one; the writer switches to it."""
    os.close(fd)
    os.rename(path, path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"))
    return open_log(path)


class WriteSchedule:
    """When each of `count` pods writes its next line: every pod on its own schedule, exponential gaps
    averaging 1/rate from `start`, until `window_end` (epoch seconds). Counts the lines written, in total
    and within [window_start, window_end). Shared by the file writers and the Kubernetes API rows'
    server (tests/bench/live_pods.py)."""

    def __init__(self, count: int, rate: float, start: float, window_start: float, window_end: float,
                 seed: int) -> None:
        self._rng, self._rate = random.Random(seed), rate
        self._queue = [(start + self._rng.expovariate(rate), i) for i in range(count)]
        heapq.heapify(self._queue)
        self._window = (int(window_start * 1e9), int(window_end * 1e9))
        self.lines = [0] * count  # lines written per pod
        self.written = self.in_window = 0

    def wait(self) -> float:
        """Seconds until the next write is due (0: now)."""
        return max(0.0, self._queue[0][0] - time.time())

    def take(self) -> tuple[int, int, int] | None:
        """The write due now, counted: (pod index, its line number, write time in ns); None once the window
        has ended (no more writes)."""
        due, i = self._queue[0]
        write_ns = time.time_ns()
        if write_ns >= self._window[1]:
            return None
        n = self.lines[i]
        self.lines[i] += 1
        self.written += 1
        self.in_window += self._window[0] <= write_ns
        heapq.heapreplace(self._queue, (due + self._rng.expovariate(self._rate), i))
        return i, n, write_ns

    def totals(self) -> dict[str, float]:
        usage = os.times()
        return {"written": self.written, "in_window": self.in_window, "cpu_s": usage.user + usage.system}


def run(args: argparse.Namespace) -> dict[str, float]:
    paths = [pod_dir(args.root, i) / "0.log" for i in range(args.first, args.first + args.count)]
    fds = [open_log(p) for p in paths]
    # rotations spread over the window: (when, pod offset in this writer)
    span = args.window_end - args.window_start
    rotations = sorted((args.window_start + span * (k + 1) / (len(args.rotate) + 1), pod - args.first)
                       for k, pod in enumerate(args.rotate) if args.first <= pod < args.first + args.count)
    schedule = WriteSchedule(args.count, args.rate, args.start, args.window_start, args.window_end, args.first)
    while True:
        wait = schedule.wait()
        if wait > 0:
            time.sleep(min(wait, 0.05))
            continue
        while rotations and rotations[0][0] <= time.time():
            _, pod = rotations.pop(0)
            fds[pod] = rotate(paths[pod], fds[pod])
        due = schedule.take()
        if due is None:
            break
        i, n, write_ns = due
        os.write(fds[i], cri_bytes(write_ns, args.first + i, n))
    for fd in fds:
        os.close(fd)
    return schedule.totals()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--first", type=int, required=True, help="index of this writer's first pod")
    parser.add_argument("--count", type=int, required=True, help="pods this writer writes")
    parser.add_argument("--rate", type=float, required=True, help="lines per second per pod (mean)")
    parser.add_argument("--start", type=float, required=True, help="epoch seconds: first writes")
    parser.add_argument("--window-start", type=float, required=True)
    parser.add_argument("--window-end", type=float, required=True, help="epoch seconds: writing stops")
    parser.add_argument("--rotate", type=lambda text: [int(p) for p in text.split(",") if p], default=[],
                        help="pod indexes rotated once during the window")
    args = parser.parse_args()
    for i in range(args.first, args.first + args.count):
        pod_dir(args.root, i).mkdir(parents=True, exist_ok=True)
    sys.stdout.write(orjson.dumps(run(args)).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
