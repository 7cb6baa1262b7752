"""Decides which container instances are streamed, and starts and stops their streamers.

Pod events say what exists; this module keeps one streamer per started container instance
(every container of multi-container pods, init containers when enabled), a new one when the
restart count changes, and none for an instance already read to its end. Pods leaving the selector
stop their streams at once; deleted pods' streams read what is left and stop (or are stopped after
`finish_grace`). A semaphore bounds the streams open at once; resume cursors outlive streamers, so
a pod that comes back into scope continues its position space instead of re-reading its log. With a
position store, cursors start from the positions a previous run had acknowledged, instances it read
to their end are not read again, and a deleted pod's positions are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time

from collectors.multiline import rule_for
from collectors.pods.batching import PendingBudget
from collectors.pods.client import KubeClient
from collectors.pods.metrics import PodMetrics
from collectors.pods.podinfo import ContainerInstance, PodInfo, stream_id
from collectors.pods.position_store import PositionStore
from collectors.pods.positions import StreamCursor
from collectors.pods.selectors import LabelSelector
from collectors.pods.streamer import InstanceStatus, LogStreamer, StreamTarget
from core.rule_settings import MultilineRule, MultilineSettings
from core.settings import PodCollectorSettings
from kafka_io.partition_batcher import ChunkSink

log = logging.getLogger(__name__)


class StreamSupervisor:
    def __init__(self, client: KubeClient, sink: ChunkSink, cfg: PodCollectorSettings, metrics: PodMetrics,
                 positions: PositionStore | None = None, multiline: MultilineSettings | None = None) -> None:
        self._client = client
        self._multiline = multiline.rules if multiline is not None else []
        self._sink = sink
        self._cfg = cfg
        self._metrics = metrics
        self._selector = LabelSelector.parse(cfg.selector)
        self._slots = asyncio.Semaphore(cfg.max_streams)
        self._budget = PendingBudget(cfg.pending_bytes)
        self.pods: dict[str, PodInfo] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}  # by stream id
        self.streamers: dict[str, LogStreamer] = {}
        self._uid_of: dict[str, str] = {}  # stream id -> pod uid
        self.cursors: dict[str, StreamCursor] = {}
        self.finished: set[str] = set()  # instances read to their end
        self._departed: dict[str, int] = {}  # uid -> time.time_ns() it left the selector
        self._reentered: dict[str, int] = {}  # uid -> time.time_ns() it came back
        self._stopping = False
        self._positions = positions
        if positions is not None:
            self.finished |= {sid for sid, saved in positions.saved.items() if saved.done}

    # -- pod events ---------------------------------------------------------------------------------
    def upsert(self, pod: PodInfo) -> None:
        """A pod in scope was added or changed: start streams for newly started instances."""
        if not self._selector.matches(pod.labels):
            self.depart(pod.uid)
            return
        if pod.uid in self._departed:
            del self._departed[pod.uid]
            now = self._reentered[pod.uid] = time.time_ns()
            for sid, cursor in self.cursors.items():
                if self._uid_of.get(sid) == pod.uid:
                    cursor.skip_before_ns = now  # what it logged while out of scope is not collected
        self.pods[pod.uid] = pod
        for inst in pod.containers:
            if inst.init and not self._cfg.include_init_containers:
                continue
            sid = stream_id(pod.uid, inst.name, inst.restart)
            if (inst.running or inst.terminated) and sid not in self.tasks and sid not in self.finished:
                self._start(pod, inst, sid)
        self._metrics.pods_watched.set(len(self.pods))

    def depart(self, uid: str) -> None:
        """The pod still exists but left the selector: stop its streams now."""
        if self.pods.pop(uid, None) is None:
            return
        self._departed[uid] = time.time_ns()
        self._cancel_streams(uid)
        self._metrics.pods_watched.set(len(self.pods))

    def remove(self, uid: str) -> None:
        """The pod was deleted: its streams read what is left, within `finish_grace`."""
        if self.pods.pop(uid, None) is None:
            self._departed.pop(uid, None)
            return
        self._metrics.pods_watched.set(len(self.pods))
        asyncio.get_running_loop().call_later(self._cfg.finish_grace, self._expire, uid)
        self._forget_if_idle(uid)

    def reconcile(self, namespace: str | None, pods: list[PodInfo]) -> None:
        """A fresh list of one scope: pods missing from it are treated as deleted."""
        present = {p.uid for p in pods}
        if self._positions is not None:
            self._positions.prune(namespace, present)
        for uid, known in list(self.pods.items()):
            if (namespace is None or known.namespace == namespace) and uid not in present:
                self.remove(uid)
        for pod in pods:
            self.upsert(pod)

    async def verify(self, pod: PodInfo, container: str, restart: int) -> InstanceStatus:
        """The instance's status from the pod as the API has it now (not as the watch last said)."""
        if pod.uid not in self.pods:
            return InstanceStatus.DELETED
        doc = await self._client.get_pod(pod.namespace, pod.name)
        fresh = PodInfo.from_json(doc) if doc is not None else None
        if fresh is None or fresh.uid != pod.uid:
            return InstanceStatus.DELETED
        return _status_of(fresh, container, restart)

    def status(self, uid: str, container: str, restart: int) -> InstanceStatus:
        pod = self.pods.get(uid)
        return InstanceStatus.DELETED if pod is None else _status_of(pod, container, restart)

    # -- streams ------------------------------------------------------------------------------------
    def _start(self, pod: PodInfo, inst: ContainerInstance, sid: str) -> None:
        if self._stopping:
            return
        cursor = self.cursors.get(sid)
        if cursor is None:
            saved = self._positions.saved.get(sid) if self._positions is not None else None
            cursor = self.cursors[sid] = StreamCursor(saved.ts_ns, saved.position) if saved else StreamCursor()
            cursor.skip_before_ns = self._reentered.get(pod.uid, 0)
        labels = {k: pod.labels[k] for k in self._cfg.label_keys if k in pod.labels}
        source = {"kind": "pod-api", "namespace": pod.namespace, "pod": pod.name, "pod_uid": pod.uid,
                  "container": inst.name, "restart": inst.restart, "node": pod.node, "labels": labels}
        if pod.annotations:  # `logweave.io/parser` picks the parse stage's parsers (docs/parsing.md)
            source["annotations"] = pod.annotations
        target = StreamTarget(pod.namespace, pod.name, inst.name, sid, source)
        streamer = LogStreamer(target, cursor, self._client, self._sink,
                               lambda: self.status(pod.uid, inst.name, inst.restart),
                               functools.partial(self.verify, pod, inst.name, inst.restart),
                               self._cfg, self._budget, self._metrics,
                               functools.partial(self._positions.acknowledged, namespace=pod.namespace)
                               if self._positions is not None else _ignore,
                               rule_for(self._multiline, source))
        self._uid_of[sid] = pod.uid
        self.streamers[sid] = streamer
        self.tasks[sid] = asyncio.create_task(self._run(streamer, sid, pod.uid), name=f"stream {sid}")

    async def _run(self, streamer: LogStreamer, sid: str, uid: str) -> None:
        target_namespace = streamer.target.namespace
        waiting = True
        self._metrics.streams_waiting.inc()
        if self._slots.locked():
            log.warning("max_streams (%d) reached: %s waits for a slot", self._cfg.max_streams, sid)
        try:
            async with self._slots:
                waiting = False
                self._metrics.streams_waiting.dec()
                self._metrics.streams_open.inc()
                try:
                    await streamer.run()
                finally:
                    self._metrics.streams_open.dec()
            self.finished.add(sid)
            if self._positions is not None:
                self._positions.finished(sid, target_namespace)
        except asyncio.CancelledError:
            pass  # stopped (out of scope, grace over, shutdown): not finished, may resume later
        except Exception:
            log.exception("streamer of %s failed", sid)
        finally:
            if waiting:
                self._metrics.streams_waiting.dec()
            self.tasks.pop(sid, None)
            self.streamers.pop(sid, None)
            self._forget_if_idle(uid)

    def _cancel_streams(self, uid: str) -> None:
        for sid, task in list(self.tasks.items()):
            if self._uid_of.get(sid) == uid:
                task.cancel()

    def _expire(self, uid: str) -> None:
        if uid not in self.pods:
            self._cancel_streams(uid)

    def _forget_if_idle(self, uid: str) -> None:
        """Drop the cursors of a deleted pod once none of its streams runs."""
        if uid in self.pods or uid in self._departed:
            return
        if any(self._uid_of.get(sid) == uid for sid in self.tasks):
            return
        for sid in [s for s, u in self._uid_of.items() if u == uid]:
            self._uid_of.pop(sid, None)
            self.cursors.pop(sid, None)
            self.finished.discard(sid)
            if self._positions is not None:
                self._positions.forget(sid)
        self._reentered.pop(uid, None)

    async def switch_rules(self, rules: list[MultilineRule]) -> None:
        """A new rules version (collectors/live_rules.py): streams started from now on take their rule from
        it, and every running stream switches at its next chunk boundary."""
        self._multiline = rules
        for streamer in self.streamers.values():
            streamer.use_rule(rule_for(rules, streamer.target.source))

    async def watch_recoveries(self, interval: float = 1.0) -> None:
        """Streams that sent nothing since the publisher replaced its producer learn of it here, so
        chunks the broker lost are re-sent even from an idle stream."""
        seen = self._sink.recoveries
        while True:
            await asyncio.sleep(interval)
            if self._sink.recoveries != seen:
                seen = self._sink.recoveries
                for streamer in list(self.streamers.values()):
                    streamer.check_lost()

    async def stop(self, timeout: float = 20.0) -> None:
        """Stop every stream; each publishes the lines it has read before it ends."""
        self._stopping = True
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait(tasks, timeout=timeout)


def _ignore(stream_id: str, ts_ns: int | None, position: int) -> None:
    """No position store: acknowledged positions are not kept."""


def _status_of(pod: PodInfo, container: str, restart: int) -> InstanceStatus:
    inst = pod.instance(container)
    if inst is None:
        return InstanceStatus.GONE
    if inst.restart == restart:
        return InstanceStatus.LIVE if inst.running else InstanceStatus.EXITED
    return InstanceStatus.REPLACED if inst.restart == restart + 1 else InstanceStatus.GONE
