"""Bearer tokens for the worker's web API, stored only as sha256 digests and checked in constant time.

The configuration (and the Kubernetes Secret or ConfigMap it comes from) holds digests, so reading
it does not give access. A presented token is hashed and compared with every stored digest by
`hmac.compare_digest`, without stopping at the first match, so the time taken says nothing about
which digest, or how much of one, matched.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

Verdict = Literal["ok", "missing", "wrong"]


def hash_token(token: str) -> str:
    """The digest to put in worker.api_tokens for `token`."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def check_bearer(authorization: str | None, digests: list[str]) -> Verdict:
    """`ok` when the `Authorization: Bearer <token>` header carries a configured token."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "missing"
    presented = hashlib.sha256(token.strip().encode()).digest()
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(presented, bytes.fromhex(digest))
    return "ok" if matched else "wrong"
