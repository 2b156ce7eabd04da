"""A real Apache Kafka broker for the integration tests (started by .ci/run, or here on demand)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

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


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError):  # not listening yet
        return 0, b""


def scrape(port: int) -> dict[str, float]:
    """Sample name{labels} -> value."""
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def wait_until(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:.0f} s; worker log tail:\n{log.read_text()[-3000:]}")
