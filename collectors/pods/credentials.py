"""How each request to the Kubernetes API authenticates: the Authorization header, kept fresh.

- `TokenFile`: a projected service-account token (or a kubeconfig `tokenFile`). The kubelet rotates
  it (an hour, typically) and old tokens stop working: it is re-read every minute, and at once after
  the server answers 401.
- `ExecPlugin`: a kubeconfig `exec` credential plugin (client.authentication.k8s.io v1 / v1beta1, as
  kubectl runs them: `KUBERNETES_EXEC_INFO` set, not interactive). Its token is kept until the
  `expirationTimestamp` it gives (a minute before it) or a 401; a client certificate it returns is
  loaded into the TLS context, for the connections opened after it.
- `StaticToken`, `BasicAuth`: a kubeconfig `token`, or `username`/`password`.
No secret is ever logged or put into an error message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

TOKEN_REREAD_SECONDS = 60.0
EXEC_TIMEOUT_SECONDS = 60.0
_EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


class CredentialError(ValueError):
    """Credentials could not be obtained; the message names the source, never a secret."""


class Credentials:
    """No authentication (the base case): each subclass gives the headers of a request."""

    async def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> bool:
        """The server answered 401: forget what is cached; True if asking again could help."""
        return False

    def __repr__(self) -> str:  # never the secret
        return f"{type(self).__name__}()"


class NoCredentials(Credentials):
    pass


class StaticToken(Credentials):
    def __init__(self, token: str) -> None:
        self._header = {"Authorization": f"Bearer {token}"}

    async def headers(self) -> dict[str, str]:
        return self._header


class BasicAuth(Credentials):
    def __init__(self, username: str, password: str) -> None:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._header = {"Authorization": f"Basic {pair}"}

    async def headers(self) -> dict[str, str]:
        return self._header


class TokenFile(Credentials):
    """A bearer token read from a file, re-read every `reread` seconds and after a 401."""

    def __init__(self, path: Path, reread: float = TOKEN_REREAD_SECONDS) -> None:
        self.path = path
        self._reread = reread
        self._header: dict[str, str] = {}
        self._read_at = float("-inf")

    def read(self) -> dict[str, str]:
        try:
            token = self.path.read_text().strip()
        except OSError as exc:
            raise CredentialError(f"cannot read the token file {self.path}: {exc.strerror}") from None
        if not token:
            raise CredentialError(f"the token file {self.path} is empty")
        self._header = {"Authorization": f"Bearer {token}"}
        self._read_at = time.monotonic()
        return self._header

    async def headers(self) -> dict[str, str]:
        if time.monotonic() - self._read_at >= self._reread:
            try:
                return self.read()
            except CredentialError:
                if not self._header:
                    raise
                # mid-rotation (the kubelet swaps a symlink): keep the last token, try again next time
        return self._header

    def invalidate(self) -> bool:
        self._read_at = float("-inf")
        return True


class ExecPlugin(Credentials):
    """A kubeconfig `exec` credential plugin, run when no unexpired credential is cached."""

    def __init__(self, spec: dict[str, Any], where: Path, context: ssl.SSLContext | None) -> None:
        self.api_version = str(spec.get("apiVersion") or "")
        if self.api_version not in _EXEC_API_VERSIONS:
            raise CredentialError(f"exec plugin apiVersion {self.api_version!r} is not one of "
                                 f"{', '.join(_EXEC_API_VERSIONS)}")
        if not spec.get("command"):
            raise CredentialError("exec plugin without a command")
        if spec.get("interactiveMode") == "Always":
            raise CredentialError("exec plugin needs a terminal (interactiveMode: Always); the collector "
                                 "runs unattended")
        command = str(spec["command"])
        # kubectl: a command with a path separator is relative to the kubeconfig's directory
        if os.sep in command and not os.path.isabs(command):
            command = str(where / command)
        self.argv = [command, *(str(a) for a in spec.get("args") or [])]
        self.env = {str(e["name"]): str(e["value"]) for e in spec.get("env") or [] if isinstance(e, dict)}
        self._context = context
        self._header: dict[str, str] = {}
        self._expires = float("-inf")  # monotonic time after which the plugin runs again
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        if time.monotonic() < self._expires:
            return self._header
        async with self._lock:  # hundreds of streams may ask at once: run the plugin once
            if time.monotonic() >= self._expires:
                await self._run()
        return self._header

    def invalidate(self) -> bool:
        self._expires = float("-inf")
        return True

    async def _run(self) -> None:
        info = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
        env = {**os.environ, **self.env, "KUBERNETES_EXEC_INFO": json.dumps(info)}
        name = self.argv[0]
        try:
            proc = await asyncio.create_subprocess_exec(*self.argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise CredentialError(f"cannot run the exec credential plugin {name}: {exc.strerror}") from None
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), EXEC_TIMEOUT_SECONDS)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CredentialError(f"the exec credential plugin {name} did not answer within "
                                  f"{EXEC_TIMEOUT_SECONDS:.0f} s") from None
        if proc.returncode != 0:
            raise CredentialError(f"the exec credential plugin {name} exited with {proc.returncode} (its "
                                  "messages are on stderr)")
        self._apply(_exec_status(out, self.api_version, name), name)

    def _apply(self, status: dict[str, Any], name: str) -> None:
        token = status.get("token")
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if not token and not (cert and key):
            raise CredentialError(f"the exec credential plugin {name} gave neither a token nor a client certificate")
        if cert and key and self._context is not None:
            load_client_cert(self._context, str(cert).encode(), str(key).encode())
        self._header = {"Authorization": f"Bearer {token}"} if token else {}
        self._expires = _expiry(status.get("expirationTimestamp"), name)


def _exec_status(out: bytes, api_version: str, name: str) -> dict[str, Any]:
    try:
        doc = json.loads(out)
    except ValueError:
        raise CredentialError(f"the exec credential plugin {name} did not print an ExecCredential (JSON)") from None
    if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential" or not isinstance(doc.get("status"), dict):
        raise CredentialError(f"the exec credential plugin {name} did not print an ExecCredential with a status")
    if doc.get("apiVersion") != api_version:
        raise CredentialError(f"the exec credential plugin {name} answered {doc.get('apiVersion')!r}, "
                              f"not {api_version!r}")
    status: dict[str, Any] = doc["status"]
    return status


def _expiry(stamp: Any, name: str) -> float:
    """The monotonic time to run the plugin again: a minute before the credential expires (never, if it
    gives no expiry: then only after a 401)."""
    if not stamp:
        return float("inf")
    try:
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise CredentialError(f"the exec credential plugin {name} gave an unreadable expirationTimestamp") from None
    return time.monotonic() + max(0.0, when - time.time() - 60.0)


def load_client_cert(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """Load a PEM certificate and key given as bytes (the ssl module reads only files): through a file
    readable only by us in a private directory, removed at once."""
    with tempfile.TemporaryDirectory(prefix="logweave-kube-") as tmp:
        path = Path(tmp) / "client.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(cert.rstrip(b"\n") + b"\n" + key)
        try:
            context.load_cert_chain(str(path))
        except ssl.SSLError as exc:
            raise CredentialError(f"the client certificate or key cannot be loaded ({exc.reason})") from None
