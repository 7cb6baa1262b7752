"""Keeps the supervisor's view of the pods in one scope current: list, then watch.

The watch starts at the list's resourceVersion, so no change between the two is missed. A watch
that the server ends (timeoutSeconds, restarts) resumes from the last resourceVersion seen
(bookmarks advance it without events). `410 Gone` means that version was compacted away: the
only correct recovery is a new list, reconciled against what we knew (pods missing from it are
treated as deleted). Failures back off exponentially with jitter.

A DELETED event does not always mean deleted: a pod whose labels stop matching the selector is
reported as DELETED (with its previous object). A deleted pod carries a deletionTimestamp; for
other DELETED events the pod is fetched to tell "gone" from "left the selector".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from collectors.pods.backoff import Backoff
from collectors.pods.client import ApiStatusError, KubeClient
from collectors.pods.metrics import PodMetrics
from collectors.pods.podinfo import PodInfo
from collectors.pods.supervisor import StreamSupervisor
from core.settings import PodCollectorSettings

log = logging.getLogger(__name__)


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): re-list."""


class PodWatcher:
    def __init__(self, client: KubeClient, namespace: str | None, cfg: PodCollectorSettings,
                 supervisor: StreamSupervisor, metrics: PodMetrics) -> None:
        self._client = client
        self.namespace = namespace
        self._cfg = cfg
        self._supervisor = supervisor
        self._metrics = metrics
        self.resource_version = ""
        self.lists = 0

    @property
    def scope(self) -> str:
        return self.namespace or "all namespaces"

    async def run(self) -> None:
        backoff = Backoff(self._cfg.backoff_initial, self._cfg.backoff_max)
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                started, events = loop.time(), await self._watch()
                self._metrics.watch_restarts.labels("closed").inc()
                if events or loop.time() - started > 1.0:
                    backoff.reset()
                    continue
                await asyncio.sleep(backoff.next_delay())  # closes at once without events: do not spin
            except WatchExpired as exc:
                log.info("watch of %s expired (%s); listing again", self.scope, exc)
                self.resource_version = ""
                self._metrics.watch_restarts.labels("expired").inc()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # API away, connection reset, refused, bad JSON: retry, never die
                delay = backoff.next_delay()
                log.warning("watching pods in %s failed (%s: %s); retrying in %.1fs", self.scope,
                            type(exc).__name__, exc, delay)
                self._metrics.watch_restarts.labels("error").inc()
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        items, version = await self._client.list_pods(self.namespace, self._cfg.selector, self._cfg.field_selector)
        self._supervisor.reconcile(self.namespace, [PodInfo.from_json(i) for i in items])
        self.resource_version = version
        self.lists += 1
        log.info("listed %d pods in %s at resourceVersion %s", len(items), self.scope, version)

    async def _watch(self) -> int:
        events = 0
        try:
            stream = self._client.watch_pods(self.namespace, self._cfg.selector, self._cfg.field_selector,
                                             self.resource_version, max(1, int(self._cfg.watch_timeout)))
            async for event in stream:
                await self._apply(event)
                events += 1
        except ApiStatusError as exc:
            if exc.status == 410:
                raise WatchExpired(str(exc)) from None
            raise
        return events

    async def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj: dict[str, Any] = event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 500)
            if code == 410:
                raise WatchExpired(str(obj.get("message", "Gone")))
            raise ApiStatusError(code, str(obj.get("message", obj)))
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind == "BOOKMARK":
            return
        pod = PodInfo.from_json(obj)
        if kind in ("ADDED", "MODIFIED"):
            self._supervisor.upsert(pod)
        elif kind == "DELETED":
            if pod.deleting or not await self._still_exists(pod):
                self._supervisor.remove(pod.uid)
            else:
                self._supervisor.depart(pod.uid)

    async def _still_exists(self, pod: PodInfo) -> bool:
        try:
            current = await self._client.get_pod(pod.namespace, pod.name)
        except Exception as exc:  # cannot tell: treat as deleted (its streams finish within finish_grace)
            log.info("could not fetch pod %s/%s after DELETED: %s", pod.namespace, pod.name, exc)
            return False
        return current is not None and (current.get("metadata") or {}).get("uid") == pod.uid
