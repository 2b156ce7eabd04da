"""`demo`: the zero-setup tour. Generate logs, train a small model (cached), evaluate on later
blocks, and show per anomaly kind what was injected and what was caught, with explanations."""

from __future__ import annotations

import csv
import json
import os
import threading
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from commands.common import key_sequences, print_table
from commands.evaluate import EvaluateRequest, run_evaluate
from commands.generate import run_generate
from commands.live import free_port
from evaluation.split import select
from models.detector import Detector
from sequences.readers import ReadOptions, read_dataset

DEMO_BLOCKS = 3000
DEMO_SEED = 7
TRAIN_RANGE = (0.0, 0.6)
TEST_RANGE = (0.6, 1.0)


def run_demo(workdir: Path, retrain: bool = False, stream: bool = True) -> dict:
    from commands.train import TrainRequest, run_train, summarise

    workdir.mkdir(parents=True, exist_ok=True)
    data_dir, model_dir = workdir / "logs", workdir / "model"
    log, labels = data_dir / "hdfs.log", data_dir / "hdfs_labels.csv"
    print("1/5  generating HDFS-like logs with injected anomalies")
    print("     " + run_generate("hdfs", str(data_dir), DEMO_BLOCKS, 0, 0.05, DEMO_SEED))

    read = ReadOptions("hdfs", labels=labels)
    if retrain or not (model_dir / "config.json").exists():
        print("2/5  training a small LogBERT on the first 60% of blocks (normal ones only)")
        result = run_train(TrainRequest(log, read, model_dir, "small", fraction=TRAIN_RANGE, force=True))
        print("     " + summarise(result).replace("\n", "\n     "))
    else:
        print(f"2/5  reusing the model in {model_dir} (pass --retrain to train again)")

    print("3/5  evaluating on the later 40% of blocks (thresholds were chosen on normal validation data)\n")
    report = run_evaluate(
        EvaluateRequest(
            model_dir,
            log,
            read,
            fraction=TEST_RANGE,
            json_out=workdir / "report.json",
            plot_out=workdir / "precision_recall.png",
            progress=False,
        )  # fmt: skip
    )
    print("\n4/5  what was injected and what was caught, by kind")
    by_kind = show_by_kind(model_dir, log, labels)
    print("\n5/5  streaming: fresh logs through Kafka and the Faust worker, alerts as they arrive")
    live = run_live(workdir, model_dir) if stream else None
    if not stream:
        print("     skipped (--no-stream)")
    print(f"\nfiles: {workdir}/report.json, {workdir}/precision_recall.png, {model_dir}/loss_curve.png")
    return {"report": report, "by_kind": by_kind, "live": live}


def run_live(workdir: Path, model_dir: Path, blocks: int = 400) -> dict | None:
    """Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts the pinned Apache Kafka on free loopback ports."""
    from commands.kafka_io import run_produce
    from commands.live import consume_json, create_topic, local_kafka, running_worker, unique, wait_for_log
    from streaming.settings import StreamSettings

    stream_dir = workdir / "stream"
    print("     " + run_generate("hdfs", str(stream_dir), blocks, 0, 0.08, DEMO_SEED + 1))
    log, labels = stream_dir / "hdfs.log", stream_dir / "hdfs_labels.csv"
    kinds = {row["BlockId"]: row["Kind"] for row in csv.DictReader(open(labels, newline=""))}
    expected = len(read_dataset(log, ReadOptions("hdfs")).sequences)
    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            try:
                bootstrap = stack.enter_context(local_kafka(workdir / "kafka")).bootstrap
            except RuntimeError as error:
                print(f"     skipped: {error}\n     set KAFKA_BOOTSTRAP_SERVERS to use a broker of yours")
                return None
            print(f"     started Apache Kafka (KRaft) on {bootstrap}")
        topic, app_id = unique("logs-raw-demo"), unique("logbert-demo")
        alerts_topic, scores_topic = f"{app_id}-alerts", f"{app_id}-scores"
        create_topic(bootstrap, topic, 1)
        env = {
            "LOGBERT_APP_ID": app_id, "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_MODEL_DIR": str(model_dir.resolve()),
            "LOGBERT_ALERTS_TOPIC": alerts_topic, "LOGBERT_SCORES_TOPIC": scores_topic, "LOGBERT_PUBLISH_SCORES": "1",
            "LOGBERT_QUIET_FLUSH": "3", "LOGBERT_PROVIDER": "cpu",
            "LOGBERT_DATA_DIR": str((workdir / "faust-data").resolve()),  # not {app id}-data in the clone
        }  # fmt: skip
        worker_log = workdir / "worker.log"
        stack.enter_context(running_worker(bootstrap, env, free_port(), worker_log))
        wait_for_log(worker_log, "Worker]: Ready", timeout=120)
        print(f"     worker ready (log: {worker_log}); producing {sum(1 for _ in open(log))} lines to {topic}")
        producer = threading.Thread(
            target=run_produce,
            args=(StreamSettings(bootstrap_servers=bootstrap), str(log), topic, 4000.0, 1),
            daemon=True,
        )
        producer.start()
        alerted: dict[str, dict] = {}
        scored = 0

        def on_value(topic_name: str, value: dict) -> None:
            nonlocal scored
            if topic_name == scores_topic:
                scored += 1
            elif value["alert_id"] not in alerted:
                alerted[value["alert_id"]] = value
                print(f"  {len(alerted):3d}  ALERT {value['key']}  ({kinds.get(value['key'], '?')}): "
                      f"{value['missed']}/{value['masked']} keys missed, {value['unseen_templates']} unseen"
                      + (_first_explanation(value["missed_positions"])))  # fmt: skip

        consume_json(bootstrap, [alerts_topic, scores_topic], lambda _: scored >= expected, 240, on_value)
        # an alert is sent just before its score, but the two topics are read independently:
        # read the alerts once more to the end so none published with the last scores is missed
        consume_json(bootstrap, [alerts_topic], lambda _: False, 3, on_value)
        producer.join(5)
    flagged_blocks = {a["key"] for a in alerted.values()}
    rows = [["kind", "blocks", "alerted", "share"]]
    summary: dict[str, dict] = {}
    for kind in sorted(set(kinds.values()), key=lambda k: (k == "normal", k)):
        blocks_of_kind = [b for b, k in kinds.items() if k == kind]
        hit = sum(b in flagged_blocks for b in blocks_of_kind)
        summary[kind] = {"blocks": len(blocks_of_kind), "alerted": hit}
        rows.append([kind, str(len(blocks_of_kind)), str(hit), f"{hit / len(blocks_of_kind):.0%}"])
    print(f"\n     {scored} of {expected} sessions scored through Kafka, {len(alerted)} alerts:\n")
    print_table(rows)
    return {"sessions_scored": scored, "alerts": len(alerted), "by_kind": summary}


def _first_explanation(positions: list[dict]) -> str:
    if not positions:
        return ""
    first = positions[0]
    return (
        f"\n         line {first['position'] + 1}: saw {first['actual'][:70]!r}, expected {first['expected'][0][:70]!r}"
    )


def show_by_kind(model_dir: Path, log: Path, labels: Path, examples: int = 3) -> dict:
    detector = Detector.load(model_dir, provider="cpu")
    kinds = {row["BlockId"]: row["Kind"] for row in csv.DictReader(open(labels, newline=""))}
    data = read_dataset(log, ReadOptions("hdfs"))
    specs = select(data.sequences, TEST_RANGE, None)
    scores = detector.score(key_sequences(data, specs, detector.vocabulary))
    injected, caught = Counter(), Counter()
    shown = 0
    for spec, score in zip(specs, scores):
        kind = kinds.get(spec.id, "unknown")
        flagged = detector.is_anomalous(score)
        injected[kind] += 1
        caught[kind] += flagged
        if flagged and kind != "normal" and shown < examples:
            shown += 1
            print(f"\n  ALERT {spec.id} (injected: {kind}), {score.length} lines, "
                  f"{score.misses}/{score.masked} keys missed, max surprise {score.max_surprise:.1f}")  # fmt: skip
            for miss in detector.explain(score)[:2]:
                print(f"    line {miss['position'] + 1}: saw      {miss['actual']}")
                print(f"             expected {' | '.join(miss['expected'][:3])}")
    rows = [["kind", "blocks", "flagged", "share"]]
    for kind in sorted(injected, key=lambda k: (k == "normal", k)):
        rows.append([kind, str(injected[kind]), str(caught[kind]), f"{caught[kind] / injected[kind]:.0%}"])
    print()
    print_table(rows)
    return {k: {"blocks": injected[k], "flagged": caught[k]} for k in injected}


if __name__ == "__main__":
    print(json.dumps(run_demo(Path("demo-output"))["by_kind"], indent=1))
