"""S3Sink: gzip NDJSON objects named by sink-topic offsets, exactly once across crashes and replays.

Objects cannot be upserted line by line, so the sink keeps, per topic partition, the last line it
wrote in a small state object (`<prefix>/_state/<topic>-<partition>.json`) written after each data
object. Lines at or below it are skipped (replays add nothing). A crash between a data object and its
state update makes the retry start at the same first offset (the drain splits at record
boundaries), so the retry's key shares that first offset; older objects with that first offset and
another last offset are deleted after the new one is written. The state is read afresh for every
batch (one small GET beside the object PUT), never cached: a partition that moved to another worker
and back at a rebalance must not be written from a stale position. Keys derive from offsets and the first
line's event time, never from the wall clock. Large objects go up as multipart uploads.

Storage hygiene (docs/security.md): every object is written with the configured server-side
encryption (SSE-S3 or SSE-KMS with a key id); a missing bucket is created only with
`create_bucket: true`; a line timed before 1970 or further ahead of the clock than `max_future_skew`
is a per-line permanent failure (dead-lettered), so no object lands in a 1969 or year-3000 partition.
The clock only bounds that check; it never names an object.
"""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import PermanentError, RetriableError
from core.redact import mask_text
from core.settings import S3SinkSettings, Settings
from sinks.base import ItemFailure, Sink, SinkBatch, SinkLine, WriteResult
from sinks.stream_marks import unseen

MIN_PART = 5 * 1024 * 1024
KEY_TEMPLATE = "{prefix}/dt={date}/hour={hour}/{topic}-{partition}-{first:019d}-{last:019d}.ndjson.gz"


