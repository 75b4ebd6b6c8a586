"""The YouTube Faces keypoints (or any CSV + image folder in that layout, a 300W folder, a WFLW
annotation list) as a data module."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import albumentations as A
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from fkp.data.download import RELEASE_URL, TEST_CSV, TRAIN_CSV, ensure_dataset
from fkp.data.io import (
    ImageFiles,
    KeypointTable,
    check_extent,
    check_images_exist,
    check_points_in_decoded,
    check_points_in_images,
    image_sizes,
    load_images,
)
from fkp.data.splits import DataSplits
from fkp.data.transforms import KeypointTransform, build_framing, build_transforms
from fkp.errors import FkpError
from fkp.landmarks import LandmarkSet

log = logging.getLogger(__name__)

# The images each split decoded last, kept for the next job of a sweep run in this process
# (Hydra's basic launcher runs `-m` jobs one after another): a job reading the same image
# files, unchanged, in the same colour mode starts without decoding them again. One entry per
# split, replaced by the next data set: a single run holds no more memory than before.
_DECODED: dict[str, tuple[tuple, list[np.ndarray]]] = {}


def _decoded_key(folder: Path, names: list[str], grayscale: bool) -> tuple | None:
    """What decoding a table's images depends on (paths, each file's size and modification
    time, the colour mode); None where a file cannot be read (decoding then says which)."""
    try:
        stats = [os.stat(folder / name) for name in names]
    except OSError:
        return None
    files = tuple((s.st_size, s.st_mtime_ns) for s in stats)
    return str(folder.resolve()), tuple(names), files, grayscale


class KeypointsDataset(Dataset):
    """Faces framed from their original images and augmented on every access.

    images: N images, decoded in memory (RGB, or `transform.prepare`d) or an `ImageFiles` that
    reads each one when asked; keypoints: (N, K, 2) original pixels. Each access frames the
    face around its labelled points (with the transform's random framing, if any) straight
    from the original image, so rotations and zooms see the real surroundings.
    A sample holds image (C, S, S), keypoints (K, 2) in [-1, 1], affine (2, 3) original ->
    input pixels, points (K, 2) original pixels relabelled like keypoints, name, index.
    """

    def __init__(
        self,
        images: list[np.ndarray] | ImageFiles,
        keypoints: np.ndarray,
        names: list[str],
        transform: KeypointTransform,
    ) -> None:
        self.images = images
        self.keypoints = keypoints
        # NumPy strings, not a list of str objects: a worker reading a list would touch each
        # object's reference count and so copy its memory page by page over an epoch
        self.names = np.asarray(names, dtype=str)
        self.transform = transform
        self.frames = transform.frame_for(keypoints)  # (N, 3)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        points = self.keypoints[index]
        sample = self.transform(self.images[index], self.frames[index], points)
        mirrored = sample.pop("mirrored")
        sample["points"] = points[self.transform.landmarks.flip_index] if mirrored else points
        sample["name"] = str(self.names[index])
        sample["index"] = index
        return sample

    def reseed(self, seed: int) -> None:
        self.transform.reseed(seed)


def _seed_worker(_: int) -> None:
    # A SIGTERM to the whole process group is the main process's to handle (it saves and
    # exits); a worker dying of it first would end the run in a DataLoader traceback.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Forked workers would otherwise all inherit the same albumentations random state.
    info = get_worker_info()
    info.dataset.reseed(info.seed)


class FaceKeypointsDataModule(pl.LightningDataModule):
    """Train / val / test splits of a keypoints data set, decoded once and cached in memory.

    The folder holds `train_csv` with its images under `train_images`, and `test_csv` with
    `test_images`. With format=300w, train_csv / test_csv are lists of subset folders (images
    with .pts files beside them; images found under data_dir); with format=wflw they are
    annotation lists, and test_subset picks one attribute subset of the test list. Validation
    comes from the training rows: split by person (default; frames of one person never
    straddle train and val; `person_pattern` says how names give the person), by frame, or
    `val_split=test` to validate on the test set as the original write-up did. Which rows go
    where is `self.splits` (`fkp.data.splits.DataSplits`), which evaluation uses too.

    image_size, grayscale, margin, frame_scale, mean, std: the framing and input format,
    shared by the training transform (framing + `train_transforms`) and the evaluation one
    (framing + `eval_transforms`); see `KeypointTransform`. `train_framing` lists the random
    geometric steps (RandomSimilarity, FramingJitter) that are part of the training framing,
    warped from the original image. cache: decode every image once and keep it (fast), or
    read each image in the loader workers when its sample is drawn (memory stays flat
    whatever the number of rows). Transforms come as albumentations
    objects or as specs (`{"_target_": "albumentations.CenterCrop", ...}`, the config's form),
    which are built from an allow-list (`fkp.data.transforms.build_transform`). Prediction rebuilds
    `eval_transform` from the same settings, so it sees faces exactly as evaluation does.
    """

    def __init__(
        self,
        data_dir: str | Path,
        image_size: int = 224,
        grayscale: bool = True,
        margin: float = 0.5,
        frame_scale: float = 1.0,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        train_transforms: Sequence[A.BasicTransform | Mapping] = (),
        train_framing: Sequence[A.BasicTransform | Mapping] = (),
        eval_transforms: Sequence[A.BasicTransform | Mapping] = (),
        train_csv: str | Sequence[str] = TRAIN_CSV,
        test_csv: str | Sequence[str] = TEST_CSV,
        train_images: str = "training",
        test_images: str = "test",
        val_split: Literal["person", "frame", "test"] = "person",
        val_fraction: float = 0.1,
        seed: int = 42,
        limit: int | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool = False,
        download: bool = True,
        url: str = RELEASE_URL,
        landmarks: LandmarkSet | Mapping | str | None = None,
        format: str = "csv",
        test_subset: str | None = None,
        person_pattern: str | None = None,
        cache: bool = True,
    ) -> None:
        super().__init__()
        self.splits = DataSplits(
            data_dir, train_csv, test_csv, train_images, test_images, val_split, val_fraction,
            seed, landmarks, format, test_subset, person_pattern,
        )  # fmt: skip
        self.landmarks = self.splits.landmarks
        self.data_dir = self.splits.data_dir
        shared = dict(
            image_size=image_size,
            frame_scale=frame_scale,
            grayscale=grayscale,
            mean=mean,
            std=std,
            margin=margin,
            landmarks=self.landmarks,
        )
        train_steps = build_transforms(train_transforms, "data.train_transforms")
        eval_steps = build_transforms(eval_transforms, "data.eval_transforms")
        framing = build_framing(train_framing, "data.train_framing")
        self.train_transform = KeypointTransform(transforms=train_steps, framing=framing, **shared)
        self.eval_transform = KeypointTransform(transforms=eval_steps, **shared)
        self.limit = limit
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.cache = cache
        self.download = download
        self.url = url
        self._tables: dict[str, KeypointTable] = {}
        self._images: dict[str, list[np.ndarray] | ImageFiles] = {}
        self.datasets: dict[str, KeypointsDataset] = {}

    def prepare_data(self) -> None:
        ensure_dataset(self.data_dir, download=self.download, url=self.url)

    def _load(self, which: str) -> tuple[KeypointTable, list[np.ndarray] | ImageFiles]:
        """Read one split's annotations and decode its images (with `cache`), once for the
        life of the module."""
        if which not in self._tables:
            if not self.data_dir.is_dir():
                self.prepare_data()
            table, folder = self.splits.read_split(which)
            if self.limit:
                table = table.subset(np.arange(min(self.limit, len(table))))
            check_extent(table)
            if self.cache:
                key = _decoded_key(folder, list(table.names), self.train_transform.grayscale)
                kept = _DECODED.pop(which, None)
                if key is not None and kept is not None and kept[0] == key:
                    log.info("%s: reusing the %d images the previous job decoded",
                             table.csv_path.name, len(table))  # fmt: skip
                    images = kept[1]
                    check_points_in_decoded(table, images)  # the rows may have changed
                else:
                    del kept  # freed before the new images are decoded
                    log.info("decoding %d images of %s", len(table), table.csv_path.name)
                    prepare = self.train_transform.prepare
                    images = load_images(table, folder, prepare=prepare)
                self._images[which] = images
                if key is not None:
                    _DECODED[which] = (key, images)
            else:  # the loader workers decode each image when its sample is drawn
                check_images_exist(table, folder)
                check_points_in_images(table, image_sizes(folder, table.names))
                self._images[which] = ImageFiles(folder, table.names)
            self._tables[which] = table
        return self._tables[which], self._images[which]

    def _dataset(self, which: str, rows: np.ndarray | None, transform: KeypointTransform):
        table, images = self._load(which)
        if rows is not None:
            table = table.subset(rows)
            images = (
                images.subset(rows) if isinstance(images, ImageFiles) else [images[i] for i in rows]
            )
        return KeypointsDataset(images, table.keypoints, table.names, transform)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and "train" not in self.datasets:
            if self.splits.val_split == "test":
                self.datasets["train"] = self._dataset("train", None, self.train_transform)
                self.datasets["val"] = self._dataset("test", None, self.eval_transform)
            else:
                table, _ = self._load("train")
                val = self.splits.val_rows(table.names)
                if val.all():
                    raise FkpError(
                        f"{table.csv_path}: too few people or rows to split off validation; "
                        "lower data.val_fraction or use data.val_split=test."
                    )
                train_rows, val_rows = np.flatnonzero(~val), np.flatnonzero(val)
                self.datasets["train"] = self._dataset("train", train_rows, self.train_transform)
                self.datasets["val"] = self._dataset("train", val_rows, self.eval_transform)
        if stage in (None, "test", "predict") and "test" not in self.datasets:
            self.datasets["test"] = self._dataset("test", None, self.eval_transform)

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        dataset = self.datasets[split]
        if train:
            dataset.reseed(int(torch.randint(0, 2**31 - 1, ()).item()))
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train and len(dataset) > self.batch_size,  # batchnorm needs 2+ samples
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=_seed_worker if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
