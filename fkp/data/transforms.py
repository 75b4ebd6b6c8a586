"""From an original image and a face box to a model input, and back.

The geometry has one source of truth, used by training, metrics and prediction alike:

1. Framing: a square box (cx, cy, side) in original-image pixels, from the labelled points
   (training, ground-truth-box evaluation) or from a face detector (prediction), is warped to
   a `frame_size` square; borders are padded, never shifted. For training, geometric steps
   listed as `framing` (rotation, zoom, shift) are drawn per sample and joined to this warp,
   so a rotated or zoomed-out face shows what really surrounds it in the original image.
2. An albumentations pipeline from the Hydra config (random for training, deterministic for
   evaluation and prediction) crops/augments that frame to `image_size`.
3. Keypoints of the input image are normalised to [-1, 1] by `normalise` and come back with
   `denormalise`.

Every sample carries `affine` (2, 3): original-image pixels -> input pixels, measured by
sending three anchor points through the whole chain. `to_image` inverts it, so predictions map
back to original pixels exactly whatever affine steps the pipeline holds. A mirroring step
(negative determinant) also relabels the points with `FLIP_INDEX`, which albumentations does
not do.

Pixel convention: integer coordinates are pixel centres, so an image of width W spans
x in [-0.5, W - 0.5]; albumentations' flips (x -> W - 1 - x) follow the same convention.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch

from fkp.errors import FkpError
from fkp.landmarks import LandmarkSet, landmark_set

# All points always survive, inside the image or not.
KEYPOINTS = A.KeypointParams(format="xy", remove_invisible=False)
_ANCHORS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)


def normalise(points: np.ndarray | torch.Tensor, size: int) -> np.ndarray | torch.Tensor:
    """Input-image pixels -> [-1, 1]; a mirror about the image centre is a sign change."""
    return (2 * points - (size - 1)) / size


def denormalise(points: np.ndarray | torch.Tensor, size: int) -> np.ndarray | torch.Tensor:
    """[-1, 1] -> input-image pixels (inverse of `normalise`)."""
    return (points * size + (size - 1)) / 2


def points_extent(points: np.ndarray) -> np.ndarray:
    """Centre and larger extent of the points: (..., K, 2) pixels -> (..., 3) cx, cy, extent."""
    lo, hi = points.min(axis=-2), points.max(axis=-2)
    extent = (hi - lo).max(axis=-1, keepdims=True)
    return np.concatenate([(lo + hi) / 2, extent], axis=-1).astype(np.float32)


def square_box(extent: np.ndarray, margin: float) -> np.ndarray:
    """The face box: (..., 3) cx, cy, extent -> (..., 3) cx, cy, side = extent * (1 + margin).

    The extent comes from labelled points (`points_extent`) or from a face detector's box
    (`FaceDetector.face_extent`), so both frame a face alike.
    """
    side = np.maximum(extent[..., 2:] * (1 + margin), 1.0)
    return np.concatenate([extent[..., :2], side], axis=-1).astype(np.float32)


def box_affine(box: np.ndarray, size: int) -> np.ndarray:
    """(2, 3) affine taking the square box (cx, cy, side) onto a `size` x `size` image."""
    cx, cy, side = (float(v) for v in box)
    s = size / side
    c = (size - 1) / 2
    return np.array([[s, 0.0, c - s * cx], [0.0, s, c - s * cy]], dtype=np.float64)


def crop_box(image: np.ndarray, box: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The square box (cx, cy, side) warped to `size` x `size` pixels, borders padded black.

    Returns the crop and its (2, 3) affine, image -> crop pixels.
    """
    affine = box_affine(box, size)
    return warp(image, affine, size), affine


