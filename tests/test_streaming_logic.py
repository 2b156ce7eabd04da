"""The broker-free logic behind the agents: message decoding, incremental windows, alerts."""

import asyncio
import json

import jsonschema
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.detection import MissedKey, SequenceScore
from streaming.alerts import alert_id, build_alert, load_schema
from streaming.messages import MAX_LINE_BYTES, decode_value
from streaming.stages import FULL_SCAN_INTERVAL, WindowStage
from streaming.windows import ClosedSequence, SessionWindower


def test_decodes_text_shipper_batches_and_json_envelopes():
    lines, rejected = decode_value(b"first line\nsecond line\n\n")
    assert rejected is None and [x.text for x in lines] == ["first line", "second line"]
    lines, _ = decode_value(json.dumps({"line": "x", "timestamp": 12.5, "source": "n1"}).encode())
    assert (lines[0].text, lines[0].timestamp, lines[0].source) == ("x", 12.5, "n1")
    lines, _ = decode_value(json.dumps(["a", {"message": "b"}]).encode())
    assert [x.text for x in lines] == ["a", "b"]
    lines, _ = decode_value(b"[INFO] a text line that starts with a bracket")
    assert lines[0].text.startswith("[INFO]")


@pytest.mark.parametrize(
    "value, reason",
    [
        (b"", "empty"),
        (b"\xff\xfe broken", "not UTF-8"),
        (json.dumps({"no_line": 1}).encode(), "wrong shape"),
        (json.dumps([1, 2]).encode(), "wrong shape"),
        (b"\n\n  \n", "no log line"),
    ],
)
def test_rejects_with_a_reason_and_the_original_bytes(value, reason):
    lines, rejected = decode_value(value)
    assert lines == [] and reason in rejected.reason and rejected.value == value


def test_huge_lines_are_bounded():
    lines, _ = decode_value(b"x" * (1024 * 1024))
    assert len(lines[0].text) == MAX_LINE_BYTES


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(value):
    lines, rejected = decode_value(value)
    assert (rejected is None) != (lines == [])


def _hdfs_stages():
    from logkeys.presets import get_preset
    from logkeys.templates import mine_templates
    from streaming.stages import ParseStage, WindowStage
    from tests.test_parsing import HDFS_LINE

    return ParseStage(mine_templates([HDFS_LINE], get_preset("hdfs")), r"blk_-?\d+"), WindowStage(60, 50)


def _hdfs_line(when: str, block: str) -> str:
    from tests.test_parsing import HDFS_LINE

    return HDFS_LINE.replace("081109 203518", when).replace("blk_-1608999687919862906", block)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                          st.sampled_from([_hdfs_line("081109 203518", "blk_1"), _hdfs_line("681231 235959", "blk_2"),
                                           '{"line": 5}', '{"line": "blk_3 x", "timestamp": NaN}', "\x00\x1b[2J blk_4"]
                                          ).map(str.encode)),
                max_size=30))  # fmt: skip
def test_random_messages_through_parse_and_window_stages(values):
    """Whatever arrives: no exception; each message is rejected or yields lines; the window state
    stays plain JSON (it goes to the changelog); every key event ends in exactly one sequence."""
    from streaming.stages import RawMessage

    parse, window = _hdfs_stages()
    state: dict = {}
    result = parse.process([RawMessage(v, "raw", 0, n, 1.7e9) for n, v in enumerate(values)])
    rejected = {m.offset for m, _ in result.rejected}
    with_lines = {e[4] for events in result.events.values() for e in events}
    assert not rejected & with_lines
    assert result.lines >= len(with_lines)
    json.dumps(result.events, allow_nan=False)  # strict JSON: orjson would write an infinity as null
    closed, _ = window.on_message(state, 0, result.events)
    json.dumps(state, allow_nan=False)
    closed += window.flush(state, 0, watermark=float("inf"))
    assert sum(len(c.keys) for c in closed) == sum(len(events) for events in result.events.values())


def _read_through_decode_value(reader, values):
    """LineReader.read written out over decode_value, as it read every message before its fast path."""
    from streaming.alerts import bounded

    out = []
    for value in values:
        decoded, problem = decode_value(value, reader.value_format)
        lines = []
        for text, timestamp, source, truncated in decoded:
            key, parsed, header_source = reader.templates.read_line(text)
            ids = reader.group_keys(text, header_source, source)
            lines.append((key, timestamp if timestamp is not None else parsed, ids, bounded(text) if key < 0 else None,
                          truncated))  # fmt: skip
        out.append((problem, lines))
    return out


_LINE_PIECES = st.sampled_from([_hdfs_line("081109 203518", "blk_1"), _hdfs_line("081109 203519", "blk_2 blk_2 blk_3"),
                                "{", "[", " ", "\t", "\r", "\n", "\r\n", "\x0b", "\u2028", "\x85", "é", "x" * 70_000,
                                '{"line": "blk_3 x"}', '["a"]', "blk_9"])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=50), st.lists(_LINE_PIECES, max_size=6).map("".join).map(str.encode)),
                max_size=8), st.sampled_from(["auto", "text", "json"]))  # fmt: skip
@example([b"blk_9 unseen\r", b"blk_8 a\r\nblk_7 b\r\n", b"[x] blk_6", b"{x} blk_5", b"x" * 70_000 + b" blk_4"], "auto")
def test_plain_text_values_are_read_as_decode_value_reads_them(values, value_format):
    """The reader takes plain text lines without decode_value; it must give what decode_value's
    path gives: keys, times, session ids, unseen lines, cut lines and rejections alike."""
    from logkeys.presets import get_preset
    from logkeys.templates import mine_templates
    from streaming.line_reader import LineReader
    from tests.test_parsing import HDFS_LINE

    reader = LineReader(mine_templates([HDFS_LINE], get_preset("hdfs")), r"blk_-?\d+", value_format)
    assert reader.read(values) == _read_through_decode_value(reader, values)


