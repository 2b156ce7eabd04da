"""Command-line flags shared by the commands, and their translation into requests."""

from __future__ import annotations

import os
from pathlib import Path

import click
from faust.cli import option

from evaluation.split import parse_range
from sequences.readers import FORMATS, ReadOptions


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


input_options = [
    option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False),
           help="Log file: raw lines, or event sequences for the event formats."),
    option("--format", "input_format", type=click.Choice(FORMATS), default=None,
           help="Input format (evaluate: defaults to the model's)."),
    option("--labels", type=click.Path(exists=True, dir_okay=False), default=None,
           help="CSV of sequence id,label (Normal/Anomaly or 0/1)."),
    option("--label-all", type=click.Choice(["normal", "anomalous"]), default=None,
           help="Label every sequence (e.g. DeepLog's hdfs_test_abnormal)."),
    option("--parser", "parser_preset", type=click.Choice(["hdfs", "bgl", "generic"]), default=None,
           help="Parsing preset for raw formats (default: by format)."),
    option("--grouping", type=click.Choice(["session", "window"]), default=None,
           help="Sessions by id, or sliding time windows (default: by format)."),
    option("--session-regex", default=None, help=r"Session id pattern (default blk_-?\d+)."),
    option("--session-idle-timeout", type=float, default=None,
           help="Seconds without a line after which a session has ended (default 60)."),
    option("--window-size", type=float, default=None, help="Window size in seconds (default 300)."),
    option("--window-step", type=float, default=None, help="Window step in seconds (default 60)."),
    option("--window-by-source/--window-global", default=None, help="One window series per source node."),
    option("--range", "fraction", default=None,
           help="Chronological slice of the sequences as START:END fractions, e.g. 0:0.6."),
    option("--split", default=None, help="Use only sequences of this split column value (sequences-csv)."),
]  # fmt: skip

train_options = [
    *input_options,
    option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write."),
    option("--preset", type=click.Choice(["small", "paper"]), default="small", help="Model size."),
    option("--fpr", "target_fpr", type=float, default=0.005,
           help="False-positive rate allowed on normal validation data when choosing thresholds."),
    option("--validation-fraction", type=float, default=0.2,
           help="Latest share of the normal training sequences held out for early stopping and calibration."),
    option("--top-g", type=int, default=None, help="Candidates per masked key (default 6 sessions, 15 windows)."),
    option("--mask-stride", type=int, default=None, help="Scoring masks every k-th key per pass (default 4)."),
    option("--epochs", type=int, default=None, help="Upper bound on epochs (early stopping may end sooner)."),
    option("--surprise-rule/--no-surprise-rule", default=None,
           help="Also flag a key the model finds very unlikely (default: on for sessions, off for windows)."),
    option("--seed", type=int, default=1234),
    option("--templates", "templates_csv", type=click.Path(exists=True, dir_okay=False), default=None,
           help="EventId,EventTemplate CSV naming the events of an event format."),
    option("--force", is_flag=True, default=False, help="Overwrite a non-empty --out."),
    option("--progress/--no-progress", default=True),
]  # fmt: skip

evaluate_options = [
    *input_options,
    option("--model", required=True, type=click.Path(exists=True, file_okay=False), help="Model directory."),
    option("--fpr", "target_fpr", type=float, default=None,
           help="Move the operating point to this false-positive rate, from the model's stored normal "
                "validation scores (never from the test labels). Default: the model's own thresholds."),
    option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the report as JSON."),
    option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
           help="Write the precision-recall curve PNG."),
    option("--provider", type=click.Choice(["auto", "cuda", "cpu"]), default=_env("LOGBERT_PROVIDER", "auto"),
           help="ONNX Runtime provider (env LOGBERT_PROVIDER)."),
    option("--progress/--no-progress", default=True),
]  # fmt: skip

generate_options = [
    option("--kind", type=click.Choice(["hdfs", "bgl"]), default="hdfs", help="HDFS-like sessions or BGL-like node logs."),
    option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for the log and labels."),
    option("--sessions", type=int, default=2000, help="HDFS-like: number of blocks."),
    option("--minutes", type=int, default=600, help="BGL-like: minutes of log."),
    option("--anomaly-rate", type=float, default=0.05, help="Share of anomalous blocks or anomaly bursts."),
    option("--seed", type=int, default=7),
]  # fmt: skip


def read_options_from_flags(flags: dict, saved: dict | None = None) -> ReadOptions:
    """Flags win; else the model's saved grouping (evaluate); else the format's defaults."""
    overrides = {
        "format": flags.get("input_format"),
        "preset": flags.get("parser_preset"),
        "grouping": flags.get("grouping"),
        "session_regex": flags.get("session_regex"),
        "session_idle_timeout": flags.get("session_idle_timeout"),
        "window_size": flags.get("window_size"),
        "window_step": flags.get("window_step"),
        "window_by_source": flags.get("window_by_source"),
    }
    if saved is not None:
        if overrides["format"] not in (None, saved.get("format")):
            # Another format than the model's: only the grouping settings carry over.
            saved = {k: v for k, v in saved.items() if k not in ("format", "preset", "grouping")}
        options = ReadOptions.from_settings(saved, **overrides)
    elif overrides["format"] is None:
        raise click.UsageError("--format is required")
    else:
        options = ReadOptions.from_settings({}, **overrides)
    options.labels = Path(flags["labels"]) if flags.get("labels") else None
    if flags.get("label_all"):
        options.label_all = flags["label_all"] == "anomalous"
    return options


def fraction_from_flags(flags: dict) -> tuple[float, float] | None:
    try:
        return parse_range(flags["fraction"]) if flags.get("fraction") else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--range") from None


produce_options = [
    option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False), help="Log file."),
    option("--topic", default="logs-raw", help="Topic to write to."),
    option("--rate", type=float, default=0.0, help="Lines per second (0: as fast as possible)."),
    option("--lines-per-message", type=int, default=1, help="Shipper-style batches: lines per message."),
]  # fmt: skip
