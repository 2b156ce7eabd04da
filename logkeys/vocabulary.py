"""Loads either kind of key vocabulary from its plain-JSON form."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Protocol

from logkeys.events import EventVocabulary
from logkeys.templates import Template, TemplateSet


class Vocabulary(Protocol):
    templates: list[Template]

    def __len__(self) -> int: ...

    def match_content(self, content: str) -> int: ...

    def to_json(self) -> dict: ...


def vocabulary_from_json(data: dict) -> Vocabulary:
    kind = data.get("kind")
    if kind == "drain":
        return TemplateSet.from_json(data)
    if kind == "events":
        return EventVocabulary.from_json(data)
    raise ValueError(f"unknown vocabulary kind {kind!r}")


def read_template_texts(path: Path) -> dict[str, str]:
    """EventId,EventTemplate CSV (LogHub / deeploglizer) to a dict."""
    with open(path, newline="") as handle:
        return {row["EventId"]: row["EventTemplate"] for row in csv.DictReader(handle)}
