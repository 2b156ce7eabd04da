"""The serving ONNX graph of a trained LogBERT, written from its weights.

Same arithmetic as `LogBERT.forward`, arranged for scoring:
- attention runs as ONNX Runtime's fused `Attention` kernel (com.microsoft, CPU and CUDA);
- the last block runs only at position 0 (DIST) and the positions the caller asks for: the
  detection rule reads logits at masked positions only, so the last block's queries, projection,
  MLP and head skip every other position (its keys and values still cover them all);
- the rule's arithmetic on those logits runs in the graph too (models/detection.py does the same
  in numpy for any other forward function): per asked position the surprise of the true token,
  its rank and the top-g tokens, so what leaves the graph (a GPU's) is a few numbers a position
  instead of a row of logits, and the CPU is left with counting.

Inputs:  tokens (batch, length) int64, right-padded with PAD;
         positions (batch, queries) int64, the positions whose logits are wanted;
         truth (batch, queries) int64, the true token at each of them (any token where unused);
         top_g (1,) int64, how many of the most likely tokens to list (at most the vocabulary).
Outputs: logits (batch, queries, vocab) float32 at those positions;
         dist (batch, d_model) float32, the final DIST vector (position 0);
         surprise (batch, queries) float32, -log p(true token) over the predictable tokens
           (END and log keys), inf for an unpredictable one such as UNK;
         rank (batch, queries) int64, how many predictable tokens score above the true one;
         top (batch, queries, top_g) int64, the most likely predictable tokens, most likely first
           (the lower token first on ties, as a stable sort gives).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.vocab import PAD, UNPREDICTABLE

OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime that runs opset 17
INPUT_NAMES = ("tokens", "positions", "truth", "top_g")
OUTPUT_NAMES = ("logits", "dist", "surprise", "rank", "top")


class _GraphWriter:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.count = 0

    def constant(self, name: str, value: np.ndarray) -> str:
        if name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(value), name)
        return name

    def weight(self, name: str, transpose: bool = False) -> str:
        value = self.weights[name].astype(np.float32)
        return self.constant(name, value.T if transpose else value)

    def op(self, op_type: str, *inputs: str, outputs: int = 1, microsoft: bool = False, **attributes):
        self.count += 1
        names = [f"{op_type}_{self.count}_{i}" for i in range(outputs)]
        domain = "com.microsoft" if microsoft else None
        self.nodes.append(helper.make_node(op_type, list(inputs), names, domain=domain, **attributes))
        return names[0] if outputs == 1 else names

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        return self.op("LayerNormalization", x, self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias"),
                       axis=-1, epsilon=eps)  # fmt: skip

    def linear(self, x: str, prefix: str) -> str:
        return self.op("Add", self.op("MatMul", x, self.weight(f"{prefix}.weight", transpose=True)),
                       self.weight(f"{prefix}.bias"))  # fmt: skip


def serving_graph(weights: dict[str, np.ndarray], n_layer: int, n_head: int, d_model: int, vocab_size: int,
                  eps: float = 1e-5) -> onnx.ModelProto:  # fmt: skip
    """weights: a LogBERT state dict as numpy arrays (eval mode: dropout is left out)."""
    g = _GraphWriter(weights)
    tokens, positions, truth, top_g = INPUT_NAMES
    one_d = lambda *v: g.constant(f"const_{'_'.join(map(str, v))}", np.array(v, dtype=np.int64))  # noqa: E731

    shape = g.op("Shape", tokens)
    length = g.op("Slice", shape, one_d(1), one_d(2))
    position_table = g.op("Slice", g.weight("position_embedding.weight"), one_d(0), length)
    x = g.op("Add", g.op("Gather", g.weight("key_embedding.weight"), tokens), position_table)
    # Rows are right-padded, so each row's keys end at its count of non-PAD tokens.
    is_pad = g.op("Equal", tokens, g.constant("pad_token", np.array(PAD, dtype=np.int64)))
    real = g.op("Cast", g.op("Not", is_pad), to=TensorProto.INT32)
    key_lengths = g.op("ReduceSum", real, one_d(1), keepdims=0)

    # The last block runs at position 0 (DIST) and the asked positions, found by their flat row
    # index (row * length + position) in the (batch * length, d_model) activations.
    batch = g.op("Slice", shape, one_d(0), one_d(1))
    with_dist = g.op("Concat", g.op("ConstantOfShape", g.op("Concat", batch, one_d(1), axis=0),
                                    value=helper.make_tensor("zero_position", TensorProto.INT64, [1], [0])),
                     positions, axis=1)  # fmt: skip
    row_starts = g.op("Mul", g.op("Range", g.constant("zero", np.array(0, dtype=np.int64)),
                                  g.op("Squeeze", batch), g.constant("step", np.array(1, dtype=np.int64))),
                      g.op("Squeeze", length))  # fmt: skip
    flat_positions = g.op("Add", with_dist, g.op("Unsqueeze", row_starts, one_d(1)))
    flat_rows = g.constant("flat_rows", np.array([-1, d_model], dtype=np.int64))

    for i in range(n_layer):
        block = f"blocks.{i}"
        normed = g.layer_norm(x, f"{block}.ln1", eps)
        qkv_weight = weights[f"{block}.attention.qkv.weight"].astype(np.float32).T  # (d, 3d): q | k | v
        qkv_bias = g.weight(f"{block}.attention.qkv.bias")
        if i < n_layer - 1:
            attended = g.op("Attention", normed, g.constant(f"{block}.qkv.weight_t", qkv_weight), qkv_bias,
                            key_lengths, microsoft=True, num_heads=n_head)  # fmt: skip
        else:  # the last block: queries only at the asked positions
            x = g.op("Gather", g.op("Reshape", x, flat_rows), flat_positions)
            query = g.op("MatMul", g.op("Gather", g.op("Reshape", normed, flat_rows), flat_positions),
                         g.constant(f"{block}.q.weight_t", qkv_weight[:, :d_model]))  # fmt: skip
            key_value = g.op("MatMul", normed, g.constant(f"{block}.kv.weight_t", qkv_weight[:, d_model:]))
            key, value = g.op("Split", key_value, one_d(d_model, d_model), outputs=2, axis=2)
            attended = g.op("MultiHeadAttention", query, key, value, qkv_bias, key_lengths, microsoft=True,
                            num_heads=n_head)  # fmt: skip
        x = g.op("Add", x, g.linear(attended, f"{block}.attention.proj"))
        hidden = g.op("MatMul", g.layer_norm(x, f"{block}.ln2", eps), g.weight(f"{block}.mlp.0.weight", transpose=True))
        hidden = g.op("BiasGelu", hidden, g.weight(f"{block}.mlp.0.bias"), microsoft=True)  # exact (erf) GELU
        x = g.op("Add", x, g.linear(hidden, f"{block}.mlp.2"))

    final = g.layer_norm(x, "ln_final", eps)
    head = g.linear(g.op("Slice", final, one_d(1), one_d(2**62), one_d(1)), "mlkp_head")
    dist = g.op("Squeeze", g.op("Slice", final, one_d(0), one_d(1), one_d(1)), one_d(1))
    surprise, rank, top = _rule_arithmetic(g, head, truth, top_g, vocab_size)
    for value, name in zip((head, dist, surprise, rank, top), OUTPUT_NAMES):
        g.nodes.append(helper.make_node("Identity", [value], [name]))

    graph = helper.make_graph(
        g.nodes, "logbert_serving",
        [helper.make_tensor_value_info(tokens, TensorProto.INT64, ["batch", "length"]),
         helper.make_tensor_value_info(positions, TensorProto.INT64, ["batch", "queries"]),
         helper.make_tensor_value_info(truth, TensorProto.INT64, ["batch", "queries"]),
         helper.make_tensor_value_info(top_g, TensorProto.INT64, [1])],
        [helper.make_tensor_value_info(OUTPUT_NAMES[0], TensorProto.FLOAT, ["batch", "queries", vocab_size]),
         helper.make_tensor_value_info(OUTPUT_NAMES[1], TensorProto.FLOAT, ["batch", d_model]),
         helper.make_tensor_value_info(OUTPUT_NAMES[2], TensorProto.FLOAT, ["batch", "queries"]),
         helper.make_tensor_value_info(OUTPUT_NAMES[3], TensorProto.INT64, ["batch", "queries"]),
         helper.make_tensor_value_info(OUTPUT_NAMES[4], TensorProto.INT64, ["batch", "queries", "top_g"])],
        list(g.initializers.values()),
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _rule_arithmetic(g: _GraphWriter, logits: str, truth: str, top_g: str, vocab_size: int) -> tuple[str, str, str]:
    """models.detection's per-position arithmetic (`_rank_logits`), on the logits at the asked positions."""
    last = g.constant("last_axis", np.array([-1], dtype=np.int64))
    never = np.zeros(vocab_size, dtype=np.float32)
    never[list(UNPREDICTABLE)] = -np.inf  # only END and log keys can be predicted
    selected = g.op("Add", logits, g.constant("unpredictable", never))
    peak = g.op("ReduceMax", selected, axes=[-1], keepdims=1)  # log-sum-exp shifted by the largest logit
    log_norm = g.op("Add", peak, g.op("Log", g.op("ReduceSum", g.op("Exp", g.op("Sub", selected, peak)), last)))
    true_logit = g.op("GatherElements", selected, g.op("Unsqueeze", truth, last), axis=-1)
    surprise = g.op("Squeeze", g.op("Sub", log_norm, true_logit), last)
    above = g.op("Cast", g.op("Greater", selected, true_logit), to=TensorProto.FLOAT)  # float sums: CUDA has them all
    rank = g.op("Cast", g.op("ReduceSum", above, last, keepdims=0), to=TensorProto.INT64)
    _, top = g.op("TopK", selected, top_g, outputs=2, axis=-1, largest=1, sorted=1)
    return surprise, rank, top
