"""The worker's Prometheus metrics, served on its web port at /metrics.

Names follow Prometheus conventions (counters end in _total once exposed). Each worker
reports its own share of the consumer group; sum over pods in queries."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

disable_created_metrics()  # the *_created series only add noise to every scrape

RAW_MESSAGES = Counter("logbert_raw_messages", "Raw messages consumed from the input topics")
LINES_PARSED = Counter("logbert_lines_parsed", "Log lines parsed into log keys")
UNSEEN_LINES = Counter("logbert_unseen_template_lines", "Parsed lines whose template was never seen in training")
LINES_WITHOUT_SESSION = Counter("logbert_lines_without_session", "Parsed lines that carry no session id")
LINES_TRUNCATED = Counter("logbert_lines_truncated", "Lines longer than 64 KiB, cut there before parsing")
TIMESTAMPS_DISTRUSTED = Counter(
    "logbert_timestamps_distrusted",
    "Lines stamped over an hour ahead of the wall clock: event time does not follow them",
)
LINES_UNDATED = Counter(
    "logbert_lines_undated", "Lines whose timestamp did not parse, placed at the current event time"
)
DLQ_MESSAGES = Counter("logbert_dlq_messages", "Messages sent to the dead-letter topic", ["reason"])
REPLAYED_EVENTS = Counter("logbert_replayed_events", "Key events skipped as redeliveries (at-least-once)")
OPEN_WINDOWS = Gauge("logbert_open_windows", "Open sessions or time windows on this worker's active partitions")
SEQUENCES_SCORED = Counter("logbert_sequences_scored", "Sequences scored", ["ending"])  # ended | open
ALERTS = Counter("logbert_alerts", "Alerts published")
BATCH_SIZE = Histogram(
    "logbert_batch_size", "Items per batch: lines per parse batch, sequences per scoring batch", ["stage"],
    buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384),
)  # fmt: skip
SCORING_SECONDS = Histogram(
    "logbert_scoring_seconds", "Wall time of one scoring batch (ONNX Runtime and the detection rule)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)  # fmt: skip
CONSUMER_LAG = Gauge("logbert_consumer_lag", "Records waiting per assigned partition", ["topic", "partition"])
UNTRANSLATED_KEYS = Gauge(
    "logbert_untranslated_keys",
    "Keys of an unknown model's vocabulary read as unseen (a rollout without LOGBERT_OTHER_MODEL_DIRS)",
)
EVENT_TIME = Gauge(
    "logbert_event_time_seconds",
    "Event time reached (seconds since the epoch): the parse stage's, and the window's per keys partition",
    ["stage", "partition"],
)
STUCK_PARTITIONS = Gauge("logbert_stuck_partitions", "Assigned partitions with lag whose position stopped moving")
MODEL_LOADED = Gauge("logbert_model_loaded", "1 once the model directory is loaded and validated")
MODEL_INFO = Gauge("logbert_model_info", "The model in use (value 1)", ["version"])
EXECUTION_PROVIDER = Gauge(
    "logbert_execution_provider", "ONNX Runtime provider actually in use (value 1)", ["provider"]
)

DLQ_REASONS = ("empty value", "not UTF-8", "invalid JSON", "JSON of the wrong shape", "no log line in the value")


def dlq_reason_label(reason: str) -> str:
    """A bounded label set: the reason's fixed prefix, never the message's own text."""
    return next((known for known in DLQ_REASONS if reason.startswith(known)), "other")


def exposition() -> tuple[bytes, str]:
    """(body, content type) of the metrics page."""
    return generate_latest(), CONTENT_TYPE_LATEST
