"""Landmark accuracy in original-image pixels, as torchmetrics metrics (synced across processes)."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from fkp.geometry import interocular
from fkp.landmarks import landmark_set


def per_image_nme(
    predicted: torch.Tensor, target: torch.Tensor, nme_points: tuple[int, int] | None = None
) -> torch.Tensor:
    """Mean point error over the distance between the landmark set's two normalising points
    (the outer eye corners for iBUG 68 and WFLW 98, the pupils for COFW 29).

    predicted, target: (N, K, 2) pixels. Returns (N,).
    """
    errors = (predicted - target).norm(dim=-1).mean(dim=-1)
    nme_points = landmark_set(None).nme_points if nme_points is None else nme_points
    return errors / interocular(target, nme_points).clamp_min(1e-6)


def failure_rate(nme: torch.Tensor, threshold: float) -> torch.Tensor:
    """Fraction of images whose NME exceeds the threshold."""
    return (nme > threshold).float().mean()


def ced_auc(nme: torch.Tensor, threshold: float) -> torch.Tensor:
    """Area under the cumulative error distribution up to the threshold, scaled to [0, 1].

    Exact: the CED is a step function, so its integral is the mean of max(0, t - e_i) / t.
    """
    return ((threshold - nme).clamp_min(0) / threshold).mean()


class KeypointMetrics(Metric):
    """NME, failure rate and CED AUC (at 0.08 and 0.10), and mean point error in pixels.

    Per-image NMEs are gathered over the epoch (concatenated across processes), since FR and
    AUC are statistics of that whole distribution.
    """

    full_state_update = False

    def __init__(
        self,
        thresholds: tuple[float, ...] = (0.08, 0.10),
        nme_points: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.thresholds = thresholds
        self.nme_points = tuple(landmark_set(None).nme_points if nme_points is None else nme_points)
        self.add_state("nme", default=[], dist_reduce_fx="cat")
        self.add_state(
            "pixel_error", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("points", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        """predicted, target: (N, K, 2) original-image pixels."""
        predicted, target = predicted.double(), target.double()
        self.nme.append(per_image_nme(predicted, target, self.nme_points))
        self.pixel_error += (predicted - target).norm(dim=-1).sum()
        self.points += target.shape[0] * target.shape[1]

    def compute(self) -> dict[str, torch.Tensor]:
        nme = self.nme if isinstance(self.nme, torch.Tensor) else torch.cat(self.nme)
        out = {"nme": nme.mean(), "mpe_px": self.pixel_error / self.points}
        for t in self.thresholds:
            out[f"fr_{t:.2f}"] = failure_rate(nme, t)
            out[f"auc_{t:.2f}"] = ced_auc(nme, t)
        return {k: v.float() for k, v in out.items()}
