"""S3Sink: gzip NDJSON objects named by sink-topic offsets, exactly once across crashes and replays.

The object layout, state object and crash rules are the object-store base's (sinks/object_store.py);
this module only puts, gets, lists and deletes objects through S3's API. Large objects go up as
multipart uploads, up to PARALLEL_PARTS parts at once; one cut off by a crash is aborted when the state
is next read. The state object is written with S3's conditional writes (If-Match on the ETag last seen,
If-None-Match: * for the first), which fence two workers writing one partition during a rebalance; an
S3 API that ignores those headers leaves the last writer's state, as before they existed.

Storage hygiene (docs/security.md): every object, the state object and multipart uploads included,
is written with the configured server-side encryption (SSE-S3 or SSE-KMS with a key id); a missing
bucket is created only with `create_bucket: true`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import PermanentError, RetriableError
from core.redact import mask_text
from core.settings import S3SinkSettings, Settings
from sinks.object_store import NDJSON, ObjectStoreSink, StateConflict, object_key, sibling_prefix, split_by_event_time

__all__ = ["S3Sink", "object_key", "sibling_prefix", "split_by_event_time"]
MIN_PART = 5 * 1024 * 1024
PARALLEL_PARTS = 4  # parts of one multipart upload in flight at once


class S3Sink(ObjectStoreSink):
    """Writes batches as objects to S3 or any S3 API (MinIO, path-style addressing)."""

    name = "s3"
    store_errors = (ClientError, BotoCoreError)

    def __init__(self, settings: S3SinkSettings) -> None:
        super().__init__(settings)
        self.settings: S3SinkSettings = settings
        self._client: Any = None
        self._context: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Sink:
        return cls(settings.sinks.s3)

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
        self._positions.clear()
        if self._context is not None:
            await self._context.__aexit__(None, None, None)
            self._context = self._client = None

    # -- the store -------------------------------------------------------------------------------
    async def _get_state(self, key: str) -> tuple[bytes, str | None] | None:
        try:
            reply = await self._client.get_object(Bucket=self.settings.bucket, Key=key)
            async with reply["Body"] as body:
                data: bytes = await body.read()
                return data, reply.get("ETag")
        except ClientError as exc:
            if _code(exc) not in ("NoSuchKey", "404"):
                raise
            return None

    async def _exists(self, key: str) -> bool:
        try:
            await self._client.head_object(Bucket=self.settings.bucket, Key=key)
            return True
        except ClientError as exc:
            if _code(exc) not in ("NoSuchKey", "404", "NotFound"):
                raise
            return False

    async def _abandon(self, key: str) -> None:
        """Abort the unfinished multipart uploads of `key` (a crash mid-upload leaves its parts billed)."""
        listing = await self._client.list_multipart_uploads(Bucket=self.settings.bucket, Prefix=key)
        for upload in listing.get("Uploads", []):
            if upload["Key"] == key:
                await self._client.abort_multipart_upload(Bucket=self.settings.bucket, Key=key,
                                                          UploadId=upload["UploadId"])

    def _encryption(self) -> dict[str, str]:
        """The server-side encryption arguments of every put and multipart upload."""
        s = self.settings
        if s.server_side_encryption == "none":
            return {}
        extra: dict[str, str] = {"ServerSideEncryption": s.server_side_encryption}
        if s.sse_kms_key_id:
            extra["SSEKMSKeyId"] = s.sse_kms_key_id
        return extra

    async def _put_state(self, key: str, body: bytes, version: str | None) -> str | None:
        condition = {"IfMatch": version} if version else {"IfNoneMatch": "*"}
        try:
            reply = await self._client.put_object(Bucket=self.settings.bucket, Key=key, Body=body,
                                                  ContentType="application/json", **condition, **self._encryption())
        except ClientError as exc:
            # 412: not at that version; 409: a concurrent conditional write won; 404: If-Match on a deleted state
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404", "412", "409"):
                raise StateConflict(_code(exc)) from exc
            raise
        etag: str | None = reply.get("ETag")
        return etag

    async def _put(self, key: str, body: bytes) -> None:
        s = self.settings
        extra = {"ContentType": NDJSON, "ContentEncoding": "gzip", **self._encryption()}
        if len(body) <= s.multipart_threshold:
            await self._client.put_object(Bucket=s.bucket, Key=key, Body=body, **extra)
            return
        part_size = max(MIN_PART, s.part_size)
        upload = await self._client.create_multipart_upload(Bucket=s.bucket, Key=key, **extra)
        bound = asyncio.Semaphore(PARALLEL_PARTS)
        view = memoryview(body)

        async def upload_part(number: int, start: int) -> dict[str, Any]:
            async with bound:
                reply = await self._client.upload_part(Bucket=s.bucket, Key=key, UploadId=upload["UploadId"],
                                                       PartNumber=number, Body=bytes(view[start:start + part_size]))
                return {"PartNumber": number, "ETag": reply["ETag"]}

        tasks = [asyncio.ensure_future(upload_part(number, start))
                 for number, start in enumerate(range(0, len(body), part_size), 1)]
        try:
            parts = await asyncio.gather(*tasks)
            await self._client.complete_multipart_upload(Bucket=s.bucket, Key=key, UploadId=upload["UploadId"],
                                                         MultipartUpload={"Parts": parts})
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # no part lands after the abort
            await self._client.abort_multipart_upload(Bucket=s.bucket, Key=key, UploadId=upload["UploadId"])
            raise

    async def _list(self, prefix: str) -> list[str]:
        listing = await self._client.list_objects_v2(Bucket=self.settings.bucket, Prefix=prefix)
        return [item["Key"] for item in listing.get("Contents", [])]

    async def _delete(self, keys: list[str]) -> None:
        await self._client.delete_objects(Bucket=self.settings.bucket, Delete={"Objects": [{"Key": k} for k in keys]})

    @staticmethod
    def _classify(exc: Exception) -> Exception:
        if isinstance(exc, ClientError):
            code = _code(exc)
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status in (403, 400) or code in ("AccessDenied", "InvalidAccessKeyId", "NoSuchBucket",
                                                "SignatureDoesNotMatch", "InvalidBucketName"):
                return PermanentError(f"S3 refused the write ({code}): fix credentials or bucket settings")
        return RetriableError(mask_text(f"S3 write failed, will retry: {exc}"))


def _code(exc: ClientError) -> str:
    code: str = exc.response.get("Error", {}).get("Code", "")
    return code
