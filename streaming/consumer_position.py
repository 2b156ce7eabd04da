"""Faust's "seek back to committed offsets", made to hold for partitions with nothing committed.

While a new member restores its tables, Faust already fetches; records of stream partitions it
is handed then are dropped, and Faust seeks every partition back to its committed offset.
aiokafka's `seek_to_committed` skips a partition whose committed offset is missing or 0, so
there the position stayed past the dropped records and they were never read: a worker killed
before its group's first commit on a partition lost the last messages it had written there.
Seeking such partitions to their beginning is what `auto_offset_reset=earliest` promises.
The flow also stops for that seek (`Consumer.perform_seek`), so nothing is handed to the streams
between the seek and Faust emptying their buffers.

The worker's aiokafka consumer is built here too, with the broker's wait for fetch data set from
LOGBERT_FETCH_MAX_WAIT instead of Faust's fixed 1.5 s (`ConsumerThread._create_worker_consumer`),
and topics' partition counts are read from its metadata on every member (`topic_partitions`).
Before it subscribes, it waits until the internal topics Faust has just created are in the
cluster's metadata (`subscribe`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streaming.delivery import DirectDeliveryConsumer
from streaming.producer import Producer

log = logging.getLogger("logbert.consumer")

# How long a worker waits, before it subscribes, for the internal topics it created to show in the
# cluster's metadata; then it subscribes anyway, and the metadata refresh (30 s) finds them later.
NEW_TOPICS_WAIT = 30.0


def is_changelog(topic: str) -> bool:
    # the tables' recovery places changelog partitions itself; nothing is committed on them
    return topic.endswith("-changelog")


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.app, "fetch_max_wait", None)
        if wait is not None:
            # Faust fixes how long the broker may hold a fetch for data at 1.5 s. aiokafka keeps one
            # fetch in flight per broker, for the partitions it holds no fetched records of: once a
            # worker is a little behind, that fetch asks for quiet partitions only and is held while
            # lines wait on the others, about a second per topic a line passes through. The
            # AIOKafkaConsumer hands this to its fetcher when it starts.
            consumer._fetch_max_wait_ms = int(wait * 1000)
        return consumer

    def topic_partitions(self, topic: str) -> int | None:
        """The topic's partition count from this member's cluster metadata. Faust reads the group
        coordinator's snapshot, which only the group's leader fills in: other members got None."""
        consumer = self._consumer
        partitions = consumer.partitions_for_topic(topic) if consumer is not None else None
        return len(partitions) if partitions else None

    async def subscribe(self, topics: Iterable[str]) -> None:
        """Faust creates its internal topics just before it subscribes. A group leader whose metadata
        lacks one at the join assigns none of its partitions ("Ignoring missing topic") until its
        next metadata refresh rebalances: one CI run's sequences topic went unread for minutes."""
        topics = set(topics)
        created = topics & {name for channel in self.app.topics if channel.internal for name in channel.topics}
        if created:
            await self.call_thread(self._wait_for_topics, created)
        await super().subscribe(topics)

    async def _wait_for_topics(self, topics: set[str]) -> None:
        client = self._ensure_consumer()._client
        started = time.monotonic()
        missing = await wait_for_topics(client.fetch_all_metadata, topics, NEW_TOPICS_WAIT)
        waited = time.monotonic() - started
        if waited >= 1.0 and not missing:
            log.info(
                "waited %.1f s for new topics to show in the cluster's metadata: %s", waited, ", ".join(sorted(topics))
            )
        if missing:
            log.warning(
                "topics %s not in the cluster's metadata after %.0f s; subscribing anyway (a later metadata "
                "refresh assigns them)", ", ".join(sorted(missing)), NEW_TOPICS_WAIT,
            )  # fmt: skip

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(self._seek_to_committed_or_beginning)

    async def _seek_to_committed_or_beginning(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed = await consumer.seek_to_committed()
        if self.app.conf.consumer_auto_offset_reset != "earliest":
            return committed
        uncommitted = [tp for tp, offset in committed.items() if not offset and not is_changelog(tp.topic)]
        # Only partitions already read past the start; the rest are there, or about to be reset
        # there. A plain seek, not seek_to_beginning, which waits for a round trip: until this
        # returns, Faust skips (and acks) what the fetcher hands it.
        ahead = {tp: position for tp in uncommitted if (position := position_or_none(consumer, tp))}
        if ahead:
            log.info(
                "no offset committed yet on %s: reading from the beginning (positions were %s)",
                ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(ahead)),
                ", ".join(str(ahead[tp]) for tp in sorted(ahead)),
            )
            for tp in ahead:
                consumer.seek(tp, 0)  # below the log start, auto_offset_reset=earliest takes it to the start
        return committed


def topics_not_ready(metadata: ClusterMetadata, topics: Iterable[str]) -> set[str]:
    """The topics that the metadata lacks, or that have a partition without a leader."""
    not_ready = set()
    for topic in topics:
        partitions = metadata.partitions_for_topic(topic)
        leaders = [metadata.leader_for_partition(TopicPartition(topic, p)) for p in partitions or ()]
        if not leaders or any(leader is None or leader < 0 for leader in leaders):  # node ids start at 0
            not_ready.add(topic)
    return not_ready


async def wait_for_topics(
    fetch_metadata: Callable[[], Awaitable[ClusterMetadata]], topics: Iterable[str], timeout: float,
    interval: float = 0.2,
) -> set[str]:  # fmt: skip
    """Asks for the cluster's metadata until every topic is in it with a leader for each partition,
    or `timeout` passes; returns the topics still not ready (empty when all are)."""
    topics, deadline = set(topics), time.monotonic() + timeout
    while True:
        try:
            not_ready = topics_not_ready(await fetch_metadata(), topics)
        except Exception as error:  # no broker answered: the consumer's own start reports that
            log.debug("metadata request failed while waiting for topics: %r", error)
            not_ready = set(topics)
        if not not_ready or time.monotonic() >= deadline:
            return not_ready
        await asyncio.sleep(interval)


def position_or_none(consumer, tp) -> int | None:
    """The fetch position aiokafka holds for `tp`, without waiting for one to be looked up."""
    try:
        state = consumer._subscription.subscription.assignment.state_value(tp)
        return state.position if state.has_valid_position else None
    except (AttributeError, KeyError):
        return None


class Consumer(DirectDeliveryConsumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        """Faust resumes a new member's stream partitions, seeks them back to their committed offsets,
        then resumes the app's flow, which empties the streams' buffers: a record handed to a stream
        after the seek (or from a batch fetched before it) and before that was emptied out and never
        read again; lines produced while a member finished its recovery were lost. The flow stops
        for the seek, as for a rebalance: a fetched batch is cut there, nothing more is handed on
        until Faust resumes the flow after emptying the buffers, and reading starts again at the
        committed offsets."""
        self.stop_flow()
        await super().perform_seek()


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer
