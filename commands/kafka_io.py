"""`produce` and `alerts`: plain confluent-kafka clients around the pipeline's topics."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer
from tqdm.auto import tqdm

from sequences.readers import log_lines
from streaming.settings import StreamSettings


def run_produce(settings: StreamSettings, input_path: str, topic: str, rate: float, lines_per_message: int) -> str:
    lines = log_lines(Path(input_path))
    # Idempotent: without it a retried request can land behind a later one, and lines that arrive
    # behind event time split their sessions (a replay must keep the log's order).
    producer = Producer(
        settings.client_config(**{"linger.ms": 20, "compression.type": "lz4", "enable.idempotence": True})
    )
    errors: list[str] = []

    def delivered(error, _message) -> None:
        if error is not None:
            errors.append(str(error))

    started = time.monotonic()
    step = max(1, lines_per_message)
    with tqdm(total=len(lines), unit="line", desc=f"producing to {topic}", disable=None) as bar:
        for sent in range(0, len(lines), step):
            chunk = lines[sent : sent + step]
            while True:
                try:
                    producer.produce(topic, value="\n".join(chunk).encode(), on_delivery=delivered)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.1)
            producer.poll(0)
            bar.update(len(chunk))
            if rate > 0:
                ahead = (sent + len(chunk)) / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    remaining = producer.flush(60)
    if errors or remaining:
        raise KafkaException(f"{len(errors)} messages failed, {remaining} undelivered: {errors[:3]}")
    return f"produced {len(lines)} lines to {topic} in {time.monotonic() - started:.1f} s"


def format_alert(alert: dict) -> str:
    lines = [
        f"ALERT {alert['key']} part {alert['part']}  {alert['window_start']} .. {alert['window_end']}  "
        f"{alert['missed']}/{alert['masked']} keys missed (r {alert['threshold']:.3f}), "
        f"{alert['unseen_templates']} unseen, max surprise {alert['max_surprise']}  [{alert['alert_id'][:12]}]"
    ]
    for miss in alert["missed_positions"][:3]:
        lines.append(f"    line {miss['position'] + 1}: saw {miss['actual']}")
        lines.append(f"           expected {' | '.join(miss['expected'][:3])}")
    return "\n".join(lines)


def print_alerts(settings: StreamSettings, follow: bool, from_beginning: bool, as_json: bool) -> int:
    consumer = Consumer(settings.client_config(**{
        "group.id": f"logbert-alerts-reader-{uuid.uuid4().hex[:8]}",  # a reader never steals from others
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": False,
    }))  # fmt: skip
    consumer.subscribe([settings.alerts_topic])
    seen: set[str] = set()
    idle_since = time.monotonic()
    try:
        while follow or time.monotonic() - idle_since < 5.0:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            idle_since = time.monotonic()
            alert = json.loads(message.value())
            if alert["alert_id"] in seen:  # at-least-once: drop duplicates
                continue
            seen.add(alert["alert_id"])
            print(json.dumps(alert) if as_json else format_alert(alert), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return len(seen)
