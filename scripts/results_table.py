"""Prints the README's results table from the JSON reports of scripts/evaluate_datasets.sh."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SPLITS = {
    "hdfs100k": "HDFS_100k sessions (deeploglizer train → test)",
    "hdfs20k": "HDFS_20000 raw (first 60% blocks → rest)",
    "deeplog": "DeepLog split (hdfs_train → hdfs_test_abnormal)",
    "bgl100k": "BGL_100k, 5-min/1-min windows (first 60% → rest)",
}


def main(out: Path) -> None:
    print("| split | FPR target (normal validation) | precision | recall | F1 | baseline: unseen template F1 "
          "| baseline: unseen template set F1 | sequences (short < 10) | oracle best F1 ¹ | F1 ceiling ² |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, title in SPLITS.items():
        for n, suffix in enumerate(("", "-fpr0.001", "-fpr0.01")):
            path = out / f"{name}{suffix}.json"
            if not path.exists():
                continue
            r = json.loads(path.read_text())
            base = r["baselines"]
            print(
                f"| {title if n == 0 else ''} | {r['threshold']['target_fpr']:.1%}{' (default)' if n == 0 else ''} "
                f"| {r['precision']:.3f} "
                f"| {r['recall']:.3f} | **{r['f1']:.3f}** | {base['unseen template']['f1']:.3f} "
                f"| {base['unseen template set']['f1']:.3f} | {r['sequences']} ({r['short_sequences']}) "
                f"| {r['best_f1_over_thresholds']['f1']:.3f} | {r['separability']['f1_ceiling_at_precision_1']:.3f} |"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "evaluation-output"))