def test_parse_processes_read_every_message_as_the_event_loop_does():
    """Lines read in child processes (LOGBERT_PARSE_PROCESSES) give the same parse result, rejected
    messages, unseen lines, JSON envelopes and cut lines included, whatever the shares."""
    from streaming.parse_processes import ParseProcesses
    from streaming.stages import RawMessage

    values = [_hdfs_line(f"081109 2035{n % 60:02d}", f"blk_{n % 7}").encode() for n in range(300)]
    values[5:5] = [
        None,
        b"",
        b"\xff\xfe",
        b'{"line": 5}',
        b"unseen words blk_9",
        b'[{"line": "a blk_1", "timestamp": 1.5}]',
    ]
    values.append(_hdfs_line("081109 203518", "blk_1").encode() + b" x" * 600_000)
    messages = [RawMessage(v, "raw", n % 2, n, 1.7e9) for n, v in enumerate(values)]
    inline, _ = _hdfs_stages()
    expected = inline.process(messages, waiting={"raw/1"})
    assert expected.rejected and expected.unseen and expected.truncated  # the test covers them

    async def read_in_processes(processes: int):
        stage, _ = _hdfs_stages()
        children = ParseProcesses(stage.reader, processes)
        try:
            return stage.process(messages, waiting={"raw/1"}, read=await children.read([m.value for m in messages]))
        finally:
            await children.close()

    for processes in (1, 3):
        assert asyncio.run(read_in_processes(processes)) == expected


def test_a_timestamp_from_the_future_neither_moves_event_time_nor_closes_sessions():
    from streaming.stages import RawMessage

    parse, window = _hdfs_stages()
    state: dict = {}
    now = 1.7e9  # 2023; the lines are from 2008, one claims 2068
    lines = [
        _hdfs_line("081109 203518", "blk_1"),
        _hdfs_line("681231 235959", "blk_2"),
        _hdfs_line("081109 203520", "blk_1"),
    ]
    result = parse.process([RawMessage(line.encode(), "raw", 0, n, now) for n, line in enumerate(lines)])
    assert result.distrusted_timestamps == 1 and result.watermark < now
    closed, _ = window.on_message(state, 0, result.events)
    closed += window.expire(state, 0)
    assert closed == [] and state["blk_1"]["keys"] == [0, 0]  # blk_1 is still open


def test_a_line_whose_timestamp_does_not_parse_joins_at_the_current_event_time():
    from streaming.stages import RawMessage

    parse, window = _hdfs_stages()
    state: dict = {}
    lines = [_hdfs_line("081109 203518", "blk_1"), _hdfs_line("08x109 20z518", "blk_2")]
    result = parse.process([RawMessage(line.encode(), "raw", 0, n, 1.7e9) for n, line in enumerate(lines)])
    assert result.undated == 1 and result.watermark == result.events["blk_1"][0][1]
    window.on_message(state, 0, result.events)
    assert window.expire(state, 0) == [] and set(state) >= {"blk_1", "blk_2"}


def test_a_huge_line_is_cut_and_counted():
    from streaming.stages import RawMessage

    parse, _ = _hdfs_stages()
    line = _hdfs_line("081109 203518", "blk_1") + " x" * 600_000
    result = parse.process([RawMessage(line.encode(), "raw", 0, 0, 1.7e9)])
    assert result.lines == 1 and result.truncated == 1 and result.rejected == []


def test_text_placed_in_alerts_has_control_characters_escaped():
    from streaming.alerts import MAX_TEMPLATE_CHARS, bounded

    assert bounded("red \x1b[31m bell \x07 tab\tend \x85") == "red \\x1b[31m bell \\x07 tab\tend \\u0085"
    assert len(bounded("\x1b" * 10_000)) == MAX_TEMPLATE_CHARS


def test_sessions_close_on_event_time_idle_and_split_at_max_length():
    windower = SessionWindower(idle_timeout=60, max_keys=3)
    state: dict = {}
    assert windower.add(state, "a", 1, 0.0, "logs-raw/0", 10) == []
    windower.add(state, "b", 2, 5.0, "logs-raw/0", 11)
    windower.add(state, "a", 3, 10.0, "logs-raw/1", 4)
    cut = windower.add(state, "a", 4, 20.0, "logs-raw/0", 12)
    assert [(c.session, c.part, c.keys, c.closed) for c in cut] == [("a", 0, [1, 3, 4], False)]
    assert cut[0].origins == {"logs-raw/0": [10, 12], "logs-raw/1": [4, 4]}
    windower.add(state, "a", 5, 30.0, "logs-raw/0", 13)
    assert windower.expire(state, watermark=64.0) == []
    closed = windower.expire(state, watermark=65.0)
    assert [(c.session, c.keys, c.closed) for c in closed] == [("b", [2], True)]
    closed = windower.expire(state, watermark=90.0)
    assert [(c.session, c.part, c.keys, c.closed) for c in closed] == [("a", 1, [5], True)]
    assert state == {}
    json.dumps(state)  # plain data, fit for a changelogged table


class CountingTable(dict):
    """A table that counts how often it is read whole."""

    full_reads = 0

    def items(self):
        self.full_reads += 1
        return super().items()

    def __iter__(self):
        self.full_reads += 1
        return super().__iter__()


def _stage_with_clock(idle_timeout: float) -> tuple[WindowStage, list[float]]:
    stage, clock = WindowStage(idle_timeout=idle_timeout, max_keys=100), [0.0]
    stage.monotonic = lambda: clock[0]
    return stage, clock


def test_expiry_between_full_scans_reads_only_the_due_sessions():
    stage, _ = _stage_with_clock(10)
    state = CountingTable()
    stage.on_message(state, 0, {"a": [[1, 0.0, 0.0, "raw/0", 1]], "b": [[2, 5.0, 5.0, "raw/0", 2]]})
    assert stage.expire(state, 0) == []  # the first expiry of a partition reads the whole table
    full_reads = state.full_reads
    stage.on_message(state, 0, {"c": [[3, 12.0, 12.0, "raw/0", 3]]})
    assert [(c.session, c.keys) for c in stage.expire(state, 0)] == [("a", [1])]
    stage.on_message(state, 0, {"a": [[4, 14.0, 14.0, "raw/0", 4]], "c": [[3, 16.0, 16.0, "raw/0", 5]]})
    assert [(c.session, c.keys) for c in stage.expire(state, 0)] == [("b", [2])]
    assert state.full_reads == full_reads  # with thousands of sessions open, each scan costs O(due)
    assert stage.expire(state, 0) == [] and sorted(state) == ["\x00applied/0", "a", "c"]


