"""Parsing presets: how to split a raw line into header fields and content,
which variable parts to mask, and the drain3 settings that suit each log family."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache


@dataclass(frozen=True)
class Mask:
    pattern: str
    mask_with: str


@dataclass(frozen=True)
class ParserPreset:
    name: str
    # Named groups: content (required), and optionally timestamp fields, label, source.
    header: str | None
    masks: tuple[Mask, ...]
    sim_th: float = 0.5
    depth: int = 4
    max_children: int = 100
    extra_delimiters: tuple[str, ...] = ()
    # Header fields prepended to the content before mining (e.g. BGL's level).
    content_prefix_fields: tuple[str, ...] = ()
    timestamp_format: str | None = None
    timestamp_fields: tuple[str, ...] = ()


_IP = Mask(r"(?<![\w.])(\d{1,3}\.){3}\d{1,3}(:\d+)?(?![\w.])", "IP")
_HEX = Mask(r"(?<![\w])0x[0-9a-fA-F]+(?![\w])", "HEX")
_UUID = Mask(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID")
_PATH = Mask(r"(?<![\w/])(/[\w.\-$:]+)+/?", "PATH")
_NUM = Mask(r"(?<![\w.\-])[-+]?\d+(\.\d+)?(?![\w.])", "NUM")

HDFS = ParserPreset(
    name="hdfs",
    header=r"^(?P<date>\d{6})\s+(?P<time>\d{6})\s+(?P<pid>\d+)\s+(?P<level>[A-Z]+)\s+(?P<component>[^:\s]+):\s*(?P<content>.*)$",
    masks=(Mask(r"blk_-?\d+", "BLK"), _IP, _HEX, _PATH, _NUM),
    sim_th=0.5,
    depth=4,
    timestamp_format="%y%m%d %H%M%S",
    timestamp_fields=("date", "time"),
)

BGL = ParserPreset(
    name="bgl",
    header=(
        r"^(?P<label>\S+)\s+(?P<epoch>\d+)\s+(?P<day>\S+)\s+(?P<source>\S+)\s+(?P<ts>\S+)\s+"
        r"(?P<node2>\S+)\s+(?P<type>\S+)\s+(?P<component>\S+)\s+(?P<level>\S+)\s*(?P<content>.*)$"
    ),
    masks=(
        Mask(r"R\d+-M\d+(-[A-Z]\w*)*(-[A-Z]:J\d+-U\d+)?", "NODE"),
        _IP,
        _HEX,
        Mask(r"(?<![\w])[0-9a-fA-F]{8,}(?![\w])", "HEX"),
        _PATH,
        Mask(r"core\.\d+", "CORE"),
        _NUM,
    ),
    sim_th=0.5,
    depth=6,  # two more than usual: the prefixed component and level are shared by most lines
    extra_delimiters=(",",),
    content_prefix_fields=("component", "level"),
    timestamp_format="%Y-%m-%d-%H.%M.%S.%f",
    timestamp_fields=("ts",),
)

GENERIC = ParserPreset(
    name="generic",
    header=None,
    masks=(_UUID, _IP, _HEX, _PATH, _NUM),
    sim_th=0.4,
    depth=4,
)

PRESETS: dict[str, ParserPreset] = {p.name: p for p in (HDFS, BGL, GENERIC)}


def get_preset(name: str) -> ParserPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown parser preset {name!r}; choose one of {sorted(PRESETS)}") from None


def parse_timestamp(preset: ParserPreset, fields: dict[str, str]) -> float | None:
    """Seconds since the epoch (UTC) from the header fields, or None when absent or malformed."""
    if not preset.timestamp_format or not preset.timestamp_fields:
        return None
    try:
        texts = tuple([fields[f] for f in preset.timestamp_fields])
    except KeyError:
        return None
    return TimestampParser.for_format(preset.timestamp_format)(texts)


_UNPARSED = object()


class TimestampParser:
    """The timestamp fields' texts -> seconds since the epoch (UTC), or None when malformed.

    Whole seconds repeat from line to line, so their parse is cached (strptime costs ~10 µs)."""

    MAX_CACHED = 1 << 16

    def __init__(self, timestamp_format: str) -> None:
        self.fractional = timestamp_format.endswith(".%f")
        self.whole_format = timestamp_format[:-3] if self.fractional else timestamp_format
        self.cache: dict[str, float | None] = {}
        self.midnights: dict[tuple[str, str, str], float | None] = {}  # date fields' texts -> its start
        self.fixed_width, self.two_digit_year = _fixed_width_pattern(self.whole_format)

    @staticmethod
    @lru_cache(maxsize=16)
    def for_format(timestamp_format: str) -> TimestampParser:
        return TimestampParser(timestamp_format)

    def _parse_fixed_width(self, text: str) -> float | None:
        """strptime's answer for zero-padded fields at a tenth of its cost; None: ask strptime.

        Each field of strptime's pattern tries its two-digit form first, so where every field is
        two valid digits (four for %Y) it reads the same numbers. Midnight of each date is cached
        (None: no such date), so a new second costs a match and three ints."""
        digits = self.fixed_width.fullmatch(text) if self.fixed_width is not None else None
        if digits is None:
            return None
        year, month, day, hour, minute, second = digits.groups()
        try:
            midnight = self.midnights[year, month, day]
        except KeyError:
            midnight = self._midnight(int(year), int(month), int(day))
            if len(self.midnights) >= self.MAX_CACHED:
                self.midnights.clear()
            self.midnights[year, month, day] = midnight
        hour, minute, second = int(hour), int(minute), int(second)
        if midnight is None or hour > 23 or minute > 59 or second > 59:
            return None
        return midnight + (hour * 3600 + minute * 60 + second)

    def _midnight(self, year: int, month: int, day: int) -> float | None:
        if self.two_digit_year:
            year += 2000 if year < 69 else 1900  # strptime's pivot for %y
        try:
            return datetime(year, month, day, tzinfo=timezone.utc).timestamp()
        except ValueError:
            return None

    def __call__(self, texts: tuple[str | None, ...]) -> float | None:
        """The timestamp of the fields' texts; None where one is absent or they do not parse."""
        if None in texts:  # an optional header group that did not take part
            return None
        return self.parse(texts[0] if len(texts) == 1 else " ".join(texts))

    def parse(self, text: str) -> float | None:
        """The timestamp of the fields' texts joined by a space."""
        if self.fractional:
            text, _, fraction = text.rpartition(".")
            if not (fraction.isdigit() and fraction.isascii() and len(fraction) <= 6):
                return None
        whole = self.cache.get(text, _UNPARSED)
        if whole is _UNPARSED:  # a new second (a miss is common: an exception would cost more)
            whole = self._parse(text)
        if whole is None or not self.fractional:
            return whole
        return whole + int(fraction) / 10 ** len(fraction)

    def _parse(self, text: str) -> float | None:
        whole = self._parse_fixed_width(text)
        if whole is None:
            try:
                whole = datetime.strptime(text, self.whole_format).replace(tzinfo=timezone.utc).timestamp()
            except ValueError:
                whole = None
        if len(self.cache) >= self.MAX_CACHED:
            self.cache.clear()
        self.cache[text] = whole
        return whole


