"""`fkp data show` (or `python -m fkp.data show`): look at the data and its augmentation
before training. `fkp data convert`: 300W folders and WFLW lists to fkp's CSV layout, and CSVs
back to .pts files."""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

from fkp.config import build, compose_config
from fkp.data.datamodule import FaceKeypointsDataModule, KeypointsDataset
from fkp.data.formats import DATA_FORMATS
from fkp.errors import FkpError, reported_as_one_line
from fkp.geometry import denormalise
from fkp.viz import make_grid, save_image


def show(split: str, n: int, augment: bool, out: str, seed: int, overrides: list[str]) -> str:
    cfg = compose_config({}, overrides, config_name="train")  # so experiment=... applies too
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


def convert(source: str, out: str, fmt: str, subsets: list[str], points: int | None) -> str:
    """Write `source` (a 300W root with subsets, a WFLW list, or an fkp CSV) as `out` (an fkp
    CSV, or with fmt=csv a folder of .pts files named after the images)."""
    from pathlib import Path

    from fkp.data.formats import write_pts
    from fkp.data.io import read_keypoints_csv, write_keypoints_csv

    if fmt != "csv" and Path(out).is_dir():
        raise FkpError(f"{out}: a folder; name the CSV file to write, e.g. {Path(out) / 'x.csv'}.")
    if fmt != "csv":  # a format's reader: subset folders under source, or the file itself
        read = DATA_FORMATS.get(fmt)
        where = (Path(source), subsets or ["."]) if subsets or Path(source).is_dir() else (
            Path(source).parent, Path(source).name)  # fmt: skip
        table, _ = read(*where, "", points or (98 if fmt == "wflw" else 68))
    else:
        table = read_keypoints_csv(source, points or 68)
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise FkpError(f"{folder}: a file, not a folder; name a folder for the .pts files.")
        inside = folder.resolve()
        for name, marks in zip(table.names, table.keypoints):
            target = folder / Path(name).with_suffix(".pts")
            if inside not in target.resolve().parents:  # (names are checked when read, too)
                raise FkpError(f"{source}: image {name!r} would be written outside {folder}.")
            target.parent.mkdir(parents=True, exist_ok=True)
            write_pts(marks, target)
        return f"wrote {len(table)} .pts files under {folder}"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    path = write_keypoints_csv(table.names, table.keypoints, out)
    return f"wrote {path}: {len(table)} faces, {table.keypoints.shape[1]} points each"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fkp.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("show", help="draw a grid of samples with their keypoints to a PNG")
    p.add_argument("--split", choices=["train", "val", "test"], default="train")
    p.add_argument("--n", type=int, default=16, help="number of samples")
    p.add_argument("--augment", action="store_true", help="apply the training augmentation")
    p.add_argument("--out", default="samples.png", help="PNG file to write")
    p.add_argument("--seed", type=int, default=0, help="which samples and augmentations")
    p.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides, e.g. data.image_size=128 or experiment=fast_wild",
    )
    c = sub.add_parser("convert", help="300W / WFLW annotations to an fkp CSV, or a CSV to .pts")
    c.add_argument("source", help="300W root folder, WFLW annotation list, or fkp CSV")
    c.add_argument("out", help="the CSV to write (or, from a CSV, the folder for .pts files)")
    c.add_argument("--format", choices=list(DATA_FORMATS), required=True,
                   help="the source's format (csv: an fkp CSV, written as .pts)")  # fmt: skip
    c.add_argument("--subsets", nargs="*", default=[], help="300W subset folders, e.g. afw ibug")
    c.add_argument("--points", type=int, default=None, help="points per face (68; WFLW 98)")
    args = parser.parse_args(argv)
    warnings.formatwarning = lambda message, *_, **__: f"warning: {message}\n"
    if args.command == "show" and args.n < 1:
        parser.error("--n must be at least 1")
    with reported_as_one_line():
        if args.command == "convert":
            print(convert(args.source, args.out, args.format, args.subsets, args.points))
            return 0
        print(show(args.split, args.n, args.augment, args.out, args.seed, args.overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
