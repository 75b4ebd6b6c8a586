"""A small synthetic data set in the YouTube Faces layout, so training tests run anywhere.

Each image is a drawn face (skin ellipse, brows, eyes, nose, lips) whose 68 labelled points
follow the iBUG markup, at a random position, size and tilt; images are stored the way the
release stores them (PNG with alpha under a .jpg name) or as WebP, so loaders must decode by
content. A network learns the points quickly, so training tests see a falling loss.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def template() -> np.ndarray:
    """(68, 2) iBUG points of a frontal face in a unit box centred on 0 (y down)."""
    t = np.linspace(np.pi, 0, 17)
    jaw = np.stack([0.45 * np.cos(t), 0.05 + 0.45 * np.sin(t)], 1)  # ear to ear, under
    brow = np.stack([np.linspace(-0.38, -0.08, 5), -0.28 - 0.04 * np.sin(np.linspace(0, np.pi, 5))],
                    1)  # fmt: skip
    brows = np.concatenate([brow, brow[::-1] * [-1, 1]])
    bridge = np.stack([np.zeros(4), np.linspace(-0.18, 0.05, 4)], 1)
    nose = np.stack([np.linspace(-0.1, 0.1, 5), [0.1, 0.12, 0.13, 0.12, 0.1]], 1)
    a = np.array([np.pi, 2 * np.pi / 3, np.pi / 3, 0, -np.pi / 3, -2 * np.pi / 3])
    eye = np.stack([0.08 * np.cos(a), -0.04 * np.sin(a)], 1)
    right_eye, left_eye = eye + [-0.2, -0.15], (eye * [-1, 1])[[3, 2, 1, 0, 5, 4]] + [0.2, -0.15]
    b = np.linspace(np.pi, -np.pi, 13)[:12]
    outer = np.stack([0.16 * np.cos(b), 0.26 - 0.06 * np.sin(b)], 1)
    c = np.linspace(np.pi, -np.pi, 9)[:8]
    inner = np.stack([0.11 * np.cos(c), 0.26 - 0.025 * np.sin(c)], 1)
    points = np.concatenate([jaw, brows, bridge, nose, right_eye, left_eye, outer, inner])
    assert points.shape == (68, 2)
    return points


def _resample(polyline: np.ndarray, count: int) -> np.ndarray:
    """count points spaced evenly along the polyline, its ends included."""
    steps = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    along = np.concatenate([[0], np.cumsum(steps)])
    at = np.linspace(0, along[-1], count)
    return np.stack([np.interp(at, along, polyline[:, k]) for k in (0, 1)], 1)


def to_wflw98(p: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG points -> (98, 2) points in WFLW's order (contour resampled to 33, brows
    closed with a lower edge, eyes resampled to 8, pupils at the eye centres)."""
    down = np.array([0.0, 0.03]) * np.ptp(p[:, 1])
    right_brow = np.concatenate([p[17:22], (p[[21, 20, 19, 18]] + p[[20, 19, 18, 17]]) / 2 + down])
    left_brow = np.concatenate([p[22:27], (p[[26, 25, 24, 23]] + p[[25, 24, 23, 22]]) / 2 + down])
    right_eye = np.concatenate(
        [_resample(p[[36, 37, 38, 39]], 5), _resample(p[[39, 40, 41, 36]], 5)[1:4]]
    )
    left_eye = np.concatenate(
        [_resample(p[[42, 43, 44, 45]], 5), _resample(p[[45, 46, 47, 42]], 5)[1:4]]
    )
    pupils = np.stack([p[36:42].mean(axis=0), p[42:48].mean(axis=0)])
    out = np.concatenate([_resample(p[0:17], 33), right_brow, left_brow, p[27:36], right_eye,
                          left_eye, p[48:68], pupils])  # fmt: skip
    assert out.shape == (98, 2)
    return out


def draw_face(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random face image (H, W, 3) RGB uint8 and its (68, 2) keypoints in pixels."""
    h, w = int(rng.integers(90, 140)), int(rng.integers(90, 140))
    size = rng.uniform(0.45, 0.7) * min(h, w)
    angle = np.deg2rad(rng.uniform(-15, 15))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([w / 2, h / 2]) + rng.uniform(-0.1, 0.1, 2) * [w, h]
    points = (template() * size) @ rotation.T + centre
    image = np.full((h, w, 3), rng.integers(20, 90, 3), dtype=np.uint8)
    skin = tuple(int(v) for v in rng.integers(150, 230, 3))
    axes = (int(size * 0.48), int(size * 0.62))
    cv2.ellipse(image, tuple(int(v) for v in centre), axes, float(np.rad2deg(angle)), 0, 360,
                skin, -1, cv2.LINE_AA)  # fmt: skip
    dark = (40, 30, 30)
    for first, last, closed in [(17, 21, False), (22, 26, False), (27, 30, False),
                                (31, 35, False), (36, 41, True), (42, 47, True),
                                (48, 59, True), (60, 67, True)]:  # fmt: skip
        part = np.round(points[first : last + 1]).astype(np.int32)
        cv2.polylines(image, [part], closed, dark, 2, cv2.LINE_AA)
    return image, points.astype(np.float32)


def write_dataset(root: Path, train: int = 48, test: int = 10, seed: int = 0,
                  wflw98: bool = False) -> Path:  # fmt: skip
    """root/ with training_frames_keypoints.csv, training/, test_frames_keypoints.csv, test/.

    Training names are person<k>_<nn>.jpg, 4 frames a person, so the person split works.
    wflw98: label 98 points in WFLW's order instead of iBUG's 68."""
    rng = np.random.default_rng(seed)
    columns = 2 * (98 if wflw98 else 68)
    header = "," + ",".join(str(i) for i in range(columns)) + "\n"
    for csv_name, folder, count in [("training_frames_keypoints.csv", "training", train),
                                    ("test_frames_keypoints.csv", "test", test)]:  # fmt: skip
        (root / folder).mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(count):
            image, points = draw_face(rng)
            name = f"{folder}{i // 4:02d}_{i % 4:02d}.jpg"
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            if i % 2:  # as the release: PNG with alpha, named .jpg
                ok, data = cv2.imencode(".png", cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
            else:  # as the shared copy: lossless WebP, named .jpg
                ok, data = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, 101])
            assert ok
            (root / folder / name).write_bytes(data.tobytes())
            if wflw98:
                points = to_wflw98(points)
            rows.append(name + "," + ",".join(f"{v:.3f}" for v in points.reshape(-1)) + "\n")
        (root / csv_name).write_text(header + "".join(rows))
    return root
