"""A Kubernetes API test server speaking the real paths and wire formats, controllable from tests.

No real API server runs on CI machines (docs/testing.md), so this aiohttp server implements what
the pod collector uses, the way kube-apiserver does it:
- `GET /api/v1/pods`, `/api/v1/namespaces/{ns}/pods`: PodList with `metadata.resourceVersion`,
  `labelSelector` and `fieldSelector` (metadata.name, metadata.namespace, spec.nodeName).
- the same with `watch=true|True`: JSON lines `{"type", "object"}` from `resourceVersion` on; like
  the watch cache, a pod whose labels stop matching arrives as DELETED (previous object), one that
  starts matching as ADDED; a compacted version gets HTTP 200 and an ERROR event with a 410 Status;
  `allowWatchBookmarks` and `timeoutSeconds` are honoured.
- `GET /api/v1/namespaces/{ns}/pods/{name}`: the pod, or a 404 Status.
- `GET /api/v1/namespaces/{ns}/pods/{name}/log`: `container`, `follow`, `timestamps`, `sinceTime`,
  `previous`; lines `<RFC3339Nano> <content>\\n` written in chunks that may split lines.
Bearer-token auth is checked (401 otherwise). `write_kubeconfig` points clients at it.
Run as a process for benchmarks: `python -m tests.support.kube_api --pods 200 --lines 2500`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import copy
import random
import secrets
import ssl
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from collectors.pods.selectors import LabelSelector
from collectors.pods.timestamps import TimestampParser, format_rfc3339nano


@dataclass
class LogInstance:
    """The log of one container instance."""

    stamps: list[int] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)  # rendered `<ts> <content>\n`
    ended: bool = False
    cuts: dict[int, str] = field(default_factory=dict)  # line index -> "eof" | "abort": followers cut there
    sent: int = 0  # lines written to a follower's response so far (the most any follower got)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        old, self.wake = self.wake, asyncio.Event()
        old.set()


@dataclass
class FakeContainer:
    name: str
    init: bool = False
    restart_count: int = 0
    state: str = "running"  # waiting | running | terminated
    instances: list[LogInstance] = field(default_factory=lambda: [LogInstance()])

    @property
    def current(self) -> LogInstance:
        return self.instances[self.restart_count]

    def status(self) -> dict[str, Any]:
        now = "2026-01-01T00:00:00Z"
        state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}} if self.state == "waiting" else (
            {"running": {"startedAt": now}} if self.state == "running"
            else {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}})
        return {"name": self.name, "restartCount": self.restart_count, "state": state,
                "ready": self.state == "running", "image": "busybox", "imageID": "", "started": self.state == "running"}


@dataclass
class FakePod:
    namespace: str
    name: str
    labels: dict[str, str]
    node: str
    containers: dict[str, FakeContainer]
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    deletion_timestamp: str | None = None
    resource_version: int = 0

    def to_json(self) -> dict[str, Any]:
        regular = [c for c in self.containers.values() if not c.init]
        init = [c for c in self.containers.values() if c.init]
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "uid": self.uid,
                                "resourceVersion": str(self.resource_version), "labels": dict(self.labels),
                                "creationTimestamp": "2026-01-01T00:00:00Z"}
        if self.deletion_timestamp:
            meta["deletionTimestamp"] = self.deletion_timestamp
        return {"kind": "Pod", "apiVersion": "v1", "metadata": meta,
                "spec": {"nodeName": self.node, "containers": [{"name": c.name, "image": "busybox"} for c in regular],
                         "initContainers": [{"name": c.name, "image": "busybox"} for c in init]},
                "status": {"phase": "Running", "containerStatuses": [c.status() for c in regular],
                           "initContainerStatuses": [c.status() for c in init]}}


@dataclass(eq=False)
class _Watch:
    namespace: str | None
    selector: LabelSelector
    fields: dict[str, str]
    bookmarks: bool
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)


class FakeKubeApi:
    """The cluster state and the HTTP server in front of it."""

    def __init__(self, max_piece: int | None = 97, seed: int = 7) -> None:
        self.token = secrets.token_hex(8)
        self.pods: dict[tuple[str, str], FakePod] = {}
        self.rv = 1
        self.min_rv = 0  # watches from a version below this get 410 Gone
        self.history: list[tuple[int, dict[str, Any] | None, dict[str, Any] | None]] = []
        self._watches: set[_Watch] = set()
        self._last_ts = 0
        self.max_piece = max_piece  # log writes are cut into random pieces up to this size (None: whole)
        self._random = random.Random(seed)
        self.requests: dict[str, int] = {"list": 0, "watch": 0, "get": 0, "log": 0}
        self.followers: dict[tuple[str, str], int] = {}  # (pod name, container) -> open log responses
        self.watched_from: list[int] = []  # resourceVersion of every watch request
        self.removal_delay = 1.0  # seconds a deleted pod stays (terminating) before it is gone
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port = 0
        self._scheme = "http"

    # -- server -----------------------------------------------------------------------------------
    async def start(self, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> FakeKubeApi:
        """Listen on 127.0.0.1 (`ssl_context`: over TLS, `url` then https)."""
        app = web.Application()
        app.router.add_get("/api/v1/pods", self._pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self._pod)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self._log)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=ssl_context)
        self._scheme = "https" if ssl_context is not None else "http"
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._closing = True
        self.close_watches()
        for pod in self.pods.values():
            for c in pod.containers.values():
                for inst in c.instances:
                    inst.notify()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path, namespace: str = "demo-system", ca_pem: bytes | None = None) -> Path:
        """A kubeconfig reaching this server with its token (`ca_pem`: the CA its TLS certificate is trusted by)."""
        cluster: dict[str, str] = {"server": self.url}
        if ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
               "clusters": [{"name": "test", "cluster": cluster}],
               "users": [{"name": "test", "user": {"token": self.token}}],
               "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}]}
        path.write_text(yaml.safe_dump(doc))
        return path

    # -- control from tests -------------------------------------------------------------------------
    def add_pod(self, name: str, labels: dict[str, str] | None = None, containers: tuple[str, ...] = ("app",),
                namespace: str = "demo-system", node: str = "node-1", init_containers: tuple[str, ...] = (),
                running: bool = True) -> FakePod:
        if (namespace, name) in self.pods:
            raise ValueError(f'pods "{name}" already exists')  # the API server answers 409 AlreadyExists
        state = "running" if running else "waiting"
        conts = {n: FakeContainer(n, init=True, state="terminated" if running else "waiting") for n in init_containers}
        conts.update({n: FakeContainer(n, state=state) for n in containers})
        pod = FakePod(namespace, name, dict(labels if labels is not None else {"app": "snowplow"}), node, conts)
        self.pods[(namespace, name)] = pod
        self._changed(None, pod)
        return pod

    def start_containers(self, pod: FakePod) -> None:
        old = self._snapshot(pod)
        for c in pod.containers.values():
            c.state = "terminated" if c.init else "running"
        self._changed(old, pod)

    def relabel(self, pod: FakePod, labels: dict[str, str]) -> None:
        old = self._snapshot(pod)
        pod.labels = dict(labels)
        self._changed(old, pod)

    def restart(self, pod: FakePod, container: str) -> None:
        """The container exits and runs again: a new instance with an empty log."""
        old = self._snapshot(pod)
        c = pod.containers[container]
        c.current.ended = True
        c.current.notify()
        c.instances.append(LogInstance())
        c.restart_count += 1
        c.state = "running"
        self._changed(old, pod)

    def terminate(self, pod: FakePod, container: str) -> None:
        old = self._snapshot(pod)
        c = pod.containers[container]
        c.state = "terminated"
        c.current.ended = True
        c.current.notify()
        self._changed(old, pod)

    def delete(self, pod: FakePod, removal_delay: float | None = None) -> None:
        """Graceful deletion: MODIFIED with deletionTimestamp, containers end; after `removal_delay`
        (the kubelet confirming, default `self.removal_delay`) the object goes: DELETED, logs 404."""
        old = self._snapshot(pod)
        pod.deletion_timestamp = format_rfc3339nano(time.time_ns() // 10**9 * 10**9)
        self._changed(old, pod)
        for c in pod.containers.values():
            self.terminate(pod, c.name)
        delay = self.removal_delay if removal_delay is None else removal_delay
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._remove, pod)
        else:
            self._remove(pod)

    def _remove(self, pod: FakePod) -> None:
        if self.pods.get((pod.namespace, pod.name)) is pod:
            del self.pods[(pod.namespace, pod.name)]
            self._emit(self._snapshot(pod), None)

    def log(self, pod: FakePod, container: str, lines: list[str] | list[bytes],
            stamps: list[int] | None = None) -> list[int]:
        """Append lines to the container's current log; returns their timestamps (ns)."""
        inst = pod.containers[container].current
        out = []
        for i, line in enumerate(lines):
            data = line.encode() if isinstance(line, str) else line
            ts = stamps[i] if stamps is not None else max(time.time_ns(), self._last_ts + 1)
            self._last_ts = max(self._last_ts, ts)
            inst.stamps.append(ts)
            inst.lines.append(format_rfc3339nano(ts).encode() + b" " + data + b"\n")
            out.append(ts)
        inst.notify()
        return out

    def cut_next(self, pod: FakePod, container: str, mode: str = "eof") -> None:
        """Followers cut their response in the middle of the next line appended ("eof" or "abort")."""
        inst = pod.containers[container].current
        inst.cuts[len(inst.lines)] = mode

    def close_watches(self) -> None:
        for w in list(self._watches):
            w.queue.put_nowait(None)

    def expire_watches(self) -> None:
        """Compact: every version seen so far is too old (410 Gone), and open watches end."""
        self.rv += 1
        self.min_rv = self.rv
        self.history.clear()
        self.close_watches()

    def bookmark(self) -> None:
        """Advance the version (other resources changed) and tell bookmark-enabled watches."""
        self.rv += 1
        for w in self._watches:
            if w.bookmarks:
                w.queue.put_nowait({"type": "BOOKMARK", "object": {
                    "kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.rv)}}})

    @property
    def open_watches(self) -> int:
        return len(self._watches)

    # -- events -------------------------------------------------------------------------------------
    def _snapshot(self, pod: FakePod) -> dict[str, Any]:
        return pod.to_json()

    def _changed(self, old: dict[str, Any] | None, pod: FakePod) -> None:
        self.rv += 1
        pod.resource_version = self.rv
        self._emit(old, pod.to_json(), bump=False)

    def _emit(self, old: dict[str, Any] | None, new: dict[str, Any] | None, bump: bool = True) -> None:
        if bump:
            self.rv += 1
        self.history.append((self.rv, old, new))
        for w in self._watches:
            event = self._translate(w, self.rv, old, new)
            if event is not None:
                w.queue.put_nowait(event)

    def _translate(self, w: _Watch, rv: int, old: dict[str, Any] | None,
                   new: dict[str, Any] | None) -> dict[str, Any] | None:
        was = old is not None and self._matches(old, w.namespace, w.selector, w.fields)
        now = new is not None and self._matches(new, w.namespace, w.selector, w.fields)
        if now and was:
            return {"type": "MODIFIED", "object": new}
        if now:
            return {"type": "ADDED", "object": new}
        if was and old is not None:
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(rv)
            return {"type": "DELETED", "object": gone}
        return None

    @staticmethod
    def _matches(obj: dict[str, Any], namespace: str | None, selector: LabelSelector, fields: dict[str, str]) -> bool:
        meta = obj["metadata"]
        if namespace is not None and meta["namespace"] != namespace:
            return False
        values = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
                  "spec.nodeName": obj["spec"]["nodeName"]}
        return selector.matches(meta.get("labels") or {}) and all(values.get(k) == v for k, v in fields.items())

    # -- handlers -----------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _status(401, "Unauthorized", "Unauthorized")
        q = request.query
        namespace = request.match_info.get("ns")
        selector = LabelSelector.parse(q.get("labelSelector", ""))
        fields = dict(p.split("=", 1) for p in q.get("fieldSelector", "").split(",") if "=" in p)
        if q.get("watch", "").lower() in ("true", "1"):
            return await self._watch(request, _Watch(namespace, selector, fields,
                                                     q.get("allowWatchBookmarks", "").lower() == "true"))
        self.requests["list"] += 1
        items = [p.to_json() for p in self.pods.values() if self._matches(p.to_json(), namespace, selector, fields)]
        return web.Response(body=orjson.dumps({"kind": "PodList", "apiVersion": "v1",
                                               "metadata": {"resourceVersion": str(self.rv)}, "items": items}),
                            content_type="application/json")

    async def _watch(self, request: web.Request, w: _Watch) -> web.StreamResponse:
        self.requests["watch"] += 1
        since = int(request.query.get("resourceVersion") or self.rv)
        self.watched_from.append(since)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if since < self.min_rv:
            status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": f"too old resource version: {since} ({self.min_rv})", "reason": "Expired",
                      "code": 410}
            await resp.write(orjson.dumps({"type": "ERROR", "object": status}) + b"\n")
            await resp.write_eof()
            return resp
        for rv, old, new in self.history:  # replay, then live: no await in between, so nothing is missed
            if rv > since:
                event = self._translate(w, rv, old, new)
                if event is not None:
                    w.queue.put_nowait(event)
        self._watches.add(w)
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while not self._closing:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0 or _gone(request):
                    break
                try:
                    event = await asyncio.wait_for(w.queue.get(), min(left, 0.2))
                except TimeoutError:
                    continue
                if event is None:
                    break
                await resp.write(orjson.dumps(event) + b"\n")
        except ConnectionError:
            return resp
        finally:
            self._watches.discard(w)
        await _finish(resp)
        return resp

    async def _pod(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _status(401, "Unauthorized", "Unauthorized")
        self.requests["get"] += 1
        pod = self.pods.get((request.match_info["ns"], request.match_info["name"]))
        if pod is None:
            return _status(404, f'pods "{request.match_info["name"]}" not found', "NotFound")
        return web.Response(body=orjson.dumps(pod.to_json()), content_type="application/json")

    async def _log(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _status(401, "Unauthorized", "Unauthorized")
        self.requests["log"] += 1
        q = request.query
        name = request.match_info["name"]
        pod = self.pods.get((request.match_info["ns"], name))
        if pod is None:
            return _status(404, f'pods "{name}" not found', "NotFound")
        cname = q.get("container") or (next(iter(pod.containers)) if len(pod.containers) == 1 else "")
        if cname not in pod.containers:
            return _status(400, f"a container name must be specified for pod {name}", "BadRequest")
        c = pod.containers[cname]
        previous = q.get("previous", "").lower() == "true"
        if previous:
            if c.restart_count == 0:
                return _status(400, f'previous terminated container "{cname}" in pod "{name}" not found', "BadRequest")
            inst = c.instances[c.restart_count - 1]
        else:
            if c.state == "waiting":
                return _status(400, f'container "{cname}" in pod "{name}" is waiting to start', "BadRequest")
            inst = c.current
        follow = q.get("follow", "").lower() == "true" and not previous
        stamps = q.get("timestamps", "").lower() == "true"
        since = TimestampParser().parse(q["sinceTime"].encode()) if q.get("sinceTime") else 0
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        key = (name, cname)
        self.followers[key] = self.followers.get(key, 0) + 1
        try:
            await self._send_log(request, resp, inst, bisect.bisect_left(inst.stamps, since), follow, stamps)
        except ConnectionError:
            pass  # the client went away
        finally:
            self.followers[key] -= 1
        return resp

    async def _send_log(self, request: web.Request, resp: web.StreamResponse, inst: LogInstance, index: int,
                        follow: bool, stamps: bool) -> None:
        while not self._closing:
            wake = inst.wake
            while index < len(inst.lines):
                end = min(len(inst.lines), index + 512)
                cut = min((i for i in inst.cuts if index <= i < end), default=None)
                batch = inst.lines[index:cut if cut is not None else end]
                data = b"".join(batch if stamps else [b.split(b" ", 1)[1] for b in batch])
                if cut is not None:
                    line = inst.lines[cut]
                    data += line[: len(line) // 2]
                await self._write(resp, data)
                inst.sent = max(inst.sent, index + len(batch))
                if cut is not None:
                    mode = inst.cuts.pop(cut)
                    if mode == "abort" and request.transport is not None:
                        request.transport.close()
                        return
                    await _finish(resp)
                    return
                index = end
            if not follow or inst.ended:
                break
            while not wake.is_set():  # aiohttp does not cancel handlers on disconnect: poll for it
                if _gone(request):
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 0.2)
        await _finish(resp)

    async def _write(self, resp: web.StreamResponse, data: bytes) -> None:
        if self.max_piece is None:
            await resp.write(data)
            return
        start = 0
        while start < len(data):
            size = self._random.randint(1, self.max_piece)
            await resp.write(data[start:start + size])
            start += size


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


async def _finish(resp: web.StreamResponse) -> None:
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()


def _status(code: int, message: str, reason: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


def prefill(api: FakeKubeApi, pods: int, lines: int, line_bytes: int, containers: int = 1) -> int:
    """Pods `bench-<i>` each with `lines` JSON log lines of about `line_bytes` bytes per container."""
    pad = "x" * max(0, line_bytes - 120)
    base = time.time_ns() - lines * 1000
    total = 0
    for i in range(pods):
        names = tuple(f"c{j}" for j in range(containers))
        pod = api.add_pod(f"bench-{i}", {"app": "snowplow", "idx": str(i)}, containers=names)
        for name in names:
            body = [f'{{"time":"2026-01-01T00:00:00Z","traceId":"t{i}-{n // 10}","level":"info","n":{n},"p":"{pad}"}}'
                    for n in range(lines)]
            api.log(pod, name, body, stamps=[base + n * 1000 + (n % 3) for n in range(lines)])
            total += lines
    return total


async def _serve(args: argparse.Namespace) -> None:
    api = await FakeKubeApi(max_piece=args.max_piece or None).start(args.port)
    total = prefill(api, args.pods, args.lines, args.line_bytes, args.containers)
    if args.kubeconfig:
        api.write_kubeconfig(Path(args.kubeconfig))
    print(f"ready {api.url} lines={total}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Kubernetes API test server with prefilled pods")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--containers", type=int, default=1)
    parser.add_argument("--lines", type=int, default=2500)
    parser.add_argument("--line-bytes", type=int, default=250)
    parser.add_argument("--max-piece", type=int, default=0, help="split log writes into pieces up to this size")
    parser.add_argument("--kubeconfig", default="")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
