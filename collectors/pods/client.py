"""The Kubernetes API client: configuration loading and the three calls the collector makes.

kubernetes-asyncio does configuration (in-cluster service account, kubeconfig file and context,
token refresh, TLS) and the HTTP session. Responses are read raw (`_preload_content=False`):
watch events and logs are streams that must be split by the collector, and pod objects stay JSON.
The log call goes through `call_api` because the generated `read_namespaced_pod_log` has no
`sinceTime`, which resuming needs. Each connection's read buffer is kept small (the library sets
2 MiB for large watch events; we split lines ourselves), so memory stays bounded per stream.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from collectors.pods.lines import LineSplitter
from core.errors import ConfigError, PermanentError, RetriableError
from core.settings import PodCollectorSettings

_CONNECT = aiohttp.ClientTimeout(sock_connect=15)


class ApiStatusError(RetriableError):
    """The API answered with an error status; `status` says which (404: gone, 410: expired)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API answered {status}: {message}")
        self.status = status


class KubeClient:
    """List, watch, get and follow-log calls over one kubernetes-asyncio ApiClient."""

    def __init__(self, api: k8s.ApiClient, read_bytes: int = 64 * 1024) -> None:
        self.api = api
        self.core = k8s.CoreV1Api(api)
        self.read_bytes = read_bytes  # most bytes one socket read of a log response takes

    @classmethod
    async def create(cls, cfg: PodCollectorSettings) -> KubeClient:
        configuration = k8s.Configuration()
        in_cluster = cfg.config_mode == "in-cluster" or (
            cfg.config_mode == "auto" and cfg.kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ)
        try:
            if in_cluster:
                k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                await k8s_config.load_kube_config(
                    config_file=str(cfg.kubeconfig) if cfg.kubeconfig else None, context=cfg.context,
                    client_configuration=configuration, persist_config=False)
        except (k8s_config.ConfigException, OSError) as exc:
            where = ("the in-cluster service account" if in_cluster
                     else f"kubeconfig {cfg.kubeconfig or '~/.kube/config'}")
            raise ConfigError(f"cannot load Kubernetes API configuration from {where}: {exc}; set "
                              "LOGWEAVE_PODS__KUBECONFIG / __CONTEXT or run in a pod with a service account") from exc
        configuration.connection_pool_maxsize = cfg.max_streams + 16  # every follow holds a connection
        api = k8s.ApiClient(configuration)
        session = api.rest_client.pool_manager
        if hasattr(session, "_read_bufsize"):
            session._read_bufsize = cfg.read_bufsize
        return cls(api, cfg.read_bufsize)

    async def close(self) -> None:
        await self.api.close()

    async def list_pods(self, namespace: str | None, label_selector: str,
                        field_selector: str) -> tuple[list[dict[str, Any]], str]:
        """Every pod in scope and the list's resourceVersion (where a watch starts)."""
        kwargs = _selectors(label_selector, field_selector)
        if namespace is None:
            raw = await self.core.list_pod_for_all_namespaces(_preload_content=False, **kwargs)
        else:
            raw = await self.core.list_namespaced_pod(namespace, _preload_content=False, **kwargs)
        doc = await _json(cast(aiohttp.ClientResponse, raw))
        return list(doc.get("items") or []), str((doc.get("metadata") or {}).get("resourceVersion", ""))

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod as it is now, or None if it no longer exists."""
        resp = cast(aiohttp.ClientResponse,
                    await self.core.read_namespaced_pod(name, namespace, _preload_content=False))
        if resp.status == 404:
            resp.release()
            return None
        return await _json(resp)

    async def watch_pods(self, namespace: str | None, label_selector: str, field_selector: str,
                         resource_version: str, timeout_seconds: int) -> AsyncIterator[dict[str, Any]]:
        """Watch events (`{"type", "object"}`) from `resource_version` until the server ends the watch."""
        kwargs = _selectors(label_selector, field_selector)
        kwargs.update(watch=True, resource_version=resource_version, allow_watch_bookmarks=True,
                      timeout_seconds=timeout_seconds, _preload_content=False,
                      _request_timeout=aiohttp.ClientTimeout(sock_connect=15, sock_read=timeout_seconds + 60))
        if namespace is None:
            raw = await self.core.list_pod_for_all_namespaces(**kwargs)
        else:
            raw = await self.core.list_namespaced_pod(namespace, **kwargs)
        resp = cast(aiohttp.ClientResponse, raw)
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
                       previous: bool) -> aiohttp.ClientResponse:
        """A followed log response with timestamps; the caller reads and releases it."""
        query: list[tuple[str, str]] = [("container", container), ("follow", "true"), ("timestamps", "true")]
        if since_time:
            query.append(("sinceTime", since_time))
        if previous:
            query.append(("previous", "true"))
        resp: aiohttp.ClientResponse = await self.api.call_api(
            "/api/v1/namespaces/{namespace}/pods/{name}/log", "GET",
            path_params={"namespace": namespace, "name": pod}, query_params=query,
            header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"],
            _preload_content=False, _request_timeout=_CONNECT)
        await _check(resp)
        _bound_socket_reads(resp, self.read_bytes)
        return resp


def _bound_socket_reads(resp: aiohttp.ClientResponse, size: int) -> None:
    """Make the response's transport take at most `size` bytes per socket read. asyncio reads up to
    256 KiB at once, and aiohttp pauses a connection only after its buffer passed the high-water mark,
    so with hundreds of followed logs starting at once each one could hold ~400 KiB: most of the
    collector's memory. The kernel keeps what is not read yet, and TCP slows the sender."""
    transport = resp.connection.transport if resp.connection is not None else None
    if transport is not None and hasattr(transport, "max_size"):
        transport.max_size = size


def _selectors(label_selector: str, field_selector: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if label_selector:
        out["label_selector"] = label_selector
    if field_selector:
        out["field_selector"] = field_selector
    return out


async def _check(resp: aiohttp.ClientResponse) -> None:
    if 200 <= resp.status < 300:
        return
    try:
        body = await resp.text()
        message = str(json.loads(body).get("message", body))
    except (ValueError, aiohttp.ClientError, AttributeError):
        message = resp.reason or ""
    finally:
        resp.release()
    if resp.status in (401, 403):
        raise PermanentError(f"Kubernetes API refused access ({resp.status}: {message}); grant the service "
                             "account get/list/watch on pods and get on pods/log (deploy/k8s/pod-collector)")
    raise ApiStatusError(resp.status, message)


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    await _check(resp)
    try:
        doc: dict[str, Any] = json.loads(await resp.read())
        return doc
    finally:
        resp.release()
