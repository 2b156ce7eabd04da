"""Raw log messages -> key events, one message per keys-topic partition per batch."""

from __future__ import annotations

import base64
import math
import time

from agents.pipeline import Pipeline
from streaming import metrics
from streaming.line_reader import MessageRead
from streaming.messages import MAX_PART_BYTES, bounded_runs
from streaming.parse_processes import ParseProcesses, read_in_turn
from streaming.stages import ParseResult, RawMessage, finite_or_none

MAX_CONFIRMATION = 10.0  # seconds the broker must keep confirming quiet input before a flush


class QuietClock:
    """When the input last moved, so a timer can flush sessions once it goes quiet."""

    def __init__(self) -> None:
        self.last_input = time.monotonic()
        self.flushed = True
        self.partitions: set[str] = set()  # the raw partitions read when last looked
        self.confirmed_since: float | None = None  # when the broker first confirmed nothing was waiting

    def touch(self) -> None:
        self.last_input = time.monotonic()
        self.flushed = False
        self.confirmed_since = None


async def run(stream, pipeline_factory, keys_topic, dlq_topic, clock: QuietClock, reading) -> None:
    """`reading(last_offsets)`: this worker's raw partitions, those with records still unread
    after the batch's last offsets ({"topic/partition": offset}), and every raw partition."""
    pipeline: Pipeline = pipeline_factory()
    settings = pipeline.settings
    await dlq_topic.maybe_declare()
    processes = ParseProcesses(pipeline.parse.reader, settings.parse_processes) if settings.parse_processes else None
    try:
        await parse_batches(stream, pipeline, keys_topic, dlq_topic, clock, reading, processes)
    finally:
        if processes is not None:
            await processes.close()


async def parse_batches(
    stream, pipeline: Pipeline, keys_topic, dlq_topic, clock: QuietClock, reading, processes
) -> None:
    settings = pipeline.settings
    async for events in stream.take_events(settings.parse_batch, within=settings.max_wait):
        clock.touch()
        # Arrival = the record's Kafka timestamp (as replay uses), so a redelivered line gets the same time.
        messages = [
            RawMessage(e.message.value, e.message.topic, e.message.partition, e.message.offset,
                       e.message.timestamp if e.message.timestamp and e.message.timestamp > 0 else time.time())
            for e in events
        ]  # fmt: skip
        # A raw message is never split: a replayed one is recognised by its offset.
        parts = bounded_runs(messages, lambda m: len(m.value or b""), MAX_PART_BYTES)
        last_part = {f"{m.topic}/{m.partition}": n for n, part in enumerate(parts) for m in part}
        async for n, part, read in read_in_turn(parts, processes):
            # Faust counts the whole batch as read: the partitions of the later parts are still to come.
            later = {origin for origin, last in last_part.items() if last > n}
            await parse_and_send(pipeline, part, keys_topic, dlq_topic, reading, later, read)
        clock.touch()  # quiet time counts from the end of the last batch: sending it may take a while


async def parse_and_send(
    pipeline: Pipeline, messages: list[RawMessage], keys_topic, dlq_topic, reading, later: set[str],
    read: list[MessageRead] | None = None,
) -> None:  # fmt: skip
    last_offsets = {f"{m.topic}/{m.partition}": m.offset for m in messages}
    mine, waiting, inputs = reading(last_offsets)
    result = pipeline.parse.process(messages, waiting | later, read)
    count(result, len(messages))
    if math.isfinite(result.watermark):
        metrics.EVENT_TIME.labels("parse", "all").set(result.watermark)
    for message, rejected in result.rejected:
        await dlq_topic.send(
            value={
                "reason": rejected.reason,
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "value_base64": base64.b64encode(rejected.value).decode(),
            }
        )
    # Every keys partition hears how far this worker's event time has come, sessions or not.
    by_partition: dict[int, dict[str, list]] = {p: {} for p in range(pipeline.settings.internal_partitions)}
    for session, session_events in result.events.items():
        by_partition[pipeline.partition_for(session)][session] = session_events
    reported = {"vocab": pipeline.translator.current, "origins": sorted(mine), "inputs": inputs,
                "watermark": finite_or_none(result.watermark)}  # fmt: skip
    for partition, sessions in by_partition.items():
        await keys_topic.send(key=str(partition), partition=partition, value={"sessions": sessions, **reported})


def count(result: ParseResult, messages: int) -> None:
    metrics.RAW_MESSAGES.inc(messages)
    metrics.LINES_PARSED.inc(result.lines)
    metrics.UNSEEN_LINES.inc(result.unseen)
    metrics.LINES_WITHOUT_SESSION.inc(result.without_session)
    metrics.LINES_TRUNCATED.inc(result.truncated)
    metrics.TIMESTAMPS_DISTRUSTED.inc(result.distrusted_timestamps)
    metrics.LINES_UNDATED.inc(result.undated)
    metrics.BATCH_SIZE.labels("parse").observe(result.lines)
    for _, rejected in result.rejected:
        metrics.DLQ_MESSAGES.labels(metrics.dlq_reason_label(rejected.reason)).inc()


async def flush_if_quiet(pipeline_factory, keys_topic, clock: QuietClock, raw_partitions, caught_up) -> None:
    """After LOGBERT_QUIET_FLUSH s without input on this worker's raw partitions, once the broker
    confirms nothing is waiting there, open sessions fed only by those partitions are emitted
    (ended if idle long enough in event time, else as still open)."""
    pipeline: Pipeline = pipeline_factory()
    quiet = raw_partitions()
    if set(quiet) != clock.partitions:
        # Partitions moved: newly read ones may hold open sessions that nobody will flush
        # otherwise, even if no line ever arrives here again. A quiet period starts now.
        clock.partitions = set(quiet)
        clock.touch()
    if not quiet:  # this worker reads no raw partition: others decide for their input
        return
    if clock.flushed or time.monotonic() - clock.last_input < pipeline.settings.quiet_flush:
        return
    if not await caught_up():
        # Records wait, or Kafka does not answer: quiet time starts again from now, so shippers
        # get the full LOGBERT_QUIET_FLUSH to deliver what they held during an outage.
        clock.touch()
        return
    # The answer may come from a broker that was down until a moment ago (the request waited for
    # it): flush only once the broker has kept confirming for a while with still no input.
    now = time.monotonic()
    if clock.confirmed_since is None:
        clock.confirmed_since = now
    if now - clock.confirmed_since < min(pipeline.settings.quiet_flush, MAX_CONFIRMATION):
        return
    clock.flushed = True
    for partition in range(pipeline.settings.internal_partitions):
        await keys_topic.send(
            key=str(partition),
            partition=partition,
            value={"flush": finite_or_none(pipeline.parse.watermark), "quiet": sorted(quiet)},
        )
