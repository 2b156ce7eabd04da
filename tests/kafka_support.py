"""A real Apache Kafka broker for the integration tests (started by .ci/run, or here on demand)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from commands.live import KAFKA_SCRIPT, reachable

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def require_broker() -> str:
    if not reachable(BOOTSTRAP):
        started = subprocess.run(["bash", str(KAFKA_SCRIPT), "start"], capture_output=True, text=True)
        if started.returncode != 0 or not reachable(BOOTSTRAP):
            message = f"no Kafka broker at {BOOTSTRAP} and .ci/kafka.sh could not start one: {started.stderr[-500:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    return BOOTSTRAP


def wait_until(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:.0f} s; worker log tail:\n{log.read_text()[-3000:]}")
