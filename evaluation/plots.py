"""PNG plots: the training loss curve and the precision-recall curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_loss_curve(history: list[dict], best_epoch: int, path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(epochs, [h["train_loss"] for h in history], label="train (MLKP + α·VHM)")
    axis.plot(epochs, [h["val_loss"] for h in history], label="validation")
    axis.plot(epochs, [h["val_mlkp"] for h in history], "--", label="validation MLKP")
    if best_epoch:
        axis.axvline(best_epoch, color="grey", linestyle=":", label=f"kept: epoch {best_epoch}")
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.set_title("LogBERT training")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_pr_curve(sweep: list[dict], operating: dict, baselines: dict[str, dict], path: Path, title: str) -> None:
    points = sorted((r["recall"], r["precision"]) for r in sweep if r["tp"] + r["fp"] > 0)
    figure, axis = plt.subplots(figsize=(6, 5))
    if points:
        axis.plot([p[0] for p in points], [p[1] for p in points], label="LogBERT, max-surprise threshold swept")
    axis.scatter([operating["recall"]], [operating["precision"]], color="red", zorder=3,
                 label=f"operating point (calibrated), F1 {operating['f1']:.3f}")  # fmt: skip
    for (name, figures), marker in zip(baselines.items(), ("s", "^", "D")):
        axis.scatter([figures["recall"]], [figures["precision"]], marker=marker, zorder=3,
                     label=f"baseline: {name}, F1 {figures['f1']:.3f}")  # fmt: skip
    axis.set_xlim(0, 1.02)
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_title(title)
    axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
