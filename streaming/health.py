"""Is the worker making progress? Pure logic behind the worker's /health endpoint.

A partition is stuck when it has records waiting (lag > 0) and the consumer's committed
position has not moved for `stuck_after` seconds. Faust workers can hang around rebalances
with a timer blocked while the process stays up (faust-streaming#532); only a probe that
looks at progress notices it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PartitionProgress:
    topic: str
    partition: int
    position: int | None  # next offset to process (committed), None before the first commit
    highwater: int | None  # next offset to be written, None before the first fetch

    @property
    def lag(self) -> int:
        if self.highwater is None:
            return 0
        return max(0, self.highwater - (self.position or 0))


@dataclass
class ProgressWatch:
    stuck_after: float
    _since: dict[tuple[str, int], tuple[int | None, float]] = field(default_factory=dict)

    def observe(self, now: float, partitions: list[PartitionProgress]) -> list[PartitionProgress]:
        """Records positions seen at `now`; returns the partitions stuck at that time."""
        stuck = []
        seen = set()
        for progress in partitions:
            tp = (progress.topic, progress.partition)
            seen.add(tp)
            position, since = self._since.get(tp, (None, now))
            if tp not in self._since or progress.position != position or progress.lag == 0:
                self._since[tp] = (progress.position, now)  # moved, new, or nothing to do: the clock restarts
                continue
            if now - since >= self.stuck_after:
                stuck.append(progress)
        for tp in set(self._since) - seen:  # revoked partitions are someone else's now
            del self._since[tp]
        return stuck


@dataclass(frozen=True)
class Health:
    model_loaded: bool
    model_error: str | None
    assigned: int  # partitions of the input and internal topics this worker holds
    stuck: list[PartitionProgress]

    @property
    def live(self) -> bool:
        """Liveness: restart the pod when this is False."""
        return self.model_loaded and not self.stuck

    def as_json(self) -> dict:
        return {
            "status": "ok" if self.live else "failing",
            "model_loaded": self.model_loaded,
            "model_error": self.model_error,
            "assigned_partitions": self.assigned,
            "stuck_partitions": [
                {"topic": p.topic, "partition": p.partition, "position": p.position, "lag": p.lag} for p in self.stuck
            ],
        }
