import re

import pytest

from sequences.readers import ReadOptions, read_dataset, read_labels
from sequences.sessions import group_by_session, mark_open_sessions, session_ids
from sequences.windows import fill_missing_timestamps, group_by_window, window_starts
from tests.conftest import dataset

BLK = re.compile(r"blk_-?\d+")


def test_a_line_naming_several_blocks_belongs_to_each():
    line = "BLOCK* ask 10.0.0.1:50010 to delete blk_1 blk_-2 blk_1"
    assert session_ids(line, BLK) == ("blk_1", "blk_-2")
    specs, without = group_by_session([("a",), ("a", "b"), (), ("b",)], [1.0, 2.0, 3.0, 9.0])
    assert [(s.id, s.records) for s in specs] == [("a", [0, 1]), ("b", [1, 3])]
    assert without == 1
    assert (specs[1].start, specs[1].end) == (2.0, 9.0)


def test_sessions_near_the_end_of_the_input_stay_open():
    specs, _ = group_by_session([("a",), ("b",), ("c",)], [0.0, 50.0, 100.0])
    assert mark_open_sessions(specs, idle_timeout=60.0) == 2
    assert [s.closed for s in specs] == [True, False, False]


def test_window_membership_is_size_over_step_windows():
    assert list(window_starts(125.0, size=300, step=60)) == [-2, -1, 0, 1, 2]
    specs = group_by_window([0.0, 30.0, 400.0], size=300, step=60)
    # each timestamp lies in exactly 5 windows; windows with no record are not emitted
    assert sum(len(s.records) for s in specs) == 15
    assert all(s.end - s.start == 300 for s in specs)
    assert specs == sorted(specs, key=lambda s: s.start)
    assert not specs[-1].closed  # its end lies after the last record


def test_windows_per_source_are_separate():
    specs = group_by_window([0.0, 1.0], size=60, step=60, sources=["n1", "n2"])
    assert sorted(s.id.split("@")[0] for s in specs) == ["n1", "n2"]


def test_missing_timestamps_carry_forward_and_are_counted():
    filled, repaired = fill_missing_timestamps([None, 5.0, None, 7.0])
    assert filled == [5.0, 5.0, 5.0, 7.0]
    assert repaired == 2


def test_window_size_must_be_positive():
    with pytest.raises(ValueError):
        group_by_window([0.0], size=0, step=60)


def test_labels_csv_with_header(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("BlockId,Label\nblk_1,Normal\nblk_2,Anomaly\n")
    assert read_labels(path) == {"blk_1": False, "blk_2": True}


def test_event_formats(tmp_path):
    deeplog = tmp_path / "keys"
    deeplog.write_text("5 5 22\n\n3 4\n")
    data = read_dataset(deeplog, ReadOptions("deeplog", label_all=True))
    assert [len(s.records) for s in data.sequences] == [3, 0, 2]
    assert all(s.label for s in data.sequences)
    csv_path = tmp_path / "seq.csv"
    csv_path.write_text("BlockId,Label,Split,EventSequence\nb1,0,train,E1 E2\nb2,1,test,E3\n")
    data = read_dataset(csv_path, ReadOptions("sequences-csv"))
    assert [(s.id, s.label, s.split) for s in data.sequences] == [("b1", False, "train"), ("b2", True, "test")]
    assert data.contents == ["E1", "E2", "E3"]


def test_unknown_format_is_a_clear_error(tmp_path):
    (tmp_path / "x").write_text("")
    with pytest.raises(ValueError, match="unknown format"):
        read_dataset(tmp_path / "x", ReadOptions("nope"))
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "missing", ReadOptions("hdfs"))


@pytest.mark.datasets
def test_hdfs_20000_blocks_and_labels_match_the_readme():
    data = read_dataset(
        dataset("hdfs/HDFS_20000.log"),
        ReadOptions("hdfs", labels=dataset("hdfs/HDFS_20000_anomaly_label.csv")),
    )
    assert len({s.id for s in data.sequences}) == 1782
    assert len({s.id for s in data.sequences if s.label}) == 43
    assert len(data.sequences) >= 1782  # a block idle for the timeout and then active again is two sessions
    assert data.counts["sequences_without_label"] == 0


@pytest.mark.datasets
def test_bgl_100k_gives_about_550_windows():
    data = read_dataset(dataset("bgl/BGL_100k_structured.csv"), ReadOptions("bgl-structured"))
    assert 500 <= len(data.sequences) <= 600
    assert 100 <= sum(bool(s.label) for s in data.sequences) <= 150


@pytest.mark.datasets
def test_raw_bgl_reads_labels_from_the_first_field():
    data = read_dataset(dataset("loghub-2k/BGL/BGL_2k.log"), ReadOptions("bgl"))
    assert data.counts["records"] == 2000
    assert any(s.label for s in data.sequences)
    assert data.vocabulary_kind == "drain"


@pytest.mark.datasets
def test_deeplog_and_deeploglizer_counts():
    train = read_dataset(dataset("deeplog-hdfs/hdfs_train"), ReadOptions("deeplog"))
    assert len(train.sequences) == 4855
    sessions = read_dataset(dataset("hdfs/HDFS_100k_deeploglizer_sessions.csv"), ReadOptions("sequences-csv"))
    assert len(sessions.sequences) == 7940
    assert sum(bool(s.label) for s in sessions.sequences) == 313


def test_an_idle_gap_ends_a_session_as_a_stream_would():
    ids = [("a",), ("b",), ("a",), ("b",), ("a",)]
    specs, _ = group_by_session(ids, [0.0, 10.0, 50.0, 120.0, 125.0], idle_timeout=60.0)
    # at t=120 the watermark is 60+ past a's last record (50): a's next record starts a new part
    assert [(s.id, s.records) for s in specs] == [("a", [0, 2]), ("b", [1]), ("b", [3]), ("a", [4])]
