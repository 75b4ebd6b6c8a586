"""Every benchmark in one markdown table for docs/benchmarks.md, each row with its hardware.

    FKP_DATA_DIR=../shared/data/youtube_faces python bench/report.py --ckpt <file.ckpt> \\
        [--eval outputs/eval/<run>/metrics.json]

Runs bench/data_pipeline.py, bench/loader_memory.py, bench/train_speed.py,
bench/predict_speed.py and bench/detectors.py in turn (about 8 minutes on 2 CPU cores) and adds
the NME rows of an eval.py run when given.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from pathlib import Path

import data_pipeline
import detectors
import loader_memory
import predict_speed
import train_speed
from common import Row, hardware, print_rows

from fkp.models.backbones import PRETRAINED_URLS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="the checkpoint for inference rows")
    parser.add_argument("--eval", help="an eval.py metrics.json for accuracy rows")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    one_thread = hardware(threads=1)
    sections: list[tuple[list[Row], str]] = [
        (data_pipeline.measure(args.seconds), one_thread),
        (loader_memory.measure_all(), one_thread),
    ]
    models = ["custom_cnn", "fast_net", *PRETRAINED_URLS]
    rows = train_speed.measure(models, [96, 128, 224], seconds=args.seconds)
    sections.append((rows, hardware()))  # after measure: it sets the thread count
    images = sorted(glob.glob("../shared/data/images/*.jpg"))
    sections.append((predict_speed.measure(args.ckpt, images), one_thread))
    data = Path(os.environ.get("FKP_DATA_DIR", "../shared/data/youtube_faces"))
    sections.append((detectors.measure(data, ["yunet", "haar"]), one_thread))
    if args.eval:
        metrics = json.loads(Path(args.eval).read_text())
        accuracy = []
        for method, m in metrics.items():
            if isinstance(m, dict):
                setting = f"{metrics['faces']} faces, {metrics['split']} split"
                accuracy.append((f"accuracy: {method}", f"{setting}, NME", 100 * m["nme"], "%"))
        sections.append((accuracy, f"{one_thread} (eval.py)"))
    print_rows(*sections)


if __name__ == "__main__":
    main()
