"""Closed sequences -> scores -> alerts on logbert-alerts, in batches."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from agents.pipeline import Pipeline
from streaming import metrics
from streaming.alerts import build_alert
from streaming.stages import keys_for_scoring, sequence_from_json


def score_batch(pipeline: Pipeline, payloads: list[dict]) -> list[tuple[dict, bool, dict | None]]:
    """(sequence json, anomalous, alert or None) per sequence; pure apart from the clock."""
    detector = pipeline.detector
    sequences = []
    for payload in payloads:  # in flight across a model rollout: a previous model's keys are translated
        for data in payload["sequences"]:
            sequence = sequence_from_json(data)
            sequence.keys = pipeline.translator.translate(sequence.keys, payload.get("vocab"))
            sequences.append(sequence)
    if not sequences:
        return []
    scores = detector.score([keys_for_scoring(s) for s in sequences])
    now = time.time()
    out = []
    for sequence, score in zip(sequences, scores):
        anomalous = detector.is_anomalous(score)
        alert = None
        if anomalous:
            alert = build_alert(
                sequence, score, detector.explain(score), detector.version,
                detector.settings.miss_ratio_threshold, detector.settings.surprise_threshold, now,
            )  # fmt: skip
        out.append(({"session": sequence.session, "part": sequence.part, "score": score.miss_ratio,
                     "max_surprise": score.max_surprise if score.max_surprise != float("inf") else None,
                     "closed": sequence.closed, "model_version": detector.version}, anomalous, alert))  # fmt: skip
    return out


async def run(stream, pipeline_factory, alerts_topic, scores_topic) -> None:
    pipeline: Pipeline = pipeline_factory()
    for topic in (alerts_topic, scores_topic):
        if topic is not None:
            await topic.maybe_declare()
    # ONNX Runtime lets go of the GIL while it runs: in a thread, scoring overlaps parsing and
    # windowing on the event loop instead of stopping them.
    scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logbert-score")
    loop = asyncio.get_running_loop()
    async for payloads in stream.take(pipeline.settings.score_batch, within=pipeline.settings.score_wait):
        started = time.perf_counter()
        results = await loop.run_in_executor(scoring, score_batch, pipeline, payloads)
        metrics.SCORING_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels("score").observe(len(results))
        for summary, anomalous, alert in results:
            metrics.SEQUENCES_SCORED.labels("ended" if summary["closed"] else "open").inc()
            metrics.ALERTS.inc(alert is not None)
            if alert is not None:
                await alerts_topic.send(key=alert["key"], value=alert)
            if scores_topic is not None:
                await scores_topic.send(key=summary["session"], value={**summary, "anomalous": anomalous})
