"""The streaming pipeline against a real Apache Kafka broker: same decisions as `evaluate`."""

from __future__ import annotations

import re
import time
from contextlib import ExitStack

import jsonschema
import pytest

from commands.common import key_sequences
from commands.evaluate import read_options_from_model
from commands.kafka_io import run_produce
from commands.live import (
    consume_json,
    create_topic,
    end_offsets,
    running_worker,
    unique,
    wait_for_log,
    worker_report,
)
from models.detector import Detector
from sequences.readers import read_dataset
from streaming.alerts import load_schema
from streaming.settings import StreamSettings
from tests.conftest import dataset
from tests.kafka_support import require_broker

pytestmark = pytest.mark.kafka


def batch_decisions(model_dir, log_path) -> tuple[set[tuple[str, int]], int]:
    """(session, first line) of every anomalous sequence as `evaluate` decides it, and the count."""
    detector = Detector.load(model_dir, provider="cpu")
    data = read_dataset(log_path, read_options_from_model(detector.config))
    scores = detector.score(key_sequences(data, data.sequences, detector.vocabulary))
    flagged = {(s.id, s.records[0]) for s, score in zip(data.sequences, scores) if detector.is_anomalous(score)}
    return flagged, len(data.sequences)


def stream_decisions(model_dir, log_path, tmp_path, topic: str | None = None, workers: int = 1, **extra_env: str):
    """Runs `workers` members of a fresh consumer group over the file's lines; returns alerts and scores.
    Without a topic, a fresh one is created and filled once every member is ready, so the group's
    first rebalance is over before any line arrives."""
    bootstrap = require_broker()
    fresh = topic is None
    if fresh:
        topic = unique("logs-raw")
        create_topic(bootstrap, topic, 1)  # one partition: lines keep file order, as evaluate reads them
    app_id, alerts_topic, scores_topic = unique("logbert-test"), unique("alerts"), unique("scores")
    env = {
        "LOGBERT_APP_ID": app_id, "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_MODEL_DIR": str(model_dir),
        "LOGBERT_ALERTS_TOPIC": alerts_topic, "LOGBERT_SCORES_TOPIC": scores_topic, "LOGBERT_PUBLISH_SCORES": "1",
        "LOGBERT_QUIET_FLUSH": "3", "LOGBERT_PROVIDER": "cpu", **extra_env,
    }  # fmt: skip
    expected = batch_decisions(model_dir, log_path)[1]
    logs = [tmp_path / f"{app_id}-{n}.log" for n in range(workers)]
    with ExitStack() as stack:
        for n, log in enumerate(logs):
            own = {**env, "LOGBERT_DATA_DIR": str(tmp_path / f"data-{n}")}  # not {app id}-data in the clone
            stack.enter_context(running_worker(bootstrap, own, 6070 + n, log))
        if fresh:
            for log in logs:
                wait_for_log(log, "Worker]: Ready", timeout=120)
            if workers > 1:
                wait_for_settled_group(logs)
            run_produce(StreamSettings(bootstrap_servers=bootstrap), str(log_path), topic, 0.0, 1)
        scores = [v for _, v in consume_json(bootstrap, [scores_topic], lambda v: len(v) >= expected, 240)]
        alerts = [v for _, v in consume_json(bootstrap, [alerts_topic], lambda v: False, 5)]
    tails = "".join(log.read_text()[-2000:] for log in logs)
    assert len(scores) >= expected, f"scored {len(scores)} of {expected} sequences; worker logs:\n{tails}"
    return alerts, scores, [log.read_text() for log in logs], topic


