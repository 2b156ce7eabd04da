"""A real Apache Kafka broker for the integration tests (started by .ci/run, or here on demand)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def broker_up() -> bool:
    host, port = BOOTSTRAP.split(",")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def require_broker() -> str:
    if not broker_up():
        started = subprocess.run(["bash", str(ROOT / ".ci" / "kafka.sh"), "start"], capture_output=True, text=True)
        if started.returncode != 0 or not broker_up():
            message = f"no Kafka broker at {BOOTSTRAP} and .ci/kafka.sh could not start one: {started.stderr[-500:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    return BOOTSTRAP


def create_topic(name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def running_worker(env: dict[str, str], web_port: int, log_path: Path) -> Iterator[subprocess.Popen]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, **env}
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "faust_app.py", "worker", "-l", "info", "--web-port", str(web_port)],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield worker
        finally:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()


def consume_all(topic: str, until, timeout: float) -> list[dict]:
    """Reads JSON values from the start of a topic until until(values) or the timeout."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("reader"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    values: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(values):
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                values.append(json.loads(message.value()))
    finally:
        consumer.close()
    return values
