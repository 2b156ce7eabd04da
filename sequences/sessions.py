"""Session grouping: every record joins the session of each id found in it (HDFS blocks)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sequences.dataset import SequenceSpec

HDFS_SESSION_REGEX = r"blk_-?\d+"


def session_ids(line: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    """Distinct ids in order of appearance; a line naming several blocks belongs to each."""
    return tuple(dict.fromkeys(pattern.findall(line)))


def group_by_session(
    ids_per_record: Iterable[tuple[str, ...]], timestamps: list[float | None] | None = None
) -> tuple[list[SequenceSpec], int]:
    """Sessions in order of first appearance, and how many records named no session."""
    sessions: dict[str, SequenceSpec] = {}
    without_id = 0
    for index, ids in enumerate(ids_per_record):
        if not ids:
            without_id += 1
            continue
        ts = timestamps[index] if timestamps is not None else None
        for sid in ids:
            spec = sessions.get(sid)
            if spec is None:
                spec = sessions[sid] = SequenceSpec(sid, [], ts, ts)
            spec.records.append(index)
            if ts is not None:
                spec.start = ts if spec.start is None else min(spec.start, ts)
                spec.end = ts if spec.end is None else max(spec.end, ts)
    return list(sessions.values()), without_id


def mark_open_sessions(specs: list[SequenceSpec], idle_timeout: float) -> int:
    """A session whose last record lies within idle_timeout of the input's last timestamp may
    still continue, as it would in a stream; it is scored without the END key. Returns how many."""
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
