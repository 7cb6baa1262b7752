"""EtcdSink: one key per line, `<prefix>/<escaped traceId>/<event time ns>-<line id>`, under shared leases.

Trace ids come from log lines, so they are untrusted: `escape_trace_id` percent-encodes `%`, `/` and
control bytes (and every `.` of an id made only of dots), so an id is always exactly one key segment.
No id can then reach another trace's prefix (`a` vs `a/b/c`) or climb out of `prefix`
(`../../x`), and `unescape_trace_id` gives the id back (it is `urllib.parse.unquote`).

A prefix range read returns a trace's lines in time order. Keys expire through leases shared per
bucket of event time (`lease_bucket`), never one lease per key; each lease is granted for
`ttl + lease_bucket` and re-granted when etcd no longer knows it, so every line stays at least
`ttl`. Writes go through etcd's JSON gRPC gateway (`/v3/kv/txn`) over aiohttp: that one client
handles endpoint lists, TLS (CA, client certificate) and user/password tokens, while the asyncio
gRPC client `aetcd` takes one host and no TLS options at all. Transactions stay within etcd's limits
(128 operations, 1.5 MiB per request); a line that alone exceeds the request limit is dead-lettered.
Re-writing a key with the same value is harmless, so retries and replays are idempotent.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
import orjson

from core.errors import PermanentError, RetriableError
from core.redact import mask_text
from core.settings import EtcdSinkSettings, Settings
from sinks.base import ItemFailure, Sink, SinkBatch, SinkLine, WriteResult

MAX_TXN_OPS = 128
MAX_REQUEST_BYTES = 1536 * 1024
REQUEST_ALLOWANCE = 64 * 1024  # protobuf framing and the lease/compare fields
MAX_CACHED_LEASES = 64  # event-time buckets whose lease ids are remembered
MAX_KEPT_BATCHES = 8  # batches in progress at once (the drain writes a few together), kept for their retry
MAX_CACHED_PREFIXES = 16_384  # traces whose key prefix is remembered across batches (a trace spans several)
# A committed transaction's reply, as the gateway writes it: recognised without decoding the reply, which
# holds one entry per put (about 10 KB for 128 puts). Any other reply is decoded and judged in full.
TXN_SUCCEEDED = b'"succeeded":true'


log = logging.getLogger(__name__)
_ESCAPES = {code: f"%{code:02X}" for code in [*range(0x20), 0x7F, ord("%"), ord("/")]}
_warned_plaintext: set[str] = set()  # endpoints already warned about, once per process


def escape_trace_id(trace_id: str) -> str:
    """One key segment for any trace id: `%`, `/` and control bytes percent-encoded, `.`/`..` too."""
    escaped = trace_id.translate(_ESCAPES)
    if escaped and escaped.strip(".") == "":
        return escaped.replace(".", "%2E")
    return escaped


def unescape_trace_id(segment: str) -> str:
    """The trace id a key segment was made from (inverse of escape_trace_id)."""
    return unquote(segment)


def trace_prefix(prefix: str, trace_id: str) -> bytes:
    """The key prefix holding exactly one trace's lines (a prefix range read of it returns no other trace)."""
    return f"{prefix.rstrip('/')}/{escape_trace_id(trace_id)}/".encode()


def line_key(prefix: str, line: SinkLine) -> bytes:
    return trace_prefix(prefix, line.trace_id) + f"{line.time_ns:019d}-{line.line_id}".encode()


@dataclass(slots=True)
class EncodedTxn:
    """One transaction's puts, encoded once: each line's op up to its lease id, so a retry (or a lease
    granted again) costs one join, not a base64 and key per line again."""

    lines: list[SinkLine] = field(default_factory=list)
    heads: list[bytes] = field(default_factory=list)  # b'{"request_put":{"key":"…","value":"…","lease":"'
    buckets: list[int] = field(default_factory=list)  # each line's lease bucket
    written: bool = False  # confirmed by etcd: a retry of the same batch skips it
    _body: bytes = b""
    _built_with: tuple[tuple[int, int], ...] = ()

    def body(self, leases: dict[int, int]) -> bytes:
        """The `/v3/kv/txn` request with these lease ids (bucket -> lease), reused while they hold."""
        used = tuple(sorted((bucket, leases[bucket]) for bucket in set(self.buckets)))
        if used != self._built_with:
            tails = {bucket: b'%d"}}' % lease for bucket, lease in used}
            ops = b",".join([head + tails[bucket] for head, bucket in zip(self.heads, self.buckets, strict=True)])
            self._body = b'{"compare":[],"success":[' + ops + b'],"failure":[]}'
            self._built_with = used
        return self._body


