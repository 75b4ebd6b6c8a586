"""Data layer: keypoint CSVs and images -> cached, augmented, normalised batches."""

from fkp.data.datamodule import FaceKeypointsDataModule, KeypointsDataset
from fkp.data.download import ensure_dataset
from fkp.data.io import KeypointTable, decode_image, read_keypoints_csv
from fkp.data.transforms import KeypointTransform
from fkp.geometry import denormalise, normalise, to_image

__all__ = [
    "FaceKeypointsDataModule",
    "KeypointTable",
    "KeypointTransform",
    "KeypointsDataset",
    "decode_image",
    "denormalise",
    "ensure_dataset",
    "normalise",
    "read_keypoints_csv",
    "to_image",
]
