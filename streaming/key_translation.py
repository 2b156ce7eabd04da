"""Log keys across a model rollout.

Open sessions (in the table) and messages in flight on the internal topics hold log keys: indices
into the template list of the model that parsed them. Each carries that list's vocabulary id, so
a worker translates keys of another model it was told about (LOGBERT_OTHER_MODEL_DIRS: the one
being replaced, or, on the old workers, the one coming in) through the template text instead
of reading them as its own. Nothing already open is lost."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from logkeys.templates import TemplateSet
from models.vocab import UNSEEN_KEY

log = logging.getLogger("logbert.worker")


def vocabulary_id(templates: TemplateSet) -> str:
    return hashlib.sha256("\n".join(t.text for t in templates.templates).encode()).hexdigest()[:12]


class KeyTranslator:
    def __init__(self, current: TemplateSet, others: Sequence[TemplateSet] = ()) -> None:
        self.current = vocabulary_id(current)
        exact = {t.text: index for index, t in enumerate(current.templates)}
        # An old template text may have been generalised by the new mining: its wildcards then match.
        self.maps = {
            vocabulary_id(old): [exact.get(t.text, current.match_masked(t.text)) for t in old.templates]
            for old in others
        }
        self.unknown: set[str] = set()
        self.untranslated = 0  # keys of an unknown vocabulary, read as unseen

    def translate(self, keys: list[int], vocabulary: str | None) -> list[int]:
        """Keys of `vocabulary` as keys of the current one (None: written before ids were stamped)."""
        if vocabulary is None or vocabulary == self.current:
            return keys
        mapping = self.maps.get(vocabulary)
        if mapping is None:
            if vocabulary not in self.unknown:
                self.unknown.add(vocabulary)
                log.error("keys of vocabulary %s, which is neither this model's nor one in LOGBERT_OTHER_MODEL_DIRS: read as "
                          "unseen templates", vocabulary)  # fmt: skip
            self.untranslated += sum(k >= 0 for k in keys)
            return [UNSEEN_KEY if k >= 0 else k for k in keys]
        return [mapping[k] if 0 <= k < len(mapping) else (k if k < 0 else UNSEEN_KEY) for k in keys]
