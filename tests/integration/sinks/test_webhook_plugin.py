"""The example plugin (examples/webhook-sink, pip-installed into the test venv) through the whole
pipeline: a real worker process finds it by its `logweave.sinks` entry point, and a real HTTP
receiver in the test stores batches by idempotency key. The receiver stores the first batch and then
answers 503 (the reply lost): the drain retries that batch with the same key, and every line is held
exactly once. A line the receiver rejects is dead-lettered by the drain."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web

from commands.broker import free_port
from core.models import decode_dead_letters
from tests.support.kafka import read_topic
from tests.support.plugins import ensure_plugin
from tests.support.polling import wait_for
from tests.support.sink_stack import doc
from tests.support.worker_harness import WorkerHarness


@pytest.fixture(scope="session", autouse=True)
def webhook_plugin() -> None:
    ensure_plugin()


@dataclass
class Receiver:
    url: str = ""
    batches: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    bodies: dict[str, set[bytes]] = field(default_factory=dict)
    reject_n: int = -1

    def held(self) -> Counter[int]:
        return Counter(int(str(d["n"])) for docs in self.batches.values() for d in docs)

    async def handle(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        body = await request.read()
        self.requests[key] += 1
        self.bodies.setdefault(key, set()).add(body)
        docs = [orjson.loads(line) for line in body.splitlines()]
        rejected = [{"index": i, "reason": "n_refused", "detail": "receiver refuses this n"}
                    for i, d in enumerate(docs) if d["n"] == self.reject_n]
        if key not in self.batches:
            self.batches[key] = [d for d in docs if d["n"] != self.reject_n]
            if len(self.batches) == 1:
                return web.Response(status=503, text="stored, but the reply is lost")
        return web.json_response({"rejected": rejected})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver(reject_n=1234)
    app = web.Application()
    app.router.add_post("/ingest", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    found.url = f"http://127.0.0.1:{port}/ingest"
    try:
        yield found
    finally:
        await runner.cleanup()


async def test_webhook_plugin_exactly_once_through_the_pipeline(
    receiver: Receiver, make_worker: Callable[..., WorkerHarness]
) -> None:
    total = 3000
    worker = await make_worker({"LOGWEAVE_SINKS__WEBHOOK__URL": receiver.url,
                                "LOGWEAVE_SINKS__WEBHOOK__MAX_LINES": "400",
                                "LOGWEAVE_SINKS__WEBHOOK__MAX_WAIT": "0.2s",
                                "LOGWEAVE_SINKS__RETRY__INITIAL_BACKOFF": "0.05s",
                                "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"}, sinks=("webhook",)).start()
    for first in range(0, total, 1000):
        await worker.feed([doc(n) for n in range(first, first + 1000)], stream=f"s{first // 1000}")
    held = await wait_for(lambda: len(receiver.held()) >= total - 1 and receiver.held(), timeout=120,
                          what="the receiver holding every line but the rejected one",
                          last_seen=lambda: len(receiver.held()))
    assert set(held) == set(range(total)) - {1234}
    assert max(held.values()) == 1, [n for n, c in held.items() if c > 1][:10]
    retried = [key for key, count in receiver.requests.items() if count > 1]
    assert retried, receiver.requests  # the batch whose reply was lost came again ...
    assert all(len(receiver.bodies[key]) == 1 for key in retried)  # ... with the same lines under its key
    assert all(len(docs) <= 400 for docs in receiver.batches.values())

    async def dead_letters() -> list[dict[str, object]]:
        records = await read_topic(worker.broker.bootstrap, "logs.deadletter")
        return [d for _, _, _, value in records for d in decode_dead_letters(value)]

    dead = await wait_for(dead_letters, timeout=60, what="the rejected line in logs.deadletter")
    assert [(d["reason"], d["stage"], orjson.loads(str(d["line"]))["n"]) for d in dead] == [
        ("n_refused", "sink:webhook", 1234)]
