"""Inference speed: model latency per face and end-to-end milliseconds per image.

    python bench/predict_speed.py --ckpt <file.ckpt> [--images ../shared/data/images/*.jpg]

Model latency: the network alone on a preprocessed face, batch 1 on 1 CPU thread, and per
face in a batch of 16, in PyTorch eager mode and in onnxruntime. End to end: decode excluded,
Haar detection + framing + keypoints + drawing, as predict.py does it, on 1 thread. Prints
markdown for README.
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import time
from pathlib import Path

import cv2
import torch

from fkp.data.io import decode_image
from fkp.deploy import OnnxModel, export
from fkp.predictor import FaceKeypointDetector
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument(
        "--images", nargs="+", default=sorted(glob.glob("../shared/data/images/*.jpg"))
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    det = FaceKeypointDetector.from_checkpoint(args.ckpt)
    size, channels = det.transform.image_size, det.transform.channels
    model = det.model
    one = torch.randn(1, channels, size, size)
    many = torch.randn(16, channels, size, size)
    with torch.inference_mode():
        single = best_of(lambda: model(one), 50)
        batched = best_of(lambda: model(many), 5) / 16
    with tempfile.TemporaryDirectory() as tmp:
        onnx = OnnxModel(export(model, det.transform, Path(tmp) / "m.onnx", "onnx"), threads=1)
        onnx_single = best_of(lambda: onnx(one), 50)
        onnx_batched = best_of(lambda: onnx(many), 5) / 16
    net = model.hparams.network
    print(f"model {net} at {size} px ({args.ckpt}), 1 CPU thread\n")
    print("| measure | ms |")
    print("| --- | --- |")
    print(f"| model, PyTorch eager, 1 face (batch 1) | {single * 1e3:.2f} |")
    print(f"| model, PyTorch eager, per face in a batch of 16 | {batched * 1e3:.2f} |")
    print(f"| model, onnxruntime, 1 face (batch 1) | {onnx_single * 1e3:.2f} |")
    print(f"| model, onnxruntime, per face in a batch of 16 | {onnx_batched * 1e3:.2f} |")
    for path in args.images:
        image = decode_image(path)

        def end_to_end(image=image):
            out = image.copy()
            for face in det(image):
                out = draw_keypoints(out, face.keypoints)

        faces = len(det(image))
        ms = best_of(end_to_end, 3) * 1e3
        name = path.rsplit("/", 1)[-1]
        print(
            f"| end to end, {name} ({image.shape[1]}x{image.shape[0]}, {faces} faces) | {ms:.1f} |"
        )


if __name__ == "__main__":
    main()