def test_a_session_the_table_got_from_elsewhere_is_expired_by_the_next_full_scan():
    stage, clock = _stage_with_clock(10)
    state: dict = {}
    stage.on_message(state, 0, {"a": [[1, 0.0, 0.0, "raw/0", 1]]})
    stage.expire(state, 0)
    WindowStage(10, 100).on_message(state, 0, {"r": [[7, 1.0, 1.0, "raw/0", 2]]})  # as a changelog restore would
    stage.on_message(state, 0, {"c": [[3, 20.0, 20.0, "raw/0", 3]]})
    assert [c.session for c in stage.expire(state, 0)] == ["a"]
    clock[0] += FULL_SCAN_INTERVAL
    assert [(c.session, c.keys) for c in stage.expire(state, 0)] == [("r", [7])]


def test_the_expiry_index_stays_bounded_while_event_time_stands_still(monkeypatch):
    import streaming.stages

    monkeypatch.setattr(streaming.stages, "INDEX_COMPACT_AT", 10)
    stage, _ = _stage_with_clock(10)
    state: dict = {}
    stage.expire(state, 0)
    for offset in range(1, 60):  # one session written again and again at one event time
        stage.on_message(state, 0, {"a": [[1, 5.0, 5.0, "raw/0", offset]]})
        assert len(stage.ends[0]) < 10
    stage.on_message(state, 0, {"b": [[2, 15.0, 15.0, "raw/0", 60]]})
    assert [(c.session, len(c.keys)) for c in stage.expire(state, 0)] == [("a", 59)]


def test_flush_emits_open_sessions_as_open():
    windower = SessionWindower(idle_timeout=60, max_keys=10)
    state: dict = {}
    windower.add(state, "a", 1, 0.0, "t/0", 0)
    assert [(c.session, c.closed) for c in windower.flush(state)] == [("a", False)]


def _alert(sequence: ClosedSequence) -> dict:
    score = SequenceScore(length=3, masked=4, misses=2, unseen=1, max_surprise=float("inf"), mean_surprise=1.0,
                          distance=0.5, missed=[MissedKey(1, -1, [0, 2], 0.0)])  # fmt: skip
    explanation = [{"position": 1, "actual": "<unseen template>" + "x" * 2000, "actual_probability": 0.0,
                    "expected": ["Receiving block <BLK>", "<end of sequence>"]}]  # fmt: skip
    return build_alert(sequence, score, explanation, "abc123", 0.1, 5.0, detected_at=1_700_000_000.0)


def test_alerts_validate_against_the_schema_and_ids_are_deterministic():
    sequence = ClosedSequence("blk_1", 0, [1, 2, 3], 1.0, 9.0, True, {"logs-raw/0": [5, 9]})
    alert = _alert(sequence)
    jsonschema.validate(alert, load_schema())
    assert alert == _alert(ClosedSequence("blk_1", 0, [1, 2, 3], 1.0, 9.0, True, {"logs-raw/0": [5, 9]}))
    assert len(alert["missed_positions"][0]["actual"]) <= 512
    other = ClosedSequence("blk_1", 0, [1, 2, 3], 1.0, 9.0, True, {"logs-raw/0": [6, 9]})
    assert alert_id("abc123", other) != alert["alert_id"]
    assert alert["source"] == [{"topic": "logs-raw", "partition": 0, "first_offset": 5, "last_offset": 9}]
    assert np.isfinite(alert["distance"])


def test_replayed_messages_are_applied_once():
    from streaming.stages import WindowStage

    stage = WindowStage(idle_timeout=60, max_keys=100)
    state: dict = {}
    first = {"blk_1": [[0, 1.0, 1.0, "raw/0", 10], [1, 2.0, 2.0, "raw/0", 11]], "blk_2": [[0, 2.0, 2.0, "raw/0", 11]]}
    stage.on_message(state, 0, first)
    # a rebalance replays the same raw lines (and one new one) in a differently cut batch
    again = {"blk_1": [[1, 2.0, 2.0, "raw/0", 11], [2, 3.0, 3.0, "raw/0", 12]], "blk_2": [[0, 2.0, 2.0, "raw/0", 11]]}
    _, replayed = stage.on_message(state, 0, again)
    assert replayed == 2
    assert state["blk_1"]["keys"] == [0, 1, 2] and state["blk_2"]["keys"] == [0]
    closed = stage.flush(state, 0, watermark=100.0)
    assert sorted((c.session, c.keys, c.closed) for c in closed) == [("blk_1", [0, 1, 2], True), ("blk_2", [0], True)]


def test_security_settings_pass_through_and_hide_secrets(tmp_path):
    from streaming.security import KafkaSecurity

    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    security = KafkaSecurity.from_env({
        "KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "logbert", "KAFKA_SASL_PASSWORD_FILE": str(secret),
    })  # fmt: skip
    assert security.confluent_config() == {
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "logbert", "sasl.password": "s3cret",
    }  # fmt: skip
    assert "s3cret" not in repr(security)
    credentials = security.faust_credentials()
    assert credentials.username == "logbert" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert KafkaSecurity.from_env({}).faust_credentials() is None
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME"):
        KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    with pytest.raises(ValueError, match="KAFKA_SECURITY_PROTOCOL"):
        KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "TLS"})


