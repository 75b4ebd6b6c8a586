"""Evaluation of a keypoint predictor on a labelled set, under two box protocols.

- gt: each face framed from its labelled points with the training margin, as training crops
  are (the usual protocol of landmark benchmarks);
- detector: end to end as predict.py runs, from the face detector's box; a face the detector
  misses counts as a failure (NME infinite) and is reported in the miss rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from matplotlib.figure import Figure

from fkp.evaluation.metrics import ced_auc, failure_rate, per_image_nme
from fkp.geometry import (
    apply_affine,
    crop_frame,
    frame_of_points,
    interocular,
    invert,
    points_extent,
)
from fkp.landmarks import LandmarkSet, landmark_set
from fkp.viz import make_grid


@dataclass
class Result:
    """Predictions of one method under one protocol. predicted: (N, K, 2) pixels, NaN where
    the detector found no face; seconds: time spent on keypoints per face, detection apart;
    image_seconds: time spent on whole images (detection, framing, keypoints, refinement)."""

    name: str
    predicted: np.ndarray
    faces_timed: int = 0
    seconds: float = 0.0
    image_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def ms_per_face(self) -> float:
        return 1e3 * self.seconds / max(1, self.faces_timed)


def match_face(faces: Sequence[np.ndarray], truth: np.ndarray) -> np.ndarray | None:
    """The predicted (K, 2) face nearest the labelled one, if within half its extent."""
    if not len(faces):
        return None
    cx, cy, extent = points_extent(truth)
    distances = [np.linalg.norm(points_extent(f)[:2] - (cx, cy)) for f in faces]
    best = int(np.argmin(distances))
    return faces[best] if distances[best] < extent / 2 else None


def summarise(result: Result, truth: np.ndarray, thresholds=(0.08, 0.10),
              landmarks: LandmarkSet | None = None) -> dict[str, float]:  # fmt: skip
    """NME (mean, median; detected faces), FR and AUC (misses count as failures), per-region
    NME (the landmark set's regions), mean point error in pixels, miss rate, ms per face."""
    landmarks = landmark_set(landmarks)
    found = ~np.isnan(result.predicted).any(axis=(1, 2))
    pred, gt = torch.from_numpy(result.predicted[found]), torch.from_numpy(truth[found])
    nme = torch.full((len(truth),), float("inf"), dtype=torch.float64)
    nme[torch.from_numpy(found)] = per_image_nme(pred.double(), gt.double(), landmarks.nme_points)
    out = {
        "nme": float(nme[found].mean()),
        "nme_median": float(nme[found].median()),
        "mpe_px": float((pred - gt).norm(dim=-1).mean()),
        "miss_rate": float(1 - found.mean()),
        "ms_per_face": result.ms_per_face(),
        "ms_per_image": 1e3 * result.image_seconds / len(truth),
        "faces": int(found.sum()),
    }
    for t in thresholds:
        out[f"fr_{t:.2f}"] = float(failure_rate(nme, t))
        out[f"auc_{t:.2f}"] = float(ced_auc(nme, t))
    normaliser = interocular(gt, landmarks.nme_points)
    for region, (a, b) in landmarks.regions.items():
        errors = (pred[:, a:b] - gt[:, a:b]).norm(dim=-1).mean(dim=-1) / normaliser
        out[f"nme_{region}"] = float(errors.mean())
    result.extra["nme"] = nme.numpy()
    return out


def plot_ced(results: Sequence[Result], path, limit: float = 0.15) -> None:
    """Cumulative error distribution: fraction of images with NME at most x."""
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.subplots()
    xs = np.linspace(0, limit, 301)
    for result in results:
        nme = result.extra["nme"]
        curve = (nme[None, :] <= xs[:, None]).mean(axis=1)
        auc = float(ced_auc(torch.from_numpy(nme), 0.10))
        ax.plot(xs, curve, label=f"{result.name} (AUC@0.10 {auc:.3f})")
    ax.set_xlabel("NME (inter-ocular)")
    ax.set_ylabel("fraction of images")
    ax.set_xlim(0, limit)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def worst_grid(
    images: Sequence[np.ndarray],
    truth: np.ndarray,
    result: Result,
    count: int,
    margin: float,
    landmarks: LandmarkSet | None = None,
) -> np.ndarray:
    """The `count` worst faces (ground-truth framing), prediction over truth."""
    nme = np.nan_to_num(result.extra["nme"], posinf=1e9)
    order = np.argsort(-nme)[:count]
    examples = [(images[i], truth[i], result.predicted[i],
                 f"NME {nme[i]:.3f}" if nme[i] < 1e9 else "missed") for i in order]  # fmt: skip
    return framed_grid(examples, margin, landmarks)


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def moving_clip(
    image: np.ndarray, frames: int = 120, size: tuple[int, int] = (640, 480), seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """A video of a photo moving with known motion, to measure tracking without labels.

    Each frame is the photo under a similarity transform (a slow drift and sway, a little
    zoom and tilt) fitted into `size` (W, H). Returns the RGB frames and their (frames, 2, 3)
    affines, photo -> frame pixels, so points found in a frame map back to the photo exactly.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    fit = min(w / image.shape[1], h / image.shape[0]) * 0.8
    phase = rng.uniform(0, 2 * np.pi, 4)
    t = np.arange(frames) / 25.0  # seconds at 25 fps
    out, affines = [], []
    for k in range(frames):
        angle = 6 * np.sin(0.7 * t[k] + phase[0])
        scale = fit * (1 + 0.1 * np.sin(0.5 * t[k] + phase[1]))
        cx = w / 2 + 0.08 * w * np.sin(0.9 * t[k] + phase[2])
        cy = h / 2 + 0.06 * h * np.sin(1.1 * t[k] + phase[3])
        affine = cv2.getRotationMatrix2D(((image.shape[1] - 1) / 2, (image.shape[0] - 1) / 2),
                                         angle, scale)  # fmt: skip
        affine[:, 2] += (cx - (image.shape[1] - 1) / 2, cy - (image.shape[0] - 1) / 2)
        out.append(cv2.warpAffine(image, affine, (w, h), flags=cv2.INTER_LINEAR))
        affines.append(affine)
    return out, np.stack(affines)


def steadiness(points: np.ndarray, affines: np.ndarray,
               nme_points: tuple[int, int] | None = None) -> float:  # fmt: skip
    """Jitter of one face's points over a clip with known motion: each frame's points are
    mapped back to the photo (undoing the motion), and the mean distance of each point from
    its own mean position is divided by the inter-ocular distance of the mean shape.

    points: (frames, K, 2) in frame pixels (NaN where the face was not found); affines:
    (frames, 2, 3) photo -> frame. Lower is steadier; 0 is perfectly still.
    """
    back = []
    for p, a in zip(points, affines):
        if np.isnan(p).any():
            continue
        back.append(apply_affine(invert(a), p))
    back = np.stack(back)
    mean = back.mean(axis=0)
    nme_points = landmark_set(None).nme_points if nme_points is None else nme_points
    normaliser = interocular(mean, nme_points)
    return float(np.linalg.norm(back - mean, axis=-1).mean() / normaliser)


def framed_grid(examples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, str]],
                margin: float, landmarks: LandmarkSet | None = None) -> np.ndarray:  # fmt: skip
    """Faces framed from their labelled points: (image, truth, prediction, title) -> a grid of
    crops, prediction in magenta over truth in green (a NaN prediction, a missed face, is not
    drawn)."""
    crops, gt_points, pred_points, titles = [], [], [], []
    for image, truth, predicted, title in examples:
        crop, affine = crop_frame(image, frame_of_points(truth, margin), 224)
        crops.append(crop)
        gt_points.append(apply_affine(affine, truth))
        missed = np.isnan(predicted).any()
        pred_points.append(
            np.full_like(truth, -100.0) if missed else apply_affine(affine, predicted)
        )
        titles.append(title)
    return make_grid(crops, gt_points, pred_points, titles=titles, landmarks=landmarks)
