"""Find every face and its 68 keypoints: `python predict.py input=<image|folder|glob|video>`.

Writes into outputs/predict/<date>_<time>/: each input annotated, keypoints.json (per image:
faces with box and keypoints), and faces/ + keypoints.csv (each face crop with its keypoints,
in the training CSV layout). A video gives an annotated video and per-frame JSON.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path

import cv2
import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from fkp.config import PREDICT_RULES, one_line_errors, validate
from fkp.data.io import IMAGE_SUFFIXES, decode_image, write_keypoints_csv
from fkp.errors import FkpError, counted, reported_as_one_line
from fkp.files import ensure_writable, partial_path, write_text
from fkp.geometry import apply_affine, crop_frame
from fkp.runtime.detect import build_detector
from fkp.runtime.predictor import Face, FaceKeypointDetector, resolve_checkpoint, resolve_runtime
from fkp.runtime.track import FaceTracker
from fkp.viz import annotate, save_image

log = logging.getLogger("fkp.predict")
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def expand_inputs(spec: str) -> list[Path]:
    path = Path(spec).expanduser()
    if path.is_dir():
        found = [
            p
            for p in sorted(path.iterdir())
            if p.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES)
        ]
        if not found:
            raise FkpError(f"input={spec}: the folder holds no images or videos.")
        return found
    if path.exists():
        return [path]
    matches = [Path(p) for p in sorted(glob.glob(spec)) if Path(p).is_file()]
    if not matches:
        raise FkpError(f"input={spec}: no such file, folder or matching files; check the path.")
    return matches


def face_crop(image: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
    """The square the model saw, at native resolution, and the keypoints in its pixels."""
    side = max(1, int(round(float(face.frame[2]))))
    crop, affine = crop_frame(image, face.frame, side)
    return crop, apply_affine(affine, face.keypoints)


def output_stems(paths: list[Path]) -> dict[Path, str]:
    """A distinct output name per input: the file stem, prefixed by its folder (and numbered
    if need be) where two inputs share a stem, so no output overwrites another."""
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for p in paths:
        name = p.stem if counts[p.stem] == 1 else f"{p.parent.name}_{p.stem}"
        base, k = name, 1
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        names[p] = name
    return names


def read_frames(capture: cv2.VideoCapture, give_up_after: int = 50):
    """Yield (index, RGB frame or None) for every frame; None marks a damaged frame, which is
    skipped rather than ending the video (OpenCV's read fails on it and goes on after it).
    The run of failures at the end of the stream is its end, not damage."""
    index, failures = 0, 0
    while failures < give_up_after:
        ok, bgr = capture.read()
        if not ok:
            failures += 1
            continue
        for _ in range(failures):
            yield index, None
            index += 1
        failures = 0
        yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        index += 1


def camera_of(spec: str) -> int | None:
    """input=webcam (camera 0) or input=<N> (camera N); None for files."""
    if spec == "webcam":
        return 0
    return int(spec) if spec.isdigit() else None


def live_window() -> bool:
    """Whether OpenCV can open a window here (a display, and a GUI-enabled OpenCV build: the
    headless build fkp installs has none)."""
    try:
        cv2.namedWindow("fkp")
    except cv2.error:
        return False
    return True


def _discard(writer: cv2.VideoWriter | None, partial: Path | None) -> None:
    """Close and remove an unfinished video, so no torn file is left behind."""
    if writer is not None:
        writer.release()
    if partial is not None:
        partial.unlink(missing_ok=True)


def predict_video(
    path: Path | int, det: FaceKeypointDetector, cfg: DictConfig, out: Path, stem: str
) -> dict:
    """A video file, or a camera (path: its index) shown live where a window can open."""
    capture = cv2.VideoCapture(path if isinstance(path, int) else str(path))
    if not capture.isOpened():
        if isinstance(path, int):
            raise FkpError(f"input={'webcam' if path == 0 else path}: no camera {path} found; "
                           "connect one or pass a video file.")  # fmt: skip
        raise FkpError(f"{path}: cannot open the video (unknown format or corrupt file).")
    live = isinstance(path, int) and live_window()
    if isinstance(path, int) and not live:
        print("no window can open here (no display, or OpenCV's headless build): the camera's "
              f"frames go to {out}; stop with Ctrl-C.", file=sys.stderr)  # fmt: skip
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer, frames, damaged, previous, partial = None, [], 0, None, None
    tracker = FaceTracker(
        det, cfg.video.detect_every, cfg.video.verify_every, smooth=cfg.video.smooth, fps=fps,
        min_cutoff=cfg.video.min_cutoff, beta=cfg.video.beta, passes=cfg.video.passes,
        flip_test=cfg.video.flip_test, detect_side=cfg.video.detect_side,
    )  # fmt: skip
    try:
        for index, rgb in read_frames(capture):
            if rgb is None:  # damaged: keep the timeline, repeat the last picture
                damaged += 1
                frames.append({"frame": index, "damaged": True, "faces": []})
                if writer is not None and previous is not None:
                    writer.write(previous)
                continue
            faces = tracker(rgb)
            if writer is None:
                h, w = rgb.shape[:2]
                target = out / f"{stem}_keypoints.mp4"
                partial = partial_path(target)  # renamed into place once whole
                opened = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (w, h))  # fmt: skip
                if opened.isOpened():
                    writer = opened
                else:
                    raise FkpError(
                        f"{target}: OpenCV cannot write this video (no mp4v encoder, or the folder "
                        "is not writable); check the output folder."
                    )
            previous = cv2.cvtColor(
                annotate(rgb, faces, cfg.parts, det.transform.landmarks), cv2.COLOR_RGB2BGR
            )
            writer.write(previous)
            frames.append({"frame": index, "faces": [f.to_dict() for f in faces]})
            if live:
                cv2.imshow("fkp", previous)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):  # q or Esc ends a live run
                    break
    except KeyboardInterrupt:  # Ctrl-C ends a camera run; what was seen is written
        if not isinstance(path, int):
            _discard(writer, partial)
            raise
    except BaseException:
        _discard(writer, partial)
        raise
    capture.release()
    if live:
        cv2.destroyAllWindows()
    if writer is None:
        raise FkpError(f"{path}: the video has no readable frames.")
    writer.release()
    os.replace(partial, target)
    if damaged:
        print(f"warning: {path}: {counted(damaged, 'damaged frame')} skipped; the others were "
              "processed.",
              file=sys.stderr)  # fmt: skip
    record = {"fps": fps, "frames": frames, "damaged_frames": damaged}
    write_text(out / f"{stem}_frames.json", json.dumps(record))
    return {"video": True, "frames": len(frames), "fps": fps, "damaged_frames": damaged}


def load_model(cfg: DictConfig, ckpt: Path, threads: int | None = None) -> FaceKeypointDetector:
    """The model and detector predict.py's settings name (ckpt already resolved)."""
    runtime = resolve_runtime(cfg.runtime, cfg.device, ckpt)
    if ckpt.suffix == ".onnx":
        if runtime != "onnx":
            raise FkpError(f"{ckpt.name} is an ONNX model: use runtime=onnx or runtime=auto.")
        return FaceKeypointDetector.from_onnx(
            ckpt, build_detector(cfg.detector), cfg.flip_test, threads, cfg.refine
        )
    return FaceKeypointDetector.from_checkpoint(
        ckpt, device=cfg.device, detector=build_detector(cfg.detector), flip_test=cfg.flip_test,
        refine=cfg.refine, runtime=runtime, precision=cfg.precision, threads=threads,
    )  # fmt: skip


def predict_photo(
    path: Path, stem: str, det: FaceKeypointDetector, cfg: DictConfig, out: Path
) -> tuple[dict, list[tuple[str, np.ndarray]]]:
    """One photo: its annotated copy and face crops written; its JSON record and CSV rows."""
    image = decode_image(path)
    faces = det(image)
    save_image(out / f"{stem}.png", annotate(image, faces, cfg.parts, det.transform.landmarks))
    record = {"width": image.shape[1], "height": image.shape[0],
              "faces": [f.to_dict() for f in faces]}  # fmt: skip
    rows = []
    for k, face in enumerate(faces) if cfg.crops else ():
        crop, points = face_crop(image, face)
        name = f"{stem}_{k:02d}.png"
        save_image(out / "faces" / name, crop)
        rows.append((name, points))
    return record, rows


# A worker process's model and settings (photos of a folder in worker processes).
_WORKER: dict = {}


def _start_worker(settings: dict, ckpt: str) -> None:
    """Each worker uses one thread (the processes share the cores) and loads the model once;
    a model that cannot load is reported by the main process, which loads it too."""
    cv2.setNumThreads(1)
    cfg = OmegaConf.create(settings)
    try:
        _WORKER.update(cfg=cfg, det=load_model(cfg, Path(ckpt), threads=1))
    except Exception as e:  # noqa: BLE001  (an initializer that raises is restarted forever)
        _WORKER.update(error=f"the model did not load in a worker process ({e})")


def _photo_in_worker(job: tuple[str, str, str]) -> tuple[dict | None, list, str | None]:
    path, stem, out = job
    if "error" in _WORKER:
        return None, [], _WORKER["error"]
    try:
        record, rows = predict_photo(Path(path), stem, _WORKER["det"], _WORKER["cfg"], Path(out))
    except FkpError as e:
        return None, [], str(e)
    return record, rows, None


@contextlib.contextmanager
def worker_pool(workers: int, cfg: DictConfig, ckpt: Path):
    """Worker processes for the photos of a folder (None for one process). Started before
    this process loads its model: forked (where the system can), they copy no model threads;
    elsewhere they start afresh. Each uses one thread, OpenMP's included."""
    if workers == 1:
        yield None
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    settings = OmegaConf.to_container(cfg, resolve=True)
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the workers, read when OpenMP loads
    try:
        with context.Pool(workers, _start_worker, (settings, str(ckpt))) as pool:
            yield pool
    finally:
        if threads is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = threads


def worker_count(cfg: DictConfig, photos: int, runtime: str) -> int:
    """workers=auto: one process per core for 8 photos or more on onnxruntime (on a GPU, or for
    a few photos, starting processes costs more than it saves); otherwise as set."""
    if cfg.workers != "auto":
        return max(1, min(int(cfg.workers), photos))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cores or 1, photos) if photos >= 8 and runtime == "onnx" else 1


