"""Data layer: keypoint CSVs and images -> cached, augmented, normalised batches.

Importing this package loads nothing heavy: the data module (Lightning) and the training
transforms (albumentations) load when first named, so a command that only reads images or
CSVs (prediction, evaluation) never pays for them.
"""

import importlib
from typing import Any

_HOMES = {
    "FaceKeypointsDataModule": "fkp.data.datamodule",
    "KeypointsDataset": "fkp.data.datamodule",
    "ensure_dataset": "fkp.data.download",
    "KeypointTable": "fkp.data.io",
    "decode_image": "fkp.data.io",
    "read_keypoints_csv": "fkp.data.io",
    "KeypointTransform": "fkp.data.transforms",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'fkp.data' has no attribute {name!r}")
