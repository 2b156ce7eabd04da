"""ONNX Runtime session for an exported LogBERT: CUDA when it really works, CPU otherwise.

onnxruntime-gpu silently falls back to CPU when CUDA cannot be loaded, so the provider in
use is read back from the session, never assumed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.vocab import DIST, N_SPECIAL

log = logging.getLogger(__name__)

PROVIDER_CHOICES = ("auto", "cuda", "cpu")


class ProviderUnavailable(RuntimeError):
    pass


SPINNING_ENTRY = "session.intra_op.allow_spinning"


def _session_options(threads: int | None, spinning: bool = True) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # the CUDA provider's load failure is reported by us, once
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        # Idle pool threads sleep instead of spinning for the next kernel: each run is slower, but
        # a worker's event loop, on the same cores, gets the CPU they would have burnt.
        options.add_session_config_entry(SPINNING_ENTRY, "0")
    return options


class OnnxScorer:
    """Runs tokens (batch, length) int64 through the model; returns the logits at the asked
    positions (batch, queries) and the DIST vectors. A serving graph that ranks the true tokens
    itself (models/serving_graph.py) also offers `ranks`, which models.detection then uses. Graphs
    exported before that (tokens and positions -> logits; or tokens only, logits everywhere) still
    work: the rule ranks their logits in numpy, and logits everywhere are picked out here."""

    def __init__(
        self, model_path: Path, provider: str = "auto", threads: int | None = None, spinning: bool = True,
        tf32: bool = False,
    ) -> None:  # fmt: skip
        """tf32: let CUDA round MatMul inputs to TF32 (10-bit mantissa), as ONNX Runtime does by
        default on Ampere and later. Off here: its logits differ from the CPU's by about 1e-3, enough
        to move top-g boundaries and surprise thresholds, so decisions would not equal the CPU's."""
        self.tf32 = tf32
        provider = (provider or "auto").lower()
        if provider not in PROVIDER_CHOICES:
            raise ValueError(f"provider must be one of {PROVIDER_CHOICES}, not {provider!r}")
        if not Path(model_path).is_file():
            raise FileNotFoundError(f"ONNX model not found: {model_path}")
        self.model_path = Path(model_path)
        self.session = self._open(provider, _session_options(threads, spinning))
        self.provider = self.session.get_providers()[0]
        self.input_names = [i.name for i in self.session.get_inputs()]
        if len(self.input_names) not in (1, 2, 4):
            raise ValueError(f"{model_path} takes inputs {self.input_names}, not (tokens[, positions[, truth, top_g]])")
        self.vocab_size = self.session.get_outputs()[0].shape[-1]
        self.ranks = self._ranks if len(self.input_names) == 4 else None

    def _open(self, provider: str, options: ort.SessionOptions) -> ort.InferenceSession:
        wants_cuda = provider == "cuda" or (
            provider == "auto" and "CUDAExecutionProvider" in ort.get_available_providers() and nvidia_device_present()
        )
        if provider == "auto" and not wants_cuda:
            log.info("scoring on CPU: no NVIDIA device or no CUDA-enabled onnxruntime")
        if wants_cuda:
            ort.set_default_logger_severity(3)
            try:
                if hasattr(ort, "preload_dlls"):
                    ort.preload_dlls()  # CUDA/cuDNN libraries from the nvidia-* wheels, when present
                session = ort.InferenceSession(
                    str(self.model_path),
                    options,
                    providers=[("CUDAExecutionProvider", {"use_tf32": str(int(self.tf32))}), "CPUExecutionProvider"],
                )
                if session.get_providers()[0] == "CUDAExecutionProvider" and self._smoke_test(session):
                    return session
                reason = "the CUDA provider did not load (no usable GPU or CUDA libraries)"
            except Exception as error:  # onnxruntime raises plain RuntimeErrors here
                reason = str(error).splitlines()[0]
            if provider == "cuda":
                raise ProviderUnavailable(f"CUDA was requested but is not usable: {reason}")
            log.info("scoring on CPU: %s", reason)
        return ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])

    @staticmethod
    def _smoke_test(session: ort.InferenceSession) -> bool:
        names = [i.name for i in session.get_inputs()]
        try:
            session.run(
                None, _feed(names, np.array([[DIST, N_SPECIAL]], dtype=np.int64), np.array([[1]], dtype=np.int64))
            )
            return True
        except Exception:
            return False

    def __call__(self, tokens: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = LOGITS_OUTPUTS if self.ranks else None  # older graphs: logits and dist, whatever their names
        logits, dist = self.session.run(outputs, _feed(self.input_names, tokens, positions))
        if len(self.input_names) == 1:  # logits at every position: pick the asked ones
            logits = np.take_along_axis(logits, positions[:, :, None], axis=1)
        return logits, dist

    def _ranks(
        self, tokens: np.ndarray, positions: np.ndarray, truth: np.ndarray, top_g: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Surprise, rank and top-g tokens of the true tokens at the asked positions, and the DIST vectors."""
        if isinstance(self.vocab_size, int):
            top_g = min(top_g, self.vocab_size)  # TopK refuses more than there are
        return tuple(self.session.run(RANKS_OUTPUTS, _feed(self.input_names, tokens, positions, truth, top_g)))


LOGITS_OUTPUTS = ["logits", "dist"]
RANKS_OUTPUTS = ["surprise", "rank", "top", "dist"]


def _feed(
    input_names: list[str], tokens: np.ndarray, positions: np.ndarray, truth: np.ndarray | None = None, top_g: int = 1
) -> dict[str, np.ndarray]:
    """The run's inputs. A graph that ranks needs truth and top_g even when only its logits are read;
    one exported before the serving graph takes tokens only."""
    if len(input_names) == 4 and truth is None:
        truth = np.zeros_like(positions)
    values = (tokens, positions, truth, np.array([top_g], dtype=np.int64))
    return dict(zip(input_names, values))


def nvidia_device_present() -> bool:
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")
