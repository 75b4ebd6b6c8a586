"""dlib's 68-point shape predictor on the same faces, for the side-by-side in eval.py.

Needs the `bench` extra: dlib-bin, and face-recognition-models, which ships
shape_predictor_68_face_landmarks.dat (licensed for non-commercial use only), so nothing is
downloaded. Its package is located with importlib rather than imported, since importing it
needs pkg_resources, which recent setuptools no longer ships.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fkp.errors import FkpError
from fkp.evaluation.protocols import Result, match_face, timed
from fkp.geometry import points_extent
from fkp.runtime.detect import HogFaceDetector


def model_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FkpError("dlib=true needs the bench extra: pip install -e '.[bench]'.")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return folder / "shape_predictor_68_face_landmarks.dat"


def run_dlib(images: Sequence[np.ndarray], truth: np.ndarray, protocols: Sequence[str],
             margin: float, frame_points: np.ndarray | None = None) -> list[Result]:  # fmt: skip
    """dlib under each protocol; detector = dlib's own HOG detector (upsample 1).
    frame_points: the points the gt protocol frames each face from (default: truth)."""
    try:
        import dlib
    except ImportError:
        raise FkpError("dlib=true needs the bench extra: pip install -e '.[bench]'.") from None
    predictor = dlib.shape_predictor(str(model_path()))
    # The ground-truth protocol gives dlib the box its detector would draw around the points,
    # from the HOG detector's calibration (python calibrate.py detector=hog, training rows).
    calibration = HogFaceDetector()
    hog = calibration.hog

    def landmarks(image: np.ndarray, rect) -> np.ndarray:
        shape = predictor(image, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    results = []
    for protocol in protocols:
        predicted = np.full(truth.shape, np.nan)
        result = Result(f"dlib ({'gt' if protocol == 'gt' else 'HOG detector'} box)", predicted)
        for i, (image, points) in enumerate(zip(images, truth)):
            if protocol == "gt":
                extent = points_extent(truth[i] if frame_points is None else frame_points[i])
                x, y, w, _ = calibration.boxes_for(extent)[0] - [0.5, 0.5, 0, 0]
                rect = dlib.rectangle(int(round(x)), int(round(y)),
                                      int(round(x + w)), int(round(y + w)))  # fmt: skip
                predicted[i], seconds = timed(lambda: landmarks(image, rect))  # noqa: B023
                result.seconds += seconds
                result.faces_timed += 1
            else:
                faces, seconds = timed(
                    lambda: [landmarks(image, r) for r in hog(image, 1)]  # noqa: B023
                )
                result.image_seconds += seconds
                face = match_face(faces, points)
                if face is not None:
                    predicted[i] = face
        results.append(result)
    return results
