"""The runtime: the shipped model (and any exported one) detects, predicts, refines and tracks
with NumPy, OpenCV and onnxruntime only, and finds the points the PyTorch path finds."""

import json
import subprocess
import sys

import albumentations as A
import numpy as np
import pytest

from fkp import FaceKeypointDetector
from fkp.data.io import decode_image
from fkp.data.transforms import KeypointTransform
from fkp.errors import FkpError
from fkp.runtime.preprocess import Preprocessing, read_preprocessing
from fkp.runtime.track import FaceTracker
from tests import ROOT

PHOTO = ROOT / "docs" / "samples" / "astronaut.jpg"
TRAINING_STACK = ("torch", "lightning", "lightning_fabric", "pytorch_lightning", "hydra",
                  "omegaconf", "albumentations", "matplotlib", "torchmetrics")  # fmt: skip

# Run in a fresh interpreter where importing any of the training stack raises: the photo with
# the default (int8) network, then in float32 the photo and a second copy of it side by side
# (two faces), and three frames of a clip through the tracker; the points come back as JSON.
_RUNTIME_ONLY = f"""
import importlib.abc, json, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {TRAINING_STACK!r}:
            raise ImportError("the runtime imported " + name)
sys.meta_path.insert(0, Refuse())
import cv2, numpy as np
from fkp import FaceKeypointDetector
from fkp.runtime.track import FaceTracker
image = cv2.cvtColor(cv2.imread(sys.argv[1]), cv2.COLOR_BGR2RGB)
pair = np.concatenate([image, image[:, ::-1]], axis=1)
int8 = FaceKeypointDetector.from_pretrained()  # the default on a CPU
det = FaceKeypointDetector.from_pretrained(precision="float32")  # as PyTorch computes it
tracker = FaceTracker(det)
clip = [np.roll(pair, 4 * k, axis=1) for k in range(3)]
out = {{"int8": [f.keypoints.tolist() for f in int8(image)],
        "photo": [f.keypoints.tolist() for f in det(image)],
        "pair": [f.keypoints.tolist() for f in det(pair)],
        "clip": [[f.keypoints.tolist() for f in tracker(frame)] for frame in clip]}}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def runtime_points() -> dict:
    done = subprocess.run([sys.executable, "-c", _RUNTIME_ONLY, str(PHOTO)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_runtime_imports_nothing_of_the_training_stack_and_matches_pytorch(runtime_points):
    torch_path = FaceKeypointDetector.from_pretrained(runtime="torch")
    image = decode_image(PHOTO)
    pair = np.concatenate([image, image[:, ::-1]], axis=1)
    for name, picture in (("photo", image), ("pair", pair)):
        expected = [f.keypoints for f in torch_path(picture)]
        assert len(runtime_points[name]) == len(expected) == (1 if name == "photo" else 2)
        assert np.abs(np.array(runtime_points[name]) - np.array(expected)).max() < 1e-3
        if name == "photo":  # int8: about the same points (1% of the face's frame)
            side = torch_path(picture)[0].frame[2]
            assert np.abs(np.array(runtime_points["int8"]) - expected).mean() < 0.01 * side
    tracker = FaceTracker(torch_path)
    for k, frame_points in enumerate(runtime_points["clip"]):
        expected = [f.keypoints for f in tracker(np.roll(pair, 4 * k, axis=1))]
        assert len(frame_points) == len(expected) == 2
        assert np.abs(np.array(frame_points) - np.array(expected)).max() < 1e-3


def test_the_shipped_onnx_file_is_the_shipped_checkpoint(runtime_points):
    """fkp/weights/fast.onnx and its JSON are fast.ckpt exported: same settings, same points
    (the comparison above runs the .onnx file against the .ckpt in PyTorch)."""
    from fkp.runtime.predictor import PRETRAINED_DIR, eval_transform_of
    from fkp.training.module import KeypointModule

    shipped = read_preprocessing(PRETRAINED_DIR / "fast.onnx")
    restored = eval_transform_of(KeypointModule.restore(PRETRAINED_DIR / "fast.ckpt"))
    for key in ("image_size", "frame_size", "grayscale", "margin", "steps"):
        assert getattr(shipped, key) == getattr(restored, key), key
    assert shipped.landmarks == restored.landmarks
    assert np.array_equal(shipped.scale, restored.scale)


def test_the_centre_crop_is_one_warp_and_matches_albumentations():
    """The native evaluation path (frame and centre crop in one warp) gives the pixels and the
    affine of the albumentations path (warp to the frame, then CenterCrop) up to OpenCV's
    1/32-pixel interpolation grid."""
    image = decode_image(PHOTO)
    frame = np.array([image.shape[1] / 2, image.shape[0] / 2, 200.0], dtype=np.float32)
    native = Preprocessing(96, frame_scale=1.2, steps=[{"_target_": "albumentations.CenterCrop",
                                                        "height": 96, "width": 96}])  # fmt: skip
    assert native.native
    crop = A.CenterCrop(96, 96)
    crop_twice = Preprocessing(96, frame_scale=1.2, steps=[crop, A.NoOp()])
    assert not crop_twice.native
    a, affine_a = native.sample(image, frame)
    b, affine_b = crop_twice.sample(image, frame)
    assert np.allclose(affine_a, affine_b, atol=1e-9)
    assert np.abs(a - b).max() * 0.229 * 255 <= 2.01  # at most 2 grey levels anywhere
    assert np.abs(a - b).mean() * 0.229 * 255 < 0.05


def test_training_transform_without_random_steps_is_the_prediction_path():
    image = decode_image(PHOTO)
    frame = np.array([250.0, 200.0, 180.0], dtype=np.float32)
    steps = [A.CenterCrop(64, 64)]
    train_side = KeypointTransform(64, steps, frame_scale=1.25, grayscale=True)
    runtime = Preprocessing(64, frame_scale=1.25, grayscale=True, steps=steps)
    pixels, affine = runtime.sample(runtime.prepare(image), frame)
    sample = train_side(image, frame)
    assert np.array_equal(sample["image"].numpy(), pixels)
    assert np.allclose(sample["affine"], affine, atol=1e-4)


def test_a_step_that_is_not_native_runs_through_albumentations():
    image = decode_image(PHOTO)
    frame = np.array([250.0, 200.0, 180.0], dtype=np.float32)
    resized = Preprocessing(64, frame_scale=2.0, steps=[{"_target_": "albumentations.Resize",
                                                         "height": 64, "width": 64}])  # fmt: skip
    pixels, affine = resized.sample(image, frame)
    assert pixels.shape == (3, 64, 64)
    assert np.allclose(affine[:, :2], np.eye(2) * 64 / 180, atol=1e-6)


def test_a_stored_step_outside_the_allow_list_is_refused():
    record = {"image_size": 64, "grayscale": False, "margin": 0.25, "frame_scale": 1.0,
              "mean": [0.5], "std": [0.25],
              "eval_transforms": [{"_target_": "builtins.open", "file": "x"}]}  # fmt: skip
    with pytest.raises(FkpError, match="m.json eval_transforms\\[0\\]: 'builtins.open' is not"):
        Preprocessing.from_record(record, "m.json")
