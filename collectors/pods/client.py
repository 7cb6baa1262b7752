"""The Kubernetes API client: the four calls the collector makes, over one aiohttp session.

Configuration and credentials come from collectors/pods/apiconfig.py (in-cluster service account or
kubeconfig); a generated client library would cost more memory than the collector's own work (~36 MiB
for kubernetes-asyncio's import alone) for four paths. Responses are read raw: watch events and logs
are streams that the collector splits itself, and pod objects stay JSON. Each connection's read buffer
is kept small (`read_bufsize`), so memory stays bounded per stream. A 401 makes the credentials
refresh (a rotated service-account token, an expired exec credential) and the request is sent once more.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from collectors.pods import apiconfig
from collectors.pods.credentials import CredentialError
from collectors.pods.lines import LineSplitter
from collectors.pods.polled_log import PolledLog, open_polled_log
from core.errors import PermanentError, RetriableError
from core.settings import PodCollectorSettings

_CONNECT = aiohttp.ClientTimeout(total=None, sock_connect=15)  # a followed log has no end
_CALL = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=120)  # list and get
LogResponse = aiohttp.ClientResponse | PolledLog  # a followed log: read through aiohttp, or polled at ticks


class ApiStatusError(RetriableError):
    """The API answered with an error status; `status` says which (404: gone, 410: expired)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API answered {status}: {message}")
        self.status = status