def photo_results(photos: list[Path], stems: dict[Path, str], det: FaceKeypointDetector,
                  cfg: DictConfig, out: Path, pool=None, workers: int = 1):  # fmt: skip
    """(path, record or None, crop rows, error or None) for each photo, in input order, with
    a progress bar on a terminal; in the pool's `workers` processes when there is one."""
    bar = tqdm(total=len(photos), unit="image", disable=None if len(photos) > 1 else True,
               desc=counted(workers, "process"))  # fmt: skip
    with bar:
        if pool is None:
            for path in photos:
                try:
                    record, rows = predict_photo(path, stems[path], det, cfg, out)
                    yield path, record, rows, None
                except FkpError as e:
                    yield path, None, [], str(e)
                bar.update()
            return
        jobs = [(str(p), stems[p], str(out)) for p in photos]
        for path, done in zip(photos, pool.imap(_photo_in_worker, jobs)):
            yield (path, *done)
            bar.update()


def predict(cfg: DictConfig) -> int:
    """Run over all inputs; returns how many failed."""
    validate(cfg, PREDICT_RULES)
    out = Path(cfg.paths.output_dir)
    ckpt = resolve_checkpoint(cfg.get("ckpt_path"), Path(cfg.paths.log_dir), "pretrained")
    camera = camera_of(str(cfg.input))
    inputs = [] if camera is not None else expand_inputs(str(cfg.input))
    ensure_writable(out, "hydra.run.dir=<folder>")
    stems = output_stems(inputs)
    results, rows, failed = {}, [], 0
    photos = [p for p in inputs if p.suffix.lower() not in VIDEO_SUFFIXES]
    workers = worker_count(cfg, len(photos), resolve_runtime(cfg.runtime, cfg.device, ckpt))
    start = time.perf_counter()
    with worker_pool(workers, cfg, ckpt) as pool:
        det = load_model(cfg, ckpt)  # here too: a model that cannot load is one line
        if camera is not None:
            results[str(cfg.input)] = predict_video(camera, det, cfg, out, "webcam")
        found = photo_results(photos, stems, det, cfg, out, pool, workers)
        for path, record, crops, error in found:
            if error is not None:
                failed += 1
                print(f"error: {error}", file=sys.stderr)
                continue
            results[str(path)] = record
            rows += crops
            faces = len(record["faces"])
            line = f"{path}: {counted(faces, 'face')}"
            (log.info if len(photos) == 1 else log.debug)(line)
    if len(photos) > 1:
        seconds = time.perf_counter() - start
        log.info(f"{len(photos)} images in {seconds:.1f} s ({counted(workers, 'process')}): "
                 f"{len(photos) / seconds:.1f} images/s")  # fmt: skip
    for path in inputs:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            try:
                results[str(path)] = predict_video(path, det, cfg, out, stems[path])
            except FkpError as e:
                failed += 1
                print(f"error: {e}", file=sys.stderr)
    results = {str(p): results[str(p)] for p in inputs if str(p) in results} | results
    write_text(out / "keypoints.json", json.dumps(results, indent=1) + "\n")
    if rows:  # the training CSV's layout, so predictions can be reviewed and trained on
        names, points = zip(*rows)
        write_keypoints_csv(list(names), np.stack(points), out / "keypoints.csv")
    log.info(f"wrote {out}")
    return failed


@one_line_errors("predict")
@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    with reported_as_one_line():
        failed = predict(cfg)
    if failed:
        print(f"error: {counted(failed, 'input')} failed; see the messages above.", file=sys.stderr)
        sys.exit(1)
