"""Running the pipeline for real from Python: a local Kafka broker, worker processes, topics.
Used by the demo and the integration tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / ".ci" / "kafka.sh"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: the sockets are held together, since one closed before the
    next bind may hand the same port out twice (a broker then fails on duplicate listeners)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def reachable(bootstrap: str) -> bool:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


class LocalBroker:
    """A pinned Apache Kafka (KRaft, .ci/kafka.sh) on free loopback ports; `restart` keeps its data."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        port, controller_port = free_ports(2)
        self.env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(controller_port),
                    "KAFKA_DATA_DIR": str(data_dir), **env}  # fmt: skip
        self.bootstrap = f"127.0.0.1:{self.env['KAFKA_PORT']}"

    def run(self, action: str) -> None:
        done = subprocess.run(["bash", str(KAFKA_SCRIPT), action], env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh {action} failed (needs java and mvn): {done.stderr[-800:]}")


@contextmanager
def local_kafka(data_dir: Path, **env: str) -> Iterator[LocalBroker]:
    """A LocalBroker, started, and stopped on exit."""
    broker = LocalBroker(data_dir, **env)
    broker.run("start")
    try:
        yield broker
    finally:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "stop"], env=broker.env, capture_output=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, name: str, partitions: int, client_config: dict | None = None) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, **(client_config or {})})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)


def end_offsets(bootstrap: str, topic: str, client_config: dict | None = None) -> dict[int, int]:
    """Each partition's end offset (high watermark) as the broker has it."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("ends"), "enable.auto.commit": False,
                         **(client_config or {})})  # fmt: skip
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in sorted(partitions)}
    finally:
        consumer.close()


@contextmanager
def running_worker(bootstrap: str, env: dict[str, str], web_port: int, log_path: Path) -> Iterator[subprocess.Popen]:
    """`python faust_app.py worker` in a subprocess; terminated (then killed) on exit."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": bootstrap, **env}
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "faust_app.py", "worker", "-l", "info", "--web-port", str(web_port)],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield worker
        finally:
            stop_process(worker, grace=30)


def wait_until_ready(worker: subprocess.Popen, web_port: int, log_path: Path, timeout: float = 120) -> None:
    """Until the worker's /ready answers 200; SystemExit if it exits or takes longer than `timeout` s."""
    deadline = time.monotonic() + timeout
    while get(f"http://127.0.0.1:{web_port}/ready")[0] != 200:
        if time.monotonic() > deadline or worker.poll() is not None:
            raise SystemExit(f"worker did not start; see {log_path}")
        time.sleep(0.5)


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM (a worker commits and leaves its group), then SIGKILL after `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get(url: str) -> tuple[int, bytes]:
    """(HTTP status, body) of a worker's page; status 0 while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError):
        return 0, b""


def scrape(port: int) -> dict[str, float]:
    """A worker's /metrics as sample name{label=value,...} -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics on port {port} answered {status}")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def metric_total(samples: dict[str, float], name: str) -> float:
    """The sum of a scraped metric over all its label values."""
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


def worker_report(port: int, log_path: Path, metric_names: tuple[str, ...], lines: int = 40) -> str:
    """For a failing test's message: the worker's counts of `metric_names` and its log's last
    warnings, errors and group changes."""
    try:
        samples = scrape(port)
        counts = ", ".join(f"{name}={metric_total(samples, name):g}" for name in metric_names)
    except (OSError, RuntimeError) as error:
        counts = f"/metrics unreadable: {error}"
    marks = ("WARN", "ERROR", "Traceback", "rebalanc", "Joined group", "Revoking", "Signal received")
    text = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    noted = [line[:300] for line in text if any(mark in line for mark in marks)][-lines:]
    return "\n".join([f"worker on port {port}: {counts}", f"{log_path}:", *noted])


def wait_for_log(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.3)
    raise TimeoutError(f"{text!r} did not appear in {path} within {timeout:.0f} s")


def consume_json(
    bootstrap: str, topics: list[str], until: Callable[[list[tuple[str, dict]]], bool], timeout: float,
    on_value: Callable[[str, dict], None] | None = None, client_config: dict | None = None,
) -> list[tuple[str, dict]]:  # fmt: skip
    """(topic, JSON value) from the start of the topics until until(values) or the timeout."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         **(client_config or {})})  # fmt: skip
    consumer.subscribe(topics)
    values: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(values):
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                item = (message.topic(), json.loads(message.value()))
                values.append(item)
                if on_value is not None:
                    on_value(*item)
    finally:
        consumer.close()
    return values
