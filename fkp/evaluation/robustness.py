"""The robustness suite: labelled faces perturbed in known ways, so accuracy can be reported per
condition (`python eval.py suite=robustness`).

Every condition changes the image (and moves the labels with it when it moves the face), while
the face is framed from its *clean* labelled points, as a face detector would frame it: an
upright box of the face's size. So a rotated face is seen rotated inside an upright frame, and
a zoomed face grows or shrinks inside the frame of the unzoomed one. The mirrored face is
framed where it now is.

Conditions: (image (H, W, 3) RGB uint8, points (K, 2) pixels, landmark set) -> the perturbed
pair; the set names the occluders' regions and the mirror's flip pairs.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from fkp.geometry import mirror_points, points_extent
from fkp.landmarks import LandmarkSet, landmark_set

Condition = Callable[[np.ndarray, np.ndarray, LandmarkSet], tuple[np.ndarray, np.ndarray]]


def _warp(image: np.ndarray, points: np.ndarray, angle: float, scale: float):
    """Rotate (degrees, counter-clockwise on screen) and scale about the face's centre."""
    cx, cy, _ = points_extent(points)
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, scale)
    h, w = image.shape[:2]
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    return out, points @ m[:, :2].T + m[:, 2]


def rotate(angle: float) -> Condition:
    return lambda image, points, landmarks=None: _warp(image, points, angle, 1.0)


def zoom(scale: float) -> Condition:
    return lambda image, points, landmarks=None: _warp(image, points, 0.0, scale)


def blur(image: np.ndarray, points: np.ndarray, landmarks: LandmarkSet | None = None):
    """Gaussian blur with sigma 2% of the face's extent (about 3 px on a 150 px face)."""
    sigma = 0.02 * float(points_extent(points)[2])
    return cv2.GaussianBlur(image, (0, 0), sigma), points


def low_light(image: np.ndarray, points: np.ndarray, landmarks: LandmarkSet | None = None):
    """A quarter of the light, on a gamma curve (shadows crushed), rounded to 8 bits."""
    dark = 255.0 * 0.25 * (image.astype(np.float32) / 255.0) ** 1.5
    return np.round(dark).astype(np.uint8), points


def jpeg(image: np.ndarray, points: np.ndarray, landmarks: LandmarkSet | None = None,
         quality: int = 10):  # fmt: skip
    """Strong JPEG compression (quality 10): blocks and ringing."""
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy(), points


def grayscale(image: np.ndarray, points: np.ndarray, landmarks: LandmarkSet | None = None):
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), points


def occlude(region: str) -> Condition:
    """A flat grey bar over a region's points, 20% of the face's extent beyond them."""

    def apply(image: np.ndarray, points: np.ndarray, landmarks: LandmarkSet | None = None):
        first, last = landmark_set(landmarks).regions[region]
        part = points[first:last]
        pad = 0.2 * float(points_extent(points)[2]) / 2
        (x0, y0), (x1, y1) = part.min(axis=0) - pad, part.max(axis=0) + pad
        out = image.copy()
        h, w = out.shape[:2]
        out[
            max(0, int(y0)) : min(h, int(np.ceil(y1))), max(0, int(x0)) : min(w, int(np.ceil(x1)))
        ] = 128
        return out, points

    return apply


def mirror(image: np.ndarray, points: np.ndarray, landmarks: LandmarkSet | None = None):
    """The mirror image, its points relabelled (the subject's left eye is still `left_eye`)."""
    flipped = mirror_points(points, image.shape[1], landmark_set(landmarks).flip_index)
    return image[:, ::-1].copy(), flipped.astype(points.dtype)


CONDITIONS: dict[str, Condition] = {
    "clean": lambda image, points, landmarks=None: (image, points),
    "roll 15": rotate(15),
    "roll 30": rotate(30),
    "roll 45": rotate(45),
    "scale 0.75": zoom(0.75),
    "scale 1.25": zoom(1.25),
    "blur": blur,
    "low light": low_light,
    "jpeg q10": jpeg,
    "grayscale": grayscale,
    "occluded eyes": occlude("eyes"),
    "occluded mouth": occlude("mouth"),
    "mirrored": mirror,
}


# Conditions that move the face elsewhere in the image: a detector would find it there, so
# these are framed from the moved points.
FRAMED_AFRESH = {"mirrored"}


def perturb(images: list[np.ndarray], truth: np.ndarray, condition: str,
            landmarks: LandmarkSet | None = None):  # fmt: skip
    """The images and labels (N, K, 2) under one condition."""
    apply = CONDITIONS[condition]
    pairs = [apply(image, points, landmarks) for image, points in zip(images, truth)]
    return [p[0] for p in pairs], np.stack([p[1] for p in pairs])
