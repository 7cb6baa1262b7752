"""`logweave status`: the whole pipeline from the heartbeat topic, live or once (text or JSON).

It reads only the compacted heartbeat topic, so it needs nothing but the broker: no worker port,
no token, and it shows every collector, intake, worker and drain that publishes there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time

import orjson

from commands.status_view import WIDTH, render
from core.settings import Settings
from kafka_io.heartbeat import PipelineFollower

CLEAR = "\x1b[H\x1b[2J"


async def show_status(settings: Settings, once: bool, as_json: bool, refresh: float) -> int:
    follower = PipelineFollower(settings)
    await follower.start(timeout=settings.kafka.connect_timeout)
    try:
        if once:
            view = await follower.catch_up()
            summary = view.summary(time.time())
            if as_json:
                sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
            else:
                print("\n".join(render(summary)))
            return 0
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        live = sys.stdout.isatty()
        while not stop.is_set():
            view = await follower.catch_up()
            width = max(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns) if live else WIDTH
            screen = "\n".join([*render(view.summary(time.time()), width), "", "Ctrl-C to quit"])
            try:
                print((CLEAR if live else "") + screen, flush=True)
            except BrokenPipeError:  # piped into `head` or a pager that quit
                with contextlib.suppress(OSError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), refresh)
        return 0
    finally:
        await follower.stop()
