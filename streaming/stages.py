"""The parse and window stages as plain objects; the Faust agents in agents/ only move their
inputs and outputs between topics.

Parse: a batch of raw messages -> key events grouped by session, each event carrying the
event-time watermark at its line, so the window stage decides exactly as the batch reader does.
Window: key events -> closed sequences, state in a mapping (a changelogged Faust Table)."""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import MutableMapping
from dataclasses import dataclass

from logkeys.templates import TemplateSet
from models.vocab import END_KEY, OPEN_KEY
from sequences.windows import window_id, window_starts
from streaming.key_translation import KeyTranslator
from streaming.line_reader import GLOBAL_SOURCE, LineReader, MessageRead
from streaming.messages import Rejected
from streaming.windows import ClosedSequence, SessionWindower, full_event, insert_in_time_order, is_ended


@dataclass
class RawMessage:
    value: bytes | None
    topic: str
    partition: int
    offset: int
    arrival: float  # the record's Kafka timestamp (s): orders lines of one time; a line's time if it has none


@dataclass
class ParseResult:
    # session -> [[key, ts, watermark (None: not started), origin, offset, raw line if unseen, send time in ms], ...]
    events: dict[str, list[list]]
    rejected: list[tuple[RawMessage, Rejected]]
    lines: int
    unseen: int
    without_session: int
    watermark: float
    truncated: int = 0  # lines cut at MAX_LINE_BYTES
    distrusted_timestamps: int = 0  # lines stamped too far ahead of the wall clock to move event time
    undated: int = 0  # lines whose timestamp did not parse, placed at the current event time


READER_SILENCE = 5.0  # s: a worker that sent nothing for this long no longer holds event time back
FULL_SCAN_INTERVAL = 5.0  # s (wall clock) between expiry scans that read every open session of a partition
INDEX_COMPACT_AT = 1_000_000  # expiry index entries of a partition that make it drop its superseded ones
MAX_FUTURE_SKEW = 3600.0  # seconds a line's timestamp may lead the wall clock before it is distrusted


class ParseStage:
    """Groups key events by session id (session models) or by source (window models)."""

    def __init__(
        self, templates: TemplateSet, session_regex: str | None, value_format: str = "auto",
        window_by_source: bool = False,
    ) -> None:  # fmt: skip
        self.reader = LineReader(templates, session_regex, value_format, window_by_source)
        self.watermark = -math.inf
        self.origin_time: dict[str, float] = {}  # raw partition -> the latest event time read from it
        self.expects_timestamps = templates.preset.timestamp_format is not None

    def advance(self, origin: str, ts: float, unread: set[str] | None) -> None:
        """Event time moves with the slowest raw partition that still has lines unread: reading a
        backlog, one partition's lines may be far ahead of another's, and must not end the other's
        sessions. Once every partition is caught up, it moves with the newest line."""
        if unread is None:  # one ordered input
            self.watermark = max(self.watermark, ts)
            return
        if ts <= self.origin_time.get(origin, -math.inf):
            return  # nothing moved (lines of one second are common); a change of `unread` settles itself
        self.origin_time[origin] = ts
        if origin in unread and len(unread) == 1:  # the usual case, once per new second: no other to wait for
            self.watermark = max(self.watermark, ts)
        elif origin in unread or not unread:
            self._settle(unread)

    def _settle(self, unread: set[str]) -> None:
        behind = [self.origin_time.get(o, -math.inf) for o in unread]
        newest = min(behind) if behind else max(self.origin_time.values(), default=-math.inf)
        self.watermark = max(self.watermark, newest)

    def process(
        self, messages: list[RawMessage], waiting: set[str] | None = None, read: list[MessageRead] | None = None
    ) -> ParseResult:
        """`waiting`: the raw partitions ("topic/partition") with records still unread after this
        batch; None when the messages are the whole input in order. `read`: the messages' lines as
        `LineReader.read` gives them, when they were read elsewhere (in `ParseProcesses`)."""
        if read is None:
            read = self.reader.read([m.value for m in messages])
        events: dict[str, list[list]] = {}
        rejected: list[tuple[RawMessage, Rejected]] = []
        lines = unseen = without_session = truncated = distrusted_timestamps = undated = 0
        origins = origin_names(messages)
        last_message_of = {origin: i for i, origin in enumerate(origins)}
        # Partitions with lines still to come: after this batch, or later in it.
        unread = None if waiting is None else set(waiting) | set(last_message_of)
        add_events = events.setdefault
        expects_timestamps = self.expects_timestamps
        watermark = finite_or_none(self.watermark)  # as events carry it; refreshed when event time moves
        for index, (message, origin, (problem, message_lines)) in enumerate(zip(messages, origins, read, strict=True)):
            if problem is not None:
                rejected.append((message, problem))
            arrival, offset = message.arrival, message.offset
            sent_ms = round(arrival * 1000)  # the record's own timestamp again: an int packs smaller
            future = arrival + MAX_FUTURE_SKEW
            latest = self.origin_time.get(origin, -math.inf)  # `advance` does nothing for a line not past it
            lines += len(message_lines)
            for key, ts, ids, unseen_text, was_truncated in message_lines:
                if ts is None and expects_timestamps and watermark is not None:
                    # The format has times but this line's does not parse: it joins at the current
                    # event time. (Its arrival time may be years ahead of a replayed log's.)
                    ts = watermark
                    undated += 1
                elif ts is None:
                    ts = arrival
                elif ts > future:
                    # One line stamped in the future would close every open session at once: it
                    # joins its session at the current event time instead, and is counted.
                    ts = watermark if watermark is not None else arrival
                    distrusted_timestamps += 1
                if ts > latest or unread is None:
                    self.advance(origin, ts, unread)
                    latest = max(latest, ts)
                    watermark = finite_or_none(self.watermark)
                if was_truncated:
                    truncated += 1
                if key < 0:
                    unseen += 1
                if not ids:
                    without_session += 1
                for session in ids:
                    add_events(session, []).append([key, ts, watermark, origin, offset, unseen_text, sent_ms])
            if unread is not None and last_message_of[origin] == index and origin not in waiting:
                unread.discard(origin)  # its last line in this batch, and none after it
                self._settle(unread)
                watermark = finite_or_none(self.watermark)
        return ParseResult(
            events, rejected, lines, unseen, without_session, self.watermark, truncated, distrusted_timestamps, undated
        )


