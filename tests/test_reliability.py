"""Bad input and bad model directories against a running worker on the real broker: each input is
processed or dead-lettered with its reason and bytes, the worker keeps running and counts what it
did, and nothing of the good input around it is lost or changed."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from commands.kafka_io import run_produce
from commands.live import consume_json, create_topic, free_port, get, running_worker, scrape, unique
from streaming.settings import StreamSettings
from tests.conftest import ROOT
from tests.kafka_support import require_broker, wait_until
from tests.test_stream_kafka import batch_decisions

pytestmark = pytest.mark.kafka


def summary(name: str, **figures) -> None:
    """One row of the README's reliability table (pytest -s shows it)."""
    print(f"\n[reliability] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def bad_inputs(template_line: str, now: str) -> list[tuple[str, bytes]]:
    """(what it is, message value), stamped `now` (the event time where they are inserted) unless
    their time is the point. The sessions blk_99x are not in the good log."""

    def line(block: str, when: str = now, content_suffix: str = "") -> str:
        return when + re.sub(r"blk_-?\d+", block, template_line)[len(when) :] + content_suffix

    burst = "\n".join(line("blk_994") for _ in range(5000))
    return [
        ("non-UTF-8 bytes", b"\xff\xfe\xfd blk_990 garbage"),
        ("empty value", b""),
        ("JSON of the wrong shape", b'{"line": 5, "timestamp": "soon"}'),
        ("JSON with wrong field types", json.dumps({"line": line("blk_997"), "timestamp": "yesterday", "source": 7}).encode()),
        ("a 1 MB line", (line("blk_999") + " x" * 499_000).encode()),
        ("control characters", line("blk_998", content_suffix=" \x1b[2J\x00\x07 \u0085end").encode()),
        ("no session id", line("blk_1").replace("blk_1", "block-without-id").encode()),
        ("unparseable timestamp", line("blk_996", when="08x109 20z518").encode()),
        ("timestamp 60 years ahead", line("blk_995", when="681231 235959").encode()),
        ("timestamp 38 years behind", line("blk_993", when="700101 000000").encode()),
        ("template never seen in training", f"{now} 143 WARN dfs.Unknown: never seen before for blk_992 at 10.1.2.3".encode()),
        ("5,000 lines of one session in one message", burst.encode()),
    ]  # fmt: skip


def test_bad_inputs_are_processed_or_dead_lettered_and_good_input_is_untouched(trained_model, generated_hdfs, tmp_path):
    from confluent_kafka import Producer

    bootstrap = require_broker()
    log_path = generated_hdfs[0]
    good = log_path.read_text().splitlines()
    flagged, expected_good = batch_decisions(trained_model, log_path)
    topic, app_id, alerts_topic, dlq_topic, scores_topic = (
        unique(p) for p in ("logs-raw", "bad-input", "alerts", "dlq", "scores")
    )
    create_topic(bootstrap, topic, 1)
    env = {"LOGBERT_APP_ID": app_id, "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_MODEL_DIR": str(trained_model),
           "LOGBERT_ALERTS_TOPIC": alerts_topic, "LOGBERT_DLQ_TOPIC": dlq_topic, "LOGBERT_SCORES_TOPIC": scores_topic,
           "LOGBERT_PUBLISH_SCORES": "1", "LOGBERT_QUIET_FLUSH": "4", "LOGBERT_PROVIDER": "cpu",
           "LOGBERT_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    third = len(good) // 3
    bad = bad_inputs(good[0], now=good[third - 1][:13])
    (tmp_path / "before.log").write_text("\n".join(good[:third]) + "\n")
    (tmp_path / "after.log").write_text("\n".join(good[third:]) + "\n")
    port = free_port()
    log = tmp_path / "worker.log"
    with running_worker(bootstrap, {**env, "LOGBERT_WEB_PORT": str(port)}, port, log) as worker:
        wait_until(lambda: get(f"http://127.0.0.1:{port}/ready")[0] == 200, 120, "worker not ready", log)
        settings = StreamSettings(bootstrap_servers=bootstrap)
        run_produce(settings, str(tmp_path / "before.log"), topic, 0.0, 1)
        producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000})
        for _, value in bad:
            producer.produce(topic, value=value)
        producer.flush(30)
        run_produce(settings, str(tmp_path / "after.log"), topic, 0.0, 1)

        bad_sessions = {"blk_997": 1, "blk_999": 1, "blk_998": 1, "blk_996": 1, "blk_995": 1, "blk_993": 1,
                        "blk_992": 1, "blk_994": 3}  # 5,000 lines cut at 2,048 keys: three parts  # fmt: skip
        total = expected_good + sum(bad_sessions.values())
        scores = [v for _, v in consume_json(bootstrap, [scores_topic], lambda v: len(v) >= total, 240)]
        letters = [v for _, v in consume_json(bootstrap, [dlq_topic], lambda v: len(v) >= 3, 30)]
        alerts = [v for _, v in consume_json(bootstrap, [alerts_topic], lambda v: False, 5)]
        after = scrape(port)
        status, body = get(f"http://127.0.0.1:{port}/health")
        assert worker.poll() is None and status == 200, body

    # dead letters: exactly the three undecodable values, with reasons and their bytes
    assert sorted(base64.b64decode(v["value_base64"]) for v in letters) == sorted([b for _, b in bad[:3]])
    assert {v["reason"].split(":")[0] for v in letters} == {"not UTF-8", "empty value", "JSON of the wrong shape"}
    for reason in ("not UTF-8", "empty value", "JSON of the wrong shape"):
        assert after[f"logbert_dlq_messages_total{{reason={reason}}}"] == 1

    # what was processed, and counted
    processed_lines = len(good) + 8 + 5000  # eight one-line messages and the burst
    assert after["logbert_raw_messages_total"] == len(good) + len(bad)
    assert after["logbert_lines_parsed_total"] == processed_lines
    assert after["logbert_lines_truncated_total"] == 1
    assert after["logbert_timestamps_distrusted_total"] == 1
    assert after["logbert_lines_undated_total"] == 1
    assert after["logbert_lines_without_session_total"] == 1
    assert after["logbert_unseen_template_lines_total"] >= 3  # the 1 MB, control and never-seen lines

    # every sequence scored once; the good sessions decided exactly as evaluate decides them without the bad input
    scored = [(s["session"], s["part"]) for s in scores]
    assert len(scored) == len(set(scored)) == total
    for session, parts in bad_sessions.items():
        assert sum(s == session for s, _ in scored) == parts, session
    good_alerts = {a["key"] for a in alerts if a["key"] not in bad_sessions}
    assert good_alerts == {session for session, _ in flagged}
    for alert in alerts:
        text = json.dumps(alert)
        assert "\x1b" not in text and "\\u001b" not in text and len(text) < 40_000  # escaped and bounded
    control = [a for a in alerts if a["key"] == "blk_998"]
    shown = [m["actual"] for m in control[0]["missed_positions"]] if control else []
    assert any("\\x1b[2J\\x00\\x07" in text for text in shown), shown
    summary("bad input", messages_in=len(good) + len(bad), dead_lettered=len(letters),
            good_sequences=expected_good, good_alerts_expected=len(flagged), good_alerts_out=len(good_alerts),
            lost=expected_good - sum(s not in bad_sessions for s, _ in scored))  # fmt: skip