def test_streaming_time_windows_equal_the_batch_windows():
    """Same windows, same keys in the same order, same ended/open status as sequences/windows.py."""
    from sequences.windows import group_by_window
    from streaming.stages import GLOBAL_SOURCE, TimeWindowStage

    rng = np.random.default_rng(3)
    timestamps = np.sort(rng.uniform(0, 1800, size=400)).tolist()
    keys = rng.integers(0, 5, size=400).tolist()
    batch = group_by_window(timestamps, size=300, step=60)

    stage = TimeWindowStage(size=300, step=60)
    state: dict = {}
    streamed = []
    for start in range(0, 400, 37):  # arbitrary message boundaries
        events = [[keys[i], timestamps[i], timestamps[i], "raw/0", i] for i in range(start, min(start + 37, 400))]
        streamed.extend(stage.on_message(state, 0, {GLOBAL_SOURCE: events})[0])
        streamed.extend(stage.expire(state, 0))
    streamed.extend(stage.flush(state, 0, watermark=timestamps[-1]))
    json.dumps(state, allow_nan=False)
    assert [(s.session, s.keys, s.closed) for s in sorted(streamed, key=lambda s: s.start)] == [
        (b.id, [keys[i] for i in b.records], b.closed) for b in batch
    ]
    assert stage.late == 0


def test_an_unseen_template_is_explained_by_its_raw_line():
    from logkeys.presets import get_preset
    from logkeys.templates import mine_templates
    from streaming.stages import ParseStage, RawMessage, WindowStage, sequence_from_json, sequence_to_json
    from tests.test_parsing import HDFS_LINE

    templates = mine_templates([HDFS_LINE], get_preset("hdfs"))
    strange = "081109 203519 143 WARN dfs.DataNode: writeBlock blk_7 received exception java.io.IOException"
    parse = ParseStage(templates, r"blk_-?\d+")
    result = parse.process([RawMessage(f"{HDFS_LINE.replace('blk_-1608999687919862906', 'blk_7')}\n{strange}".encode(),
                                       "raw", 0, 3, 1.3e9)])  # fmt: skip
    stage = WindowStage(idle_timeout=60, max_keys=100)
    state: dict = {}
    stage.on_message(state, 0, result.events)
    [sequence] = stage.flush(state, 0, watermark=1e12)
    sequence = sequence_from_json(sequence_to_json(sequence))
    assert sequence.keys == [0, -1] and sequence.unseen_lines == {1: strange}
    alert = _alert(sequence)
    jsonschema.validate(alert, load_schema())
    assert alert["missed_positions"][0]["actual"] == strange


def _templates(texts: list[str]):
    from logkeys.presets import get_preset
    from logkeys.templates import Template, TemplateSet

    return TemplateSet([Template(f"T{i}", t) for i, t in enumerate(texts)], get_preset("hdfs"))


def test_open_sessions_carry_over_a_model_rollout_in_the_new_models_keys():
    """Sessions opened under model A continue under model B (templates reordered, one added, one
    generalised); events and sequences still in flight from A are translated too."""
    from streaming.key_translation import KeyTranslator, vocabulary_id
    from streaming.stages import TimeWindowStage, WindowStage

    old = _templates(["Receiving block <*>", "Received block <*> of size <NUM>", "Deleting block <*> file <*>"])
    new = _templates(["Verification succeeded for <*>", "Deleting block <*> file <*>", "Received block <*> of size <*>",
                      "Receiving block <*>"])  # fmt: skip
    old_id = vocabulary_id(old)
    state: dict = {}
    before = WindowStage(60, 100, KeyTranslator(old))
    before.on_message(state, 0, {"blk_1": [[0, 1.0, 1.0, "raw/0", 1], [1, 2.0, 2.0, "raw/0", 2]]}, old_id)
    assert state["blk_1"]["vocab"] == old_id

    after = WindowStage(60, 100, KeyTranslator(new, [old]))
    # one more event parsed by A (in flight on the keys topic), then one parsed by B
    after.on_message(state, 0, {"blk_1": [[2, 3.0, 3.0, "raw/0", 3], [-1, 3.5, 3.5, "raw/0", 4]]}, old_id)
    after.on_message(state, 0, {"blk_1": [[0, 4.0, 4.0, "raw/0", 5]]}, vocabulary_id(new))
    [closed] = after.flush(state, 0, watermark=100.0)
    assert closed.keys == [3, 2, 1, -1, 0]  # A's 0, 1, 2 are B's 3, 2 (generalised), 1; unseen stays unseen

    # an open session that was never touched again is translated when it closes
    state = {}
    before.on_message(state, 1, {"blk_9": [[1, 1.0, 1.0, "raw/1", 1]]}, old_id)
    assert [c.keys for c in after.flush(state, 1, watermark=100.0)] == [[2]]

    # time windows too
    windows: dict = {}
    TimeWindowStage(300, 60, KeyTranslator(old)).on_message(windows, 0, {"*": [[0, 10.0, 10.0, "raw/0", 1]]}, old_id)
    flushed = TimeWindowStage(300, 60, KeyTranslator(new, [old])).flush(windows, 0, watermark=20.0)
    assert flushed and all(c.keys == [3] for c in flushed)

    # keys of a model nobody named are read as unseen, and counted
    stranger = KeyTranslator(new)
    assert stranger.translate([0, 1, -2], old_id) == [-1, -1, -2] and stranger.untranslated == 2


def test_a_quiet_flush_leaves_sessions_that_still_have_flowing_input_open():
    """Raw partition 0 went quiet, partition 1 did not: only sessions fed solely by 0 are emitted."""
    from streaming.stages import TimeWindowStage, WindowStage

    stage = WindowStage(60, 100)
    state: dict = {}
    stage.on_message(state, 0, {"blk_a": [[0, 1.0, 1.0, "raw/0", 1]], "blk_b": [[0, 1.0, 1.0, "raw/1", 1]],
                                "blk_c": [[0, 1.0, 1.0, "raw/0", 2], [1, 2.0, 2.0, "raw/1", 2]]})  # fmt: skip
    assert [c.session for c in stage.flush(state, 0, 2.0, quiet={"raw/0"})] == ["blk_a"]
    assert sorted(c.session for c in stage.flush(state, 0, 2.0)) == ["blk_b", "blk_c"]  # None: everything

    windows = TimeWindowStage(300, 60)
    state = {}
    windows.on_message(state, 0, {"*": [[0, 10.0, 10.0, "raw/0", 1], [0, 11.0, 11.0, "raw/1", 1]]})
    assert windows.flush(state, 0, 11.0, quiet={"raw/0"}) == []
    assert windows.flush(state, 0, 11.0, quiet={"raw/0", "raw/1"})


