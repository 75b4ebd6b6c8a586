"""Keypoint regression losses on normalised coordinates (input frame mapped to [-1, 1])."""

from __future__ import annotations

import math

import torch
from torch import nn


class WingLoss(nn.Module):
    """Wing loss (Feng et al., CVPR 2018): log-shaped for small errors, L1 for large ones.

    It keeps pulling on the small and medium errors that dominate NME, where MSE goes flat.
    width and curvature are in the units of the targets; with targets in [-1, 1] an input
    pixel is 2 / image_size, so the defaults (0.05, 0.01) put the log region within a few
    pixels of a 128 px input.
    """

    def __init__(self, width: float = 0.05, curvature: float = 0.01) -> None:
        super().__init__()
        self.width, self.curvature = width, curvature
        self.offset = width - width * math.log1p(width / curvature)

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        error = (predicted - target).abs()
        small = self.width * torch.log1p(error / self.curvature)
        return torch.where(error < self.width, small, error - self.offset).mean()
