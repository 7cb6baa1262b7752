"""The collector's own Kubernetes API configuration (apiconfig.py) and credentials (credentials.py), against
the Kubernetes API test server, behind a real TLS front where TLS matters: certificates are verified by
default, client certificates and tokens are sent, rotated tokens and expired exec credentials are picked
up again, and no secret ends up in an error message."""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme
import yaml

from collectors.pods.apiconfig import ApiConfig, ApiConfigError, load, load_in_cluster, load_kubeconfig
from collectors.pods.client import KubeClient
from collectors.pods.credentials import CredentialError, ExecPlugin, TokenFile
from core.errors import ConfigError, PermanentError
from tests.support.kube_api import FakeKubeApi
from tests.support.tls_front import TlsFront, start_tls_front


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeApi]:
    server = await FakeKubeApi().start()
    server.add_pod("p1")
    yield server
    await server.stop()


@pytest.fixture
async def front(api: FakeKubeApi, tmp_path: Path) -> AsyncIterator[TlsFront]:
    started = await start_tls_front(api.url, tmp_path, require_client_cert=True)
    yield started
    await started.close()


def kubeconfig(path: Path, cluster: dict[str, object], user: dict[str, object], context: str = "c") -> Path:
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": context,
           "clusters": [{"name": "k", "cluster": cluster}], "users": [{"name": "u", "user": user}],
           "contexts": [{"name": context, "context": {"cluster": "k", "user": "u"}}]}
    path.write_text(yaml.safe_dump(doc))
    return path


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


async def names(config: ApiConfig) -> list[str]:
    client = KubeClient(config, 4)
    try:
        pods, _ = await client.list_pods("demo-system", "", "")
        return [p["metadata"]["name"] for p in pods]
    finally:
        await client.close()


async def test_tls_is_verified_by_default(api: FakeKubeApi, front: TlsFront, tmp_path: Path) -> None:
    user = {"token": api.token, "client-certificate-data": b64(front.client_cert_file),
            "client-key-data": b64(front.client_key_file)}
    untrusted = load_kubeconfig([kubeconfig(tmp_path / "a", {"server": front.url}, user)])
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await names(untrusted)
    assert not front.seen
    # the CA as a path relative to the kubeconfig's directory, or inline
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ca.pem").write_bytes(front.ca_file.read_bytes())
    by_path = load_kubeconfig([kubeconfig(tmp_path / "sub" / "b", {"server": front.url,
                                                                  "certificate-authority": "ca.pem"}, user)])
    inline = load_kubeconfig([kubeconfig(tmp_path / "c", {"server": front.url + "/",
                                                          "certificate-authority-data": b64(front.ca_file)}, user)])
    assert await names(by_path) == ["p1"] and await names(inline) == ["p1"]
    assert [s.headers["Authorization"] for s in front.seen] == [f"Bearer {api.token}"] * 2
    assert all(s.client_subject for s in front.seen)  # the front requires a client certificate (CERT_REQUIRED)


