"""Worker settings from environment variables (the images and manifests set these)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from streaming.security import KafkaSecurity


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class StreamSettings:
    app_id: str = field(default_factory=lambda: _env("LOGBERT_APP_ID", "logbert"))  # the consumer group
    bootstrap_servers: str = field(default_factory=lambda: _env("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"))
    input_topics: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            t.strip() for t in _env("LOGBERT_INPUT_TOPICS", "logs-raw").split(",") if t.strip()
        )
    )
    model_dir: str = field(default_factory=lambda: _env("LOGBERT_MODEL_DIR", "model"))
    value_format: str = field(default_factory=lambda: _env("LOGBERT_VALUE_FORMAT", "auto"))  # auto, text, json
    internal_partitions: int = field(default_factory=lambda: int(_env("LOGBERT_PARTITIONS", "4")))
    max_session_keys: int = field(default_factory=lambda: int(_env("LOGBERT_MAX_SESSION_KEYS", "2048")))
    parse_batch: int = field(default_factory=lambda: int(_env("LOGBERT_PARSE_BATCH", "1000")))
    score_batch: int = field(default_factory=lambda: int(_env("LOGBERT_SCORE_BATCH", "256")))
    max_wait: float = field(default_factory=lambda: float(_env("LOGBERT_MAX_WAIT", "0.2")))
    # Wall-clock seconds with no input after which open sessions are emitted as still open.
    quiet_flush: float = field(default_factory=lambda: float(_env("LOGBERT_QUIET_FLUSH", "60")))
    provider: str = field(default_factory=lambda: _env("LOGBERT_PROVIDER", "auto"))
    publish_scores: bool = field(default_factory=lambda: _env("LOGBERT_PUBLISH_SCORES", "0") == "1")

    alerts_topic: str = field(default_factory=lambda: _env("LOGBERT_ALERTS_TOPIC", "logbert-alerts"))
    dlq_topic: str = field(default_factory=lambda: _env("LOGBERT_DLQ_TOPIC", "logbert-dlq"))
    scores_topic: str = field(default_factory=lambda: _env("LOGBERT_SCORES_TOPIC", "logbert-scores"))

    # Internal topics carry the app id, so two deployments on one cluster never share them.
    @property
    def keys_topic(self) -> str:
        return f"{self.app_id}-keys"

    @property
    def sequences_topic(self) -> str:
        return f"{self.app_id}-sequences"

    # Only for brokers that need it (the demo's embedded one): never set by default.
    broker_session_timeout: float | None = field(
        default_factory=lambda: (
            float(os.environ["LOGBERT_BROKER_SESSION_TIMEOUT"])
            if os.environ.get("LOGBERT_BROKER_SESSION_TIMEOUT")
            else None
        )
    )

    security: KafkaSecurity = field(default_factory=KafkaSecurity.from_env)

    def faust_overrides(self) -> dict:
        overrides: dict = {}
        credentials = self.security.faust_credentials()
        if credentials is not None:
            overrides["broker_credentials"] = credentials
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