def _committed_offsets(bootstrap: str, group: str, topic: str) -> list[int]:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]
    result = admin.list_consumer_group_offsets(request)[group].result(30)
    return [tp.offset for tp in result.topic_partitions if tp.offset >= 0]


def _break(model, how: str) -> str:
    """Damages a copy of a model directory; returns the start of the error the worker must print."""
    if how == "missing directory":
        shutil.rmtree(model)
        return "cannot start: model directory not found"
    if how == "corrupt ONNX":
        (model / "model.onnx").write_bytes(b"\x08\x07not an onnx graph")
        return "cannot start: model.onnx could not be loaded"
    templates = json.loads((model / "templates.json").read_text())
    if how == "templates that do not match the config":
        templates["templates"] = templates["templates"][:-1]
        (model / "templates.json").write_text(json.dumps(templates))
        return "cannot start: templates.json has"
    if how == "wrong vocabulary size":
        config = json.loads((model / "config.json").read_text())
        config["model"]["vocab_size"] += 1
        templates["templates"].append({"event": "T999", "template": "an extra template <*>", "count": 1})
        (model / "config.json").write_text(json.dumps(config))
        (model / "templates.json").write_text(json.dumps(templates))
        return "cannot start: model.onnx predicts"
    if how == "pickle in config.json":
        (model / "config.json").write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.")
        return "cannot start: config.json is not readable JSON"
    raise ValueError(how)


@pytest.mark.parametrize("how", ["missing directory", "corrupt ONNX", "templates that do not match the config",
                                 "wrong vocabulary size", "pickle in config.json"])  # fmt: skip
def test_a_bad_model_directory_stops_the_worker_before_it_consumes(how, trained_model, tmp_path):
    bootstrap = require_broker()
    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    expected = _break(model, how)
    topic, group = unique("logs-raw"), unique("bad-model")
    create_topic(bootstrap, topic, 1)
    run_produce(StreamSettings(bootstrap_servers=bootstrap), str(ROOT / "README.md"), topic, 0.0, 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOGBERT_APP_ID": group,
           "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_MODEL_DIR": str(model), "LOGBERT_WEB_PORT": str(free_port()),
           "LOGBERT_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    done = subprocess.run([sys.executable, "faust_app.py", "worker"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert expected in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr.split("logbert worker: cannot start")[-1]
    assert _committed_offsets(bootstrap, group, topic) == []


def test_the_wait_before_subscribing_sees_a_topic_created_meanwhile_on_the_real_broker():
    """The worker's consumer waits for its new internal topics in the cluster's metadata before it
    subscribes (streaming/consumer_position.py); here against the broker's real metadata answers."""
    import asyncio
    import threading
    import time

    from aiokafka import AIOKafkaClient

    from streaming.consumer_position import wait_for_topics

    bootstrap = require_broker()
    late, never = unique("created-late"), unique("never-created")
    creator = threading.Timer(1.0, create_topic, (bootstrap, late, 3))

    async def wait(topics: set[str], timeout: float) -> tuple[set[str], float]:
        client = AIOKafkaClient(bootstrap_servers=bootstrap)
        await client.bootstrap()
        try:
            started = time.monotonic()
            missing = await wait_for_topics(client.fetch_all_metadata, topics, timeout)
            return missing, time.monotonic() - started
        finally:
            await client.close()

    creator.start()
    try:
        missing, waited = asyncio.run(wait({late}, timeout=30))
    finally:
        creator.join()
    assert missing == set() and 0.9 < waited < 30
    missing, waited = asyncio.run(wait({late, never}, timeout=1.0))
    assert missing == {never} and waited >= 1.0
