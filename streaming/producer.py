"""The worker's aiokafka producer: a request waits for its answer at most PRODUCER_ANSWER_TIMEOUT,
while its batches keep Faust's `producer_request_timeout` (20 minutes) to be sent in.

aiokafka keeps one produce request in flight per broker, and waits for its answer as long as the
client's request timeout. Faust sets that from `producer_request_timeout`, the same setting that
makes batches expire, and keeps it at 20 minutes so that batches outlive a broker outage; one lost
answer then stalled every send to that broker for 20 minutes (`bench/lost_answer.py`: a send
blocked for the 60 s watched at 1,200 s, every message delivered within 10.0 s at 10 s). The
client also gives up on a topic's metadata after its request timeout; that wait keeps Faust's."""

from __future__ import annotations

import time

from aiokafka.errors import UnknownTopicOrPartitionError
from faust.transport.drivers import aiokafka as faust_aiokafka

PRODUCER_ANSWER_TIMEOUT = 30.0  # s, as the Java client's request.timeout.ms


class Producer(faust_aiokafka.Producer):
    def _new_producer(self, transactional_id: str | None = None):
        producer = super()._new_producer(transactional_id)
        bound_answer_wait(producer, min(self.request_timeout, PRODUCER_ANSWER_TIMEOUT), self.request_timeout)
        return producer


def bound_answer_wait(producer, answer_timeout: float, metadata_patience: float) -> None:
    """Before the AIOKafkaProducer starts: its requests wait `answer_timeout` s for an answer; its
    batches keep the expiry they were built with; a topic's metadata is waited for `metadata_patience` s."""
    client = producer.client
    client._request_timeout_ms = int(answer_timeout * 1000)  # each connection's wait for an answer
    producer._sender._request_timeout_ms = int(answer_timeout * 1000)  # the broker's wait for its replicas
    client._wait_on_metadata = patient(client._wait_on_metadata, metadata_patience)


def patient(wait_on_metadata, patience: float):
    """aiokafka's wait for a topic's metadata, asked again until `patience` s have passed."""

    async def wait(topic: str):
        deadline = time.monotonic() + patience
        while True:
            try:
                return await wait_on_metadata(topic)
            except UnknownTopicOrPartitionError:
                if time.monotonic() >= deadline:
                    raise

    return wait
