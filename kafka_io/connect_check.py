"""Say in one line why Kafka cannot be reached when the reason is the TLS or SASL set-up.

aiokafka reports a refused certificate, a missing client certificate or a wrong CA only as
"Unable to bootstrap" after logging per-host errors, and keeps retrying what can never succeed.
When a client cannot connect, `security_problem` opens one connection itself with the same options
(aiokafka's own connection: TLS handshake, ApiVersions - after which a TLS 1.3 broker that wants a
client certificate answers with its alert - and the SASL login) and turns what fails into an
operator's sentence naming the setting to look at. A plain network failure returns None: that is
worth retrying.

Under TLS 1.3 the broker's alert races our first request: when the broker has closed before the
request arrives, its kernel answers the request with a reset, which throws away the alert still
unread on our side, and the failure looks like a network error (about two probes in three on a busy
machine). So when a TLS connection is closed without an alert, `_alert_after_handshake` shakes hands
once more and sends nothing: the broker's close then comes after its alert, and the alert is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from core.errors import ConfigError
from core.settings import KafkaSettings
from kafka_io.client_options import client_options

# aiokafka raises these when the broker refuses the SASL exchange: never worth a retry
SASL_ERRORS = (SaslAuthenticationFailed, AuthenticationFailedError, UnsupportedSaslMechanismError,
               IllegalSaslStateError)


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
        quiet_leftover_connection_errors()
        raise ConfigError(problem) from None


class _LeftoverConnectionErrors(logging.Filter):
    """Drops asyncio's "Future exception was never retrieved" reports of TLS and connection errors: once a
    set-up problem has been reported in one line, aiokafka's connection tasks may still fail with the
    same TLS alert (under TLS 1.3 it arrives after the handshake) and would print a traceback after it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (record.getMessage().startswith("Future exception was never retrieved")
                    and isinstance(error, ssl.SSLError | KafkaConnectionError | ConnectionError))


def quiet_leftover_connection_errors() -> None:
    """Install the filter on asyncio's logger (once)."""
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _LeftoverConnectionErrors) for f in logger.filters):
        logger.addFilter(_LeftoverConnectionErrors())


async def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        await (client.close() if hasattr(client, "close") else client.stop())


async def security_problem(kafka: KafkaSettings, timeout: float = 10.0) -> str | None:
    """A one-line explanation when TLS or SASL toward the first bootstrap server fails, else None."""
    security = kafka.security
    if not (security.uses_tls or security.uses_sasl) or not kafka.bootstrap_servers:
        return None
    host, _, port_text = kafka.bootstrap_servers[0].rpartition(":")
    where = f"Kafka at {host}:{port_text}" + (" over TLS" if security.uses_tls else "")
    options = {k: v for k, v in client_options(kafka).items() if k != "bootstrap_servers"}
    try:
        connection = await asyncio.wait_for(
            create_conn(host, int(port_text), request_timeout_ms=int(timeout * 1000), **options), timeout)
    except ssl.SSLCertVerificationError as exc:
        hint = "kafka.security.check_hostname" if "match" in (exc.verify_message or "") else "kafka.security.ca_file"
        return f"{where}: the broker's certificate is not trusted ({exc.verify_message}); check {hint}"
    except ssl.SSLError as exc:
        return f"{where}: TLS handshake failed ({exc.reason or exc}); is this a TLS port, and the protocol SSL?"
    except SASL_ERRORS as exc:
        return sasl_problem(kafka, exc)
    except KafkaConnectionError as exc:
        cause = exc.__cause__
        if not isinstance(cause, ssl.SSLError) and isinstance(options.get("ssl_context"), ssl.SSLContext):
            cause = await _alert_after_handshake(host, int(port_text), options["ssl_context"], timeout)
        return _closed_after_handshake(where, cause, security.cert_file is not None)
    except (OSError, TimeoutError, ValueError, KafkaError):
        return None
    connection.close()
    return None


async def _alert_after_handshake(host: str, port: int, context: ssl.SSLContext,
                                 timeout: float) -> ssl.SSLError | None:
    """The TLS alert the broker sends right after the handshake, if any, read before we send a byte.

    A broker that accepted us sends nothing until asked, so the read waits; it is done only after a
    TLS connection was closed on us, where an accepting broker is not expected."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), timeout)
        await asyncio.wait_for(reader.read(1), timeout)
    except ssl.SSLError as exc:
        return exc
    except (OSError, TimeoutError, ValueError):
        return None
    finally:
        if writer is not None:
            writer.close()
    return None


def _closed_after_handshake(where: str, cause: BaseException | None, has_certificate: bool) -> str | None:
    """TLS 1.3 brokers check the client certificate after the handshake: their alert is the cause."""
    if not isinstance(cause, ssl.SSLError):
        return None
    reason = (cause.reason or str(cause)).upper()
    if "CERTIFICATE_REQUIRED" in reason and not has_certificate:
        return f"{where}: the broker requires a client certificate; set kafka.security.cert_file and key_file"
    return f"{where}: the broker refused our client certificate ({cause.reason}); check kafka.security.cert_file"
