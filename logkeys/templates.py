"""Frozen log templates: mined once with drain3, then matched exactly and saved as plain JSON.

Matching follows drain3's `match(..., full_search_strategy="always")`: a template matches a
masked line when both have the same token count and every non-`<*>` token is equal; among
several matches the one with more `<*>` wins, then the older template (as drain3 does).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

from drain3.masking import LogMasker, MaskingInstruction

from logkeys.masking import TokenMasker, mask_function
from logkeys.presets import ParserPreset, TimestampParser, get_preset, parse_timestamp

WILDCARD = "<*>"
UNSEEN = -1  # key index of a line that no frozen template matches
TEMPLATES_FORMAT = "logbert-templates/1"


@dataclass(frozen=True)
class Template:
    event: str  # stable event id, e.g. "T12" for mined templates or "E5" from a dataset
    text: str
    count: int = 0


@dataclass(frozen=True)
class ParsedLine:
    key: int  # index into the template list, or UNSEEN
    content: str
    fields: dict[str, str]
    timestamp: float | None


def make_masker(preset: ParserPreset) -> LogMasker:
    return LogMasker([MaskingInstruction(m.pattern, m.mask_with) for m in preset.masks], "<", ">")


def tokenize(content: str, extra_delimiters: Iterable[str]) -> list[str]:
    # Same as drain3's Drain.get_content_as_tokens.
    content = content.strip()
    for delimiter in extra_delimiters:
        content = content.replace(delimiter, " ")
    return content.split()


class LineSplitter:
    """Splits a raw line into header fields and the content that templates describe."""

    def __init__(self, preset: ParserPreset) -> None:
        self.preset = preset
        self._header = re.compile(preset.header) if preset.header else None
        # Group numbers, so `read` need not build the field dict (half its cost).
        index = self._header.groupindex if self._header else {}
        if self._header is not None and "content" not in index:
            raise ValueError(f"preset {preset.name!r}: the header pattern has no (?P<content>...) group")
        self._content_group = index.get("content", 0)
        self._source_group = index.get("source")
        self._prefix_groups = tuple(index[f] for f in preset.content_prefix_fields if f in index)
        stamped = preset.timestamp_format and preset.timestamp_fields
        all_there = all(f in index for f in preset.timestamp_fields)
        self._stamp_groups = tuple(index[f] for f in preset.timestamp_fields) if stamped and all_there else ()
        # Where the timestamp fields are in `groups()`: one index, or a getter of several.
        stamp_indices = [number - 1 for number in self._stamp_groups]
        self._stamp_index = stamp_indices[0] if len(stamp_indices) == 1 else None
        self._stamp_fields = itemgetter(*stamp_indices) if len(stamp_indices) > 1 else None

    def _match(self, line: str) -> tuple[str, re.Match | None]:
        line = line.rstrip("\r\n")
        return line, (self._header.match(line) if self._header is not None else None)

    def _content(self, groups: tuple[str | None, ...]) -> str:
        """The content group, after the prefix fields that took part (e.g. BGL's component and level);
        `groups` is the match's `groups()`, so a group number less one indexes it."""
        content = groups[self._content_group - 1] or ""
        if not self._prefix_groups:
            return content
        prefix = [groups[i - 1] for i in self._prefix_groups if groups[i - 1] is not None]
        return " ".join([*prefix, content]) if prefix else content

    def split(self, line: str) -> tuple[str, dict[str, str]]:
        line, found = self._match(line)
        if found is None:
            return line, {}
        fields = found.groupdict()
        if None in fields.values():  # optional groups that did not take part
            fields = {k: v for k, v in fields.items() if v is not None}
        return self._content(found.groups()), fields

    def read(self, line: str) -> tuple[str, str | None, str | None]:
        """What the parse stage needs of a line: its content as `split` gives it, the timestamp
        fields' texts joined by a space (None when the preset has none, a field is absent or the
        header does not match), the source field; without building the field dict."""
        line, found = self._match(line)
        if found is None:
            return line, None, None
        groups = found.groups()  # every field in one call
        content = self._content(groups)
        if self._stamp_index is not None:
            stamp = groups[self._stamp_index]
        elif self._stamp_fields is not None:
            fields = self._stamp_fields(groups)
            stamp = None if None in fields else " ".join(fields)
        else:
            stamp = None
        source = groups[self._source_group - 1] if self._source_group is not None else None
        return content, stamp, source


class TemplateSet:
    """An immutable list of templates with an exact matcher over masked token lists."""

    def __init__(self, templates: list[Template], preset: ParserPreset, cache_size: int = 100_000) -> None:
        self.templates = templates
        self.preset = preset
        self._masker = make_masker(preset)
        self._token_masker = TokenMasker(self._masker) if TokenMasker.applies_to(self._masker) else None
        # Token by token with a cache where the masks allow it; else drain3's masks on the whole content.
        self._mask = self._token_masker.mask if self._token_masker is not None else mask_function(self._masker)
        self._splitter = LineSplitter(preset)
        self._timestamps = TimestampParser(preset.timestamp_format) if preset.timestamp_format else None
        # token count -> [(template index, tokens, wildcard count)] in template order
        self._by_length: dict[int, list[tuple[int, list[str], int]]] = {}
        for index, template in enumerate(templates):
            tokens = tokenize(template.text, preset.extra_delimiters)
            self._by_length.setdefault(len(tokens), []).append((index, tokens, tokens.count(WILDCARD)))
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size

    def __len__(self) -> int:
        return len(self.templates)

    def match_masked(self, masked_content: str) -> int:
        cached = self._cache.get(masked_content)
        if cached is not None:
            return cached
        tokens = tokenize(masked_content, self.preset.extra_delimiters)
        best, best_params = UNSEEN, -1
        for index, template_tokens, params in self._by_length.get(len(tokens), ()):
            if params > best_params and all(t == WILDCARD or t == m for t, m in zip(template_tokens, tokens)):
                best, best_params = index, params
        self._cache[masked_content] = best
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return best

    def match_content(self, content: str) -> int:
        return self.match_masked(self._mask(content))

    def parse(self, line: str) -> ParsedLine:
        content, fields = self._splitter.split(line)
        return ParsedLine(self.match_content(content), content, fields, parse_timestamp(self.preset, fields))

    def read_line(self, line: str) -> tuple[int, float | None, str | None]:
        """`parse` for the hot path: the key, the timestamp and the header's source field."""
        content, stamp, source = self._splitter.read(line)
        timestamp = self._timestamps.parse(stamp) if stamp is not None else None  # a stamp only where a format is
        masked = self._mask(content)
        key = self._cache.get(masked)  # match_masked's answer when it has one, without its call
        return key if key is not None else self.match_masked(masked), timestamp, source

    def to_json(self) -> dict:
        return {
            "format": TEMPLATES_FORMAT,
            "kind": "drain",
            "preset": self.preset.name,
            "templates": [{"event": t.event, "template": t.text, "count": t.count} for t in self.templates],
        }

    @classmethod
    def from_json(cls, data: dict) -> TemplateSet:
        if data.get("format") != TEMPLATES_FORMAT or data.get("kind") != "drain":
            raise ValueError("not a drain template file of format " + TEMPLATES_FORMAT)
        preset = get_preset(data["preset"])
        templates = [Template(str(t["event"]), str(t["template"]), int(t.get("count", 0))) for t in data["templates"]]
        return cls(templates, preset)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: Path) -> TemplateSet:
        return cls.from_json(json.loads(path.read_text()))


def drain_miner(preset: ParserPreset):
    """A drain3 TemplateMiner set up as the preset says (in memory, no persistence)."""
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()
    config.masking_instructions = [MaskingInstruction(m.pattern, m.mask_with) for m in preset.masks]
    config.mask_prefix, config.mask_suffix = "<", ">"
    config.drain_sim_th = preset.sim_th
    config.drain_depth = preset.depth
    config.drain_max_children = preset.max_children
    config.drain_extra_delimiters = list(preset.extra_delimiters)
    config.profiling_enabled = False
    config.snapshot_interval_minutes = 0
    return TemplateMiner(persistence_handler=None, config=config)


def mine_templates(lines: Iterable[str], preset: ParserPreset) -> TemplateSet:
    """Runs drain3 over the lines' content and freezes the clusters it found."""
    miner = drain_miner(preset)
    splitter = LineSplitter(preset)
    for line in lines:
        content, _ = splitter.split(line)
        miner.add_log_message(content)
    clusters = sorted(miner.drain.clusters, key=lambda c: c.cluster_id)
    templates = [Template(f"T{c.cluster_id}", c.get_template(), c.size) for c in clusters]
    return TemplateSet(templates, preset)