# ASCII digits: strptime reads other decimal digits in some fields only (its %S begins [0-5]).
_FIXED_WIDTH_FIELDS = {"%Y": r"([0-9]{4})", "%y": r"([0-9]{2})", "%m": r"([0-9]{2})", "%d": r"([0-9]{2})",
                       "%H": r"([0-9]{2})", "%M": r"([0-9]{2})", "%S": r"([0-9]{2})"}  # fmt: skip


def _fixed_width_pattern(timestamp_format: str) -> tuple[re.Pattern | None, bool]:
    """A pattern for the zero-padded form of a format made of year, month, day, hour, minute and
    second in that order with literal separators; None for any other format (strptime parses those)."""
    fields = re.findall(r"%.", timestamp_format)
    if fields not in (["%Y", "%m", "%d", "%H", "%M", "%S"], ["%y", "%m", "%d", "%H", "%M", "%S"]):
        return None, False
    pieces = re.split(r"(%.)", timestamp_format)
    if any(re.search(r"[%\d]", piece) for piece in pieces[::2]):
        return None, False
    # Literal text as strptime matches it: any whitespace run stands for one or more whitespace characters.
    literal = [r"\s+".join(re.escape(part) for part in re.split(r"\s+", piece)) for piece in pieces[::2]]
    pattern = "".join(_FIXED_WIDTH_FIELDS[p] if i % 2 else literal[i // 2] for i, p in enumerate(pieces))
    return re.compile(pattern), fields[0] == "%y"
