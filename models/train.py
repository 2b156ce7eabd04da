"""Training LogBERT on normal key sequences: MLKP + alpha * VHM, early stopping on validation loss."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from models.detection import split_chunks
from models.logbert import LogBERT, LogBERTConfig, mlkp_loss, vhm_loss
from models.vocab import DIST, END, MASK, OPEN, PAD, key_to_token


@dataclass
class TrainSettings:
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    mask_ratio: float = 0.65  # 0.65 for sessions, 0.5 for windows (paper)
    alpha: float = 0.1  # weight of VHM
    open_fraction: float = 0.1  # share of closed chunks shown as still-open prefixes (no END)
    patience: int = 4  # epochs without validation improvement before stopping
    seed: int = 1234
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: LogBERT
    centre: np.ndarray
    history: list[dict] = field(default_factory=list)  # per epoch: train/val losses
    best_epoch: int = 0


MODEL_PRESETS: dict[str, dict] = {
    "small": dict(n_layer=2, n_head=2, d_model=64, d_ff=128, dropout=0.1, max_len=128),
    "paper": dict(n_layer=4, n_head=4, d_model=256, d_ff=1024, dropout=0.1, max_len=512),
}
TRAIN_PRESETS: dict[str, dict] = {
    "small": dict(epochs=25, batch_size=64, learning_rate=2e-3),
    "paper": dict(epochs=100, batch_size=32, learning_rate=1e-3, patience=6),
}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_chunks(sequences: list[list[int]], max_len: int) -> list[np.ndarray]:
    """Token arrays [DIST, keys...] of at most max_len positions."""
    chunks = []
    for keys in sequences:
        for chunk in split_chunks(keys, max_len - 1):
            chunks.append(np.array([DIST, *(key_to_token(k) for k in chunk)], dtype=np.int64))
    return chunks


def pad(arrays: list[np.ndarray], value: int) -> torch.Tensor:
    width = max(len(a) for a in arrays)
    out = np.full((len(arrays), width), value, dtype=np.int64)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return torch.from_numpy(out)


def open_prefixes(chunks: list[np.ndarray], fraction: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Some closed chunks become random prefixes closed by OPEN, so sessions still open when
    scored (at the end of a replay, or flushed at max length) are in distribution."""
    out = []
    for tokens in chunks:
        if tokens[-1] == END and len(tokens) > 2 and rng.random() < fraction:
            tokens = np.append(tokens[: int(rng.integers(2, len(tokens)))], OPEN)
        out.append(tokens)
    return out


