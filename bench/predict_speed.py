"""Inference speed beside dlib: the network alone, one keypoint pass per face, and whole photos.

    python bench/predict_speed.py [--ckpt <file.ckpt> [--onnx <file.int8.onnx>]]
        [--images ../shared/data/images/*.jpg]

Everything on 1 thread (onnxruntime, OpenCV, PyTorch; run with OMP_NUM_THREADS=1 so the
detector's OpenMP threads do too), each figure the best of several rounds, the methods taking
turns in one run. Decoding is excluded.

- network alone: float32 in PyTorch eager and onnxruntime, and int8 (what predict.py runs on a
  CPU), batch 1 and batch 16, per face;
- one keypoint pass per face, everything around the network included (framing warp,
  normalisation, decoding back to image pixels), against dlib's 68-point shape predictor on
  the same faces, as a ratio;
- photos with predict.py's defaults (detector + keypoints, no drawing) against dlib's HOG
  detector + shape predictor, as a ratio.

Prints markdown rows for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import glob
import io
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from common import Row, hardware, print_rows

from fkp.data.io import decode_image
from fkp.errors import counted
from fkp.runtime.onnx import OnnxModel
from fkp.runtime.predictor import FaceKeypointDetector
from fkp.training.export import export


def best_of(fn, repeats: int, rounds: int = 5) -> float:
    """Seconds per call: the best of several rounds (the least disturbed by other work)."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - start) / repeats)
    return min(times)


def taking_turns(a, b, repeats: int, rounds: int = 15) -> tuple[float, float]:
    """Seconds per call of a and of b, each the best of `rounds` rounds, the two alternating
    round by round, so a change in the machine's speed falls on both alike."""
    a(), b()
    best = [math.inf, math.inf]
    for _ in range(rounds):
        for k, fn in enumerate((a, b)):
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            best[k] = min(best[k], (time.perf_counter() - start) / repeats)
    return best[0], best[1]


def dlib_models():
    """dlib's HOG detector and 68-point predictor, or (None, None) if not installed."""
    try:
        import dlib

        from fkp.evaluation.dlib_baseline import model_path
    except ImportError:
        return None, None
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model_path()))


def network_rows(det: FaceKeypointDetector, int8: FaceKeypointDetector) -> list[Row]:
    size, channels = det.transform.image_size, det.transform.channels
    module = det.model.module
    net = f"{module.hparams.network} at {size} px"
    float32 = OnnxModel(export(module, det.transform, io.BytesIO(), "onnx").getvalue(), 1)
    rows: list[Row] = []
    for what, model in [("PyTorch eager, float32", module), ("onnxruntime, float32", float32),
                        ("onnxruntime, int8 (predict.py on a CPU)", int8.model)]:  # fmt: skip
        for batch in (1, 16):
            images = np.random.default_rng(0).normal(size=(batch, channels, size, size))
            images = images.astype(np.float32)
            if isinstance(model, torch.nn.Module):
                tensor = torch.from_numpy(images)
                call = lambda m=model, x=tensor: m(x)  # noqa: E731
            else:
                call = lambda m=model, x=images: m(x)  # noqa: E731
            with torch.inference_mode():
                ms = 1e3 * best_of(call, 50 if batch == 1 else 5) / batch
            rows.append((f"network alone: {what}", f"{net}, batch {batch}", ms, "ms/face"))
    return rows