class WindowStage:
    """Sessions per partition of the keys topic; the table values remember their partition so
    expiry touches only the partition whose event is being processed (changelog consistency).

    Delivery is at least once: after a crash or rebalance, raw and key messages come again. A
    per-partition record of the highest raw offset applied (kept in the same table) makes the
    replay a no-op, so a session never counts a line twice."""

    def __init__(self, idle_timeout: float, max_keys: int, translator: KeyTranslator | None = None) -> None:
        self.windower = SessionWindower(idle_timeout, max_keys)
        self.idle_timeout = idle_timeout
        self.watermark: dict[int, float] = {}
        self.translator = translator
        # keys partition -> raw partition -> (event time its reader reported, when): several workers
        # parse, each at its own pace, and event time here must wait for the slowest of them.
        self.reported: dict[int, dict[str, tuple[float, float]]] = {}
        self.clock = time.time  # for messages that carry no send time
        # Expiry index: per partition a heap of (end, session) for every write this worker made. The
        # table stays the truth (an entry counts only while the session still ends there); sessions
        # the table got another way (restored after a rebalance) are found by a full scan, made
        # at a partition's first expiry and every FULL_SCAN_INTERVAL after it.
        self.ends: dict[int, list[tuple[float, str]]] = {}
        self.full_scan_at: dict[int, float] = {}
        self.compacted_size: dict[int, int] = {}
        self.monotonic = time.monotonic

    def others_watermark(
        self, partition: int, origins: list[str], watermark: float | None, sent_at: float | None = None,
        inputs: list[str] | None = None,
    ) -> float:  # fmt: skip
        """Records the event time the reader of `origins` reports; returns the lowest one that readers of
        other raw partitions reported within READER_SILENCE s (inf when there are none). `inputs`:
        every raw partition the sender knows of; one that no reader has reported yet holds event time
        back as if its reader had reported no time at all, from now until READER_SILENCE passes.
        Workers start together, and without this the first to report would set event time alone.

        Silence is measured in the messages' send times, not in when they are read here: a window
        that lags behind its keys topic reads a run of one reader's messages in less or more time
        than they took to send, and a replay after a crash must decide as the first reading did."""
        now = sent_at if sent_at is not None else self.clock()
        reported = self.reported.setdefault(partition, {})
        for origin in inputs or ():
            reported.setdefault(origin, (-math.inf, now))
        for origin in origins:
            reported[origin] = (watermark if watermark is not None else -math.inf, now)
        others = [w for o, (w, when) in reported.items() if o not in origins and now - when < READER_SILENCE]
        return min(others, default=math.inf)

    @property
    def vocabulary(self) -> str | None:
        return self.translator.current if self.translator else None

    def stored(self, state: MutableMapping[str, dict], partition: int) -> float:
        """The watermark last recorded in the table for this partition (by this worker or a previous owner)."""
        recorded = (state.get(self.applied_key(partition)) or {}).get("watermark")
        return recorded if recorded is not None else -math.inf

    def upgrade(self, value: dict) -> dict:
        """A table value in the current model's keys (it may hold a previous model's)."""
        if self.translator is None or value.get("vocab") in (None, self.translator.current):
            return value
        translate, old = self.translator.translate, value["vocab"]
        if "windows" in value:  # a copy: the stored value changes only when it is written back
            windows = {k: {**w, "keys": translate(w["keys"], old)} for k, w in value["windows"].items()}
            return {**value, "windows": windows, "vocab": self.translator.current}
        return {**value, "keys": translate(value["keys"], old), "vocab": self.translator.current}

    @staticmethod
    def applied_key(partition: int) -> str:
        return f"\x00applied/{partition}"

    def on_message(
        self, state: MutableMapping[str, dict], partition: int, sessions: dict[str, list[list]],
        vocabulary: str | None = None, origins: list[str] | None = None, reader_watermark: float | None = None,
        sent_at: float | None = None, inputs: list[str] | None = None,
    ) -> tuple[list[ClosedSequence], int]:  # fmt: skip
        """Applies one keys-topic message (its keys from `vocabulary`); returns the closed sequences and
        how many events were replays. Each session's value is written back once per message: every
        write is a changelog record. `origins`, `reader_watermark`: the raw partitions the sending
        worker reads, and the event time it has reached; `sent_at`: when that worker sent the message
        (the Kafka record's timestamp); `inputs`: every raw partition that worker knows of.

        The writes are not atomic: a worker killed between them leaves some in the changelog and
        not others. So each session also remembers the offsets it took ("through"), and a session
        that closes leaves that record behind (ended) until the record of applied offsets, written
        after it, covers it: a replay is then recognised whichever of the writes survived."""
        others = (self.others_watermark(partition, origins, reader_watermark, sent_at, inputs)
                  if origins else math.inf)  # fmt: skip
        applied = dict((state.get(self.applied_key(partition)) or {}).get("raw", {}))
        newest = dict(applied)
        closed: list[ClosedSequence] = []
        replayed = 0
        translate = self.translator is not None and vocabulary not in (None, self.translator.current)
        for session, events in sessions.items():
            stored = state.get(session)
            taken = stored.get("through") if stored is not None else None
            floor = applied if not taken else {o: max(applied.get(o, -1), taken.get(o, -1)) for o in {*applied, *taken}}
            fresh = [e for e in events if e[4] > floor.get(e[3], -1)]
            replayed += len(events) - len(fresh)
            if not fresh:
                continue
            undated = False
            for event in fresh:
                if event[4] > newest.get(event[3], -1):
                    newest[event[3]] = event[4]
                undated = undated or event[2] is None
            if translate:
                keys = self.translator.translate([e[0] for e in fresh], vocabulary)
                fresh = [[key, *event[1:]] for key, event in zip(keys, fresh)]
            if others < math.inf or undated:
                # No further than the slowest other reader; None: event time before any line
                # (strict JSON has no infinities).
                fresh = [[*e[:2], min(-math.inf if e[2] is None else e[2], others), *e[3:]] for e in fresh]
            local: dict[str, dict] = {}
            if stored is not None and not is_ended(stored):
                local[session] = self.upgrade(stored)
            closed.extend(self.on_events(local, partition, session, fresh, taken))
            if session in local:
                value = local[session]
                value["partition"], value["vocab"] = partition, self.vocabulary
                state[session] = value
                self.index(partition, session, value)
            else:
                through = dict(taken or {})
                for event in fresh:
                    through[event[3]] = max(through.get(event[3], -1), event[4])
                state[session] = {"ended": True, "through": through, "partition": partition}
        if newest != applied:  # the event-time watermark goes with it, so a new owner resumes from it
            watermark = finite_or_none(self.watermark.get(partition, -math.inf))
            state[self.applied_key(partition)] = {"raw": newest, "watermark": watermark}
        return closed, replayed

    def on_events(
        self, state: MutableMapping[str, dict], partition: int, session: str, events: list[list],
        through: dict[str, int] | None = None,
    ) -> list[ClosedSequence]:  # fmt: skip
        latest = max([event[2] for event in events], default=-math.inf)
        self.watermark[partition] = max(self.watermark.get(partition, -math.inf), latest)
        return self.windower.add_all(state, session, events, through)

    def _sessions_of(self, state: MutableMapping[str, dict], partition: int) -> dict[str, dict]:
        """The partition's open sessions; ended records that the applied offsets cover are deleted."""
        applied = (state.get(self.applied_key(partition)) or {}).get("raw", {})
        mine = {}
        for session, value in list(state.items()):
            if value.get("partition") != partition:
                continue
            if not is_ended(value):
                mine[session] = self.upgrade(value)
            elif all(offset <= applied.get(origin, -1) for origin, offset in value["through"].items()):
                del state[session]
        return mine

    def index(self, partition: int, session: str, value: dict) -> None:
        heap = self.ends.setdefault(partition, [])
        heapq.heappush(heap, (value["end"], session))
        if len(heap) >= max(INDEX_COMPACT_AT, 2 * self.compacted_size.get(partition, 0)):
            # Event time stood still through many writes: keep one entry per session.
            latest: dict[str, float] = {}
            for end, name in heap:
                latest[name] = max(end, latest.get(name, -math.inf))  # a session's end only grows
            heap[:] = [(end, name) for name, end in latest.items()]
            heapq.heapify(heap)
            self.compacted_size[partition] = len(heap)

    def _due(self, state: MutableMapping[str, dict], partition: int, watermark: float) -> dict[str, dict]:
        """The partition's sessions idle for the timeout, from the index: O(due), not O(open)."""
        heap, due = self.ends.setdefault(partition, []), {}
        while heap and watermark - heap[0][0] >= self.idle_timeout:
            end, session = heapq.heappop(heap)
            value = state.get(session)
            if (
                value is not None
                and not is_ended(value)
                and value.get("partition") == partition
                and value["end"] == end
            ):
                due[session] = self.upgrade(value)
        return due

    def expire(self, state: MutableMapping[str, dict], partition: int) -> list[ClosedSequence]:
        watermark = self.watermark.get(partition, -math.inf)
        now = self.monotonic()
        if now - self.full_scan_at.get(partition, -math.inf) >= FULL_SCAN_INTERVAL:
            self.full_scan_at[partition] = now
            candidates = self._sessions_of(state, partition)
            self.ends[partition] = [(v["end"], s) for s, v in candidates.items()]
            heapq.heapify(self.ends[partition])
        else:
            candidates = self._due(state, partition, watermark)
        closed = self.windower.expire(candidates, watermark)
        for sequence in closed:
            state.pop(sequence.session, None)
        return closed

    def flush(
        self, state: MutableMapping[str, dict], partition: int, watermark: float, quiet: set[str] | None = None
    ) -> list[ClosedSequence]:
        """The input went quiet: sessions idle for the timeout have ended, the rest may continue.
        `quiet`: the raw partitions ("topic/partition") that went quiet; a session that also has
        lines from another (still flowing) partition stays open. None: all of them (a replay's end)."""
        self.watermark[partition] = max(
            self.watermark.get(partition, -math.inf), watermark, self.stored(state, partition)
        )
        out = self.expire(state, partition)
        mine = {
            s: v for s, v in self._sessions_of(state, partition).items() if fed_only_by(v.get("origins", {}), quiet)
        }
        for sequence in self.windower.flush(mine):
            state.pop(sequence.session, None)
            out.append(sequence)
        return out


