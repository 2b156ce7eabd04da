"""Broker outage under load: one worker catches up on a backlog, the broker stops for a while and
comes back. Prints the worker's memory before, during and after the outage, and whether every
line was parsed and every sequence scored afterwards. This is what bounds LOGBERT_PRODUCER_BUFFER:
messages the worker cannot send are held in its memory.

    scripts/venv.sh python bench/outage.py [--lines 400000] [--lines-per-message 1] [--outage 30]
    LOGBERT_PRODUCER_BUFFER=5000 scripts/venv.sh python bench/outage.py ...   # the worker inherits it

Starts its own pinned Apache Kafka on free loopback ports (it has to stop and restart it)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import generated_lines, generated_model  # noqa: E402
from commands.kafka_io import run_produce  # noqa: E402
from commands.live import (  # noqa: E402
    create_topic,
    free_port,
    local_kafka,
    metric_total,
    running_worker,
    scrape,
    wait_until_ready,
)
from streaming.settings import StreamSettings  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def lines_parsed(port: int) -> float:
    try:
        return scrape(port)["logbert_lines_parsed_total"]
    except OSError:
        return -1.0


def settled(port: int, quiet_for: float = 20.0, limit: float = 120.0) -> dict[str, float]:
    """Metrics once the scored count has stood still for `quiet_for` s (the quiet flush ends the last sessions)."""
    deadline = time.monotonic() + limit
    metrics = scrape(port)
    scored = metric_total(metrics, "logbert_sequences_scored_total")
    still_since = time.monotonic()
    while time.monotonic() - still_since < quiet_for and time.monotonic() < deadline:
        time.sleep(1)
        metrics = scrape(port)
        if metric_total(metrics, "logbert_sequences_scored_total") != scored:
            scored, still_since = metric_total(metrics, "logbert_sequences_scored_total"), time.monotonic()
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--lines-per-message", type=int, default=1)
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the broker is down")
    parser.add_argument("--stop-at", type=float, default=0.25, help="fraction of the lines parsed when it stops")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("outage-output"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "outage.log"
    log.write_text("\n".join(generated_lines(args.lines)) + "\n")
    model = args.model or generated_model(args.out)
    buffer = StreamSettings().producer_buffer  # the worker inherits this environment
    print(f"outage: {args.lines} lines, {args.lines_per_message} per message, broker down {args.outage:.0f} s "
          f"after {args.stop_at:.0%} parsed; LOGBERT_PRODUCER_BUFFER={buffer}", flush=True)  # fmt: skip

    with local_kafka(args.out / "kafka") as broker:
        topic = "outage-raw"
        create_topic(broker.bootstrap, topic, 2)
        run_produce(StreamSettings(bootstrap_servers=broker.bootstrap), str(log), topic, 0.0, args.lines_per_message)
        port = free_port()
        env = {"LOGBERT_APP_ID": "outage", "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_MODEL_DIR": str(model),
               "LOGBERT_PROVIDER": "cpu", "LOGBERT_WEB_PORT": str(port), "LOGBERT_QUIET_FLUSH": "5",
               "LOGBERT_DATA_DIR": str(args.out / "data")}  # fmt: skip
        worker_log = args.out / "worker.log"
        with running_worker(broker.bootstrap, env, port, worker_log) as worker:
            wait_until_ready(worker, port, worker_log)
            phases: dict[str, list[float]] = {"before": [], "during": [], "after": []}
            while lines_parsed(port) < args.stop_at * args.lines:
                phases["before"].append(rss_mib(worker.pid))
                time.sleep(0.25)
            parsed_at_stop = lines_parsed(port)
            broker.run("stop")
            down_until = time.monotonic() + args.outage
            while time.monotonic() < down_until:
                phases["during"].append(rss_mib(worker.pid))
                time.sleep(0.25)
            parsed_in_outage = lines_parsed(port) - parsed_at_stop
            broker.run("restart")
            restarted = time.monotonic()
            deadline = restarted + 600
            while lines_parsed(port) < args.lines and time.monotonic() < deadline and worker.poll() is None:
                phases["after"].append(rss_mib(worker.pid))
                time.sleep(0.25)
            caught_up_s = time.monotonic() - restarted
            metrics = settled(port)
            alive = worker.poll() is None
    text = worker_log.read_text()
    result = {
        "producer_buffer": buffer, "lines": args.lines, "lines_per_message": args.lines_per_message,
        "outage_s": args.outage, "worker_alive": alive,
        "rss_mib_before_max": round(max(phases["before"], default=0), 1),
        "rss_mib_during_max": round(max(phases["during"], default=0), 1),
        "rss_mib_after_max": round(max(phases["after"], default=0), 1),
        "lines_parsed_at_stop": parsed_at_stop, "lines_parsed_while_down": parsed_in_outage,
        "lines_parsed": metrics["logbert_lines_parsed_total"], "caught_up_after_restart_s": round(caught_up_s, 1),
        "sequences_scored": metric_total(metrics, "logbert_sequences_scored_total"),
        "producer_buffer_full_warnings": text.count("producer buffer full"),
    }  # fmt: skip
    (args.out / "outage.json").write_text(json.dumps({"result": result, "rss_mib": phases}, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
