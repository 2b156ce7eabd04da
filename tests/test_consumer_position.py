"""The worker's consumer around Faust's seek back to committed offsets, without a broker."""

import asyncio

import faust
import faust.transport.consumer
from faust.types import TP

from streaming import consumer_position

RAW = TP("logs-raw", 0)


def new_consumer(monkeypatch, seek):
    app = faust.App("consumer-position-test", broker="kafka://127.0.0.1:1")
    transport = consumer_position.Transport(app.conf.broker_consumer, app)

    async def ignore(*_, **__) -> None:
        return None

    consumer = transport.create_consumer(callback=ignore, on_partitions_revoked=ignore, on_partitions_assigned=ignore)
    monkeypatch.setattr(faust.transport.consumer.Consumer, "perform_seek", seek)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 100)
    return consumer


def test_the_seek_cuts_a_fetched_batch_and_nothing_is_handed_on_until_the_flow_resumes(monkeypatch):
    """Faust seeks a new member's stream partitions back to their committed offsets, then resumes
    the app's flow, which empties the streams' buffers: a record handed on in between, from a batch
    fetched before the seek or after it, was emptied out and never read again (the model-rollout
    test lost lines). The flow stops for the seek; Faust resumes it after emptying the buffers."""
    flow_at_seek = []

    async def seek(self) -> None:
        flow_at_seek.append(self.flow_active)

    consumer = new_consumer(monkeypatch, seek)

    async def fetched(timeout: float):
        return {RAW: ["record 10", "record 11", "record 12"]}, {RAW}

    monkeypatch.setattr(consumer, "_wait_next_records", fetched)
    monkeypatch.setattr(consumer, "_to_message", lambda tp, record: record)

    async def read_a_batch(seek_after: int | None) -> list[str]:
        handed_on = []
        async for _, message in consumer.getmany(timeout=1.0):  # Faust's own getmany
            handed_on.append(message)
            if len(handed_on) == seek_after:
                await consumer.perform_seek()
        return handed_on

    assert asyncio.run(read_a_batch(seek_after=1)) == ["record 10"]
    assert flow_at_seek == [False] and not consumer.flow_active and consumer.suspend_flow.is_set()

    consumer.resume_flow()  # Faust, once the buffers are emptied
    assert consumer.flow_active and not consumer.suspend_flow.is_set()
    assert asyncio.run(read_a_batch(seek_after=None)) == ["record 10", "record 11", "record 12"]


def test_every_member_knows_the_raw_topics_partition_count(monkeypatch):
    """Faust asks the group coordinator's metadata snapshot, which only the group's leader fills in;
    the window needs every member to know all raw partitions, so it reads the cluster metadata."""

    async def seek(self) -> None:
        return None

    consumer = new_consumer(monkeypatch, seek)
    thread = consumer._thread
    assert consumer.topic_partitions("logs-raw") is None  # not started: no metadata
    known = {"logs-raw": {0, 1, 2}}
    thread._consumer = type("AIOKafkaConsumer", (), {"partitions_for_topic": lambda self, topic: known.get(topic)})()
    assert consumer.topic_partitions("logs-raw") == 3
    assert consumer.topic_partitions("elsewhere") is None