def object_key(prefix: str, batch: SinkBatch) -> str:
    when = datetime.fromtimestamp(batch.lines[0].time_ns // 1_000_000_000, UTC)  # integer: no rounding up an hour
    return KEY_TEMPLATE.format(prefix=prefix.strip("/"), date=when.strftime("%Y-%m-%d"), hour=when.strftime("%H"),
                               topic=batch.topic, partition=batch.partition, first=batch.first_offset,
                               last=batch.last_offset)


def split_by_event_time(lines: list[SinkLine], max_future_ns: int) -> tuple[list[SinkLine], list[ItemFailure]]:
    """(lines with a plausible event time, failures for the rest): none before 1970, none past the bound."""
    good: list[SinkLine] = []
    refused: list[ItemFailure] = []
    for line in lines:
        if 0 <= line.time_ns <= max_future_ns:
            good.append(line)
        else:
            when = "before 1970" if line.time_ns < 0 else "too far in the future (sinks.s3.max_future_skew)"
            refused.append(ItemFailure(line, "event_time_out_of_range",
                                       f"event time {line.time_ns} ns is {when}: no S3 partition for it"))
    return good, refused


def sibling_prefix(key: str) -> str:
    """Keys sharing this object's first offset: everything up to and including `<first>-`."""
    return key[: key.rindex("-") + 1]


class S3Sink(Sink):
    """Writes batches as objects to S3 or any S3 API (MinIO, path-style addressing)."""

    name = "s3"

    def __init__(self, settings: S3SinkSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._context: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Sink:
        return cls(settings.sinks.s3)

    def batch_limits(self) -> tuple[int, int, float]:
        return (10_000_000, self.settings.flush_bytes, self.settings.flush_age)

    async def start(self) -> None:
        s = self.settings
        config = AioConfig(s3={"addressing_style": "path" if s.path_style else "auto"},
                           retries={"max_attempts": 2}, connect_timeout=10, read_timeout=60)
        self._context = get_session().create_client("s3", endpoint_url=s.endpoint_url, region_name=s.region,
                                                    config=config)
        self._client = await self._context.__aenter__()
        try:
            await self._client.head_bucket(Bucket=s.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise self._classify(exc) from exc
            if not s.create_bucket:
                raise PermanentError(f"S3 bucket {s.bucket!r} does not exist: create it (with its encryption and "
                                     "lifecycle rules), or set sinks.s3.create_bucket: true "
                                     "(LOGWEAVE_SINKS__S3__CREATE_BUCKET=true) to let Logweave create it") from exc
            # S3 refuses a bucket outside us-east-1 unless its region is named (IllegalLocationConstraint)
            where = {} if s.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": s.region}}
            try:
                await self._client.create_bucket(Bucket=s.bucket, **where)
            except ClientError as create_exc:
                raise self._classify(create_exc) from create_exc
        except BotoCoreError as exc:
            raise RetriableError(mask_text(f"S3 endpoint {s.endpoint_url or 'AWS'} unreachable: {exc}")) from exc

    async def stop(self) -> None:
        if self._context is not None:
            await self._context.__aexit__(None, None, None)
            self._context = self._client = None

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        try:
            last, marks = await self._load_state(batch.topic, batch.partition)
            fresh = unseen([line for line in batch.lines if (line.offset, line.index) > last], marks)
            if not fresh:
                return WriteResult()
            max_future_ns = time.time_ns() + int(self.settings.max_future_skew * 1e9)
            good, refused = split_by_event_time(fresh, max_future_ns)
            if good:
                todo = SinkBatch(batch.topic, batch.partition, good)
                key = object_key(self.settings.prefix, todo)
                await self._put(key, gzip.compress(b"".join(line.document + b"\n" for line in good), 5))
                await self._remove_siblings(key)
            await self._save_state(batch.topic, batch.partition, fresh[-1], marks)
        except (ClientError, BotoCoreError) as exc:
            raise self._classify(exc) from exc
        return WriteResult(permanent=refused)

    async def resume_offset(self, topic: str, partition: int) -> int | None:
        try:
            (offset, _), _ = await self._load_state(topic, partition)
        except (ClientError, BotoCoreError) as exc:
            raise self._classify(exc) from exc
        return offset if offset >= 0 else None

    # -- helpers ---------------------------------------------------------------------------
    def _state_key(self, topic: str, partition: int) -> str:
        return f"{self.settings.prefix.strip('/')}/_state/{topic}-{partition}.json"

    async def _load_state(self, topic: str, partition: int) -> tuple[tuple[int, int], dict[str, int]]:
        """(offset, index) of the last line written for this partition, and its per-stream marks."""
        try:
            reply = await self._client.get_object(Bucket=self.settings.bucket, Key=self._state_key(topic, partition))
            async with reply["Body"] as body:
                state = orjson.loads(await body.read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            return (-1, -1), {}
        return (state["offset"], state["index"]), state.get("streams", {})

    def _encryption(self) -> dict[str, str]:
        """The server-side encryption arguments of every put and multipart upload."""
        s = self.settings
        if s.server_side_encryption == "none":
            return {}
        extra: dict[str, str] = {"ServerSideEncryption": s.server_side_encryption}
        if s.sse_kms_key_id:
            extra["SSEKMSKeyId"] = s.sse_kms_key_id
        return extra

    async def _save_state(self, topic: str, partition: int, line: SinkLine, marks: dict[str, int]) -> None:
        state = {"offset": line.offset, "index": line.index, "streams": marks}
        await self._client.put_object(Bucket=self.settings.bucket, Key=self._state_key(topic, partition),
                                      Body=orjson.dumps(state), ContentType="application/json", **self._encryption())

    async def _put(self, key: str, body: bytes) -> None:
        s = self.settings
        extra: dict[str, str] = {"ContentType": "application/x-ndjson", "ContentEncoding": "gzip",
                                 **self._encryption()}
        if len(body) <= s.multipart_threshold:
            await self._client.put_object(Bucket=s.bucket, Key=key, Body=body, **extra)
            return
        part_size = max(MIN_PART, s.part_size)
        upload = await self._client.create_multipart_upload(Bucket=s.bucket, Key=key, **extra)
        try:
            parts = []
            for number, start in enumerate(range(0, len(body), part_size), 1):
                reply = await self._client.upload_part(Bucket=s.bucket, Key=key, UploadId=upload["UploadId"],
                                                       PartNumber=number, Body=body[start:start + part_size])
                parts.append({"PartNumber": number, "ETag": reply["ETag"]})
            await self._client.complete_multipart_upload(Bucket=s.bucket, Key=key, UploadId=upload["UploadId"],
                                                         MultipartUpload={"Parts": parts})
        except BaseException:
            await self._client.abort_multipart_upload(Bucket=s.bucket, Key=key, UploadId=upload["UploadId"])
            raise

    async def _remove_siblings(self, key: str) -> None:
        listing = await self._client.list_objects_v2(Bucket=self.settings.bucket, Prefix=sibling_prefix(key))
        stale = [{"Key": item["Key"]} for item in listing.get("Contents", []) if item["Key"] != key]
        if stale:
            await self._client.delete_objects(Bucket=self.settings.bucket, Delete={"Objects": stale})

    @staticmethod
    def _classify(exc: Exception) -> Exception:
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status in (403, 400) or code in ("AccessDenied", "InvalidAccessKeyId", "NoSuchBucket",
                                                "SignatureDoesNotMatch", "InvalidBucketName"):
                return PermanentError(f"S3 refused the write ({code}): fix credentials or bucket settings")
        return RetriableError(mask_text(f"S3 write failed, will retry: {exc}"))
