"""How long one lost produce answer stalls an aiokafka producer, for a given request timeout.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 scripts/venv.sh python bench/lost_answer.py [--request-timeout 1200] [--watch 60]

The producer talks to the broker through a proxy on loopback that drops one produce answer (the
connection stays open) three seconds in, while a message is sent every 10 ms. aiokafka keeps one
produce request in flight per broker, so every later send waits for that answer until the request
timeout; Faust gives its producer `producer_request_timeout`, 1,200 s by default. Prints the
longest delivery time seen and whether every message sent in the first part of the run was
delivered within `--watch` seconds. `--as-worker` bounds the wait for an answer as the worker does
(streaming/producer.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402
from aiokafka.cluster import ClusterMetadata  # noqa: E402

from commands.live import create_topic, free_port  # noqa: E402
from streaming.producer import PRODUCER_ANSWER_TIMEOUT, bound_answer_wait  # noqa: E402

PRODUCE = 0  # Kafka's api key of a Produce request


class AnswerDroppingProxy:
    """Forwards whole Kafka frames both ways; drops the answers of the next `drop` produce requests."""

    def __init__(self, broker: tuple[str, int]) -> None:
        self.broker, self.drop, self.dropped = broker, 0, 0
        self.produce_ids: set[int] = set()

    async def handle(self, client_reader, client_writer) -> None:
        broker_reader, broker_writer = await asyncio.open_connection(*self.broker)
        await asyncio.gather(self.pipe(client_reader, broker_writer, requests=True),
                             self.pipe(broker_reader, client_writer, requests=False), return_exceptions=True)  # fmt: skip

    async def pipe(self, reader, writer, requests: bool) -> None:
        try:
            while True:
                head = await reader.readexactly(4)
                body = await reader.readexactly(struct.unpack(">i", head)[0])
                if requests:
                    api_key, _, correlation = struct.unpack(">hhi", body[:8])
                    if api_key == PRODUCE:
                        self.produce_ids.add(correlation)
                elif self.drop and struct.unpack(">i", body[:4])[0] in self.produce_ids:
                    self.drop -= 1
                    self.dropped += 1
                    continue
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def run(bootstrap: str, request_timeout: float, watch: float, as_worker: bool) -> None:
    host, port = bootstrap.split(":")
    proxy = AnswerDroppingProxy((host, int(port)))
    proxy_port = free_port()
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", proxy_port)
    real = ClusterMetadata.broker_metadata

    def via_proxy(self, node_id):  # the broker advertises its own address: clients would bypass the proxy
        broker = real(self, node_id)
        return broker._replace(host="127.0.0.1", port=proxy_port) if broker is not None else broker

    ClusterMetadata.broker_metadata = via_proxy
    topic = f"lost-answer-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 1)
    producer = AIOKafkaProducer(
        bootstrap_servers=f"127.0.0.1:{proxy_port}", request_timeout_ms=int(request_timeout * 1000)
    )
    if as_worker:  # as the worker builds it (streaming/producer.py)
        bound_answer_wait(producer, min(request_timeout, PRODUCER_ANSWER_TIMEOUT), request_timeout)
    await producer.start()
    started, waits, pending, blocked = time.monotonic(), [], [], False
    while time.monotonic() - started < 6:
        if proxy.drop == 0 and not proxy.dropped and time.monotonic() - started > 3:
            proxy.drop = 1
        sent_at = time.monotonic()
        try:
            delivery = await asyncio.wait_for(producer.send(topic, b"x" * 100), watch)
        except TimeoutError:  # the batch is full and nothing drains it
            blocked = True
            break
        delivery.add_done_callback(lambda _, t=sent_at: waits.append(time.monotonic() - t))
        pending.append(delivery)
        await asyncio.sleep(0.01)
    done, not_done = await asyncio.wait(pending, timeout=0 if blocked else watch)
    worker = f", as the worker bounds it ({PRODUCER_ANSWER_TIMEOUT:g} s an answer)" if as_worker else ""
    print(f"request timeout {request_timeout:g} s{worker}: {len(pending)} messages, {proxy.dropped} produce answer dropped; "
          f"{len(done)} delivered, longest wait {max(waits, default=0):.1f} s; "
          + (f"a send blocked for {watch:g} s" if blocked else f"{len(not_done)} still waiting after {watch:g} s"))  # fmt: skip
    server.close()
    if not blocked and not not_done:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--request-timeout", type=float, default=1200.0, help="the producer's request timeout, s")
    parser.add_argument("--watch", type=float, default=60.0, help="how long to wait for the deliveries, s")
    parser.add_argument("--as-worker", action="store_true", help="bound the answer wait as the worker does")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    asyncio.run(run(bootstrap, args.request_timeout, args.watch, args.as_worker))


if __name__ == "__main__":
    main()
