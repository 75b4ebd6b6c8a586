"""Find faces in a photo and their 68 keypoints: the Python API under predict.py.

from fkp import FaceKeypointDetector
det = FaceKeypointDetector.from_pretrained()  # the shipped model; or .from_checkpoint(path)
faces = det(image)              # image: (H, W, 3) RGB uint8 (bgr=True for OpenCV arrays)
faces[0].box, faces[0].keypoints  # (4,) x, y, w, h; (68, 2) x, y in image pixels

The shipped model and exported ONNX models run with NumPy, OpenCV and onnxruntime only;
PyTorch is imported only for a checkpoint (`from_checkpoint`) or runtime="torch".
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from fkp.errors import FkpError
from fkp.geometry import snapped, square_frame, to_image, unmirror_normalised
from fkp.runtime.detect import FaceDetector, build_detector
from fkp.runtime.onnx import OnnxModel
from fkp.runtime.preprocess import Preprocessing, read_preprocessing

# The defaults for using a model live in one place, fkp/conf/predict.yaml (and the detector
# file its defaults list names): predict.py composes them through Hydra, and the Python API
# reads the same files, so `FaceKeypointDetector.from_pretrained()` does what predict.py does.


@functools.cache
def usage_defaults() -> dict[str, Any]:
    """predict.py's settings (refine, flip_test, runtime, precision, device, video, detector)
    as plain data, read from the packaged fkp/conf/predict.yaml."""
    from fkp import CONF_DIR

    settings = yaml.safe_load((CONF_DIR / "predict.yaml").read_text())
    detector = next(d["detector"] for d in settings["defaults"] if isinstance(d, dict)
                    and "detector" in d)  # fmt: skip
    settings["detector"] = yaml.safe_load((CONF_DIR / "detector" / f"{detector}.yaml").read_text())
    return settings


def default_detector() -> FaceDetector:
    """The face detector predict.py uses by default, with its calibration."""
    return build_detector(usage_defaults()["detector"])


def resolve_runtime(runtime: str, device: Any, path: Path | None = None) -> str:
    """ "auto": onnxruntime on the CPU (faster at batch 1; an .onnx file always), PyTorch on a
    GPU; "torch" and "onnx" as they are."""
    if runtime == "auto":
        onnx = (path is not None and path.suffix == ".onnx") or str(device) == "cpu"
        return "onnx" if onnx else "torch"
    if runtime not in ("torch", "onnx"):
        raise FkpError(f"runtime={runtime} is unknown; use torch, onnx or auto.")
    return runtime


def twin_onnx(path: Path, runtime: str, precision: str) -> Path | None:
    """The exported twin a shipped checkpoint runs from on onnxruntime: <name>.int8.onnx
    (precision auto or int8) or <name>.onnx (float32), when it ships; None otherwise.

    A model of one's own runs int8 once exported so (export.py precision=int8): the
    quantization is calibrated on training rows, which prediction does not have."""
    if precision not in ("auto", "float32", "int8"):
        raise FkpError(f"precision={precision} is unknown; use auto, float32 or int8.")
    shipped = path.resolve().parent == PRETRAINED_DIR
    if precision == "int8" and (runtime != "onnx" or not shipped):
        raise FkpError(
            "precision=int8 runs the shipped model, or an .onnx file exported with "
            "`python export.py ckpt_path=<file.ckpt> precision=int8` (pass it as ckpt_path), "
            "on onnxruntime (runtime=auto or onnx); use precision=auto."
        )
    if runtime != "onnx" or not shipped:
        return None
    int8 = path.with_suffix(".int8.onnx")
    if precision in ("auto", "int8") and int8.is_file():
        return int8
    twin = path.with_suffix(".onnx")
    return twin if twin.is_file() else None


SETTLED = 0.01  # a frame that moves less than this fraction of its side has settled


@dataclass
class Face:
    """box: (4,) x, y, w, h of the detection; keypoints: (68, 2) x, y; frame: (3,) cx, cy,
    side of the square the model saw last (the training framing of this face); image pixels."""

    box: np.ndarray
    keypoints: np.ndarray
    frame: np.ndarray
    id: int | None = None  # the track id in a video (fkp.runtime.track.FaceTracker)

    def to_dict(self) -> dict:
        out = {} if self.id is None else {"id": self.id}
        return {
            **out,
            "box": [round(float(v), 2) for v in self.box],
            "keypoints": np.round(self.keypoints.astype(float), 2).tolist(),
        }


def eval_transform_of(model: Any, where: str = "checkpoint") -> Preprocessing:
    """The evaluation transform a trained network (`TrainedNetwork`, `KeypointModule`) was
    trained with, from its checkpoint.

    The checkpoint is data: its transform specs are built from an allow-list only."""
    data = model.hparams.get("data_config")
    if not data:
        raise FkpError("checkpoint: it holds no data settings; was it written by fkp's train.py?")
    return Preprocessing.from_record(data, where)


def as_rgb(image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Gray (H, W), RGB(A) or BGR(A) (H, W, 3|4) uint8 -> (H, W, 3) RGB uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise FkpError(f"image: expected uint8 pixels, got {image.dtype}; convert it first.")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        codes = {(3, False): None, (4, False): cv2.COLOR_RGBA2RGB,
                 (3, True): cv2.COLOR_BGR2RGB, (4, True): cv2.COLOR_BGRA2RGB}  # fmt: skip
        code = codes[image.shape[2], bgr]
        return image if code is None else cv2.cvtColor(image, code)
    raise FkpError(f"image: shape {image.shape} is not an image; expected (H, W) or (H, W, 3).")


class FaceKeypointDetector:
    """Detect every face, frame it as in training, and regress its 68 keypoints.

    flip_test: also predict on the mirrored crop and average (relabelling left and right).
    refine: after the first pass from the detector's box, frame each face again from its own
        predicted points (the training framing) and predict again, up to this many times, or
        until its frame moves less than 1% of its side. A detector box may frame a face only
        roughly; the points' own framing is the one the model was trained on. None: the
        detector's own setting (`refine` in its YAML: the passes its boxes need, measured on
        validation rows; YuNet's boxes need none, Haar's 2).
    """

    def __init__(
        self,
        model: Callable[[np.ndarray], np.ndarray],
        transform: Preprocessing,
        detector: FaceDetector | None = None,
        flip_test: bool | None = None,
        refine: int | None = None,
    ) -> None:
        """model: images (B, C, S, S) float32 -> keypoints (B, K, 2) in [-1, 1], NumPy in and
        out: an `OnnxModel`, or a `TrainedNetwork` behind `fkp.training.export.TorchNetwork`.
        Settings left as None are predict.py's (`usage_defaults`)."""
        defaults = usage_defaults()
        self.model = model
        self.transform = transform
        self.detector = detector if detector is not None else default_detector()
        self.flip_test = defaults["flip_test"] if flip_test is None else flip_test
        if refine is None:
            refine = defaults["refine"]
        self.refine = getattr(self.detector, "refine", 2) if refine is None else refine

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | None = None,
        detector: FaceDetector | None = None,
        flip_test: bool | None = None,
        refine: int | None = None,
        runtime: str | None = None,
        precision: str | None = None,
        threads: int | None = None,
    ) -> FaceKeypointDetector:
        """runtime: "torch" (PyTorch eager, on `device`), "onnx" (the network exported to
        ONNX in memory and run by onnxruntime on the CPU, faster at batch 1) or "auto" (onnx
        on the CPU, torch on a GPU). precision: "auto" (int8 where an int8 network ships: the
        shipped model on onnxruntime), "float32" or "int8" (`twin_onnx`). Every setting left
        as None takes predict.py's default (`usage_defaults`: YuNet, 2 refinement passes, no
        flip test, auto, CPU, auto). Needs PyTorch (never Lightning: `TrainedNetwork`),
        except for a shipped model on onnxruntime, which runs from its exported twin
        (fkp/weights/<name>.int8.onnx or <name>.onnx). threads: onnxruntime's threads (None:
        one per core)."""
        defaults = usage_defaults()
        device = defaults["device"] if device is None else device
        runtime = resolve_runtime(defaults["runtime"] if runtime is None else runtime, device)
        precision = defaults["precision"] if precision is None else precision
        path = Path(path)
        twin = twin_onnx(path, runtime, precision)
        if twin is not None:
            return cls.from_onnx(twin, detector, flip_test, threads, refine)
        from fkp.models.stored import TrainedNetwork
        from fkp.training.export import TorchNetwork, onnx_runtime_model

        if not path.is_file():
            raise FkpError(f"{path}: no such checkpoint; pass a .ckpt written by train.py.")
        try:
            model = TrainedNetwork.restore(path, map_location=device)
        except FkpError:
            raise
        except Exception as e:  # a file that is not a Lightning checkpoint fails in many ways
            raise FkpError(
                f"{path}: not an fkp checkpoint ({type(e).__name__}); pass a .ckpt from "
                "outputs/<task>/<run>/checkpoints/."
            ) from None
        transform = eval_transform_of(model, str(path))
        if runtime == "onnx":
            network = onnx_runtime_model(model, transform, threads)
        else:
            network = TorchNetwork(model, device)
        return cls(network, transform, detector, flip_test, refine)

    @classmethod
    def from_pretrained(
        cls,
        name: str = "fast",
        device: str | None = None,
        detector: FaceDetector | None = None,
        flip_test: bool | None = None,
        refine: int | None = None,
        runtime: str | None = None,
        precision: str | None = None,
        threads: int | None = None,
    ) -> FaceKeypointDetector:
        """fkp's shipped model, inside the package: no training and no download (the docs'
        "The default model" says how it was trained and what it measures). It ships as a
        checkpoint and as ONNX (float32 and int8) with its preprocessing JSON: on the CPU
        (runtime "auto" or "onnx") it runs from an ONNX file, without PyTorch. Settings left
        as None are predict.py's defaults, as for `from_checkpoint`."""
        return cls.from_checkpoint(
            pretrained_path(name), device, detector, flip_test, refine, runtime, precision, threads
        )

    @classmethod
    def from_onnx(
        cls,
        path: str | Path,
        detector: FaceDetector | None = None,
        flip_test: bool | None = None,
        threads: int | None = None,
        refine: int | None = None,
    ) -> FaceKeypointDetector:
        """An ONNX file from export.py, with its preprocessing JSON beside it (NumPy, OpenCV
        and onnxruntime only); settings left as None are predict.py's."""
        if not Path(path).is_file():
            raise FkpError(f"{path}: no such ONNX file; export one with export.py format=onnx.")
        model, transform = OnnxModel(path, threads), read_preprocessing(path)
        return cls(model, transform, detector, flip_test, refine=refine)

    def __call__(
        self, image: np.ndarray, bgr: bool = False, boxes: np.ndarray | None = None
    ) -> list[Face]:
        """All faces of the image, left to right. image: (H, W, 3) RGB (or BGR with bgr=True),
        gray (H, W) or with alpha (H, W, 4), uint8; boxes: (N, 4) x, y, w, h from
        `self.detector` when already detected (to time the two steps apart)."""
        rgb = as_rgb(image, bgr)
        boxes = self.detector.detect(rgb) if boxes is None else boxes
        if len(boxes) == 0:
            return []
        keypoints, frames = self.refined(rgb, self.frames_of(boxes), self.refine)
        return [Face(b, k, f) for b, k, f in zip(boxes, keypoints, frames)]

    def frames_of(self, boxes: np.ndarray) -> np.ndarray:
        """Detector boxes (N, 4) -> the training framings (N, 3) cx, cy, side they imply."""
        return square_frame(self.detector.face_extent(boxes), self.transform.margin)

    def refined(
        self, image: np.ndarray, frames: np.ndarray, passes: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints from the given frames, then up to `passes` more passes, each framed from
        the previous points; a face whose frame moves less than 1% of its side has settled
        and is not predicted again. image: (H, W, 3) RGB uint8; frames: (N, 3) cx, cy, side.
        Returns keypoints (N, 68, 2) pixels and the frames (N, 3) of each face's last pass."""
        prepared = self.transform.prepare(image)
        frames = np.array(frames, dtype=np.float32).reshape(-1, 3)
        keypoints = self.keypoints_in(prepared, frames)
        moving = np.arange(len(frames))  # the faces whose frame has not settled yet
        for _ in range(passes):
            new = snapped(self.transform.frame_for(keypoints[moving]))
            moved = np.abs(new - frames[moving]).max(axis=1) / frames[moving, 2]
            moving, new = moving[moved >= SETTLED], new[moved >= SETTLED]
            if not len(moving):
                break
            frames[moving] = new
            keypoints[moving] = self.keypoints_in(prepared, new)
        return keypoints, frames

    def keypoints_in(self, image: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """Keypoints of the faces in the given square frames, all in one network call.

        image: (H, W, 3) RGB uint8 (or already `transform.prepare`d); frames: (N, 3) cx, cy,
        side. Returns (N, K, 2) pixels.
        """
        images, affines = self.transform.inputs(image, frames)
        if self.flip_test:  # the faces and their mirror images in one batch
            both = self.model(np.concatenate([images, images[..., ::-1]]))
            mirrored = unmirror_normalised(both[len(images) :], self.transform.landmarks.flip_index)
            predicted = (both[: len(images)] + mirrored) / 2
        else:
            predicted = self.model(images)
        return to_image(predicted, affines, self.transform.image_size)

    def predict_crops(self, crops: list[np.ndarray], bgr: bool = False) -> list[np.ndarray]:
        """Keypoints of already-cropped faces, each framed as the training crops are (the
        square around the face's points, widened by the training margin, about centred).

        Returns one (68, 2) array per crop, in the crop's pixels.
        """
        out = []
        for crop in crops:
            rgb = as_rgb(crop, bgr)
            h, w = rgb.shape[:2]
            box = np.array([[(w - 1) / 2, (h - 1) / 2, max(h, w)]], dtype=np.float32)
            out.append(self.keypoints_in(rgb, box)[0])
        return out


PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "weights"


def pretrained_path(name: str = "fast") -> Path:
    """The shipped checkpoint called `name` (fkp/weights/<name>.ckpt; <name>.onnx and
    <name>.json beside it are the same network exported, <name>.int8.onnx and <name>.int8.json
    the same quantized, <name>.card.json its measurements)."""
    path = PRETRAINED_DIR / f"{name}.ckpt"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PRETRAINED_DIR.glob("*.ckpt"))) or "none"
        raise FkpError(f"no shipped model called {name!r}; shipped: {names}.")
    return path


def resolve_checkpoint(value: str | None, log_dir: Path, default: str) -> Path:
    """A checkpoint option: a file, "pretrained" (the shipped model), or "newest" (the best
    checkpoint of the newest run under log_dir); None means `default`."""
    value = default if value in (None, "") else str(value)
    if value == "pretrained":
        return pretrained_path()
    if value == "newest":
        path = newest_checkpoint(log_dir)
        print(f"using the newest training run's best checkpoint: {path}")
        return path
    return Path(value)


def newest_checkpoint(log_dir: Path) -> Path:
    """The best checkpoint of the newest training run under log_dir."""
    runs = sorted(log_dir.glob("**/checkpoints"), key=lambda p: p.stat().st_mtime)
    for run in reversed(runs):
        best = sorted(run.glob("epoch_*.ckpt"), key=lambda p: p.stat().st_mtime)
        if best or (run / "last.ckpt").is_file():
            return best[-1] if best else run / "last.ckpt"
    raise FkpError(
        f"no training run with checkpoints under {log_dir}; train one (python train.py "
        "experiment=fast), pass ckpt_path=<file.ckpt>, or use the shipped model with "
        "ckpt_path=pretrained."
    )
