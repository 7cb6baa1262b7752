"""Who may read what on the worker's web port, and which trace ids a lookup may name.

Routes that return log content (`/traces/...`, `/api/...`) need a bearer token once
auth.token_hashes holds digests: 401 without one, 403 with a wrong one. `/healthz` and `/readyz`
stay open for probes; `/metrics` needs a token only with worker.metrics_require_token.

Trace ids are printable text of bounded length: anything else is refused before it reaches the
table, so a long id costs nothing and the table's bookkeeping keys (`\\x00clock`, `\\x00held`, ...,
and faust's `__faust\\x00offset__`) cannot be read through the lookup.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError
from faust.web import Request, Response, View

from core.api_tokens import check_bearer
from core.settings import WorkerSettings

MAX_TRACE_ID_BYTES = 512


class BadRequestsInOneLine(logging.Filter):
    """aiohttp logs every malformed request (a 100 KB URL, a header over its limits) with a traceback,
    so anyone can fill the worker's log with them: keep one warning line with the reason instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "refused a malformed HTTP request (%s %s)", (exc.code, exc.message[:200])
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_bad_requests() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestsInOneLine) for f in logger.filters):
        logger.addFilter(BadRequestsInOneLine())


class WebGuard:
    def __init__(self, worker: WorkerSettings, digests: list[str]) -> None:
        self._digests = list(digests)  # auth.token_hashes
        self._metrics_need_token = worker.metrics_require_token

    def refuse(self, view: View, request: Request) -> Response | None:
        """A 401/403 response when a token is required and not given, else None."""
        if not self._digests:
            return None
        verdict = check_bearer(request.headers.get("Authorization"), self._digests)
        if verdict == "ok":
            return None
        if verdict == "missing":
            return view.json({"error": "a bearer token is required"}, status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="logweave"'})
        return view.json({"error": "the bearer token is not accepted"}, status=403)

    def refuse_metrics(self, view: View, request: Request) -> Response | None:
        return self.refuse(view, request) if self._metrics_need_token else None


def trace_id_problem(trace_id: str) -> str | None:
    """Why `trace_id` cannot name a trace (too long, or holding control characters), else None."""
    if len(trace_id.encode(errors="surrogatepass")) > MAX_TRACE_ID_BYTES:
        return f"a trace id is at most {MAX_TRACE_ID_BYTES} bytes"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in trace_id):
        return "a trace id holds no control characters"
    return None
