"""ONNX export of a trained LogBERT with dynamic batch and sequence axes."""

from __future__ import annotations

from pathlib import Path

import torch

from models.logbert import LogBERT
from models.vocab import DIST, N_SPECIAL

ONNX_OPSET = 17
INPUT_NAME = "tokens"
OUTPUT_NAMES = ("logits", "dist")


def export_onnx(model: LogBERT, path: Path) -> None:
    model.eval()
    example = torch.full((2, 8), N_SPECIAL, dtype=torch.int64)
    example[:, 0] = DIST
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        dynamic_axes={
            INPUT_NAME: {0: "batch", 1: "length"},
            "logits": {0: "batch", 1: "length"},
            "dist": {0: "batch"},
        },
        opset_version=ONNX_OPSET,
        dynamo=False,
    )


def torch_forward(model: LogBERT):
    """The torch-eager counterpart of OnnxScorer: same inputs, same outputs, as numpy."""
    model.eval()

    @torch.no_grad()
    def forward(tokens):
        logits, dist = model(torch.from_numpy(tokens))
        return logits.numpy(), dist.numpy()

    return forward