async def test_client_certificate_files_and_skipping_verification_only_when_asked(
        api: FakeKubeApi, front: TlsFront, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    user = {"token": api.token, "client-certificate": str(front.client_cert_file),
            "client-key": str(front.client_key_file)}
    with caplog.at_level(logging.WARNING):
        config = load_kubeconfig([kubeconfig(tmp_path / "k", {"server": front.url, "insecure-skip-tls-verify": True},
                                             user)])
    assert "NOT verified" in caplog.text
    assert await names(config) == ["p1"]
    assert front.seen[0].client_subject


async def test_a_rotated_service_account_token_is_read_again(api: FakeKubeApi, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(api.token + "\n")
    credentials = TokenFile(token, reread=3600)
    config = ApiConfig(api.url, False, credentials)
    assert await names(config) == ["p1"]
    api.token = "rotated-token-value"
    token.write_text("rotated-token-value")
    assert await names(config) == ["p1"]  # the 401 made it read the file again
    assert "rotated-token-value" not in repr(credentials)


def test_in_cluster_configuration(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    (tmp_path / "token").write_text("secret-token")
    config = load_in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert config.server == "https://[fd00::1]:443" and config.ssl is not False
    with pytest.raises(ApiConfigError, match="KUBERNETES_SERVICE_HOST"):
        load_in_cluster(tmp_path, {})
    (tmp_path / "token").write_text("")
    with pytest.raises(CredentialError, match="is empty"):
        load_in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    (tmp_path / "token").write_text("secret-token")
    (tmp_path / "ca.crt").write_text("")
    with pytest.raises(ssl.SSLError):  # an empty CA file is no CA: refused, not silently the system's
        load_in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"})


def exec_plugin(tmp_path: Path, token: str, expires: str | None, api_version: str = "client.authentication.k8s.io/v1",
                fail: bool = False) -> Path:
    """A credential plugin script that counts its runs in `runs` and prints an ExecCredential."""
    status: dict[str, object] = {"token": token}
    if expires:
        status["expirationTimestamp"] = expires
    doc = {"apiVersion": api_version, "kind": "ExecCredential", "status": status}
    script = tmp_path / "plugin.py"
    script.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                      f"open({str(tmp_path / 'runs')!r}, 'a').write(os.environ['KUBERNETES_EXEC_INFO'] + '\\n')\n"
                      f"{'sys.exit(3)' if fail else ''}\nprint(json.dumps({doc!r}))\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def runs(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "runs"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_an_exec_plugin_token_is_kept_until_it_expires_or_is_refused(api: FakeKubeApi, tmp_path: Path) -> None:
    exec_plugin(tmp_path, api.token, "2999-01-01T00:00:00Z")
    spec = {"apiVersion": "client.authentication.k8s.io/v1", "command": "./plugin.py", "args": [],
            "env": [{"name": "LOGWEAVE_TEST_PLUGIN", "value": "1"}], "interactiveMode": "Never"}
    path = kubeconfig(tmp_path / "k", {"server": api.url}, {"exec": spec})
    config = load_kubeconfig([path])
    assert isinstance(config.credentials, ExecPlugin)
    assert await names(config) == ["p1"] and await names(config) == ["p1"]
    assert len(runs(tmp_path)) == 1  # cached until expiry
    assert runs(tmp_path)[0]["spec"] == {"interactive": False}
    api.token = "new-token"
    exec_plugin(tmp_path, "new-token", None)
    assert await names(config) == ["p1"]  # the 401 ran the plugin again
    assert len(runs(tmp_path)) == 2


async def test_exec_plugin_failures_say_what_failed_and_never_the_token(api: FakeKubeApi, tmp_path: Path) -> None:
    exec_plugin(tmp_path, "secret-exec-token", None, api_version="client.authentication.k8s.io/v1beta1")
    spec = {"apiVersion": "client.authentication.k8s.io/v1", "command": str(tmp_path / "plugin.py")}
    config = load_kubeconfig([kubeconfig(tmp_path / "k", {"server": api.url}, {"exec": spec})])
    with pytest.raises(PermanentError, match=r"answered 'client\.authentication\.k8s\.io/v1beta1'") as exc:
        await names(config)
    assert "secret-exec-token" not in str(exc.value)
    exec_plugin(tmp_path, "secret-exec-token", None, fail=True)
    with pytest.raises(PermanentError, match="exited with 3") as exc:
        await names(config)
    assert "secret-exec-token" not in str(exc.value)
    with pytest.raises(CredentialError, match="interactiveMode"):
        load_kubeconfig([kubeconfig(tmp_path / "k2", {"server": api.url},
                                    {"exec": {**spec, "interactiveMode": "Always"}})])


async def test_a_refused_token_is_a_permanent_error_without_the_token(api: FakeKubeApi, tmp_path: Path) -> None:
    config = load_kubeconfig([kubeconfig(tmp_path / "k", {"server": api.url}, {"token": "wrong-secret"})])
    with pytest.raises(PermanentError, match="refused access") as exc:
        await names(config)
    assert "wrong-secret" not in str(exc.value)
    basic = load_kubeconfig([kubeconfig(tmp_path / "b", {"server": api.url}, {"username": "a", "password": "pw"})])
    assert await basic.credentials.headers() == {"Authorization": "Basic " + base64.b64encode(b"a:pw").decode()}


def test_kubeconfig_list_merges_first_wins_and_errors_name_the_setting(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first = kubeconfig(tmp_path / "1", {"server": "http://127.0.0.1:1"}, {"token": "a"}, context="one")
    second = kubeconfig(tmp_path / "2", {"server": "http://127.0.0.1:2"}, {"token": "b"}, context="two")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), str(first), str(second)]))
    config, in_cluster = load(None, "two", "kubeconfig")
    assert not in_cluster and config.server == "http://127.0.0.1:1"  # cluster `k` of the first file wins
    assert load(None, None, "auto")[0].server == "http://127.0.0.1:1"  # current-context of the first file
    provider = kubeconfig(tmp_path / "3", {"server": "https://x"}, {"auth-provider": {"name": "oidc"}})
    with pytest.raises(ConfigError, match=r"auth-provider 'oidc'.*exec credential plugin"):
        load(provider, None, "kubeconfig")
    with pytest.raises(ConfigError, match=r"no context named 'nope'.*LOGWEAVE_PODS__KUBECONFIG"):
        load(first, "nope", "kubeconfig")
