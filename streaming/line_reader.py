"""Raw message values -> what each line says: its log key, timestamp and session ids.

This is the parse stage's per-line work, with no state that depends on the order of messages,
so a worker can run it in processes beside its event loop (streaming/parse_processes.py) while
the event-time bookkeeping stays in order on the loop (`streaming.stages.ParseStage`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from logkeys.templates import TemplateSet
from streaming.alerts import bounded
from streaming.messages import MAX_LINE_BYTES, PLAIN_FIRST_BYTES, Rejected, decode_value, plain_text_lines

GLOBAL_SOURCE = "*"  # the group key of windows over the whole input (no per-source windows)

# key (UNSEEN < 0), timestamp (None: the line has none), group ids, the raw line when its key is unseen, truncated
LineRead = tuple[int, float | None, list[str], str | None, bool]
MessageRead = tuple[Rejected | None, list[LineRead]]


@dataclass(frozen=True)
class ReaderConfig:
    """Everything a reader needs, as plain data, so a child process can build its own."""

    templates: dict  # TemplateSet.to_json()
    session_regex: str | None
    value_format: str = "auto"
    window_by_source: bool = False


class LineReader:
    def __init__(
        self, templates: TemplateSet, session_regex: str | None, value_format: str = "auto",
        window_by_source: bool = False,
    ) -> None:  # fmt: skip
        self.templates = templates
        self.session_regex = session_regex
        self.session_pattern = re.compile(session_regex) if session_regex else None
        self.value_format = value_format
        self.window_by_source = window_by_source

    @property
    def config(self) -> ReaderConfig:
        return ReaderConfig(self.templates.to_json(), self.session_regex, self.value_format, self.window_by_source)

    @classmethod
    def from_config(cls, config: ReaderConfig) -> LineReader:
        templates = TemplateSet.from_json(config.templates)
        return cls(templates, config.session_regex, config.value_format, config.window_by_source)

    def group_keys(self, text: str, header_source: str | None, source: str | None) -> list[str]:
        if self.session_pattern is not None:
            return list(dict.fromkeys(self.session_pattern.findall(text)))
        if self.window_by_source:
            return [source or header_source or GLOBAL_SOURCE]
        return [GLOBAL_SOURCE]

    def read(self, values: list[bytes | None]) -> list[MessageRead]:
        out: list[MessageRead] = []
        append_message = out.append
        read_line, value_format = self.templates.read_line, self.value_format
        plain_first_bytes = PLAIN_FIRST_BYTES.get(value_format, b"")
        # Session ids in the common case of one per line, without a call per line.
        find_sessions = self.session_pattern.findall if self.session_pattern is not None else None
        group_keys = self.group_keys
        for value in values:
            # Plain text (the common case) as strings; envelopes and what is rejected through decode_value.
            problem = None
            decoded = plain_text_lines(value, plain_first_bytes)
            if decoded is None:
                decoded, problem = decode_value(value, value_format)
            lines: list[LineRead] = []
            for line in decoded:
                if line.__class__ is str:
                    text, timestamp, source, truncated = line, None, None, len(line) > MAX_LINE_BYTES
                    if truncated:
                        text = text[:MAX_LINE_BYTES]
                else:
                    text, timestamp, source, truncated = line
                key, parsed_timestamp, header_source = read_line(text)
                if find_sessions is not None:
                    ids = find_sessions(text)
                    if len(ids) > 1:
                        ids = list(dict.fromkeys(ids))
                else:
                    ids = group_keys(text, header_source, source)
                unseen_text = bounded(text) if key < 0 else None  # explains an unseen template
                lines.append(
                    (key, timestamp if timestamp is not None else parsed_timestamp, ids, unseen_text, truncated)
                )
            append_message((problem, lines))
        return out
