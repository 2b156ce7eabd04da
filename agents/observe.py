"""What Prometheus and Kubernetes see of a worker: the model state, consumer lag, open windows
and stuck partitions behind /metrics, /health and /ready."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from models.artefact import ModelDirectoryError
from models.scorer import ProviderUnavailable
from streaming import metrics
from streaming.health import Health, PartitionProgress, ProgressWatch
from streaming.settings import StreamSettings
from streaming.windows import is_ended

log = logging.getLogger("logbert.worker")


class WorkerObserver:
    def __init__(self, settings: StreamSettings) -> None:
        self.settings = settings
        self.watch = ProgressWatch(settings.stuck_after)
        self.model_loaded = False
        self.parsed: dict[str, int] = {}  # raw partition ("topic/partition") -> the last offset parsed
        self.model_error: str | None = None
        self.pipeline = None
        self.stuck: list[PartitionProgress] = []
        self.assigned = 0

    def load_model(self, pipeline_factory: Callable) -> None:
        """Loads and validates the model before the worker joins its group, so a bad model
        directory stops it with a clear message and nothing consumed or committed."""
        try:
            pipeline = pipeline_factory()
        except (ModelDirectoryError, FileNotFoundError, ProviderUnavailable) as error:
            self.model_error = str(error)
            log.error("cannot start: %s", error)
            message = f"logbert worker: cannot start: {error} (LOGBERT_MODEL_DIR={self.settings.model_dir})"
            raise SystemExit(message) from None
        detector = pipeline.detector
        self.pipeline = pipeline
        self.model_loaded = True
        metrics.MODEL_LOADED.set(1)
        metrics.MODEL_INFO.labels(detector.version).set(1)
        metrics.EXECUTION_PROVIDER.labels(detector.provider).set(1)
        log.info("model version %s loaded from %s, provider %s", detector.version, self.settings.model_dir,
                 detector.provider)  # fmt: skip

    def watched_topics(self) -> set[str]:
        return {*self.settings.input_topics, self.settings.keys_topic, self.settings.sequences_topic}

    def refresh(self, app, open_sessions) -> None:
        """Called on a timer: lag per assigned partition, stuck partitions, open windows."""
        progress = self._progress(app)
        self.assigned = len(progress)
        metrics.CONSUMER_LAG.clear()
        for p in progress:
            metrics.CONSUMER_LAG.labels(p.topic, str(p.partition)).set(p.lag)
        self.stuck = self.watch.observe(time.monotonic(), progress)
        metrics.STUCK_PARTITIONS.set(len(self.stuck))
        for p in self.stuck:
            log.warning("partition %s/%d is stuck at offset %s with lag %d", p.topic, p.partition, p.position, p.lag)
        metrics.OPEN_WINDOWS.set(self._open_windows(app, open_sessions))
        if self.pipeline is not None:
            metrics.UNTRANSLATED_KEYS.set(self.pipeline.translator.untranslated)

    def _raw_tps(self, app) -> list:
        return [tp for tp in app.consumer.assignment() if tp.topic in self.settings.input_topics]

    def raw_partitions(self, app) -> list[str]:
        """The raw input partitions this worker reads, as "topic/partition" (the sessions' origins)."""
        return [f"{tp.topic}/{tp.partition}" for tp in self._raw_tps(app)]

    def raw_inputs(self, app, mine: list[str]) -> list[str]:
        """Every partition of the raw input topics, as the consumer's metadata has them (`mine`, this
        worker's own, when it has none yet): the window waits for each one's reader, whoever that is."""
        inputs = set(mine)
        for topic in self.settings.input_topics:
            try:
                count = app.consumer.topic_partitions(topic)
            except Exception:  # no metadata to ask (a consumer not started yet, or revoked meanwhile)
                count = None
            inputs.update(f"{topic}/{partition}" for partition in range(count or 0))
        return sorted(inputs)

    def reading(self, app, last_offsets: dict[str, int]) -> tuple[list[str], set[str], list[str]]:
        """This worker's raw partitions, those with records still unread once the offsets in
        `last_offsets` ({"topic/partition": offset}, about to be parsed) are, as the consumer last
        heard from the broker (a partition not fetched from yet counts as unread), and every raw
        partition (`raw_inputs`)."""
        consumer = app.consumer
        self.parsed.update(last_offsets)
        mine, waiting = [], set()
        for tp in self._raw_tps(app):
            origin = f"{tp.topic}/{tp.partition}"
            mine.append(origin)
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # revoked while we looked
                highwater = None
            if highwater is None or highwater > self.next_to_parse(consumer, tp):
                waiting.add(origin)
        for origin in set(self.parsed) - set(mine):  # revoked: a later owner of it starts from its commit
            del self.parsed[origin]
        return mine, waiting, self.raw_inputs(app, mine)

    def next_to_parse(self, consumer, tp) -> int:
        """The next offset of tp this worker has yet to parse: one past the last one parsed, or the
        committed offset (where a newly assigned partition starts). Not Faust's read offset: Faust
        reads ahead into the stream's buffer while a batch is being parsed."""
        parsed = self.parsed.get(f"{tp.topic}/{tp.partition}")
        committed = getattr(consumer, "_committed_offset", {}).get(tp)
        return max(parsed + 1 if parsed is not None else 0, committed if committed is not None else 0)

    async def input_caught_up(self, app) -> bool:
        """Has this worker read everything the broker holds on its raw partitions? False when the
        broker does not answer: input that stopped because Kafka is down is not a quiet source."""
        consumer = app.consumer
        mine = self._raw_tps(app)
        if not mine:
            return True
        try:
            ends = await asyncio.wait_for(consumer.highwaters(*mine), timeout=5.0)
        except Exception as error:  # timeouts and broker errors alike: not known to be caught up
            log.info("input quiet but the broker did not confirm its end offsets (%s): open sessions wait", error)
            return False
        return all(self.next_to_parse(consumer, tp) >= ends.get(tp, 0) for tp in mine)

    def health(self) -> Health:
        return Health(self.model_loaded, self.model_error, self.assigned, list(self.stuck))

    def _progress(self, app) -> list[PartitionProgress]:
        consumer = app.consumer
        committed = getattr(consumer, "_committed_offset", {})  # Faust's own record: next offset to process
        out = []
        for tp in sorted(consumer.assignment()):
            if tp.topic not in self.watched_topics():
                continue
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # not fetched yet, or revoked while we looked
                highwater = None
            out.append(PartitionProgress(tp.topic, tp.partition, committed.get(tp), highwater))
        return out

    def _open_windows(self, app, open_sessions) -> int:
        actives = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == self.settings.keys_topic}
        count = 0
        for value in open_sessions.data.values():  # the store also holds standby partitions: count actives only
            if isinstance(value, dict) and value.get("partition") in actives and not is_ended(value):
                count += len(value["windows"]) if "windows" in value else 1
        return count
