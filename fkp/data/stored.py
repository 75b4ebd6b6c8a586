"""The faces a checkpoint's own data settings point at: its test split, its validation rows, the
rows it trained on, or any CSV in the training layout, for evaluation and for calibrating an
int8 export on training rows.

A checkpoint's data settings are data: only plain file names under the data folder the user
passes are used, and a stored person pattern (a regex) is run only when the user passes the
same one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fkp.data.io import check_extent, load_images, read_keypoints_csv
from fkp.data.splits import DataSplits
from fkp.errors import FkpError
from fkp.landmarks import landmark_set

# The data settings that say which files a checkpoint's splits come from, and how to read them.
DATA_FILES = ("format", "train_csv", "test_csv", "train_images", "test_images", "test_subset",
              "person_pattern")  # fmt: skip


def load_faces(
    cfg: Any, data_config: dict, sample: int | None = None, seed: int = 0
) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """Names, labelled keypoints (N, K, 2) and RGB images of the faces eval.py's options pick
    (cfg: data_dir, split test | val | train, csv, images, subset, people, person_pattern,
    limit; attribute access, as a DictConfig gives), K from the checkpoint's landmark set.

    split=train: the rows the checkpoint trained on (its training CSV less its validation
    rows). sample: that many rows drawn at random (seeded), not the first ones, so a
    calibration set spans many people."""
    num_points = landmark_set(data_config.get("landmarks")).num_points
    if cfg.csv:
        if cfg.get("people", "all") != "all":
            raise FkpError("people= picks test faces by person; drop it, or use split=test.")
        table = read_keypoints_csv(cfg.csv, num_points)
        folder = Path(cfg.images) if cfg.images else Path(cfg.csv).parent
    else:
        if cfg.split not in ("test", "val", "train"):
            raise FkpError(f"split={cfg.split} is unknown; use test, val or train.")
        split_settings = stored_split(data_config, needed=cfg.split != "test")
        use_test = cfg.split == "test" or (
            cfg.split == "val" and split_settings["val_split"] == "test"
        )
        # the files and format the checkpoint was trained with, under this data_dir
        files = stored_files(data_config, cfg)
        if cfg.subset is not None:
            files["test_subset"] = cfg.subset
        split = DataSplits(
            cfg.data_dir, landmarks=data_config.get("landmarks"), **split_settings, **files
        )
        table, folder = split.read_split("test" if use_test else "train")
        if not use_test and split_settings["val_split"] != "test":
            validated = split.val_rows(table.names)  # the rows this checkpoint validated on
            table = table.subset(np.flatnonzero(validated if cfg.split == "val" else ~validated))
        if cfg.get("people", "all") != "all":
            table = test_faces_of(table, split, cfg, split_settings)
    if cfg.limit:
        table = table.subset(np.arange(min(cfg.limit, len(table))))
    if sample is not None and sample < len(table):
        rows = np.random.default_rng(seed).choice(len(table), sample, replace=False)
        table = table.subset(np.sort(rows))
    check_extent(table)
    return table.names, table.keypoints, load_images(table, folder)


def test_faces_of(table, split: DataSplits, cfg: Mapping[str, Any], settings: dict):
    """The test faces of the people a person-split model never trained on (its validation
    people: people=held_out), or of the people it trained on (people=seen). Every test person
    of YouTube Faces also appears in its training CSV, so whole-split figures flatter a model."""
    if cfg.split != "test" or settings["val_split"] != "person":
        raise FkpError(
            f"people={cfg.people} needs split=test and a model trained with a person split "
            "(data.val_split=person), whose validation people it never trained on; use people=all."
        )
    training, _ = split.read_split("train")
    held = {split.person(n) for n in np.asarray(training.names)[split.val_rows(training.names)]}
    keep = [(split.person(n) in held) == (cfg.people == "held_out") for n in table.names]
    if not any(keep):
        raise FkpError(f"people={cfg.people}: no test face qualifies; use people=all.")
    return table.subset(np.flatnonzero(keep))


def stored_split(data_config: dict, needed: bool) -> dict:
    """How the checkpoint split its training rows into train and val (val_split, val_fraction,
    seed), checked as data; a setting it lacks is one line when the split needs it."""
    kinds = {"val_split": str, "val_fraction": float, "seed": int}
    defaults = {"val_split": "person", "val_fraction": 0.1, "seed": 42}
    out = {}
    for key, kind in kinds.items():
        value = data_config.get(key)
        ok = isinstance(value, kind) if kind is not float else isinstance(value, int | float)
        if ok and not isinstance(value, bool):
            out[key] = value
        elif needed:
            raise FkpError(
                f"ckpt_path: its data settings lack a usable {key} ({str(value)[:40]}), so its "
                "validation rows cannot be found; evaluate split=test or csv=<file> instead."
            )
        else:
            out[key] = defaults[key]
    return out


def stored_files(data_config: dict, cfg: Mapping[str, Any]) -> dict:
    """The data files a checkpoint was trained with, as names under data_dir: plain relative
    names only (a stored name may not point elsewhere on disk). A stored person_pattern is a
    regex fkp does not run unless the user passes the same one (person_pattern=...); only
    split=val needs it."""
    files = {k: data_config[k] for k in DATA_FILES if data_config.get(k) is not None}
    for key in ("train_csv", "test_csv", "train_images", "test_images"):
        names = files.get(key, [])
        for name in names if isinstance(names, list) else [names]:
            if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
                raise FkpError(
                    f"ckpt_path: its data setting {key}={str(name)[:80]!r} is not a plain name "
                    "under data_dir; evaluate csv=<file> images=<folder> instead."
                )
    for key, kind in (("format", str), ("test_subset", str)):
        if key in files and not isinstance(files[key], kind):
            raise FkpError(f"ckpt_path: its data setting {key} is not readable.")
    stored = files.pop("person_pattern", None)
    if stored is not None and cfg.split == "val":  # only the val rows depend on it
        if stored != cfg.get("person_pattern"):
            raise FkpError(
                f"ckpt_path: it was trained with data.person_pattern={str(stored)[:80]!r}; fkp "
                "does not run a pattern read from a checkpoint: pass the same "
                "person_pattern=... to eval.py to use it, or evaluate split=test."
            )
        files["person_pattern"] = stored
    return files
