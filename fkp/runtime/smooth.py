"""Temporal smoothing of keypoints across video frames."""

from __future__ import annotations

import math

import numpy as np


class OneEuroFilter:
    """The One Euro filter (Casiez et al., CHI 2012): strong smoothing while points stay
    still (no jitter), little while they move fast (no lag).

    min_cutoff: Hz, lower = smoother at rest; beta: how fast the cutoff rises with speed.
    """

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.05,
                 d_cutoff: float = 1.0) -> None:  # fmt: skip
        self.rate, self.min_cutoff, self.beta, self.d_cutoff = fps, min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.rate)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: any array (say (68, 2) pixels) of this frame -> its smoothed value."""
        x = np.asarray(x, dtype=np.float64)
        if self.value is None or self.value.shape != x.shape:
            self.value, self.speed = x.copy(), np.zeros_like(x)
            return x
        speed = (x - self.value) * self.rate
        a_d = self._alpha(self.d_cutoff)
        self.speed = a_d * speed + (1 - a_d) * self.speed
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.speed))
        self.value = a * x + (1 - a) * self.value
        return self.value.copy()


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The (2, 3) similarity (rotation, scale, shift) moving src points onto dst, least squares
    (Umeyama). src, dst: (K, 2)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    u, sigma, vt = np.linalg.svd(d.T @ s)
    sign = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, sign]) @ vt
    scale = (sigma * [1.0, sign]).sum() / max((s**2).sum(), 1e-12)
    matrix = scale * rotation
    return np.hstack([matrix, (mu_d - matrix @ mu_s)[:, None]])


class ShapeFilter:
    """Smoothing without lag for points that move together, such as a face's 68 keypoints.

    A face's motion in video is mostly rigid (it moves, turns in the image plane, comes
    closer); a per-point low-pass filter lags behind that motion. Here each frame's points are
    fitted by a similarity transform to the smoothed shape, which follows the motion at once;
    only what is left, the shape in the face's own frame (expression, and the model's jitter),
    is smoothed, by a One Euro filter, so the mouth still opens without delay when it moves
    fast.
    """

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.05) -> None:
        self.shape = OneEuroFilter(fps, min_cutoff, beta)
        self.reference: np.ndarray | None = None

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """points: (K, 2) pixels of this frame -> smoothed (K, 2)."""
        points = np.asarray(points, dtype=np.float64)
        if self.reference is None:
            self.reference = self.shape(points)
            return points
        to_frame = _similarity(self.reference, points)
        matrix, shift = to_frame[:, :2], to_frame[:, 2]
        in_shape = (points - shift) @ np.linalg.inv(matrix).T  # this frame, undone of motion
        self.reference = self.shape(in_shape)
        return self.reference @ matrix.T + shift
