"""logbert-stream: the Faust app, its topics, table and agents, and its commands.

    logs-raw ──parse──▶ {app}-keys ──window──▶ {app}-sequences ──score──▶ logbert-alerts
               └──▶ logbert-dlq      (open sessions: Table logbert-open-sessions, changelogged)

    python faust_app.py worker -l info          # run the pipeline (settings from the environment)
    python faust_app.py train|evaluate|generate|produce|alerts|replay|demo|settings-reference --help
    GET :6066/metrics (Prometheus), /health (liveness: model loaded, no stuck partition), /ready

The stages' logic lives in agents/ and streaming/; the commands' in commands/.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import click
import faust
from faust.cli import option

from agents import parse as parse_stage
from agents import score as score_stage
from agents import window as window_stage
from agents.observe import WorkerObserver
from agents.pipeline import load_pipeline
from commands.cli_options import evaluate_options, generate_options, produce_options, train_options
from commands.common import plain_signals
from streaming import consumer_position, metrics
from streaming.settings import StreamSettings, reference_table


class LogbertApp(faust.App):
    async def on_first_start(self) -> None:
        # Only a worker starts the app. Load the model before the consumer joins the group, so
        # a bad model directory exits with a clear message and nothing consumed or committed.
        observer.load_model(pipeline)
        # Past this many unsent messages (changelog writes, keys, sequences) Faust stops handing
        # messages to the streams until as many more are sent, one wait at a time.
        self.producer.buffer.max_messages = settings.producer_buffer
        if settings.gc_thresholds:
            # Fewer, larger young collections: the open sessions and caches survive many of them, and
            # Python's default (700 allocations) traversed them again and again.
            gc.set_threshold(*settings.gc_thresholds)
        await super().on_first_start()

    @property
    def direct_delivery(self) -> bool:  # read by the consumer (streaming/delivery.py)
        return settings.direct_delivery

    @property
    def fetch_max_wait(self) -> float:  # read by the consumer (streaming/consumer_position.py)
        return settings.fetch_max_wait

    def _new_transport(self):
        # reads partitions with no committed offset from the beginning after Faust drops fetched records
        return consumer_position.Transport(self.conf.broker_consumer, self)


class LogbertWorker(faust.Worker):
    def on_setup_root_logger(self, logger, level: int) -> None:
        # Faust's terminal spinner puts the root logger at DEBUG from `-l warn` up, so every library
        # debug message is built and dropped: about 9% of a busy worker's time.
        self.spinner = None
        super().on_setup_root_logger(logger, level)


settings = StreamSettings()
observer = WorkerObserver(settings)
if settings.data_dir:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
app = LogbertApp(
    settings.app_id,  # the consumer group
    broker=settings.broker_url,
    value_serializer="json",  # internal topics and the table's changelog; raw input is read as bytes
    topic_partitions=settings.internal_partitions,
    store="memory://",  # open sessions are rebuilt from the table's changelog topic
    web_port=settings.web_port,
    autodiscover=False,
    Worker=LogbertWorker,
    **settings.faust_overrides(),
)

raw_topic = app.topic(*settings.input_topics, value_serializer="raw")
keys_topic = app.topic(settings.keys_topic, key_type=str, value_serializer="json", internal=True)
sequences_topic = app.topic(settings.sequences_topic, key_type=str, value_serializer="json", internal=True)
# Output topics are created when missing before the first send (see agents/), so no send
# waits on a broker's auto-creation.
alerts_topic = app.topic(settings.alerts_topic, key_type=str, value_serializer="json", internal=True)
dlq_topic = app.topic(settings.dlq_topic, value_serializer="json", internal=True)
scores_topic = (
    app.topic(settings.scores_topic, key_type=str, value_serializer="json", internal=True)
    if settings.publish_scores
    else None
)
open_sessions = app.Table("logbert-open-sessions", default=None, value_type=None)
quiet = parse_stage.QuietClock()


def pipeline():
    return load_pipeline(settings)


@app.agent(raw_topic)
async def parse(stream):
    await parse_stage.run(
        stream, pipeline, keys_topic, dlq_topic, quiet, lambda offsets: observer.reading(app, offsets)
    )


@app.agent(keys_topic)
async def window(stream):
    await window_stage.run(stream, pipeline, open_sessions, sequences_topic)


@app.agent(sequences_topic)
async def score(stream):
    await score_stage.run(stream, pipeline, alerts_topic, scores_topic)


@app.timer(interval=1.0)
async def flush_when_quiet():
    await parse_stage.flush_if_quiet(
        pipeline, keys_topic, quiet, lambda: observer.raw_partitions(app), lambda: observer.input_caught_up(app)
    )


@app.timer(interval=5.0)
async def watch_progress():
    observer.refresh(app, open_sessions)


@app.page("/metrics")
async def metrics_page(self, request):
    body, content_type = metrics.exposition()
    return self.bytes(body, headers={"Content-Type": content_type})


@app.page("/health")
async def health_page(self, request):
    health = observer.health()
    return self.json(health.as_json(), status=200 if health.live else 503)


@app.page("/ready")
async def ready_page(self, request):
    return self.json({"ready": observer.model_loaded}, status=200 if observer.model_loaded else 503)


@app.command(*train_options)
async def train(self, **flags) -> None:
    """Train LogBERT on normal sequences and write a calibrated model directory."""
    from commands.train import request_from_flags, run_train, summarise

    plain_signals()
    self.say(summarise(run_train(request_from_flags(flags))))


@app.command(*evaluate_options)
async def evaluate(self, **flags) -> None:
    """Score labelled data with a model: honest figures beside two baseline rules."""
    from commands.evaluate import request_from_flags, run_evaluate

    plain_signals()
    run_evaluate(request_from_flags(flags))


@app.command(*generate_options)
async def generate(self, **flags) -> None:
    """Write synthetic HDFS-like or BGL-like logs with labelled, injected anomalies."""
    from commands.generate import run_generate

    self.say(run_generate(**flags))


@app.command(*produce_options)
async def produce(self, **flags) -> None:
    """Feed a log file into a Kafka topic (one line per message, or shipper-style batches)."""
    from commands.kafka_io import run_produce

    plain_signals()
    self.say(run_produce(settings, **flags))


@app.command(
    option("--follow/--no-follow", default=False, help="Keep waiting for new alerts."),
    option("--from-beginning/--from-now", default=True),
    option("--json", "as_json", is_flag=True, default=False, help="Print the raw JSON values."),
)
async def alerts(self, follow: bool, from_beginning: bool, as_json: bool) -> None:
    """Print the alerts on logbert-alerts readably."""
    from commands.kafka_io import print_alerts

    print_alerts(settings, follow, from_beginning, as_json)


@app.command(
    option("--topic", required=True, help="Topic to replay."),
    option("--start", default="beginning", help="beginning, an offset, or an ISO time (offsets for times)."),
    option("--end", default="end", help="end (fixed at start), an offset, or an ISO time."),
    option("--model", default=None, help="Model directory (default: LOGBERT_MODEL_DIR)."),
    option("--labels", type=click.Path(exists=True, dir_okay=False), default=None, help="id,label CSV for metrics."),
    option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the report as JSON."),
)
async def replay(self, topic: str, start: str, end: str, model: str | None, labels: str | None, json_out: str | None):
    """Backtest: run a topic range through parse/window/score in process, outside the consumer group."""
    from commands.replay import ReplayRequest, run_replay

    plain_signals()
    run_replay(settings, ReplayRequest(topic, start, end, Path(model or settings.model_dir),
                                       Path(labels) if labels else None, Path(json_out) if json_out else None,
                                       settings.provider))  # fmt: skip


@app.command(
    option("--out", "demo_dir", default=os.environ.get("LOGBERT_DEMO_DIR", "demo-output"), type=click.Path(),
           help="Where the demo writes its logs and model (env LOGBERT_DEMO_DIR)."),
    option("--retrain/--reuse", default=False, help="Retrain even if a cached demo model exists."),
    option("--stream/--no-stream", default=True, help="Also stream fresh logs through Kafka and a worker."),
)  # fmt: skip
async def demo(self, demo_dir: str, retrain: bool, stream: bool) -> None:
    """Generate logs, train a small model (or reuse it), evaluate, then stream logs through Kafka."""
    from commands.demo import run_demo

    plain_signals()
    run_demo(Path(demo_dir), retrain=retrain, stream=stream)


@app.command()
async def settings_reference(self) -> None:
    """Print every environment variable the worker reads, its default and what it changes."""
    print(reference_table())


if __name__ == "__main__":
    app.main()
