"""Pictures of keypoints: one face, or a grid of faces with ground truth and predictions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fkp.errors import FkpError
from fkp.files import atomic_write
from fkp.landmarks import LandmarkSet, landmark_set

if TYPE_CHECKING:
    from fkp.runtime.predictor import Face

GREEN = (0, 200, 0)
MAGENTA = (255, 0, 255)


def draw_keypoints(
    image: np.ndarray,
    keypoints: np.ndarray,
    color: tuple[int, int, int] = GREEN,
    parts: bool = True,
    radius: int | None = None,
    copy: bool = True,
    landmarks: LandmarkSet | None = None,
) -> np.ndarray:
    """The RGB image with the points (and the part outlines) drawn on it: a copy, or the
    image itself with copy=False (a big photo with many faces is copied once, not per face).

    image: (H, W, 3) uint8 RGB; keypoints: (K, 2) pixels; landmarks: the set whose parts are
    outlined (default: iBUG 68 for 68 points, dots only for any other count). Lines and dots
    are sized to the face, not the image, so a small face in a large photo keeps its eyes and
    lips readable; drawing is anti-aliased at sub-pixel precision.
    """
    out = np.ascontiguousarray(image.copy() if copy else image)
    shift = 4  # sub-pixel bits for cv2 drawing
    points = np.asarray(keypoints, dtype=np.float64)
    pts = np.round(points * (1 << shift)).astype(np.int32)
    face = float(np.ptp(points, axis=0).max()) if len(points) else 0.0
    radius = radius or max(1, round(face / 80))
    thickness = max(1, round(face / 150))
    if landmarks is None and len(points) == landmark_set(None).num_points:
        landmarks = landmark_set(None)
    if parts and landmarks is not None and landmarks.lines:
        for first, last, closed in landmarks.parts.values():
            cv2.polylines(
                out, [pts[first : last + 1]], closed, color, thickness, cv2.LINE_AA, shift
            )
    for x, y in pts:
        cv2.circle(out, (int(x), int(y)), radius << shift, color, -1, cv2.LINE_AA, shift)
    return out


def make_grid(
    images: Sequence[np.ndarray],
    truth: Sequence[np.ndarray] | None = None,
    predicted: Sequence[np.ndarray] | None = None,
    titles: Sequence[str] | None = None,
    columns: int | None = None,
    tile: int = 224,
    landmarks: LandmarkSet | None = None,
) -> np.ndarray:
    """Tile RGB images into one RGB picture: ground truth in green, predictions in magenta.

    images: N arrays (H, W, 3) uint8; truth, predicted: N arrays (K, 2) pixels of each image.
    Each image is scaled to `tile` pixels on its longer side before drawing.
    """
    n = len(images)
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * tile, columns * tile, 3), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        scale = tile / max(image.shape[:2])
        shown = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if truth is not None:
            shown = draw_keypoints(shown, np.asarray(truth[i]) * scale, GREEN, landmarks=landmarks)
        if predicted is not None:
            shown = draw_keypoints(shown, np.asarray(predicted[i]) * scale, MAGENTA, parts=False)
        if titles is not None:
            cv2.putText(shown, titles[i], (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (255, 255, 0), 1, cv2.LINE_AA)  # fmt: skip
        r, c = divmod(i, columns)
        h, w = shown.shape[:2]
        grid[r * tile : r * tile + h, c * tile : c * tile + w] = shown
    return grid


def save_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB image (PNG, JPEG, ... by extension), creating the folder; whole or not at
    all (`fkp.files.atomic_write`)."""
    path = Path(path)
    try:
        ok, encoded = cv2.imencode(path.suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    except cv2.error:
        ok = False
    if not ok:
        raise FkpError(f"{path}: could not encode the image; use a .png or .jpg name.")
    return atomic_write(path, lambda f: f.write(encoded.tobytes()))


def annotate(image: np.ndarray, faces: Sequence[Face], parts: bool, landmarks=None) -> np.ndarray:
    """A copy of the image with each face's box and keypoints, lines sized to the face."""
    out = image.copy()
    for face in faces:
        x, y, w, h = (int(round(v)) for v in face.box)
        thickness = max(1, round(w / 100))
        cv2.rectangle(out, (x, y), (x + w, y + h), MAGENTA, thickness, cv2.LINE_AA)
        out = draw_keypoints(out, face.keypoints, GREEN, parts=parts, copy=False,
                             landmarks=landmarks)  # fmt: skip
    return out
