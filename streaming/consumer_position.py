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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streaming.delivery import DirectDeliveryConsumer

log = logging.getLogger("logbert.consumer")


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
