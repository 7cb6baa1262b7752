"""The limit the intake is measured beside: a bare server that reads each request body (HTTP) or
message (forward, PackedForward) and produces it to Kafka as one record, answering after the ack.
No parsing, no line building, no auth: what an asyncio/aiohttp server plus aiokafka costs at least.

    python -m tests.bench.intake_floor http|forward PORT BOOTSTRAP TOPIC
"""

from __future__ import annotations

import asyncio
import sys

import msgpack
from aiohttp import web
from aiokafka import AIOKafkaProducer


async def main(mode: str, port: int, bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                                max_request_size=16 << 20, max_batch_size=1 << 20)
    await producer.start()

    async def produce(value: bytes) -> None:
        await (await producer.send(topic, value=value))

    if mode == "http":
        async def post(request: web.Request) -> web.Response:
            await produce(await request.read())
            return web.json_response({"accepted": True}, status=202)

        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/logs", post)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    else:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            feed = msgpack.Unpacker(raw=False, max_buffer_size=64 << 20)
            while data := await reader.read(256 * 1024):
                feed.feed(data)
                for message in feed:
                    await produce(message[1])
                    writer.write(msgpack.packb({"ack": message[2]["chunk"]}))

        await asyncio.start_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