def encode_transactions(lines: list[SinkLine], prefix: str, bucket_ns: int) -> tuple[list[EncodedTxn], list[SinkLine]]:
    """Group lines into transactions within etcd's limits, encoding each put once; return
    (transactions, lines too large alone). `bucket_ns`: the lease bucket's length."""
    too_large: list[SinkLine] = []
    return list(iter_transactions(lines, prefix, bucket_ns, too_large)), too_large


def iter_transactions(lines: list[SinkLine], prefix: str, bucket_ns: int, too_large: list[SinkLine],
                      prefixes: dict[str, bytes] | None = None) -> Iterator[EncodedTxn]:
    """`encode_transactions` one transaction at a time, each yielded once full (the lines too large alone
    are appended to `too_large` as met): the first can be sent while the rest are encoded. `prefixes`:
    trace id -> key prefix under `prefix`, filled here and kept by the caller across batches."""
    budget = MAX_REQUEST_BYTES - REQUEST_ALLOWANCE
    b64 = base64.b64encode
    if prefixes is None:
        prefixes = {}
    current = EncodedTxn()
    size = 0
    for line in lines:
        key_prefix = prefixes.get(line.trace_id)
        if key_prefix is None:
            key_prefix = prefixes[line.trace_id] = trace_prefix(prefix, line.trace_id)
        key = key_prefix + b"%019d-%s" % (line.time_ns, line.line_id.encode())
        cost = len(line.document) + len(key) + 32
        if cost > budget:
            too_large.append(line)
            continue
        if len(current.lines) >= MAX_TXN_OPS or size + cost > budget:
            yield current
            current = EncodedTxn()
            size = 0
        current.lines.append(line)
        current.heads.append(b'{"request_put":{"key":"' + b64(key) + b'","value":"' + b64(line.document)
                             + b'","lease":"')
        current.buckets.append(line.time_ns // bucket_ns)
        size += cost
    if current.lines:
        yield current


@dataclass(slots=True)
class EncodedBatch:
    """A batch's transactions, encoded as the writers take them and kept for a retry of the same batch."""

    batch: SinkBatch
    pending: Iterator[EncodedTxn]
    too_large: list[SinkLine]
    encoded: list[EncodedTxn] = field(default_factory=list)

    @classmethod
    def of(cls, batch: SinkBatch, prefix: str, bucket_ns: int, prefixes: dict[str, bytes]) -> EncodedBatch:
        too_large: list[SinkLine] = []
        return cls(batch, iter_transactions(batch.lines, prefix, bucket_ns, too_large, prefixes), too_large)

    def unwritten(self) -> Iterator[EncodedTxn]:
        """The transactions etcd has not confirmed: those encoded before, then the rest as they are encoded.
        Shared by the concurrent writers (no await inside, so each is taken once)."""
        for txn in list(self.encoded):
            if not txn.written:
                yield txn
        for txn in self.pending:
            self.encoded.append(txn)
            yield txn


def split_transactions(lines: list[SinkLine], prefix: str) -> tuple[list[list[SinkLine]], list[SinkLine]]:
    """Group lines into transactions within etcd's limits; return (transactions, lines too large alone)."""
    txns, too_large = encode_transactions(lines, prefix, 1)
    return [txn.lines for txn in txns], too_large


class LeaseGone(PermanentError):
    """etcd no longer knows a lease this sink cached (expired, or revoked behind its back): grant again."""


class EtcdSink(Sink):
    """Writes lines to etcd v3 (the seed tool's default destination)."""

    name = "etcd"
    concurrent_batches = 2  # keys by line id, any order: the next batch fills the slots the last one frees

    def __init__(self, settings: EtcdSinkSettings, limits: tuple[int, int, float]) -> None:
        self.settings = settings
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._endpoint = 0
        self._token: str | None = None
        self._leases: dict[int, int] = {}
        self._granting = asyncio.Lock()  # one grant per bucket, though several writers need its lease at once
        self._encoded: dict[int, EncodedBatch] = {}  # batches in progress by id, kept for a retry of the same batch
        self._slots = asyncio.Semaphore(settings.inflight_txns)  # transactions open at once, across batches
        self._prefixes: dict[str, bytes] = {}  # trace id -> its key prefix (iter_transactions), bounded

    @classmethod
    def from_settings(cls, settings: Settings) -> EtcdSink:
        s = settings.sinks
        return cls(s.etcd, (min(s.batch_size, 10 * MAX_TXN_OPS), s.batch_bytes, s.batch_period))

    def batch_limits(self) -> tuple[int, int, float]:
        return self._limits

    def ssl_context(self) -> ssl.SSLContext | None:
        s = self.settings
        if not any(e.startswith("https://") for e in s.endpoints) and s.ca_file is None:
            return None
        context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        if s.cert_file and s.key_file:
            context.load_cert_chain(str(s.cert_file), str(s.key_file))
        return context

    async def start(self) -> None:
        if not self.settings.endpoints:
            raise PermanentError("sinks.etcd.servers is empty: give one or more URLs like http://127.0.0.1:2379")
        if self._session is not None:  # a retried start: do not leak the last attempt's connections
            await self._session.close()
        self._warn_plaintext_password()
        connector = aiohttp.TCPConnector(ssl=self.ssl_context() or False, limit=8)
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=15))
        await self._call("/v3/maintenance/status", {})

    def _warn_plaintext_password(self) -> None:
        """A password sent to an http:// endpoint crosses the network in clear: say so, once per endpoint."""
        if not self.settings.username:
            return
        for endpoint in self.settings.endpoints:
            if endpoint.startswith("http://") and endpoint not in _warned_plaintext:
                _warned_plaintext.add(endpoint)
                log.warning("etcd sink: the password of user %r travels unencrypted to %s; use https:// "
                            "(sinks.etcd.servers) with sinks.etcd.ca_file", self.settings.username,
                            mask_text(endpoint))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        encoded = self._encoded.get(id(batch))  # kept with its batch, so no other batch can share the id
        if encoded is None:  # a retry of the same batch reuses its bodies
            if len(self._prefixes) > MAX_CACHED_PREFIXES:
                self._prefixes.clear()
            while len(self._encoded) >= MAX_KEPT_BATCHES:  # batches given up on (never retried) go first
                del self._encoded[next(iter(self._encoded))]
            encoded = self._encoded[id(batch)] = EncodedBatch.of(batch, self.settings.prefix, self._bucket_ns(),
                                                                 self._prefixes)
        try:
            await self._write_all(encoded)
        except LeaseGone:
            self._leases.clear()  # expired or revoked behind our back: grant again, once
            await self._write_all(encoded)
        self._encoded.pop(id(batch), None)
        return WriteResult(permanent=[
            ItemFailure(line, "etcd_too_large", f"line of {len(line.document)} bytes exceeds etcd's request "
                        f"limit ({MAX_REQUEST_BYTES} bytes) even alone") for line in encoded.too_large])

    async def _write_all(self, encoded: EncodedBatch) -> None:
        """Write the transactions not yet confirmed, `inflight_txns` open at once across the batches being
        written (the drain writes `concurrent_batches` together): etcd commits a request only after its WAL
        fsync, and concurrent requests share one (serial requests wait for one fsync each).
        Transactions are encoded as the writers take them, so the first is on its way while the rest are
        encoded. Each key is written with the same value whatever the order, so order does not matter; a
        transaction etcd confirmed is marked written, so a retry of the batch skips it. Every failure waits
        for the requests still in flight, then the first is raised (a lease etcd no longer knows as
        LeaseGone)."""
        pending = encoded.unwritten()

        async def write_some() -> None:
            for txn in pending:  # shared by the writers: each transaction is taken once
                leases = {bucket: await self._lease_for_bucket(bucket) for bucket in sorted(set(txn.buckets))}
                async with self._slots:
                    await self._call_raw("/v3/kv/txn", txn.body(leases))
                txn.written = True
        outcomes = await asyncio.gather(*(write_some() for _ in range(self.settings.inflight_txns)),
                                        return_exceptions=True)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise next((failure for failure in failures if not isinstance(failure, LeaseGone)), failures[0])

    def _bucket_ns(self) -> int:
        return int(self.settings.lease_bucket * 1e9)

    def lease_bucket(self, time_ns: int) -> int:
        """The lease bucket of an event time: lines of one bucket share one lease."""
        return int(time_ns // self._bucket_ns())

    async def _lease_for_bucket(self, bucket: int) -> int:
        lease = self._leases.get(bucket)
        if lease is not None:
            return lease
        async with self._granting:
            lease = self._leases.get(bucket)  # granted while this writer waited
            if lease is None:
                ttl = int(self.settings.ttl + self.settings.lease_bucket)
                reply = await self._call("/v3/lease/grant", {"TTL": str(ttl)})
                lease = int(reply["ID"])
                if len(self._leases) >= MAX_CACHED_LEASES:
                    self._leases.pop(min(self._leases))
                self._leases[bucket] = lease
        return lease

    async def _authenticate(self, base: str) -> None:
        s = self.settings
        if not s.username:
            return
        assert self._session is not None
        password = s.password.get_secret_value() if s.password else ""
        async with self._session.post(f"{base}/v3/auth/authenticate",
                                      json={"name": s.username, "password": password}) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                raise PermanentError(f"etcd rejected user {s.username!r}: {body.get('message', body)}")
            self._token = body["token"]

    async def _call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._call_raw(path, orjson.dumps(payload))

    async def _call_raw(self, path: str, data: bytes) -> dict[str, Any]:
        """POST `data` (serialized once, reused across endpoints) to the gateway, failing over across
        endpoints; classify errors as retriable or permanent. A committed transaction returns {}."""
        if self._session is None:
            raise RetriableError("etcd sink is not started")
        endpoints = self.settings.endpoints
        last_error = ""
        for attempt in range(len(endpoints)):
            base = endpoints[(self._endpoint + attempt) % len(endpoints)].rstrip("/")
            try:
                if self.settings.username and self._token is None:
                    await self._authenticate(base)
                headers = {"Content-Type": "application/json"}
                if self._token:
                    headers["Authorization"] = self._token
                async with self._session.post(base + path, data=data, headers=headers) as response:
                    raw = await response.read()
                    if response.status == 200 and path == "/v3/kv/txn" and TXN_SUCCEEDED in raw:
                        self._endpoint = (self._endpoint + attempt) % len(endpoints)
                        return {}  # the writers only need to know it committed
                    body: dict[str, Any] = orjson.loads(raw or b"{}")
                    if response.status == 401 or "token" in str(body.get("message", "")):
                        self._token = None
                        raise RetriableError(f"etcd auth token rejected: {body.get('message')}")
                    if response.status >= 500 and "lease not found" not in str(body.get("message", "")):
                        raise RetriableError(f"etcd {base} answered {response.status}: {body.get('message')}")
                    if "lease not found" in str(body.get("message", "")):
                        raise LeaseGone(f"etcd refused {path}: {body.get('message')}")
                    if response.status >= 400 or "error" in body:
                        raise PermanentError(f"etcd refused {path}: {body.get('message', body)}")
                    self._endpoint = (self._endpoint + attempt) % len(endpoints)
                    return body
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:  # away, or not etcd
                last_error = mask_text(f"{base}: {exc!r}")
                continue
        raise RetriableError(f"no etcd endpoint answered ({last_error})")
