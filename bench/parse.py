"""Parse-stage throughput on real HDFS and BGL lines against plain drain3 `match`, line by line.

    scripts/venv.sh python bench/parse.py [--passes 5] [--batch 4000] [--processes 2]

Templates are mined once with drain3 from the same lines (as training does). Then, per data set:
  drain3     the reference: header split, then TemplateMiner.match(content, "always") per line
  matcher    the header split and our frozen-template matcher (TemplateSet.match_content), per line
  stage      the whole parse stage a worker runs (ParseStage.process on batches of Kafka messages:
             decoding, header split, masking, matching, timestamps, session ids, key events)
  stage+Np   the same with LOGBERT_PARSE_PROCESSES=N: each batch's lines read in N child processes
             (shared out, sent and answered through pipes), event time and key events on the loop
Passes of drain3, matcher and stage alternate, and the best of each counts, so a slow spell of
this shared machine slows all three alike; each starts after a garbage collection, so none pays for
the garbage of the one before. Each pass starts with fresh caches, so a line is never
cheaper for having been seen in an earlier pass; the keys both matchers give are compared line by line.
The whole run, drain3 included, uses the worker's garbage-collector thresholds (LOGBERT_GC_THRESHOLDS,
default 10000,10,100; set it empty for Python's 700,10,10), as the stage runs in a worker."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from logkeys.presets import get_preset  # noqa: E402
from logkeys.templates import UNSEEN, LineSplitter, TemplateSet, drain_miner, mine_templates  # noqa: E402
from streaming.messages import MAX_PART_BYTES, bounded_runs  # noqa: E402
from streaming.parse_processes import ParseProcesses, read_in_turn  # noqa: E402
from streaming.settings import StreamSettings  # noqa: E402
from streaming.stages import ParseStage, RawMessage  # noqa: E402

DATA = {  # name: (file under the datasets directory, preset, session regex or None for windows)
    "HDFS": ("hdfs/HDFS_20000.log", "hdfs", r"blk_-?\d+"),
    "BGL": ("loghub-2k/BGL/BGL_2k.log", "bgl", None),
}


def timed(run, passes: int) -> float:
    """Best seconds per pass; `run` builds its own fresh state each time."""
    best = float("inf")
    for _ in range(passes):
        gc.collect()  # the garbage of the pass before (drain3's miner) is not this one's to collect
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def bench(
    name: str, lines: list[str], preset_name: str, session_regex: str | None, passes: int, batch: int, processes: int
) -> None:
    preset = get_preset(preset_name)
    splitter = LineSplitter(preset)
    frozen = mine_templates(lines, preset)
    contents = [splitter.split(line)[0] for line in lines]

    def drain3_run() -> list[int]:
        miner = drain_miner(preset)
        for content in contents:  # the same templates, mined the same way
            miner.add_log_message(content)
        ids = {c.cluster_id: i for i, c in enumerate(sorted(miner.drain.clusters, key=lambda c: c.cluster_id))}
        gc.collect()
        started = time.perf_counter()
        keys = []
        for line in lines:
            cluster = miner.match(splitter.split(line)[0], full_search_strategy="always")
            keys.append(ids[cluster.cluster_id] if cluster is not None else UNSEEN)
        drain3_run.seconds = time.perf_counter() - started  # mining is not timed
        return keys

    def matcher_run() -> list[int]:
        templates = TemplateSet(frozen.templates, preset)  # a fresh cache
        return [templates.match_content(splitter.split(line)[0]) for line in lines]

    now = time.time()  # arrival: the lines' own timestamps are years before it, so they are trusted
    messages = [RawMessage(line.encode(), "logs-raw", 0, offset, now) for offset, line in enumerate(lines)]

    def new_stage() -> ParseStage:
        return ParseStage(TemplateSet(frozen.templates, preset), session_regex, "text", window_by_source=False)

    def stage_run() -> None:
        stage = new_stage()
        for start in range(0, len(messages), batch):
            stage.process(messages[start : start + batch], waiting=set())  # as a worker calls it

    async def processes_run(children: ParseProcesses) -> None:
        stage = new_stage()
        for start in range(0, len(messages), batch):  # as agents/parse.py: parts of a batch read in turn
            parts = bounded_runs(messages[start : start + batch], lambda m: len(m.value or b""), MAX_PART_BYTES)
            async for _, part, read in read_in_turn(parts, children):
                stage.process(part, waiting=set(), read=read)

    async def processes_best() -> float:
        best = float("inf")
        for _ in range(passes):
            children = ParseProcesses(new_stage().reader, processes)  # fresh caches each pass
            await children.read([m.value for m in messages[:1]])  # started, not timed
            gc.collect()
            started = time.perf_counter()
            await processes_run(children)
            best = min(best, time.perf_counter() - started)
            await children.close()
        return best

    drain3_best = matcher_best = stage_best = float("inf")
    for _ in range(passes):
        reference_keys = drain3_run()
        drain3_best = min(drain3_best, drain3_run.seconds)
        matcher_best = min(matcher_best, timed(matcher_run, 1))
        stage_best = min(stage_best, timed(stage_run, 1))
    matcher_keys = matcher_run()
    disagree = sum(a != b for a, b in zip(reference_keys, matcher_keys))
    processes_seconds = asyncio.run(processes_best()) if processes else float("nan")
    n = len(lines)
    print(f"{name:<5} {n:>7} {len(frozen):>9} {n / drain3_best:>12.0f} {n / matcher_best:>12.0f} "
          f"{n / stage_best:>12.0f} {n / processes_seconds:>12.0f} {drain3_best / stage_best:>13.2f} "
          f"{drain3_best / processes_seconds:>11.2f} {drain3_best / matcher_best:>15.2f}   {disagree} of {n}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=5, help="timed passes of each, interleaved; the best counts")
    parser.add_argument("--batch", type=int, default=4000, help="messages per parse-stage batch (LOGBERT_PARSE_BATCH)")
    parser.add_argument("--processes", type=int, default=2, help="parse processes (LOGBERT_PARSE_PROCESSES); 0: skip")
    args = parser.parse_args()
    thresholds = StreamSettings().gc_thresholds
    if thresholds:
        gc.set_threshold(*thresholds)
    datasets = Path(os.environ.get("LOGBERT_DATASETS", ROOT.parent / "shared" / "datasets"))
    staged = f"stage+{args.processes}p"
    print(f"{'data':<5} {'lines':>7} {'templates':>9} {'drain3 l/s':>12} {'matcher l/s':>12} {'stage l/s':>12} "
          f"{staged + ' l/s':>12} {'stage/drain3':>13} {staged + '/d3':>11} {'matcher/drain3':>15}   keys differing")  # fmt: skip
    for name, (relative, preset, session_regex) in DATA.items():
        path = datasets / relative
        if not path.exists():
            print(f"{name}: {path} is absent (set LOGBERT_DATASETS); skipped")
            continue
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        bench(name, lines, preset, session_regex, args.passes, args.batch, args.processes)
    print(f"{os.cpu_count()} CPUs; drain3, matcher and stage: one process, one thread (the parse stage is pure Python); "
          f"garbage-collector thresholds {gc.get_threshold()}")  # fmt: skip


if __name__ == "__main__":
    main()
