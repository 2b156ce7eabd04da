"""faust_app.py applies the settings that only Faust's objects can carry (without a broker)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

# The app is built at import from the environment, so each case runs in its own interpreter.
FIRST_START = """
import asyncio, faust, faust_app

async def nothing(self): pass

faust.App.on_first_start = nothing  # Faust's own start (consumer, producer) needs a broker
faust_app.observer.load_model = lambda pipeline: None
asyncio.run(faust_app.app.on_first_start())
print(faust_app.app.producer.buffer.max_messages)
"""


def producer_buffer_after_start(**env: str) -> int:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBERT_")} | env
    done = subprocess.run([sys.executable, "-c", FIRST_START], cwd=ROOT, env=full_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


def test_the_producer_buffer_setting_reaches_fausts_producer():
    assert producer_buffer_after_start(LOGBERT_PRODUCER_BUFFER="1234") == 1234
    assert producer_buffer_after_start() == 5000  # the default, not Faust's 100
