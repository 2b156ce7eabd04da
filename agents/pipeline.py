"""What every stage needs from the model directory, loaded once per worker."""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from logkeys.templates import TemplateSet
from models.artefact import ModelDirectoryError
from models.detector import Detector
from streaming.settings import StreamSettings
from streaming.stages import ParseStage, WindowStage

log = logging.getLogger("logbert.worker")


@dataclass
class Pipeline:
    settings: StreamSettings
    detector: Detector
    parse: ParseStage
    window: WindowStage

    def partition_for(self, session: str) -> int:
        return zlib.crc32(session.encode()) % self.settings.internal_partitions


@lru_cache(maxsize=1)
def load_pipeline(settings: StreamSettings) -> Pipeline:
    detector = Detector.load(Path(settings.model_dir), settings.provider)
    if not isinstance(detector.vocabulary, TemplateSet):
        raise ModelDirectoryError("streaming needs a model trained on raw log lines (drain templates), not event ids")
    grouping = detector.config["input"]
    if grouping.get("grouping") != "session":
        raise ModelDirectoryError("the streaming worker supports session grouping for now; this model uses windows")
    idle = float(grouping.get("session_idle_timeout", 60.0))
    log.info(
        "model %s loaded from %s: %d templates, scoring on %s, sessions close after %.0f s idle",
        detector.version, settings.model_dir, len(detector.vocabulary), detector.provider, idle,
    )  # fmt: skip
    return Pipeline(
        settings,
        detector,
        ParseStage(detector.vocabulary, grouping.get("session_regex", r"blk_-?\d+"), settings.value_format),
        WindowStage(idle, settings.max_session_keys),
    )
