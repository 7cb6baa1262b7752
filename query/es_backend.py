"""Queries over the Elasticsearch/OpenSearch sink's daily indices (`<index_prefix>-*`).

Filters use the metadata the drain adds to every document (`logweave.time_ns`, `logweave.lid`,
`logweave.trace`, the normalized `logweave.level`/`logweave.service`, `logweave.source.*`), mapped
as keyword/long by the sink's index template, so answers match the PostgreSQL backend's for the
same lines. Text search matches all words of `q` in the message field (`msg`, `message` or `log`).
This store keeps no closed-trace summaries: /traces needs the PostgreSQL backend.
"""

from __future__ import annotations

from typing import Any

from core.errors import RetriableError
from core.models import MESSAGE_FIELDS
from core.settings import Settings
from query.backend import Backend, Page, StoredLine
from query.params import Cursor, LogQuery
from sinks.elasticsearch import ElasticsearchSink

META = "logweave"


def stored_line(source: dict[str, Any], reserved_key: str) -> StoredLine:
    meta = source.pop(reserved_key, None) or {}
    src = meta.get("source") or {}
    message = next((source[k] for k in MESSAGE_FIELDS if isinstance(source.get(k), str)), "")
    tags = source.get("tags")
    return StoredLine(int(meta.get("time_ns", 0)) // 1000 * 1000, str(meta.get("lid", "")), str(meta.get("trace", "")),
                      str(meta.get("service", "")), str(meta.get("level", "")), message,
                      str(src.get("namespace", "")), str(src.get("pod", "")), str(src.get("container", "")),
                      str(src.get("node", "")), source,
                      [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [])


def search_body(query: LogQuery, key: str) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [{"range": {f"{key}.time_ns": {"gte": query.from_ns, "lt": query.to_ns}}}]
    for name, field in (("service", "service"), ("level", "level"), ("namespace", "source.namespace"),
                        ("pod", "source.pod")):
        values = getattr(query, name)
        if values:
            filters.append({"terms": {f"{key}.{field}": values}})
    if query.trace_id:
        filters.append({"term": {f"{key}.trace": query.trace_id}})
    boolean: dict[str, Any] = {"filter": filters}
    if query.text:
        boolean["must"] = [{"multi_match": {"query": query.text, "fields": list(MESSAGE_FIELDS), "operator": "and"}}]
    order = "desc" if query.descending else "asc"
    body: dict[str, Any] = {"query": {"bool": boolean}, "size": query.limit + 1,
                            "sort": [{f"{key}.time_ns": order}, {f"{key}.lid": order}]}
    if query.cursor is not None:
        body["search_after"] = [query.cursor.time_ns, query.cursor.line_id]
    elif query.offset:
        body["from"] = query.offset
    return body


class ElasticsearchBackend(Backend):
    name = "elasticsearch"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.key = settings.parse.reserved_key
        self.index = f"{settings.sinks.elasticsearch.index_prefix}-*"
        self._client: Any = None

    async def start(self) -> None:
        es = self.settings.sinks.elasticsearch
        self._client = ElasticsearchSink(es, (1, 1, 1.0)).make_client()

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def _search(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        timeout = f"{int(self.settings.api.statement_timeout * 1000)}ms"
        try:
            reply = await self._client.search(index=self.index, body={**body, "timeout": timeout},
                                              ignore_unavailable=True, allow_no_indices=True)
        except Exception as exc:
            if getattr(exc, "status_code", None) == 404 or getattr(getattr(exc, "meta", None), "status", None) == 404:
                return []
            raise RetriableError(f"search server request failed: {exc}") from exc
        data = reply.body if hasattr(reply, "body") else reply
        hits: list[dict[str, Any]] = data["hits"]["hits"]
        return hits

    async def ready(self) -> bool:
        try:
            return bool(await self._client.ping())
        except Exception:
            return False

    async def search(self, query: LogQuery) -> Page:
        hits = await self._search(search_body(query, self.key))
        more = len(hits) > query.limit
        hits = hits[:query.limit]
        lines = [stored_line(hit["_source"], self.key) for hit in hits]
        cursor = None
        if more:  # the exact sort values (nanoseconds), so no line of the same microsecond is skipped
            time_ns, lid = hits[-1]["sort"]
            cursor = Cursor(int(time_ns), str(lid)).encode()
        return Page(lines, cursor)

    async def trace_lines(self, trace_id: str, limit: int) -> list[StoredLine]:
        body = {"query": {"bool": {"filter": [{"term": {f"{self.key}.trace": trace_id}}]}}, "size": limit,
                "sort": [{f"{self.key}.time_ns": "asc"}, {f"{self.key}.lid": "asc"}]}
        return [stored_line(hit["_source"], self.key) for hit in await self._search(body)]

