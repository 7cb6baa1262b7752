"""client_options: kafka.security becomes aiokafka options, and no client is built without them."""

from __future__ import annotations

import ast
import ssl
from pathlib import Path

import pytest
import trustme

from core.settings import load_settings
from kafka_io.client_options import client_options

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("core", "kafka_io", "sinks", "collectors", "tables", "agents", "app", "commands")
CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}


def _options(env: dict[str, str]) -> dict[str, object]:
    return client_options(load_settings(environ=env).kafka)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    client = ca.issue_cert("logweave-client")
    client.cert_chain_pems[0].write_to_path(str(tmp / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp / "client.key"))
    (tmp / "password").write_text("from-a-secret\n")
    return {"ca": tmp / "ca.pem", "cert": tmp / "client.pem", "key": tmp / "client.key",
            "password": tmp / "password"}


def test_plaintext_has_no_tls_and_no_sasl() -> None:
    options = _options({"KAFKA_BROKERS": "a:1,b:2"})
    assert options == {"bootstrap_servers": ["a:1", "b:2"], "security_protocol": "PLAINTEXT"}


def test_ssl_verifies_the_broker_and_presents_the_client_certificate(tls_files: dict[str, Path]) -> None:
    options = _options({"LOGWEAVE_KAFKA__SECURITY__SECURITY_PROTOCOL": "SSL",
                        "LOGWEAVE_KAFKA__SECURITY__CA_FILE": str(tls_files["ca"]),
                        "LOGWEAVE_KAFKA__SECURITY__CERT_FILE": str(tls_files["cert"]),
                        "LOGWEAVE_KAFKA__SECURITY__KEY_FILE": str(tls_files["key"])})
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options


def test_hostname_checking_can_be_turned_off_but_not_verification(tls_files: dict[str, Path]) -> None:
    options = _options({"LOGWEAVE_KAFKA__SECURITY__SECURITY_PROTOCOL": "SSL",
                        "LOGWEAVE_KAFKA__SECURITY__CA_FILE": str(tls_files["ca"]),
                        "LOGWEAVE_KAFKA__SECURITY__CHECK_HOSTNAME": "false"})
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_a_key_that_is_not_pem_is_one_line_naming_the_setting(tls_files: dict[str, Path]) -> None:
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"kafka\.security\.cert_file / key_file"):
        _options({"LOGWEAVE_KAFKA__SECURITY__SECURITY_PROTOCOL": "SSL",
                  "LOGWEAVE_KAFKA__SECURITY__CERT_FILE": str(tls_files["cert"]),
                  "LOGWEAVE_KAFKA__SECURITY__KEY_FILE": str(tls_files["password"])})


def test_sasl_password_comes_from_the_secret_file(tls_files: dict[str, Path]) -> None:
    options = _options({"LOGWEAVE_KAFKA__SECURITY__SECURITY_PROTOCOL": "SASL_SSL",
                        "LOGWEAVE_KAFKA__SECURITY__SASL_MECHANISM": "SCRAM-SHA-256",
                        "LOGWEAVE_KAFKA__SECURITY__USERNAME": "svc",
                        "LOGWEAVE_KAFKA__SECURITY__PASSWORD_FILE": str(tls_files["password"])})
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["sasl_plain_username"] == "svc" and options["sasl_plain_password"] == "from-a-secret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


async def test_oauthbearer_reads_the_token_file_at_each_login(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    options = _options({"LOGWEAVE_KAFKA__SECURITY__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                        "LOGWEAVE_KAFKA__SECURITY__SASL_MECHANISM": "OAUTHBEARER",
                        "LOGWEAVE_KAFKA__SECURITY__OAUTH_TOKEN_FILE": str(token)})
    provider = options["sasl_oauth_token_provider"]
    assert await provider.token() == "first"  # type: ignore[attr-defined]
    token.write_text("rotated")
    assert await provider.token() == "rotated"  # type: ignore[attr-defined]


def bare_client_calls(source: str) -> list[int]:
    """Lines constructing an aiokafka client without `**client_options(...)`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in CLIENTS:
            spread = [k.value for k in node.keywords if k.arg is None]
            if not any(isinstance(v, ast.Call) and getattr(v.func, "id", "") == "client_options" for v in spread):
                found.append(node.lineno)
    return found


def test_the_scan_catches_a_bare_client() -> None:
    assert bare_client_calls("AIOKafkaProducer(bootstrap_servers=['x'])\n"
                             "AIOKafkaConsumer(**client_options(k), group_id=None)\n") == [1]


def test_every_kafka_client_is_built_with_client_options() -> None:
    bare = {str(path.relative_to(ROOT)): lines for package in PACKAGES for path in (ROOT / package).rglob("*.py")
            if (lines := bare_client_calls(path.read_text()))}
    assert bare == {}, "aiokafka clients built without kafka_io.client_options (no TLS/SASL on them)"
    app_source = (ROOT / "app" / "faust_app.py").read_text()
    assert "broker_credentials=broker_credentials(kafka)" in app_source
