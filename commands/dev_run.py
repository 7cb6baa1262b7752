"""`logweave run`: the start-up summary and the progress line around the launcher.

The summary is printed once, when every part answers; then one progress line per interval, read
from the worker's own figures (`/api/stats`: the same counters as `/metrics`), so the terminal
says what the pipeline does without anyone opening a page.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from commands.dev_stack import Ports, parts
from commands.launcher import Launcher, say, take_terminal
from core.redact import mask_text
from core.settings import Settings


def summary_lines(settings: Settings, ports: Ports, log_dir: Path, took: float) -> list[str]:
    """The start-up summary: where to look, where output goes, where to send logs, how to stop."""
    intake = settings.intake
    endpoints = [(f"HTTP http://{intake.host}:{intake.http_port}/v1/logs", intake.http_port),
                 (f"Fluent forward {intake.host}:{intake.forward_port}", intake.forward_port),
                 (f"OTLP gRPC {intake.host}:{intake.otlp_grpc_port}", intake.otlp_grpc_port),
                 (f"OTLP HTTP http://{intake.host}:{intake.otlp_http_port}/v1/logs", intake.otlp_http_port),
                 (f"syslog {intake.host}:{intake.syslog_port}", intake.syslog_port)]
    outputs = [f"{settings.sinks.file.directory}/ (file sink)"] if "file" in settings.sinks.enabled else []
    outputs += [f"{name} sink" for name in settings.sinks.enabled if name not in ("file", "postgres")]
    if "postgres" in settings.sinks.enabled:
        outputs.append(f"PostgreSQL {mask_text(settings.sinks.postgres.dsn.get_secret_value())}")
    lines = [f"the pipeline is ready after {took:.0f} s",
             f"  stats page  http://127.0.0.1:{ports.worker}/",
             f"  output      {', '.join(outputs) or 'no sink enabled'}",
             f"  query API   http://127.0.0.1:{ports.api}/  (logweave query, trace, tail)",
             *[f"  {'intake' if i == 0 else '':<10}  {text}"
               for i, text in enumerate(text for text, port in endpoints if port)],
             f"  broker      127.0.0.1:{ports.broker} (embedded; data in var/broker)",
             f"  logs        {log_dir}/<part>.log (every process's whole output)",
             "  stop        Ctrl-C (services first, then the broker; exits 0)"]
    return lines


def compact(value: float) -> str:
    """A count in at most five characters: 9,999, 12.3k, 123k, 1.2M."""
    if value < 10_000:
        return f"{value:,.0f}"
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if value >= size:
            scaled = value / size
            return f"{scaled:.1f}{unit}" if scaled < 100 else f"{scaled:.0f}{unit}"
    return f"{value:.0f}"


@dataclass
class Progress:
    """Rates between two reads of the worker's counters."""

    last: tuple[float, float, float] | None = None  # (time, lines in, lines out)

    def line(self, stats: dict[str, Any], now: float) -> str:
        totals = stats["totals"]
        lines_in = float(totals["lines"].get("parse_in", 0.0))
        lines_out = float(sum(totals["sink_lines"].values()))
        dead = int(sum(totals["dead_letters"].values()) + sum(totals["sink_dead_letters"].values()))
        lag = int(sum(totals["lag"].values()))
        rate_in = rate_out = 0.0
        if self.last is not None:
            then, before_in, before_out = self.last
            elapsed = max(now - then, 1e-6)
            rate_in, rate_out = (lines_in - before_in) / elapsed, (lines_out - before_out) / elapsed
        self.last = (now, lines_in, lines_out)
        return (f"{time.strftime('%H:%M:%S')} lines/s in {compact(rate_in)} out {compact(rate_out)} | open traces "
                f"{compact(totals['open_traces'])} | lag {compact(lag)} | dead letters {compact(dead)}")


async def _progress(launcher: Launcher, http: aiohttp.ClientSession, url: str, every: float) -> None:
    progress = Progress()
    while True:
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                stats = await response.json() if response.status == 200 else None
        except (OSError, aiohttp.ClientError, TimeoutError, ValueError):
            stats = None
        if stats is not None:
            first = progress.last is None
            line = progress.line(stats, time.monotonic())
            if not first:  # rates need two reads; no prefix, so the line fits 80 columns
                print(line, flush=True)
        else:
            say("the worker's figures did not answer (is it restarting?)")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(launcher.stop_requested.wait(), every)
        if launcher.stop_requested.is_set():
            return


async def run_pipeline(settings: Settings, ports: Ports, workdir: Path, verbose: bool, every: float) -> int:
    launcher = Launcher(parts(settings, ports, verbose), workdir / "var" / "logs", verbose)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, launcher.stop_requested.set)
    began = time.monotonic()
    say(f"starting {', '.join(p.name for p in launcher.parts)} (output of each in var/logs/)")
    failed = False
    async with aiohttp.ClientSession() as http:
        try:
            if await launcher.bring_up(http):
                for line in summary_lines(settings, ports, Path("var/logs"), time.monotonic() - began):
                    say(line)
                progress = asyncio.create_task(
                    _progress(launcher, http, f"http://127.0.0.1:{ports.worker}/api/stats", every))
                while not launcher.stop_requested.is_set() and (gone := launcher.exited()) is None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(launcher.stop_requested.wait(), 0.5)
                progress.cancel()
                if not launcher.stop_requested.is_set() and gone is not None:
                    launcher.report_exit(gone)
                    failed = True
            else:
                failed = not launcher.stop_requested.is_set()
        finally:
            clean = await launcher.shut_down()
    say("stopped" + ("" if clean else " (some parts had to be killed)"))
    return 1 if failed else 0


def run(settings: Settings, ports: Ports, workdir: Path, verbose: bool, every: float) -> int:
    give_back = take_terminal()
    try:
        return asyncio.run(run_pipeline(settings, ports, workdir, verbose, every))
    finally:
        give_back()
