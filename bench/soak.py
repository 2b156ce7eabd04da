"""Soak run: one worker on a real broker at a steady input rate for a long time; prints its memory,
consumer lag and progress over time, and whether memory stayed flat and lag did not grow; the
samples go to OUT/soak.json and their curves to OUT/soak.png.

    scripts/venv.sh python bench/soak.py --minutes 10 --rate 1000 [--model DIR] [--out DIR]

Without KAFKA_BOOTSTRAP_SERVERS it starts the pinned Apache Kafka on free loopback ports."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import generated_model  # noqa: E402
from bench.plots import plot_soak  # noqa: E402
from commands.kafka_io import run_produce  # noqa: E402
from commands.live import (  # noqa: E402
    create_topic,
    free_port,
    local_kafka,
    metric_total,
    running_worker,
    scrape,
    unique,
    wait_until_ready,
)
from streaming.settings import StreamSettings  # noqa: E402

WARM_UP_S = 60  # samples before this are left out of the flatness figures


def prepare(out: Path, lines_needed: int, model: Path | None) -> tuple[Path, Path]:
    from loggen.hdfs import generate_hdfs

    log = out / "soak.log"
    lines, _ = generate_hdfs(sessions=lines_needed // 13 + 100, anomaly_rate=0.03, seed=99)
    log.write_text("\n".join(lines[:lines_needed]) + "\n")
    return log, model or generated_model(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="lines per second")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("soak-output"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    total_lines = int(args.minutes * 60 * args.rate)
    log, model = prepare(args.out, total_lines, args.model)
    print(f"soak: {total_lines} lines at {args.rate:.0f} lines/s for {args.minutes:.1f} min, model {model}")

    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or stack.enter_context(
            local_kafka(args.out / "kafka")).bootstrap  # fmt: skip
        topic, app_id = unique("soak-raw"), unique("soak")
        create_topic(bootstrap, topic, 1)
        port = free_port()
        env = {"LOGBERT_APP_ID": app_id, "LOGBERT_INPUT_TOPICS": topic, "LOGBERT_MODEL_DIR": str(model),
               "LOGBERT_PROVIDER": "cpu", "LOGBERT_WEB_PORT": str(port), "LOGBERT_DATA_DIR": str(args.out / "data")}  # fmt: skip
        worker = stack.enter_context(running_worker(bootstrap, env, port, args.out / "worker.log"))
        wait_until_ready(worker, port, args.out / "worker.log")
        feeder = threading.Thread(target=run_produce, args=(StreamSettings(bootstrap_servers=bootstrap), str(log),
                                                           topic, args.rate, 1), daemon=True)  # fmt: skip
        started = time.monotonic()
        feeder.start()
        samples = []
        print(f"{'t (s)':>6} {'RSS MiB':>8} {'lag':>7} {'lines':>9} {'scored':>8} {'alerts':>7} {'open':>6}")
        while feeder.is_alive() or time.monotonic() - started < args.minutes * 60:
            time.sleep(args.sample)
            metrics = scrape(port)
            sample = {
                "t": round(time.monotonic() - started),
                "rss_mib": metrics["process_resident_memory_bytes"] / 2**20,
                "lag": metric_total(metrics, "logbert_consumer_lag"),
                "lines": metrics["logbert_lines_parsed_total"],
                "scored": metric_total(metrics, "logbert_sequences_scored_total"),
                "alerts": metrics["logbert_alerts_total"],
                "open": metrics["logbert_open_windows"],
            }
            samples.append(sample)
            print(f"{sample['t']:>6} {sample['rss_mib']:>8.1f} {sample['lag']:>7.0f} {sample['lines']:>9.0f} "
                  f"{sample['scored']:>8.0f} {sample['alerts']:>7.0f} {sample['open']:>6.0f}", flush=True)  # fmt: skip
        drain_deadline = time.monotonic() + 120
        while time.monotonic() < drain_deadline:  # then until everything produced has been parsed
            metrics = scrape(port)
            if metrics["logbert_lines_parsed_total"] >= total_lines:
                break
            time.sleep(1)
        drained_after = round(time.monotonic() - started - args.minutes * 60, 1)
        alive = worker.poll() is None

    steady = [s for s in samples if s["t"] >= WARM_UP_S] or samples
    third = max(1, len(steady) // 3)
    first, last = steady[:third], steady[-third:]
    growth = statistics.mean(s["rss_mib"] for s in last) - statistics.mean(s["rss_mib"] for s in first)
    result = {
        "minutes": args.minutes, "rate_lines_per_s": args.rate, "lines": total_lines, "worker_alive": alive,
        "rss_mib_first_third": round(statistics.mean(s["rss_mib"] for s in first), 1),
        "rss_mib_last_third": round(statistics.mean(s["rss_mib"] for s in last), 1),
        "rss_growth_mib": round(growth, 1), "rss_max_mib": round(max(s["rss_mib"] for s in samples), 1),
        "lag_max": max(s["lag"] for s in samples), "lag_first_third_mean": round(statistics.mean(s["lag"] for s in first)),
        "lag_last_third_mean": round(statistics.mean(s["lag"] for s in last)),
        "lines_parsed": metrics["logbert_lines_parsed_total"], "drained_after_s": drained_after, "sequences_scored": samples[-1]["scored"], "alerts": samples[-1]["alerts"],
    }  # fmt: skip
    (args.out / "soak.json").write_text(json.dumps({"result": result, "samples": samples}, indent=1))
    plot_soak(samples, WARM_UP_S, f"soak: {args.rate:.0f} lines/s for {args.minutes:g} min", args.out / "soak.png")
    print(json.dumps(result, indent=1))
    flat = growth < 50 and result["lag_last_third_mean"] <= max(2 * args.rate, result["lag_first_third_mean"] * 1.5)
    print("memory flat and lag not growing" if flat and alive else "NOT STEADY: see the samples above")


if __name__ == "__main__":
    main()
