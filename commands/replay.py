"""`replay`: a topic range through the same parse/window/score path, in process, for backtests.

It joins no consumer group (partitions are assigned, nothing is committed), fixes its end
offsets when it starts, and stops there."""

from __future__ import annotations

import math
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from tqdm.auto import tqdm

from agents.pipeline import build_stages
from commands.evaluate import build_report, print_report
from models.artefact import write_json
from models.detector import Detector
from sequences.readers import read_labels
from streaming.settings import StreamSettings
from streaming.stages import ParseStage, RawMessage, WindowStage, keys_for_scoring
from streaming.windows import ClosedSequence

WINDOW_PARTITIONS = 16  # in-process only: spreads sessions as the worker's keys topic would


@dataclass
class ReplayRequest:
    topic: str
    start: str = "beginning"  # beginning | OFFSET | ISO-TIME
    end: str = "end"  # end | OFFSET | ISO-TIME
    model: Path = Path("model")
    labels: Path | None = None
    json_out: Path | None = None
    provider: str = "auto"
    progress: bool = True
    batch: int = 1000


def parse_time(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def resolve_offsets(consumer: Consumer, topic: str, bound: str, is_start: bool) -> dict[int, int]:
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise ValueError(f"topic {topic!r} not found")
    out = {}
    moment = parse_time(bound)
    for partition in sorted(metadata.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if bound == ("beginning" if is_start else "end"):
            out[partition] = low if is_start else high
        elif bound.isdigit():
            out[partition] = min(max(int(bound), low), high)
        elif moment is not None:
            found = consumer.offsets_for_times([TopicPartition(topic, partition, int(moment * 1000))], timeout=10)[0]
            out[partition] = high if found.offset in (-1, OFFSET_END) else found.offset
        else:
            raise ValueError(
                f"{'start' if is_start else 'end'} must be beginning/end, an offset or an ISO time, not {bound!r}"
            )
    return out


def run_replay(settings: StreamSettings, request: ReplayRequest) -> dict:
    detector = Detector.load(request.model, request.provider)
    stages = build_stages(detector, settings)
    parse, window = stages.parse, stages.window
    consumer = Consumer(settings.client_config(**{
        "group.id": f"logbert-replay-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }))  # fmt: skip
    started = time.monotonic()
    try:
        starts = resolve_offsets(consumer, request.topic, request.start, is_start=True)
        ends = resolve_offsets(consumer, request.topic, request.end, is_start=False)
        pending = {p: ends[p] for p in starts if starts[p] < ends[p]}
        consumer.assign([TopicPartition(request.topic, p, starts[p]) for p in pending])
        total = sum(ends[p] - starts[p] for p in pending)
        state: dict[str, dict] = {}
        closed: list[ClosedSequence] = []
        counts = {"messages": 0, "lines": 0, "rejected": 0, "unseen_lines": 0}
        with tqdm(
            total=total, unit="msg", desc=f"replaying {request.topic}", disable=None if request.progress else True
        ) as bar:
            while pending:
                batch = []
                for message in consumer.consume(request.batch, timeout=1.0):
                    if message.error() or message.partition() not in pending:
                        continue
                    if message.offset() >= pending[message.partition()]:
                        continue
                    stamp = message.timestamp()[1] / 1000 if message.timestamp()[1] > 0 else time.time()
                    batch.append(
                        RawMessage(message.value(), message.topic(), message.partition(), message.offset(), stamp)
                    )
                    if message.offset() + 1 >= pending[message.partition()]:
                        del pending[message.partition()]
                waiting = {f"{request.topic}/{p}" for p in pending}  # partitions with lines still to read
                closed.extend(_apply(parse, window, state, batch, counts, waiting))
                bar.update(len(batch))
    finally:
        consumer.close()
    for partition in range(WINDOW_PARTITIONS):
        closed.extend(window.flush(state, partition, parse.watermark if math.isfinite(parse.watermark) else -math.inf))
    scores = detector.score([keys_for_scoring(s) for s in closed])
    flagged = [detector.is_anomalous(s) for s in scores]
    summary = {
        **counts, "sequences": len(closed), "anomalous": sum(flagged), "topic": request.topic,
        "start": request.start, "end": request.end, "seconds": round(time.monotonic() - started, 1),
    }  # fmt: skip
    print(f"replayed {counts['messages']} messages, {counts['lines']} lines ({counts['rejected']} rejected): "
          f"{len(closed)} sequences, {sum(flagged)} anomalous")  # fmt: skip
    report = {"replay": summary}
    if request.labels is not None:
        labels = read_labels(request.labels)
        known = [i for i, s in enumerate(closed) if s.session in labels]
        sequences = [keys_for_scoring(closed[i]) for i in known]
        report = build_report(
            detector, Path(request.model), sequences, [scores[i] for i in known],
            [labels[closed[i].session] for i in known], detector.config["detection"].get("target_fpr"),
        )  # fmt: skip
        report["replay"] = {**summary, "unlabelled_sequences_skipped": len(closed) - len(known)}
        print_report(report)
    if request.json_out:
        write_json(Path(request.json_out), report)
    return report


def _apply(
    parse: ParseStage, window: WindowStage, state: dict, batch: list[RawMessage], counts: dict, waiting: set[str]
) -> list:
    if not batch:
        return []
    result = parse.process(batch, waiting)
    counts["messages"] += len(batch)
    counts["lines"] += result.lines
    counts["rejected"] += len(result.rejected)
    counts["unseen_lines"] += result.unseen
    by_partition: dict[int, dict[str, list]] = {}
    for session, events in result.events.items():
        by_partition.setdefault(zlib.crc32(session.encode()) % WINDOW_PARTITIONS, {})[session] = events
    closed = []
    for partition, sessions in by_partition.items():
        closed.extend(window.on_message(state, partition, sessions)[0])
    return closed
