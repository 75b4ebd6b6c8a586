"""Inference speed: model latency per face and end-to-end milliseconds per image.

    python bench/predict_speed.py --ckpt <file.ckpt> [--images ../shared/data/images/*.jpg]

Model latency: the network alone on a preprocessed face, batch 1 on 1 CPU thread, and per
face in a batch of 16, in PyTorch eager mode and in onnxruntime. End to end: decode excluded,
Haar detection + framing + keypoints with predict.py's refinement passes + drawing, in
onnxruntime as predict.py runs by default, on 1 thread. Prints
markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import time
from pathlib import Path

import cv2
import torch
from common import Row, hardware, print_rows
from omegaconf import OmegaConf

from fkp import CONF_DIR
from fkp.data.io import decode_image
from fkp.runtime.onnx import OnnxModel
from fkp.runtime.predictor import FaceKeypointDetector
from fkp.training.export import export, onnx_runtime_model
from fkp.viz import draw_keypoints


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


def measure(ckpt: str, images: list[str]) -> list[Row]:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    det = FaceKeypointDetector.from_checkpoint(ckpt, runtime="torch")
    size, channels = det.transform.image_size, det.transform.channels
    one = torch.randn(1, channels, size, size)
    many = torch.randn(16, channels, size, size)
    net = f"{det.model.module.hparams.network} at {size} px"
    rows: list[Row] = []

    def per_face(what: str, model) -> None:
        rows.append((what, f"{net}, batch 1", 1e3 * best_of(lambda: model(one), 50), "ms/face"))
        batched = 1e3 * best_of(lambda: model(many), 5) / 16
        rows.append((what, f"{net}, batch 16", batched, "ms/face"))

    with torch.inference_mode():
        per_face("predict: model, PyTorch eager", det.model.module)
    with tempfile.TemporaryDirectory() as tmp:
        path = export(det.model.module, det.transform, Path(tmp) / "m.onnx", "onnx")
        per_face("predict: model, onnxruntime", OnnxModel(path, threads=1))
    # as predict.py runs by default: onnxruntime (exported in memory), 2 refinement passes
    refine = OmegaConf.load(CONF_DIR / "predict.yaml").refine
    in_use = FaceKeypointDetector(onnx_runtime_model(det.model.module, det.transform, threads=1),
                                  det.transform, det.detector, refine=refine)  # fmt: skip
    for path in images:
        image = decode_image(path)

        def end_to_end(image=image):
            out = image.copy()
            for face in in_use(image):
                out = draw_keypoints(out, face.keypoints, copy=False)

        shape = f"{image.shape[1]}x{image.shape[0]}, {len(in_use(image))} faces"
        ms = 1e3 * best_of(end_to_end, 3)
        what = f"predict: end to end (Haar + keypoints, {refine} refinement passes + drawing)"
        rows.append((what, f"{Path(path).name} ({shape}), {net}, onnxruntime", ms, "ms/image"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument(
        "--images", nargs="+", default=sorted(glob.glob("../shared/data/images/*.jpg"))
    )
    args = parser.parse_args()
    print_rows((measure(args.ckpt, args.images), hardware(threads=1)))


if __name__ == "__main__":
    main()
