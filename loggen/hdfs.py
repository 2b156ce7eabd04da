"""HDFS-like logs: each block is allocated, written to three datanodes, acknowledged and stored.

Anomalies are injected per block, with the kind recorded in the labels:
  missing_step   one acknowledgement or store line never comes
  error          an error template appears in the lifecycle
  reorder        a block is stored before it was received
  repetition     a step repeats far more often than three replicas explain
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

ANOMALY_KINDS = ("missing_step", "error", "reorder", "repetition")
_ERRORS = (
    ("dfs.DataNode$DataXceiver", "writeBlock {blk} received exception java.io.IOException: Connection reset by peer"),
    ("dfs.DataNode$PacketResponder", "PacketResponder {blk} 1 Exception java.io.InterruptedIOException: Interruped while waiting for IO on channel"),
    ("dfs.DataNode", "{ip}:50010:Got exception while serving {blk} to /{ip2}:"),
)  # fmt: skip


@dataclass
class Block:
    block_id: str
    label: str  # "Normal" or "Anomaly"
    kind: str  # "normal" or one of ANOMALY_KINDS
    lines: list[tuple[float, str]]  # (seconds since start, line)


def _ip(rng: random.Random) -> str:
    return f"10.251.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _line(ts: datetime, pid: int, level: str, component: str, content: str) -> str:
    return f"{ts.strftime('%y%m%d %H%M%S')} {pid} {level} {component}: {content}"


def _lifecycle(rng: random.Random, blk: str, start: float) -> list[tuple[float, str, str]]:
    """(time offset, component, content) for a normal block."""
    nodes = [_ip(rng) for _ in range(3)]
    size = rng.choice([67108864, rng.randint(1000, 67108864)])
    job = f"job_{rng.randint(200811090000, 200811099999)}_{rng.randint(1, 9999):04d}"
    events: list[tuple[float, str, str]] = []
    t = start
    allocate_at = rng.randint(0, 3)  # the allocation line may land among the receiving lines
    receiving = [
        (
            "dfs.DataNode$DataXceiver",
            f"Receiving block {blk} src: /{_ip(rng)}:{rng.randint(30000, 60000)} dest: /{n}:50010",
        )
        for n in nodes
    ]
    allocation = (
        "dfs.FSNamesystem",
        f"BLOCK* NameSystem.allocateBlock: /user/root/rand/_temporary/_task_{job}_m_{rng.randint(0, 999):06d}_0/part-{rng.randint(0, 999):05d}. {blk}",
    )
    for step in receiving[:allocate_at] + [allocation] + receiving[allocate_at:]:
        t += rng.uniform(0, 0.5)
        events.append((t, *step))
    order = list(range(3))
    rng.shuffle(order)
    for i, replica in enumerate(order):
        t += rng.uniform(0.5, 4)
        events.append((t, "dfs.DataNode$PacketResponder", f"PacketResponder {2 - i} for block {blk} terminating"))
        events.append(
            (
                t + rng.uniform(0, 0.3),
                "dfs.DataNode$PacketResponder",
                f"Received block {blk} of size {size} from /{nodes[replica]}",
            )
        )
    for replica in order:
        t += rng.uniform(0, 1.5)
        events.append(
            (
                t,
                "dfs.FSNamesystem",
                f"BLOCK* NameSystem.addStoredBlock: blockMap updated: {nodes[replica]}:50010 is added to {blk} size {size}",
            )
        )
    if rng.random() < 0.3:
        t += rng.uniform(1, 20)
        events.append((t, "dfs.DataBlockScanner", f"Verification succeeded for {blk}"))
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        t += rng.uniform(1, 10)
        events.append((t, "dfs.DataNode", f"{rng.choice(nodes)} Served block {blk} to /{_ip(rng)}"))
    return events  # fmt: skip


def _inject(
    rng: random.Random, kind: str, blk: str, events: list[tuple[float, str, str]]
) -> list[tuple[float, str, str]]:
    events = list(events)
    if kind == "missing_step":
        candidates = [i for i, e in enumerate(events) if "Received block" in e[2] or "addStoredBlock" in e[2]]
        del events[rng.choice(candidates)]
    elif kind == "error":
        component, text = rng.choice(_ERRORS)
        at = rng.randint(4, len(events) - 1)
        events.insert(at, (events[at - 1][0] + 0.1, component, text.format(blk=blk, ip=_ip(rng), ip2=_ip(rng))))
    elif kind == "reorder":
        stores = [i for i, e in enumerate(events) if "addStoredBlock" in e[2]]
        store = events.pop(stores[0])
        events.insert(1, store)
        # keep time order consistent with line order: the store line is logged early
        events = [(events[0][0] + 0.01 * i, c, x) for i, (_, c, x) in enumerate(events)]
    elif kind == "repetition":
        receiving = next(e for e in events if "Receiving block" in e[2])
        repeat = [(receiving[0] + 0.01 * i, receiving[1], receiving[2]) for i in range(rng.randint(4, 8))]
        events = sorted(events + repeat, key=lambda e: e[0])
    return events


def generate_hdfs(
    sessions: int = 2000, anomaly_rate: float = 0.05, seed: int = 7, start: datetime | None = None
) -> tuple[list[str], list[Block]]:
    """Lines in time order (blocks interleave) and the blocks with their labels."""
    rng = random.Random(seed)
    start = start or datetime(2008, 11, 9, 20, 35, 18, tzinfo=timezone.utc)
    blocks: list[Block] = []
    timed: list[tuple[float, int, str]] = []
    for n in range(sessions):
        blk = f"blk_{rng.choice(['', '-'])}{rng.randint(10**17, 10**19 - 1)}"
        begin = n * 1.5 + rng.uniform(0, 1.5)
        events = _lifecycle(rng, blk, begin)
        kind = rng.choice(ANOMALY_KINDS) if rng.random() < anomaly_rate else "normal"
        if kind != "normal":
            events = _inject(rng, kind, blk, events)
        lines = []
        for offset, component, content in events:
            level = "WARN" if "exception" in content.lower() else "INFO"
            line = _line(start + timedelta(seconds=offset), rng.randint(10, 9999), level, component, content)
            lines.append((offset, line))
            timed.append((offset, len(timed), line))
        blocks.append(Block(blk, "Normal" if kind == "normal" else "Anomaly", kind, lines))
    timed.sort()
    return [line for _, _, line in timed], blocks
