"""The logic behind /health and the lag metrics, without a broker: stuck partitions, lag, open windows."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from agents.observe import WorkerObserver
from streaming import metrics
from streaming.health import Health, PartitionProgress, ProgressWatch
from streaming.settings import StreamSettings


def progress(position, highwater, partition=0):
    return PartitionProgress("logs-raw", partition, position, highwater)


def test_a_partition_with_lag_that_stops_moving_is_stuck_after_the_limit():
    watch = ProgressWatch(stuck_after=60)
    assert watch.observe(0, [progress(10, 50)]) == []
    assert watch.observe(30, [progress(20, 60)]) == []  # moved: the clock restarts at 30
    assert watch.observe(89, [progress(20, 80)]) == []
    assert watch.observe(90, [progress(20, 80)]) == [progress(20, 80)]
    assert watch.observe(91, [progress(21, 80)]) == []  # moving again


def test_an_idle_partition_without_lag_is_never_stuck():
    watch = ProgressWatch(stuck_after=60)
    for t in range(0, 600, 30):
        assert watch.observe(t, [progress(100, 100), progress(None, None, 1)]) == []


def test_revoked_partitions_are_forgotten():
    watch = ProgressWatch(stuck_after=60)
    watch.observe(0, [progress(10, 50)])
    watch.observe(30, [])  # revoked in a rebalance
    assert watch.observe(70, [progress(10, 50)]) == []  # assigned again: a fresh clock


def test_health_fails_on_a_stuck_partition_and_lists_it():
    healthy = Health(True, None, 8, [])
    assert healthy.live and healthy.as_json()["status"] == "ok"
    stuck = Health(True, None, 8, [progress(20, 80)])
    assert not stuck.live
    assert stuck.as_json()["stuck_partitions"] == [{"topic": "logs-raw", "partition": 0, "position": 20, "lag": 60}]
    assert not Health(False, "model.onnx could not be loaded", 0, []).live


class FakeConsumer:
    """What the observer reads from Faust's consumer: assignment, highwaters, committed offsets."""

    def __init__(self, assigned: dict[TP, tuple[int | None, int | None]]) -> None:
        self.assigned = assigned
        self._committed_offset = {tp: committed for tp, (committed, _) in assigned.items()}

    def assignment(self):
        return set(self.assigned)

    def highwater(self, tp):
        highwater = self.assigned[tp][1]
        if highwater is None:
            raise AssertionError("not fetched yet")  # aiokafka's behaviour before the first fetch
        return highwater


def test_observer_reports_lag_open_windows_and_stuck_partitions(monkeypatch):
    settings = StreamSettings(app_id="obs", input_topics=("logs-raw",), stuck_after=60)
    observer = WorkerObserver(settings)
    raw, keys, changelog = TP("logs-raw", 0), TP("obs-keys", 1), TP("obs-logbert-open-sessions-changelog", 1)
    consumer = FakeConsumer({raw: (100, 150), keys: (7, 7), changelog: (None, None)})
    app = SimpleNamespace(consumer=consumer, assignor=SimpleNamespace(assigned_actives=lambda: {raw, keys}))
    table = SimpleNamespace(data={
        "blk_1": {"partition": 1, "keys": [1]}, "blk_2": {"partition": 2, "keys": [1]},  # 2: a standby
        "*": {"partition": 1, "windows": {"0": {}, "1": {}}}, "\x00applied/1": {"raw": {}},
    })  # fmt: skip
    clock = [1000.0]
    monkeypatch.setattr("agents.observe.time.monotonic", lambda: clock[0])
    detector = SimpleNamespace(version="abc123", provider="CPUExecutionProvider")
    observer.load_model(lambda: SimpleNamespace(detector=detector, translator=SimpleNamespace(untranslated=0)))
    assert metrics.MODEL_INFO.labels("abc123")._value.get() == 1

    observer.refresh(app, table)
    assert metrics.CONSUMER_LAG.labels("logs-raw", "0")._value.get() == 50
    assert metrics.CONSUMER_LAG.labels("obs-keys", "1")._value.get() == 0
    assert metrics.OPEN_WINDOWS._value.get() == 3  # one session and two windows on active partition 1
    assert observer.health().live and observer.health().assigned == 2  # the changelog is not watched

    clock[0] += 61  # nothing moved on logs-raw/0 while 50 records wait
    observer.refresh(app, table)
    health = observer.health()
    assert not health.live and [p.topic for p in health.stuck] == ["logs-raw"]
    assert metrics.STUCK_PARTITIONS._value.get() == 1

    consumer._committed_offset[raw] = 120  # it moved
    clock[0] += 5
    observer.refresh(app, table)
    assert observer.health().live