def origin_names(messages: list[RawMessage]) -> list[str]:
    """ "topic/partition" of each message; a batch mostly holds runs of one partition's messages."""
    names: list[str] = []
    topic, partition, name = None, None, ""
    for message in messages:
        if message.partition != partition or message.topic != topic:
            topic, partition = message.topic, message.partition
            name = f"{topic}/{partition}"
        names.append(name)
    return names


def finite_or_none(value: float) -> float | None:
    """Messages and table values are strict JSON (orjson, if installed, would write an infinity as null)."""
    return value if math.isfinite(value) else None


def closed_before(value: dict) -> float:
    """Where a source's closed windows end (None or absent: none closed yet)."""
    recorded = value.get("closed_before")
    return -math.inf if recorded is None else recorded


def fed_only_by(origins: dict, quiet: set[str] | None) -> bool:
    return quiet is None or set(origins) <= quiet


def keys_for_scoring(sequence: ClosedSequence) -> list[int]:
    return [*sequence.keys, END_KEY if sequence.closed else OPEN_KEY]


def sequence_to_json(sequence: ClosedSequence) -> dict:
    return {
        "session": sequence.session, "part": sequence.part, "keys": sequence.keys, "start": sequence.start,
        "end": sequence.end, "closed": sequence.closed, "origins": sequence.origins,
        "unseen_lines": {str(p): text for p, text in sequence.unseen_lines.items()},
    }  # fmt: skip