def test_a_new_owner_of_a_partition_resumes_from_the_recorded_watermark():
    """After a rebalance the table, not memory, says how far event time got: an idle session is
    emitted as ended (as `evaluate` decides at the end of a file), not as still open."""
    from streaming.stages import WindowStage

    state: dict = {}
    WindowStage(60, 100).on_message(state, 0, {"blk_a": [[0, 1.0, 1.0, "raw/0", 1]],
                                                "blk_b": [[0, 100.0, 100.0, "raw/0", 2]]})  # fmt: skip
    closed = WindowStage(60, 100).flush(state, 0, float("-inf"), quiet={"raw/0"})  # a fresh worker, parsed nothing
    assert sorted((c.session, c.closed) for c in closed) == [("blk_a", True), ("blk_b", False)]


class ChangelogRecorder(dict):
    """A table whose writes are also recorded as the changelog would hold them (JSON at write time)."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str | None]] = []

    def __setitem__(self, key, value) -> None:
        self.log.append((key, json.dumps(value)))
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self.log.append((key, None))
        super().__delitem__(key)


def _keys_messages(seed: int, sources: list[str]) -> list[dict]:
    """Keys messages as the parse stage sends them: two raw partitions, sessions that end idle, are
    cut at max length and come back after ending, and a final flush."""
    import random

    rng = random.Random(seed)
    lines, ts, offsets = [], 0.0, {"raw/0": 0, "raw/1": 0}
    for _ in range(120):
        ts += rng.choice([0.0, 0.5, 1.0, 3.0, 12.0])
        origin = rng.choice(sorted(offsets))
        offsets[origin] += 1
        lines.append([rng.randrange(5), ts, ts, origin, offsets[origin], rng.choice(sources)])
    messages = []
    while lines:
        cut = rng.randrange(1, 12)
        batch, lines = lines[:cut], lines[cut:]
        sessions: dict[str, list] = {}
        for *event, session in batch:
            sessions.setdefault(session, []).append([*event, None])
        messages.append({"sessions": sessions})
    return [*messages, {"flush": ts, "quiet": None}]


def test_deferred_writes_read_the_pending_writes_over_the_table():
    from streaming.deferred_writes import DeferredWrites

    table = {"kept": 1, "replaced": 2, "deleted": 3}
    writes = DeferredWrites(table)
    writes["replaced"], writes["new"] = 20, 40
    del writes["deleted"]
    assert [writes.get(k) for k in ("kept", "replaced", "deleted", "new", "absent")] == [1, 20, None, 40, None]
    assert writes.get("deleted", "gone") == "gone" and writes.get("absent", 0) == 0
    assert dict(writes) == {"kept": 1, "replaced": 20, "new": 40} and table["deleted"] == 3  # nothing applied yet
    writes.apply()
    assert table == {"kept": 1, "replaced": 20, "new": 40}


def test_a_session_opened_and_closed_by_one_keys_message_writes_no_changelog_record():
    from agents.window import window_step
    from streaming.deferred_writes import DeferredWrites

    table, stage = ChangelogRecorder(), WindowStage(idle_timeout=10, max_keys=50)
    table["blk_old"] = {"keys": [], "end": 0.0}  # a key the table held: its deletion is written
    writes = DeferredWrites(table)
    value = {"sessions": {"blk_1": [[1, 0.0, 0.0, "raw/0", 1, None, 0], [2, 1.0, 1.0, "raw/0", 2, None, 0]],
                          "blk_2": [[3, 30.0, 30.0, "raw/0", 3, None, 0]]}}  # fmt: skip
    closed = window_step(stage, writes, 0, value, {})
    del writes["blk_old"]
    writes.apply()
    assert [(c.session, c.keys) for c in closed] == [("blk_1", [1, 2])]
    assert [key for key, _ in table.log] == ["blk_old", "blk_2", WindowStage.applied_key(0), "blk_old"]
    assert set(table) == {"blk_2", WindowStage.applied_key(0)}


@pytest.mark.parametrize("kind", ["sessions", "time windows"])
def test_a_worker_killed_between_table_writes_loses_and_doubles_nothing(kind):
    """The worker dies after any one of its changelog writes; a new owner rebuilds the table from the
    writes that were made and replays the keys messages from the last commit (the interrupted
    message, or two before it). Together the two emit exactly the sequences of an uninterrupted run."""
    from agents.window import window_step
    from streaming.deferred_writes import DeferredWrites
    from streaming.stages import TimeWindowStage, WindowStage

    def new_stage():
        return WindowStage(idle_timeout=10, max_keys=5) if kind == "sessions" else TimeWindowStage(size=10, step=5)

    def run(state, messages, delivered: list, started_at: list) -> None:
        stage, last_expiry = new_stage(), {}
        for value in messages:
            writes = DeferredWrites(state)
            closed = window_step(stage, writes, 0, json.loads(json.dumps(value)), last_expiry)
            started_at.append(len(getattr(state, "log", ())))
            delivered.append([(c.session, c.part, tuple(c.keys), c.closed) for c in closed])
            writes.apply()  # the sequences went to the producer first

    messages = _keys_messages(7, ["blk_a", "blk_b", "blk_c", "blk_d"] if kind == "sessions" else ["*", "node-1"])
    table, delivered, started_at = ChangelogRecorder(), [], []
    run(table, messages, delivered, started_at)
    expected = {s for step in delivered for s in step}
    assert len(expected) > 20 and table.log
    for crash in range(len(table.log) + 1):
        interrupted = max(i for i, start in enumerate(started_at) if start <= crash)
        before = {s for step in delivered[:interrupted] for s in step}
        if started_at[interrupted] < crash:  # its writes began: its sequences had gone out
            before |= set(delivered[interrupted])
        for committed in {interrupted, max(0, interrupted - 2)}:
            state: dict = {}
            for key, value in table.log[:crash]:
                state.pop(key, None) if value is None else state.__setitem__(key, json.loads(value))
            after: list = []
            run(state, messages[committed:], after, [])
            assert before | {s for step in after for s in step} == expected, (crash, committed)


def _interleaved_backlog(sessions: int) -> list[tuple[int, str]]:
    """(raw partition, line): each session's lines alternate between two partitions; a session
    lasts 20 s, and one starts every 30 s, so many more than the 60 s idle timeout pass in all."""
    lines = []
    for n in range(sessions):
        for k in range(4):
            t = n * 30 + k * 5
            lines.append((k % 2, _hdfs_line(f"081109 {20 + t // 3600:02d}{t // 60 % 60:02d}{t % 60:02d}", f"blk_{n}")))
    return lines


def test_a_backlog_read_one_partition_ahead_of_the_other_splits_no_session():
    """A consumer may hand over one partition's backlog long before the other's: event time must
    wait for the partition that still has records unread."""
    from streaming.stages import RawMessage

    parse, window = _hdfs_stages()
    state: dict = {}
    lines = _interleaved_backlog(100)
    by_partition = {p: [RawMessage(line.encode(), "raw", p, n, 1.7e9) for n, (q, line) in enumerate(lines) if q == p]
                    for p in (0, 1)}  # fmt: skip
    closed, _ = window.on_message(state, 0, parse.process(by_partition[0], waiting={"raw/1"}).events)
    assert closed == [] and parse.watermark == float("-inf")  # partition 1 unread: event time waits
    closed += window.on_message(state, 0, parse.process(by_partition[1], waiting=set()).events)[0]
    closed += window.flush(state, 0, watermark=float("inf"))
    assert sorted(len(c.keys) for c in closed) == [4] * 100  # every session whole

    parse, window = _hdfs_stages()  # the same input read as one ordered stream splits sessions
    state = {}
    split = window.on_message(state, 0, parse.process(by_partition[0]).events)[0]
    split += window.on_message(state, 0, parse.process(by_partition[1]).events)[0]
    split += window.flush(state, 0, watermark=float("inf"))
    assert len(split) > 100


def test_event_time_waits_for_the_slowest_worker_until_it_falls_silent():
    from streaming.stages import READER_SILENCE

    _, window = _hdfs_stages()
    now = [1000.0]
    window.clock = lambda: now[0]
    state: dict = {}
    event = lambda t, offset: [0, t, t, "raw/1", offset, None]  # noqa: E731 (key, ts, watermark, origin, offset, raw)
    window.on_message(state, 0, {"blk_slow": [event(100.0, 0)]}, origins=["raw/1"], reader_watermark=100.0)
    ahead = [[0, 5000.0, 5000.0, "raw/0", 0, None]]
    closed, _ = window.on_message(state, 0, {"blk_fast": ahead}, origins=["raw/0"], reader_watermark=5000.0)
    closed += window.expire(state, 0)
    assert closed == [] and window.watermark[0] == 100.0  # the worker reading raw/1 is behind
    window.on_message(state, 0, {"blk_slow": [event(130.0, 1)]}, origins=["raw/1"], reader_watermark=130.0)
    assert state["blk_slow"]["keys"] == [0, 0]  # one session, not split
    now[0] += READER_SILENCE + 1  # the slow worker sends nothing more: it no longer holds time back
    closed, _ = window.on_message(state, 0, {"blk_fast": [[0, 5001.0, 5001.0, "raw/0", 1, None]]},
                                  origins=["raw/0"], reader_watermark=5001.0)  # fmt: skip
    closed += window.expire(state, 0)
    assert [c.session for c in closed] == ["blk_slow"]


def test_event_time_waits_for_a_raw_partition_whose_reader_has_not_reported_yet():
    """Two workers start together: the first keys message comes from the one ahead, and the other
    has sent nothing yet. Every raw partition the sender knows of holds event time back."""
    from streaming.stages import READER_SILENCE

    _, window = _hdfs_stages()
    state: dict = {}
    inputs = ["raw/0", "raw/1"]
    ahead = {"blk_shared": [[0, 100.0, 100.0, "raw/0", 0, None]], "blk_fast": [[0, 5000.0, 5000.0, "raw/0", 1, None]]}
    closed, _ = window.on_message(state, 0, ahead, origins=["raw/0"], reader_watermark=5000.0, sent_at=10.0,
                                  inputs=inputs)  # fmt: skip
    assert closed + window.expire(state, 0) == []  # raw/1's reader may still hold blk_shared's lines
    behind = {"blk_shared": [[0, 130.0, 130.0, "raw/1", 0, None]]}
    window.on_message(state, 0, behind, origins=["raw/1"], reader_watermark=130.0, sent_at=10.5, inputs=inputs)
    assert state["blk_shared"]["keys"] == [0, 0]  # one session, not split
    # A raw partition whose reader never reports (no input there) holds time back for READER_SILENCE only.
    _, alone = _hdfs_stages()
    state = {}
    window_input = {"blk_only": [[0, 100.0, 100.0, "raw/0", 0, None]]}
    alone.on_message(state, 0, window_input, origins=["raw/0"], reader_watermark=100.0, sent_at=10.0, inputs=inputs)
    later = {"blk_later": [[0, 5000.0, 5000.0, "raw/0", 1, None]]}
    alone.on_message(state, 0, later, origins=["raw/0"], reader_watermark=5000.0, sent_at=10.0 + READER_SILENCE + 1,
                     inputs=inputs)  # fmt: skip
    assert [c.session for c in alone.expire(state, 0)] == ["blk_only"]


def test_a_window_reading_its_keys_late_counts_silence_in_send_time():
    """Under lag, the window reads a run of the fast worker's messages long after they were sent:
    the slow worker, which kept sending all along, must go on holding event time back."""
    from streaming.stages import READER_SILENCE

    _, window = _hdfs_stages()
    now = [1000.0]
    window.clock = lambda: now[0]
    state: dict = {}
    slow = lambda t, offset: {"blk_slow": [[0, t, t, "raw/1", offset, None]]}  # noqa: E731
    window.on_message(state, 0, slow(100.0, 0), origins=["raw/1"], reader_watermark=100.0, sent_at=50.0)
    for n in range(20):  # read 2 s apart, sent 0.1 s apart
        now[0] += 2.0
        fast = {f"blk_fast{n}": [[0, 5000.0 + n, 5000.0 + n, "raw/0", n, None]]}
        window.on_message(state, 0, fast, origins=["raw/0"], reader_watermark=5000.0 + n, sent_at=50.1 + n / 10)
        assert window.expire(state, 0) == []
    assert now[0] - 1000.0 > READER_SILENCE and window.watermark[0] == 100.0
    window.on_message(state, 0, slow(130.0, 1), origins=["raw/1"], reader_watermark=130.0, sent_at=52.2)
    assert state["blk_slow"]["keys"] == [0, 0]  # one session, not split
    fast = {"blk_fast": [[0, 5100.0, 5100.0, "raw/0", 99, None]]}  # sent after the slow worker fell silent
    window.on_message(state, 0, fast, origins=["raw/0"], reader_watermark=5100.0, sent_at=52.2 + READER_SILENCE + 1)
    assert "blk_slow" in {c.session for c in window.expire(state, 0)}


def test_keys_take_their_place_in_event_time_whatever_order_they_arrive_in():
    windower = SessionWindower(idle_timeout=60, max_keys=50)
    state: dict = {}
    for key, ts, raw in [(1, 1.0, None), (2, 3.0, None), (3, 2.0, "unseen line"), (4, 2.0, None), (5, 0.0, None)]:
        windower.add(state, "s", key, ts, "raw/0", key, raw)
    windower.add(state, "s", 6, 2.0, "raw/1", 9, sent_ms=-1)  # same time, sent before the others
    windower.add(state, "s", 7, 2.0, "raw/1", 2)  # same time and send time, an offset between theirs
    (sequence,) = windower.flush(state)
    assert sequence.keys == [5, 1, 6, 7, 3, 4, 2]  # by time, send time, offset (then partition)
    assert sequence.unseen_lines == {4: "unseen line"}  # the raw line moved with its key
    assert (sequence.start, sequence.end) == (0.0, 3.0)


def test_lines_of_one_second_keep_their_send_order_whichever_partition_is_read_first():
    """A shipper's batches go round robin over two partitions and one session's lines of one
    second straddle them: its keys must not depend on which partition the consumer read first."""
    from logkeys.presets import get_preset
    from logkeys.templates import mine_templates
    from streaming.stages import ParseStage, RawMessage, WindowStage

    texts = ["Receiving block blk_1 src: /10.0.0.1:5 dest: /10.0.0.2:5",
             "Received block blk_1 of size 67108864 from /10.0.0.1", "PacketResponder 1 for block blk_1 terminating",
             "Deleting block blk_1 file /data/blk_1"]  # fmt: skip
    lines = [f"081109 203518 143 INFO dfs.DataNode$DataXceiver: {text}" for text in texts]
    templates = mine_templates(lines, get_preset("hdfs"))
    sent = [  # (partition, offset, send time, lines)
        RawMessage("\n".join(lines[:2]).encode(), "raw", 0, 0, 1.7e9),
        RawMessage(lines[2].encode(), "raw", 1, 0, 1.7e9 + 0.5),
        RawMessage(lines[3].encode(), "raw", 0, 1, 1.7e9 + 1),
    ]
    sequences = []
    for read_order in ([0, 1, 2], [1, 0, 2], [0, 2, 1]):  # each partition in its own order
        parse, window, state = ParseStage(templates, r"blk_-?\d+"), WindowStage(60, 50), {}
        for index in read_order:
            window.on_message(state, 0, parse.process([sent[index]], waiting={"raw/0", "raw/1"}).events)
        sequences += [c.keys for c in window.flush(state, 0, watermark=float("inf"))]
    one_message = RawMessage("\n".join(lines).encode(), "raw", 0, 0, 1.7e9)
    in_send_order = [event[0] for event in ParseStage(templates, r"blk_-?\d+").process([one_message]).events["blk_1"]]
    assert sorted(in_send_order) == [0, 1, 2, 3] and sequences == [in_send_order] * 3


def test_what_a_key_adds_to_its_session_is_small_and_state_from_before_still_takes_keys():
    """The changelog writes a session whole at every change: each key's time and tie are kept as
    small numbers (differences from the session's first key, an index of its partition), not as
    epoch seconds, a send time, an offset and a partition name, which doubled the changelog."""
    state: dict[str, dict] = {}
    sent = 1_700_000_000_002
    SessionWindower(60, 100).add_all(state, "s", [
        [1, 5.0, 5.0, "raw/1", 1_000_000, None, sent], [2, 5.0, 5.0, "raw/0", 1_000_000, None, sent],
        [3, 5.0, 5.0, "raw/0", 999_999, None, sent + 1], [4, 1.7e9 + 0.5, 5.0, "raw/0", 7, None, sent]])  # fmt: skip
    value = json.loads(json.dumps(state["s"]))
    assert value["keys"] == [2, 1, 3, 4]  # in time; of one time by send time, then offset, then partition name
    assert value["base"] == [5.0, sent, 1_000_000] and value["times"] == [0.0, 0.0, 0.0, 1.7e9 - 4.5]
    assert value["ties"] == [[0, 0, 1], [0, 0, 0], [1, -1, 1], [0, -999_993, 1]]
    assert value["tie_origins"] == ["raw/1", "raw/0"]
    for earlier in (  # as workers wrote it before: ties as [send time, offset, name]; no ties; no times
        {"keys": [2, 1], "times": [5.0, 6.0], "ties": [[1.7e9, 3, "raw/0"]] * 2, "start": 5.0, "end": 6.0},
        {"keys": [2, 1], "times": [5.0, 6.0], "start": 5.0, "end": 6.0},
        {"keys": [2, 1], "start": 5.0, "end": 6.0},
    ):  # fmt: skip
        sessions = {"s": {**earlier, "part": 0, "origins": {"raw/0": [3, 4]}, "unseen": {}, "through": {"raw/0": 4}}}
        SessionWindower(60, 100).add_all(
            sessions, "s", [[9, 5.5, 5.5, "raw/0", 7, None, sent], [8, 4.0, 5.5, "raw/0", 8, None, sent]]
        )
        assert sessions["s"]["keys"] == ([8, 2, 9, 1] if "times" in earlier else [8, 2, 1, 9])
        assert len(sessions["s"]["times"]) == len(sessions["s"]["ties"]) == 4


def test_key_events_of_an_older_worker_without_raw_line_or_send_time_join_as_with_their_defaults():
    short = {}
    SessionWindower(60, 100).add_all(short, "s", [[1, 5.0, 5.0, "raw/0", 3], [2, 5.0, 5.0, "raw/0", 2, "a line"],
                                                  [0, 4.0, 5.0, "raw/1", 9, None, 7]])  # fmt: skip
    full = {}
    SessionWindower(60, 100).add_all(full, "s", [[1, 5.0, 5.0, "raw/0", 3, None, 0], [2, 5.0, 5.0, "raw/0", 2, "a line", 0],
                                                 [0, 4.0, 5.0, "raw/1", 9, None, 7]])  # fmt: skip
    assert short == full
    assert full["s"]["keys"] == [0, 2, 1] and full["s"]["unseen"] == {"1": "a line"}


def test_keys_and_sequences_messages_stay_bounded_whatever_the_shippers_batch():
    from streaming.messages import bounded_runs
    from streaming.stages import RawMessage

    messages = [RawMessage(b"x" * size, "raw", 0, n, 0.0) for n, size in enumerate([100, 100, 300, 50, 50])]
    parts = bounded_runs(messages, lambda m: len(m.value), 250)
    assert [[m.offset for m in part] for part in parts] == [[0, 1], [2], [3, 4]]  # a big one alone, none split
    closed = [ClosedSequence(f"s{n}", 0, [0] * size, 0.0, 0.0, True) for n, size in enumerate([3, 3, 9, 1])]
    chunks = bounded_runs(closed, lambda c: len(c.keys), 6)
    assert [[c.session for c in chunk] for chunk in chunks] == [["s0", "s1"], ["s2"], ["s3"]]
    assert bounded_runs([], len, 6) == []


def test_the_window_exports_the_event_time_it_reached():
    from prometheus_client import REGISTRY

    from agents.window import window_step

    stage = WindowStage(idle_timeout=60, max_keys=100)
    window_step(stage, {}, 3, {"sessions": {"blk_1": [[0, 1234.5, 1234.5, "raw/0", 1]]}}, {})
    assert REGISTRY.get_sample_value("logbert_event_time_seconds", {"stage": "window", "partition": "3"}) == 1234.5


def _reference_sessions(events: list[tuple], idle_timeout: float, max_keys: int) -> list[tuple]:
    """What a session's key events should give, by the rule written out plainly: an event whose
    watermark is the timeout past the session's end starts a new session; keys take their place by
    time (equal times by send time, offset and partition, then in arrival order); max_keys cuts a part.
    (part, keys, start, end, closed, origins, unseen)"""
    out, part, rows = [], 0, []

    def close(closed: bool) -> tuple:
        ordered = sorted(rows, key=lambda r: (r[0], r[1], r[5], r[4], r[2]))
        origins: dict[str, list[int]] = {}
        for *_, origin, offset, _raw in rows:
            span = origins.setdefault(origin, [offset, offset])
            span[:] = [min(span[0], offset), max(span[1], offset)]
        unseen = {i: r[6] for i, r in enumerate(ordered) if r[6] is not None}
        return part, [r[3] for r in ordered], min(r[0] for r in rows), max(r[0] for r in rows), closed, origins, unseen

    for arrival, (key, ts, watermark, origin, offset, raw, sent) in enumerate(events):
        if rows and watermark - max(r[0] for r in rows) >= idle_timeout:
            out.append(close(True))
            part, rows = 0, []
        rows.append((ts, sent, arrival, key, origin, offset, raw))
        if len(rows) >= max_keys:
            out.append(close(False))
            part, rows = part + 1, []
    if rows:
        out.append(close(False))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9),
                          st.one_of(st.integers(0, 30_000).map(lambda ms: ms / 1000), st.integers(0, 5).map(float)),
                          st.floats(0, 40), st.sampled_from(["raw/0", "raw/1"]), st.integers(0, 100),
                          st.sampled_from([None, None, "unseen line"]), st.sampled_from([0, 1, 2])),
                max_size=40),
       st.integers(1, 12))  # fmt: skip
def test_a_sessions_events_added_at_once_equal_the_rule_written_out(events, max_keys):
    windower = SessionWindower(idle_timeout=10, max_keys=max_keys)
    events = sorted(events, key=lambda e: e[2])  # watermarks only grow
    events = [(k, ts, wm, o, off, raw, sent) for k, ts, wm, o, off, raw, sent in events]
    state: dict = {}
    closed = windower.add_all(state, "s", [list(e) for e in events[: len(events) // 2]])
    closed += windower.add_all(state, "s", [list(e) for e in events[len(events) // 2 :]])  # and from the table
    closed += windower.flush(state)
    # Unseen lines beyond MAX_UNSEEN_KEPT per part are dropped; the reference keeps them all.
    got = [(c.part, c.keys, c.start, c.end, c.closed, c.origins, c.unseen_lines) for c in closed]
    want = _reference_sessions(events, 10, max_keys)
    assert [g[:6] for g in got] == [w[:6] for w in want]
    for g, w in zip(got, want):
        assert g[6].items() <= w[6].items()
        assert len(g[6]) == min(len(w[6]), 5)
