"""Parsing presets: how to split a raw line into header fields and content,
which variable parts to mask, and the drain3 settings that suit each log family."""

from __future__ import annotations

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
        text = " ".join([fields[f] for f in preset.timestamp_fields])
    except KeyError:
        return None
    if preset.timestamp_format.endswith(".%f"):  # the whole seconds repeat from line to line: cached
        seconds, _, fraction = text.rpartition(".")
        if not (fraction.isdigit() and fraction.isascii() and len(fraction) <= 6):
            return None
        whole = _epoch_seconds(preset.timestamp_format[:-3], seconds)
        return None if whole is None else whole + int(fraction) / 10 ** len(fraction)
    return _epoch_seconds(preset.timestamp_format, text)


@lru_cache(maxsize=1 << 16)
def _epoch_seconds(timestamp_format: str, text: str) -> float | None:
    try:
        return datetime.strptime(text, timestamp_format).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
