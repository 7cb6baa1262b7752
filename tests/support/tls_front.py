"""An HTTPS front for the plain-HTTP search servers of these machines, recording what clients send.

osmem-server and noida-db speak only plain HTTP, so a test of certificate pinning, client
certificates or request signing puts this small aiohttp reverse proxy in front of them: it terminates
TLS with certificates made by `trustme` (optionally requiring a client certificate), forwards every
request unchanged to the real server, and keeps each request's method, path, headers and the
client certificate's subject for the test to inspect. It runs on the test's own event loop.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import trustme
from aiohttp import web

from commands.broker import free_port


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    client_subject: str | None


@dataclass
class TlsFront:
    """A started front: its URL, the CA to trust, a client certificate, and the requests it saw."""

    url: str
    ca_file: Path
    client_cert_file: Path
    client_key_file: Path
    fingerprint: str  # SHA-256 of the server certificate, hex with colons
    seen: list[SeenRequest] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def start_tls_front(upstream: str, tmp: Path, require_client_cert: bool = False) -> TlsFront:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("logweave-sink@example.test")
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    client_cert.cert_chain_pems[0].write_to_path(str(tmp / "client.pem"))
    client_cert.private_key_pem.write_to_path(str(tmp / "client.key"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    if require_client_cert:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    der = ssl.PEM_cert_to_DER_cert(server_cert.cert_chain_pems[0].bytes().decode())
    digest = hashlib.sha256(der).hexdigest().upper()
    port = free_port()
    front = TlsFront(f"https://127.0.0.1:{port}", tmp / "ca.pem", tmp / "client.pem", tmp / "client.key",
                     ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)))
    session = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = None
        if peer:
            subject = ",".join(f"{k}={v}" for rdn in peer.get("subject", ()) for k, v in rdn)
            subject = subject or ",".join(v for _, v in peer.get("subjectAltName", ()))
        front.seen.append(SeenRequest(request.method, request.path_qs, dict(request.headers), subject))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with session.request(request.method, upstream + request.path_qs, headers=headers,
                                   data=await request.read()) as reply:
            body = await reply.read()
            out = {k: v for k, v in reply.headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding", "connection")}
            return web.Response(status=reply.status, body=body, headers=out)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_cleanup.append(lambda _: session.close())
    front.runner = web.AppRunner(app, access_log=None)
    await front.runner.setup()
    await web.TCPSite(front.runner, "127.0.0.1", port, ssl_context=context).start()
    return front
