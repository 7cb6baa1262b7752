"""`make run` as a user runs it: in a terminal (a real pseudo-terminal), Ctrl-C typed on it.

The whole development pipeline starts (embedded broker, PostgreSQL, worker, query API, file
collector, intake, demo logs) on free ports under a temporary working directory. The terminal must
show one start-up summary, then progress lines with lines moving, no ERROR and no traceback; a
Ctrl-C must stop everything in order and `make` must exit 0 (not 130) within a bound, without
killing anything. The demo's topics carry deploy/dev.env's retention bounds, every component's
heartbeat reaches `logweave status`, and the worker's stats page shows the whole pipeline in a real
headless Chromium (screenshots at 1400 and 800 px in test-artifacts/).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from commands.broker import free_port
from core.settings import load_settings
from kafka_io.topic_admin import topic_configs
from tests.e2e.test_stats_page import ARTIFACTS, render
from tests.support.polling import wait_for_sync
from tests.support.processes import VENV_BIN, base_env

REPO = Path(__file__).resolve().parents[2]
READY = "the pipeline is ready after"
DEAD_LETTER_EXAMPLE = re.compile(r'data-example="not_json">this line is not JSON<')
SUMMARY_END = "stop        Ctrl-C"  # the summary's last line (commands/dev_run.py, summary_lines)
MOVING = re.compile(r"lines/s in ([\d,.]+k?) out ([\d,.]+k?) \|")


class Terminal:
    """A pseudo-terminal running one command as the session's foreground job, its output kept."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        master, slave = os.openpty()
        self.master = master
        # setsid -c: a new session whose controlling terminal is stdin, as a login shell has
        self.process = subprocess.Popen(["setsid", "-c", *argv], stdin=slave, stdout=slave, stderr=slave,
                                        env=env, cwd=cwd, close_fds=True)
        os.close(slave)
        self.chunks: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: every holder of the terminal is gone
                return
            if not data:
                return
            self.chunks.append(data.decode(errors="replace"))

    @property
    def output(self) -> str:
        return "".join(self.chunks).replace("\r\n", "\n")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        """Stop what still runs as a user would, with Ctrl-C: `make run`'s parts run in sessions of their
        own, so killing `make` alone (a test failing before its own Ctrl-C) left the whole pipeline
        running and loading the machine for the tests after it. SIGKILL only if Ctrl-C did not stop it."""
        if self.process.poll() is None:
            self.type(b"\x03")
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()
        os.close(self.master)


def check_pipeline_page(url: str) -> None:
    """The worker's stats page in headless Chromium shows every component of make run in pipeline
    order, with a clock axis, lag in seconds and a dead letter's example; at 800 px it is no wider
    than the window. Screenshots at 1400 and 800 px go to test-artifacts/."""
    def with_dead_letter() -> str | None:
        page: str = render(url, "--dump-dom", "--window-size=1400,1600").stdout
        return page if DEAD_LETTER_EXAMPLE.search(page) else None
    # the demo's first line that is not JSON is its 400th: on a quiet machine the pipeline beats before it
    dom = wait_for_sync(with_dead_letter, timeout=90, what="a dead letter's example on the stats page")
    assert re.findall(r'data-stage-row="([^"$]+)"', dom) == ["file-collector", "intake", "worker", "drain"], dom
    components = re.findall(r'data-component="([^"$]+)"', dom)
    assert len(components) == 5 and {c.rsplit("/", 1)[-1] for c in components[3:]} == {"file", "postgres"}
    assert re.findall(r'data-state="[^"$]+">([a-z]+)<', dom) == ["running"] * 5
    assert DEAD_LETTER_EXAMPLE.search(dom), "no dead-letter example"
    ticks = re.findall(r'data-tick="x">(\d\d:\d\d:\d\d)<', dom)
    assert len(ticks) == 5 and ticks == sorted(ticks), f"no time axis: {ticks}"
    assert re.search(r'data-lag-seconds="file">(\d+ (s|min)|-)<', dom)
    narrow = render(url, "--dump-dom", "--window-size=800,1600").stdout
    layout = re.search(r'data-layout="(\d+)/(\d+)"', narrow)
    assert layout is not None and int(layout[1]) <= int(layout[2]), f"wider than 800 px: {layout and layout[0]}"
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (1400, 800):
        shot = ARTIFACTS / f"pipeline-page-{width}.png"
        shot.unlink(missing_ok=True)
        render(url, f"--screenshot={shot}", f"--window-size={width},1700")
        assert shot.exists() and shot.stat().st_size > 20_000


