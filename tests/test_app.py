"""faust_app.py applies the settings that only Faust's objects can carry (without a broker)."""

from __future__ import annotations

import gc
import inspect
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# The app is built at import from the environment, so each case runs in its own interpreter.
FIRST_START = """
import asyncio, gc, json, faust, faust_app

async def nothing(self): pass

faust.App.on_first_start = nothing  # Faust's own start (consumer, producer) needs a broker
faust_app.observer.load_model = lambda pipeline: None

async def main():
    app = faust_app.app
    await app.on_first_start()
    consumer = app.consumer._thread._create_worker_consumer(app.transport)  # built, not started
    producer = app.producer._new_producer()  # built, not started
    compression = producer._compression_type
    await producer.stop()
    print(json.dumps({"producer_buffer": app.producer.buffer.max_messages, "compression": compression,
                      "fetch_max_wait_ms": consumer._fetch_max_wait_ms, "gc": gc.get_threshold(),
                      "metadata_max_age_ms": consumer._client._metadata_max_age_ms}))

asyncio.run(main())
"""


def after_start(**env: str) -> dict:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBERT_")} | env
    done = subprocess.run([sys.executable, "-c", FIRST_START], cwd=ROOT, env=full_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_producer_buffer_fetch_wait_compression_and_gc_settings_reach_faust_aiokafka_and_python():
    assert after_start(
        LOGBERT_PRODUCER_BUFFER="1234", LOGBERT_FETCH_MAX_WAIT="0.25", LOGBERT_GC_THRESHOLDS="5000,5,50",
        LOGBERT_PRODUCER_COMPRESSION="lz4",
    ) == {
        "producer_buffer": 1234, "compression": "lz4", "fetch_max_wait_ms": 250, "gc": [5000, 5, 50],
        "metadata_max_age_ms": 30_000,
    }  # fmt: skip
    # the defaults, not Faust's 100 messages, no compression and 1.5 s, nor Python's 700 allocations
    assert after_start() == {
        "producer_buffer": 5000, "compression": "snappy", "fetch_max_wait_ms": 100, "gc": [10000, 10, 100],
        "metadata_max_age_ms": 30_000,
    }  # fmt: skip
    assert after_start(LOGBERT_GC_THRESHOLDS="")["gc"] == list(gc.get_threshold())  # Python's own
    assert after_start(LOGBERT_PRODUCER_COMPRESSION="none")["compression"] is None  # Faust's own: uncompressed


def test_gc_thresholds_must_be_three_numbers_or_nothing(monkeypatch):
    from streaming.settings import StreamSettings

    for wrong in ("700", "0,10,10", "700,10,-1", "a,b,c"):
        monkeypatch.setenv("LOGBERT_GC_THRESHOLDS", wrong)
        with pytest.raises(ValueError, match="LOGBERT_GC_THRESHOLDS"):
            StreamSettings()


def test_an_unknown_compression_is_refused_with_the_ones_it_takes(monkeypatch):
    from streaming.settings import StreamSettings

    monkeypatch.setenv("LOGBERT_PRODUCER_COMPRESSION", "brotli")
    with pytest.raises(ValueError, match="LOGBERT_PRODUCER_COMPRESSION='brotli'.*snappy, zstd, lz4, gzip, none"):
        StreamSettings()
    monkeypatch.setenv("LOGBERT_PRODUCER_COMPRESSION", " ZSTD ")
    assert StreamSettings().producer_compression == "zstd"
    monkeypatch.setenv("LOGBERT_PRODUCER_COMPRESSION", "")
    assert StreamSettings().producer_compression == "none"


def test_aiokafka_still_hands_the_fetch_wait_to_its_fetcher_at_start():
    """The wait is set on the AIOKafkaConsumer after Faust built it (Faust passes a fixed 1.5 s);
    it counts only if the consumer's start still builds its fetcher from that attribute."""
    from aiokafka import AIOKafkaConsumer

    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)
