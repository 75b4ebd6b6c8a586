"""Face geometry, one home for it: boxes, square frames, affines, warps, the way back to image
pixels, mirroring and the NME normaliser. NumPy and OpenCV only, imported by everything else
(training, evaluation, the runtime), importing nothing of fkp.

Pixel convention: integer coordinates are pixel centres, so an image of width W spans x in
[-0.5, W - 0.5]; a mirror maps x to W - 1 - x (albumentations' flips do the same).

Shapes: points (..., K, 2) x, y; boxes (N, 4) x, y, w, h as detectors give them (top-left
corner of the first pixel, width, height); frames (..., 3) cx, cy, side: the square a model
sees, in image pixels; affines (..., 2, 3), taking one image's pixels to another's. Functions
that take arrays also take torch tensors where they only do arithmetic.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def normalise(points: Any, size: int) -> Any:
    """Input-image pixels -> [-1, 1] (NumPy or torch); a mirror about the centre is a sign
    change."""
    return (2 * points - (size - 1)) / size


def denormalise(points: Any, size: int) -> Any:
    """[-1, 1] -> input-image pixels (inverse of `normalise`)."""
    return (points * size + (size - 1)) / 2


def points_extent(points: np.ndarray) -> np.ndarray:
    """Centre and larger extent of the points: (..., K, 2) pixels -> (..., 3) cx, cy, extent."""
    lo, hi = points.min(axis=-2), points.max(axis=-2)
    extent = (hi - lo).max(axis=-1, keepdims=True)
    return np.concatenate([(lo + hi) / 2, extent], axis=-1).astype(np.float32)


def square_frame(extent: np.ndarray, margin: float) -> np.ndarray:
    """The face's frame: (..., 3) cx, cy, extent -> (..., 3) cx, cy, side = extent * (1 + margin).

    The extent comes from labelled or predicted points (`points_extent`) or from a face
    detector's box (`CalibratedDetector.face_extent`), so all three frame a face alike.
    """
    side = np.maximum(extent[..., 2:] * (1 + margin), 1.0)
    return np.concatenate([extent[..., :2], side], axis=-1).astype(np.float32)


def frame_of_points(points: np.ndarray, margin: float) -> np.ndarray:
    """The training framing of points: (..., K, 2) -> (..., 3) frames."""
    return square_frame(points_extent(points), margin)


def snapped(frames: np.ndarray, step: float = 1 / 8) -> np.ndarray:
    """Frames rounded to a `step`-pixel grid. A frame derived from predicted points carries
    the network's last-bit noise (1e-5 px between onnxruntime and PyTorch, or two CPUs), and
    OpenCV samples a warp on a 1/32-pixel grid, so such noise could change a pixel of the crop
    and the next pass's points by 0.01 px; snapped, both runs see the same crop."""
    return (np.round(np.asarray(frames, dtype=np.float64) / step) * step).astype(np.float32)


def points_box(points: np.ndarray) -> np.ndarray:
    """The box around points, for drawing: (K, 2) -> (4,) x, y, w, h."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    return np.array([*lo, *(hi - lo)], dtype=np.float32)


def box_centres(boxes: np.ndarray) -> np.ndarray:
    """Detector boxes (N, 4) x, y, w, h -> their centres (N, 2) in pixel-centre coordinates."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return boxes[:, :2] + boxes[:, 2:] / 2 - 0.5


def frame_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Overlap (intersection over union) of two square frames (3,) cx, cy, side."""
    lo = np.maximum(a[:2] - a[2] / 2, b[:2] - b[2] / 2)
    hi = np.minimum(a[:2] + a[2] / 2, b[:2] + b[2] / 2)
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    return inter / (a[2] ** 2 + b[2] ** 2 - inter)


def frame_affine(frame: np.ndarray, size: int) -> np.ndarray:
    """(2, 3) affine taking the square frame (cx, cy, side) onto a `size` x `size` image."""
    cx, cy, side = (float(v) for v in frame)
    s = size / side
    c = (size - 1) / 2
    return np.array([[s, 0.0, c - s * cx], [0.0, s, c - s * cy]], dtype=np.float64)


def warp(image: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """`size` x `size` pixels of the image under a (2, 3) affine, borders padded black."""
    return cv2.warpAffine(
        image, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def crop_frame(image: np.ndarray, frame: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The square frame (cx, cy, side) warped to `size` x `size` pixels, borders padded black.

    Returns the crop and its (2, 3) affine, image -> crop pixels.
    """
    affine = frame_affine(frame, size)
    return warp(image, affine, size), affine


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """points: (..., 2) -> (..., 2) under a (2, 3) affine."""
    return points @ affine[:, :2].T + affine[:, 2]


