"""WebhookSink: posts each batch as NDJSON to an HTTP endpoint, with an idempotency key per batch.

An example Logweave sink plugin (docs/sinks.md). The request:

    POST <url>
    Content-Type: application/x-ndjson
    Idempotency-Key: <topic>-<partition>-<first offset>.<first index>-<last offset>.<last index>
    Authorization: Bearer <token>          (when `token` is set)

    one JSON document per line (each carries its line id under the reserved key's `lid`)

Replies: 2xx means every line was stored, optionally with a JSON body
`{"rejected": [{"index": <line number in the body>, "reason": "...", "detail": "..."}]}` for lines
the receiver refuses for good (the drain dead-letters them). 408, 425, 429 and 5xx, timeouts and
connection errors retry the whole batch with the same key, so a receiver that stored a batch whose
reply was lost answers the retry from its record of the key instead of storing it twice. Other
4xx replies are configuration faults: logged loudly and retried until an operator fixes them.

The key names the batch by sink-topic offsets; after a worker crash the drain re-reads from the last
acked record and may cut batches differently, so a receiver that must never hold a line twice also
deduplicates by the line id in each document.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from pydantic import Field, SecretStr

from core.durations import ByteSize, Duration
from core.errors import PermanentError, RetriableError
from sinks.base import ItemFailure, SettingsGroup, Sink, SinkBatch, WriteResult

RETRIABLE_STATUS = {408, 425, 429}


class WebhookSettings(SettingsGroup):
    """`sinks.webhook`: where to post and how big a batch may grow."""

    url: str
    token: SecretStr | None = None
    timeout: Duration = 10.0
    max_lines: int = Field(1000, ge=1)
    max_bytes: ByteSize = 4 * 1024 * 1024
    max_wait: Duration = 1.0


def idempotency_key(batch: SinkBatch) -> str:
    first, last = batch.lines[0], batch.lines[-1]
    return f"{batch.topic}-{batch.partition}-{first.offset}.{first.index}-{last.offset}.{last.index}"


class WebhookSink(Sink):
    name = "webhook"
    settings_model = WebhookSettings

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    def batch_limits(self) -> tuple[int, int, float]:
        return (self.settings.max_lines, self.settings.max_bytes, self.settings.max_wait)

    async def start(self) -> None:
        headers = {"Content-Type": "application/x-ndjson"}
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        self._session = aiohttp.ClientSession(headers=headers,
                                              timeout=aiohttp.ClientTimeout(total=self.settings.timeout))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        assert self._session is not None, "start() first"
        body = b"".join(line.document + b"\n" for line in batch.lines)
        try:
            async with self._session.post(self.settings.url, data=body,
                                          headers={"Idempotency-Key": idempotency_key(batch)}) as reply:
                status, text = reply.status, await reply.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise RetriableError(f"webhook {self.settings.url} unreachable: {exc!r}") from exc
        if status >= 500 or status in RETRIABLE_STATUS:
            raise RetriableError(f"webhook answered {status}: {text[:200]!r}")
        if status >= 400:
            raise PermanentError(f"webhook refused the batch ({status}: {text[:200]!r}): check url and token")
        return WriteResult(permanent=self._rejected(batch, text))

    @staticmethod
    def _rejected(batch: SinkBatch, text: bytes) -> list[ItemFailure]:
        try:
            reply: Any = orjson.loads(text) if text.strip() else {}
        except orjson.JSONDecodeError:
            return []
        rejected = reply.get("rejected", []) if isinstance(reply, dict) else []
        return [ItemFailure(batch.lines[item["index"]], str(item.get("reason", "rejected")),
                            str(item.get("detail", ""))) for item in rejected
                if isinstance(item, dict) and 0 <= int(item.get("index", -1)) < len(batch.lines)]
