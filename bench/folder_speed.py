"""Photos of a folder: predict.py in one process against worker processes (workers=auto).

    FKP_DATA_DIR=../shared/data/youtube_faces python bench/folder_speed.py [--images 300]

Copies the first N test images into a temporary folder and runs `python predict.py
input=<folder>` with workers=1 and workers=auto in turn, three rounds; each figure is the
best round's images per second as predict.py prints it (decoding, detection, keypoints,
drawing and writing every output; start-up excluded, the worker processes' start included).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Row, cpu_name, print_rows

ROOT = Path(__file__).resolve().parents[1]


def images_per_second(folder: Path, workers: str, out: Path) -> float:
    done = subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), f"input={folder}", f"workers={workers}",
         f"hydra.run.dir={out}"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(re.search(r"([\d.]+) images/s", done.stdout + done.stderr).group(1))


def measure(data: Path, count: int, rounds: int = 3) -> list[Row]:
    names = sorted(os.listdir(data / "test"))[:count]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for name in names:
            shutil.copy(data / "test" / name, folder / name)
        best = {"1": 0.0, "auto": 0.0}
        for k in range(rounds):
            for workers in best:
                rate = images_per_second(folder, workers, Path(tmp) / f"out{k}{workers}")
                best[workers] = max(best[workers], rate)
    setting = f"{len(names)} YouTube Faces test images, predict.py's defaults"
    return [
        ("folder: one process (workers=1)", setting, best["1"], "images/s"),
        (f"folder: worker processes (workers=auto: {os.cpu_count()})", setting, best["auto"],
         "images/s"),
        ("folder: workers / one process (target >= 1.7 on 2 cores)", setting,
         best["auto"] / best["1"], "x"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()
    data = Path(os.environ.get("FKP_DATA_DIR", "../shared/data/youtube_faces"))
    print_rows((measure(data, args.images), f"{cpu_name()}, every core"))


if __name__ == "__main__":
    main()