def wait_for_settled_group(logs, timeout: float = 90.0) -> None:
    """Until every member logs the same, latest group generation and is ready again after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = [log.read_text() for log in logs]
        generations = [max(map(int, re.findall(r"generation id (\d+)", text)), default=0) for text in texts]
        ready_after = [text.rfind("Worker ready") > text.rfind("generation id") for text in texts]
        if len(set(generations)) == 1 and generations[0] >= len(logs) - 1 and all(ready_after):
            time.sleep(2)
            return
        time.sleep(0.5)
    raise AssertionError(f"the consumer group did not settle: generations {generations}")


def _check(model_dir, log_path, tmp_path, **extra_env: str) -> None:
    alerts, _, _, _ = stream_decisions(model_dir, log_path, tmp_path, **extra_env)
    schema = load_schema()
    for alert in alerts:
        jsonschema.validate(alert, schema)
    streamed = {(a["key"], min(s["first_offset"] for s in a["source"])) for a in alerts}
    assert len(streamed) == len({a["alert_id"] for a in alerts})  # one id per window, duplicates share it
    flagged, _ = batch_decisions(model_dir, log_path)
    assert flagged, "the comparison needs some anomalous sequences"
    assert streamed == flagged


@pytest.mark.parametrize("parse_processes", ["0", "2"])
def test_stream_decisions_equal_evaluate_on_generated_logs(parse_processes, trained_model, generated_hdfs, tmp_path):
    _check(trained_model, generated_hdfs[0], tmp_path, LOGBERT_PARSE_PROCESSES=parse_processes)


@pytest.mark.datasets
def test_stream_decisions_equal_evaluate_on_hdfs_20000(tmp_path):
    from commands.train import TrainRequest, run_train
    from sequences.readers import ReadOptions

    log = dataset("hdfs/HDFS_20000.log")
    labels = dataset("hdfs/HDFS_20000_anomaly_label.csv")
    model = tmp_path / "model"
    run_train(TrainRequest(log, ReadOptions("hdfs", labels=labels), model, fraction=(0, 0.6), epochs=4, progress=False))
    _check(model, log, tmp_path)


def test_two_workers_split_the_work_and_produce_the_same_alert_ids(trained_model, generated_hdfs, tmp_path):
    """Two members of one consumer group produce the same alert ids as one worker on the same topic."""
    pair, _, logs, topic = stream_decisions(trained_model, generated_hdfs[0], tmp_path, workers=2)
    single, _, _, _ = stream_decisions(trained_model, generated_hdfs[0], tmp_path, topic=topic)
    assert single and {a["alert_id"] for a in pair} == {a["alert_id"] for a in single}
    # the group split the internal partitions: both members restored and served some
    assert all("Restore complete" in log for log in logs)


def test_replay_gives_the_same_metrics_as_evaluate(trained_model, generated_hdfs, tmp_path):
    import time
    from datetime import datetime, timezone

    from commands.evaluate import EvaluateRequest, run_evaluate
    from commands.replay import ReplayRequest, run_replay
    from sequences.readers import ReadOptions

    bootstrap = require_broker()
    log_path, labels = generated_hdfs
    lines = log_path.read_text().splitlines()
    thirds = [lines[: len(lines) // 3], lines[len(lines) // 3 : 2 * len(lines) // 3], lines[2 * len(lines) // 3 :]]
    topic = unique("logs-replay")
    create_topic(bootstrap, topic, 1)
    bounds = []
    for n, part in enumerate(thirds):
        chunk = tmp_path / f"part{n}.log"
        chunk.write_text("\n".join(part) + "\n")
        bounds.append(datetime.now(timezone.utc).isoformat())
        run_produce(StreamSettings(bootstrap_servers=bootstrap), str(chunk), topic, 0.0, 1)
        time.sleep(1.5)
    settings = StreamSettings(bootstrap_servers=bootstrap)
    keys = ("precision", "recall", "f1", "tp", "fp", "tn", "fn", "sequences", "short_sequences")

    def evaluate(path):
        return run_evaluate(EvaluateRequest(trained_model, path, ReadOptions("hdfs", labels=labels), progress=False))

    whole = run_replay(settings, ReplayRequest(topic, model=trained_model, labels=labels, progress=False))
    expected = evaluate(log_path)
    assert {k: whole[k] for k in keys} == {k: expected[k] for k in keys}
    assert whole["replay"]["lines"] == len(lines)

    middle = run_replay(settings, ReplayRequest(topic, bounds[1], bounds[2], trained_model, labels, progress=False))
    expected = evaluate(tmp_path / "part1.log")
    assert {k: middle[k] for k in keys} == {k: expected[k] for k in keys}
    assert middle["replay"]["lines"] == len(thirds[1])


def test_stream_decisions_equal_evaluate_on_generated_bgl_windows(tmp_path):
    """Sliding time windows (5 min, 1 min step) through the worker: the same windows flagged as evaluate."""
    from commands.generate import run_generate
    from commands.train import TrainRequest, run_train
    from sequences.readers import ReadOptions

    run_generate("bgl", str(tmp_path / "gen"), sessions=0, minutes=240, anomaly_rate=0.08, seed=5)
    log = tmp_path / "gen" / "bgl.log"
    model = tmp_path / "model"
    run_train(TrainRequest(log, ReadOptions("bgl"), model, fraction=(0, 0.6), epochs=3, progress=False))
    _check(model, log, tmp_path)


def test_undecodable_messages_go_to_the_dead_letter_topic(trained_model, tmp_path):
    """Bad values are dead-lettered with a reason and their bytes; good lines around them still flow."""
    import base64

    from confluent_kafka import Producer

    bootstrap = require_broker()
    topic, app_id, dlq, scores_topic = (unique(p) for p in ("logs-raw", "logbert-dlq-test", "dlq", "scores"))
    create_topic(bootstrap, topic, 1)
    env = {
        "LOGBERT_APP_ID": app_id, "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_MODEL_DIR": str(trained_model),
        "LOGBERT_DLQ_TOPIC": dlq, "LOGBERT_SCORES_TOPIC": scores_topic, "LOGBERT_PUBLISH_SCORES": "1",
        "LOGBERT_QUIET_FLUSH": "2", "LOGBERT_PROVIDER": "cpu", "LOGBERT_DATA_DIR": str(tmp_path / "data"),
    }  # fmt: skip
    bad = [b"\xff\xfe\x00 not utf-8", b"", b'{"no_line_here": 1}', b"[1, 2, 3]"]
    good = (
        "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_42 src: /10.0.0.1:1 dest: /10.0.0.2:50010"
    )
    log = tmp_path / "worker.log"
    with running_worker(bootstrap, env, 6079, log):
        wait_for_log(log, "Worker]: Ready", timeout=120)
        producer = Producer({"bootstrap.servers": bootstrap})
        for value in [bad[0], good.encode(), *bad[1:]]:
            producer.produce(topic, value=value)
        unsent = producer.flush(10)
        # One CI run saw 1 of 4 letters in 60 s. A lost produce answer holds a worker's sends for
        # up to 30 s (streaming/producer.py), so two in a row fit in 120 s; a letter lost for good does not.
        letters = [v for _, v in consume_json(bootstrap, [dlq], lambda v: len(v) >= len(bad), 120)]
        scores = [v for _, v in consume_json(bootstrap, [scores_topic], lambda v: len(v) >= 1, 60)]
        counted = ("logbert_raw_messages_total", "logbert_dlq_messages_total", "logbert_lines_parsed_total")
        report = ""
        if len(letters) != len(bad) or not scores:
            report = "\n".join([f"test producer: {unsent} of {len(bad) + 1} values not delivered after its flush",
                                 worker_report(6079, log, counted),
                                 f"dead-letter topic's end offsets: {end_offsets(bootstrap, dlq)}"])  # fmt: skip
    assert sorted(base64.b64decode(v["value_base64"]) for v in letters) == sorted(bad), report
    assert all(v["reason"] and v["topic"] == topic for v in letters)
    assert [s["session"] for s in scores] == ["blk_42"], report
