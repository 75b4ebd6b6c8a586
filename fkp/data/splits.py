"""Which rows of a keypoints data set are for training, validation and testing: the
annotation files read in their format, a test subset, and the validation rows (by person, by
frame, or the test set). No Lightning and no PyTorch here, so evaluation and calibration find
a checkpoint's rows without the training stack; the data module splits its rows with it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from fkp.data.download import TEST_CSV, TRAIN_CSV
from fkp.data.formats import DATA_FORMATS
from fkp.data.io import KeypointTable, person_of
from fkp.errors import FkpError
from fkp.landmarks import LandmarkSet, landmark_set


class DataSplits:
    """The splits of the data set under `data_dir` (settings as `FaceKeypointsDataModule`'s:
    train_csv with its images under train_images, test_csv with test_images, in `format`;
    test_subset, an attribute subset of the test rows; val_split person, frame or test, with
    val_fraction and seed; person_pattern, how an image's path names its person)."""

    def __init__(
        self,
        data_dir: str | Path,
        train_csv: str | Sequence[str] = TRAIN_CSV,
        test_csv: str | Sequence[str] = TEST_CSV,
        train_images: str = "training",
        test_images: str = "test",
        val_split: Literal["person", "frame", "test"] = "person",
        val_fraction: float = 0.1,
        seed: int = 42,
        landmarks: LandmarkSet | dict | str | None = None,
        format: str = "csv",
        test_subset: str | None = None,
        person_pattern: str | None = None,
    ) -> None:
        if val_split not in ("person", "frame", "test"):
            raise FkpError(f"data.val_split={val_split!r} is unknown; use person, frame or test.")
        if val_split != "test" and not 0 < val_fraction < 1:
            raise FkpError(f"data.val_fraction={val_fraction} must lie between 0 and 1.")
        self.data_dir = Path(data_dir).expanduser()
        self.read_format = DATA_FORMATS.get(format)  # a reader (fkp.data.formats)
        self.format = format
        self.landmarks = landmark_set(landmarks, "data.landmarks")
        self.files = {"train": (train_csv, train_images), "test": (test_csv, test_images)}
        self.val_split = val_split
        self.val_fraction = val_fraction
        self.seed = seed
        self.test_subset = test_subset
        self.person_pattern = re.compile(person_pattern) if person_pattern else None

    def read_split(self, which: str) -> tuple[KeypointTable, Path]:
        """The annotations of "train" or "test" in the configured format, and the folder their
        image names are relative to."""
        source, image_folder = self.files[which]
        table, folder = self.read_format(
            self.data_dir, source, image_folder, self.landmarks.num_points
        )
        if which == "test" and self.test_subset:  # a subset the format's attributes mark
            attributes = table.attributes or {}
            if self.test_subset not in attributes:
                choices = ", ".join(attributes) or f"none in data.format={self.format}"
                raise FkpError(
                    f"data.test_subset={self.test_subset} is unknown; use one of {choices}, "
                    "or null for the whole test set."
                )
            table = table.subset(np.flatnonzero(attributes[self.test_subset] == 1))
        return table, folder

    def val_rows(self, names: list[str]) -> np.ndarray:
        """Boolean mask over the training CSV's rows that go to validation."""
        rng = np.random.default_rng(self.seed)
        if self.val_split == "frame":
            mask = np.zeros(len(names), dtype=bool)
            mask[rng.permutation(len(names))[: max(1, round(len(names) * self.val_fraction))]] = (
                True
            )
            return mask
        persons = np.array([self.person(n) for n in names])
        unique = np.unique(persons)
        chosen = rng.permutation(unique)[: max(1, round(len(unique) * self.val_fraction))]
        return np.isin(persons, chosen)

    def person(self, name: str) -> str:
        """Who an image shows, for the person split: the first match of data.person_pattern
        (its first group, if it has one) in the image's path, or by default the file name
        without its trailing _NN (YouTube Faces' frame numbering)."""
        if self.person_pattern is None:
            return person_of(name)
        match = self.person_pattern.search(name)
        if match is None:
            return name  # an image the pattern does not group stands alone
        return match.group(1) if match.groups() else match.group(0)
