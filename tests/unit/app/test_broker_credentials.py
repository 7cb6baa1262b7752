"""The worker's faust App gets kafka.security as the aiokafka options every other client gets."""

from __future__ import annotations

from pathlib import Path

import trustme
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from app.faust_app import broker_credentials
from core.settings import load_settings
from kafka_io.client_options import client_options


def _both(env: dict[str, str]) -> tuple[dict[str, object], dict[str, object]]:
    kafka = load_settings(environ=env).kafka
    faust_side = dict(credentials_to_aiokafka_auth(broker_credentials(kafka)))
    ours = {k: v for k, v in client_options(kafka).items() if k not in ("bootstrap_servers", "ssl_context")}
    return faust_side, ours


def test_plaintext_gives_faust_no_credentials() -> None:
    assert broker_credentials(load_settings(environ={}).kafka) is None


def test_sasl_ssl_scram_reaches_faust_as_it_reaches_every_client(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    faust_side, ours = _both({"LOGWEAVE_KAFKA__SECURITY__SECURITY_PROTOCOL": "SASL_SSL",
                              "LOGWEAVE_KAFKA__SECURITY__CA_FILE": str(ca),
                              "LOGWEAVE_KAFKA__SECURITY__SASL_MECHANISM": "SCRAM-SHA-512",
                              "LOGWEAVE_KAFKA__SECURITY__USERNAME": "svc",
                              "LOGWEAVE_KAFKA__SECURITY__PASSWORD": "pw"})
    assert faust_side["ssl_context"] is not None
    assert {k: faust_side[k] for k in ours} == ours == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc", "sasl_plain_password": "pw"}


def test_oauthbearer_reaches_faust_with_the_token_file_provider(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    faust_side, _ours = _both({"LOGWEAVE_KAFKA__SECURITY__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                              "LOGWEAVE_KAFKA__SECURITY__SASL_MECHANISM": "OAUTHBEARER",
                              "LOGWEAVE_KAFKA__SECURITY__OAUTH_TOKEN_FILE": str(token)})
    assert faust_side["sasl_mechanism"] == "OAUTHBEARER" and faust_side["security_protocol"] == "SASL_PLAINTEXT"
    assert faust_side["sasl_oauth_token_provider"].path == token  # type: ignore[attr-defined]
