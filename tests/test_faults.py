"""Faults on a real broker, each with a count of what was lost: a worker killed mid-stream while
another runs on, the broker stopped and restarted mid-stream, a broker that requires SASL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from commands.kafka_io import run_produce
from commands.live import (
    ROOT,
    consume_json,
    create_topic,
    free_port,
    get,
    local_kafka,
    metric_total,
    running_worker,
    scrape,
    stop_process,
    unique,
)
from streaming.security import KafkaSecurity
from streaming.settings import StreamSettings
from tests.kafka_support import require_broker, wait_until
from tests.test_reliability import summary
from tests.test_stream_kafka import batch_decisions, wait_for_settled_group

pytestmark = pytest.mark.kafka


def spawn_worker(bootstrap: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "LOGBERT_WEB_PORT": str(port), **env}  # fmt: skip
    with open(log, "a") as out:
        return subprocess.Popen([sys.executable, "faust_app.py", "worker", "-l", "info"], cwd=ROOT, env=full_env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def ready(port: int) -> bool:
    return get(f"http://127.0.0.1:{port}/ready")[0] == 200


def scored_at_least(values: list[tuple[str, dict]], expected: int) -> bool:
    return len({(v["session"], v["part"]) for _, v in values}) >= expected


def outcome(alerts: list[dict], scores: list[dict], flagged, expected: int) -> dict:
    """What came out against what `evaluate` expects on the same lines."""
    ids_by_key: dict[str, set[str]] = {}
    for alert in alerts:
        ids_by_key.setdefault(alert["key"], set()).add(alert["alert_id"])
    scored = {(s["session"], s["part"]) for s in scores}
    return {
        "sequences_expected": expected, "sequences_scored": len(scored), "lost": expected - len(scored),
        "alerts_expected": len(flagged), "alerts_out": len(ids_by_key),
        "duplicates": len(alerts) - sum(len(ids) for ids in ids_by_key.values()),
        "ids_per_session": max((len(ids) for ids in ids_by_key.values()), default=0),
        "alerted": set(ids_by_key), "flagged": {session for session, _ in flagged},
    }  # fmt: skip


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets on `topic`, read without joining the group."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def where_unscored(bootstrap: str, sequences_topic: str, scores: list[dict]) -> dict[tuple[int, int], int]:
    """(partition, offset) of each sequences message holding sequences never scored -> how many."""
    scored = {(s["session"], s["part"]) for s in scores}
    where: dict[tuple[int, int], int] = {}
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("where"), "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([sequences_topic])
    deadline, idle_since = time.monotonic() + 60, time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - idle_since < 5:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            idle_since = time.monotonic()
            missing = [s for s in json.loads(message.value())["sequences"] if (s["session"], s["part"]) not in scored]
            if missing:
                where[(message.partition(), message.offset())] = len(missing)
    finally:
        consumer.close()
    return where


def check(result: dict) -> None:
    assert result["lost"] == 0 and result["sequences_scored"] == result["sequences_expected"]
    assert result["alerted"] == result["flagged"], "every anomalous session alerts, and nothing else"
    assert result["ids_per_session"] == 1, "a redelivered alert carries the same alert_id"


def test_a_worker_killed_mid_stream_loses_nothing(trained_model, generated_hdfs, tmp_path):
    """SIGKILL one of two workers while lines flow; the survivor takes over, the killed one comes back."""
    bootstrap = require_broker()
    log_path = generated_hdfs[0]
    flagged, expected = batch_decisions(trained_model, log_path)
    lines = len(log_path.read_text().splitlines())
    topic, app_id, alerts_topic, scores_topic = (unique(p) for p in ("logs-raw", "kill", "alerts", "scores"))
    create_topic(bootstrap, topic, 1)
    env = {"LOGBERT_APP_ID": app_id, "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_MODEL_DIR": str(trained_model),
           "LOGBERT_ALERTS_TOPIC": alerts_topic, "LOGBERT_SCORES_TOPIC": scores_topic, "LOGBERT_PUBLISH_SCORES": "1",
           "LOGBERT_QUIET_FLUSH": "5", "LOGBERT_PROVIDER": "cpu"}  # fmt: skip
    ports = [free_port(), free_port()]
    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    workers = [spawn_worker(bootstrap, {**env, "LOGBERT_DATA_DIR": str(tmp_path / f"data-{n}")}, ports[n], logs[n])
               for n in range(2)]  # fmt: skip
    try:
        wait_until(lambda: all(ready(p) for p in ports), 120, "workers not ready", logs[0])
        wait_for_settled_group(logs)
        rate = 3000.0
        feeder = threading.Thread(target=run_produce, args=(StreamSettings(bootstrap_servers=bootstrap), str(log_path),
                                                           topic, rate, 1))  # fmt: skip
        feeder.start()
        time.sleep(lines / rate * 0.4)
        # kill the member that reads the raw partition: it holds parse work in flight
        # (the lag gauges are refreshed every 5 s, so the owner may not show it yet)
        owners = wait_until(lambda: [n for n in range(2) if any(f"topic={topic}" in k for k in scrape(ports[n]))],
                            30, "no member reports the raw partition", logs[0])  # fmt: skip
        owner = owners[0]
        parsed_before_kill = scrape(ports[owner])["logbert_lines_parsed_total"]
        workers[owner].kill()
        workers[owner].wait()
        committed_at_kill = committed_offsets(
            bootstrap, app_id, f"{app_id}-sequences", StreamSettings().internal_partitions
        )
        time.sleep(10)
        workers[owner] = spawn_worker(bootstrap, {**env, "LOGBERT_DATA_DIR": str(tmp_path / f"data-{owner}")},
                                      ports[owner], logs[owner])  # fmt: skip
        feeder.join()
        scores = [v for _, v in consume_json(bootstrap, [scores_topic],
                                             lambda v: scored_at_least(v, expected), 300)]  # fmt: skip
        alerts = [v for _, v in consume_json(bootstrap, [alerts_topic], lambda v: False, 5)]
        alive = [w.poll() is None for w in workers]
    finally:
        for worker in workers:
            stop_process(worker, grace=60)
    result = outcome(alerts, scores, flagged, expected)
    summary("SIGKILL one of two workers mid-stream", messages_in=lines, killed_after_lines=int(parsed_before_kill),
            **{k: v for k, v in result.items() if k not in ("alerted", "flagged")})  # fmt: skip
    assert 0 < parsed_before_kill < lines, "the kill must fall mid-stream"
    assert all(alive)
    if result["lost"]:  # where the lost sequences sit, for whoever looks next (README, Reliability)
        print(
            f"[reliability] unscored sequences by (partition, offset) of {app_id}-sequences: "
            f"{where_unscored(bootstrap, f'{app_id}-sequences', scores)}; committed at the kill: {committed_at_kill}"
        )
    check(result)
    # the survivor restored the killed member's open sessions from the changelog
    assert any("Restore complete" in log.read_text() for log in logs)


def test_the_broker_restarted_mid_stream_loses_nothing(trained_model, generated_hdfs, tmp_path):
    log_path = generated_hdfs[0]
    flagged, expected = batch_decisions(trained_model, log_path)
    lines = log_path.read_text().splitlines(keepends=True)
    halves = [tmp_path / "first.log", tmp_path / "second.log"]
    halves[0].write_text("".join(lines[: len(lines) // 2]))
    halves[1].write_text("".join(lines[len(lines) // 2 :]))
    with local_kafka(tmp_path / "kafka") as broker:
        bootstrap = broker.bootstrap
        topic, scores_topic, alerts_topic = "logs-raw", "scores", "logbert-alerts"
        create_topic(bootstrap, topic, 1)
        env = {"LOGBERT_APP_ID": "restart", "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_MODEL_DIR": str(trained_model),
               "LOGBERT_SCORES_TOPIC": scores_topic, "LOGBERT_PUBLISH_SCORES": "1", "LOGBERT_QUIET_FLUSH": "5",
               "LOGBERT_PROVIDER": "cpu", "LOGBERT_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
        port = free_port()
        log = tmp_path / "worker.log"
        with running_worker(bootstrap, {**env, "LOGBERT_WEB_PORT": str(port)}, port, log) as worker:
            wait_until(lambda: ready(port), 120, "worker not ready", log)
            settings = StreamSettings(bootstrap_servers=bootstrap)
            run_produce(settings, str(halves[0]), topic, 0.0, 1)
            wait_until(lambda: scrape(port)["logbert_lines_parsed_total"] == len(lines) // 2, 120, "first half", log)
            broker.run("stop")
            down_since = time.monotonic()
            time.sleep(15)
            broker.run("restart")
            downtime = time.monotonic() - down_since
            run_produce(settings, str(halves[1]), topic, 0.0, 1)
            scores = [v for _, v in consume_json(bootstrap, [scores_topic],
                                                 lambda v: scored_at_least(v, expected), 300)]  # fmt: skip
            alerts = [v for _, v in consume_json(bootstrap, [alerts_topic], lambda v: False, 5)]
            alive = worker.poll() is None
            health = get(f"http://127.0.0.1:{port}/health")[0]
    result = outcome(alerts, scores, flagged, expected)
    summary("broker stopped and restarted mid-stream", messages_in=len(lines), downtime_s=round(downtime, 1),
            **{k: v for k, v in result.items() if k not in ("alerted", "flagged")})  # fmt: skip
    assert alive and health == 200, log.read_text()[-3000:]
    check(result)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_the_worker_runs_against_a_broker_that_requires_sasl(mechanism, trained_model, generated_hdfs, tmp_path):
    password = "s3cret-Pa55-" + unique("x")
    log_path = generated_hdfs[0]
    flagged, expected = batch_decisions(trained_model, log_path)
    secret_file = tmp_path / "kafka-password"
    secret_file.write_text(password + "\n")
    security_env = {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": mechanism,
                    "KAFKA_SASL_USERNAME": "logbert", "KAFKA_SASL_PASSWORD_FILE": str(secret_file)}  # fmt: skip
    security = KafkaSecurity.from_env(security_env)
    with local_kafka(tmp_path / "kafka", KAFKA_SASL="1", KAFKA_SASL_USERS=f"logbert:{password}") as broker:
        bootstrap = broker.bootstrap
        settings = StreamSettings(bootstrap_servers=bootstrap, security=security)
        client = security.confluent_config()
        with pytest.raises(KafkaException):  # the broker really refuses clients without credentials
            create_topic(bootstrap, "unauthenticated", 1, {"socket.timeout.ms": 5000, "request.timeout.ms": 5000})
        create_topic(bootstrap, "logs-raw", 1, client)
        env = {**security_env, "LOGBERT_MODEL_DIR": str(trained_model), "LOGBERT_PUBLISH_SCORES": "1",
               "LOGBERT_QUIET_FLUSH": "4", "LOGBERT_PROVIDER": "cpu", "LOGBERT_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
        port = free_port()
        log = tmp_path / "worker.log"
        with running_worker(bootstrap, {**env, "LOGBERT_WEB_PORT": str(port)}, port, log):
            wait_until(lambda: ready(port), 120, "worker not ready", log)
            run_produce(settings, str(log_path), "logs-raw", 0.0, 1)
            scores = [v for _, v in consume_json(bootstrap, ["logbert-scores"], lambda v: len(v) >= expected, 240,
                                                 client_config=client)]  # fmt: skip
            alerts = [v for _, v in consume_json(bootstrap, ["logbert-alerts"], lambda v: False, 5,
                                                 client_config=client)]  # fmt: skip
    result = outcome(alerts, scores, flagged, expected)
    check(result)
    everything = log.read_text() + repr(settings) + repr(security) + "".join(map(repr, alerts))
    assert password not in everything, "the SASL password leaked into the log, a repr or an alert"


def slowed_copy(model_dir: Path, out: Path, matmuls: int, width: int = 1024) -> Path:
    """The same model directory whose ONNX graph also multiplies width×width matrices `matmuls`
    times per call, adding 0 × the result to `dist`: the same decisions, a slow scorer."""
    import shutil

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shutil.copytree(model_dir, out)
    model = onnx.load(str(out / "model.onnx"))
    graph = model.graph
    dist = graph.output[1].name
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == dist:
                node.output[i] = "dist_fast"
    weights = np.random.default_rng(0).normal(0, 0.01, (width, width)).astype(np.float32)
    graph.initializer.extend([
        numpy_helper.from_array(weights, "slow_w"), numpy_helper.from_array(np.zeros((1, 1), np.float32), "slow_zero"),
        numpy_helper.from_array(np.array([0, 1], np.int64), "slow_axes"),
    ])  # fmt: skip
    nodes = [
        helper.make_node("Cast", [graph.input[0].name], ["slow_tokens"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["slow_tokens", "slow_axes"], ["slow_sum"], keepdims=1),
        helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_s0"]),
        helper.make_node("Add", ["slow_s0", "slow_w"], ["slow_h0"]),
    ]
    for i in range(matmuls):
        nodes += [helper.make_node("MatMul", [f"slow_h{i}", "slow_w"], [f"slow_m{i}"]),
                  helper.make_node("Tanh", [f"slow_m{i}"], [f"slow_h{i + 1}"])]  # fmt: skip
    nodes += [
        helper.make_node("ReduceSum", [f"slow_h{matmuls}", "slow_axes"], ["slow_r"], keepdims=1),
        helper.make_node("Mul", ["slow_r", "slow_zero"], ["slow_z"]),
        helper.make_node("Add", ["dist_fast", "slow_z"], [dist]),
    ]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(out / "model.onnx"))
    return out


def test_a_slow_scorer_holds_back_pressure_with_bounded_memory(trained_model, tmp_path):
    """Scoring far slower than parsing: sequences wait in Kafka, not in the worker's memory, and
    every one is scored in the end with the decisions of the fast model."""
    from commands.generate import run_generate

    bootstrap = require_broker()
    run_generate("hdfs", str(tmp_path / "gen"), sessions=4000, minutes=0, anomaly_rate=0.05, seed=23)
    log_path = tmp_path / "gen" / "hdfs.log"
    slow = slowed_copy(trained_model, tmp_path / "slow-model", matmuls=6)
    flagged, expected = batch_decisions(trained_model, log_path)  # the fast model's decisions
    lines = len(log_path.read_text().splitlines())
    topic, app_id, alerts_topic, scores_topic = (unique(p) for p in ("logs-raw", "slow", "alerts", "scores"))
    create_topic(bootstrap, topic, 1)
    env = {"LOGBERT_APP_ID": app_id, "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_MODEL_DIR": str(slow),
           "LOGBERT_ALERTS_TOPIC": alerts_topic, "LOGBERT_SCORES_TOPIC": scores_topic, "LOGBERT_PUBLISH_SCORES": "1",
           "LOGBERT_QUIET_FLUSH": "4", "LOGBERT_PROVIDER": "cpu", "LOGBERT_SCORE_BATCH": "1",
           "LOGBERT_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    port = free_port()
    log = tmp_path / "worker.log"
    with running_worker(bootstrap, {**env, "LOGBERT_WEB_PORT": str(port)}, port, log) as worker:
        wait_until(lambda: ready(port), 120, "worker not ready", log)
        rss_start = scrape(port)["process_resident_memory_bytes"]
        run_produce(StreamSettings(bootstrap_servers=bootstrap), str(log_path), topic, 0.0, 1)
        peaks = {"rss": rss_start, "sequences_lag": 0.0}

        def all_scored():
            samples = scrape(port)
            peaks["rss"] = max(peaks["rss"], samples["process_resident_memory_bytes"])
            lag = sum(v for k, v in samples.items() if k.startswith("logbert_consumer_lag") and "-sequences" in k)
            peaks["sequences_lag"] = max(peaks["sequences_lag"], lag)
            peaks["stuck"] = max(peaks.get("stuck", 0), samples["logbert_stuck_partitions"])  # slow is not stuck
            scored = metric_total(samples, "logbert_sequences_scored_total")
            return samples if scored >= expected else None

        after = wait_until(all_scored, 420, "the slow scorer did not finish", log)
        scores = [v for _, v in consume_json(bootstrap, [scores_topic], lambda v: scored_at_least(v, expected), 60)]
        alerts = [v for _, v in consume_json(bootstrap, [alerts_topic], lambda v: False, 5)]
        alive = worker.poll() is None
    result = outcome(alerts, scores, flagged, expected)
    growth_mib = (peaks["rss"] - rss_start) / 2**20
    summary("slow scorer (about 0.3 s per scoring call)", messages_in=lines, peak_sequences_lag=int(peaks["sequences_lag"]),
            scoring_seconds=round(after["logbert_scoring_seconds_sum"]), rss_growth_mib=round(growth_mib),
            **{k: v for k, v in result.items() if k not in ("alerted", "flagged")})  # fmt: skip
    assert alive
    assert peaks["sequences_lag"] > 0, "scoring must fall behind for the test to mean anything"
    assert growth_mib < 300
    assert peaks["stuck"] == 0
    check(result)


def test_a_worker_whose_sends_hang_through_a_rebalance_fails_its_health_check(trained_model, generated_hdfs, tmp_path):
    """Once, in a two-worker benchmark run, a worker stayed stuck in a rebalance (its parse agent
    waiting on a send that never completed; cause unknown) and never rejoined. Such a worker must
    fail /health, so that Kubernetes restarts it: here its sends hang on purpose, then a second
    worker joins the group."""
    bootstrap = require_broker()
    log_path = generated_hdfs[0]
    topic, app_id = unique("logs-raw"), unique("hang")
    create_topic(bootstrap, topic, 2)
    flag = tmp_path / "hang-sends"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOGBERT_APP_ID": app_id,
           "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_MODEL_DIR": str(trained_model), "LOGBERT_PROVIDER": "cpu",
           "LOGBERT_STUCK_AFTER": "10", "HANG_SENDS_FLAG": str(flag)}  # fmt: skip
    ports = [free_port(), free_port()]
    logs = [tmp_path / "hanging.log", tmp_path / "joining.log"]
    with open(logs[0], "w") as out:
        hanging = subprocess.Popen(
            [sys.executable, "tests/hanging_sends_worker.py", "worker", "-l", "info"], cwd=ROOT,
            env={**env, "LOGBERT_WEB_PORT": str(ports[0]), "LOGBERT_DATA_DIR": str(tmp_path / "data-0")},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    joining = None
    try:
        wait_until(lambda: ready(ports[0]), 120, "worker not ready", logs[0])
        feeder = threading.Thread(
            target=run_produce, args=(StreamSettings(bootstrap_servers=bootstrap), str(log_path), topic, 2000.0, 1)
        )
        feeder.start()
        wait_until(lambda: scrape(ports[0])["logbert_lines_parsed_total"] > 0, 60, "nothing parsed", logs[0])
        assert health(ports[0])["status"] == "ok"
        flag.touch()  # from now on every send of this worker hangs
        revokes_before = logs[0].read_text().count("Revoking previously assigned partitions")
        joining = spawn_worker(bootstrap, {"LOGBERT_APP_ID": app_id, "LOGBERT_INPUT_TOPICS": topic,
                                           "LOGBERT_MODEL_DIR": str(trained_model), "LOGBERT_PROVIDER": "cpu",
                                           "LOGBERT_DATA_DIR": str(tmp_path / "data-1")}, ports[1], logs[1])  # fmt: skip
        failing = wait_until(lambda: (h := health(ports[0])).get("status") == "failing" and h, 120,
                             "the hanging worker's /health did not fail", logs[0])  # fmt: skip
        feeder.join()
        revoked = logs[0].read_text().count("Revoking previously assigned partitions") > revokes_before
    finally:
        hanging.kill()
        hanging.wait()
        if joining is not None:
            stop_process(joining, grace=30)
    summary("a worker whose sends hang, through a rebalance", stuck_partitions=len(failing["stuck_partitions"]),
            revoked=revoked)  # fmt: skip
    assert revoked, "the second worker's join reached the hanging one (a rebalance began)"
    assert failing["model_loaded"] and failing["stuck_partitions"]
    assert all(p["lag"] > 0 for p in failing["stuck_partitions"])


def health(port: int) -> dict:
    status, body = get(f"http://127.0.0.1:{port}/health")
    return json.loads(body) if status in (200, 503) and body else {}
