"""A Kafka-protocol front for tests: checks SASL credentials and advertises itself, then pipes to noida-db.

Why it exists: no broker that runs here verifies SASL credentials (the embedded noida-db accepts any
PLAIN user and password and refuses SCRAM), and noida-db advertises its own plaintext address, so a
TLS terminator in front of it would see clients redirected around it after bootstrap. This front
sits between the clients (or stunnel) and noida-db and
- when given `users`, performs the broker side of SaslHandshake/SaslAuthenticate itself: PLAIN,
  SCRAM-SHA-256/512 (RFC 5802 / RFC 7677: salted, iterated, client proof checked, server signature
  sent) and OAUTHBEARER (RFC 7628, token compared with `tokens`); anything else before a successful
  login closes the connection, as Kafka does;
- rewrites the broker address noida-db advertises in Metadata and FindCoordinator replies to
  `advertise` (the front's own port, or the TLS port of a stunnel in front of it). The address is
  replaced by one of the same length, so no frame size changes.
- when given `sync_assignment`, replaces the member assignment in SyncGroup replies (v0-v3, the
  versions aiokafka speaks) with those bytes, for the first `sync_rewrites_left` replies (None: all):
  a test makes a group member receive an empty or a garbled assignment that no broker here sends
  on demand;
- when given `hold_leader_sync`, holds the `hold_leader_sync_nth` SyncGroup request that carries the
  group's plan (the leader's) for that many seconds before passing it on: a leader slowed past the
  session timeout, as a busy machine makes it.
Everything else after the login is piped unchanged. It runs on its own event loop in a thread, so the
processes under test (workers, collectors) can use it while the test's loop waits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import struct
import threading
import time
from dataclasses import dataclass, field

API_JOIN_GROUP, API_SYNC_GROUP = 11, 14
API_METADATA, API_FIND_COORDINATOR, API_SASL_HANDSHAKE, API_API_VERSIONS, API_SASL_AUTHENTICATE = 3, 10, 17, 18, 36
SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE = 58, 33, 34
SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
SCRAM_ITERATIONS = 4096


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _bytes(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    return await reader.readexactly(size)


def _frame(correlation_id: int, body: bytes) -> bytes:
    payload = struct.pack(">i", correlation_id) + body
    return struct.pack(">i", len(payload)) + payload


class ScramExchange:
    """The server side of one SCRAM login: `first(client_first)` then `final(client_final)`."""

    def __init__(self, hash_name: str, users: dict[str, str]) -> None:
        self.hash_name, self.users = hash_name, users
        self.user: str | None = None

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self.hash_name).digest()

    def first(self, message: str) -> str:
        if not message.startswith("n,,"):
            raise ValueError("channel binding is not supported")
        self.client_first_bare = message[3:]
        attributes = dict(part.split("=", 1) for part in self.client_first_bare.split(","))
        self.user = attributes["n"].replace("=2C", ",").replace("=3D", "=")
        self.nonce = attributes["r"] + base64.b64encode(os.urandom(18)).decode()
        self.salt = os.urandom(16)
        self.server_first = f"r={self.nonce},s={base64.b64encode(self.salt).decode()},i={SCRAM_ITERATIONS}"
        return self.server_first

    def final(self, message: str) -> str:
        without_proof, _, proof_b64 = message.rpartition(",p=")
        attributes = dict(part.split("=", 1) for part in without_proof.split(","))
        if attributes.get("r") != self.nonce or attributes.get("c") != "biws":
            raise ValueError("nonce or channel binding mismatch")
        password = self.users.get(self.user or "")
        if password is None:
            raise ValueError("unknown user")
        salted = hashlib.pbkdf2_hmac(self.hash_name, password.encode(), self.salt, SCRAM_ITERATIONS)
        stored_key = hashlib.new(self.hash_name, self._hmac(salted, b"Client Key")).digest()
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        signature = self._hmac(stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof_b64), signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self.hash_name, client_key).digest(), stored_key):
            raise ValueError("wrong password")
        server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return "v=" + base64.b64encode(server_signature).decode()


@dataclass
class KafkaFront:
    upstream_port: int
    users: dict[str, str] | None = None  # None: no SASL, only the address rewrite
    tokens: set[str] = field(default_factory=set)  # OAUTHBEARER tokens accepted
    advertise_port: int | None = None  # default: the front's own port
    host: str = "127.0.0.1"
    port: int = 0
    logins: list[tuple[str, str]] = field(default_factory=list)  # (mechanism, user) that succeeded
    refusals: list[str] = field(default_factory=list)
    rewrites: int = 0
    sync_assignment: bytes | None = None  # replaces SyncGroup replies' member assignment
    sync_rewrites_left: int | None = None  # how many replies to rewrite (None: every one)
    # SyncGroup replies as the broker sent them: (monotonic time, error code, assignment)
    sync_replies: list[tuple[float, int, bytes]] = field(default_factory=list)
    hold_leader_sync: float = 0.0  # seconds
    hold_leader_sync_nth: int = 1  # which leader SyncGroup to hold (1: the first)
    leader_syncs: list[float] = field(default_factory=list)  # monotonic times leader SyncGroups arrived
    # JoinGroup v5 requests: (monotonic time, member id, group instance id)
    joins: list[tuple[float, str, str | None]] = field(default_factory=list)

    def start(self) -> KafkaFront:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True, name="kafka-front")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Kafka front did not start")
        return self

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, self.host, self.port))
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def _rewrite(self, body: bytes) -> bytes:
        advertised = struct.pack(">i", self.advertise_port or self.port)
        host = self.host.encode()
        for prefix in (struct.pack(">h", len(host)) + host, bytes([len(host) + 1]) + host):  # classic, compact
            needle = prefix + struct.pack(">i", self.upstream_port)
            if needle in body:
                self.rewrites += 1
                body = body.replace(needle, prefix + advertised)
        return body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        pending: dict[int, tuple[int, int]] = {}  # correlation id -> (api key, version) sent upstream
        replies = asyncio.ensure_future(self._pipe_replies(up_reader, writer, pending))
        try:
            authenticated, mechanism, scram = self.users is None, "", None
            while True:
                frame = await _read_frame(reader)
                api_key, version, correlation_id = struct.unpack(">hhi", frame[:8])
                if authenticated or api_key == API_API_VERSIONS:
                    if api_key == API_JOIN_GROUP and 5 <= version <= 5:
                        self.joins.append((time.monotonic(), *self._joining(frame)))
                    if api_key == API_SYNC_GROUP and self._carries_plan(frame, version):
                        self.leader_syncs.append(time.monotonic())
                        if self.hold_leader_sync and len(self.leader_syncs) == self.hold_leader_sync_nth:
                            await asyncio.sleep(self.hold_leader_sync)
                    pending[correlation_id] = (api_key, version)
                    up_writer.write(struct.pack(">i", len(frame)) + frame)
                    await up_writer.drain()
                    continue
                client_id_len = struct.unpack(">h", frame[8:10])[0]
                body = frame[10 + max(client_id_len, 0):]
                if api_key == API_SASL_HANDSHAKE:
                    mechanism = body[2:2 + struct.unpack(">h", body[:2])[0]].decode()
                    enabled = ["PLAIN", *SCRAM_HASHES, "OAUTHBEARER"]
                    error = 0 if mechanism in enabled else UNSUPPORTED_SASL_MECHANISM
                    reply = struct.pack(">hi", error, len(enabled)) + b"".join(_string(m) for m in enabled)
                    writer.write(_frame(correlation_id, reply))
                elif api_key == API_SASL_AUTHENTICATE:
                    token = body[4:4 + struct.unpack(">i", body[:4])[0]]
                    if mechanism in SCRAM_HASHES and scram is None:
                        scram = ScramExchange(SCRAM_HASHES[mechanism], self.users or {})
                    outcome = self._authenticate(mechanism, token, scram)
                    if isinstance(outcome, str):  # refused
                        self.refusals.append(f"{mechanism}: {outcome}")
                        writer.write(_frame(correlation_id, self._auth_reply(version, SASL_AUTHENTICATION_FAILED,
                                                                             outcome, b"")))
                        await writer.drain()
                        return
                    answer, done, user = outcome
                    writer.write(_frame(correlation_id, self._auth_reply(version, 0, None, answer)))
                    if done:
                        authenticated = True
                        self.logins.append((mechanism, user))
                else:
                    return  # Kafka closes a connection that skips the login
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            replies.cancel()
            for stream in (writer, up_writer):
                stream.close()

    @staticmethod
    def _auth_reply(version: int, error: int, message: str | None, data: bytes) -> bytes:
        reply = struct.pack(">h", error) + _string(message) + _bytes(data)
        return reply + (struct.pack(">q", 0) if version >= 1 else b"")

    def _authenticate(self, mechanism: str, token: bytes,
                      scram: ScramExchange | None) -> str | tuple[bytes, bool, str]:
        """(reply bytes, login complete, user) or the reason for refusing."""
        failed = "Authentication failed: Invalid username or password"
        users = self.users or {}
        if mechanism == "PLAIN":
            _, user, password = token.decode().split("\x00")
            if user in users and hmac.compare_digest(users[user].encode(), password.encode()):
                return b"", True, user
            return failed
        if mechanism == "OAUTHBEARER":
            fields = dict(p.split("=", 1) for p in token.decode().split("\x01") if "=" in p)
            bearer = fields.get("auth", "").removeprefix("Bearer ")
            return (b"", True, "oauth") if bearer in self.tokens else "Authentication failed: invalid token"
        if scram is not None:
            try:
                if scram.user is None:
                    return scram.first(token.decode()).encode(), False, ""
                return scram.final(token.decode()).encode(), True, scram.user
            except (ValueError, KeyError):
                return failed
        return f"Unsupported SASL mechanism {mechanism}"

    @staticmethod
    def _joining(frame: bytes) -> tuple[str, str | None]:
        """The member id and group instance id of a JoinGroup v5 request."""
        client_id_len = struct.unpack(">h", frame[8:10])[0]
        at = 10 + max(client_id_len, 0)
        at += 2 + struct.unpack(">h", frame[at:at + 2])[0] + 8  # group id, session and rebalance timeouts
        size = struct.unpack(">h", frame[at:at + 2])[0]
        member = frame[at + 2:at + 2 + size].decode()
        at += 2 + size
        size = struct.unpack(">h", frame[at:at + 2])[0]
        return member, (frame[at + 2:at + 2 + size].decode() if size >= 0 else None)

    @staticmethod
    def _carries_plan(frame: bytes, version: int) -> bool:
        """Whether a SyncGroup request (v0-v3) carries assignments: the leader's."""
        if version > 3:
            return False
        client_id_len = struct.unpack(">h", frame[8:10])[0]
        at = 10 + max(client_id_len, 0)
        at += 2 + struct.unpack(">h", frame[at:at + 2])[0] + 4  # group id, generation
        at += 2 + struct.unpack(">h", frame[at:at + 2])[0]  # member id
        if version >= 3:
            at += 2 + max(struct.unpack(">h", frame[at:at + 2])[0], 0)  # group instance id (nullable)
        return bool(struct.unpack(">i", frame[at:at + 4])[0] > 0)

    def _rewrite_sync_group(self, frame: bytes, version: int) -> bytes:
        """A SyncGroup reply (correlation id, [throttle,] error, assignment) with its assignment replaced."""
        if version > 3:
            return frame
        start = 4 + (4 if version >= 1 else 0)  # correlation id, throttle time (v1+)
        error, size = struct.unpack(">hi", frame[start:start + 6])
        original = frame[start + 6:start + 6 + max(size, 0)]
        self.sync_replies.append((time.monotonic(), error, original))
        if self.sync_assignment is None or self.sync_rewrites_left == 0:
            return frame
        if self.sync_rewrites_left is not None:
            self.sync_rewrites_left -= 1
        return frame[:start + 2] + _bytes(self.sync_assignment)

    async def _pipe_replies(self, up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            pending: dict[int, tuple[int, int]]) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                frame = await _read_frame(up_reader)
                api_key, version = pending.pop(struct.unpack(">i", frame[:4])[0], (None, 0))
                if api_key in (API_METADATA, API_FIND_COORDINATOR):
                    frame = self._rewrite(frame)
                elif api_key == API_SYNC_GROUP:
                    frame = self._rewrite_sync_group(frame, version)
                writer.write(struct.pack(">i", len(frame)) + frame)
                await writer.drain()
        writer.close()
