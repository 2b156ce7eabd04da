"""LogBERT (Guo, Yuan, Wu, IJCNN 2021) in plain PyTorch.

A BERT encoder over log-key sequences. Position 0 holds the DIST token, whose output vector
is pulled toward a centre c (hypersphere volume minimisation, VHM); the other outputs
predict masked log keys (masked log-key prediction, MLKP).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.vocab import PAD


@dataclass
class LogBERTConfig:
    vocab_size: int  # special tokens + log keys
    max_len: int = 512  # positions, the DIST token included
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 256
    d_ff: int = 1024
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class SelfAttention(nn.Module):
    def __init__(self, config: LogBERTConfig) -> None:
        super().__init__()
        assert config.d_model % config.n_head == 0
        self.n_head = config.n_head
        self.width = config.d_model
        self.scale = 1.0 / math.sqrt(config.d_model // config.n_head)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, pad_bias: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).split(self.width, dim=2)
        heads = lambda t: t.view(batch, length, self.n_head, self.width // self.n_head).transpose(1, 2)  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v)
        # Written out rather than fused so the ONNX graph is plain MatMul/Softmax on any opset.
        attention = (q @ k.transpose(-2, -1)) * self.scale + pad_bias
        attention = self.dropout(F.softmax(attention, dim=-1))
        y = (attention @ v).transpose(1, 2).contiguous().view(batch, length, self.width)
        return self.dropout(self.proj(y))


class Block(nn.Module):
    def __init__(self, config: LogBERTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attention = SelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, config.d_ff),
            nn.GELU(),
            nn.Linear(config.d_ff, config.d_model),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor, pad_bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln1(x), pad_bias)
        return x + self.mlp(self.ln2(x))


class LogBERT(nn.Module):
    def __init__(self, config: LogBERTConfig) -> None:
        super().__init__()
        self.config = config
        self.key_embedding = nn.Embedding(config.vocab_size, config.d_model, padding_idx=PAD)
        self.position_embedding = nn.Embedding(config.max_len, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_final = nn.LayerNorm(config.d_model)
        self.mlkp_head = nn.Linear(config.d_model, config.vocab_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: (batch, length) ids with DIST at position 0 and PAD after the end.
        Returns MLKP logits (batch, length, vocab) and the DIST vectors (batch, d_model)."""
        length = tokens.size(1)
        positions = torch.arange(length, device=tokens.device).unsqueeze(0)
        x = self.dropout(self.key_embedding(tokens) + self.position_embedding(positions))
        pad_bias = (tokens == PAD).to(x.dtype).mul(-1e9)[:, None, None, :]
        for block in self.blocks:
            x = block(x, pad_bias)
        x = self.ln_final(x)
        return self.mlkp_head(x), x[:, 0]


def mlkp_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on masked positions only (targets are -100 elsewhere)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)


def vhm_loss(dist: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of the DIST vectors from the hypersphere centre."""
    return ((dist - centre) ** 2).sum(dim=1).mean()
