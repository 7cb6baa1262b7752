"""The whole pipeline as this worker sees it from the heartbeat topic, for the stats page.

Any worker can show every component (collectors, intake, other workers, drains): it follows the
compacted heartbeat topic (kafka_io/heartbeat.py) and keeps a short history of the stage rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from core.heartbeat import PipelineHistory
from core.settings import Settings
from kafka_io.heartbeat import PipelineFollower

log = logging.getLogger(__name__)


class PipelineWatch:
    def __init__(self, settings: Settings, refresh: float = 2.0) -> None:
        # never slower than the beats: an age read from the view stays under two intervals for a component
        # that beats, well inside the heartbeat alert's three (app/heartbeat_metrics.py)
        self.settings, self.refresh = settings, min(refresh, settings.heartbeats.interval)
        self.follower = PipelineFollower(settings)
        self.history = PipelineHistory()

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.follower.view.summary(time.time()), "history": self.history.as_list(),
                "interval": self.settings.heartbeats.interval}

    async def run(self) -> None:
        """Fold new beats every `refresh` seconds for the life of the worker; a broker away is retried."""
        started = False
        while True:
            try:
                if not started:
                    await self.follower.start()
                    started = True
                view = await self.follower.catch_up(timeout=self.refresh)
                self.history.sample(view.summary(time.time()))
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await self.follower.stop()
                raise
            except Exception as exc:  # the broker away: the page shows the last view meanwhile
                log.warning("cannot read the heartbeat topic (%s); retrying", exc)
                with contextlib.suppress(Exception):
                    await self.follower.stop()
                started = False
            await asyncio.sleep(self.refresh)
