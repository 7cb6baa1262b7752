"""`logweave run` (what `make run` does): start the development pipeline in order and keep the terminal quiet.

A Procfile runner starts everything at once (clients log connection errors while the broker
starts), prints every banner, and at Ctrl-C stops the broker together with the clients still
flushing to it. This launcher starts the parts in order (commands/dev_stack.py), writes each
part's whole output to `var/logs/<part>.log`, shows on the terminal only warnings, errors and
tracebacks (everything with --verbose), prints one summary when every part is ready and one
progress line at an interval, and at Ctrl-C stops the services first and the infrastructure
last, each within its grace, then exits 0.

Ctrl-C from a terminal reaches the whole foreground process group, including `make`, which then
dies of SIGINT (status 130) whatever its child does. So, when started in the foreground of a
terminal, the launcher moves into a process group of its own and makes that group the
terminal's foreground (what a job-control shell does), and gives the terminal back on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from commands.dev_stack import Part

NOTEWORTHY = re.compile(r"\b(WARNING|ERROR|CRITICAL|FATAL)\b|Traceback \(most recent call last\)|^\S*Error: ")

# Warnings faust gives during normal work on a small machine: in the log file, on the terminal only with --verbose.
ROUTINE = re.compile(r"producer buffer full size|Timer \S+ is overlapping")


def say(text: str) -> None:
    print(f"logweave run: {text}", flush=True)


@contextlib.contextmanager
def _sigttou_ignored() -> Iterator[None]:
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTTOU, previous)


def take_terminal() -> Callable[[], None]:
    """Become the terminal's foreground process group, so Ctrl-C reaches only this launcher;
    returns the function that gives the terminal back. Does nothing without a terminal or when
    started in the background."""
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd) or os.tcgetpgrp(fd) != os.getpgrp():
            return lambda: None
        previous = os.getpgrp()
        if previous != os.getpid():
            os.setpgid(0, 0)
        with _sigttou_ignored():
            os.tcsetpgrp(fd, os.getpgrp())
    except OSError:
        return lambda: None

    def give_back() -> None:
        with _sigttou_ignored(), contextlib.suppress(OSError):
            os.tcsetpgrp(fd, previous)

    return give_back


@dataclass
class Child:
    """A running part: its process, its log file, and whether its ready line was seen."""

    part: Part
    process: asyncio.subprocess.Process
    log: IO[str]
    verbose: bool
    saw_ready_line: asyncio.Event = field(default_factory=asyncio.Event)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=15))
    stopping: bool = False

    async def pump(self) -> None:
        """Copy every output line to the log file; echo the noteworthy ones (a traceback whole)."""
        assert self.process.stdout is not None
        in_traceback = False
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.log.write(line + "\n")
            self.log.flush()
            self.recent.append(line)
            if self.part.ready_line and self.part.ready_line in line:
                self.saw_ready_line.set()
            if line.startswith("Traceback (most recent call last)"):
                in_traceback = True
            elif in_traceback and line and not line[0].isspace():
                in_traceback = False
                print(f"{self.part.name:>9} | {line}", flush=True)
                continue
            if self.verbose or in_traceback or (NOTEWORTHY.search(line) and not ROUTINE.search(line)):
                print(f"{self.part.name:>9} | {line}", flush=True)

    async def terminate(self) -> bool:
        """SIGTERM the part's process group, SIGKILL after its grace; True when it stopped in time."""
        self.stopping = True
        if self.process.returncode is not None:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), self.part.stop_grace)
            return True
        except TimeoutError:
            say(f"{self.part.name} did not stop within {self.part.stop_grace:.0f}s of SIGTERM; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
            return False


class Launcher:
    """Starts parts in order, waits for them, and stops them in reverse layers."""

    def __init__(self, parts: list[Part], log_dir: Path, verbose: bool) -> None:
        self.parts = parts
        self.log_dir = log_dir
        self.verbose = verbose
        self.children: list[Child] = []
        self.stop_requested = asyncio.Event()
        self._pumps: list[asyncio.Task[None]] = []

    async def start(self, part: Part) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{part.name}.log").open("a")
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(part.argv)}\n")
        process = await asyncio.create_subprocess_exec(
            *part.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True, env={**os.environ, **part.env})
        child = Child(part, process, log, self.verbose)
        self.children.append(child)
        self._pumps.append(asyncio.create_task(child.pump()))
        return child

    def exited(self) -> Child | None:
        """A long-running part that exited without being asked to."""
        for child in self.children:
            if not child.part.one_shot and not child.stopping and child.process.returncode is not None:
                return child
        return None

    def report_exit(self, child: Child) -> None:
        say(f"{child.part.name} exited with status {child.process.returncode}; last lines of "
            f"{self.log_dir / (child.part.name + '.log')}:")
        for line in child.recent:
            print(f"{child.part.name:>9} | {line}", flush=True)

    async def is_ready(self, child: Child, http: aiohttp.ClientSession) -> bool:
        part = child.part
        if part.one_shot:
            return child.process.returncode == 0
        if child.process.returncode is not None:
            return False
        if part.ready_line is not None:
            return child.saw_ready_line.is_set()
        try:
            if part.ready_url is not None:
                async with http.get(part.ready_url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    return response.status == 200
            if part.ready_port is not None:
                _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", part.ready_port), 2)
                writer.close()
                return True
        except (OSError, aiohttp.ClientError, TimeoutError):
            return False
        return True

    async def wait_ready(self, children: list[Child], http: aiohttp.ClientSession) -> bool:
        """True once every child is ready; False when asked to stop or when one failed."""
        pending = list(children)
        while pending:
            if self.stop_requested.is_set():
                return False
            for child in pending:
                if child.part.one_shot and child.process.returncode not in (None, 0):
                    self.report_exit(child)
                    return False
            if (gone := self.exited()) is not None:
                self.report_exit(gone)
                return False
            pending = [child for child in pending if not await self.is_ready(child, http)]
            if pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_requested.wait(), 0.25)
        return True

    async def bring_up(self, http: aiohttp.ClientSession) -> bool:
        layers = [[p for p in self.parts if p.infrastructure], [p for p in self.parts if p.one_shot],
                  [p for p in self.parts if not p.infrastructure and not p.one_shot]]
        for layer in layers:
            children = [await self.start(part) for part in layer]
            if not await self.wait_ready(children, http):
                return False
        return True

    async def shut_down(self) -> bool:
        """Services first, all at once, then the infrastructure; True when none had to be killed."""
        services = [c for c in self.children if not c.part.infrastructure]
        infrastructure = [c for c in self.children if c.part.infrastructure]
        clean = True
        for layer in (services, infrastructure):
            if any(c.process.returncode is None for c in layer):
                names = ", ".join(c.part.name for c in layer if c.process.returncode is None)
                say(f"stopping {names}")
            clean &= all(await asyncio.gather(*(child.terminate() for child in layer)))
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for child in self.children:
            child.log.close()
        return clean
