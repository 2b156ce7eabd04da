"""A bare Faust agent that only counts raw messages: the ceiling of any Faust agent that sees each
message as an event. bench/pipeline.py runs it as `python bench/faust_count.py worker`.

Environment: KAFKA_BOOTSTRAP_SERVERS, BENCH_APP_ID, BENCH_TOPIC, BENCH_MESSAGES (when to stop
counting) and BENCH_RESULT (a JSON file written then: messages, lines, first and last times)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import faust

app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    store="memory://",
    web_enabled=False,
    autodiscover=False,
)
raw_topic = app.topic(os.environ["BENCH_TOPIC"], value_serializer="raw")
expected = int(os.environ["BENCH_MESSAGES"])


@app.agent(raw_topic)
async def count(stream) -> None:
    messages = lines = 0
    first = None
    async for value in stream:
        if first is None:
            first = time.time()
        messages += 1
        lines += value.count(b"\n") + 1
        if messages == expected:
            result = {"messages": messages, "lines": lines, "first": first, "last": time.time()}
            Path(os.environ["BENCH_RESULT"]).write_text(json.dumps(result))


if __name__ == "__main__":
    app.main()
