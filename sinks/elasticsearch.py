"""ElasticsearchSink: bulk writes into daily indices, `_id` = line id; also speaks OpenSearch.

`mode: elasticsearch` uses the official async `elasticsearch` client; `mode: opensearch` uses
opensearch-py, because the official client's compatibility headers are refused by OpenSearch.
Each bulk item is judged alone: 429 and 5xx items are retried alone, 409 means already written,
other 4xx (mapping conflicts) are dead-lettered with the server's reason. `_id` is the line's stable
identity, so retries and replays overwrite instead of duplicating.

Transport security (docs/security.md): a CA file, or a pinned certificate fingerprint; a client
certificate (mTLS); basic auth or an API key (never both); and for Amazon OpenSearch Service, AWS
SigV4 signing of every request through opensearch-py's own signer.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from core.errors import PermanentError, RetriableError
from core.redact import mask_text
from core.settings import ElasticsearchSinkSettings, Settings
from sinks.base import ItemFailure, Sink, SinkBatch, WriteResult

KEYWORD = {"type": "keyword", "ignore_above": 1024}


def index_template(prefix: str) -> dict[str, Any]:
    """Mappings for time, trace id, level, service and Kubernetes fields; the rest stays dynamic.

    The event time is mapped as `logweave.time_ns` (UTC nanoseconds, normalized by the parser);
    the application's own time field is left to dynamic mapping, since its format varies by app and
    a strict date mapping would reject whole streams.
    """
    source = {name: KEYWORD for name in ("kind", "node", "namespace", "pod", "pod_uid", "container", "path")}
    return {
        "index_patterns": [f"{prefix}-*"],
        "template": {"mappings": {"properties": {
            "traceId": KEYWORD, "level": KEYWORD, "service": KEYWORD,
            "logweave": {"properties": {"time_ns": {"type": "long"}, "trace": KEYWORD, "lid": KEYWORD,
                                        "level": KEYWORD, "service": KEYWORD,
                                        "sid": KEYWORD, "pos": {"type": "long"}, "stream": KEYWORD,
                                        "source": {"properties": source}}},
        }}},
    }


def index_name(settings: ElasticsearchSinkSettings, time_ns: int) -> str:
    # integer seconds: a float would round 23:59:59.9999999 up into the next day's index
    day = datetime.fromtimestamp(time_ns // 1_000_000_000, UTC).strftime(settings.index_date_format)
    return f"{settings.index_prefix}-{day}"


# strftime fields that change at most once a UTC day: a format of only these names the same index for
# a whole day, so its names are kept per day; any other field (hours, minutes...) keeps them per second
_DAILY_FIELDS = set("YmdyjUWaAbBGVuw%")
_MAX_NAMES = 4096


class BulkActions:
    """Each line's bulk action line, `{"index":{"_index":...,"_id":...}}`: byte for byte what orjson makes
    of that dict, with the index name formatted once per day (per second for a format with finer fields)
    instead of once per line, which cost more than the rest of the bulk body."""

    def __init__(self, settings: ElasticsearchSinkSettings) -> None:
        self.settings = settings
        fields = set(re.findall(r"%(.)", settings.index_date_format))
        self.period_ns = 86_400 * 1_000_000_000 if fields <= _DAILY_FIELDS else 1_000_000_000
        self._heads: dict[int, bytes] = {}

    def action(self, time_ns: int, line_id: str) -> bytes:
        period = time_ns // self.period_ns
        head = self._heads.get(period)
        if head is None:
            if len(self._heads) >= _MAX_NAMES:
                self._heads.clear()
            head = self._heads[period] = (b'{"index":{"_index":' + orjson.dumps(index_name(self.settings, time_ns))
                                          + b',"_id":')
        return head + orjson.dumps(line_id) + b"}}"


def classify(batch: SinkBatch, items: list[dict[str, Any]]) -> WriteResult:
    """Per-item outcome of a bulk response, in request order."""
    result = WriteResult()
    for line, item in zip(batch.lines, items, strict=True):
        outcome = next(iter(item.values()))
        status = int(outcome.get("status", 500))
        if status < 300 or status == 409:
            continue
        error = outcome.get("error", {})
        if isinstance(error, dict):
            detail = f"{status} {error.get('type', '')}: {error.get('reason', error)}"
        else:
            detail = f"{status} {error}"
        if status == 429 or status >= 500:
            result.retry.append(ItemFailure(line, "index_retry", detail))
        else:
            result.permanent.append(ItemFailure(line, "index_rejected", detail))
    return result


class ElasticsearchSink(Sink):
    """Writes lines to Elasticsearch (or OpenSearch) with the bulk API."""

    name = "elasticsearch"

    def __init__(self, settings: ElasticsearchSinkSettings, limits: tuple[int, int, float]) -> None:
        self.settings = settings
        self._limits = limits
        self._client: Any = None
        self._actions = BulkActions(settings)

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchSink:
        s = settings.sinks
        return cls(s.elasticsearch, (s.batch_size, s.batch_bytes, s.batch_period))

    def batch_limits(self) -> tuple[int, int, float]:
        return self._limits

    def _client_options(self) -> dict[str, Any]:
        s = self.settings
        options: dict[str, Any] = {"verify_certs": s.verify_certs, "request_timeout": 30}
        if s.ca_file:
            options["ca_certs"] = str(s.ca_file)
        if s.ssl_assert_fingerprint:
            pin = s.ssl_assert_fingerprint.replace(":", "")
            # opensearch-py hands the value to aiohttp as is, which wants the 32-byte digest, not hex
            options["ssl_assert_fingerprint"] = pin if s.mode == "elasticsearch" else bytes.fromhex(pin)
        if s.client_cert_file and s.client_key_file:
            options["client_cert"], options["client_key"] = str(s.client_cert_file), str(s.client_key_file)
        password = s.password.get_secret_value() if s.password else ""
        if s.mode == "elasticsearch":
            if s.api_key:
                options["api_key"] = s.api_key.get_secret_value()
            if s.username:
                options["basic_auth"] = (s.username, password)
        else:
            if s.username:
                options["http_auth"] = (s.username, password)
            if s.api_key:
                options["headers"] = {"Authorization": f"ApiKey {s.api_key.get_secret_value()}"}
            if s.aws_sigv4:
                from opensearchpy import AsyncHttpConnection, AWSV4SignerAsyncAuth

                options["http_auth"] = AWSV4SignerAsyncAuth(aws_credentials(s), s.aws_region or "", s.aws_service)
                options["connection_class"] = AsyncHttpConnection  # the connection that calls a signer per request
        return options

    def make_client(self) -> Any:
        if self.settings.mode == "elasticsearch":
            from elasticsearch import AsyncElasticsearch

            return AsyncElasticsearch(self.settings.url, **self._client_options())
        from opensearchpy import AsyncOpenSearch

        return AsyncOpenSearch(hosts=[self.settings.url], **self._client_options())

    async def start(self) -> None:
        self._client = self.make_client()
        template = index_template(self.settings.index_prefix)
        name = f"{self.settings.index_prefix}-logs"
        try:
            if self.settings.mode == "elasticsearch":
                await self._client.indices.put_index_template(name=name, **template)
            else:
                await self._client.indices.put_index_template(name=name, body=template)
        except Exception as exc:
            await self.stop()
            raise _as_retriable(exc) from exc

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        parts: list[bytes] = []
        action = self._actions.action
        for line in batch.lines:
            parts.append(action(line.time_ns, line.line_id))
            parts.append(line.document)
        body = b"\n".join(parts) + b"\n"
        try:
            response = await self._client.bulk(body=body)
        except Exception as exc:
            raise _as_retriable(exc) from exc
        data = response.body if hasattr(response, "body") else response
        if not data.get("errors"):
            return WriteResult()
        return classify(batch, data["items"])


def aws_credentials(settings: ElasticsearchSinkSettings) -> Any:
    """Credentials for SigV4: from the settings, else botocore's chain (environment, web identity, IMDS)."""
    from botocore.credentials import Credentials
    from botocore.session import Session

    if settings.aws_access_key_id and settings.aws_secret_access_key:
        token = settings.aws_session_token.get_secret_value() if settings.aws_session_token else None
        return Credentials(settings.aws_access_key_id, settings.aws_secret_access_key.get_secret_value(), token)
    found = Session().get_credentials()
    if found is None:
        raise PermanentError("sinks.elasticsearch.aws_sigv4 is on but no AWS credentials were found: set "
                             "aws_access_key_id/aws_secret_access_key, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                             "or a web identity (IRSA) for the pod")
    return found


def _as_retriable(exc: Exception) -> Exception:
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "meta", None), "status", None)
    return RetriableError(mask_text(f"search server request failed ({status or type(exc).__name__}): {exc}"))
