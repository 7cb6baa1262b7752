"""`logweave query`, `logweave trace ID`, `logweave tail`: the query API from a terminal.

They talk HTTP to `logweave api` (api.url, with api.token), so they work from anywhere the API is
reachable and need no store credentials. On a terminal a line prints as `time level service message`
with the level coloured; piped, every line is one JSON object (JSON Lines), for jq and scripts.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

import aiohttp
import orjson

from core.errors import ConfigError
from core.settings import Settings

COLOURS = {"fatal": "\033[1;35m", "error": "\033[31m", "warn": "\033[33m", "info": "\033[32m", "debug": "\033[36m",
           "trace": "\033[90m"}
RESET, DIM = "\033[0m", "\033[2m"


def format_line(line: Mapping[str, Any], colour: bool) -> str:
    level = line.get("level") or "-"
    if not colour:
        return orjson.dumps(line).decode()
    paint = COLOURS.get(level, "")
    message = line.get("message") or orjson.dumps(line["attributes"]).decode()
    return (f"{DIM}{line['time']}{RESET} {paint}{level.upper():5}{RESET} {line.get('service') or '-'} "
            f"{DIM}{line.get('trace_id', '')}{RESET} {message}")


class ApiClient:
    """A session on the API with the configured bearer token; errors become one-line ConfigErrors."""

    def __init__(self, settings: Settings, url: str | None = None) -> None:
        self.url = (url or settings.api.url).rstrip("/")
        token = settings.api.client_token()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def get_json(self, session: aiohttp.ClientSession, path: str, params: Mapping[str, str]) -> Any:
        try:
            async with session.get(self.url + path, params=dict(params), headers=self.headers) as response:
                body = orjson.loads(await response.read())
                if response.status != 200:
                    raise ConfigError(f"{self.url}{path}: {response.status} {body.get('error', body)}")
                return body
        except aiohttp.ClientConnectionError as exc:
            raise ConfigError(f"the query API at {self.url} is not reachable ({exc}); start it with `logweave api` "
                              "or set api.url") from None
        except orjson.JSONDecodeError:
            raise ConfigError(f"{self.url}{path}: the answer is not JSON; is api.url the query API?") from None


async def run_query(client: ApiClient, params: dict[str, str], pages: int, out: TextIO = sys.stdout) -> int:
    """Print up to `pages` pages of /query; returns the lines printed."""
    colour = out.isatty()
    printed = 0
    async with aiohttp.ClientSession() as session:
        for _ in range(pages):
            body = await client.get_json(session, "/query", params)
            for line in body["lines"]:
                out.write(format_line(line, colour) + "\n")
            printed += len(body["lines"])
            if not body["next_cursor"]:
                break
            params = {**params, "cursor": body["next_cursor"]}
    return printed


async def run_trace(client: ApiClient, trace_id: str, out: TextIO = sys.stdout) -> None:
    async with aiohttp.ClientSession() as session:
        body = await client.get_json(session, f"/query/{trace_id}", {})
    if not out.isatty():
        out.write(orjson.dumps(body).decode() + "\n")
        return
    summary = body["summary"] or body["derived"]
    out.write(f"trace {trace_id}: {len(body['lines'])} lines, {summary['duration_ms']:.1f} ms, services "
              f"{', '.join(summary['services'])}, errors {summary['errors']}"
              f"{'' if body['closed'] else ' (not closed yet)'}\n")
    for line in body["lines"]:
        out.write(format_line(line, True) + "\n")


async def run_tail(client: ApiClient, params: dict[str, str], out: TextIO = sys.stdout) -> None:
    colour = out.isatty()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(client.url + "/tail", params=params, headers=client.headers) as response:
            if response.status != 200:
                raise ConfigError(f"{client.url}/tail: {response.status} {(await response.text())[:300]}")
            async for raw in response.content:
                if raw.startswith(b"data: "):
                    out.write(format_line(orjson.loads(raw[6:]), colour) + "\n")
                    out.flush()
    except aiohttp.ClientConnectionError as exc:
        raise ConfigError(f"the query API at {client.url} is not reachable ({exc})") from None
