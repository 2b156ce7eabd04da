"""Kafka security settings from the environment, for Faust and for the confluent-kafka clients.

Secrets come from environment variables or files (`..._FILE`, as orchestrators mount them) and
are kept out of every repr, so they never reach a log line."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# (variable, default, meaning) for the configuration reference; secrets also read from NAME_FILE.
SECURITY_VARIABLES = (
    (
        "KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        f"{', '.join(f'`{p}`' for p in PROTOCOLS)}; also for `produce`, `alerts`, `replay`",
    ),
    ("KAFKA_SASL_MECHANISM", "PLAIN", ", ".join(f"`{m}`" for m in MECHANISMS)),
    ("KAFKA_SASL_USERNAME", "", "SASL user"),
    ("KAFKA_SASL_PASSWORD", "", "SASL password, or a file in `KAFKA_SASL_PASSWORD_FILE`; never logged"),
    ("KAFKA_SSL_CA_FILE", "", "CA bundle that signs the brokers' certificates"),
    ("KAFKA_SSL_CERT_FILE", "", "client certificate (PEM) for mutual TLS"),
    ("KAFKA_SSL_KEY_FILE", "", "client key (PEM)"),
    ("KAFKA_SSL_KEY_PASSWORD", "", "client key password, or a file in `KAFKA_SSL_KEY_PASSWORD_FILE`; never logged"),
)


def _secret(env: dict[str, str], name: str) -> str | None:
    if env.get(f"{name}_FILE"):
        return Path(env[f"{name}_FILE"]).read_text().strip()
    return env.get(name) or None


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> KafkaSecurity:
        env = dict(os.environ if env is None else env)
        protocol = env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
        mechanism = env.get("KAFKA_SASL_MECHANISM", "PLAIN").upper()
        if protocol not in PROTOCOLS:
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        if mechanism not in MECHANISMS:
            raise ValueError(f"KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)}, not {mechanism!r}")
        security = cls(
            protocol, mechanism, env.get("KAFKA_SASL_USERNAME") or None, _secret(env, "KAFKA_SASL_PASSWORD"),
            env.get("KAFKA_SSL_CA_FILE") or None, env.get("KAFKA_SSL_CERT_FILE") or None,
            env.get("KAFKA_SSL_KEY_FILE") or None, _secret(env, "KAFKA_SSL_KEY_PASSWORD"),
        )  # fmt: skip
        if security.uses_sasl and not (security.username and security.password):
            raise ValueError("SASL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)")
        return security

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol.endswith("SSL")

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file, self.key_password)
        return context

    def faust_credentials(self):
        """What faust.App(broker_credentials=...) takes, or None for PLAINTEXT."""
        import faust

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.username, password=self.password, mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context() if self.uses_ssl else None,
            )  # fmt: skip
        if self.uses_ssl:
            return faust.SSLCredentials(self.ssl_context())
        return None

    def confluent_config(self) -> dict[str, str]:
        """The same settings for confluent-kafka (produce, alerts, replay)."""
        config = {"security.protocol": self.protocol}
        if self.uses_sasl:
            config.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.username or "",
                           "sasl.password": self.password or ""})  # fmt: skip
        if self.uses_ssl:
            optional = {"ssl.ca.location": self.ca_file, "ssl.certificate.location": self.cert_file,
                        "ssl.key.location": self.key_file, "ssl.key.password": self.key_password}  # fmt: skip
            config.update({k: v for k, v in optional.items() if v})
        return config
