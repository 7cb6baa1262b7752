"""Bearer tokens for the query API: only their sha256 digests are configured (`auth.token_hashes`, the
same list that guards the worker's content routes).

A request's token is hashed and compared with every configured digest in constant time, so neither
the configuration nor the timing reveals a token. Health routes and the (data-free) web page stay
open for probes and browsers; with no digests configured the API is open and says so at start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from core.api_tokens import first_match, hash_token

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


token_hash = hash_token  # the digest to put in auth.token_hashes for a token


def token_accepted(token: str, digests: list[str]) -> bool:
    return first_match(token, [bytes.fromhex(d) for d in digests]) is not None


def auth_middleware(digests: list[str]) -> Middleware:
    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not digests or request.path in OPEN_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return web.json_response({"error": "this API needs `Authorization: Bearer <token>`"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="logweave"'})
        if not token_accepted(token.strip(), digests):
            return web.json_response({"error": "the bearer token is not accepted"}, status=403)
        return await handler(request)

    return check_token