def sequence_from_json(data: dict) -> ClosedSequence:
    return ClosedSequence(
        str(data["session"]), int(data["part"]), [int(k) for k in data["keys"]], float(data["start"]),
        float(data["end"]), bool(data["closed"]), {str(k): [int(v[0]), int(v[1])] for k, v in data["origins"].items()},
        {int(p): str(text) for p, text in data.get("unseen_lines", {}).items()},
    )  # fmt: skip


class TimeWindowStage(WindowStage):
    """Sliding time windows per source, the streaming twin of sequences/windows.py: a line joins
    every window [k*step, k*step + size) holding its timestamp; a window closes (END) once the
    watermark reaches its end, and a flush emits the rest as still open. Lines older than a
    closed window are counted as late and left out."""

    def __init__(self, size: float, step: float, translator: KeyTranslator | None = None) -> None:
        super().__init__(idle_timeout=size, max_keys=1, translator=translator)
        self.size, self.step = size, step
        self.late = 0

    def index(self, partition: int, session: str, value: dict) -> None:
        pass  # one value per source, each holding its windows: expire reads them all

    def on_events(
        self, state: MutableMapping[str, dict], partition: int, source: str, events: list[list],
        through: dict[str, int] | None = None,
    ) -> list[ClosedSequence]:  # fmt: skip
        value = self.upgrade(state.get(source) or {"windows": {}, "closed_before": None})
        value["vocab"] = self.vocabulary
        windows = value["windows"]
        taken = value.setdefault("through", {})
        for event in events:
            key, ts, watermark, origin, offset, raw, sent_ms = event if len(event) == 7 else full_event(event)
            self.watermark[partition] = max(self.watermark.get(partition, -math.inf), watermark)
            taken[origin] = max(taken.get(origin, -1), offset)
            starts = [
                k for k in window_starts(ts, self.size, self.step) if k * self.step + self.size > closed_before(value)
            ]
            self.late += not starts
            for k in starts:
                window = windows.setdefault(str(k), {"keys": [], "origins": {}, "unseen": {}})
                insert_in_time_order(window, key, ts, origin, offset, raw, sent_ms)
                span = window["origins"].setdefault(origin, [offset, offset])
                span[0], span[1] = min(span[0], offset), max(span[1], offset)
        closed = self._close(source, value, self.watermark[partition], everything=False)
        state[source] = value
        return closed

    def _close(self, source: str, value: dict, watermark: float, everything: bool) -> list[ClosedSequence]:
        out = []
        for k in sorted(value["windows"], key=int):
            start = int(k) * self.step
            ended = start + self.size <= watermark
            if not (ended or everything):
                continue
            window = value["windows"].pop(k)
            if ended:
                value["closed_before"] = max(closed_before(value), start + self.size)
            name = window_id("" if source == GLOBAL_SOURCE else source, start)
            unseen = {int(p): text for p, text in window.get("unseen", {}).items()}
            out.append(
                ClosedSequence(name, 0, window["keys"], start, start + self.size, ended, window["origins"], unseen)
            )
        return out

    def expire(self, state: MutableMapping[str, dict], partition: int) -> list[ClosedSequence]:
        watermark = self.watermark.get(partition, -math.inf)
        out = []
        for source in [s for s, v in state.items() if v.get("partition") == partition and "windows" in v]:
            value = self.upgrade(state[source])
            closed = self._close(source, value, watermark, everything=False)
            if closed:
                state[source] = value
                out.extend(closed)
        return out

    def flush(
        self, state: MutableMapping[str, dict], partition: int, watermark: float, quiet: set[str] | None = None
    ) -> list[ClosedSequence]:
        self.watermark[partition] = max(
            self.watermark.get(partition, -math.inf), watermark, self.stored(state, partition)
        )
        out = []
        for source in [s for s, v in state.items() if v.get("partition") == partition and "windows" in v]:
            if not all(fed_only_by(w.get("origins", {}), quiet) for w in state[source]["windows"].values()):
                continue  # lines of this source still flow in through another partition
            value = self.upgrade(state[source])
            out.extend(self._close(source, value, self.watermark[partition], everything=True))
            state[source] = value
        return out
