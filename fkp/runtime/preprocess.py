"""A model's evaluation transform as data: original image + square frames -> model inputs, and
the affines that map its outputs back.

The same settings travel in a checkpoint (its data config) and beside an exported model (the
JSON export.py writes), and this one class turns them into inputs for prediction, evaluation
and training alike (`fkp.data.transforms.KeypointTransform` adds training's random steps to
it). Its usual case, a centre crop of the frame, is one warp per face straight to the input
size, with NumPy and OpenCV only; other evaluation steps run through albumentations, loaded
only for them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fkp.errors import FkpError
from fkp.geometry import apply_affine, frame_affine, frame_of_points, to_3x3, warp
from fkp.landmarks import LandmarkSet, landmark_set
from fkp.plain import check_plain_data

# The data settings the transform is built from (beside its steps); kept in checkpoints and
# export files so inference rebuilds the evaluation transform exactly.
TRANSFORM_SETTINGS = ("image_size", "grayscale", "margin", "frame_scale", "mean", "std")
# Stored beside them since landmark sets became data; older records mean the 68-point set.
OPTIONAL_SETTINGS = ("landmarks",)
MAX_SETTING = 4096  # the largest number a stored setting may hold (pixels, limits, counts)
MAX_JSON_BYTES = 1 << 20  # fkp's own preprocessing files take a few KB


def _number_in(v: Any, low: float, high: float) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high


def _numbers_in(v: Any, low: float, high: float) -> bool:
    return isinstance(v, list) and len(v) in (1, 3) and all(_number_in(x, low, high) for x in v)


# What a stored record may hold for each setting (checked before anything is built from it).
RECORD_RANGES = {
    "image_size": (lambda v: type(v) is int and 16 <= v <= 1024, "a whole number 16-1024"),
    "grayscale": (lambda v: isinstance(v, bool), "true or false"),
    "margin": (lambda v: _number_in(v, 0, 4), "0 to 4"),
    "frame_scale": (lambda v: _number_in(v, 1, 4), "1 to 4"),
    "mean": (lambda v: _numbers_in(v, 0, 1), "1 or 3 numbers 0 to 1"),
    "std": (lambda v: _numbers_in(v, 1e-6, 10), "1 or 3 numbers above 0, up to 10"),
}
_ANCHORS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)


def plain_value(value: object, where: str) -> Any:
    """Numbers (at most MAX_SETTING in size), strings, booleans, None, and lists and mappings of
    them, as a stored record may hold them; anything else is one FkpError."""
    if isinstance(value, Mapping):
        return {str(k): plain_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and not (math.isfinite(value) and abs(value) <= MAX_SETTING)
    ):
        raise FkpError(f"{where}: {value} is out of range (at most {MAX_SETTING} in size).")
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    raise FkpError(f"{where}: {type(value).__name__} values are not allowed; use plain numbers.")


def settings_from_record(record: Mapping, where: str) -> dict[str, Any]:
    """The checked settings of a stored record (a checkpoint's data config, an export file's
    preprocessing): TRANSFORM_SETTINGS, the landmark set, and `steps` (the evaluation
    transform specs, still as data)."""
    settings: dict[str, Any] = {}
    for key in TRANSFORM_SETTINGS:
        if key not in record:
            raise FkpError(f"{where}: its preprocessing lacks {key!r}; export or train it again.")
        settings[key] = plain_value(record[key], f"{where} {key}")
        if not RECORD_RANGES[key][0](settings[key]):
            raise FkpError(
                f"{where}: its {key}={str(settings[key])[:60]} is out of range "
                f"({RECORD_RANGES[key][1]}); use a model written by fkp."
            )
    if record.get("landmarks") is not None:
        # read field by field as numbers and names (LandmarkSet.from_dict): data only; a name
        # may only be a shipped set, never a file
        marks = record["landmarks"]
        if not isinstance(marks, Mapping | str):
            raise FkpError(f"{where}: its landmark set is not readable; export or train it again.")
        settings["landmarks"] = landmark_set(marks, f"{where} landmarks", files=False)
    steps = record.get("eval_transforms") or []
    if not isinstance(steps, list | tuple):
        raise FkpError(f"{where}: its eval_transforms is not a list; export or train it again.")
    settings["steps"] = [plain_value(s, f"{where} eval_transforms[{i}]") for i, s in
                         enumerate(steps)]  # fmt: skip
    return settings


def _centre_crop_side(steps: Sequence, frame_size: int) -> int | None:
    """The side of the evaluation steps' crop when they are exactly one square, always-applied
    centre crop no larger than the frame (the shipped configs' case), else None."""
    if len(steps) != 1:
        return None
    step = steps[0]
    if isinstance(step, Mapping):
        if step.get("_target_") != "albumentations.CenterCrop":
            return None
        height, width, p = step.get("height"), step.get("width"), step.get("p", 1.0)
        extra = set(step) - {"_target_", "height", "width", "p"}
    elif type(step).__name__ == "CenterCrop" and type(step).__module__.startswith("albument"):
        height, width, p = step.height, step.width, step.p
        extra = set()
    else:
        return None
    if extra or p != 1 or height != width or type(height) is not int:
        return None
    return height if 0 < height <= frame_size else None


class Preprocessing:
    """Original image + square frames (cx, cy, side) -> normalised model inputs.

    Args:
        image_size: side of the model input in pixels.
        frame_scale: the frame is drawn at image_size * frame_scale pixels before the steps
            run (the write-up rescales to 250 and crops 224: 250 / 224).
        grayscale: one input channel instead of three (RGB).
        mean, std: per-channel input normalisation on the [0, 1] scale; three values are
            averaged into one for grayscale.
        margin: how much larger than the points' extent a face's frame is (`frame_of_points`);
            detector boxes are brought to the same framing.
        landmarks: the landmark set: its flip pairs relabel mirrored faces (flip test,
            training flips); default the 68-point iBUG markup.
        steps: the deterministic evaluation steps applied to the frame, as specs
            (`{"_target_": "albumentations.CenterCrop", ...}`) or built albumentations
            transforms; geometric ones should be affine for the mapping back to be exact.
    """

    def __init__(
        self,
        image_size: int,
        frame_scale: float = 1.0,
        grayscale: bool = False,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        margin: float = 0.25,
        landmarks: LandmarkSet | dict | str | None = None,
        steps: Sequence[Any] = (),
        where: str = "eval_transforms",
    ) -> None:
        self.image_size = int(image_size)
        self.frame_size = max(self.image_size, round(self.image_size * frame_scale))
        self.grayscale = grayscale
        self.margin = margin
        self.landmarks = landmark_set(landmarks)
        mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        if grayscale:
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        self.scale = (1.0 / (255.0 * std)).astype(np.float32)[:, None, None]  # (C, 1, 1)
        self.shift = (-mean / std).astype(np.float32)[:, None, None]
        self.steps = list(steps)
        self._crop = None if self.steps else self.frame_size  # no steps: the frame is the input
        if self.steps:
            self._crop = _centre_crop_side(self.steps, self.frame_size)
        self._pipeline: Any = None  # albumentations: only for steps that are not native
        if not self.native:
            from fkp.data.transforms import compose  # checks the steps against the allow-list

            self._pipeline = compose(self.steps, where)

    @classmethod
    def from_record(cls, record: Mapping, where: str) -> Preprocessing:
        """From a stored record, checked as data (`settings_from_record`)."""
        return cls(**settings_from_record(record, where), where=f"{where} eval_transforms")

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    @property
    def native(self) -> bool:
        """True when the steps run without albumentations (no steps, or one centre crop)."""
        return self._crop is not None

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """RGB (H, W, 3) or gray (H, W) uint8 -> (H, W) if grayscale, else (H, W, 3) RGB.

        Converted once per image, not once per face (data sets cache prepared images)."""
        if self.grayscale and image.ndim == 3:
            return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if not self.grayscale and image.ndim == 2:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        return image

    def frame_for(self, points: np.ndarray) -> np.ndarray:
        """The training framing of points: (..., K, 2) -> (..., 3) frames."""
        return frame_of_points(points, self.margin)

    def to_input(self, pixels: np.ndarray) -> np.ndarray:
        """(S, S) or (S, S, C) uint8 -> (C, S, S) float32, normalised."""
        chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        return chw.astype(np.float32) * self.scale + self.shift

    def input_affine(self, frame: np.ndarray) -> np.ndarray:
        """(2, 3) affine, original -> input pixels, for a native transform: the frame's warp
        and the centre crop in one."""
        offset = (self.frame_size - self._crop) // 2
        affine = frame_affine(frame, self.frame_size)
        affine[:, 2] -= offset
        return affine

    def sample(self, image: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One face: image (H, W[, 3]) `prepare`d; frame (3,). Returns the input (C, S, S)
        float32 and its (2, 3) affine, original -> input pixels."""
        if self.native:
            affine = self.input_affine(frame)
            return self.to_input(warp(image, affine, self._crop)), affine
        affine = frame_affine(frame, self.frame_size)
        pixels, affine, _, _ = self.through_steps(
            self._pipeline, warp(image, affine, self.frame_size), affine
        )
        return self.to_input(pixels), affine

    def inputs(self, image: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All faces of one image: image (H, W, 3) RGB or `prepare`d; frames (N, 3). Returns
        inputs (N, C, S, S) float32 and affines (N, 2, 3) original -> input pixels."""
        prepared = self.prepare(image)
        samples = [self.sample(prepared, frame) for frame in frames]
        if not samples:
            size = self.image_size
            return np.zeros((0, self.channels, size, size), np.float32), np.zeros((0, 2, 3))
        return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])

    def through_steps(
        self, pipeline: Any, frame: np.ndarray, frame_affine: np.ndarray,
        keypoints: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray | None]:  # fmt: skip
        """A frame through an albumentations pipeline, its affine measured by sending three
        anchor points (and the keypoints, (K, 2) original pixels) along. Returns the pixels,
        the (2, 3) affine original -> input pixels, whether the steps mirrored the face, and
        the keypoints in input pixels (relabelled if mirrored)."""
        anchors = _ANCHORS * self.frame_size
        points = anchors
        if keypoints is not None:
            points = np.concatenate([apply_affine(frame_affine, keypoints), anchors])
        if pipeline is None:
            out = {"image": frame, "keypoints": points}
        else:
            out = pipeline(image=frame, keypoints=points.astype(np.float32))
        moved = np.asarray(out["keypoints"], dtype=np.float64)
        m = np.hstack([anchors, np.ones((3, 1))]).astype(np.float64)
        step = np.linalg.solve(m, moved[-3:]).T  # the affine moving the anchors
        affine = step @ to_3x3(frame_affine)
        mirrored = bool(np.linalg.det(step[:, :2]) < 0)
        kp = None
        if keypoints is not None:
            kp = moved[: len(keypoints)]
            if mirrored:
                kp = kp[self.landmarks.flip_index]
        return out["image"], affine, mirrored, kp


def preprocessing_path(model_path: str | Path) -> Path:
    """Where an exported model's preprocessing JSON lies: beside it, same name, .json."""
    return Path(model_path).with_suffix(".json")


def read_preprocessing(model_path: str | Path) -> Preprocessing:
    """The evaluation transform of an exported model, from its JSON: data only (older files in
    albumentations' `to_dict` form are read too)."""
    path = preprocessing_path(model_path)
    if not path.is_file():
        raise FkpError(
            f"{path}: missing; export.py writes it beside {Path(model_path).name}: keep both."
        )
    if path.stat().st_size > MAX_JSON_BYTES:
        raise FkpError(f"{path}: too large for a preprocessing file; export the model again.")
    try:
        record = json.loads(path.read_text())
        settings = dict(record["preprocessing"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise FkpError(f"{path}: not an fkp preprocessing file; export the model again.") from None
    check_plain_data(record, str(path))
    if "eval_transforms" not in settings and record.get("eval_pipeline"):
        settings["eval_transforms"] = [record["eval_pipeline"]["transform"]]  # older files
    return Preprocessing.from_record(settings, str(path))
