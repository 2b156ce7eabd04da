"""Kafka message values to log lines.

A value is a raw line (UTF-8 text), several lines separated by newlines (as shippers batch
them), a JSON object with the line and optional timestamp/source fields, or a JSON array of
lines or such objects. What cannot be decoded goes to the dead-letter topic with a reason."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

T = TypeVar("T")
LINE_FIELDS = ("line", "message", "log", "msg")
MAX_LINE_BYTES = 64 * 1024  # longer lines are cut here (and counted), never allowed to blow up memory


class RawLine(NamedTuple):  # a tuple: built for every line, several times cheaper than a dataclass
    text: str
    timestamp: float | None = None  # from the JSON envelope; else parsed from the line, else arrival time
    source: str | None = None
    truncated: bool = False  # cut at MAX_LINE_BYTES


@dataclass(frozen=True)
class Rejected:
    reason: str
    value: bytes


def _from_object(item: object) -> RawLine | None:
    if isinstance(item, str):
        return RawLine(item)
    if isinstance(item, dict):
        text = next((item[f] for f in LINE_FIELDS if isinstance(item.get(f), str)), None)
        if text is None:
            return None
        ts = item.get("timestamp", item.get("@timestamp"))
        timestamp = float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None
        if timestamp is not None and not math.isfinite(timestamp):  # JSON allows NaN and Infinity
            timestamp = None
        source = item.get("source", item.get("host"))
        return RawLine(text, timestamp, source if isinstance(source, str) else None)
    return None


def decode_value(value: bytes | None, value_format: str = "auto") -> tuple[list[RawLine], Rejected | None]:
    """Lines in the value, or why it was rejected. value_format: auto, text or json."""
    if not value:
        return [], Rejected("empty value", value or b"")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        return [], Rejected(f"not UTF-8: {error.reason} at byte {error.start}", value)
    if value_format == "json" or (value_format == "auto" and _looks_json(text)):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            if value_format == "json":
                return [], Rejected(f"invalid JSON: {error.msg}", value)
            parsed = None  # a text line that merely starts with a bracket
        if parsed is not None:
            items = parsed if isinstance(parsed, list) else [parsed]
            lines = [_from_object(item) for item in items]
            if not lines or any(line is None for line in lines):
                return [], Rejected("JSON of the wrong shape: expected a line, an object with 'line', or a list", value)
            return [_bounded(line) for line in lines if line.text.strip()], None
    if "\n" not in text:  # one line per message, the common case
        line = text.removesuffix("\r")
        if not line or line.isspace():
            return [], Rejected("no log line in the value", value)
        return [_bounded(RawLine(line))], None
    # "\n" only: str.splitlines would also cut at \x0b, \x1c, \x85, \u2028 ... inside a line
    lines = [RawLine(line.removesuffix("\r")) for line in text.split("\n") if line.strip()]
    if not lines:
        return [], Rejected("no log line in the value", value)
    return [_bounded(line) for line in lines], None


# First bytes of a value that decode_value reads as plain text, whatever follows: printable ASCII
# but space (so never blank) and, in "auto", but brackets (it might be JSON).
_PRINTABLE = bytes(range(0x21, 0x7F))
PLAIN_FIRST_BYTES = {"text": _PRINTABLE, "auto": _PRINTABLE.translate(None, b"{[")}


def plain_text_lines(value: bytes | None, first_bytes: bytes) -> list[str] | tuple[str] | None:
    """decode_value's lines of a plain text value, as strings, not yet cut at MAX_LINE_BYTES; None
    where the value may not be plain text (first byte not in `first_bytes`, not UTF-8): ask decode_value.
    The parse stage's path for nearly every message, without a RawLine per line."""
    if not value or value[0] not in first_bytes:
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\n" not in text:
        return (text.removesuffix("\r"),)
    return [line.removesuffix("\r") for line in text.split("\n") if line.strip()]


def _looks_json(text: str) -> bool:
    first = text[:1]
    return first in ("{", "[") or (first.isspace() and text.lstrip()[:1] in ("{", "["))


def _bounded(line: RawLine) -> RawLine:
    if len(line.text) <= MAX_LINE_BYTES:
        return line
    return RawLine(line.text[:MAX_LINE_BYTES], line.timestamp, line.source, truncated=True)


MAX_PART_BYTES = 256 * 1024  # raw bytes parsed into one set of keys messages (Kafka's limit: 1 MB)


def bounded_runs(items: list[T], size: Callable[[T], int], limit: int) -> list[list[T]]:
    """Consecutive runs of items whose sizes add up to at most `limit` (a bigger item alone), so a
    Kafka message built from one run stays under the broker's message size limit."""
    runs: list[list[T]] = []
    total = limit
    for item in items:
        if total + size(item) > limit:
            runs.append([])
            total = 0
        runs[-1].append(item)
        total += size(item)
    return runs
