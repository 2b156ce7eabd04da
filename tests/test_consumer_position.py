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


class Metadata:
    """The two questions `topics_not_ready` asks of aiokafka's ClusterMetadata."""

    def __init__(self, leaders: dict[str, dict[int, int]]) -> None:
        self.leaders = leaders

    def partitions_for_topic(self, topic):
        return set(self.leaders[topic]) if topic in self.leaders else None

    def leader_for_partition(self, tp):
        return self.leaders.get(tp.topic, {}).get(tp.partition)


def test_a_topic_is_ready_once_every_partition_has_a_leader_node_zero_included():
    metadata = Metadata({"app-keys": {0: 0, 1: 0}, "app-sequences": {0: 1, 1: -1}, "app-alerts": {}})
    wanted = ["app-keys", "app-sequences", "app-alerts", "app-scores"]
    assert consumer_position.topics_not_ready(metadata, wanted) == {"app-sequences", "app-alerts", "app-scores"}


def test_the_wait_asks_again_until_the_topics_are_ready_and_gives_up_after_its_timeout():
    answers = iter([RuntimeError("no broker"), Metadata({}), Metadata({"app-keys": {0: -1}})])

    async def fetch():
        answer = next(answers, Metadata({"app-keys": {0: 1}}))
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert asyncio.run(consumer_position.wait_for_topics(fetch, {"app-keys"}, timeout=5, interval=0.01)) == set()
    assert next(answers, None) is None  # every answer before the ready one was asked for

    async def never_there():
        return Metadata({})

    missing = asyncio.run(consumer_position.wait_for_topics(never_there, {"app-keys"}, timeout=0.05, interval=0.01))
    assert missing == {"app-keys"}


def test_the_worker_subscribes_after_its_internal_topics_are_in_the_metadata(monkeypatch):
    """Faust creates its internal topics a moment before it subscribes; a group leader whose metadata
    lacked one at the join assigned none of it until the next refresh (a CI run scored nothing for
    4 minutes). The raw input topics are the operator's, and are not waited for."""

    async def seek(self) -> None:
        return None

    consumer = new_consumer(monkeypatch, seek)
    app = consumer.app
    app.topics.add(app.topic("logs-raw"))  # as the agents' streams add them
    app.topics.add(app.topic("app-keys", internal=True))
    thread = consumer._thread
    events = []
    fetches = iter([Metadata({"app-keys": {0: -1}}), Metadata({"app-keys": {0: 1}})])

    async def fetch_all_metadata():
        events.append("metadata")
        return next(fetches)

    client = type("AIOKafkaClient", (), {"fetch_all_metadata": staticmethod(fetch_all_metadata)})()
    thread._consumer = type("AIOKafkaConsumer", (), {"_client": client})()

    async def call_thread(method, *args, **kwargs):  # the consumer thread's loop, here the test's
        return await method(*args, **kwargs)

    async def subscribed(self, topics):
        events.append(("subscribe", sorted(topics)))

    monkeypatch.setattr(thread, "call_thread", call_thread)
    monkeypatch.setattr(consumer_position.faust_aiokafka.AIOKafkaConsumerThread, "subscribe", subscribed)
    monkeypatch.setattr(consumer_position, "wait_for_topics", _quick(consumer_position.wait_for_topics))
    asyncio.run(thread.subscribe(["logs-raw", "app-keys"]))
    assert events == ["metadata", "metadata", ("subscribe", ["app-keys", "logs-raw"])]


def _quick(wait):
    async def quick(fetch, topics, timeout, interval=0.2):
        return await wait(fetch, topics, timeout, interval=0.01)

    return quick
