"""Face detectors on a labelled split: faces missed, false boxes per image, time per image.

    python bench/detectors.py [--data ../shared/data/youtube_faces] [--detectors yunet haar]

Each detector runs in turn on every image (so machine load falls on all alike), on 1 thread,
with the settings of its fkp/conf/detector/<name>.yaml. A labelled face counts as found when
a box's centre lies within half the extent of its points from theirs; every other box is a
false box. Prints a markdown table for docs/results.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np
import yaml
from common import Row, cpu_name, print_rows

from fkp import CONF_DIR
from fkp.data.io import decode_image, read_keypoints_csv
from fkp.geometry import box_centres, points_extent
from fkp.runtime.detect import build_detector


def measure(data: Path, names: list[str]) -> list[Row]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # read when the detector's library loads
    cv2.setNumThreads(1)
    table = read_keypoints_csv(data / "test_frames_keypoints.csv")
    images = [decode_image(data / "test" / n) for n in table.names]
    detectors = {
        n: build_detector(yaml.safe_load((CONF_DIR / "detector" / f"{n}.yaml").read_text()))
        for n in names
    }
    missed, false, seconds = ({n: 0 for n in names}, {n: 0 for n in names},
                              {n: 0.0 for n in names})  # fmt: skip
    for image, points in zip(images, table.keypoints):
        cx, cy, extent = points_extent(points)
        for name, detector in detectors.items():
            start = time.perf_counter()
            boxes = detector.detect(image)
            seconds[name] += time.perf_counter() - start
            near = np.linalg.norm(box_centres(boxes) - (cx, cy), axis=1) < extent / 2
            missed[name] += int(not near.any())
            false[name] += len(boxes) - int(near.any())
    n = len(images)
    rows: list[Row] = []
    for name in names:
        setting = f"{n} test images, detector={name}"
        rows.append(("detector: faces missed", setting, 100 * missed[name] / n, "%"))
        rows.append(("detector: false boxes per image", setting, false[name] / n, ""))
        rows.append(("detector: time per image", setting, 1e3 * seconds[name] / n, "ms"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get(
        "FKP_DATA_DIR", "../shared/data/youtube_faces")))  # fmt: skip
    parser.add_argument("--detectors", nargs="+", default=["yunet", "haar"])
    args = parser.parse_args()
    print_rows((measure(args.data, args.detectors), f"{cpu_name()}, 1 thread"))


if __name__ == "__main__":
    main()
