"""Bytes the window stage writes to its table's changelog, and sends as keys messages, per line.

    scripts/venv.sh python bench/changelog.py [--lines 200000]

The parse and window stages run here without a broker over generated HDFS-like lines (those of
bench/pipeline.py) on two raw partitions, as a worker reads them:
  one line per message   keyed by block, read in fetches of 100 messages per partition
  shipper                500 lines per message, round robin over the partitions
Every table write is counted as the JSON Faust would write (a session is written whole at each
change, so what each key keeps in it counts once per later write of its session)."""

from __future__ import annotations

import argparse
import re
import sys
import time
import zlib
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.window import window_step  # noqa: E402
from bench.common import generated_lines  # noqa: E402
from logkeys.presets import get_preset  # noqa: E402
from logkeys.templates import TemplateSet, mine_templates  # noqa: E402
from streaming.stages import ParseStage, RawMessage, WindowStage  # noqa: E402

PARTITIONS = 2
FETCH = 100  # one-line messages per parse batch
SHIPPER_LINES = 500
SESSION = re.compile(r"blk_-?\d+")


class CountingTable(dict):
    """A table that counts the JSON bytes of every write."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = self.writes = 0

    def __setitem__(self, key: str, value: dict) -> None:
        self.bytes += len(orjson.dumps(value))
        self.writes += 1
        super().__setitem__(key, value)


def run(lines: list[str], templates: TemplateSet, per_message: int) -> dict:
    parse = [ParseStage(templates, SESSION.pattern) for _ in range(PARTITIONS)]
    window, table, last_expiry = WindowStage(idle_timeout=60, max_keys=512), CountingTable(), {}
    offsets, pending = [0] * PARTITIONS, [[] for _ in range(PARTITIONS)]
    keys_bytes = sequences = 0
    sent_ms = 1_765_000_000_000
    started = time.perf_counter()

    def through_window(partition: int) -> None:
        nonlocal keys_bytes, sequences
        result = parse[partition].process(pending[partition], waiting=set())
        value = {"sessions": result.events, "watermark": result.watermark, "origins": [f"raw/{partition}"]}
        keys_bytes += len(orjson.dumps(value))
        sequences += len(window_step(window, table, partition, value, last_expiry))
        pending[partition] = []

    for number, first in enumerate(range(0, len(lines), per_message)):
        text = "\n".join(lines[first : first + per_message])
        if per_message == 1:
            partition, fetch = zlib.crc32(SESSION.search(text).group().encode()) % PARTITIONS, FETCH
        else:
            partition, fetch = number % PARTITIONS, 1
        pending[partition].append(RawMessage(text.encode(), "raw", partition, offsets[partition], sent_ms / 1000))
        offsets[partition] += 1
        sent_ms += 1
        if len(pending[partition]) == fetch:
            through_window(partition)
    for partition in range(PARTITIONS):
        if pending[partition]:
            through_window(partition)
        sequences += len(window.flush(table, partition, float("inf")))
    return {"changelog_bytes": table.bytes, "writes": table.writes, "keys_bytes": keys_bytes,
            "sequences": sequences, "seconds": time.perf_counter() - started}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    lines = generated_lines(args.lines)
    templates = mine_templates(lines[:20_000], get_preset("hdfs"))
    print(f"{args.lines} generated HDFS-like lines, {PARTITIONS} raw partitions")
    for name, per_message in (("one line per message", 1), (f"{SHIPPER_LINES} lines per message", SHIPPER_LINES)):
        row = run(lines, templates, per_message)
        print(f"{name:<22} changelog {row['changelog_bytes'] / 1e6:6.2f} MB in {row['writes']:,} writes "
              f"({row['changelog_bytes'] / args.lines:5.1f} B/line), keys messages {row['keys_bytes'] / 1e6:6.2f} MB, "
              f"{row['sequences']:,} sequences, {row['seconds']:.1f} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
