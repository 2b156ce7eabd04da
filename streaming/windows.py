"""Incremental session windows in event time, the streaming twin of sequences/sessions.py.

A session closes (END) when the event-time watermark passes its last record by the idle
timeout, or is cut (OPEN) at max_keys, the next records starting a new part. The state is a
plain mapping of session key -> OpenSession dicts, so a Faust Table with a changelog can hold
it and a restarted worker continues where the old one stopped."""

from __future__ import annotations

import bisect
import math
from collections.abc import MutableMapping
from dataclasses import dataclass, field


@dataclass
class ClosedSequence:
    session: str
    part: int  # 0 for the first max_keys keys, 1 for the next, ...
    keys: list[int]
    start: float
    end: float
    closed: bool  # True: ended by idle timeout (END); False: cut at max length or flushed (OPEN)
    origins: dict[str, list[int]] = field(default_factory=dict)  # "topic/partition" -> [first, last] offset
    unseen_lines: dict[int, str] = field(default_factory=dict)  # position -> raw line of an unseen template


MAX_UNSEEN_KEPT = 5  # raw lines of unseen templates kept per sequence, for the alert's explanation


def _new(part: int, ts: float, through: dict[str, int] | None = None) -> dict:
    # "through": the last raw offset taken from each partition, kept across parts, so a replay
    # is recognised by the session itself when the table's record of applied offsets was lost.
    return {"part": part, "keys": [], "start": ts, "end": ts, "origins": {}, "unseen": {},
            "through": dict(through or {})}  # fmt: skip


def full_event(event: list) -> list:
    """[key, ts, watermark, origin, offset, raw line or None, send time in ms]: a keys message of an
    older worker may lack the last one or two."""
    return [*event, None, 0][:7] if len(event) == 5 else [*event, 0][:7]


def is_ended(value: dict) -> bool:
    """A session that closed, kept as the offsets it took until the record of applied offsets covers them."""
    return bool(value.get("ended"))


def insert_in_time_order(
    value: dict, key: int, ts: float, origin: str, offset: int, raw: str | None = None, sent_ms: int = 0
) -> None:
    """Adds a key at its place in event time: a session's lines may come through several raw
    partitions (or workers), each read at its own pace. Keys of the same time (logs stamped to the
    second share it often) are ordered by send time (the raw message's Kafka timestamp, in ms),
    offset and "topic/partition", then by arrival (the lines of one message), so the order does
    not depend on which partition was read first. (Send time first: a sticky partitioner fills one
    partition for a while, then the next. Offset before partition: a round robin fills them
    evenly.) Keeps the raw text of an unseen line at its position.

    The changelog writes a session whole at every change, so what each key adds is kept small:
    its time and its tie [send time, offset, index in "tie_origins"] are kept as differences from
    "base", [time, send time, offset] of the value's first key."""
    base = value.get("base")
    if base is None:
        base = _adopt(value, ts, sent_ms, offset)
    times, ties, names = value["times"], value["ties"], value["tie_origins"]
    index = _origin_index(names, origin)
    at, tie = ts - base[0], [sent_ms - base[1], offset - base[2], index]  # keeps any µs apart: one era
    if not times or at > times[-1]:  # the usual case: the latest key
        position = len(times)
    else:
        position = bisect.bisect_right(times, at)
        if position and times[position - 1] == at:  # after the keys of its time that sort before it
            first, order = bisect.bisect_left(times, at, 0, position), (tie[0], tie[1], origin)
            while position > first and _tie_order(ties[position - 1], names) > order:
                position -= 1
    times.insert(position, at)
    ties.insert(position, tie)
    value["keys"].insert(position, key)
    unseen = value.get("unseen")
    if unseen is None:
        unseen = value["unseen"] = {}
    if position < len(times) - 1 and unseen:  # the positions after it move up by one
        value["unseen"] = unseen = {str(int(p) + (int(p) >= position)): text for p, text in unseen.items()}
    if raw is not None and len(unseen) < MAX_UNSEEN_KEPT:
        unseen[str(position)] = raw


def _adopt(value: dict, ts: float, sent_ms: int, offset: int) -> list:
    """Sets the base of a new value, or of one written before times and ties were relative to it
    (absolute times, or none; ties as [send time, offset, name], or none): its keys keep their
    order, their ties unknown (before any known tie of their time)."""
    count = len(value["keys"])
    times = value.get("times")
    if times is None or len(times) != count:
        times = [value.get("start", ts)] * count
    base = value["base"] = [times[0] if count else ts, sent_ms, offset]
    value["times"] = [t - base[0] for t in times[:count]]
    value["ties"], value["tie_origins"] = [[0, 0, -1] for _ in range(count)], []
    return base


def _origin_index(names: list[str], origin: str) -> int:
    """The origin's index in a value's "tie_origins", added at the end when new."""
    try:
        return names.index(origin)  # one scan: a session mostly has one origin, seen before
    except ValueError:
        names.append(origin)
        return len(names) - 1


