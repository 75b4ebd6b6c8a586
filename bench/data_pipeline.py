"""Training-pipeline throughput: samples/s in one process, fkp vs the course starter style.

The starter style (the course's data_load.py) reads the CSV row with pandas, decodes the image
with matplotlib, rescales, crops and normalises on every access; it reads the release's own
format, PNG with alpha (re-encoded here from the data folder, pixel for pixel). fkp decodes once
into memory (or, with data.cache=false, reads each image when its sample is drawn), frames the
face from the original image and runs the Hydra-configured albumentations pipeline. Run from
the project root:

    FKP_DATA_DIR=../shared/data/youtube_faces python bench/data_pipeline.py

Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import albumentations as A
import cv2
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import torch
from common import Row, hardware, print_rows

from fkp.config import build, compose_config
from fkp.data import FaceKeypointsDataModule, KeypointsDataset, decode_image
from fkp.data.io import ImageFiles
from fkp.data.transforms import KEYPOINTS, RandomSimilarity


class StarterStyleDataset(torch.utils.data.Dataset):
    """The course starter's FacialKeypointsDataset + Rescale/RandomCrop/Normalize/ToTensor."""

    def __init__(self, frame: pd.DataFrame, root_dir: Path, size: int) -> None:
        self.frame, self.root = frame, root_dir
        self.size, self.rescale = size, round(size * 250 / 224)

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, i: int) -> dict:
        image = mpimg.imread(self.root / self.frame.iloc[i, 0])
        if image.shape[2] == 4:
            image = image[:, :, :3]
        kp = self.frame.iloc[i, 1:].to_numpy().astype("float").reshape(-1, 2)
        h, w = image.shape[:2]  # Rescale: smaller side to 250
        nh, nw = (
            (self.rescale * h / w, self.rescale) if h > w else (self.rescale, self.rescale * w / h)
        )
        image = cv2.resize(image, (int(nw), int(nh)))
        kp = kp * [nw / w, nh / h]
        top = np.random.randint(0, image.shape[0] - self.size + 1)  # noqa: NPY002 (RandomCrop)
        left = np.random.randint(0, image.shape[1] - self.size + 1)  # noqa: NPY002
        image = image[top : top + self.size, left : left + self.size]
        kp = kp - [left, top]
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) / 255.0  # Normalize
        kp = (kp - 100) / 50.0
        return {
            "image": torch.from_numpy(image.reshape(1, self.size, self.size)),
            "keypoints": torch.from_numpy(kp),
        }


def rate(dataset: torch.utils.data.Dataset, seconds: float) -> float:
    """Samples per second of single-process access in random order."""
    order = np.random.default_rng(0).permutation(len(dataset))
    dataset[int(order[0])]
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        dataset[int(order[count % len(order)])]
        count += 1
    return count / (time.perf_counter() - start)


def release_format_copy(dm: FaceKeypointsDataModule, count: int, folder: Path) -> pd.DataFrame:
    """The first `count` training rows, their images written as the release stores them."""
    csv_name, images = dm.files["train"]
    frame = pd.read_csv(dm.data_dir / csv_name).iloc[:count]
    for name in frame.iloc[:, 0]:
        rgba = cv2.cvtColor(decode_image(dm.data_dir / images / name), cv2.COLOR_RGB2BGRA)
        ok, data = cv2.imencode(".png", rgba)
        (folder / name).write_bytes(data.tobytes())
    return frame


def measure(seconds: float = 5.0, sizes: tuple[int, ...] = (224, 128)) -> list[Row]:
    """Rows of samples/s in one process: the starter style, then fkp's pipelines."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    data_dir = Path(os.environ.get("FKP_DATA_DIR", "data/youtube_faces"))
    groups = {"data": "youtube_faces", "paths": "default"}
    cfg = compose_config(groups, [f"data.data_dir={data_dir}"])
    dm: FaceKeypointsDataModule = build(cfg.data)
    start = time.perf_counter()
    dm.setup("fit")
    train = dm.datasets["train"]
    seconds_to_cache = time.perf_counter() - start
    images_dir = dm.data_dir / dm.files["train"][1]
    what = "data: decode the training split once"
    rows: list[Row] = [(what, f"{len(train.images)} faces", seconds_to_cache, "s")]
    with tempfile.TemporaryDirectory() as tmp:
        frame = release_format_copy(dm, 500, Path(tmp))
        for size in sizes:
            setting = f"{size} px, 1 process"
            rate_of = {"starter": rate(StarterStyleDataset(frame, Path(tmp), size), seconds)}
            for label, grayscale in [("grayscale", True), ("RGB", False)]:
                overrides = [f"data.image_size={size}", f"data.grayscale={grayscale}"]
                sized = compose_config(groups, [f"data.data_dir={data_dir}", *overrides])
                transform = build(sized.data).train_transform
                data = KeypointsDataset(train.images, train.keypoints, train.names, transform)
                rate_of[label] = rate(data, seconds)
                if grayscale:  # images read from disk on every access (data.cache=false)
                    files = ImageFiles(images_dir, train.names)
                    rate_of["disk"] = rate(
                        KeypointsDataset(files, train.keypoints, train.names, transform), seconds
                    )
                if grayscale:  # the same draws through albumentations' general Affine
                    steps = [_as_albumentations_affine(t) for t in transform.pipeline.transforms]
                    transform._pipeline = A.Compose(steps, keypoint_params=KEYPOINTS)
                    rate_of["affine"] = rate(data, seconds)
            starter = rate_of["starter"]
            names = {
                "starter": "data: starter style (decode + rescale + crop + normalise)",
                "grayscale": "data: fkp train pipeline, cached, grayscale",
                "disk": "data: fkp train pipeline, read from disk (cache=false), grayscale",
                "affine": "data: ... with albumentations.Affine, grayscale",
                "RGB": "data: fkp train pipeline, cached, RGB",
            }
            for key, label in names.items():
                ratio = rate_of[key] / starter
                rows.append((label, f"{setting}, {ratio:.1f}x starter", rate_of[key], "samples/s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="timing window per row")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 128])
    args = parser.parse_args()
    print_rows((measure(args.seconds, tuple(args.sizes)), hardware(threads=1)))


def _as_albumentations_affine(step: A.BasicTransform) -> A.BasicTransform:
    if not isinstance(step, RandomSimilarity):
        return step
    return A.Affine(
        rotate=step.rotate,
        scale=step.scale,
        translate_percent=step.translate,
        border_mode=0,
        p=step.p,
    )


if __name__ == "__main__":
    main()
