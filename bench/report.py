"""Every benchmark in one markdown table for docs/benchmarks.md, each row with its hardware,
fkp beside dlib as ratios where both do the same job.

    OMP_NUM_THREADS=1 FKP_DATA_DIR=../shared/data/youtube_faces python bench/report.py \\
        [--ckpt <file.ckpt>] [--eval outputs/eval/<run>/metrics.json]

Runs bench/startup.py (each command's wall clock until its work), bench/data_pipeline.py,
bench/loader_memory.py, bench/train_speed.py, bench/predict_speed.py (network, one pass per
face and whole photos against dlib), bench/detectors.py, bench/video_track.py (tracking and
predict.py on a video file against dlib) and bench/folder_speed.py in turn, about 17
minutes on 2 CPU cores, and adds the NME rows of an eval.py run when given. dlib's rows
need the bench extra; MediaPipe has no rows: its model-bundling wheel needs numpy < 2,
which fkp's dependencies do not allow.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from pathlib import Path

import data_pipeline
import detectors
import folder_speed
import loader_memory
import predict_speed
import startup
import train_speed
import video_track
from common import Row, cpu_name, hardware, print_rows

from fkp.models.backbones import PRETRAINED_URLS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default=None, help="for inference rows; default: the shipped")
    parser.add_argument("--eval", help="an eval.py metrics.json for accuracy rows")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    data = Path(os.environ.get("FKP_DATA_DIR", "../shared/data/youtube_faces"))
    photos = sorted(glob.glob(str(data.parent / "images" / "*.jpg")))
    one_thread = hardware(threads=1)
    # inference first: PyTorch's training threads, once started, keep spinning a while
    obamas = str(data.parent / "images" / "obamas.jpg")
    sections: list[tuple[list[Row], str]] = [
        (startup.measure(2), f"{cpu_name()}, wall clock"),
        (predict_speed.measure(args.ckpt, photos), one_thread),
        (detectors.measure(data, ["yunet", "haar"]), one_thread),
        (video_track.measure(obamas, args.ckpt, 2), one_thread),
        (folder_speed.measure(data, 300), f"{cpu_name()}, every core"),
        (data_pipeline.measure(args.seconds), one_thread),
        (loader_memory.measure_all(), one_thread),
    ]
    models = ["custom_cnn", "fast_net", *PRETRAINED_URLS]
    rows = train_speed.measure(models, [96, 128, 224], seconds=args.seconds)
    sections.append((rows, hardware()))  # after measure: it sets the thread count
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
