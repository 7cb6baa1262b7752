"""GcsSink: the object-store sink on Google Cloud Storage (gcloud-aio-storage, the `gcs` extra).

Object layout, state objects and crash rules are the object-store base's (sinks/object_store.py),
the same as S3's. Objects larger than `resumable_threshold` go up as resumable uploads in chunks of
`resumable_chunk`: after a chunk lost to a dropped connection, a timeout or a refused range, the
upload goes on from the byte the server reports it holds (a status query), not from the start. An
upload cut off by a crash leaves no object, and the drain's retry starts a new session. Smaller
objects, and the state objects, go up as multipart uploads carrying their metadata. State objects are
written on condition of the generation last seen (`ifGenerationMatch`, 0 for the first), which fences
two workers writing one partition during a rebalance (gcp-storage-emulator ignores the condition).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from gcloud.aio.storage import Storage

from core.errors import PermanentError, RetriableError
from core.settings import GcsSinkSettings, Settings
from sinks.object_store import NDJSON, ObjectStoreSink, StateConflict

REFUSED = {400, 401, 403}  # credentials, permissions, bad names: an operator must act
RESUME_ATTEMPTS = 5  # lost chunks resumed per object before the batch is retried from the start


class GcsSink(ObjectStoreSink):
    name = "gcs"
    store_errors = (aiohttp.ClientError, TimeoutError)

    def __init__(self, settings: GcsSinkSettings) -> None:
        super().__init__(settings)
        self.settings: GcsSinkSettings = settings
        self._http: aiohttp.ClientSession | None = None
        self._storage: Storage | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> GcsSink:
        return cls(settings.sinks.gcs)

    async def start(self) -> None:
        s = self.settings
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=s.timeout))
        self._storage = Storage(api_root=s.endpoint_url, session=self._http,  # type: ignore[arg-type]
                                service_file=str(s.service_file) if s.service_file else None)
        try:
            await self._storage.get_bucket_metadata(s.bucket)
        except aiohttp.ClientResponseError as exc:
            if exc.status != 404:
                raise self._classify(exc) from exc
            await self._create_bucket()
        except self.store_errors as exc:
            raise RetriableError(f"GCS endpoint {s.endpoint_url or 'googleapis.com'} unreachable: {exc!r}") from exc

    async def _create_bucket(self) -> None:
        s = self.settings
        if s.project is None:
            raise PermanentError(f"GCS bucket {s.bucket!r} does not exist; create it, or set sinks.gcs.project "
                                 "to have the sink create it")
        assert self._storage is not None and self._http is not None
        root = s.endpoint_url or "https://storage.googleapis.com"
        headers = await self._storage._headers()
        async with self._http.post(f"{root}/storage/v1/b", params={"project": s.project}, headers=headers,
                                   json={"name": s.bucket}) as reply:
            if reply.status not in (200, 409):  # 409: created meanwhile by another worker
                raise self._classify(aiohttp.ClientResponseError(reply.request_info, (), status=reply.status,
                                                                 message=await reply.text()))

    async def stop(self) -> None:
        self._positions.clear()
        http, self._http, self._storage = self._http, None, None
        if http is not None:
            await http.close()

    # -- the store -------------------------------------------------------------------------------
    def _client(self) -> Storage:
        assert self._storage is not None, "start() first"
        return self._storage

    async def _put(self, key: str, body: bytes) -> None:
        if len(body) > self.settings.resumable_threshold:
            await self._resume(await self._open_session(key, len(body)), body)
            return
        await self._client().upload(self.settings.bucket, key, body, content_type=NDJSON,
                                    metadata={"contentEncoding": "gzip"}, timeout=int(self.settings.timeout),
                                    force_resumable_upload=False)

    # -- resumable uploads in chunks (the client sends one request per object) -------------------
    def _root(self) -> str:
        return self.settings.endpoint_url or "https://storage.googleapis.com"

    async def _open_session(self, key: str, size: int) -> str:
        """Start a resumable upload of `size` bytes; its session URI takes the chunks."""
        assert self._http is not None
        headers = {**await self._client()._headers(), "X-Upload-Content-Type": NDJSON,
                   "X-Upload-Content-Length": str(size)}
        async with self._http.post(f"{self._root()}/upload/storage/v1/b/{self.settings.bucket}/o", headers=headers,
                                   params={"uploadType": "resumable", "name": key},
                                   json={"name": key, "contentType": NDJSON, "contentEncoding": "gzip"}) as reply:
            reply.raise_for_status()
            return reply.headers["Location"]

    async def _resume(self, session: str, body: bytes, held: int | None = 0) -> None:
        """Send `body` on from byte `held` (None: ask the session); after a lost chunk, from what it holds."""
        assert self._http is not None
        headers = await self._client()._headers()
        lost = 0
        if held is None:
            held = await self._held(session, headers, len(body))
        while held < len(body):
            end = min(held + self.settings.resumable_chunk, len(body))
            try:
                async with self._http.put(session, data=body[held:end], headers={
                        **headers, "Content-Range": f"bytes {held}-{end - 1}/{len(body)}"}) as reply:
                    if reply.status in (200, 201):
                        return
                    if reply.status != 308:
                        reply.raise_for_status()
                    held = _held_bytes(reply.headers.get("Range"))
            except (aiohttp.ClientConnectionError, aiohttp.ClientResponseError, TimeoutError) as exc:
                # a lost connection, or a chunk the session no longer expects (aiohttp re-sends a PUT once
                # on a dropped pooled connection): ask what it holds; an expired session (404) starts over
                if isinstance(exc, aiohttp.ClientResponseError) and exc.status in (401, 403, 404):
                    raise
                lost += 1
                if lost > RESUME_ATTEMPTS:
                    raise
                held = await self._held(session, headers, len(body))

    async def _held(self, session: str, headers: dict[str, str], size: int) -> int:
        """How many bytes the session holds (a status query); `size` when the object is complete."""
        assert self._http is not None
        async with self._http.put(session, headers={**headers, "Content-Range": f"bytes */{size}"}) as reply:
            if reply.status in (200, 201):
                return size
            if reply.status != 308:
                reply.raise_for_status()
            return _held_bytes(reply.headers.get("Range"))

    async def _put_state(self, key: str, body: bytes, version: str | None) -> str | None:
        # with metadata the client sends a multipart upload (a simple upload of JSON trips some emulators)
        try:
            reply = await self._client().upload(self.settings.bucket, key, body, content_type="application/json",
                                                metadata={"cacheControl": "no-store"}, force_resumable_upload=False,
                                                parameters={"ifGenerationMatch": version or "0"})
        except aiohttp.ClientResponseError as exc:
            if exc.status == 412:
                raise StateConflict(f"{exc.status} {exc.message}") from exc
            raise
        generation = reply.get("generation")
        return str(generation) if generation is not None else None

    async def _get_state(self, key: str) -> tuple[bytes, str | None] | None:
        try:
            generation = (await self._client().download_metadata(self.settings.bucket, key)).get("generation")
            return await self._client().download(self.settings.bucket, key), \
                str(generation) if generation is not None else None
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                return None
            raise

    async def _exists(self, key: str) -> bool:
        try:
            await self._client().download_metadata(self.settings.bucket, key)
            return True
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                return False
            raise

    async def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        params = {"prefix": prefix}
        while True:
            page: dict[str, Any] = await self._client().list_objects(self.settings.bucket, params=params)
            keys.extend(item["name"] for item in page.get("items", []))
            if not page.get("nextPageToken"):
                return keys
            params = {"prefix": prefix, "pageToken": page["nextPageToken"]}

    async def _delete(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self._client().delete(self.settings.bucket, key)
            except aiohttp.ClientResponseError as exc:
                if exc.status != 404:  # gone already: a concurrent cleanup
                    raise

    @staticmethod
    def _classify(exc: Exception) -> Exception:
        if isinstance(exc, aiohttp.ClientResponseError) and exc.status in REFUSED:
            return PermanentError(f"GCS refused the request ({exc.status} {exc.message}): fix credentials, "
                                  "permissions or the bucket name")
        return RetriableError(f"GCS request failed, will retry: {exc!r}")


def _held_bytes(range_header: str | None) -> int:
    """Bytes a session holds from its `Range: bytes=0-<last>` header (none yet: no header)."""
    return int(range_header.rsplit("-", 1)[1]) + 1 if range_header else 0
