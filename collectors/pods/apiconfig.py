"""Where the Kubernetes API is and how to authenticate: the in-cluster service account or a kubeconfig.

The collector needs four calls (list, watch and get pods, follow a log), so it carries its own small
loader instead of a generated client library (importing kubernetes-asyncio alone cost ~36 MiB of the
collector's memory). What is read:
- in a pod: `KUBERNETES_SERVICE_HOST`/`_PORT`, the service-account token (re-read, it rotates) and CA;
- a kubeconfig (`pods.kubeconfig`, else `$KUBECONFIG`, a list merged first-wins like kubectl, else
  `~/.kube/config`) and a context (`pods.context`, else `current-context`): the cluster's `server`,
  `certificate-authority`/`-data`, `tls-server-name`, `proxy-url`, `insecure-skip-tls-verify`; the
  user's `token`, `tokenFile`, `client-certificate`/`-key` (`-data`), `username`/`password`, or an
  `exec` credential plugin (collectors/pods/credentials.py). Relative paths are relative to the file.
TLS is verified unless the kubeconfig explicitly says `insecure-skip-tls-verify: true` (logged).
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from collectors.pods.credentials import (
    BasicAuth,
    CredentialError,
    Credentials,
    ExecPlugin,
    NoCredentials,
    StaticToken,
    TokenFile,
    load_client_cert,
)
from core.errors import ConfigError

log = logging.getLogger(__name__)

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ApiConfigError(CredentialError):
    """The configuration cannot be used; the message says what is wrong (never a secret)."""


@dataclass
class ApiConfig:
    """What a client needs to reach the API server."""

    server: str  # scheme://host[:port][/path prefix], no trailing slash
    ssl: ssl.SSLContext | bool  # False only when the kubeconfig asked to skip verification
    credentials: Credentials
    tls_server_name: str | None = None
    proxy: str | None = None


def load_in_cluster(account: Path = SERVICE_ACCOUNT, environ: dict[str, str] | None = None) -> ApiConfig:
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ApiConfigError("KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT are not set (not in a pod?)")
    token, ca = account / "token", account / "ca.crt"
    for path in (token, ca):
        if not path.is_file():
            raise ApiConfigError(f"{path} does not exist (no service-account token mounted?)")
    host = f"[{host}]" if ":" in host else host  # an IPv6 service address
    context = _verified_context(cafile=str(ca))
    credentials = TokenFile(token)
    credentials.read()  # unreadable or empty: fail now, not at the first request
    return ApiConfig(f"https://{host}:{port}", context, credentials)


def kubeconfig_paths(explicit: Path | None, environ: dict[str, str] | None = None) -> list[Path]:
    if explicit is not None:
        return [explicit]
    env = os.environ if environ is None else environ
    listed = [Path(p).expanduser() for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed or [Path("~/.kube/config").expanduser()]


def load_kubeconfig(paths: list[Path], context: str | None = None) -> ApiConfig:
    """The API config of `context` (default: current-context) from kubeconfig files merged first-wins."""
    merged = _merge(paths)
    name = context or merged["current-context"]
    if not name:
        raise ApiConfigError("no context given and no current-context set")
    ctx = _named(merged, "contexts", name, "context")
    cluster, cluster_dir = _named_with_dir(merged, "clusters", str(ctx.get("cluster") or ""), "cluster")
    user, user_dir = (_named_with_dir(merged, "users", str(ctx["user"]), "user") if ctx.get("user")
                      else ({}, Path.cwd()))
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise ApiConfigError(f"cluster {ctx.get('cluster')!r} has no http(s) server URL")
    context_ssl: ssl.SSLContext | bool
    if cluster.get("insecure-skip-tls-verify") is True:
        log.warning("kubeconfig cluster %r sets insecure-skip-tls-verify: the API server's certificate is NOT "
                    "verified", ctx.get("cluster"))
        context_ssl = ssl.create_default_context()
        context_ssl.check_hostname = False
        context_ssl.verify_mode = ssl.CERT_NONE
    else:
        context_ssl = _verified_context(
            cafile=_path(cluster.get("certificate-authority"), cluster_dir),
            cadata=_b64(cluster.get("certificate-authority-data"), "certificate-authority-data"))
    credentials = _credentials(user, user_dir, context_ssl)
    if "auth-provider" in user and isinstance(credentials, NoCredentials):
        provider = (user.get("auth-provider") or {}).get("name", "?")
        raise ApiConfigError(f"user {ctx['user']!r} uses auth-provider {provider!r}, which the collector does not "
                             "support (kubectl dropped gcp and azure in 1.26): use an exec credential plugin "
                             "(kubelogin for oidc and azure, gke-gcloud-auth-plugin for gcp) or a token")
    return ApiConfig(server, context_ssl, credentials, cluster.get("tls-server-name") or None,
                     cluster.get("proxy-url") or None)


def load(kubeconfig: Path | None, context: str | None, mode: str) -> tuple[ApiConfig, bool]:
    """The API config as `pods.config_mode` says (auto: in-cluster when in a pod and no kubeconfig is
    set), and whether it is the in-cluster one; ConfigError naming what to set when it cannot be loaded."""
    in_cluster = mode == "in-cluster" or (
        mode == "auto" and kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ)
    try:
        if in_cluster:
            return load_in_cluster(), True
        paths = kubeconfig_paths(kubeconfig)
        return load_kubeconfig(paths, context), False
    except (CredentialError, OSError, ssl.SSLError, yaml.YAMLError) as exc:
        where = ("the in-cluster service account" if in_cluster
                 else f"kubeconfig {kubeconfig or os.environ.get('KUBECONFIG') or '~/.kube/config'}")
        raise ConfigError(f"cannot load Kubernetes API configuration from {where}: {exc}; set "
                          "LOGWEAVE_PODS__KUBECONFIG / __CONTEXT or run in a pod with a service account") from exc


def _merge(paths: list[Path]) -> dict[str, Any]:
    """kubectl's merge: named entries and current-context from the first file that has them. Each entry
    remembers its file's directory, against which its relative paths resolve."""
    merged: dict[str, Any] = {"current-context": "", "clusters": {}, "users": {}, "contexts": {}}
    found = False
    for path in paths:
        if not path.exists() and len(paths) > 1:
            continue  # kubectl skips missing files of a KUBECONFIG list
        doc = yaml.safe_load(path.read_text()) or {}
        found = True
        if not isinstance(doc, dict):
            raise ApiConfigError(f"{path} is not a kubeconfig (a YAML mapping)")
        merged["current-context"] = merged["current-context"] or str(doc.get("current-context") or "")
        for section in ("clusters", "users", "contexts"):
            for entry in doc.get(section) or []:
                if isinstance(entry, dict) and entry.get("name"):
                    merged[section].setdefault(str(entry["name"]), (entry, path.parent))
    if not found:
        raise ApiConfigError(f"none of {', '.join(map(str, paths))} exists")
    return merged


