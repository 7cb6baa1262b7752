"""The real Fluent forward clients the intake tests drive: Python's fluent-logger (sync and async
senders, Message mode without acks) and npm's fluent-logger (Message, PackedForward and
CompressedPackedForward with chunk acks, and the shared-key handshake)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

NODE_DIR = Path(__file__).parent / "node"


def node_client_ready() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "fluent-logger").is_dir():
        pytest.fail("the npm fluent-logger client is not installed: `make test` installs it "
                    "(npm install --prefix tests/support/node)")
    return node


async def node_forward_send(port: int, mode: str, count: int, tag: str, shared_key: str = "") -> dict[str, Any]:
    """Run the npm client to send `count` records; its answer: {"acked": n, "errors": [...]}."""
    node = node_client_ready()
    argv = [node, str(NODE_DIR / "forward_send.js"), str(port), mode, str(count), tag]
    if shared_key:
        argv.append(shared_key)
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE, cwd=NODE_DIR)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert out.strip(), f"the node client printed nothing (stderr: {err.decode()[-500:]})"
    result: dict[str, Any] = orjson.loads(out.strip().splitlines()[-1])
    return result
