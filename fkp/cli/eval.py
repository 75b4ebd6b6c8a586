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

from fkp.config import EVAL_RULES, validate
from fkp.data.datamodule import FaceKeypointsDataModule
from fkp.data.io import (
    check_extent,
    check_images_exist,
    check_points_in_images,
    decode_image,
    read_keypoints_csv,
)
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
from fkp.landmarks import landmark_set
from fkp.runtime.detect import build_detector
from fkp.runtime.predictor import FaceKeypointDetector, resolve_checkpoint
from fkp.viz import save_image

# The data settings that say which files a checkpoint's splits come from, and how to read them.
DATA_FILES = ("format", "train_csv", "test_csv", "train_images", "test_images", "test_subset",
              "person_pattern")  # fmt: skip
COLUMNS = ["nme", "nme_median", "fr_0.10", "auc_0.10", "fr_0.08", "mpe_px", "miss_rate",
           "ms_per_face", "ms_per_image"]  # fmt: skip

log = logging.getLogger("fkp.eval")


def load_faces(
    cfg: DictConfig, data_config: dict
) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """Names, labelled keypoints (N, K, 2) and RGB images of the faces to evaluate, K from
    the landmark set the model was trained with."""
    num_points = landmark_set(data_config.get("landmarks")).num_points
    if cfg.csv:
        if cfg.get("people", "all") != "all":
            raise FkpError("people= picks test faces by person; drop it, or use split=test.")
        table = read_keypoints_csv(cfg.csv, num_points)
        folder = Path(cfg.images) if cfg.images else Path(cfg.csv).parent
    else:
        if cfg.split not in ("test", "val", "train"):
            raise FkpError(f"split={cfg.split} is unknown; use test, val or train.")
        split_settings = stored_split(data_config, needed=cfg.split != "test")
        use_test = cfg.split == "test" or (
            cfg.split == "val" and split_settings["val_split"] == "test"
        )
        # the files and format the checkpoint was trained with, under this data_dir
        files = stored_files(data_config, cfg)
        if cfg.subset is not None:
            files["test_subset"] = cfg.subset
        split = FaceKeypointsDataModule(
            cfg.data_dir, landmarks=data_config.get("landmarks"), **split_settings, **files
        )
        table, folder = split.read_split("test" if use_test else "train")
        if cfg.split == "val" and not use_test:  # the rows this checkpoint validated on
            table = table.subset(np.flatnonzero(split.val_rows(table.names)))
        if cfg.get("people", "all") != "all":
            table = test_faces_of(table, split, cfg, split_settings)
    if cfg.limit:
        table = table.subset(np.arange(min(cfg.limit, len(table))))
    check_extent(table)
    check_images_exist(table, folder)
    images = [decode_image(folder / n) for n in table.names]
    sizes = np.array([im.shape[1::-1] for im in images], dtype=np.float32).reshape(-1, 2)
    check_points_in_images(table, sizes)
    return table.names, table.keypoints, images


def test_faces_of(table, split: FaceKeypointsDataModule, cfg: DictConfig, settings: dict):
    """The test faces of the people a person-split model never trained on (its validation
    people: people=held_out), or of the people it trained on (people=seen). Every test person
    of YouTube Faces also appears in its training CSV, so whole-split figures flatter a model."""
    if cfg.split != "test" or settings["val_split"] != "person":
        raise FkpError(
            f"people={cfg.people} needs split=test and a model trained with a person split "
            "(data.val_split=person), whose validation people it never trained on; use people=all."
        )
    training, _ = split.read_split("train")
    held = {split.person(n) for n in np.asarray(training.names)[split.val_rows(training.names)]}
    keep = [(split.person(n) in held) == (cfg.people == "held_out") for n in table.names]
    if not any(keep):
        raise FkpError(f"people={cfg.people}: no test face qualifies; use people=all.")
    return table.subset(np.flatnonzero(keep))


def stored_split(data_config: dict, needed: bool) -> dict:
    """How the checkpoint split its training rows into train and val (val_split, val_fraction,
    seed), checked as data; a setting it lacks is one line when the split needs it."""
    kinds = {"val_split": str, "val_fraction": float, "seed": int}
    defaults = {"val_split": "person", "val_fraction": 0.1, "seed": 42}
    out = {}
    for key, kind in kinds.items():
        value = data_config.get(key)
        ok = isinstance(value, kind) if kind is not float else isinstance(value, int | float)
        if ok and not isinstance(value, bool):
            out[key] = value
        elif needed:
            raise FkpError(
                f"ckpt_path: its data settings lack a usable {key} ({str(value)[:40]}), so its "
                "validation rows cannot be found; evaluate split=test or csv=<file> instead."
            )
        else:
            out[key] = defaults[key]
    return out


def stored_files(data_config: dict, cfg: DictConfig) -> dict:
    """The data files a checkpoint was trained with, as names under data_dir: plain relative
    names only (a stored name may not point elsewhere on disk). A stored person_pattern is a
    regex fkp does not run unless the user passes the same one (person_pattern=...); only
    split=val needs it."""
    files = {k: data_config[k] for k in DATA_FILES if data_config.get(k) is not None}
    for key in ("train_csv", "test_csv", "train_images", "test_images"):
        names = files.get(key, [])
        for name in names if isinstance(names, list) else [names]:
            if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
                raise FkpError(
                    f"ckpt_path: its data setting {key}={str(name)[:80]!r} is not a plain name "
                    "under data_dir; evaluate csv=<file> images=<folder> instead."
                )
    for key, kind in (("format", str), ("test_subset", str)):
        if key in files and not isinstance(files[key], kind):
            raise FkpError(f"ckpt_path: its data setting {key} is not readable.")
    stored = files.pop("person_pattern", None)
    if stored is not None and cfg.split == "val":  # only the val rows depend on it
        if stored != cfg.get("person_pattern"):
            raise FkpError(
                f"ckpt_path: it was trained with data.person_pattern={str(stored)[:80]!r}; fkp "
                "does not run a pattern read from a checkpoint: pass the same "
                "person_pattern=... to eval.py to use it, or evaluate split=test."
            )
        files["person_pattern"] = stored
    return files


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
    names, truth, images = load_faces(cfg, det.model.module.hparams.data_config)
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    with reported_as_one_line():
        evaluate(cfg)
