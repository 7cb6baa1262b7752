"""Say in one line why Kafka cannot be reached when the reason is the TLS or SASL set-up.

aiokafka reports a refused certificate, a missing client certificate or a wrong CA only as
"Unable to bootstrap" after logging per-host errors, and keeps retrying what can never succeed.
When a client cannot connect, `security_problem` opens one connection itself with the same TLS
context, sends an ApiVersions request (so a broker that checks the client certificate after the
TLS 1.3 handshake answers with its alert), and turns what fails into an operator's sentence naming
the setting to look at. A plain network failure returns None: that is worth retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from typing import Any

from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from core.errors import ConfigError
from core.settings import KafkaSettings
from kafka_io.client_options import ssl_context

# aiokafka raises these when the broker refuses the SASL exchange: never worth a retry
SASL_ERRORS = (SaslAuthenticationFailed, AuthenticationFailedError, UnsupportedSaslMechanismError,
               IllegalSaslStateError)
_API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 1, 8) + b"logweave"  # api key, version, correlation, client id


def sasl_problem(kafka: KafkaSettings, exc: BaseException) -> str:
    security = kafka.security
    who = f" as {security.username!r}" if security.username else ""
    return (f"Kafka at {kafka.brokers} refused SASL {security.sasl_mechanism}{who}: {exc} "
            "(check kafka.security.sasl_mechanism, username and password)")


async def start_checked(client: Any, kafka: KafkaSettings) -> None:
    """`await client.start()` for any aiokafka client; a TLS or SASL set-up problem becomes a ConfigError
    with one line (other connection failures are raised as they are, for the caller to retry)."""
    try:
        await client.start()
    except SASL_ERRORS as exc:
        await _close(client)
        raise ConfigError(sasl_problem(kafka, exc)) from None
    except KafkaConnectionError:
        problem = await security_problem(kafka)
        if problem is None:
            raise
        await _close(client)
        raise ConfigError(problem) from None


async def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        await (client.close() if hasattr(client, "close") else client.stop())


async def security_problem(kafka: KafkaSettings, timeout: float = 10.0) -> str | None:
    """A one-line explanation when TLS to the first bootstrap server fails for a set-up reason."""
    security = kafka.security
    if not security.uses_tls or not kafka.bootstrap_servers:
        return None
    host, _, port_text = kafka.bootstrap_servers[0].rpartition(":")
    where = f"Kafka at {host}:{port_text} over TLS"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port_text), ssl=ssl_context(security)), timeout)
    except ssl.SSLCertVerificationError as exc:
        hint = ("kafka.security.check_hostname" if "hostname" in (exc.verify_message or "")
                else "kafka.security.ca_file")
        return f"{where}: the broker's certificate is not trusted ({exc.verify_message}); check {hint}"
    except ssl.SSLError as exc:
        return f"{where}: TLS handshake failed ({exc.reason or exc}); is this port TLS, and is the protocol SSL?"
    except (TimeoutError, OSError, ValueError):
        return None
    try:
        writer.write(struct.pack(">i", len(_API_VERSIONS_V0)) + _API_VERSIONS_V0)
        await writer.drain()
        await asyncio.wait_for(reader.readexactly(4), timeout)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "CERTIFICATE_REQUIRED" in reason.upper() and security.cert_file is None:
            return f"{where}: the broker requires a client certificate; set kafka.security.cert_file and key_file"
        return f"{where}: the broker refused our client certificate ({reason}); check kafka.security.cert_file"
    except (asyncio.IncompleteReadError, ConnectionError):
        if security.cert_file is None:
            return (f"{where}: the broker closed the connection after the TLS handshake; it may require a "
                    "client certificate (kafka.security.cert_file and key_file)")
        return None
    except (TimeoutError, OSError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return None
