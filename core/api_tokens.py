"""Bearer tokens (the worker's web API, the query API, the intake), stored only as sha256 digests and
checked in constant time.

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

Verdict = Literal["ok", "missing", "wrong"]


def hash_token(token: str) -> str:
    """The digest to put in worker.api_tokens for `token`."""
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
