"""Training's side of the input transform: random steps, keypoints carried along, tensors out.

The geometry has one home (`fkp.geometry`) and the evaluation transform one class
(`fkp.runtime.preprocess.Preprocessing`), used by prediction, evaluation and training alike:

1. Framing: a square frame (cx, cy, side) in original-image pixels, from the labelled points
   (training, ground-truth-box evaluation) or from a face detector (prediction), is warped to
   a `frame_size` square; borders are padded, never shifted. For training, geometric steps
   listed as `framing` (rotation, zoom, shift) are drawn per sample and joined to this warp,
   so a rotated or zoomed-out face shows what really surrounds it in the original image.
2. An albumentations pipeline from the Hydra config (random for training, deterministic for
   evaluation and prediction) crops/augments that frame to `image_size`.
3. Keypoints of the input image are normalised to [-1, 1] (`fkp.geometry.normalise`).

Every sample carries `affine` (2, 3): original-image pixels -> input pixels, measured by
sending three anchor points through the whole chain; `fkp.geometry.to_image` inverts it, so
predictions map back to original pixels exactly whatever affine steps the pipeline holds. A
mirroring step (negative determinant) also relabels the points with the landmark set's
`flip_index`, which albumentations does not do.
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
from fkp.geometry import apply_affine, frame_affine, normalise, to_3x3, warp
from fkp.landmarks import LandmarkSet
from fkp.registry import Registry
from fkp.runtime.preprocess import Preprocessing, plain_value

# All points always survive, inside the image or not.
KEYPOINTS = A.KeypointParams(format="xy", remove_invisible=False)

# Transforms a config, checkpoint or export file may name: the albumentations transforms (any
# `A.BasicTransform` subclass but Lambda, which exists to call arbitrary functions) and fkp's
# own, registered here by the name configs give as `_target_` (a new one: a file in fkp/data/
# with `@TRANSFORMS.register("fkp.data.<file>.<Name>")`, docs/data.md). Nothing else can be
# built from a file, so a crafted checkpoint cannot choose what gets called.
TRANSFORMS: Registry = Registry("transform", "transform", "fkp.data")


@TRANSFORMS.register("fkp.data.transforms.RandomSimilarity")
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


@TRANSFORMS.register("fkp.data.transforms.FramingJitter")
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


_NOT_FROM_FILES = {"Lambda"}


def _transform_class(target: object, where: str) -> type:
    if isinstance(target, str) and target in TRANSFORMS:
        return TRANSFORMS.get(target)
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
        f"(albumentations.<Name>) or one of {', '.join(TRANSFORMS)}."
    )


def _plain_value(value: object, where: str) -> Any:
    """A stored setting (`fkp.runtime.preprocess.plain_value`); nested transform specs (the
    steps of OneOf, say) are built."""
    if isinstance(value, Mapping):
        return build_transform(value, where)
    if isinstance(value, list | tuple):
        return [_plain_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return plain_value(value, where)


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


def compose(specs: Sequence | None, where: str = "transforms") -> A.Compose | None:
    """Transform specs (or built transforms) -> one keypoint-aware albumentations pipeline,
    None for no steps."""
    steps = build_transforms(specs, where)
    return A.Compose(steps, keypoint_params=KEYPOINTS) if steps else None


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


class KeypointTransform(Preprocessing):
    """A model's input transform for training and labelled evaluation: `Preprocessing` (frame,
    steps, normalisation) with keypoints carried along, random framing draws, and torch
    tensors out.

    Args (beyond `Preprocessing`'s):
        transforms: albumentations transforms, or their specs (`build_transform`: only
            allow-listed classes), applied in order to the frame: random ones for training,
            deterministic ones (the evaluation steps) otherwise. Geometric ones should be
            affine for the mapping back to be exact.
        framing: random geometric steps (RandomSimilarity, FramingJitter, or their specs)
            drawn per sample and joined to the framing warp, so they see the original image
            around the frame instead of its black border; training only.
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
        super().__init__(image_size, frame_scale, grayscale, mean, std, margin, landmarks,
                         build_transforms(transforms), "transforms")  # fmt: skip
        self.framing = build_framing(framing)
        if self._pipeline is None:  # native steps too, for frames with random framing draws
            self._pipeline = compose(self.steps)

    @property
    def pipeline(self) -> A.Compose | None:
        return self._pipeline

    def reseed(self, seed: int) -> None:
        """albumentations draws from its own generators; seed them for reproducible samples."""
        if self._pipeline is not None:
            self._pipeline.set_random_seed(seed % 2**32)
        for i, step in enumerate(self.framing):
            step.set_random_seed((seed + i + 1) % 2**32)

    def frame(self, image: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Warp the square frame to frame_size pixels, with this sample's draws of `framing`.

        image: (H, W, 3) RGB uint8 or a `prepare`d one; frame: (3,) cx, cy, side in pixels.
        Returns the frame (F, F[, 3]) uint8 and its (2, 3) affine, original -> frame pixels.
        """
        affine = frame_affine(frame, self.frame_size)
        for step in self.framing:
            matrix = step.draw_matrix(self.frame_size)
            if matrix is not None:
                affine = matrix @ to_3x3(affine)
        return warp(self.prepare(image), affine, self.frame_size), affine

    def __call__(
        self, image: np.ndarray, frame: np.ndarray, keypoints: np.ndarray | None = None
    ) -> dict[str, torch.Tensor | np.ndarray | bool]:
        """image: (H, W, 3) RGB uint8 or a `prepare`d one; frame: (3,); keypoints: (K, 2) pixels.

        Returns image (C, S, S) float32 tensor, affine (2, 3) float32 original -> input pixels,
        mirrored, and, with keypoints given, keypoints (K, 2) float32 normalised to [-1, 1].
        """
        if self.native and not self.framing:  # deterministic: the prediction path, exactly
            pixels, affine = self.sample(self.prepare(image), frame)
            kp = None if keypoints is None else apply_affine(affine, keypoints)
            return self._result(pixels, affine, False, kp)
        return self.from_frame(*self.frame(image, frame), keypoints)

    def from_frame(
        self, frame: np.ndarray, frame_affine: np.ndarray, keypoints: np.ndarray | None = None
    ) -> dict[str, torch.Tensor | np.ndarray | bool]:
        """The steps and normalisation on a frame from `frame`; keypoints in original pixels."""
        pixels, affine, mirrored, kp = self.through_steps(
            self._pipeline, frame, frame_affine, keypoints
        )
        return self._result(self.to_input(pixels), affine, mirrored, kp)

    def _result(
        self, pixels: np.ndarray, affine: np.ndarray, mirrored: bool, keypoints: np.ndarray | None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(pixels)),
            "affine": affine.astype(np.float32),
            "mirrored": mirrored,
        }
        if keypoints is not None:
            out["keypoints"] = normalise(keypoints, self.image_size).astype(np.float32)
        return out

    def to_pixels(self, image: torch.Tensor) -> np.ndarray:
        """Undo the input normalisation for display: (C, S, S) tensor -> (S, S, 3) RGB uint8."""
        pixels = (image.detach().cpu().numpy() - self.shift) / self.scale
        array = np.clip(np.round(pixels), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array
