"""The Fluent forward protocol v1 shared-key handshake (HELO / PING / PONG), server side.

The server opens with `["HELO", {"nonce", "auth", "keepalive"}]`; the client answers `["PING",
hostname, salt, sha512_hex(salt + hostname + nonce + shared_key), username, password_digest]`; the
server checks the digest against each tenant's shared key (the key that matches names the tenant)
and answers `["PONG", ok, reason, server_hostname, sha512_hex(salt + server_hostname + nonce +
shared_key)]`, which proves to the client that the server knows the key too. The key itself never
crosses the wire. User/password authentication (`auth`) is not offered: the shared key identifies the
tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
from typing import Any

from core.intake_settings import IntakeTenant


def _hexdigest(*parts: bytes) -> str:
    h = hashlib.sha512()
    for part in parts:
        h.update(part)
    return h.hexdigest()


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class Handshake:
    """One connection's handshake: `helo()` to send, then `pong(ping)` -> (tenant or None, answer)."""

    def __init__(self, keys: list[tuple[str, IntakeTenant]], server_hostname: str | None = None) -> None:
        self.keys = keys
        self.nonce = os.urandom(16)
        self.hostname = server_hostname or socket.gethostname()

    def helo(self) -> list[Any]:
        return ["HELO", {"nonce": self.nonce, "auth": b"", "keepalive": True}]

    def pong(self, ping: Any) -> tuple[IntakeTenant | None, list[Any]]:
        if not (isinstance(ping, list | tuple) and len(ping) >= 4 and ping[0] == "PING"):
            return None, ["PONG", False, "expected PING", self.hostname, ""]
        client_host, salt, digest = _bytes(ping[1]), _bytes(ping[2]), _bytes(ping[3])
        found: tuple[str, IntakeTenant] | None = None
        for key, tenant in self.keys:  # every key is tried: the time taken does not tell which matched
            expected = _hexdigest(salt, client_host, self.nonce, key.encode()).encode()
            if hmac.compare_digest(expected, digest) and found is None:
                found = (key, tenant)
        if found is None:
            return None, ["PONG", False, "shared key mismatch", self.hostname, ""]
        key, tenant = found
        proof = _hexdigest(salt, self.hostname.encode(), self.nonce, key.encode())
        return tenant, ["PONG", True, "", self.hostname, proof]
