"""Video: steadiness, speed and false faces of fkp's tracker against dlib, on a clip with known
motion.

    python bench/video_track.py --photo <photo.jpg> [--faces 2] [--ckpt <file.ckpt>]

The clip (`fkp.evaluation.protocols.moving_clip`): the photo drifting, swaying, zooming and
tilting in a 640x480 frame for 120 frames. Steadiness (`fkp.evaluation.protocols.steadiness`):
each face's points mapped back through the known motion, their mean deviation from their own
mean over the inter-ocular distance (lower is steadier). Frames per second on 1 thread, decoding
excluded. Methods: fkp tracking (detector every 10 frames, One Euro smoothing) in PyTorch and
onnxruntime, fkp detecting on every frame, and dlib's HOG detector + 68-point predictor on every
frame.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from common import Row, hardware, print_rows

from fkp.data.io import decode_image
from fkp.evaluation.protocols import moving_clip, steadiness
from fkp.runtime.onnx import OnnxModel
from fkp.runtime.predictor import FaceKeypointDetector
from fkp.runtime.track import FaceTracker
from fkp.training.export import export


def faces_by_position(per_frame: list[list[np.ndarray]], affines: np.ndarray, count: int):
    """(count, frames, 68, 2): each frame's faces assigned to the photo's faces by where they
    map back to; NaN where a face was not found. Also the number of extra (false) faces."""
    reference = None
    out = np.full((count, len(per_frame), 68, 2), np.nan)
    extra = 0
    for k, faces in enumerate(per_frame):
        inverse = cv2.invertAffineTransform(affines[k])
        centres = [(f @ inverse[:, :2].T + inverse[:, 2]).mean(axis=0) for f in faces]
        if reference is None and len(faces) == count:
            reference = np.array(sorted(centres, key=lambda c: c[0]))
        if reference is None:
            continue
        used = set()
        for face, centre in zip(faces, centres):
            j = int(np.argmin(np.linalg.norm(reference - centre, axis=1)))
            if j in used or np.linalg.norm(reference[j] - centre) > 40:
                extra += 1
                continue
            used.add(j)
            out[j, k] = face
    return out, extra


def run(name: str, process, frames: list[np.ndarray]) -> tuple[list[list[np.ndarray]], float]:
    start = time.perf_counter()
    found = [process(f) for f in frames]
    return found, len(frames) / (time.perf_counter() - start)


def measure(photo: str, ckpt: str | None, count: int) -> list[Row]:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    frames, affines = moving_clip(decode_image(photo))
    det = (FaceKeypointDetector.from_checkpoint(ckpt, runtime="torch") if ckpt
           else FaceKeypointDetector.from_pretrained(runtime="torch"))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        onnx = FaceKeypointDetector(
            OnnxModel(export(det.model.module, det.transform, Path(tmp) / "m.onnx", "onnx"), 1),
            det.transform, det.detector, refine=2,
        )  # fmt: skip
        methods = {
            "fkp tracking (defaults: 2 passes, flip test), onnxruntime": lambda: FaceTracker(
                onnx, fps=25.0
            ),
            "fkp tracking (defaults), PyTorch": lambda: FaceTracker(det, fps=25.0),
            "fkp tracking (1 pass, no flip), onnxruntime": lambda: FaceTracker(
                onnx, fps=25.0, passes=1, flip_test=False
            ),
            "fkp detector + 2 refinement passes on every frame, onnxruntime": lambda: onnx,
        }
        results = {}
        for name, make in methods.items():
            process = make()
            results[name] = run(name, lambda f, p=process: [x.keypoints for x in p(f)], frames)
    try:
        import dlib

        from fkp.evaluation.dlib_baseline import model_path

        predictor = dlib.shape_predictor(str(model_path()))
        hog = dlib.get_frontal_face_detector()

        def dlib_frame(frame: np.ndarray) -> list[np.ndarray]:
            return [np.array([[p.x, p.y] for p in predictor(frame, r).parts()], dtype=float)
                    for r in hog(frame, 1)]  # fmt: skip

        results["dlib HOG + 68-point predictor, every frame"] = run("dlib", dlib_frame, frames)
    except ImportError:
        print("dlib is not installed (pip install -e '.[bench]'): its row is left out",
              file=sys.stderr)  # fmt: skip
    rows: list[Row] = []
    setting = f"{Path(photo).name} moving, 640x480, {len(frames)} frames, {count} faces"
    for name, (found, fps) in results.items():
        tracks, extra = faces_by_position(found, affines, count)
        jitter = np.mean([steadiness(t, affines) for t in tracks])
        missed = float(np.isnan(tracks[..., 0, 0]).mean())
        rows.append((f"video: {name}", setting, fps, "frames/s"))
        rows.append((f"video: {name}", f"{setting}, steadiness (lower is steadier)",
                     100 * jitter, "% of inter-ocular"))  # fmt: skip
        rows.append((f"video: {name}", f"{setting}, missed faces / false faces",
                     100 * missed, f"% missed, {extra} false"))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="../shared/data/images/obamas.jpg")
    parser.add_argument("--faces", type=int, default=2, help="faces in the photo")
    parser.add_argument("--ckpt", default=None, help="default: the shipped model")
    args = parser.parse_args()
    print_rows((measure(args.photo, args.ckpt, args.faces), hardware(threads=1)))


if __name__ == "__main__":
    main()
