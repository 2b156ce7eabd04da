"""BGL-like logs: per-node RAS lines with the alert category as the first field ('-' = normal).

Normal minutes carry a mix of correctable-error and housekeeping lines; anomalies are bursts
of fatal templates on one node (the kind is the alert category)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

_NORMAL = (
    (30, "KERNEL", "INFO", "instruction cache parity error corrected"),
    (20, "KERNEL", "INFO", "generating core.{n}"),
    (15, "KERNEL", "INFO", "CE sym {s}, at 0x{a:08x}, mask 0x{m:02x}"),
    (10, "KERNEL", "INFO", "total of {s} ddr error(s) detected and corrected"),
    (5, "APP", "INFO", "ciod: generated {s} core files for program /bgl/apps/run{s}/app.rts"),
    (3, "KERNEL", "INFO", "{s} double-hummer alignment exceptions"),
)
_ALERTS = {
    "KERNDTLB": ("KERNEL", "FATAL", "data TLB error interrupt"),
    "KERNMC": ("KERNEL", "FATAL", "machine check interrupt"),
    "KERNRTSP": ("KERNEL", "FATAL", "rts panic! - stopping execution"),
    "APPREAD": ("APP", "FATAL", "ciod: failed to read message prefix on control stream (CioStream socket to 172.16.96.116:33370"),
}  # fmt: skip


def _node(rng: random.Random) -> str:
    return f"R{rng.randint(0, 77):02d}-M{rng.randint(0, 1)}-N{rng.randint(0, 15)}-C:J{rng.randint(2, 17):02d}-U{rng.randint(0, 1)}1"


def _line(label: str, ts: datetime, node: str, component: str, level: str, content: str) -> str:
    return (
        f"{label} {int(ts.timestamp())} {ts.strftime('%Y.%m.%d')} {node} {ts.strftime('%Y-%m-%d-%H.%M.%S.%f')} "
        f"{node} RAS {component} {level} {content}"
    )


def generate_bgl(minutes: int = 600, anomaly_rate: float = 0.05, seed: int = 7) -> tuple[list[str], list[dict]]:
    """Lines in time order, and the injected bursts (start, node, category)."""
    rng = random.Random(seed)
    start = datetime(2005, 6, 3, 15, 42, 50, tzinfo=timezone.utc)
    weights = [w for w, *_ in _NORMAL]
    timed: list[tuple[datetime, str]] = []
    bursts: list[dict] = []
    for minute in range(minutes):
        base = start + timedelta(minutes=minute)
        for _ in range(rng.randint(5, 40)):
            _, component, level, text = rng.choices(_NORMAL, weights)[0]
            ts = base + timedelta(seconds=rng.uniform(0, 60))
            content = text.format(
                n=rng.randint(1000, 9999), s=rng.randint(1, 99), a=rng.getrandbits(32), m=rng.getrandbits(8)
            )
            timed.append((ts, _line("-", ts, _node(rng), component, level, content)))
        if rng.random() < anomaly_rate:
            category = rng.choice(sorted(_ALERTS))
            component, level, text = _ALERTS[category]
            node = _node(rng)
            burst_start = base + timedelta(seconds=rng.uniform(0, 60))
            for i in range(rng.randint(3, 30)):
                ts = burst_start + timedelta(seconds=i * rng.uniform(0.01, 2))
                timed.append((ts, _line(category, ts, node, component, level, text)))
            bursts.append({"start": burst_start.isoformat(), "node": node, "category": category})
    timed.sort(key=lambda item: item[0])
    return [line for _, line in timed], bursts