class KubeClient:
    """List, watch, get and follow-log calls to one API server."""

    def __init__(self, config: apiconfig.ApiConfig, max_connections: int, read_bytes: int = 64 * 1024,
                 max_opening: int = 32) -> None:
        self.config = config
        self.read_bytes = read_bytes  # most bytes one socket read of a log response takes
        self._opening = asyncio.Semaphore(max_opening)  # polled follows connecting at once (`pods.max_opening`)
        connector = aiohttp.TCPConnector(limit=max_connections, ssl=config.ssl)
        # aiohttp pauses a connection once it buffers twice its read_bufsize: a quarter of a socket read
        # pauses it after each read the stream has not taken yet, so a stream holds at most about 1.5
        # socket reads, while each wake-up of the stream still takes a whole socket read
        self.session = aiohttp.ClientSession(connector=connector, read_bufsize=max(1024, read_bytes // 4),
                                             auto_decompress=False)
        self._extra: dict[str, Any] = {}
        if config.tls_server_name:
            self._extra["server_hostname"] = config.tls_server_name
        if config.proxy:
            self._extra["proxy"] = config.proxy

    @classmethod
    async def create(cls, cfg: PodCollectorSettings) -> KubeClient:
        config, _ = apiconfig.load(cfg.kubeconfig, cfg.context, cfg.config_mode)
        return cls(config, cfg.max_streams + 16, cfg.read_bufsize, cfg.max_opening)  # a connection per follow

    async def close(self) -> None:
        await self.session.close()

    async def _credential_headers(self) -> dict[str, str]:
        try:
            return await self.config.credentials.headers()
        except CredentialError as exc:
            raise PermanentError(f"Kubernetes API credentials: {exc}") from exc

    async def _get(self, path: str, params: Mapping[str, str] | list[tuple[str, str]],
                   timeout: aiohttp.ClientTimeout, accept: str = "application/json") -> aiohttp.ClientResponse:
        """A GET with fresh credentials; after a 401 the credentials are refreshed and it is sent once more."""
        url = self.config.server + path
        for attempt in (0, 1):
            headers = {"Accept": accept, **await self._credential_headers()}
            resp = await self.session.get(url, params=params, headers=headers, timeout=timeout, **self._extra)
            if resp.status == 401 and attempt == 0 and self.config.credentials.invalidate():
                resp.release()
                continue
            return resp
        raise AssertionError("unreachable")

    async def list_pods(self, namespace: str | None, label_selector: str,
                        field_selector: str) -> tuple[list[dict[str, Any]], str]:
        """Every pod in scope and the list's resourceVersion (where a watch starts)."""
        params = _selectors(label_selector, field_selector)
        doc = await _json(await self._get(_pods_path(namespace), params, _CALL))
        return list(doc.get("items") or []), str((doc.get("metadata") or {}).get("resourceVersion", ""))

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod as it is now, or None if it no longer exists."""
        resp = await self._get(f"/api/v1/namespaces/{_segment(namespace)}/pods/{_segment(name)}", {}, _CALL)
        if resp.status == 404:
            resp.release()
            return None
        return await _json(resp)

    async def watch_pods(self, namespace: str | None, label_selector: str, field_selector: str,
                         resource_version: str, timeout_seconds: int) -> AsyncIterator[dict[str, Any]]:
        """Watch events (`{"type", "object"}`) from `resource_version` until the server ends the watch."""
        params = _selectors(label_selector, field_selector)
        params.update(watch="true", resourceVersion=resource_version, allowWatchBookmarks="true",
                      timeoutSeconds=str(timeout_seconds))
        resp = await self._get(_pods_path(namespace), params,
                               aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=timeout_seconds + 60))
        await _check(resp)
        splitter = LineSplitter(64 * 1024 * 1024)
        try:
            async for data in resp.content.iter_any():
                for line, _ in splitter.feed(data):
                    if line.strip():
                        yield json.loads(line)
        finally:
            resp.release()

    async def open_log(self, namespace: str, pod: str, container: str, since_time: str | None,
                       previous: bool, poll_interval: float | None = None) -> LogResponse:
        """A followed log response with timestamps; the caller reads and closes it. With `poll_interval`
        (and no proxy) it is read at the ticks of that interval by one poll over every followed log
        (polled_log.py), else through aiohttp. A polled follow's connection and TLS handshake wait for one
        of `max_opening` slots (a node's streams all open together at a start; polled_log.open_polled_log);
        aiohttp sets up its connections inside the request, together with the wait for the head."""
        query: list[tuple[str, str]] = [("container", container), ("follow", "true"), ("timestamps", "true")]
        if since_time:
            query.append(("sinceTime", since_time))
        if previous:
            query.append(("previous", "true"))
        path = f"/api/v1/namespaces/{_segment(namespace)}/pods/{_segment(pod)}/log"
        if poll_interval is not None and poll_interval > 0 and not self.config.proxy:
            return await self._open_polled(path, query, poll_interval)
        resp = await self._get(path, query, _CONNECT, accept="text/plain")
        await _check(resp)
        _bound_socket_reads(resp, self.read_bytes)
        return resp

    async def _open_polled(self, path: str, query: list[tuple[str, str]], interval: float) -> PolledLog:
        """`open_log` read at ticks; a 401 refreshes the credentials and asks once more, as `_get` does."""
        for attempt in (0, 1):
            answer = await open_polled_log(self.config.server, self.config.ssl, self.config.tls_server_name, path,
                                           query, await self._credential_headers(), interval, self.read_bytes,
                                           connect_timeout=_CONNECT.sock_connect or 15,
                                           head_timeout=_CALL.sock_read or 120, opening=self._opening)
            if isinstance(answer, PolledLog):
                return answer
            if answer.status == 401 and attempt == 0 and self.config.credentials.invalidate():
                continue
            raise _answer_error(answer.status, answer.reason, answer.body.decode("utf-8", "replace"))
        raise AssertionError("unreachable")


def _pods_path(namespace: str | None) -> str:
    return "/api/v1/pods" if namespace is None else f"/api/v1/namespaces/{_segment(namespace)}/pods"


def _segment(name: str) -> str:
    """A path segment: Kubernetes names are DNS labels; anything else would change the path, so refuse it."""
    if not name or "/" in name or name in (".", "..") or any(c in name for c in "?#%"):
        raise ApiStatusError(400, f"not a valid object name: {name!r}")
    return name


def _bound_socket_reads(resp: aiohttp.ClientResponse, size: int) -> None:
    """Make the response's transport take at most `size` bytes per socket read. asyncio reads up to
    256 KiB at once, and aiohttp pauses a connection only after its buffer passed the high-water mark,
    so with hundreds of followed logs starting at once each one could hold ~400 KiB: most of the
    collector's memory. The kernel keeps what is not read yet, and TCP slows the sender."""
    transport = resp.connection.transport if resp.connection is not None else None
    if transport is not None and hasattr(transport, "max_size"):
        transport.max_size = size


def _selectors(label_selector: str, field_selector: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if label_selector:
        out["labelSelector"] = label_selector
    if field_selector:
        out["fieldSelector"] = field_selector
    return out


async def _check(resp: aiohttp.ClientResponse) -> None:
    if 200 <= resp.status < 300:
        return
    try:
        body: str | None = await resp.text()
    except (ValueError, aiohttp.ClientError):
        body = None
    finally:
        resp.release()
    raise _answer_error(resp.status, resp.reason or "", body)


def _answer_error(status: int, reason: str, body: str | None) -> Exception:
    """The error an error status of the API server is: its Status message, else the body or the reason."""
    try:
        message = str(json.loads(body).get("message", body)) if body is not None else reason
    except (ValueError, AttributeError):
        message = reason
    if status in (401, 403):
        return PermanentError(f"Kubernetes API refused access ({status}: {message}); grant the service "
                              "account get/list/watch on pods and get on pods/log (deploy/k8s/pod-collector)")
    return ApiStatusError(status, message)


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    await _check(resp)
    try:
        doc: dict[str, Any] = json.loads(await resp.read())
        return doc
    finally:
        resp.release()
