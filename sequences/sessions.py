"""Session grouping: every record joins the session of each id found in it (HDFS blocks)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from sequences.dataset import SequenceSpec

HDFS_SESSION_REGEX = r"blk_-?\d+"


def session_ids(line: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    """Distinct ids in order of appearance; a line naming several blocks belongs to each."""
    return tuple(dict.fromkeys(pattern.findall(line)))


def group_by_session(
    ids_per_record: Iterable[tuple[str, ...]],
    timestamps: list[float | None] | None = None,
    idle_timeout: float | None = None,
) -> tuple[list[SequenceSpec], int]:
    """Sessions in order of first record, and how many records named no session.

    With an idle timeout this is the streaming rule replayed in log order: the watermark is the
    largest timestamp so far, and a session whose last record lies idle_timeout behind it has
    ended, so a later record with the same id starts a new session (same id, next part)."""
    open_sessions: dict[str, SequenceSpec] = {}
    ordered: list[SequenceSpec] = []
    without_id = 0
    watermark = -math.inf
    for index, ids in enumerate(ids_per_record):
        ts = timestamps[index] if timestamps is not None else None
        if ts is not None:
            watermark = max(watermark, ts)
        if not ids:
            without_id += 1
            continue
        for sid in ids:
            spec = open_sessions.get(sid)
            if spec is not None and idle_timeout is not None and spec.end is not None:
                if watermark - spec.end >= idle_timeout:
                    spec = None
            if spec is None:
                spec = open_sessions[sid] = SequenceSpec(sid, [], ts, ts)
                ordered.append(spec)
            spec.records.append(index)
            if ts is not None:
                spec.start = ts if spec.start is None else min(spec.start, ts)
                spec.end = ts if spec.end is None else max(spec.end, ts)
    return ordered, without_id


def mark_open_sessions(specs: list[SequenceSpec], idle_timeout: float, last: float | None = None) -> int:
    """A session whose last record lies within idle_timeout of the input's last timestamp may
    still continue, as it would in a stream; it is scored as open (no END). Returns how many."""
    if last is None:
        ends = [s.end for s in specs if s.end is not None]
        if not ends:
            return 0
        last = max(ends)
    opened = 0
    for spec in specs:
        if spec.end is not None and last - spec.end < idle_timeout:
            spec.closed = False
            opened += 1
    return opened