def _tie_order(tie: list, names: list[str]) -> tuple[int, int, str]:
    return tie[0], tie[1], names[tie[2]] if tie[2] >= 0 else ""  # by name: indices follow arrival


class SessionWindower:
    def __init__(self, idle_timeout: float, max_keys: int) -> None:
        if idle_timeout <= 0 or max_keys <= 0:
            raise ValueError("idle timeout and max keys must be positive")
        self.idle_timeout = idle_timeout
        self.max_keys = max_keys

    def add(
        self, state: MutableMapping[str, dict], session: str, key: int, ts: float, origin: str, offset: int,
        raw: str | None = None, through: dict[str, int] | None = None, sent_ms: int = 0,
    ) -> list[ClosedSequence]:  # fmt: skip
        """Adds one key at its place in time; returns the part it completed when max_keys was reached.
        `through`: the offsets a new session starts from (those its previous part took)."""
        return self.add_all(state, session, [[key, ts, -math.inf, origin, offset, raw, sent_ms]], through)

    def add_all(
        self, state: MutableMapping[str, dict], session: str, events: list[list], through: dict[str, int] | None = None
    ) -> list[ClosedSequence]:
        """Adds a session's key events ([key, ts, watermark, origin, offset, raw line or None, send time in ms]) in
        order: a session idle for the timeout at an event's watermark ends before the event joins
        (the event starts a new session), and max_keys cuts a part. Returns what closed. The state
        is read and written once per call, not per event (a Faust Table's access is not cheap)."""
        out: list[ClosedSequence] = []
        current = state.get(session)
        idle_timeout, max_keys = self.idle_timeout, self.max_keys
        cursor = None  # the value whose lists and base the locals below hold
        for event in events:  # not a starred unpacking: a list per key was a tenth of this loop
            key, ts, watermark, origin, offset, raw, sent_ms = event if len(event) == 7 else full_event(event)
            if current is not None and current["keys"] and watermark - current["end"] >= idle_timeout:
                through = current.get("through", through)
                out.append(self._close(session, current, closed=True))
                current = None
            if current is None:
                current = _new(0, ts, through)
            if cursor is not current and current.get("base") is not None:
                cursor = current
                keys, times, ties, names = current["keys"], current["times"], current["ties"], current["tie_origins"]
                base_time, base_sent, base_offset = current["base"]
                if current.get("unseen") is None:
                    current["unseen"] = {}
                origins, taken = current["origins"], current.setdefault("through", {})
            # The usual case, a key after every key of its session (in time, then tie): appended here;
            # any other through insert_in_time_order, which may rebind the value's lists.
            at = ts - base_time if cursor is current and times else None
            tie = (sent_ms - base_sent, offset - base_offset, origin) if at is not None else None
            if at is not None and (at > times[-1] or (at == times[-1] and _tie_order(ties[-1], names) <= tie)):
                index = _origin_index(names, origin)
                if raw is not None and len(current["unseen"]) < MAX_UNSEEN_KEPT:
                    current["unseen"][str(len(times))] = raw
                times.append(at)
                ties.append([tie[0], tie[1], index])
                keys.append(key)
            else:
                insert_in_time_order(current, key, ts, origin, offset, raw, sent_ms)
                cursor = None
                keys, origins, taken = current["keys"], current["origins"], current.setdefault("through", {})
            if len(keys) == 1:  # a part's times are its keys' (not the cut that began it)
                current["start"] = current["end"] = ts
            elif ts < current["start"]:
                current["start"] = ts
            elif ts > current["end"]:
                current["end"] = ts
            span = origins.get(origin)
            if span is None:
                origins[origin] = [offset, offset]
            elif offset < span[0]:
                span[0] = offset
            elif offset > span[1]:
                span[1] = offset
            if offset > taken.get(origin, -1):
                taken[origin] = offset
            if len(keys) >= max_keys:
                out.append(self._close(session, current, closed=False))
                current = _new(current["part"] + 1, ts, taken)
        if current is not None:
            state[session] = current  # assigned: a Faust Table records the change only on assignment
        return out

    def expire(self, state: MutableMapping[str, dict], watermark: float) -> list[ClosedSequence]:
        """Closes every session idle for the timeout at this event time."""
        closed = []
        for session in [s for s, v in state.items() if watermark - v["end"] >= self.idle_timeout]:
            value = state.pop(session)
            if value["keys"]:  # a part emptied by a max-length cut is dropped silently
                closed.append(self._close(session, value, closed=True))
        return closed

    def flush(self, state: MutableMapping[str, dict]) -> list[ClosedSequence]:
        """Emits every open session as still open (end of a replay)."""
        out = [self._close(s, state.pop(s), closed=False) for s in [s for s, v in state.items() if v["keys"]]]
        return out

    @staticmethod
    def _close(session: str, value: dict, closed: bool) -> ClosedSequence:
        return ClosedSequence(
            session, value["part"], list(value["keys"]), value["start"], value["end"], closed,
            {k: list(v) for k, v in value["origins"].items()},
            {int(k): v for k, v in value.get("unseen", {}).items()},
        )  # fmt: skip
