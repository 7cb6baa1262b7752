"""Bearer tokens (the worker's web API, the query API, the intake), stored only as sha256 digests and
checked in constant time, and the one setting that lists who may read log content (`auth`).

The configuration (and the Kubernetes Secret or ConfigMap it comes from) holds digests, so reading
it does not give access. A presented token is hashed and compared with every stored digest by
`hmac.compare_digest`, without stopping at the first match, so the time taken says nothing about
which digest, or how much of one, matched.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, field_validator

from core.settings_group import Group

Verdict = Literal["ok", "missing", "wrong"]
# Earlier names of auth.token_hashes, still read (merged into it) with a deprecation warning.
DEPRECATED_TOKEN_SETTINGS = (("worker", "api_tokens"), ("api", "token_hashes"))


def sha256_digests(hashes: list[str]) -> list[str]:
    """`hashes` lower-cased, or ValueError naming the first entry that is not a sha256 hex digest
    (without echoing it: it may be a token pasted by mistake)."""
    for index, value in enumerate(hashes):
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower()):
            raise ValueError(f"entry {index} is not a sha256 hex digest (64 hex characters); store the hash of a "
                             "token, never the token (`logweave hash-token`)")
    return [h.lower() for h in hashes]


class AuthSettings(Group):
    """`auth`: the bearer tokens that may read log content, as sha256 hex digests (`logweave
    hash-token`), for every route that returns it: the worker's `/traces/...` and `/api/...` and
    every query API route but `/healthz`, `/readyz` and the (data-free) page. Empty: those routes
    are open, which is fine on loopback only (both servers say so when they start)."""

    token_hashes: list[str] = Field(default_factory=list)

    @field_validator("token_hashes")
    @classmethod
    def _digests(cls, hashes: list[str]) -> list[str]:
        return sha256_digests(hashes)


def merged_digests(*lists: Sequence[str]) -> list[str]:
    """The digests of every list, each once, in first-seen order."""
    return list(dict.fromkeys(d for digests in lists for d in digests))


def hash_token(token: str) -> str:
    """The digest to put in auth.token_hashes for `token`."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, or None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def first_match(token: str, digests: Sequence[bytes]) -> int | None:
    """Index of the first of `digests` (raw sha256) that `token` hashes to, comparing every one."""
    presented = hashlib.sha256(token.strip().encode()).digest()
    found: int | None = None
    for index, digest in enumerate(digests):
        if hmac.compare_digest(presented, digest) and found is None:
            found = index
    return found


def check_bearer(authorization: str | None, digests: list[str]) -> Verdict:
    """`ok` when the `Authorization: Bearer <token>` header carries a configured token."""
    token = bearer_token(authorization)
    if token is None:
        return "missing"
    return "ok" if first_match(token, [bytes.fromhex(d) for d in digests]) is not None else "wrong"