def per_face_rows(int8: FaceKeypointDetector, images: list[np.ndarray], predictor) -> list[Row]:
    """One pass per face from its detector frame, all of fkp's work around the network
    included, against dlib's predictor on the box dlib would draw for the same face."""
    import dlib

    from fkp.runtime.detect import HogFaceDetector

    hog_boxes = HogFaceDetector()  # where dlib's own detector would put each face's box
    faces = []  # (image, prepared image, frame (3,), dlib rectangle)
    for image in images:
        prepared = int8.transform.prepare(image)
        boxes = int8.detector.detect(image)
        for frame, extent in zip(int8.frames_of(boxes), int8.detector.face_extent(boxes)):
            x, y, w, h = (int(round(v)) for v in hog_boxes.boxes_for(extent)[0])
            faces.append((image, prepared, frame, dlib.rectangle(x, y, x + w, y + h)))

    def fkp_faces():
        return [int8.keypoints_in(p, f[None]) for _, p, f, _ in faces]

    def dlib_faces():
        return [predictor(im, r) for im, _, _, r in faces]

    fkp_s, dlib_s = taking_turns(fkp_faces, dlib_faces, 10)
    fkp_ms, dlib_ms = 1e3 * fkp_s / len(faces), 1e3 * dlib_s / len(faces)
    setting = f"{counted(len(faces), 'face')} of {counted(len(images), 'photo')}, one at a time"
    return [
        ("one pass per face: fkp, int8, framing + network + decoding", setting, fkp_ms, "ms/face"),
        ("one pass per face: dlib 68-point shape predictor", setting, dlib_ms, "ms/face"),
        ("one pass per face: fkp / dlib (target <= 0.6)", setting, fkp_ms / dlib_ms, "x"),
    ]


def photo_rows(int8: FaceKeypointDetector, paths: list[str], hog, predictor) -> list[Row]:
    """predict.py's defaults on whole photos (detection + keypoints) against dlib's HOG +
    predictor (its usual upsampling of 1)."""
    rows: list[Row] = []
    for path in paths:
        image = decode_image(path)
        found = len(int8(image))
        setting = f"{Path(path).name} ({image.shape[1]}x{image.shape[0]}, {counted(found, 'face')})"
        what = "photo: fkp, predict.py's defaults (YuNet + int8 keypoints)"
        if hog is None:
            rows.append((what, setting, 1e3 * best_of(lambda im=image: int8(im), 3), "ms/image"))
            continue
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

        def dlib_photo(im=image, g=gray):
            return [predictor(im, r) for r in hog(g, 1)]

        fkp_s, dlib_s = taking_turns(lambda im=image: int8(im), dlib_photo, 1, rounds=4)
        rows += [
            (what, setting, 1e3 * fkp_s, "ms/image"),
            ("photo: dlib HOG + shape predictor", setting, 1e3 * dlib_s, "ms/image"),
            ("photo: fkp / dlib (target <= 0.5)", setting, fkp_s / dlib_s, "x"),
        ]
    return rows


def measure(ckpt: str | None, paths: list[str], onnx: str | None = None) -> list[Row]:
    """ckpt: a model of one's own (default: the shipped one); onnx: its int8 export
    (`export.py precision=int8`), which predict.py runs; without it a checkpoint of one's own
    runs float32 on onnxruntime."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if ckpt:
        det = FaceKeypointDetector.from_checkpoint(ckpt, runtime="torch")
        int8 = (
            FaceKeypointDetector.from_onnx(onnx, threads=1)
            if onnx
            else FaceKeypointDetector.from_checkpoint(ckpt, threads=1)
        )
    else:
        det = FaceKeypointDetector.from_pretrained(runtime="torch")
        int8 = FaceKeypointDetector.from_pretrained(threads=1)
    rows = network_rows(det, int8)
    hog, predictor = dlib_models()
    images = [decode_image(p) for p in paths]
    if predictor is not None:
        rows += per_face_rows(int8, images, predictor)
    rows += photo_rows(int8, paths, hog, predictor)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default=None, help="default: the shipped model")
    parser.add_argument("--onnx", default=None, help="the checkpoint's int8 export, if any")
    parser.add_argument(
        "--images", nargs="+", default=sorted(glob.glob("../shared/data/images/*.jpg"))
    )
    args = parser.parse_args()
    print_rows((measure(args.ckpt, args.images, args.onnx), hardware(threads=1)))


if __name__ == "__main__":
    main()