def to_3x3(affine: Any) -> Any:
    """(..., 2, 3) -> (..., 3, 3) with the bottom row 0, 0, 1 (NumPy or torch), so affines
    compose by matrix product."""
    if not isinstance(affine, np.ndarray) and hasattr(affine, "new_tensor"):  # a torch tensor
        import torch

        bottom = affine.new_tensor([0.0, 0.0, 1.0]).expand(*affine.shape[:-2], 1, 3)
        return torch.cat([affine, bottom], dim=-2)
    bottom = np.broadcast_to([0.0, 0.0, 1.0], (*affine.shape[:-2], 1, 3))
    return np.concatenate([affine, bottom], axis=-2)


def invert(affine: np.ndarray) -> np.ndarray:
    """The inverse of a (..., 2, 3) affine, in float64."""
    return np.linalg.inv(to_3x3(np.asarray(affine, dtype=np.float64)))[..., :2, :]


def map_frames(frames: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Square frames (N, 3) through a similarity affine (no shear): centres moved, sides
    scaled by its zoom."""
    out = np.array(frames, dtype=np.float32, copy=True).reshape(-1, 3)
    out[:, :2] = apply_affine(affine, out[:, :2])
    out[:, 2] *= float(np.sqrt(abs(np.linalg.det(np.asarray(affine)[:2, :2]))))
    return out


def to_image(points: Any, affine: Any, size: int) -> Any:
    """Normalised model-input points -> original-image pixels.

    points: (..., K, 2) in [-1, 1]; affine: (..., 2, 3) original -> input pixels; size: the
    input side. NumPy arrays come back in float64; torch tensors in float32 at least (a
    half-precision result would round a point at 453.58 px to 453.75).
    """
    if not isinstance(affine, np.ndarray) and hasattr(affine, "new_tensor"):  # a torch tensor
        import torch

        pixels = denormalise(points.to(torch.float64), size)
        inverse = torch.linalg.inv(to_3x3(affine.to(torch.float64)))[..., :2, :]
        out = pixels @ inverse[..., :2].transpose(-1, -2) + inverse[..., None, :, 2]
        return out.to(torch.promote_types(points.dtype, torch.float32))
    pixels = denormalise(np.asarray(points, dtype=np.float64), size)
    inverse = invert(affine)
    return pixels @ np.swapaxes(inverse[..., :2], -1, -2) + inverse[..., None, :, 2]


def mirror_points(points: np.ndarray, width: Any, flip_index: np.ndarray) -> np.ndarray:
    """Points (..., K, 2) of an image mirrored left to right (width: a number, or (N,) per
    image), relabelled with the landmark set's `flip_index` so that point i is still the
    subject's point i. Its own inverse."""
    out = np.array(points, dtype=np.float64, copy=True)[..., flip_index, :]
    w = np.asarray(width, dtype=np.float64)
    out[..., 0] = w.reshape(w.shape + (1,) * (out.ndim - 1 - w.ndim)) - 1 - out[..., 0]
    return out


def unmirror_normalised(points: np.ndarray, flip_index: np.ndarray) -> np.ndarray:
    """Model outputs (..., K, 2) in [-1, 1] for the mirrored input, back to the input's own
    labels: a mirror about the input's centre is a sign change of x."""
    out = np.array(points, copy=True)[..., flip_index, :]
    out[..., 0] = -out[..., 0]
    return out


def interocular(points: Any, nme_points: tuple[int, int]) -> Any:
    """The NME normaliser: distance between the landmark set's two normalising points (the
    outer eye corners for iBUG 68). points: (..., K, 2), NumPy or torch -> (...,)."""
    a, b = nme_points
    return (((points[..., a, :] - points[..., b, :]) ** 2).sum(-1)) ** 0.5
