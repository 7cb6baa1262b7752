"""kafka.security: coherent combinations only, one line naming the setting, no secret in any line."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.cli import masked
from core.errors import ConfigError
from core.settings import load_settings


def _security(**values: str) -> dict[str, str]:
    return {f"LOGWEAVE_KAFKA__SECURITY__{k.upper()}": v for k, v in values.items()}


def _refusal(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    path = tmp_path / "x.pem"
    path.write_text("not checked here\n")
    return path


def test_default_is_plaintext_without_credentials() -> None:
    security = load_settings(environ={}).kafka.security
    assert security.security_protocol == "PLAINTEXT" and not security.uses_tls and not security.uses_sasl


def test_a_coherent_sasl_ssl_setup_loads(pem: Path) -> None:
    security = load_settings(environ=_security(security_protocol="SASL_SSL", ca_file=str(pem),
                                               sasl_mechanism="SCRAM-SHA-512", username="u",
                                               password_file=str(pem))).kafka.security
    assert security.uses_tls and security.uses_sasl and security.sasl_mechanism == "SCRAM-SHA-512"


def test_cert_file_without_key_file_is_refused(pem: Path) -> None:
    message = _refusal(_security(security_protocol="SSL", cert_file=str(pem)))
    assert "kafka.security.cert_file" in message and "LOGWEAVE_KAFKA__SECURITY__KEY_FILE" in message


def test_a_missing_ca_file_is_refused(tmp_path: Path) -> None:
    message = _refusal(_security(security_protocol="SSL", ca_file=str(tmp_path / "absent.pem")))
    assert "kafka.security.ca_file" in message and "no such file" in message


def test_tls_files_with_plaintext_are_refused(pem: Path) -> None:
    assert "security_protocol is PLAINTEXT" in _refusal(_security(ca_file=str(pem)))


def test_sasl_protocol_without_mechanism_is_refused() -> None:
    assert "kafka.security.sasl_mechanism" in _refusal(_security(security_protocol="SASL_PLAINTEXT"))


def test_sasl_without_password_is_refused() -> None:
    message = _refusal(_security(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", username="u"))
    assert "kafka.security.password" in message


def test_an_unknown_mechanism_is_refused_by_name() -> None:
    message = _refusal(_security(security_protocol="SASL_PLAINTEXT", sasl_mechanism="GSSAPI"))
    assert "kafka.security.sasl_mechanism" in message and "SCRAM-SHA-256" in message


def test_no_refusal_repeats_the_password(pem: Path) -> None:
    message = _refusal(_security(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", username="u",
                                 password="hunter2-secret", password_file=str(pem)))
    assert "password_file" in message and "hunter2-secret" not in message


def test_check_config_masks_the_password() -> None:
    settings = load_settings(environ=_security(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                                               username="u", password="hunter2-secret"))
    shown = str(masked(settings))
    assert "hunter2-secret" not in shown and "'username': 'u'" in shown
