"""Who is sending: bearer tokens (HTTP, OTLP/HTTP, gRPC metadata) and forward shared keys -> tenant.

Tokens are configured as SHA-256 digests, so a leaked config file leaks no credential; a presented
token is hashed and compared with `hmac.compare_digest` against every configured digest (no early
exit, so timing does not tell how close a guess was). With no tenants configured, requests need no
credentials and carry the tenant `anonymous` (allowed on loopback only, see IntakeSettings).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.api_tokens import bearer_token, first_match
from core.intake_settings import IntakeSettings, IntakeTenant

ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated sender: its tenant, the key its rate limit is counted under, and the limit."""

    tenant: str
    credential: str  # token digest (or shared-key tenant name): the rate-limit bucket key
    rate_lines: float = 0.0
    burst_lines: int = 0


class AuthError(Exception):
    """No credential, or one that matches no tenant; the message never repeats the credential."""


class TenantDirectory:
    def __init__(self, settings: IntakeSettings) -> None:
        self.tenants = list(settings.tenants)
        self._digests = [(bytes.fromhex(d), t) for t in self.tenants for d in t.token_sha256]
        self.open = not self.tenants  # no tenants: anonymous access (loopback, or explicitly allowed)

    def _caller(self, tenant: IntakeTenant, credential: str) -> Caller:
        return Caller(tenant.name, credential, tenant.rate_lines, tenant.burst_lines)

    def bearer(self, authorization: str | None) -> Caller:
        """The caller of an `Authorization` header value (`Bearer <token>`)."""
        if self.open and not authorization:
            return Caller(ANONYMOUS, ANONYMOUS)
        if not authorization:
            raise AuthError("missing bearer token (Authorization: Bearer <token>)")
        token = bearer_token(authorization)
        if token is None:
            raise AuthError("expected Authorization: Bearer <token>")
        index = first_match(token, [known for known, _ in self._digests])
        if index is None:
            if self.open:
                return Caller(ANONYMOUS, ANONYMOUS)
            raise AuthError("unknown bearer token")
        known, tenant = self._digests[index]
        return self._caller(tenant, known.hex())

    def shared_keys(self) -> list[tuple[str, IntakeTenant]]:
        """(shared key, tenant) of every tenant that has a forward shared key."""
        return [(t.forward_shared_key.get_secret_value(), t) for t in self.tenants
                if t.forward_shared_key.get_secret_value()]

    def shared_key_caller(self, tenant: IntakeTenant) -> Caller:
        return self._caller(tenant, "forward:" + tenant.name)
