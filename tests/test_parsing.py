import json

import pytest

from logkeys.presets import get_preset, parse_timestamp
from logkeys.templates import UNSEEN, LineSplitter, TemplateSet, mine_templates
from tests.conftest import dataset

HDFS_LINE = (
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 "
    "src: /10.250.19.102:54106 dest: /10.250.19.102:50010"
)
BGL_LINE = (
    "KERNDTLB 1117869876 2005.06.04 R17-M1-N4-I:J18-U11 2005-06-04-00.24.36.222560 R17-M1-N4-I:J18-U11 "
    "RAS KERNEL FATAL data TLB error interrupt"
)


def test_hdfs_header_split_and_timestamp():
    preset = get_preset("hdfs")
    content, fields = LineSplitter(preset).split(HDFS_LINE)
    assert content.startswith("Receiving block blk_-1608999687919862906")
    assert fields["component"] == "dfs.DataNode$DataXceiver"
    assert parse_timestamp(preset, fields) == 1226262918.0  # 2008-11-09 20:35:18 UTC


def test_bgl_header_split_keeps_level_and_label():
    preset = get_preset("bgl")
    content, fields = LineSplitter(preset).split(BGL_LINE)
    assert content == "KERNEL FATAL data TLB error interrupt"
    assert fields["label"] == "KERNDTLB"
    assert fields["source"] == "R17-M1-N4-I:J18-U11"
    assert parse_timestamp(preset, fields) is not None


@pytest.mark.parametrize(
    "text",
    ["2005-06-03-15.42.50.363779", "2005-06-03-15.42.50.5", "2005-06-03-15.42.50.000001", "2005-06-03-15.42.50",
     "2005-13-03-15.42.50.1", "2005-06-03-15.42.50.1234567", "2005-06-03-15.42.50.-1", "2005-06-03-15.42.50.",
     "2005-06-03-15.42.50.١", "x.1"],
)  # fmt: skip
def test_cached_timestamps_equal_strptime(text):
    from datetime import datetime, timezone

    try:
        expected = datetime.strptime(text, "%Y-%m-%d-%H.%M.%S.%f").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        expected = None
    for _ in range(2):  # the second call is answered from the cache
        assert parse_timestamp(get_preset("bgl"), {"ts": text}) == expected


@pytest.mark.parametrize("timestamp_format", ["%y%m%d %H%M%S", "%Y-%m-%d-%H.%M.%S", "%Y%m%d%H%M%S"])
def test_fixed_width_timestamps_equal_strptime(timestamp_format):
    """The fast path for zero-padded fields gives strptime's answer on valid, invalid and odd texts."""
    import random
    from datetime import datetime, timezone

    from logkeys.presets import TimestampParser

    rng = random.Random(7)
    edges = ["00", "01", "09", "12", "13", "23", "24", "28", "29", "30", "31", "32", "59", "60", "61", "68", "69", "99"]
    samples = []
    for _ in range(3000):
        fields = [rng.choice(edges) if rng.random() < 0.5 else f"{rng.randrange(100):02d}" for _ in range(6)]
        year = fields[0] if "%y" in timestamp_format else rng.choice(["1999", "2000", "2005", "0001", "9999", "0000"])
        text = timestamp_format
        for code, value in zip(["%Y" if "%Y" in timestamp_format else "%y", "%m", "%d", "%H", "%M", "%S"],
                               [year, *fields[1:]]):  # fmt: skip
            text = text.replace(code, value, 1)
        samples.append(text)
    for _ in range(500):  # valid ones, %y's whole range (1969-2068)
        moment = datetime(1969, 1, 1, tzinfo=timezone.utc).timestamp() + rng.random() * 100 * 365.25 * 86400
        samples.append(datetime.fromtimestamp(moment, timezone.utc).strftime(timestamp_format))
    minute = datetime(2008, 11, 9, 20, 35, tzinfo=timezone.utc).strftime(timestamp_format)[:-2]
    samples += [minute + f"{second:02d}" for second in range(100)] + [minute + "٣٣", "٢٠٠٨" + minute[4:] + "33"]
    samples += [timestamp_format.replace("%", ""), "", " 081109 203518", "081109  203518", "081109\t203518",
                "81109 203518", "081109 2035180"]  # fmt: skip
    parser = TimestampParser(timestamp_format)
    for text in samples:
        try:
            expected = datetime.strptime(text, timestamp_format).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            expected = None
        assert parser((text,)) == expected, text
    assert parser.fixed_width is not None  # the fast path was taken


def test_masking_collapses_variable_parts_into_one_template():
    lines = [
        HDFS_LINE,
        HDFS_LINE.replace("blk_-1608999687919862906", "blk_7503483334202473044").replace("10.250.19.102", "10.251.7.1"),
    ]
    templates = mine_templates(lines, get_preset("hdfs"))
    assert len(templates) == 1
    assert templates.templates[0].text == "Receiving block <BLK> src: /<IP> dest: /<IP>"


def test_frozen_templates_never_grow_and_unknown_lines_are_unseen():
    templates = mine_templates([HDFS_LINE], get_preset("hdfs"))
    assert templates.parse(HDFS_LINE).key == 0
    assert templates.parse("081109 203518 35 INFO dfs.FSNamesystem: something never seen before").key == UNSEEN
    assert len(templates) == 1


