"""Key events -> closed sequences; open sessions live in a changelogged Faust Table."""

from __future__ import annotations

import math
from collections.abc import MutableMapping

from agents.pipeline import Pipeline
from streaming import metrics
from streaming.deferred_writes import DeferredWrites
from streaming.messages import bounded_runs
from streaming.stages import WindowStage, sequence_to_json
from streaming.windows import ClosedSequence

EXPIRY_STEP = 0.1  # s of event time between expiry scans (each reads the due sessions only)
MAX_KEYS_PER_MESSAGE = 50_000  # keys per sequences message: far below Kafka's 1 MB message limit


def window_step(
    window: WindowStage, state: MutableMapping[str, dict], partition: int, value: dict,
    last_expiry: dict[int, float], sent_at: float | None = None,
) -> list[ClosedSequence]:  # fmt: skip
    """One keys-topic message through the window stage: its events, or a flush, then a scan for idle
    sessions once event time has moved EXPIRY_STEP since the last scan of this partition."""
    if "flush" in value:
        watermark = value["flush"] if value["flush"] is not None else -math.inf
        quiet = set(value["quiet"]) if value.get("quiet") is not None else None
        return window.flush(state, partition, watermark, quiet)
    closed, replayed = window.on_message(
        state, partition, value["sessions"], value.get("vocab"), value.get("origins"), value.get("watermark"), sent_at,
        value.get("inputs"),
    )  # fmt: skip
    metrics.REPLAYED_EVENTS.inc(replayed)
    watermark = window.watermark.get(partition, -math.inf)
    if math.isfinite(watermark):
        metrics.EVENT_TIME.labels("window", str(partition)).set(watermark)
    if watermark - last_expiry.get(partition, -math.inf) >= EXPIRY_STEP:
        last_expiry[partition] = watermark
        closed.extend(window.expire(state, partition))
    return closed


async def run(stream, pipeline_factory, open_sessions, sequences_topic) -> None:
    pipeline: Pipeline = pipeline_factory()
    last_expiry: dict[int, float] = {}
    async for event in stream.events():
        partition = event.message.partition
        writes = DeferredWrites(open_sessions)
        sent_at = event.message.timestamp if event.message.timestamp and event.message.timestamp > 0 else None
        closed = window_step(pipeline.window, writes, partition, event.value, last_expiry, sent_at)
        # An event-time jump may close thousands of sequences at once: several messages then.
        for chunk in bounded_runs(closed, lambda s: len(s.keys), MAX_KEYS_PER_MESSAGE):
            await sequences_topic.send(
                key=str(partition), partition=partition,
                value={"sequences": [sequence_to_json(s) for s in chunk], "vocab": pipeline.translator.current},
            )  # fmt: skip
        writes.apply()  # after the sequences: see streaming/deferred_writes.py
