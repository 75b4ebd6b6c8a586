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
