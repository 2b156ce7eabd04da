"""Readers for the log formats the project trains and evaluates on.

raw text:  hdfs (sessions by block id), bgl (label in the first field, time windows), generic
events:    bgl-structured (label,time,event_id), deeplog (a session of 1-based keys per line),
           sequences-csv (BlockId,Label,Split,EventSequence)
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

from logkeys.presets import get_preset, parse_timestamp
from logkeys.templates import LineSplitter
from sequences.dataset import Dataset, SequenceSpec
from sequences.sessions import HDFS_SESSION_REGEX, group_by_session, mark_open_sessions, session_ids
from sequences.windows import fill_missing_timestamps, group_by_window

FORMATS = ("hdfs", "bgl", "bgl-structured", "deeplog", "sequences-csv", "generic")
RAW_FORMATS = ("hdfs", "bgl", "generic")
DEFAULT_PRESET = {"hdfs": "hdfs", "bgl": "bgl", "generic": "generic"}
DEFAULT_GROUPING = {"hdfs": "session", "bgl": "window", "bgl-structured": "window", "generic": "session"}
NORMAL_LABELS = {"normal", "0", "-", "false", "no"}


@dataclass
class ReadOptions:
    format: str
    preset: str | None = None
    grouping: str | None = None  # "session" or "window"
    session_regex: str = HDFS_SESSION_REGEX
    window_size: float = 300.0
    window_step: float = 60.0
    window_by_source: bool = False
    session_idle_timeout: float = 60.0  # seconds without a record after which a session has ended
    labels: Path | None = None
    label_all: bool | None = None  # every sequence is anomalous (True) or normal (False)

    def grouping_settings(self) -> dict:
        """What a model must remember to group its input the same way later (not the labels)."""
        return {k: v for k, v in asdict(self).items() if k not in ("labels", "label_all")}

    @classmethod
    def from_settings(cls, settings: dict, **overrides) -> ReadOptions:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in settings.items() if k in known}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def resolved_grouping(self) -> str:
        return self.grouping or DEFAULT_GROUPING.get(self.format, "session")

    def resolved_preset(self) -> str:
        return self.preset or DEFAULT_PRESET.get(self.format, "generic")


def parse_label(text: str) -> bool:
    return text.strip().lower() not in NORMAL_LABELS


def read_labels(path: Path) -> dict[str, bool]:
    """A CSV whose first column is the sequence id and second the label (Normal/Anomaly or 0/1)."""
    with open(path, newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        labels = {row[0]: parse_label(row[1]) for row in rows if len(row) >= 2}
    if header and len(header) >= 2 and header[0] and header[1].strip().lower() not in ("label", "labels"):
        labels.setdefault(header[0], parse_label(header[1]))  # the file had no header row
    return labels


def read_dataset(path: Path, options: ReadOptions) -> Dataset:
    if options.format not in FORMATS:
        raise ValueError(f"unknown format {options.format!r}; choose one of {', '.join(FORMATS)}")
    if not Path(path).exists():
        raise FileNotFoundError(f"input file not found: {path}")
    reader = {
        "bgl-structured": _read_bgl_structured,
        "deeplog": _read_deeplog,
        "sequences-csv": _read_sequences_csv,
    }.get(options.format, _read_raw)
    dataset = reader(Path(path), options)
    _apply_labels(dataset, options)
    return dataset


def _apply_labels(dataset: Dataset, options: ReadOptions) -> None:
    if options.labels is not None:
        labels = read_labels(options.labels)
        unlabelled = 0
        for spec in dataset.sequences:
            spec.label = labels.get(spec.id)
            unlabelled += spec.label is None
        dataset.counts["sequences_without_label"] = unlabelled
    if options.label_all is not None:
        for spec in dataset.sequences:
            spec.label = options.label_all


def _group(
    options: ReadOptions,
    lines_or_ids: list,
    timestamps: list[float | None],
    line_labels: list[bool] | None,
    sources: list[str] | None,
    counts: dict[str, int],
) -> list[SequenceSpec]:
    if options.resolved_grouping() == "session":
        pattern = re.compile(options.session_regex)
        ids = [session_ids(line, pattern) for line in lines_or_ids]
        specs, without_id = group_by_session(ids, timestamps, options.session_idle_timeout)
        counts["records_without_session_id"] = without_id
        known = [t for t in timestamps if t is not None]
        counts["sessions_still_open_at_end"] = mark_open_sessions(
            specs, options.session_idle_timeout, max(known) if known else None
        )
    else:
        filled, repaired = fill_missing_timestamps(timestamps)
        counts["records_without_timestamp"] = repaired
        specs = group_by_window(
            filled, options.window_size, options.window_step, sources if options.window_by_source else None
        )
        counts["windows_still_open_at_end"] = sum(1 for s in specs if not s.closed)
    if line_labels is not None:
        for spec in specs:
            spec.label = any(line_labels[i] for i in spec.records)
    return specs


def log_lines(path: Path) -> list[str]:
    """A log file's lines, cut at "\n" only, as Kafka shippers cut them (str.splitlines would also
    cut at \x0b, \x1c, \x85, \u2028 ... inside a line)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")] if text else []