def mask_batch(chunks: list[np.ndarray], ratio: float, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks each key with probability `ratio` (at least one per chunk); targets are -100 elsewhere."""
    inputs, targets = [], []
    for tokens in chunks:
        n = len(tokens) - 1 - (1 if tokens[-1] == OPEN else 0)  # OPEN is never masked
        chosen = np.zeros(len(tokens) - 1, dtype=bool)
        chosen[:n] = rng.random(n) < ratio
        if n > 0 and not chosen.any():
            chosen[rng.integers(n)] = True
        masked = tokens.copy()
        target = np.full(len(tokens), -100, dtype=np.int64)
        target[1:][chosen] = tokens[1:][chosen]
        masked[1:][chosen] = MASK
        inputs.append(masked)
        targets.append(target)
    return pad(inputs, PAD), pad(targets, -100)


def batches(chunks: list[np.ndarray], size: int, rng: np.random.Generator, shuffle: bool) -> list[list[np.ndarray]]:
    """Batches of similar length: shuffle, then sort within pools of 50 batches."""
    order = rng.permutation(len(chunks)) if shuffle else np.arange(len(chunks))
    pool = size * 50
    out = []
    for start in range(0, len(order), pool):
        part = sorted(order[start : start + pool], key=lambda i: len(chunks[i]))
        out.extend([chunks[i] for i in part[j : j + size]] for j in range(0, len(part), size))
    if shuffle:
        rng.shuffle(out)
    return out


@torch.no_grad()
def compute_centre(model: LogBERT, chunks: list[np.ndarray], batch_size: int = 256) -> torch.Tensor:
    """Mean DIST vector over the unmasked training chunks."""
    model.eval()
    total = torch.zeros(model.config.d_model)
    ordered = sorted(chunks, key=len)
    for start in range(0, len(ordered), batch_size):
        _, dist = model(pad(ordered[start : start + batch_size], PAD))
        total += dist.sum(dim=0)
    return total / max(len(chunks), 1)


def train_logbert(
    train_sequences: list[list[int]],
    val_sequences: list[list[int]],
    model_config: LogBERTConfig,
    settings: TrainSettings,
) -> TrainResult:
    if not train_sequences:
        raise ValueError("no training sequences: check the input, the split and the labels")
    seed_everything(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = LogBERT(model_config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    train_chunks = to_chunks(train_sequences, model_config.max_len)
    val_chunks = to_chunks(val_sequences, model_config.max_len) or train_chunks[: max(1, len(train_chunks) // 10)]
    # Validation masks are drawn once so the losses of different epochs compare.
    val_batches = [
        mask_batch(b, settings.mask_ratio, np.random.default_rng(settings.seed + 1 + i))
        for i, b in enumerate(batches(val_chunks, 256, rng, shuffle=False))
    ]

    best_loss, best_state, best_epoch, stale = float("inf"), None, 0, 0
    history: list[dict] = []
    bar = tqdm(range(settings.epochs), desc="training", unit="epoch", disable=None if settings.progress else True)
    for epoch in bar:
        centre = compute_centre(model, train_chunks)  # recomputed each epoch (paper)
        model.train()
        sums = {"mlkp": 0.0, "vhm": 0.0, "n": 0}
        for chunk_batch in batches(train_chunks, settings.batch_size, rng, shuffle=True):
            chunk_batch = open_prefixes(chunk_batch, settings.open_fraction, rng)
            inputs, targets = mask_batch(chunk_batch, settings.mask_ratio, rng)
            logits, dist = model(inputs)
            mlkp, vhm = mlkp_loss(logits, targets), vhm_loss(dist, centre)
            loss = mlkp + settings.alpha * vhm
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            sums["mlkp"] += mlkp.item() * len(chunk_batch)
            sums["vhm"] += vhm.item() * len(chunk_batch)
            sums["n"] += len(chunk_batch)
        val = evaluate_loss(model, val_batches, centre, settings.alpha)
        record = {
            "epoch": epoch + 1,
            "train_mlkp": sums["mlkp"] / sums["n"],
            "train_vhm": sums["vhm"] / sums["n"],
            "train_loss": (sums["mlkp"] + settings.alpha * sums["vhm"]) / sums["n"],
            **val,
        }
        history.append(record)
        bar.set_postfix(train=f"{record['train_loss']:.3f}", val=f"{val['val_loss']:.3f}")
        if val["val_loss"] < best_loss - 1e-4:
            best_loss, best_epoch, stale = val["val_loss"], epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= settings.patience:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    centre = compute_centre(model, train_chunks)
    return TrainResult(model, centre.numpy().astype(np.float32), history, best_epoch)


@torch.no_grad()
def evaluate_loss(model: LogBERT, val_batches, centre: torch.Tensor, alpha: float) -> dict:
    model.eval()
    mlkp_sum = vhm_sum = 0.0
    count = 0
    for inputs, targets in val_batches:
        logits, dist = model(inputs)
        mlkp_sum += mlkp_loss(logits, targets).item() * len(inputs)
        vhm_sum += vhm_loss(dist, centre).item() * len(inputs)
        count += len(inputs)
    mlkp, vhm = mlkp_sum / max(count, 1), vhm_sum / max(count, 1)
    return {"val_mlkp": mlkp, "val_vhm": vhm, "val_loss": mlkp + alpha * vhm}
