"""The worker's producer waits 30 s for an answer, not Faust's 20 minutes (streaming/producer.py)."""

import asyncio
import time

import faust
import pytest
from aiokafka.errors import UnknownTopicOrPartitionError

from streaming import consumer_position, producer


def test_the_worker_producer_waits_30_s_for_an_answer_and_keeps_its_batches_20_minutes():
    app = faust.App("producer-test", broker="kafka://127.0.0.1:1")
    transport = consumer_position.Transport(app.conf.broker_consumer, app)

    async def build():
        return transport.create_producer()._new_producer()

    built = asyncio.run(build())
    assert built.client._request_timeout_ms == 30_000  # read by every connection the client makes
    assert built._sender._request_timeout_ms == 30_000
    assert built._message_accumulator._batch_ttl == 1200.0  # Faust's producer_request_timeout
    assert built.client._wait_on_metadata.__qualname__.startswith("patient")


def test_a_topic_metadata_wait_is_asked_again_until_its_patience_runs_out():
    calls = []

    async def wait_on_metadata(topic):
        calls.append(topic)
        if len(calls) < 3:
            raise UnknownTopicOrPartitionError()  # aiokafka's answer after its (now short) request timeout
        return {0, 1}

    assert asyncio.run(producer.patient(wait_on_metadata, patience=60)("logbert-alerts")) == {0, 1}
    assert calls == ["logbert-alerts"] * 3

    async def never(topic):
        await asyncio.sleep(0.01)
        raise UnknownTopicOrPartitionError()

    started = time.monotonic()
    with pytest.raises(UnknownTopicOrPartitionError):
        asyncio.run(producer.patient(never, patience=0.05)("logbert-alerts"))
    assert time.monotonic() - started >= 0.05
