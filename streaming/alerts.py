"""Alert events for the logbert-alerts topic: a versioned JSON shape with a deterministic id.

The same window always gets the same alert_id (model version, session, part and the source
offsets it covers), so consumers drop the duplicates that at-least-once delivery produces."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from models.detection import SequenceScore
from streaming.windows import ClosedSequence

ALERT_SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("alert.schema.json")
MAX_TEMPLATE_CHARS = 512  # raw text placed in alerts is bounded


def alert_id(model_version: str, sequence: ClosedSequence) -> str:
    origins = ",".join(f"{k}:{v[0]}-{v[1]}" for k, v in sorted(sequence.origins.items()))
    payload = f"{model_version}|{sequence.session}|{sequence.part}|{len(sequence.keys)}|{origins}"
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x09), *range(0x0A, 0x20), 0x7F]} | {
    c: f"\\u{c:04x}" for c in range(0x80, 0xA0)
}


def bounded(text: str) -> str:
    """Log text as it may be placed in an alert: control characters escaped (no terminal escape
    sequences reach whoever prints alerts), at most MAX_TEMPLATE_CHARS characters."""
    text = text.translate(_CONTROL)
    return text if len(text) <= MAX_TEMPLATE_CHARS else text[: MAX_TEMPLATE_CHARS - 1] + "…"


def build_alert(
    sequence: ClosedSequence,
    score: SequenceScore,
    explanation: list[dict],
    model_version: str,
    miss_ratio_threshold: float,
    surprise_threshold: float | None,
    detected_at: float,
) -> dict:
    return {
        "schema_version": ALERT_SCHEMA_VERSION,
        "alert_id": alert_id(model_version, sequence),
        "key": sequence.session,
        "part": sequence.part,
        "window_start": _iso(sequence.start),
        "window_end": _iso(sequence.end),
        "closed": sequence.closed,
        "num_keys": score.length,
        "masked": score.masked,
        "missed": score.misses,
        "unseen_templates": score.unseen,
        "score": round(score.miss_ratio, 6),
        "threshold": miss_ratio_threshold,
        "max_surprise": None if score.max_surprise == float("inf") else round(score.max_surprise, 6),
        "surprise_threshold": surprise_threshold,
        "distance": round(score.distance, 6),
        "model_version": model_version,
        "detected_at": _iso(detected_at),
        "missed_positions": [
            {
                "position": m["position"],
                # an unseen template has no text of its own: show the line as it was logged
                "actual": bounded(sequence.unseen_lines.get(m["position"], m["actual"])),
                "actual_probability": m["actual_probability"],
                "expected": [bounded(e) for e in m["expected"]],
            }
            for m in explanation
        ],
        "source": [
            {
                "topic": origin.rsplit("/", 1)[0],
                "partition": int(origin.rsplit("/", 1)[1]),
                "first_offset": span[0],
                "last_offset": span[1],
            }
            for origin, span in sorted(sequence.origins.items())
        ],  # fmt: skip
    }


def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())
