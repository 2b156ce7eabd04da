"""Worker settings from environment variables (the images and manifests set these).

Each setting names its variable, default and meaning once, here; `python faust_app.py settings`
prints the reference table the README carries, and a test keeps the two equal."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from streaming.security import SECURITY_VARIABLES, KafkaSecurity


def _comma_list(value: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in value.split(",") if t.strip())


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _optional_float(value: str) -> float | None:
    return float(value) if value.strip() else None


CONSUMER_METADATA_MAX_AGE_MS = 30_000


def _gc_thresholds(value: str) -> tuple[int, int, int] | None:
    numbers = tuple(int(part) for part in _comma_list(value))
    if not numbers:
        return None
    if len(numbers) != 3 or numbers[0] < 1 or min(numbers) < 0:
        raise ValueError("three numbers as gc.set_threshold takes them (e.g. 10000,10,100), or empty")
    return numbers  # type: ignore[return-value]


COMPRESSION_TYPES = ("snappy", "zstd", "lz4", "gzip", "none")


def _compression(value: str) -> str:
    name = value.strip().lower() or "none"
    if name not in COMPRESSION_TYPES:
        raise ValueError(f"one of {', '.join(COMPRESSION_TYPES)}")
    return name


def env_setting(name: str, default: str, help: str, parse: Callable[[str], object] = str):
    """A dataclass field read from `name` (else `default`), parsed, with a clear error if it cannot be."""

    def read():
        raw = os.environ.get(name, default)
        try:
            return parse(raw)
        except ValueError as error:
            raise ValueError(f"{name}={raw!r} is not valid: {error}") from None

    return field(default_factory=read, metadata={"env": name, "default": default, "help": help})


@dataclass(frozen=True)
class StreamSettings:
    bootstrap_servers: str = env_setting("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", "brokers, comma-separated")
    app_id: str = env_setting(
        "LOGBERT_APP_ID", "logbert", "Faust app id = consumer group; prefixes the internal topics"
    )
    input_topics: tuple[str, ...] = env_setting("LOGBERT_INPUT_TOPICS", "logs-raw", "raw log topics, comma-separated",
                                                _comma_list)  # fmt: skip
    model_dir: str = env_setting("LOGBERT_MODEL_DIR", "model", "the model directory, validated before the worker joins")
    value_format: str = env_setting("LOGBERT_VALUE_FORMAT", "auto", "message values: `auto`, `text` or `json`")
    internal_partitions: int = env_setting(
        "LOGBERT_PARTITIONS", "4", "partitions of the internal topics and the table (caps window/score workers)", int
    )
    max_session_keys: int = env_setting(
        "LOGBERT_MAX_SESSION_KEYS", "2048", "a longer session is cut into parts (scored as OPEN)", int
    )
    session_idle_timeout: float | None = env_setting(
        "LOGBERT_SESSION_IDLE_TIMEOUT", "", "seconds of event time without a line that end a session (default: the model's)",
        _optional_float,
    )  # fmt: skip
    parse_batch: int = env_setting("LOGBERT_PARSE_BATCH", "4000", "raw messages per parse batch", int)
    parse_processes: int = env_setting(
        "LOGBERT_PARSE_PROCESSES",
        "0",
        "processes that read lines beside the event loop (0: on the loop)",
        int,
    )
    direct_delivery: bool = env_setting(
        "LOGBERT_DIRECT_DELIVERY",
        "1",
        "1: the consumer hands messages to the streams without Faust's per-message tasks; 0: Faust's loop",
        _flag,
    )
    producer_buffer: int = env_setting(
        "LOGBERT_PRODUCER_BUFFER",
        "5000",
        "messages waiting to be sent before the streams wait for the producer (Faust's own default: 100)",
        int,
    )
    fetch_max_wait: float = env_setting(
        "LOGBERT_FETCH_MAX_WAIT", "0.1", "seconds the broker may hold a fetch for data (Faust's own: 1.5)", float
    )
    producer_compression: str = env_setting(
        "LOGBERT_PRODUCER_COMPRESSION", "snappy",
        "compression of what the worker sends (keys, changelog, sequences, alerts): `snappy`, `zstd`, `lz4`, "
        "`gzip` or `none` (Faust's own). snappy made the internal topics 3-4x smaller with no measured cost; "
        "zstd 5-7x, for a few percent of the event loop with one line per message",
        _compression,
    )  # fmt: skip
    score_batch: int = env_setting("LOGBERT_SCORE_BATCH", "256", "sequence messages per scoring batch", int)
    max_wait: float = env_setting("LOGBERT_MAX_WAIT", "0.1", "seconds the parse stage waits to fill a batch", float)
    score_wait: float = env_setting(
        "LOGBERT_SCORE_WAIT", "0.05", "seconds the scoring stage waits to fill a batch (part of alert latency)", float
    )
    quiet_flush: float = env_setting(
        "LOGBERT_QUIET_FLUSH",
        "60",
        "seconds without input before open sessions are emitted (plus up to 10 s while the broker confirms)",
        float,
    )
    provider: str = env_setting("LOGBERT_PROVIDER", "auto", "ONNX Runtime provider: `auto`, `cuda` or `cpu`")
    gc_thresholds: tuple[int, int, int] | None = env_setting(
        "LOGBERT_GC_THRESHOLDS", "10000,10,100",
        "the worker's garbage-collector thresholds (`gc.set_threshold`); empty: Python's own (700,10,10), "
        "under which a busy worker's event loop used 10-20% more CPU time",
        _gc_thresholds,
    )  # fmt: skip
    scorer_spinning: bool = env_setting(
        "LOGBERT_SCORER_SPINNING", "0",
        "`1` lets ONNX Runtime's idle threads spin for the next kernel: faster scoring alone, but they take "
        "CPU from the worker's event loop on the same cores",
        _flag,
    )  # fmt: skip
    publish_scores: bool = env_setting(
        "LOGBERT_PUBLISH_SCORES", "0", "`1` publishes every sequence's score to the scores topic", _flag
    )
    alerts_topic: str = env_setting("LOGBERT_ALERTS_TOPIC", "logbert-alerts", "where alerts go")
    dlq_topic: str = env_setting("LOGBERT_DLQ_TOPIC", "logbert-dlq", "where undecodable messages go, with a reason")
    scores_topic: str = env_setting("LOGBERT_SCORES_TOPIC", "logbert-scores", "every score, if published")
    web_port: int = env_setting("LOGBERT_WEB_PORT", "6066", "HTTP port of /metrics, /health and /ready", int)
    data_dir: str = env_setting(
        "LOGBERT_DATA_DIR", "", "Faust's data directory (default `{app id}-data` in the working directory)"
    )
    other_model_dirs: tuple[str, ...] = env_setting(
        "LOGBERT_OTHER_MODEL_DIRS", "",
        "during a model rollout: the other model's directory (comma-separated list); its open sessions carry over",
        _comma_list,
    )  # fmt: skip
    stuck_after: float = env_setting(
        "LOGBERT_STUCK_AFTER", "180", "seconds a partition with lag may stand still before /health fails", float
    )
    # Only for brokers that need it (the demo's embedded one): never set by default.
    broker_session_timeout: float | None = env_setting(
        "LOGBERT_BROKER_SESSION_TIMEOUT", "", "consumer session timeout in seconds (default: Faust's)",
        _optional_float,
    )  # fmt: skip
    security: KafkaSecurity = field(default_factory=KafkaSecurity.from_env)

    # Internal topics carry the app id, so two deployments on one cluster never share them.
    @property
    def keys_topic(self) -> str:
        return f"{self.app_id}-keys"

    @property
    def sequences_topic(self) -> str:
        return f"{self.app_id}-sequences"

    def faust_overrides(self) -> dict:
        # A topic the group's leader did not find in the metadata at its join is ignored until the
        # next refresh, which then rebalances. The consumer waits for new internal topics before it
        # subscribes; should one still be missed, a refresh every 30 s (aiokafka: 5 minutes) bounds the stall.
        overrides: dict = {"consumer_metadata_max_age_ms": CONSUMER_METADATA_MAX_AGE_MS}
        if self.producer_compression != "none":
            overrides["producer_compression_type"] = self.producer_compression
        credentials = self.security.faust_credentials()
        if credentials is not None:
            overrides["broker_credentials"] = credentials
        if self.data_dir:
            overrides["datadir"] = self.data_dir
        if self.broker_session_timeout is not None:
            overrides["broker_session_timeout"] = self.broker_session_timeout
            overrides["broker_heartbeat_interval"] = max(0.5, self.broker_session_timeout / 6)
        return overrides

    def client_config(self, **extra) -> dict:
        """confluent-kafka settings: brokers and security, plus the caller's."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.security.confluent_config(), **extra}

    @property
    def broker_url(self) -> str:
        return ",".join("kafka://" + s.strip() for s in self.bootstrap_servers.split(",") if s.strip())


def variables() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting the worker reads."""
    own = [(f.metadata["env"], f.metadata["default"], f.metadata["help"]) for f in fields(StreamSettings) if f.metadata]
    return own + list(SECURITY_VARIABLES)


def reference_table() -> str:
    rows = ["| variable | default | what it changes |", "|---|---|---|"]
    rows += [
        f"| `{name}` | {f'`{default}`' if default else '—'} | {meaning} |" for name, default, meaning in variables()
    ]
    return "\n".join(rows)
