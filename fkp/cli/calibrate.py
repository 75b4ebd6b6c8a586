"""Calibrate a face detector's box to the training framing: `python calibrate.py detector=haar`.

Runs the detector over the training rows of the person split (never validation or test rows),
measures where the 68 labelled points lie in its boxes (`fkp.runtime.detect.calibrate`) and
writes the medians into fkp/conf/detector/<detector>.yaml (`extent`, `shift`), which
predict.py and eval.py use.
"""

from __future__ import annotations

import re
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fkp import CONF_DIR
from fkp.config import build, one_line_errors
from fkp.data.datamodule import FaceKeypointsDataModule
from fkp.data.io import load_images
from fkp.errors import reported_as_one_line
from fkp.files import write_text
from fkp.runtime.detect import build_detector, calibrate


def training_rows(cfg: DictConfig):
    """The data group's training rows less the validation rows train.py would hold out, read
    in the group's format."""
    split: FaceKeypointsDataModule = build(cfg.data)
    split.prepare_data()
    table, folder = split.splits.read_split("train")
    if split.splits.val_split != "test":
        table = table.subset(np.flatnonzero(~split.splits.val_rows(table.names)))
    if cfg.limit:
        table = table.subset(np.arange(min(cfg.limit, len(table))))
    return table, load_images(table, folder)


def write_calibration(path: Path, extent: float, shift: tuple[float, float]) -> None:
    """Replace the extent and shift lines of a detector YAML (comments kept)."""
    text = path.read_text()
    for key, value in (("extent", f"{extent}"), ("shift", f"[{shift[0]}, {shift[1]}]")):
        line = f"{key}: {value}"
        pattern = re.compile(rf"^{key}:.*$", re.M)
        text = pattern.sub(line, text) if pattern.search(text) else text + line + "\n"
    write_text(path, text)


def run(cfg: DictConfig) -> dict:
    name = HydraConfig.get().runtime.choices["detector"]
    table, images = training_rows(cfg)
    result = calibrate(build_detector(cfg.detector), images, table.keypoints)
    print(f"detector={name}: {result['faces']} of {len(table)} training faces matched "
          f"(missed {100 * result['miss_rate']:.1f}%); the points spread over "
          f"{result['extent']} box widths, centred ({result['shift_x']}, {result['shift_y']}) "
          "box widths from the box centre")  # fmt: skip
    if cfg.write:
        path = CONF_DIR / "detector" / f"{name}.yaml"
        write_calibration(path, result["extent"], (result["shift_x"], result["shift_y"]))
        print(f"wrote {path}")
    return result


@one_line_errors("calibrate")
@hydra.main(version_base="1.3", config_path="../conf", config_name="calibrate")
def main(cfg: DictConfig) -> None:
    with reported_as_one_line():
        run(cfg)
