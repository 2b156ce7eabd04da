"""PNG plots of the long benchmark runs, where a curve shows what a table of samples hides: whether
memory levels off (bench/soak.py) and whether latency drifts upward during a run (bench/pipeline.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_soak(samples: list[dict], steady_from_s: float, title: str, path: Path) -> None:
    """RSS and consumer lag over the run; samples carry t (s), rss_mib and lag (records)."""
    minutes = [s["t"] / 60 for s in samples]
    figure, (memory, lag) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    memory.plot(minutes, [s["rss_mib"] for s in samples], marker=".")
    memory.set_ylabel("worker RSS (MiB)")
    memory.set_ylim(bottom=0)
    lag.plot(minutes, [s["lag"] for s in samples], marker=".", color="tab:orange")
    lag.set_ylabel("consumer lag (records)")
    lag.set_ylim(bottom=0)
    lag.set_xlabel("minutes")
    for axis in (memory, lag):
        axis.axvline(steady_from_s / 60, color="grey", linestyle=":", label="warm-up ends")
        axis.grid(alpha=0.3)
    memory.legend(loc="lower right")
    memory.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_latency(points: list[tuple[float, float]], p50: float, p99: float, target: float, title: str,
                 path: Path) -> None:  # fmt: skip
    """points: (seconds into the run when the session's last line was produced, its latency in s).
    Left the distribution (with p50, p99 and the target), right the latency over the run."""
    latencies = sorted(latency for _, latency in points)
    share = [(i + 1) / len(latencies) for i in range(len(latencies))]
    figure, (spread, drift) = plt.subplots(1, 2, figsize=(10, 4))
    spread.plot(latencies, share)
    for value, label, style in ((p50, f"p50 {p50:.3f} s", "--"), (p99, f"p99 {p99:.3f} s", "-."),
                                (target, f"target p99 ≤ {target:g} s", ":")):  # fmt: skip
        spread.axvline(value, color="grey" if style == ":" else "tab:red", linestyle=style, label=label)
    spread.set_xlabel("latency after the idle timeout (s)")
    spread.set_ylabel("share of sessions at or below")
    spread.legend(loc="lower right", fontsize=8)
    spread.grid(alpha=0.3)
    drift.scatter([t for t, _ in points], [latency for _, latency in points], s=2, alpha=0.4)
    drift.axhline(target, color="grey", linestyle=":")
    drift.set_xlabel("seconds into the run (session's last line)")
    drift.set_ylabel("latency (s)")
    drift.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
