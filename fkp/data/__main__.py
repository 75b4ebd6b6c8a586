"""`python -m fkp.data show`: look at the data and its augmentation before training."""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

from fkp.config import build, compose_config
from fkp.data.datamodule import FaceKeypointsDataModule, KeypointsDataset
from fkp.data.transforms import denormalise
from fkp.errors import reported_as_one_line
from fkp.viz import make_grid, save_image


def show(split: str, n: int, augment: bool, out: str, seed: int, overrides: list[str]) -> str:
    cfg = compose_config({"data": "youtube_faces", "paths": "default"}, overrides)
    dm: FaceKeypointsDataModule = build(cfg.data)
    dm.prepare_data()
    dm.setup("fit" if split in ("train", "val") else "test")
    data = dm.datasets[split]
    transform = dm.train_transform if augment else dm.eval_transform
    dataset = KeypointsDataset(data.images, data.keypoints, data.names, transform)
    dataset.reseed(seed)
    rows = np.random.default_rng(seed).permutation(len(dataset))[:n]
    samples = [dataset[int(i)] for i in rows]
    size = transform.image_size
    titles = [
        s["name"] + (" (mirrored)" if np.linalg.det(s["affine"][:, :2]) < 0 else "")
        for s in samples
    ]
    grid = make_grid(
        [transform.to_pixels(s["image"]) for s in samples],
        [denormalise(s["keypoints"], size) for s in samples],
        titles=titles,
        landmarks=transform.landmarks,
    )
    path = save_image(out, grid)
    kind = "augmented" if augment else "evaluation"
    return f"wrote {path}: {len(samples)} {kind} samples of the {split} split ({len(data)} images)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fkp.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("show", help="draw a grid of samples with their keypoints to a PNG")
    p.add_argument("--split", choices=["train", "val", "test"], default="train")
    p.add_argument("--n", type=int, default=16, help="number of samples")
    p.add_argument("--augment", action="store_true", help="apply the training augmentation")
    p.add_argument("--out", default="samples.png", help="PNG file to write")
    p.add_argument("--seed", type=int, default=0, help="which samples and augmentations")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.image_size=128")
    args = parser.parse_args(argv)
    warnings.formatwarning = lambda message, *_, **__: f"warning: {message}\n"
    if args.n < 1:
        parser.error("--n must be at least 1")
    with reported_as_one_line():
        print(show(args.split, args.n, args.augment, args.out, args.seed, args.overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
