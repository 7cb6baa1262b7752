"""The one place Kafka settings become client options: every aiokafka client is built from here.

`client_options(kafka)` gives the keyword arguments of AIOKafkaProducer / AIOKafkaConsumer /
AIOKafkaAdminClient: the bootstrap servers and `kafka.security` (an `ssl.SSLContext` made with
`ssl.create_default_context`, the SASL mechanism and credentials). The faust worker gets the same
material through `security_material(kafka)`; its App turns that into faust's credential objects
(app/faust_app.py), since this layer must not import faust. A client built anywhere else would skip
TLS and SASL on a secured cluster, which tests/unit/kafka_io/test_client_options.py checks by scanning
the sources for direct client construction.

Secret files (password_file, key_password_file, oauth_token_file) are read when a client is built
(the token file at every login), so a rotated Kubernetes Secret reaches the next connection.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.abc import AbstractTokenProvider

from core.errors import ConfigError
from core.kafka_security import KafkaSecuritySettings
from core.settings import KafkaSettings


def _secret(value: Any, path: Path | None) -> str | None:
    if value is not None:
        text: str = value.get_secret_value()
        return text
    if path is not None:
        return path.read_text().strip()  # a Secret mounted as a file often ends with a newline
    return None


def ssl_context(security: KafkaSecuritySettings) -> ssl.SSLContext:
    """Verify the brokers (ca_file, else the system store; hostname unless turned off); mTLS when set."""
    try:
        context = ssl.create_default_context(cafile=str(security.ca_file) if security.ca_file else None)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"kafka.security.ca_file = '{security.ca_file}': not a readable PEM CA bundle "
                          f"({exc})") from None
    context.check_hostname = security.check_hostname
    if security.cert_file is not None and security.key_file is not None:
        try:
            context.load_cert_chain(str(security.cert_file), str(security.key_file),
                                    password=_secret(security.key_password, security.key_password_file))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"kafka.security.cert_file / key_file ('{security.cert_file}', "
                              f"'{security.key_file}'): not a PEM certificate and its key, or a wrong "
                              f"key_password ({exc})") from None
    return context


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER: the token is whatever the file holds at login time (a sidecar or Secret refreshes it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def token(self) -> str:
        return (await asyncio.to_thread(self.path.read_text)).strip()


@dataclass(frozen=True, slots=True)
class SecurityMaterial:
    """`kafka.security` resolved: what any Kafka client library needs to connect."""

    protocol: str
    ssl_context: ssl.SSLContext | None
    mechanism: str | None
    username: str | None
    password: str | None
    token_provider: FileTokenProvider | None


def security_material(kafka: KafkaSettings) -> SecurityMaterial:
    security = kafka.security
    token = None
    if security.uses_sasl and security.sasl_mechanism == "OAUTHBEARER" and security.oauth_token_file is not None:
        token = FileTokenProvider(security.oauth_token_file)
    return SecurityMaterial(
        protocol=security.security_protocol,
        ssl_context=ssl_context(security) if security.uses_tls else None,
        mechanism=security.sasl_mechanism if security.uses_sasl else None,
        username=security.username,
        password=_secret(security.password, security.password_file) if security.uses_sasl else None,
        token_provider=token,
    )


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments every aiokafka client takes: bootstrap servers, TLS and SASL."""
    material = security_material(kafka)
    options: dict[str, Any] = {"bootstrap_servers": kafka.bootstrap_servers,
                               "security_protocol": material.protocol}
    if material.ssl_context is not None:
        options["ssl_context"] = material.ssl_context
    if material.mechanism is not None:
        options["sasl_mechanism"] = material.mechanism
        if material.token_provider is not None:
            options["sasl_oauth_token_provider"] = material.token_provider
        else:
            options["sasl_plain_username"] = material.username
            options["sasl_plain_password"] = material.password
    return options
