"""What every stage needs from the model directory, loaded once per worker."""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from logkeys.templates import TemplateSet
from models.artefact import ModelDirectoryError, load_model_directory
from models.detector import Detector
from streaming.key_translation import KeyTranslator
from streaming.settings import StreamSettings
from streaming.stages import ParseStage, TimeWindowStage, WindowStage

log = logging.getLogger("logbert.worker")


@dataclass
class Pipeline:
    settings: StreamSettings
    detector: Detector
    parse: ParseStage
    window: WindowStage
    translator: KeyTranslator

    def partition_for(self, session: str) -> int:
        return zlib.crc32(session.encode()) % self.settings.internal_partitions


def other_vocabularies(model_dirs: tuple[str, ...]) -> list[TemplateSet]:
    """The template lists of the other models of a rollout, so their open sessions carry over."""
    others = []
    for model_dir in model_dirs:
        _, vocabulary = load_model_directory(Path(model_dir))
        if not isinstance(vocabulary, TemplateSet):
            raise ModelDirectoryError(f"other model {model_dir} has no drain templates")
        others.append(vocabulary)
    return others


def build_stages(detector: Detector, settings: StreamSettings) -> Pipeline:
    """The stages a model's input grouping calls for: sessions by id, or sliding time windows."""
    if not isinstance(detector.vocabulary, TemplateSet):
        raise ModelDirectoryError("streaming needs a model trained on raw log lines (drain templates), not event ids")
    translator = KeyTranslator(detector.vocabulary, other_vocabularies(settings.other_model_dirs))
    grouping = detector.config["input"]
    if grouping.get("grouping") == "window":
        size, step = float(grouping.get("window_size", 300.0)), float(grouping.get("window_step", 60.0))
        by_source = bool(grouping.get("window_by_source", False))
        parse = ParseStage(detector.vocabulary, None, settings.value_format, window_by_source=by_source)
        window: WindowStage = TimeWindowStage(size, step, translator)
        shape = f"{size:.0f} s windows every {step:.0f} s" + (" per source" if by_source else "")
    else:
        idle = settings.session_idle_timeout or float(grouping.get("session_idle_timeout", 60.0))
        parse = ParseStage(detector.vocabulary, grouping.get("session_regex", r"blk_-?\d+"), settings.value_format)
        window = WindowStage(idle, settings.max_session_keys, translator)
        shape = f"sessions close after {idle:.0f} s idle"
    log.info(
        "model %s: %d templates (vocabulary %s, carrying over %s), scoring on %s, %s",
        detector.version, len(detector.vocabulary), translator.current, sorted(translator.maps) or "none",
        detector.provider, shape,
    )  # fmt: skip
    return Pipeline(settings, detector, parse, window, translator)


@lru_cache(maxsize=1)
def load_pipeline(settings: StreamSettings) -> Pipeline:
    detector = Detector.load(Path(settings.model_dir), settings.provider, spinning=settings.scorer_spinning)
    return build_stages(detector, settings)
