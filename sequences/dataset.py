"""The in-memory shape every reader produces: records (one per log line or event) and sequences over them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SequenceSpec:
    id: str
    records: list[int]  # indices into Dataset.contents, in log order
    start: float | None = None
    end: float | None = None
    label: bool | None = None  # True = anomalous, None = unknown
    split: str | None = None  # a split named by the file itself (sequences-csv)
    closed: bool = True  # known to have ended (idle timeout passed, window end passed)


@dataclass
class Dataset:
    format: str
    contents: list[str]  # template text for raw formats, event id for event formats
    sequences: list[SequenceSpec]
    vocabulary_kind: str  # "drain" (mine templates from contents) or "events" (contents are ids)
    preset: str = "generic"
    counts: dict[str, int] = field(default_factory=dict)  # what the reader skipped or repaired
