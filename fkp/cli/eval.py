"""Evaluate a checkpoint: `python eval.py [ckpt_path=...] [split=test | csv=... images=...]`.

Writes metrics.json, ced.png (cumulative error distribution) and worst.png (the worst faces,
prediction in magenta over truth in green) into outputs/eval/<date>_<time>/, and prints a
table. With dlib=true, dlib's 68-point predictor runs on the same faces in the same process.
With suite=robustness: NME per perturbation (fkp.evaluation.robustness) instead, robustness.json and
robustness.png (one face under each condition).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from fkp.config import EVAL_RULES, one_line_errors, validate
from fkp.data.stored import load_faces
from fkp.errors import FkpError, reported_as_one_line
from fkp.evaluation.protocols import (
    Result,
    framed_grid,
    match_face,
    plot_ced,
    summarise,
    timed,
    worst_grid,
)
from fkp.evaluation.robustness import CONDITIONS, FRAMED_AFRESH, perturb
from fkp.files import ensure_writable, write_text
from fkp.geometry import interocular, mirror_points
from fkp.runtime.detect import build_detector
from fkp.runtime.predictor import FaceKeypointDetector, resolve_checkpoint
from fkp.training.export import calibration_inputs, onnx_runtime_model
from fkp.viz import save_image

COLUMNS = ["nme", "nme_median", "fr_0.10", "auc_0.10", "fr_0.08", "mpe_px", "miss_rate",
           "ms_per_face", "ms_per_image"]  # fmt: skip

log = logging.getLogger("fkp.eval")


def _cell(column: str, value: float) -> str:
    if column.startswith("ms_"):
        return f"{value:.2f}" if value else "-"  # per face: gt protocol; per image: detector
    return f"{value:.2f}" if column == "mpe_px" else f"{100 * value:.2f}%"


def run_fkp(det: FaceKeypointDetector, images, truth, protocol: str, frame_points=None) -> Result:
    """frame_points: the points the gt protocol frames each face from (default: truth)."""
    predicted = np.full(truth.shape, np.nan)
    result = Result(f"fkp ({protocol} box)", predicted)
    frames = truth if frame_points is None else frame_points
    for i, (image, points) in enumerate(zip(images, truth)):
        if protocol == "gt":
            box = det.transform.frame_for(frames[i])[None]
            keypoints, seconds = timed(lambda: det.keypoints_in(image, box))  # noqa: B023
            predicted[i] = keypoints[0]
            result.seconds += seconds
            result.faces_timed += 1
        else:
            faces, seconds = timed(lambda: det(image))  # noqa: B023
            result.image_seconds += seconds
            face = match_face([f.keypoints for f in faces], points)
            if face is not None:
                predicted[i] = face
    return result


def robustness(det: FaceKeypointDetector, images, truth, dlib: bool, out: Path) -> dict:
    """NME per condition of fkp.evaluation.robustness (gt protocol, framed from the clean points),
    with dlib beside it, and mirror consistency: how far the prediction on the mirrored
    image, mapped back, lies from the prediction on the original (NME units)."""
    methods: dict[str, dict] = {"fkp": {}}
    if dlib:
        from fkp.evaluation.dlib_baseline import run_dlib

        methods["dlib"] = {}
    examples = []
    landmarks = det.transform.landmarks
    for condition in CONDITIONS:
        shown, moved = perturb(images, truth, condition, landmarks)
        frames = moved if condition in FRAMED_AFRESH else truth
        results = [run_fkp(det, shown, moved, "gt", frame_points=frames)]
        if dlib:
            results += run_dlib(shown, moved, ["gt"], det.transform.margin, frame_points=frames)
        for method, result in zip(methods, results):
            summary = summarise(result, moved, landmarks=landmarks)
            methods[method][condition] = {**summary, "predicted": result.predicted}
        examples.append((shown[0], moved[0], results[0].predicted[0], condition))
    widths = np.array([image.shape[1] for image in images], dtype=np.float64)
    table = {}
    for method, rows in methods.items():
        clean = rows["clean"]["nme"]
        back = mirror_points(rows["mirrored"]["predicted"], widths, landmarks.flip_index)
        gap = np.linalg.norm(back - rows["clean"]["predicted"], axis=-1).mean(axis=-1)
        consistency = gap / interocular(truth, landmarks.nme_points)
        table[method] = {
            **{
                c: {"nme": r["nme"], "fr_0.10": r["fr_0.10"], "ratio": r["nme"] / clean}
                for c, r in rows.items()
            },  # fmt: skip
            "mirror_consistency": float(consistency.mean()),
        }
    save_image(out / "robustness.png", framed_grid(examples, det.transform.margin, landmarks))
    log.info(f"\nrobustness suite: {len(truth)} faces, gt box from the clean points\n")
    names = list(table)
    log.info(
        "| condition | " + " | ".join(f"{m} NME | {m} FR@0.10 | {m} / clean" for m in names) + " |"
    )
    log.info("| --- |" + " --- | --- | --- |" * len(names))
    for condition in CONDITIONS:
        rows = [table[m][condition] for m in names]
        cells = [
            f"{100 * r['nme']:.2f}% | {100 * r['fr_0.10']:.2f}% | {r['ratio']:.2f}x" for r in rows
        ]
        log.info(f"| {condition} | " + " | ".join(cells) + " |")
    cells = [f"{100 * table[m]['mirror_consistency']:.2f}% | | " for m in names]
    log.info("| mirror consistency | " + " | ".join(cells) + " |")
    return table


def evaluate(cfg: DictConfig) -> dict:
    validate(cfg, EVAL_RULES)
    out = Path(cfg.paths.output_dir)
    ckpt = resolve_checkpoint(cfg.get("ckpt_path"), Path(cfg.paths.log_dir), "newest")
    log.info(f"checkpoint: {ckpt}")
    ensure_writable(out, "hydra.run.dir=<folder>")
    torch.set_num_threads(cfg.threads)
    det = FaceKeypointDetector.from_checkpoint(
        ckpt,
        detector=build_detector(cfg.detector),
        flip_test=cfg.flip_test,
        refine=cfg.refine,
        runtime="torch",  # timings per face compare with the PyTorch column of docs/results.md
    )
    if cfg.dlib and det.transform.landmarks.num_points != 68:  # dlib's model: iBUG 68 only
        raise FkpError(
            f"dlib=true compares with dlib's 68-point predictor, but this model finds "
            f"{det.transform.landmarks.num_points} points ({det.transform.landmarks.name}); "
            "set dlib=false."
        )
    data_config = det.model.module.hparams["data_config"]
    if cfg.precision != "float32":  # the network as export.py precision=... writes it
        calibration = None
        if cfg.precision == "int8":
            calibration = calibration_inputs(data_config, det.transform, cfg.data_dir)
        det.model = onnx_runtime_model(
            det.model.module, det.transform, cfg.threads, cfg.precision, calibration
        )
    names, truth, images = load_faces(cfg, data_config)
    if cfg.suite is not None:
        if cfg.suite != "robustness":
            raise FkpError(f"suite={cfg.suite} is unknown; use suite=robustness or suite=null.")
        table = robustness(det, images, truth, cfg.dlib, out)
        summary = {"checkpoint": str(ckpt), "faces": len(names), "split": cfg.csv or cfg.split,
                   "robustness": table}  # fmt: skip
        write_text(out / "robustness.json", json.dumps(summary, indent=2) + "\n")
        log.info(f"wrote {out}")
        return summary
    results = [run_fkp(det, images, truth, p) for p in cfg.protocols]
    if cfg.dlib:
        from fkp.evaluation.dlib_baseline import run_dlib

        results += run_dlib(images, truth, cfg.protocols, det.transform.margin)
    landmarks = det.transform.landmarks
    metrics = {r.name: summarise(r, truth, landmarks=landmarks) for r in results}
    summary = {
        "checkpoint": str(ckpt),
        "faces": len(names),
        "split": cfg.csv or cfg.split,
        **metrics,
    }
    write_text(out / "metrics.json", json.dumps(summary, indent=2) + "\n")
    plot_ced(results, out / "ced.png")
    if cfg.worst:
        grid = worst_grid(images, truth, results[0], cfg.worst, det.transform.margin, landmarks)
        save_image(out / "worst.png", grid)
    log.info(f"\n{len(names)} faces, {cfg.csv or cfg.split} split, 1 CPU thread\n")
    log.info("| method | " + " | ".join(COLUMNS) + " |")
    log.info("| --- |" + " --- |" * len(COLUMNS))
    for name, m in metrics.items():
        cells = [_cell(c, m[c]) for c in COLUMNS]
        log.info(f"| {name} | " + " | ".join(cells) + " |")
    regions = [k for k in next(iter(metrics.values())) if k[4:] in landmarks.regions]
    for name, m in metrics.items():
        per_region = ", ".join(f"{k[4:]} {100 * m[k]:.2f}%" for k in regions)
        log.info(f"per-region NME, {name}: {per_region}")
    log.info(f"wrote {out}")
    return summary


@one_line_errors("eval")
@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    with reported_as_one_line():
        evaluate(cfg)
