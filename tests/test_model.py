"""The torch module, its losses, training reproducibility, ONNX export parity and the model directory."""

import json
import shutil

import numpy as np
import pytest
import torch

from models.detection import DetectionSettings, score_sequences
from models.export import export_onnx, torch_forward
from models.logbert import LogBERT, LogBERTConfig, mlkp_loss, vhm_loss
from models.scorer import OnnxScorer
from models.train import TrainSettings, train_logbert
from models.vocab import DIST, END_KEY, N_SPECIAL, PAD
from tests.conftest import dataset

TINY = dict(n_layer=1, n_head=2, d_model=16, d_ff=32, dropout=0.0, max_len=32)


def test_mlkp_loss_counts_masked_positions_only():
    logits = torch.zeros(1, 3, 4)
    logits[0, 1, 2] = 10.0
    targets = torch.tensor([[-100, 2, -100]])
    assert mlkp_loss(logits, targets).item() == pytest.approx(0.0, abs=1e-3)
    logits[0, 0, :] = torch.tensor([0.0, 50.0, 0.0, 0.0])  # unmasked position: ignored
    assert mlkp_loss(logits, targets).item() == pytest.approx(0.0, abs=1e-3)


def test_vhm_loss_is_mean_squared_distance_to_centre():
    dist = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert vhm_loss(dist, torch.zeros(2)).item() == pytest.approx((1 + 4) / 2)


def test_padding_does_not_change_real_positions():
    torch.manual_seed(0)
    model = LogBERT(LogBERTConfig(vocab_size=N_SPECIAL + 5, **TINY)).eval()
    short = torch.tensor([[DIST, 6, 7, 8]])
    padded = torch.tensor([[DIST, 6, 7, 8, PAD, PAD]])
    with torch.no_grad():
        a, da = model(short)
        b, db = model(padded)
    assert torch.allclose(a, b[:, :4], atol=1e-5)
    assert torch.allclose(da, db, atol=1e-5)


@pytest.mark.parametrize("n_layer", [1, 3])
def test_the_serving_graph_computes_the_torch_model_at_the_asked_positions(tmp_path, n_layer):
    torch.manual_seed(n_layer)
    model = LogBERT(LogBERTConfig(vocab_size=N_SPECIAL + 7, **{**TINY, "n_layer": n_layer})).eval()
    rng = np.random.default_rng(n_layer)
    lengths = [1, 2, 9, 20, 20, 5]
    tokens = np.full((len(lengths), max(lengths)), PAD, dtype=np.int64)
    positions = np.zeros((len(lengths), 4), dtype=np.int64)
    for row, length in enumerate(lengths):
        tokens[row, :length] = [DIST, *rng.integers(1, N_SPECIAL + 7, length - 1)]
        positions[row] = rng.integers(0, length, 4)
    export_onnx(model, tmp_path / "model.onnx")
    logits, dist = OnnxScorer(tmp_path / "model.onnx", provider="cpu")(tokens, positions)
    with torch.no_grad():
        full_logits, full_dist = model(torch.from_numpy(tokens))
    expected = np.take_along_axis(full_logits.numpy(), positions[:, :, None], axis=1)
    assert logits.shape == expected.shape and np.abs(logits - expected).max() < 1e-5
    assert np.abs(dist - full_dist.numpy()).max() < 1e-5


def test_a_graph_exported_with_logits_everywhere_still_scores_the_same(tmp_path):
    """Model directories exported before the serving graph take tokens only."""
    torch.manual_seed(4)
    model = LogBERT(LogBERTConfig(vocab_size=N_SPECIAL + 5, **TINY)).eval()
    export_onnx(model, tmp_path / "serving.onnx")
    example = torch.full((2, 8), N_SPECIAL, dtype=torch.int64)
    torch.onnx.export(model, (example,), str(tmp_path / "legacy.onnx"), input_names=["tokens"],
                      output_names=["logits", "dist"], opset_version=17, dynamo=False,
                      dynamic_axes={"tokens": {0: "batch", 1: "length"}, "logits": {0: "batch", 1: "length"},
                                    "dist": {0: "batch"}})  # fmt: skip
    settings = DetectionSettings(top_g=2, mask_stride=3, max_len=TINY["max_len"])
    sequences = _toy_sequences(20, 5) + [[0, 1, *([2, 3] * 30), END_KEY]]
    scores = [score_sequences(sequences, OnnxScorer(tmp_path / name, provider="cpu"), np.zeros(TINY["d_model"]),
                              settings, explain_all=True) for name in ("serving.onnx", "legacy.onnx")]  # fmt: skip
    assert [(s.masked, s.misses) for s in scores[0]] == [(s.masked, s.misses) for s in scores[1]]
    assert [[m.expected for m in s.missed] for s in scores[0]] == [[m.expected for m in s.missed] for s in scores[1]]
    assert np.allclose([s.max_surprise for s in scores[0]], [s.max_surprise for s in scores[1]], atol=1e-5)


