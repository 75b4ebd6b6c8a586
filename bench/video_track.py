"""Video: steadiness, speed and false faces of fkp's tracker against dlib, on a clip with known
motion.

    python bench/video_track.py [--photo <photo.jpg>] [--faces 2] [--ckpt <file.ckpt>]

The clip (`fkp.evaluation.protocols.moving_clip`): the photo drifting, swaying, zooming and
tilting in a 640x480 frame for 120 frames. Steadiness (`fkp.evaluation.protocols.steadiness`):
each face's points mapped back through the known motion, their mean deviation from their own
mean over the inter-ocular distance (lower is steadier). Frames per second on 1 thread, decoding
excluded. Methods: fkp tracking with predict.py's video defaults (the int8 network on
onnxruntime, 1 pass with flip test, detector every 10 frames at 320 px, One Euro smoothing),
the same in float32 PyTorch, the defaults before 2026-12-02 (2 passes, detector at full size,
track checks every 5 frames), fkp detecting on every frame, and dlib's HOG detector +
68-point predictor on every frame.

Then whole programs on the clip written as an mp4 file (read, find the points, draw, write the
annotated video and the points as JSON): `python predict.py input=clip.mp4` timed from start
to exit (start-up included), against dlib's per-frame loop doing the same work in this process.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
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
from fkp.runtime.predictor import FaceKeypointDetector
from fkp.runtime.track import FaceTracker


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


def run(make, frames: list[np.ndarray], rounds: int = 3) -> tuple[list[list[np.ndarray]], float]:
    """The faces found per frame and the best frames per second of `rounds` runs, each with a
    fresh method from `make` (a tracker starts empty), after one warm-up frame."""
    best = 0.0
    for _ in range(rounds):
        process = make()
        process(frames[0])
        process = make()
        start = time.perf_counter()
        found = [[x.keypoints if hasattr(x, "keypoints") else x for x in process(f)]
                 for f in frames]  # fmt: skip
        best = max(best, len(frames) / (time.perf_counter() - start))
    return found, best


def dlib_method():
    """dlib's HOG detector + 68-point predictor on one RGB frame, or None if not installed."""
    try:
        import dlib

        from fkp.evaluation.dlib_baseline import model_path
    except ImportError:
        print("dlib is not installed (pip install -e '.[bench]'): its rows are left out",
              file=sys.stderr)  # fmt: skip
        return None
    predictor = dlib.shape_predictor(str(model_path()))
    hog = dlib.get_frontal_face_detector()

    def dlib_frame(frame: np.ndarray) -> list[np.ndarray]:
        return [np.array([[p.x, p.y] for p in predictor(frame, r).parts()], dtype=float)
                for r in hog(frame, 1)]  # fmt: skip

    return dlib_frame


def measure(photo: str, ckpt: str | None, count: int) -> list[Row]:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    frames, affines = moving_clip(decode_image(photo))
    if ckpt:
        det = FaceKeypointDetector.from_checkpoint(ckpt, threads=1)
        torch_det = FaceKeypointDetector.from_checkpoint(ckpt, runtime="torch")
    else:
        det = FaceKeypointDetector.from_pretrained(threads=1)  # int8 on onnxruntime
        torch_det = FaceKeypointDetector.from_pretrained(runtime="torch")
    old = copy.copy(det)
    old.refine = 2
    methods = {
        "fkp tracking (defaults: int8, 1 pass, flip test), onnxruntime": lambda: FaceTracker(det),
        "fkp tracking (defaults, float32), PyTorch": lambda: FaceTracker(torch_det),
        "fkp tracking (before 2026-12-02: 2 passes, detector at full size, checks every 5 "
        "frames)": lambda: FaceTracker(old, passes=2, detect_side=0, verify_every=5),
        "fkp tracking (1 pass, no flip test)": lambda: FaceTracker(det, flip_test=False),
        "fkp detector + keypoints on every frame (predict.py's photo defaults)": lambda: det,
    }
    results = {name: run(make, frames) for name, make in methods.items()}
    dlib_frame = dlib_method()
    if dlib_frame is not None:
        dlib_name = "dlib HOG + 68-point predictor, every frame"
        results[dlib_name] = run(lambda: dlib_frame, frames, rounds=1)
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
    fkp_fps = results[next(iter(methods))][1]
    rows.append(("video: fkp tracking (defaults) / face-frames per second", setting,
                 count * fkp_fps, "face-frames/s"))  # fmt: skip
    if dlib_frame is not None:
        rows += whole_programs(frames, dlib_frame, setting, ckpt)
    return rows


def whole_programs(frames: list[np.ndarray], dlib_frame, setting: str, ckpt: str | None):
    """predict.py on the clip as an mp4 file against dlib's loop doing the same work: read
    each frame, find the points, draw them, write the annotated video and the points."""
    from fkp.viz import draw_keypoints

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25.0,
                                 frames[0].shape[1::-1])  # fmt: skip
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        command = [sys.executable, str(Path(__file__).parents[1] / "predict.py"),
                   f"input={clip}", f"hydra.run.dir={tmp}/fkp"]  # fmt: skip
        if ckpt:
            command.append(f"ckpt_path={ckpt}")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        fkp_seconds = time.perf_counter() - start

        start = time.perf_counter()
        capture = cv2.VideoCapture(str(clip))
        out = cv2.VideoWriter(f"{tmp}/dlib.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 25.0,
                              frames[0].shape[1::-1])  # fmt: skip
        record = []
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            faces = dlib_frame(rgb)
            for points in faces:
                rgb = draw_keypoints(rgb, points)
            out.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            record.append([f.tolist() for f in faces])
        out.release()
        Path(f"{tmp}/dlib.json").write_text(json.dumps(record))
        dlib_seconds = time.perf_counter() - start
    what = "video file: read, points, draw, write video + JSON"
    return [
        (f"{what}: python predict.py input=clip.mp4 (start-up included)", setting,
         len(frames) / fkp_seconds, "frames/s"),
        (f"{what}: dlib's per-frame loop", setting, len(frames) / dlib_seconds, "frames/s"),
        (f"{what}: predict.py / dlib", setting, dlib_seconds / fkp_seconds, "x"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="../shared/data/images/obamas.jpg")
    parser.add_argument("--faces", type=int, default=2, help="faces in the photo")
    parser.add_argument("--ckpt", default=None, help="default: the shipped model")
    args = parser.parse_args()
    print_rows((measure(args.photo, args.ckpt, args.faces), hardware(threads=1)))


if __name__ == "__main__":
    main()
