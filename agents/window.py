"""Key events -> closed sequences; open sessions live in a changelogged Faust Table."""

from __future__ import annotations

import math

from agents.pipeline import Pipeline
from streaming import metrics
from streaming.messages import bounded_runs
from streaming.stages import sequence_to_json

EXPIRY_STEP = 0.25  # s of event time between scans for idle sessions: a scan reads every open session
MAX_KEYS_PER_MESSAGE = 50_000  # keys per sequences message: far below Kafka's 1 MB message limit


async def run(stream, pipeline_factory, open_sessions, sequences_topic) -> None:
    pipeline: Pipeline = pipeline_factory()
    last_expiry: dict[int, float] = {}
    async for event in stream.events():
        partition = event.message.partition
        value = event.value
        closed = []
        if "flush" in value:
            watermark = value["flush"] if value["flush"] is not None else -math.inf
            quiet = set(value["quiet"]) if value.get("quiet") is not None else None
            closed = pipeline.window.flush(open_sessions, partition, watermark, quiet)
        else:
            closed, replayed = pipeline.window.on_message(
                open_sessions, partition, value["sessions"], value.get("vocab"), value.get("origins"),
                value.get("watermark"),
            )  # fmt: skip
            metrics.REPLAYED_EVENTS.inc(replayed)
            watermark = pipeline.window.watermark.get(partition, -math.inf)
            if watermark - last_expiry.get(partition, -math.inf) >= EXPIRY_STEP:
                last_expiry[partition] = watermark
                closed.extend(pipeline.window.expire(open_sessions, partition))
        # An event-time jump may close thousands of sequences at once: several messages then.
        for chunk in bounded_runs(closed, lambda s: len(s.keys), MAX_KEYS_PER_MESSAGE):
            await sequences_topic.send(
                key=str(partition), partition=partition,
                value={"sequences": [sequence_to_json(s) for s in chunk], "vocab": pipeline.translator.current},
            )  # fmt: skip
