"""The worker's producer waits 30 s for an answer, not Faust's 20 minutes (streaming/producer.py)."""

import asyncio
import os
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


def test_aiokafka_still_reads_the_timeouts_where_the_worker_sets_them():
    """The worker sets private attributes after the producer is built; they count only while
    aiokafka still reads them there."""
    import inspect

    from aiokafka.client import AIOKafkaClient
    from aiokafka.producer.sender import SendProduceReqHandler

    assert "request_timeout_ms=self._request_timeout_ms" in inspect.getsource(AIOKafkaClient._get_conn)
    assert "self._request_timeout_ms / 1000" in inspect.getsource(AIOKafkaClient._wait_on_metadata)
    assert "timeout=self._sender._request_timeout_ms" in inspect.getsource(SendProduceReqHandler.create_request)


@pytest.mark.kafka
def test_a_lost_produce_answer_stalls_the_worker_producer_for_its_answer_timeout_only():
    """bench/lost_answer.py on the real broker: a proxy drops one produce answer and keeps the
    connection open. With Faust's 1,200 s, every later send waited for it (a send blocked for
    the 60 s the bench watched)."""
    import re
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.kafka_support import require_broker

    bootstrap = require_broker()
    done = subprocess.run(
        [sys.executable, "bench/lost_answer.py", "--as-worker", "--watch", "45"], cwd=ROOT, capture_output=True,
        text=True, timeout=180, env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(
        r"1 produce answer dropped; (\d+) delivered, longest wait ([\d.]+) s; 0 still waiting", done.stdout
    )
    assert found, done.stdout + done.stderr[-2000:]
    assert producer.PRODUCER_ANSWER_TIMEOUT - 1 < float(found[2]) < producer.PRODUCER_ANSWER_TIMEOUT + 10
