"""`faust_app.py` run as it is, except that every Kafka send hangs for good once the file named by
HANG_SENDS_FLAG exists: a produce answer that never comes (tests/test_faults.py)."""

import asyncio
import os
import runpy
import sys
from pathlib import Path

from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
FLAG = Path(os.environ["HANG_SENDS_FLAG"])
real_send = AIOKafkaProducer.send


async def send(self, *args, **kwargs):
    if FLAG.exists():
        await asyncio.Event().wait()
    return await real_send(self, *args, **kwargs)


AIOKafkaProducer.send = send
sys.argv = [str(ROOT / "faust_app.py"), *sys.argv[1:]]
runpy.run_path(str(ROOT / "faust_app.py"), run_name="__main__")