def _toy_sequences(n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[0, 1, *([2, 3] * int(rng.integers(1, 4))), 4, END_KEY] for _ in range(n)]


def test_training_is_seeded_and_reproducible():
    config = LogBERTConfig(vocab_size=N_SPECIAL + 5, **TINY)
    settings = TrainSettings(epochs=2, batch_size=16, seed=5, progress=False)
    first = train_logbert(_toy_sequences(60, 1), _toy_sequences(10, 2), config, settings)
    second = train_logbert(_toy_sequences(60, 1), _toy_sequences(10, 2), config, settings)
    for (name, a), (_, b) in zip(first.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert np.array_equal(first.centre, second.centre)
    assert first.history == second.history


def test_training_reduces_validation_loss():
    config = LogBERTConfig(vocab_size=N_SPECIAL + 5, **TINY)
    result = train_logbert(
        _toy_sequences(200, 1), _toy_sequences(40, 2), config, TrainSettings(epochs=6, seed=1, progress=False)
    )
    assert result.history[-1]["val_mlkp"] < result.history[0]["val_mlkp"]


def _assert_parity(model: LogBERT, sequences: list[list[int]], path, top_g: int) -> None:
    export_onnx(model, path)
    onnx_forward = OnnxScorer(path, provider="cpu")
    eager = torch_forward(model)
    settings = DetectionSettings(top_g=top_g, mask_stride=4, max_len=model.config.max_len, batch_rows=64)
    # logits on the very batches the detector builds
    captured = []

    def both(tokens, positions):
        a, da = onnx_forward(tokens, positions)
        b, db = eager(tokens, positions)
        captured.append((np.abs(a - b).max(), np.abs(da - db).max()))
        top_onnx = np.sort(np.argsort(-a, axis=-1)[..., :top_g], axis=-1)
        top_torch = np.sort(np.argsort(-b, axis=-1)[..., :top_g], axis=-1)
        assert np.array_equal(top_onnx, top_torch)  # the same top-g set at every asked position
        return a, da

    onnx_scores = score_sequences(sequences, both, np.zeros(model.config.d_model), settings)
    torch_scores = score_sequences(sequences, eager, np.zeros(model.config.d_model), settings)
    assert max(c[0] for c in captured) < 1e-4
    assert max(c[1] for c in captured) < 1e-4
    for o, t in zip(onnx_scores, torch_scores):
        assert (o.masked, o.misses) == (t.masked, t.misses)
        assert [m.expected for m in o.missed] == [m.expected for m in t.missed]
    # what a worker runs: the graph ranks the true tokens itself
    assert onnx_forward.ranks is not None
    ranked = score_sequences(sequences, onnx_forward, np.zeros(model.config.d_model), settings, explain_all=True)
    eager_all = score_sequences(sequences, eager, np.zeros(model.config.d_model), settings, explain_all=True)
    for o, t in zip(ranked, eager_all):
        assert (o.length, o.masked, o.misses, o.unseen) == (t.length, t.masked, t.misses, t.unseen)
        assert [(m.position, m.actual, m.expected) for m in o.missed] == [
            (m.position, m.actual, m.expected) for m in t.missed
        ]
        assert np.allclose([m.probability for m in o.missed], [m.probability for m in t.missed], atol=1e-4)
        assert o.max_surprise == pytest.approx(t.max_surprise, abs=1e-4)
        assert o.mean_surprise == pytest.approx(t.mean_surprise, abs=1e-4)
        assert o.distance == pytest.approx(t.distance, abs=1e-4)


def test_the_graph_ranks_true_tokens_as_the_numpy_rule_does():
    """Ties everywhere (small integer logits), and true tokens that cannot be predicted (PAD, UNK...)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from models.detection import _rank_logits
    from models.serving_graph import IR_VERSION, OPSET, _GraphWriter, _rule_arithmetic

    vocab, top_g = N_SPECIAL + 9, 4
    g = _GraphWriter({})
    outputs = _rule_arithmetic(g, "logits", "truth", "top_g", vocab)
    g.nodes += [helper.make_node("Identity", [value], [name]) for value, name in zip(outputs, ("s", "r", "t"))]
    graph = helper.make_graph(
        g.nodes, "rule",
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, None, vocab]),
         helper.make_tensor_value_info("truth", TensorProto.INT64, [None, None]),
         helper.make_tensor_value_info("top_g", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info(name, kind, None)
         for name, kind in (("s", TensorProto.FLOAT), ("r", TensorProto.INT64), ("t", TensorProto.INT64))],
        list(g.initializers.values()),
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    logits = rng.integers(-3, 3, (6, 11, vocab)).astype(np.float32)
    logits[0] = 1.0  # every token alike
    logits[1] *= 3.7  # not whole numbers
    truth = rng.integers(0, vocab, (6, 11))
    surprise, rank, top = session.run(None, {"logits": logits, "truth": truth, "top_g": np.array([top_g])})
    expected = _rank_logits(logits.reshape(-1, vocab), truth.reshape(-1), top_g)
    assert np.array_equal(rank.reshape(-1), expected.rank)
    assert np.array_equal(top.reshape(-1, top_g), expected.top(np.arange(truth.size)))
    finite = np.isfinite(expected.surprise)
    assert np.array_equal(np.isfinite(surprise.reshape(-1)), finite) and not finite.all()
    assert np.allclose(surprise.reshape(-1)[finite], expected.surprise[finite], atol=1e-5)


def test_onnx_matches_torch_on_generated_sequences(tmp_path):
    config = LogBERTConfig(vocab_size=N_SPECIAL + 5, **{**TINY, "max_len": 16})
    result = train_logbert(_toy_sequences(80, 3), [], config, TrainSettings(epochs=2, seed=3, progress=False))
    long = [[0, 1, *([2, 3] * 20), 4, END_KEY]]  # chunked: longer than max_len
    _assert_parity(result.model, _toy_sequences(50, 9) + long, tmp_path / "model.onnx", top_g=2)


@pytest.mark.datasets
def test_onnx_matches_torch_on_real_hdfs_sequences(tmp_path):
    from commands.common import key_sequences
    from logkeys.presets import get_preset
    from logkeys.templates import mine_templates
    from sequences.readers import ReadOptions, read_dataset

    data = read_dataset(dataset("hdfs/HDFS_2000.log"), ReadOptions("hdfs"))
    templates = mine_templates(data.contents, get_preset("hdfs"))
    sequences = key_sequences(data, data.sequences, templates)
    config = LogBERTConfig(vocab_size=len(templates) + N_SPECIAL, n_layer=2, n_head=2, d_model=32, d_ff=64, max_len=64)
    result = train_logbert(sequences[:300], sequences[300:], config, TrainSettings(epochs=2, seed=2, progress=False))
    _assert_parity(result.model, sequences, tmp_path / "model.onnx", top_g=6)


def test_model_directory_is_validated(trained_model, tmp_path):
    from models.artefact import ModelDirectoryError
    from models.detector import Detector

    detector = Detector.load(trained_model, provider="cpu")
    assert detector.provider == "CPUExecutionProvider"
    assert len(detector.version) == 12

    broken = tmp_path / "broken"
    shutil.copytree(trained_model, broken)
    (broken / "model.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelDirectoryError, match="model.onnx"):
        Detector.load(broken, provider="cpu")

    mismatched = tmp_path / "mismatched"
    shutil.copytree(trained_model, mismatched)
    templates = json.loads((mismatched / "templates.json").read_text())
    templates["templates"] = templates["templates"][:-1]
    (mismatched / "templates.json").write_text(json.dumps(templates))
    with pytest.raises(ModelDirectoryError, match="templates"):
        Detector.load(mismatched, provider="cpu")

    with pytest.raises(ModelDirectoryError, match="not found"):
        Detector.load(tmp_path / "nowhere", provider="cpu")

    no_config = tmp_path / "no_config"
    shutil.copytree(trained_model, no_config)
    (no_config / "config.json").unlink()
    with pytest.raises(ModelDirectoryError, match="config.json"):
        Detector.load(no_config, provider="cpu")


def test_scores_are_deterministic_across_loads(trained_model, generated_hdfs):
    from commands.common import key_sequences
    from models.detector import Detector
    from sequences.readers import ReadOptions, read_dataset

    data = read_dataset(generated_hdfs[0], ReadOptions("hdfs"))
    first = Detector.load(trained_model, provider="cpu")
    sequences = key_sequences(data, data.sequences[-200:], first.vocabulary)
    a = first.score(sequences, distances="all")
    b = Detector.load(trained_model, provider="cpu").score(list(reversed(sequences)), distances="all")[::-1]
    assert [(s.misses, round(s.max_surprise, 5), round(s.distance, 5)) for s in a] == [
        (s.misses, round(s.max_surprise, 5), round(s.distance, 5)) for s in b
    ]


def test_distances_measured_for_flagged_sequences_only_leave_the_rest_of_the_score_as_it_was(
    trained_model, generated_hdfs
):
    """A worker measures the DIST distance only where it alerts: one row per chunk fewer elsewhere."""
    from commands.common import key_sequences
    from models.detector import Detector
    from sequences.readers import ReadOptions, read_dataset

    data = read_dataset(generated_hdfs[0], ReadOptions("hdfs"))
    detector = Detector.load(trained_model, provider="cpu")
    sequences = key_sequences(data, data.sequences, detector.vocabulary)
    everywhere = detector.score(sequences, distances="all")
    served = detector.score(sequences)
    flagged = [detector.is_anomalous(s) for s in everywhere]
    assert 0 < sum(flagged) < len(sequences)
    assert [detector.is_anomalous(s) for s in served] == flagged
    for all_of_it, only_flagged, is_flagged in zip(everywhere, served, flagged):
        assert (only_flagged.masked, only_flagged.misses, only_flagged.unseen, only_flagged.missed) == (
            all_of_it.masked, all_of_it.misses, all_of_it.unseen, all_of_it.missed
        )  # fmt: skip
        assert only_flagged.max_surprise == pytest.approx(all_of_it.max_surprise, abs=1e-5)
        if is_flagged:
            assert only_flagged.distance == pytest.approx(all_of_it.distance, abs=1e-5)
        else:
            assert only_flagged.distance is None
    with pytest.raises(ValueError, match="distances"):
        detector.score(sequences[:1], distances="some")


def test_a_key_outside_the_models_vocabulary_is_refused_with_its_index(trained_model):
    """Keys made with another model's vocabulary failed inside ONNX Runtime's gather, naming nothing."""
    from models.detector import Detector

    detector = Detector.load(trained_model, provider="cpu")
    last = detector.key_count - 1
    assert detector.key_count == len(detector.vocabulary)
    assert len(detector.score([[0, last, -1], []])) == 2  # the last template and an unseen key are fine
    with pytest.raises(ValueError, match=rf"key {last + 1} is not one of this model's {last + 1} templates"):
        detector.score([[0, 1], [last + 1, 0]])


def test_a_worker_scorer_lets_its_idle_threads_sleep(trained_model, generated_hdfs, monkeypatch):
    """Spinning pool threads took a fifth of a core from a busy worker's event loop; a worker turns
    them off unless LOGBERT_SCORER_SPINNING asks, and its scores stay the same."""
    from agents.pipeline import load_pipeline
    from commands.common import key_sequences
    from models.detector import Detector
    from models.scorer import SPINNING_ENTRY
    from sequences.readers import ReadOptions, read_dataset
    from streaming.settings import StreamSettings

    monkeypatch.delenv("LOGBERT_SCORER_SPINNING", raising=False)
    monkeypatch.setenv("LOGBERT_MODEL_DIR", str(trained_model))
    monkeypatch.setenv("LOGBERT_PROVIDER", "cpu")
    worker = load_pipeline(StreamSettings()).detector
    assert worker.forward.session.get_session_options().get_session_config_entry(SPINNING_ENTRY) == "0"
    monkeypatch.setenv("LOGBERT_SCORER_SPINNING", "1")
    assert StreamSettings().scorer_spinning is True

    sleeping = Detector.load(trained_model, provider="cpu", spinning=False)
    assert sleeping.forward.session.get_session_options().get_session_config_entry(SPINNING_ENTRY) == "0"
    spinning = Detector.load(trained_model, provider="cpu")
    with pytest.raises(Exception, match="does not have configuration"):
        spinning.forward.session.get_session_options().get_session_config_entry(SPINNING_ENTRY)
    data = read_dataset(generated_hdfs[0], ReadOptions("hdfs"))
    sequences = key_sequences(data, data.sequences[-100:], sleeping.vocabulary)
    assert sleeping.score(sequences) == spinning.score(sequences)