def _named_with_dir(merged: dict[str, Any], section: str, name: str, key: str) -> tuple[dict[str, Any], Path]:
    if name not in merged[section]:
        raise ApiConfigError(f"no {key} named {name!r} in the kubeconfig")
    entry, where = merged[section][name]
    value = entry.get(key) or {}
    if not isinstance(value, dict):
        raise ApiConfigError(f"{key} {name!r} is not a mapping")
    return value, where


def _named(merged: dict[str, Any], section: str, name: str, key: str) -> dict[str, Any]:
    return _named_with_dir(merged, section, name, key)[0]


def _credentials(user: dict[str, Any], where: Path, context: ssl.SSLContext | bool) -> Credentials:
    cert = _path(user.get("client-certificate"), where)
    key = _path(user.get("client-key"), where)
    cert_data = _b64(user.get("client-certificate-data"), "client-certificate-data")
    key_data = _b64(user.get("client-key-data"), "client-key-data")
    if (cert or cert_data) and isinstance(context, ssl.SSLContext):
        if not (key or key_data):
            raise ApiConfigError("client-certificate without client-key")
        load_client_cert(context, cert_data or Path(cert or "").read_bytes(), key_data or Path(key or "").read_bytes())
    if user.get("exec"):
        return ExecPlugin(user["exec"], where, context if isinstance(context, ssl.SSLContext) else None)
    if user.get("token"):
        return StaticToken(str(user["token"]))
    if user.get("tokenFile"):
        return TokenFile(Path(_path(user["tokenFile"], where) or ""))
    if user.get("username") and user.get("password"):
        return BasicAuth(str(user["username"]), str(user["password"]))
    return NoCredentials()


def _verified_context(cafile: str | None = None, cadata: bytes | None = None) -> ssl.SSLContext:
    """Verifies the server against the given CA only (like kubectl), else the system's trust store."""
    return ssl.create_default_context(cafile=cafile, cadata=cadata.decode("ascii", "replace") if cadata else None)


def _path(value: Any, where: Path) -> str | None:
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else where / path)


def _b64(value: Any, what: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise ApiConfigError(f"{what} is not valid base64") from None