def test_templates_round_trip_through_plain_json(tmp_path):
    templates = mine_templates([HDFS_LINE, BGL_LINE], get_preset("hdfs"))
    templates.save(tmp_path / "templates.json")
    data = json.loads((tmp_path / "templates.json").read_text())
    assert "py/object" not in json.dumps(data)  # no jsonpickle markers
    loaded = TemplateSet.load(tmp_path / "templates.json")
    assert [t.text for t in loaded.templates] == [t.text for t in templates.templates]
    assert loaded.parse(HDFS_LINE).key == templates.parse(HDFS_LINE).key


def test_rejects_template_file_of_another_kind():
    with pytest.raises(ValueError):
        TemplateSet.from_json({"format": "something-else", "kind": "drain", "templates": []})


@pytest.mark.datasets
@pytest.mark.parametrize(
    "preset, relative",
    [("hdfs", "hdfs/HDFS_2000.log"), ("bgl", "loghub-2k/BGL/BGL_2k.log")],
)
def test_frozen_matcher_agrees_with_drain3_match_on_real_lines(preset, relative):
    """Our matcher must give the template drain3's own match(..., 'always') gives."""
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    from logkeys.templates import make_masker

    path = dataset(relative)
    lines = path.read_text(errors="replace").splitlines()
    p = get_preset(preset)
    splitter = LineSplitter(p)
    config = TemplateMinerConfig()
    config.masking_instructions = make_masker(p).masking_instructions
    config.drain_sim_th, config.drain_depth = p.sim_th, p.depth
    config.drain_extra_delimiters = list(p.extra_delimiters)
    miner = TemplateMiner(config=config)
    for line in lines:
        miner.add_log_message(splitter.split(line)[0])
    ours = TemplateSet.from_json(
        {
            "format": "logbert-templates/1",
            "kind": "drain",
            "preset": preset,
            "templates": [
                {"event": f"T{c.cluster_id}", "template": c.get_template()}
                for c in sorted(miner.drain.clusters, key=lambda c: c.cluster_id)
            ],
        }
    )
    by_event = {t.event: i for i, t in enumerate(ours.templates)}
    for line in lines:
        content = splitter.split(line)[0]
        theirs = miner.match(content, full_search_strategy="always")
        assert theirs is not None
        assert ours.parse(line).key == by_event[f"T{theirs.cluster_id}"], line


@pytest.mark.datasets
def test_hdfs_2000_mines_a_small_template_set():
    lines = dataset("hdfs/HDFS_2000.log").read_text().splitlines()
    templates = mine_templates(lines, get_preset("hdfs"))
    assert 8 <= len(templates) <= 30
    assert all(templates.parse(line).key != UNSEEN for line in lines)


_TOKEN_PIECES = ["blk_-160899", "blk_7", "10.250.19.102", ":50010", "/10.0.0.1:5", "0x1F", "0xg", "/a/b.c/", "-3", "+4.5",
                 "1.2.3", "12345678", "deadbeef9", "R17-M1-N4-I:J18-U11", "core.123", "abc", "a.b", "x-1", "$", ":",
                 ".", "/", "<*>", "é9", "٣"]  # fmt: skip
_SPACES = [" ", "  ", "\t", "\x1c", "\u2028", "\xa0", ""]


@pytest.mark.parametrize("preset_name", ["hdfs", "bgl", "generic"])
def test_token_masking_gives_drain3s_tokens(preset_name):
    """Masking token by token with a cache equals drain3's masking of the whole line, whitespace
    runs aside (templates are token lists), on lines built to probe the masks' edges."""
    import random

    from logkeys.masking import TokenMasker
    from logkeys.templates import make_masker

    masker = make_masker(get_preset(preset_name))
    assert TokenMasker.applies_to(masker)
    by_token = TokenMasker(masker, max_cached=50)  # small: the cache is cleared along the way
    assert by_token.by_shape is not None  # tokens of one shape share their masked form where they can
    rng = random.Random(5)
    for _ in range(3000):
        line = "".join(rng.choice(_TOKEN_PIECES) + rng.choice(_SPACES) for _ in range(rng.randrange(1, 8)))
        assert by_token.mask(line).split() == masker.mask(line).split(), line


@pytest.mark.parametrize("pattern", [r"[1-5]\d", r"7+", r"(\d)\1", r"[^3]x", r"(x)?(?(1)a|b)"])
def test_masks_that_tell_digits_apart_are_not_applied_by_shape(pattern):
    from drain3.masking import LogMasker, MaskingInstruction

    from logkeys.masking import TokenMasker, digit_blind

    assert not digit_blind(pattern)
    assert digit_blind(r"(?<![\w])0x[0-9a-fA-F]+") and digit_blind(r"blk_-?\d+")
    masker = LogMasker([MaskingInstruction(pattern, "M"), MaskingInstruction(r"\d+", "NUM")], "<", ">")
    by_token = TokenMasker(masker)
    assert by_token.by_shape is None
    for token in ["15", "61", "77", "11", "22", "3x", "4x", "1x"]:
        assert by_token.mask(token) == masker.mask(token)
    digits_in_mask = LogMasker([MaskingInstruction(r"\d+", "N2")], "<", ">")
    assert TokenMasker(digits_in_mask).by_shape is None  # "<N2>" would come out of a shape as "<N1>"


@pytest.mark.parametrize("pattern", [r"a\sb", r"^x", r"x$", r"[^a]+", r".+", r"\d*", r"x(?=\s)", r"[ -~]+", r"\W"])
def test_masks_that_could_see_whitespace_keep_whole_line_masking(pattern):
    from logkeys.masking import token_safe

    assert not token_safe(pattern, "X")
    assert token_safe(r"(?<![\w.])\d+\b", "NUM")
