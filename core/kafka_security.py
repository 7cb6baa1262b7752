"""`kafka.security`: how every Kafka client of Logweave encrypts and authenticates its connections.

One settings group, used by every client (faust worker, collectors, prepare, replays), so a secured
cluster is configured once. Secrets come from the settings or from `*_file` paths (a Kubernetes
Secret mounted as files); files are read when a client is built, so a rotated Secret reaches the
next connection. The group refuses combinations that would silently connect with less protection
than the operator asked for (a CA file with PLAINTEXT, a SASL protocol without a mechanism, a
certificate without its key), each with one line naming the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
_ENV = "LOGWEAVE_KAFKA__SECURITY__"


def _name(field: str) -> str:
    return f"kafka.security.{field} ({_ENV}{field.upper()})"


class KafkaSecuritySettings(BaseModel):
    """TLS (server verification, optional client certificate) and SASL for the Kafka connections."""

    model_config = ConfigDict(extra="forbid")

    security_protocol: Protocol = "PLAINTEXT"
    ca_file: Path | None = None  # PEM bundle of the CAs that signed the brokers; default: the system store
    cert_file: Path | None = None  # client certificate (PEM) for mTLS, with key_file
    key_file: Path | None = None
    key_password: SecretStr | None = None
    key_password_file: Path | None = None
    check_hostname: bool = True  # the broker's certificate must name the host we connect to
    sasl_mechanism: Mechanism | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    oauth_token_file: Path | None = None  # OAUTHBEARER: a file holding the current token (re-read per login)

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @model_validator(mode="after")
    def _coherent(self) -> KafkaSecuritySettings:
        problem = self._tls_problem() or self._sasl_problem() or self._missing_file()
        if problem:
            raise ValueError(problem)
        return self

    def _tls_problem(self) -> str | None:
        tls_files = [f for f in ("ca_file", "cert_file", "key_file") if getattr(self, f) is not None]
        if tls_files and not self.uses_tls:
            return (f"{_name(tls_files[0])} is set but security_protocol is {self.security_protocol}; "
                    "allowed: SSL or SASL_SSL with TLS files, or no TLS files")
        if (self.cert_file is None) != (self.key_file is None):
            given, missing = ("cert_file", "key_file") if self.key_file is None else ("key_file", "cert_file")
            return f"{_name(given)} is set without {_name(missing)}; a client certificate needs both"
        if (self.key_password or self.key_password_file) and self.key_file is None:
            return f"{_name('key_password')} is set without {_name('key_file')}"
        if self.key_password is not None and self.key_password_file is not None:
            return f"{_name('key_password')} and {_name('key_password_file')} are both set; allowed: one of them"
        return None

    def _sasl_problem(self) -> str | None:
        credentials = [f for f in ("sasl_mechanism", "username", "password", "password_file", "oauth_token_file")
                       if getattr(self, f) is not None]
        if not self.uses_sasl:
            if credentials:
                return (f"{_name(credentials[0])} is set but security_protocol is {self.security_protocol}; "
                        "allowed: SASL_PLAINTEXT or SASL_SSL with SASL settings, or no SASL settings")
            return None
        if self.sasl_mechanism is None:
            return (f"{_name('sasl_mechanism')} is not set but security_protocol is {self.security_protocol}; "
                    "allowed: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER")
        if self.sasl_mechanism == "OAUTHBEARER":
            if self.oauth_token_file is None:
                return f"{_name('oauth_token_file')} is not set; OAUTHBEARER reads its token from that file"
            return None
        if self.oauth_token_file is not None:
            return (f"{_name('oauth_token_file')} is set but sasl_mechanism is {self.sasl_mechanism}; "
                    "it is only for OAUTHBEARER")
        if not self.username:
            return f"{_name('username')} is not set; SASL {self.sasl_mechanism} needs a username and a password"
        if self.password is None and self.password_file is None:
            return f"{_name('password')} (or password_file) is not set; SASL {self.sasl_mechanism} needs a password"
        if self.password is not None and self.password_file is not None:
            return f"{_name('password')} and {_name('password_file')} are both set; allowed: one of them"
        return None

    def _missing_file(self) -> str | None:
        for field in ("ca_file", "cert_file", "key_file", "key_password_file", "password_file", "oauth_token_file"):
            path: Path | None = getattr(self, field)
            if path is not None and not path.is_file():
                return f"{_name(field)} = '{path}': no such file (or not a regular file)"
        return None
