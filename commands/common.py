"""Helpers the commands share: reading a dataset into key sequences, printing tables."""

from __future__ import annotations

import logging
import signal
import sys

from logkeys.vocabulary import Vocabulary
from models.vocab import END_KEY, OPEN_KEY
from sequences.dataset import Dataset, SequenceSpec

log = logging.getLogger("logbert")

MIN_SCORED_LENGTH = 10  # the length below which published LogBERT drops sequences; we score them and count them


def key_sequences(dataset: Dataset, specs: list[SequenceSpec], vocabulary: Vocabulary) -> list[list[int]]:
    """Key indices per sequence, closed by END_KEY when known to have ended, else OPEN_KEY.
    Matches only the records that the chosen sequences use (templates are frozen by now)."""
    needed = sorted({i for spec in specs for i in spec.records})
    keys = dict(zip(needed, (vocabulary.match_content(dataset.contents[i]) for i in needed)))
    return [[*(keys[i] for i in spec.records), END_KEY if spec.closed else OPEN_KEY] for spec in specs]


def print_table(rows: list[list[str]], out=sys.stdout) -> None:
    widths = [max(len(str(row[c])) for row in rows) for c in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def plain_signals() -> None:
    """Faust runs commands inside its event loop, whose signal handlers wait for the loop; a
    long synchronous command (training, evaluation) would then ignore Ctrl-C and SIGTERM."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
