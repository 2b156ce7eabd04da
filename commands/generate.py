"""`generate`: writes a synthetic log and its ground truth."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from loggen.bgl import generate_bgl
from loggen.hdfs import generate_hdfs


def run_generate(kind: str, out_dir: str, sessions: int, minutes: int, anomaly_rate: float, seed: int) -> str:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if kind == "hdfs":
        lines, blocks = generate_hdfs(sessions, anomaly_rate, seed)
        (out / "hdfs.log").write_text("\n".join(lines) + "\n")
        with open(out / "hdfs_labels.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["BlockId", "Label", "Kind"])
            writer.writerows((b.block_id, b.label, b.kind) for b in blocks)
        anomalies = sum(b.label == "Anomaly" for b in blocks)
        return f"wrote {len(lines)} lines, {len(blocks)} blocks ({anomalies} anomalous) to {out}/hdfs.log and hdfs_labels.csv"
    lines, bursts = generate_bgl(minutes, anomaly_rate, seed)
    (out / "bgl.log").write_text("\n".join(lines) + "\n")
    (out / "bgl_bursts.json").write_text(json.dumps(bursts, indent=1))
    return f"wrote {len(lines)} lines with {len(bursts)} alert bursts to {out}/bgl.log (labels in the first field)"