def _read_raw(path: Path, options: ReadOptions) -> Dataset:
    preset = get_preset(options.resolved_preset())
    splitter = LineSplitter(preset)
    lines = log_lines(path)
    contents: list[str] = []
    timestamps: list[float | None] = []
    sources: list[str] = []
    line_labels: list[bool] = []
    has_labels = False
    for line in lines:
        content, fields = splitter.split(line)
        contents.append(content)
        timestamps.append(parse_timestamp(preset, fields))
        sources.append(fields.get("source", ""))
        if "label" in fields:
            has_labels = True
        line_labels.append(parse_label(fields.get("label", "-")))
    counts: dict[str, int] = {"records": len(lines)}
    specs = _group(options, lines, timestamps, line_labels if has_labels else None, sources, counts)
    return Dataset(options.format, contents, specs, "drain", preset.name, counts)


def _parse_bgl_time(text: str) -> float | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d-%H.%M.%S.%f").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def _read_bgl_structured(path: Path, options: ReadOptions) -> Dataset:
    contents: list[str] = []
    timestamps: list[float | None] = []
    line_labels: list[bool] = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            contents.append(row["event_id"])
            timestamps.append(_parse_bgl_time(row["time"]))
            line_labels.append(parse_label(row["label"]))
    counts: dict[str, int] = {"records": len(contents)}
    if options.resolved_grouping() == "session":
        raise ValueError("bgl-structured has no session ids; use window grouping")
    specs = _group(options, contents, timestamps, line_labels, None, counts)
    return Dataset(options.format, contents, specs, "events", "bgl", counts)


def _read_deeplog(path: Path, options: ReadOptions) -> Dataset:
    contents: list[str] = []
    specs: list[SequenceSpec] = []
    for number, line in enumerate(path.read_text().splitlines()):
        keys = line.split()
        start = len(contents)
        contents.extend(keys)
        specs.append(SequenceSpec(f"{path.name}:{number + 1}", list(range(start, len(contents)))))
    return Dataset(options.format, contents, specs, "events", "hdfs", {"records": len(contents)})


def _read_sequences_csv(path: Path, options: ReadOptions) -> Dataset:
    contents: list[str] = []
    specs: list[SequenceSpec] = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            keys = row["EventSequence"].split()
            start = len(contents)
            contents.extend(keys)
            label = parse_label(row["Label"]) if row.get("Label") not in (None, "") else None
            specs.append(
                SequenceSpec(row["BlockId"], list(range(start, len(contents))), label=label, split=row.get("Split"))
            )
    return Dataset(options.format, contents, specs, "events", "hdfs", {"records": len(contents)})
