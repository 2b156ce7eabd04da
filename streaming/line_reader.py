"""Raw message values -> what each line says: its log key, timestamp and session ids.

This is the parse stage's per-line work, with no state that depends on the order of messages,
so a worker can run it in processes beside its event loop (streaming/parse_processes.py) while
the event-time bookkeeping stays in order on the loop (`streaming.stages.ParseStage`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from logkeys.templates import TemplateSet
from streaming.alerts import bounded
from streaming.messages import MAX_LINE_BYTES, Rejected, decode_value

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
        plain_first_bytes = _PLAIN_FIRST_BYTES.get(value_format, b"")
        # Session ids in the common case of one per line, without a call per line.
        find_sessions = self.session_pattern.findall if self.session_pattern is not None else None
        group_keys = self.group_keys
        for value in values:
            # Plain text lines (the common case) go straight to their keys; envelopes, odd first
            # bytes, empty or overlong values through decode_value, which says why it rejects one.
            lines: list[LineRead] = []
            texts = None
            if value and value[0] in plain_first_bytes:
                try:
                    text = value.decode("utf-8")
                except UnicodeDecodeError:
                    text = ""
                if "\n" not in text:
                    texts = (text.removesuffix("\r"),) if text else None  # its first byte is no space
                else:
                    texts = [line.removesuffix("\r") for line in text.split("\n") if line.strip()]
            if texts:
                for text in texts:
                    truncated = len(text) > MAX_LINE_BYTES
                    if truncated:
                        text = text[:MAX_LINE_BYTES]
                    key, timestamp, header_source = read_line(text)
                    if find_sessions is not None:
                        ids = find_sessions(text)
                        if len(ids) > 1:
                            ids = list(dict.fromkeys(ids))
                    else:
                        ids = group_keys(text, header_source, None)
                    lines.append((key, timestamp, ids, bounded(text) if key < 0 else None, truncated))
                append_message((None, lines))
                continue
            decoded, problem = decode_value(value, value_format)
            for text, timestamp, source, truncated in decoded:
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


# First bytes of a value that is plain text as decode_value reads it: printable ASCII, no space
# (so never blank), and in "auto" no bracket (it might be JSON).
_PRINTABLE = bytes(range(0x21, 0x7F))
_PLAIN_FIRST_BYTES = {"text": _PRINTABLE, "auto": _PRINTABLE.translate(None, b"{[")}
