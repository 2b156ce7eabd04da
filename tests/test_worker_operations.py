"""A worker started the way the CPU image starts it, on the real test broker: its files are what
deploy/Dockerfile copies, its Python environment what the image installs (no torch, onnxruntime
CPU), its settings the image's ENV plus deploy/k8s/base/worker.env. /metrics and /health are
read while lines flow."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from commands.kafka_io import run_produce
from commands.live import consume_json, create_topic, free_port, get, metric_total, scrape, stop_process, unique
from streaming.settings import StreamSettings
from tests.conftest import ROOT
from tests.deploy_support import DEPLOY, env_file, read_image, stage_image_files
from tests.kafka_support import require_broker, wait_until
from tests.test_stream_kafka import batch_decisions

pytestmark = pytest.mark.kafka


def serving_python() -> str:
    """The serving-cpu virtualenv (built once, cached like the dev one)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "venv.sh")], env={**os.environ, "LOGBERT_VENV_FLAVOUR": "serving-cpu"},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return str(Path(done.stdout.strip()) / "bin" / "python")


def test_worker_started_like_the_image_serves_metrics_and_health(trained_model, generated_hdfs, tmp_path):
    bootstrap = require_broker()
    image = read_image(DEPLOY / "Dockerfile")
    app_dir = stage_image_files(image, tmp_path / "app")
    topic, app_id, alerts_topic, dlq_topic = (unique(p) for p in ("logs-raw", "logbert-ops", "alerts", "dlq"))
    create_topic(bootstrap, topic, 1)
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        **image.env,
        **env_file(DEPLOY / "k8s" / "base" / "worker.env"),
    }
    # What the orchestrator maps: the model volume, the data volume, the broker, names unique to this test.
    env.update({
        "LOGBERT_MODEL_DIR": str(trained_model), "LOGBERT_DATA_DIR": str(tmp_path / "data" / "faust"),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOGBERT_APP_ID": app_id, "LOGBERT_INPUT_TOPICS": topic,
        "LOGBERT_ALERTS_TOPIC": alerts_topic, "LOGBERT_DLQ_TOPIC": dlq_topic, "LOGBERT_WEB_PORT": str(port),
        "LOGBERT_QUIET_FLUSH": "8",
    })  # fmt: skip
    command = [serving_python(), *image.entrypoint[1:], *image.cmd]
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(command, cwd=app_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: worker.poll() is None and get(f"http://127.0.0.1:{port}/ready")[0] == 200, 120,
                   "the worker did not become ready", log)  # fmt: skip
        before = scrape(port)
        version = json.loads((trained_model / "config.json").read_text())["version"]
        assert before["logbert_lines_parsed_total"] == 0 and before["logbert_model_loaded"] == 1
        assert before[f"logbert_model_info{{version={version}}}"] == 1
        assert before["logbert_execution_provider{provider=CPUExecutionProvider}"] == 1
        assert f"model version {version}" in log.read_text()

        log_path = generated_hdfs[0]
        lines = len(log_path.read_text().splitlines())
        _, sequences = batch_decisions(trained_model, log_path)
        # the image's own commands feed and read the topics (Compose's producer, README's `alerts`)
        image_command = [command[0], *image.entrypoint[1:]]
        fed = subprocess.run([*image_command, "produce", "--input", str(log_path), "--topic", topic], cwd=app_dir,
                             env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert fed.returncode == 0 and f"produced {lines} lines" in fed.stdout, fed.stderr[-2000:]
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce(topic, value=b"\xff\xfe not utf-8")
        producer.flush(10)

        seen_open = []

        def all_scored():
            samples = scrape(port)
            seen_open.append(samples["logbert_open_windows"])
            scored = metric_total(samples, "logbert_sequences_scored_total")
            return samples if scored >= sequences else None

        after = wait_until(all_scored, 180, f"the worker did not score {sequences} sequences", log)
        assert after["logbert_lines_parsed_total"] == lines
        assert after["logbert_raw_messages_total"] == lines + 1
        assert after["logbert_dlq_messages_total{reason=not UTF-8}"] == 1
        assert after["logbert_batch_size_count{stage=parse}"] >= 1
        assert after["logbert_batch_size_sum{stage=score}"] == sequences
        assert after["logbert_scoring_seconds_count"] == after["logbert_batch_size_count{stage=score}"] >= 1
        assert max(seen_open) > 0, "open sessions were never counted"
        assert f"logbert_consumer_lag{{partition=0,topic={topic}}}" in after

        alerts = [
            v for _, v in consume_json(bootstrap, [alerts_topic], lambda v: len(v) >= after["logbert_alerts_total"], 60)
        ]
        assert len(alerts) == after["logbert_alerts_total"] > 0
        assert {a["model_version"] for a in alerts} == {version}
        shown = subprocess.run([*image_command, "alerts", "--json"], cwd=app_dir, env=env, capture_output=True,
                               text=True, timeout=120)  # fmt: skip
        assert shown.returncode == 0 and len(shown.stdout.splitlines()) == len({a["alert_id"] for a in alerts})

        settled = wait_until(lambda: (s := scrape(port))[f"logbert_consumer_lag{{partition=0,topic={topic}}}"] == 0 and s,
                             60, "the raw partition's lag did not reach 0", log)  # fmt: skip
        assert settled["logbert_stuck_partitions"] == 0
        status, body = get(f"http://127.0.0.1:{port}/health")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok" and health["assigned_partitions"] >= 1, health
    finally:
        stop_process(worker, grace=60)
    assert worker.returncode == 0, log.read_text()[-3000:]


def test_a_model_rollout_carries_open_sessions_over(trained_model, generated_hdfs, tmp_path):
    """Worker A (model A) reads the first half of a log and stops with sessions open; worker B, the
    same group with model B (the same templates in another order) and LOGBERT_OTHER_MODEL_DIRS=A,
    reads the rest. Every sequence B scores, including the sessions A left open, gets exactly
    the decision `evaluate` gives with model B on the whole file."""
    from commands.live import running_worker
    from commands.train import TrainRequest, run_train
    from sequences.readers import ReadOptions

    bootstrap = require_broker()
    log_path, labels = generated_hdfs
    model_b = tmp_path / "model-b"
    run_train(TrainRequest(log_path, ReadOptions("hdfs", labels=labels), model_b, preset="small", fraction=(0.3, 0.9),
                           epochs=2, progress=False))  # fmt: skip
    templates = [json.loads((m / "templates.json").read_text())["templates"] for m in (trained_model, model_b)]
    texts = [[t["template"] for t in ts] for ts in templates]
    assert texts[0] != texts[1] and sorted(texts[0]) == sorted(texts[1]), "the test needs reordered templates"
    version_b = json.loads((model_b / "config.json").read_text())["version"]

    topic, app_id, alerts_topic, scores_topic = (unique(p) for p in ("logs-raw", "rollout", "alerts", "scores"))
    create_topic(bootstrap, topic, 1)
    lines = log_path.read_text().splitlines(keepends=True)
    halves = [tmp_path / "first.log", tmp_path / "second.log"]
    halves[0].write_text("".join(lines[: len(lines) // 2]))
    halves[1].write_text("".join(lines[len(lines) // 2 :]))
    env = {"LOGBERT_APP_ID": app_id, "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_ALERTS_TOPIC": alerts_topic,
           "LOGBERT_SCORES_TOPIC": scores_topic, "LOGBERT_PUBLISH_SCORES": "1", "LOGBERT_PROVIDER": "cpu",
           "LOGBERT_DATA_DIR": str(tmp_path / "data")}  # fmt: skip

    port = free_port()
    log_a = tmp_path / "worker-a.log"
    with running_worker(bootstrap, {**env, "LOGBERT_MODEL_DIR": str(trained_model), "LOGBERT_QUIET_FLUSH": "600",
                                    "LOGBERT_WEB_PORT": str(port)}, port, log_a):  # fmt: skip
        wait_until(lambda: get(f"http://127.0.0.1:{port}/ready")[0] == 200, 120, "worker A not ready", log_a)
        run_produce(StreamSettings(bootstrap_servers=bootstrap), str(halves[0]), topic, 0.0, 1)

        def drained():
            samples = scrape(port)
            lags = [v for k, v in samples.items() if k.startswith("logbert_consumer_lag")]
            done = samples["logbert_lines_parsed_total"] == len(lines) // 2 and lags and not any(lags)
            return samples if done else None

        at_switch = wait_until(drained, 120, "worker A did not drain the first half", log_a)
    assert at_switch["logbert_open_windows"] > 0, "the switch must leave sessions open"

    # The rest is already waiting when B joins: B fetches it while it finishes its recovery.
    run_produce(StreamSettings(bootstrap_servers=bootstrap), str(halves[1]), topic, 0.0, 1)
    port = free_port()
    log_b = tmp_path / "worker-b.log"
    with running_worker(bootstrap, {**env, "LOGBERT_MODEL_DIR": str(model_b), "LOGBERT_OTHER_MODEL_DIRS": str(trained_model),
                                    "LOGBERT_QUIET_FLUSH": "3", "LOGBERT_WEB_PORT": str(port)}, port, log_b):  # fmt: skip
        wait_until(lambda: get(f"http://127.0.0.1:{port}/ready")[0] == 200, 120, "worker B not ready", log_b)
        _, expected_total = batch_decisions(model_b, log_path)
        scores = [v for _, v in consume_json(bootstrap, [scores_topic], lambda v: len(v) >= expected_total, 180)]
        alerts = [v for _, v in consume_json(bootstrap, [alerts_topic], lambda v: False, 5)]
        after = scrape(port)
    assert "carrying over" in log_b.read_text() and after["logbert_untranslated_keys"] == 0
    assert len({(s["session"], s["part"]) for s in scores}) == expected_total  # every sequence scored once

    flagged_b, _ = batch_decisions(model_b, log_path)
    scored_by_b = {s["session"] for s in scores if s["model_version"] == version_b}
    assert scored_by_b
    streamed_b = {a["key"] for a in alerts if a["model_version"] == version_b}
    assert streamed_b == {session for session, _ in flagged_b if session in scored_by_b}