def whole_pipeline_beating(broker_port: int) -> dict[str, Any] | None:
    """`logweave status --once --json` once every component of make run beats (the worker with lines
    coming in: a first beat has no rate yet; both sinks ready), else None."""
    answer = subprocess.run([str(VENV_BIN / "logweave"), "status", "--once", "--json"], capture_output=True,
                            env=base_env({"LOGWEAVE_KAFKA__BROKERS": f"127.0.0.1:{broker_port}"}), timeout=60)
    if answer.returncode != 0:
        return None
    summary: dict[str, Any] = orjson.loads(answer.stdout)
    kinds = sorted(c["kind"] for c in summary["components"] if c["state"] == "running")
    moving = any(c["kind"] == "worker" and c["lines_in_per_s"] > 0 for c in summary["components"])
    sinks = {s["name"]: s["state"] for s in summary["sinks"]}
    return summary if (kinds == ["drain", "drain", "file-collector", "intake", "worker"] and moving
                       and sinks == {"file": "ready", "postgres": "ready"}) else None


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A working directory the postgres user can traverse (pytest's workdir is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="logweave-run-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.starts_first
def test_make_run_quiet_summary_progress_and_clean_ctrl_c(workdir: Path) -> None:
    ports = {name: free_port() for name in ("broker", "worker", "api", "postgres")}
    run_args = (f"--workdir {workdir} --progress-every 1 " +
                " ".join(f"--{name}-port {port}" for name, port in ports.items()))
    env = base_env({
        "LOGWEAVE_COLLECTOR__METRICS_PORT": str(free_port()),
        "LOGWEAVE_INTAKE__HTTP_PORT": str(free_port()), "LOGWEAVE_INTAKE__FORWARD_PORT": str(free_port()),
        "LOGWEAVE_INTAKE__OTLP_GRPC_PORT": str(free_port()), "LOGWEAVE_INTAKE__OTLP_HTTP_PORT": str(free_port()),
        "LOGWEAVE_INTAKE__SYSLOG_PORT": str(free_port()), "TERM": "dumb"})
    for inherited in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # when the suite itself runs under make
        env.pop(inherited, None)
    terminal = Terminal(["make", "--no-print-directory", "run", f"RUN_ARGS={run_args}"], env, REPO)
    try:
        # the summary arrives line by line: wait for its last line, not its first (on a busy machine the
        # test read the ready line before the intake and stop lines were written)
        wait_for_sync(lambda: SUMMARY_END in terminal.output.partition(READY)[2] or terminal.process.poll() is not None,
                      timeout=240, what="the whole start-up summary", last_seen=lambda: terminal.output[-2000:])
        assert READY in terminal.output, terminal.output
        summary = terminal.output.split(READY, 1)[1]
        for expected in (f"http://127.0.0.1:{ports['worker']}/", "var/out/ (file sink)",
                         f"http://127.0.0.1:{ports['api']}/", env["LOGWEAVE_INTAKE__HTTP_PORT"], "Ctrl-C"):
            assert expected in summary, f"{expected!r} missing from the summary:\n{summary}"

        def lines_moving() -> bool:
            return any(m.group(1) != "0" and m.group(2) != "0" for m in MOVING.finditer(terminal.output))

        wait_for_sync(lines_moving, timeout=120, what="a progress line with lines in and out",
                      last_seen=lambda: terminal.output[-1500:])
        assert terminal.output.count(READY) == 1
        kafka = load_settings(kafka={"brokers": f"127.0.0.1:{ports['broker']}"}).kafka
        raw = asyncio.run(topic_configs(kafka, ["logs.raw"]))["logs.raw"]
        assert (raw["retention.ms"], raw["retention.bytes"]) == (str(2 * 3600_000), str(8 * 1024 * 1024)), \
            "deploy/dev.env's bounds are not on the demo's topics"
        status = wait_for_sync(lambda: whole_pipeline_beating(ports["broker"]), timeout=60,
                               what="heartbeats from every component of make run")
        worker = next(c for c in status["components"] if c["kind"] == "worker")
        assert "open_traces" in worker["figures"] and worker["version"] and worker["host"]
        check_pipeline_page(f"http://127.0.0.1:{ports['worker']}/")
        terminal.type(b"\x03")  # Ctrl-C: the terminal sends SIGINT to its foreground process group
        wait_for_sync(lambda: terminal.process.poll() is not None, timeout=150,
                      what="make run to exit after Ctrl-C", last_seen=lambda: terminal.output[-1500:])
        output = terminal.output
        assert terminal.process.returncode == 0, output[-3000:]
        assert "logweave run: stopped\n" in output, output[-3000:]
        for unwanted in ("ERROR", "Traceback", "SIGKILL", "killing", "Error 130", "Interrupt"):
            assert unwanted not in output, f"{unwanted!r} on the terminal:\n{output}"
        assert "[^Worker]" not in output and "ƒaµS†" not in output, "faust's banner reached the terminal"
        assert (workdir / "var" / "logs" / "worker.log").stat().st_size > 0  # everything is in the files
    finally:
        terminal.close()