def test_a_model_that_does_not_load_stops_the_worker_with_the_reason():
    import pytest

    from models.artefact import ModelDirectoryError

    observer = WorkerObserver(StreamSettings(model_dir="/models/v9"))

    def broken():
        raise ModelDirectoryError("templates.json has 12 templates but the model was trained on 14")

    with pytest.raises(
        SystemExit, match=r"cannot start: templates.json has 12 templates .* \(LOGBERT_MODEL_DIR=/models/v9\)"
    ):
        observer.load_model(broken)
    assert not observer.health().live and "12 templates" in observer.health().as_json()["model_error"]


def test_a_partition_taken_over_after_its_input_ended_counts_as_caught_up():
    """Nothing read yet on a newly assigned partition, but its committed offset is the end."""
    import asyncio

    settings = StreamSettings(input_topics=("logs-raw",))
    observer = WorkerObserver(settings)
    raw = TP("logs-raw", 0)

    class Consumer(FakeConsumer):
        async def highwaters(self, *tps):
            return {tp: self.assigned[tp][1] for tp in tps}

    consumer = Consumer({raw: (5000, 5000)})
    app = SimpleNamespace(consumer=consumer)
    assert asyncio.run(observer.input_caught_up(app))
    consumer._committed_offset = {raw: 4000}
    assert not asyncio.run(observer.input_caught_up(app))  # 1,000 records wait
    consumer._read_offset = {raw: 4999}  # read into the stream's buffer, not parsed yet
    assert not asyncio.run(observer.input_caught_up(app))
    observer.reading(app, {"logs-raw/0": 4999})  # the batch up to 4999 is being parsed
    assert asyncio.run(observer.input_caught_up(app))


def test_records_read_ahead_into_the_stream_buffer_still_count_as_unread():
    """While a batch is parsed, Faust reads on into the stream's buffer: those records have not
    been parsed, so their partition still holds event time back."""
    settings = StreamSettings(input_topics=("logs-raw",))
    observer = WorkerObserver(settings)
    raw = TP("logs-raw", 0)
    consumer = FakeConsumer({raw: (0, 5000)})
    consumer._read_offset = {raw: 4999}  # everything read into the buffer
    app = SimpleNamespace(consumer=consumer)
    assert observer.reading(app, {"logs-raw/0": 999})[:2] == (["logs-raw/0"], {"logs-raw/0"})
    assert observer.reading(app, {"logs-raw/0": 4999})[:2] == (["logs-raw/0"], set())


def test_every_raw_partition_is_reported_whoever_reads_it():
    settings = StreamSettings(input_topics=("logs-raw", "other-raw"))
    observer = WorkerObserver(settings)
    consumer = FakeConsumer({TP("logs-raw", 1): (0, 10)})
    app = SimpleNamespace(consumer=consumer)
    assert observer.reading(app, {})[2] == ["logs-raw/1"]  # no metadata yet: its own
    consumer.topic_partitions = {"logs-raw": 3, "other-raw": 1}.get
    mine, _, inputs = observer.reading(app, {})
    assert mine == ["logs-raw/1"] and inputs == ["logs-raw/0", "logs-raw/1", "logs-raw/2", "other-raw/0"]


def test_free_ports_are_distinct():
    from commands.live import free_ports

    for _ in range(200):  # two ports picked one after the other could repeat; held together they cannot
        ports = free_ports(2)
        assert ports[0] != ports[1]