def warp(image: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """`size` x `size` pixels of the image under a (2, 3) affine, borders padded black."""
    return cv2.warpAffine(
        image, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """points: (..., 2) -> (..., 2) under a (2, 3) affine."""
    return points @ affine[:, :2].T + affine[:, 2]


def _to_3x3(affine: np.ndarray | torch.Tensor):
    if isinstance(affine, torch.Tensor):
        bottom = affine.new_tensor([0.0, 0.0, 1.0]).expand(*affine.shape[:-2], 1, 3)
        return torch.cat([affine, bottom], dim=-2)
    bottom = np.broadcast_to([0.0, 0.0, 1.0], (*affine.shape[:-2], 1, 3))
    return np.concatenate([affine, bottom], axis=-2)


def to_image(
    points: np.ndarray | torch.Tensor, affine: np.ndarray | torch.Tensor, size: int
) -> np.ndarray | torch.Tensor:
    """Normalised model-frame points -> original-image pixels.

    points: (..., K, 2) in [-1, 1]; affine: (..., 2, 3) original -> input pixels, as the
    transform returned it; size: the input image size. Tensors come back in float32 at least:
    a half-precision result would round a point at 453.58 px to 453.75.
    """
    if isinstance(affine, torch.Tensor):
        pixels = denormalise(points.to(torch.float64), size)
        inverse = torch.linalg.inv(_to_3x3(affine.to(torch.float64)))[..., :2, :]
        out = pixels @ inverse[..., :2].transpose(-1, -2) + inverse[..., None, :, 2]
        return out.to(torch.promote_types(points.dtype, torch.float32))
    pixels = denormalise(points, size)
    inverse = np.linalg.inv(_to_3x3(np.asarray(affine, dtype=np.float64)))[..., :2, :]
    return pixels @ np.swapaxes(inverse[..., :2], -1, -2) + inverse[..., None, :, 2]


def _affine_from_anchors(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The (2, 3) affine that moves the three src points onto dst."""
    m = np.hstack([src, np.ones((3, 1))]).astype(np.float64)
    return np.linalg.solve(m, dst.astype(np.float64)).T


class RandomSimilarity(A.DualTransform):
    """Rotate, scale and shift about the image centre, in one warp, moving keypoints alike.

    The draws match `A.Affine(rotate=..., scale=..., translate_percent=...)`; this lean version
    exists for speed: for a 224 px face albumentations' general Affine spends longer on its
    bookkeeping than on the warp itself (bench/data_pipeline.py measures the difference).

    Args:
        rotate: degree range, counter-clockwise positive as in OpenCV.
        scale: zoom factor range.
        translate: shift range as a fraction of the image side, drawn for x and y apart.
        fill: value of the pixels uncovered at the borders.
    """

    def __init__(
        self,
        rotate: tuple[float, float] = (-15.0, 15.0),
        scale: tuple[float, float] = (0.9, 1.1),
        translate: tuple[float, float] = (-0.05, 0.05),
        fill: float = 0,
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.rotate, self.scale, self.translate, self.fill = (
            tuple(rotate),
            tuple(scale),
            tuple(translate),
            fill,
        )

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        h, w = params["shape"][:2]
        draw = self.py_random.uniform
        matrix = cv2.getRotationMatrix2D(
            ((w - 1) / 2, (h - 1) / 2), draw(*self.rotate), draw(*self.scale)
        )
        matrix[:, 2] += (draw(*self.translate) * w, draw(*self.translate) * h)
        return {"matrix": matrix}

    def apply(self, img: np.ndarray, matrix: np.ndarray, **params) -> np.ndarray:
        h, w = img.shape[:2]
        out = cv2.warpAffine(
            img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
            borderValue=self.fill,
        )  # fmt: skip
        return out.reshape(img.shape)

    def apply_to_keypoints(self, keypoints: np.ndarray, matrix: np.ndarray, **params) -> np.ndarray:
        out = keypoints.copy()
        out[:, :2] = apply_affine(matrix, keypoints[:, :2])
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("rotate", "scale", "translate", "fill")

    def draw_matrix(self, size: int) -> np.ndarray | None:
        """One draw for a `size` square, as a (2, 3) affine of its pixels, or None when this
        sample skips the step (p); used where the step is joined to the framing warp."""
        if not self.should_apply():
            return None
        return self.get_params_dependent_on_data({"shape": (size, size)}, {})["matrix"]


class FramingJitter(RandomSimilarity):
    """Shift and scale the framing as face detectors and refinement passes really do.

    In use the model never sees the labelled points' framing: it sees a detector box brought
    to that framing, or the framing of its own previous prediction. Their errors, measured
    against the labelled framing (shift in fractions of the frame side, scale as log ratio),
    are roughly normal and wider across than down; this draws from such a distribution (the
    defaults: the spread of the Haar box's framing on training rows), so the model learns to
    recover from the framings it will meet.

    Args:
        shift_std: (x, y) standard deviations of the frame centre's error, in frame sides.
        log_scale_std: standard deviation of the log of the frame side's error.
        limit: draws are cut at this many standard deviations.
    """

    def __init__(
        self,
        shift_std: tuple[float, float] = (0.07, 0.03),
        log_scale_std: float = 0.1,
        limit: float = 2.5,
        fill: float = 0,
        p: float = 1.0,
    ) -> None:
        super().__init__(rotate=(0, 0), scale=(1, 1), translate=(0, 0), fill=fill, p=p)
        self.shift_std, self.log_scale_std, self.limit = tuple(shift_std), log_scale_std, limit

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        h, w = params["shape"][:2]

        def draw(std: float) -> float:
            return std * max(-self.limit, min(self.limit, self.py_random.gauss(0.0, 1.0)))

        # A frame larger than the face by s shows the face smaller by 1 / s, and a frame
        # centre off by d shows the face moved by -d: the image moves opposite to the frame.
        zoom = math.exp(-draw(self.log_scale_std))
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.0, zoom)
        matrix[:, 2] -= (draw(self.shift_std[0]) * w * zoom, draw(self.shift_std[1]) * h * zoom)
        return {"matrix": matrix}

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("shift_std", "log_scale_std", "limit", "fill")


# Transforms a config, checkpoint or export file may name: the albumentations transforms (any
# `A.BasicTransform` subclass but Lambda, which exists to call arbitrary functions) and fkp's own.
# Nothing else can be built from a file, so a crafted checkpoint cannot choose what gets called.
FKP_TRANSFORMS: dict[str, type[A.BasicTransform]] = {
    "fkp.data.transforms.RandomSimilarity": RandomSimilarity,
    "fkp.data.transforms.FramingJitter": FramingJitter,
}
_NOT_FROM_FILES = {"Lambda"}
_PLAIN = (str, int, float, bool, type(None))


def _transform_class(target: object, where: str) -> type:
    if isinstance(target, str) and target in FKP_TRANSFORMS:
        return FKP_TRANSFORMS[target]
    if isinstance(target, str) and target.startswith("albumentations."):
        name = target.rsplit(".", 1)[1]
        cls = getattr(A, name, None)
        if (
            isinstance(cls, type)
            and issubclass(cls, A.BasicTransform | A.BaseCompose)
            and name not in _NOT_FROM_FILES
        ):
            return cls
    raise FkpError(
        f"{where}: {target!r} is not an allowed transform; use an albumentations transform "
        f"(albumentations.<Name>) or one of {', '.join(FKP_TRANSFORMS)}."
    )


MAX_SETTING = 4096  # the largest number a transform setting may hold (pixels, limits, counts)


def _plain_value(value: object, where: str) -> Any:
    """Numbers, strings, booleans, None and lists of them; nested transform specs are built."""
    if isinstance(value, Mapping):
        return build_transform(value, where)
    if isinstance(value, list | tuple):
        return [_plain_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and not (math.isfinite(value) and abs(value) <= MAX_SETTING)
    ):
        raise FkpError(f"{where}: {value} is out of range (at most {MAX_SETTING} in size).")
    if isinstance(value, _PLAIN):
        return value
    raise FkpError(f"{where}: {type(value).__name__} values are not allowed; use plain numbers.")


def build_transform(spec: Mapping | A.BasicTransform, where: str = "transform") -> Any:
    """One transform from its spec: `{"_target_": "albumentations.CenterCrop", "height": 96,
    ...}` (the Hydra form, kept in checkpoints) or albumentations' own `to_dict` form
    (`__class_fullname__`, older export files). Specs are data: only allow-listed classes are
    built, with plain values; an already-built transform passes through (Python API)."""
    if isinstance(spec, A.BasicTransform | A.BaseCompose):
        return spec
    if not isinstance(spec, Mapping):
        raise FkpError(f"{where}: expected a transform spec with _target_, got {spec!r}.")
    spec = dict(spec)
    if "_target_" in spec:
        target = spec.pop("_target_")
    else:
        name = spec.pop("__class_fullname__", None)
        target = name if not isinstance(name, str) or "." in name else f"albumentations.{name}"
        if target in ("albumentations.Compose", "albumentations.core.composition.Compose"):
            target = "albumentations.Compose"
    cls = _transform_class(target, where)
    if cls is A.Compose:  # a serialised pipeline: only its steps matter here
        return build_transforms(spec.get("transforms") or [], f"{where}.transforms")
    kwargs = {str(k): _plain_value(v, f"{where}.{k}") for k, v in spec.items()}
    try:
        return cls(**kwargs)
    except Exception as e:  # albumentations validates with pydantic: one line of it
        first = " ".join(str(e).split("\n")[0:3])
        raise FkpError(
            f"{where} ({target}): {' '.join(first.split())}; fix its settings."
        ) from None


def build_transforms(specs: Sequence | None, where: str = "transforms") -> list:
    """A list of transform specs (see `build_transform`) -> albumentations transforms."""
    out: list = []
    for i, spec in enumerate(specs or []):
        built = build_transform(spec, f"{where}[{i}]")
        out.extend(built if isinstance(built, list) else [built])
    return out


# The data settings a KeypointTransform is built from (beside its albumentations steps); kept in
# checkpoints and export files so inference rebuilds the evaluation transform exactly.
TRANSFORM_SETTINGS = ("image_size", "grayscale", "margin", "frame_scale", "mean", "std")
# What a stored record may hold for each (checked before anything is built from it).
_RECORD_RANGES = {
    "image_size": (lambda v: type(v) is int and 16 <= v <= 1024, "a whole number 16-1024"),
    "grayscale": (lambda v: isinstance(v, bool), "true or false"),
    "margin": (lambda v: _number_in(v, 0, 4), "0 to 4"),
    "frame_scale": (lambda v: _number_in(v, 1, 4), "1 to 4"),
    "mean": (lambda v: _numbers_in(v, 0, 1), "1 or 3 numbers 0 to 1"),
    "std": (lambda v: _numbers_in(v, 1e-6, 10), "1 or 3 numbers above 0, up to 10"),
}


def _number_in(v: Any, low: float, high: float) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high


def _numbers_in(v: Any, low: float, high: float) -> bool:
    return isinstance(v, list) and len(v) in (1, 3) and all(_number_in(x, low, high) for x in v)


# Stored beside them since landmark sets became data; older records mean the 68-point set.
OPTIONAL_SETTINGS = ("landmarks",)


def build_framing(specs: Sequence | None, where: str = "framing") -> list[RandomSimilarity]:
    """Framing steps (`KeypointTransform`'s `framing`): RandomSimilarity or FramingJitter specs,
    whose draws become part of the warp from the original image. Their `fill` does not apply
    there: beyond the original image the frame is black, as it is at prediction."""
    steps = build_transforms(specs, where)
    for i, step in enumerate(steps):
        if not isinstance(step, RandomSimilarity):
            raise FkpError(
                f"{where}[{i}]: {type(step).__name__} cannot be part of the framing; use "
                "fkp.data.transforms.RandomSimilarity or FramingJitter there, and put other "
                "transforms in data.train_transforms."
            )
    return steps


def transform_from_record(record: Mapping, where: str) -> KeypointTransform:
    """The evaluation transform from a stored record (a checkpoint's data config, an export
    file's preprocessing): TRANSFORM_SETTINGS plus `eval_transforms` specs, checked as data."""
    settings = {}
    for key in TRANSFORM_SETTINGS:
        if key not in record:
            raise FkpError(f"{where}: its preprocessing lacks {key!r}; export or train it again.")
        settings[key] = _plain_value(record[key], f"{where} {key}")
        if not _RECORD_RANGES[key][0](settings[key]):
            raise FkpError(
                f"{where}: its {key}={str(settings[key])[:60]} is out of range "
                f"({_RECORD_RANGES[key][1]}); use a model written by fkp."
            )
    if record.get("landmarks") is not None:
        # read field by field as numbers and names (LandmarkSet.from_dict): data only; a name
        # may only be a shipped set, never a file
        marks = record["landmarks"]
        if not isinstance(marks, Mapping | str):
            raise FkpError(f"{where}: its landmark set is not readable; export or train it again.")
        settings["landmarks"] = landmark_set(marks, f"{where} landmarks", files=False)
    steps = build_transforms(record.get("eval_transforms"), f"{where} eval_transforms")
    try:
        return KeypointTransform(transforms=steps, **settings)
    except (TypeError, ValueError) as e:
        raise FkpError(f"{where}: unusable preprocessing settings ({e}).") from None


class KeypointTransform:
    """Original image + square face box -> model input, normalised keypoints and the mapping back.

    Args:
        image_size: side of the model input in pixels.
        frame_scale: the box is warped to a frame of image_size * frame_scale pixels before
            `transforms` run (the write-up rescales to 250 and crops 224: 250 / 224).
        transforms: albumentations transforms, or their specs (`build_transform`: only
            allow-listed classes), applied in order to the frame. Geometric ones should be
            affine for the mapping back to be exact.
        grayscale: one input channel instead of three (RGB).
        mean, std: per-channel input normalisation on the [0, 1] scale; three values are
            averaged into one for grayscale.
        margin: how much larger than the points' extent the box drawn around labelled
            points is (`square_box`); detector boxes are brought to the same framing.
        landmarks: the landmark set (`fkp.landmarks`): its flip pairs relabel mirrored faces;
            default the 68-point iBUG markup.
        framing: random geometric steps (RandomSimilarity, FramingJitter, or their specs)
            drawn per sample and joined to the framing warp (step 1), so they see the original
            image around the box instead of the frame's black border; training only.
    """

    def __init__(
        self,
        image_size: int,
        transforms: Sequence[A.BasicTransform | Mapping] = (),
        frame_scale: float = 1.0,
        grayscale: bool = False,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        margin: float = 0.25,
        landmarks: LandmarkSet | dict | str | None = None,
        framing: Sequence[A.BasicTransform | Mapping] = (),
    ) -> None:
        self.image_size = int(image_size)
        self.framing = build_framing(framing)
        self.landmarks = landmark_set(landmarks)
        self.frame_size = max(self.image_size, round(self.image_size * frame_scale))
        self.grayscale = grayscale
        self.margin = margin
        mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        if grayscale:
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        self._scale = torch.from_numpy(1.0 / (255.0 * std)).float()[:, None, None]  # (C, 1, 1)
        self._shift = torch.from_numpy(-mean / std).float()[:, None, None]
        steps = build_transforms(transforms)
        self.pipeline = A.Compose(steps, keypoint_params=KEYPOINTS) if steps else None

    def reseed(self, seed: int) -> None:
        """albumentations draws from its own generators; seed them for reproducible samples."""
        if self.pipeline is not None:
            self.pipeline.set_random_seed(seed % 2**32)
        for i, step in enumerate(self.framing):
            step.set_random_seed((seed + i + 1) % 2**32)

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """RGB (H, W, 3) or gray (H, W) uint8 -> (H, W) if grayscale, else (H, W, 3) RGB.

        Data sets cache prepared images, so grayscale training converts each image once.
        """
        if self.grayscale and image.ndim == 3:
            return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if not self.grayscale and image.ndim == 2:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        return image

    def box_for(self, keypoints: np.ndarray) -> np.ndarray:
        """The training framing of labelled points: (..., K, 2) -> (..., 3) boxes."""
        return square_box(points_extent(keypoints), self.margin)

    def frame(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Warp the square box to the frame (step 1), with this sample's draws of `framing`.

        image: (H, W, 3) RGB uint8 or a `prepare`d one; box: (3,) cx, cy, side in pixels.
        Returns the frame (F, F[, 3]) uint8 and its (2, 3) affine, original -> frame pixels.
        """
        affine = box_affine(box, self.frame_size)
        for step in self.framing:
            matrix = step.draw_matrix(self.frame_size)
            if matrix is not None:
                affine = matrix @ _to_3x3(affine)
        return warp(self.prepare(image), affine, self.frame_size), affine

    def __call__(
        self, image: np.ndarray, box: np.ndarray, keypoints: np.ndarray | None = None
    ) -> dict[str, torch.Tensor | np.ndarray | bool]:
        """image: (H, W, 3) RGB uint8 or a `prepare`d one; box: (3,); keypoints: (K, 2) pixels.

        Returns image (C, S, S) float32 tensor, affine (2, 3) float32 original -> input pixels,
        mirrored, and, with keypoints given, keypoints (K, 2) float32 normalised to [-1, 1].
        """
        return self.from_frame(*self.frame(image, box), keypoints)

    def from_frame(
        self, frame: np.ndarray, frame_affine: np.ndarray, keypoints: np.ndarray | None = None
    ) -> dict[str, torch.Tensor | np.ndarray | bool]:
        """Steps 2 and 3 on a frame from `frame`; keypoints still in original pixels."""
        anchors = _ANCHORS * self.frame_size
        points = anchors
        if keypoints is not None:
            points = np.concatenate([apply_affine(frame_affine, keypoints), anchors])
        if self.pipeline is None:
            out = {"image": frame, "keypoints": points}
        else:
            out = self.pipeline(image=frame, keypoints=points.astype(np.float32))
        moved = np.asarray(out["keypoints"], dtype=np.float64)
        step = _affine_from_anchors(anchors, moved[-3:])
        affine = step @ _to_3x3(frame_affine)
        mirrored = bool(np.linalg.det(step[:, :2]) < 0)

        pixels = out["image"]
        pixels = (
            pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))
        )
        tensor = torch.from_numpy(pixels).float().mul_(self._scale).add_(self._shift)
        result: dict[str, torch.Tensor | np.ndarray | bool] = {
            "image": tensor,
            "affine": affine.astype(np.float32),
            "mirrored": mirrored,
        }
        if keypoints is not None:
            kp = moved[: len(keypoints)]
            if mirrored:
                kp = kp[self.landmarks.flip_index]
            result["keypoints"] = normalise(kp, self.image_size).astype(np.float32)
        return result

    def to_pixels(self, image: torch.Tensor) -> np.ndarray:
        """Undo the input normalisation for display: (C, S, S) tensor -> (S, S, 3) RGB uint8."""
        pixels = (image.detach().cpu() - self._shift) / self._scale
        array = pixels.round().clamp(0, 255).to(torch.uint8).numpy().transpose(1, 2, 0)
        return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array
