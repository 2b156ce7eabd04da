"""Vocabulary for datasets that already name their events (event-id CSVs, DeepLog key files)."""

from __future__ import annotations

from collections.abc import Iterable

from logkeys.templates import TEMPLATES_FORMAT, UNSEEN, Template


class EventVocabulary:
    """Event ids seen in training, in first-seen order; anything else is UNSEEN."""

    def __init__(self, templates: list[Template]) -> None:
        self.templates = templates
        self._index = {t.event: i for i, t in enumerate(templates)}

    def __len__(self) -> int:
        return len(self.templates)

    @classmethod
    def build(cls, events: Iterable[str], texts: dict[str, str] | None = None) -> EventVocabulary:
        counts: dict[str, int] = {}
        for event in events:
            counts[event] = counts.get(event, 0) + 1
        texts = texts or {}
        return cls([Template(e, texts.get(e, e), n) for e, n in counts.items()])

    def match_content(self, content: str) -> int:
        return self._index.get(content, UNSEEN)

    def to_json(self) -> dict:
        return {
            "format": TEMPLATES_FORMAT,
            "kind": "events",
            "templates": [{"event": t.event, "template": t.text, "count": t.count} for t in self.templates],
        }

    @classmethod
    def from_json(cls, data: dict) -> EventVocabulary:
        if data.get("format") != TEMPLATES_FORMAT or data.get("kind") != "events":
            raise ValueError("not an event vocabulary of format " + TEMPLATES_FORMAT)
        return cls([Template(str(t["event"]), str(t["template"]), int(t.get("count", 0))) for t in data["templates"]])
