"""Export of a trained LogBERT to the serving ONNX graph, and its torch-eager counterpart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from models.logbert import LogBERT
from models.serving_graph import serving_graph


def export_onnx(model: LogBERT, path: Path) -> None:
    model.eval()
    weights = {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}
    config = model.config
    graph = serving_graph(weights, config.n_layer, config.n_head, config.d_model, config.vocab_size,
                          eps=model.ln_final.eps)  # fmt: skip
    onnx.save(graph, str(path))


def torch_forward(model: LogBERT):
    """The plain torch-eager counterpart of OnnxScorer: the whole model at every position, then
    the logits at the asked positions picked out; same inputs, same outputs, as numpy."""
    model.eval()

    @torch.no_grad()
    def forward(tokens: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, dist = model(torch.from_numpy(tokens))
        return np.take_along_axis(logits.numpy(), positions[:, :, None], axis=1), dist.numpy()

    return forward
