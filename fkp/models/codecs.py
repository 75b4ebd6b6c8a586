"""Target codings: how keypoint labels become a head's training targets, and how its outputs
become keypoints again (the role of mmpose's codecs), one small class per coding.

Keypoints are in the network input's normalised frame: (-1, -1) is the input's top-left corner
and (1, 1) its bottom-right one. A face's points can lie beyond the crop (a turned head, an
augmented zoom), so the codings that work on a grid cover `extent` times the input
(default 1.25: an eighth of the input beyond each border); points further out come back on the
edge of that range. Decoding is always done in float32.

Shapes: B faces, K points, (h, w) a heatmap or feature grid, N bins of a 1-D coding.

Codecs are registered by name (`CODECS`) and given to heads: a head class names its codec
(`codec = "simcc"`), and `fkp.models.heads.build_head` makes one with `for_features(size,
image_size, **settings)` (the backbone's feature-map size and the input size fix its geometry;
the settings are the head config's entries that its signature names).
"""

from __future__ import annotations

import torch

from fkp.registry import Registry

CODECS: Registry = Registry("codec", "codec", "fkp.models")


def _cell_centres(size: int, extent: float, device: torch.device) -> torch.Tensor:
    """(size,) the normalised coordinates of the centres of `size` equal cells over
    [-extent, extent]."""
    return extent * ((torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1)


@CODECS.register("heatmap")
class HeatmapCoding:
    """Integral regression (Sun et al., ECCV 2018; DSNT, Nibali et al. 2018): a heatmap per
    point, turned into a probability map by a softmax; the point is that map's expectation
    (soft-argmax), so the decode is differentiable and sub-cell accurate.

    encode gives the Gaussian target maps a DSNT-style regulariser compares with the
    prediction; sigma is in cells.
    """

    def __init__(self, size: tuple[int, int], extent: float = 1.25, sigma: float = 1.0) -> None:
        self.h, self.w = size
        self.extent, self.sigma = extent, sigma

    @classmethod
    def for_features(
        cls, size: tuple[int, int], image_size: int, upsample: int = 0, extent: float = 1.25,
        sigma: float = 1.0,
    ) -> HeatmapCoding:  # fmt: skip
        """Maps at the feature map's size, doubled `upsample` times."""
        return cls((size[0] * 2**upsample, size[1] * 2**upsample), extent, sigma)

    def encode(self, keypoints: torch.Tensor) -> torch.Tensor:
        """keypoints (B, K, 2) -> target probability maps (B, K, h, w), each summing to 1."""
        xs = _cell_centres(self.w, self.extent, keypoints.device)
        ys = _cell_centres(self.h, self.extent, keypoints.device)
        cell_x, cell_y = 2 * self.extent / self.w, 2 * self.extent / self.h
        kp = keypoints.float().clamp(-self.extent, self.extent)
        gx = torch.exp(-0.5 * ((xs - kp[..., :1]) / (self.sigma * cell_x)) ** 2)  # (B, K, w)
        gy = torch.exp(-0.5 * ((ys - kp[..., 1:]) / (self.sigma * cell_y)) ** 2)  # (B, K, h)
        maps = gy[..., :, None] * gx[..., None, :]
        return maps / maps.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (B, K, h, w) -> keypoints (B, K, 2): the expectation under softmax."""
        b, k, h, w = logits.shape
        prob = torch.softmax(logits.float().reshape(b, k, h * w), dim=-1).reshape(b, k, h, w)
        xs = _cell_centres(w, self.extent, logits.device)
        ys = _cell_centres(h, self.extent, logits.device)
        x = (prob.sum(dim=-2) * xs).sum(dim=-1)
        y = (prob.sum(dim=-1) * ys).sum(dim=-1)
        return torch.stack([x, y], dim=-1)


@CODECS.register("simcc")
class SimCCCoding:
    """SimCC (Li et al., ECCV 2022; RTMPose's heads): x and y each classified over N bins, with
    Gaussian-smoothed 1-D targets (sigma in bins).

    bins = split_ratio x input side x extent: at split_ratio 2 a bin is half an input pixel.
    decode takes the arg-max bin and refines it by the expectation within `window` bins of it,
    which removes most of the bins' rounding without the pull of far-off mass.
    """

    def __init__(
        self, bins: int, extent: float = 1.25, sigma: float = 3.0, window: int = 9
    ) -> None:
        self.bins, self.extent, self.sigma, self.window = bins, extent, sigma, window

    @classmethod
    def for_features(
        cls, size: tuple[int, int], image_size: int, split_ratio: float = 2.0,
        extent: float = 1.25, sigma: float = 3.0, window: int = 9,
    ) -> SimCCCoding:  # fmt: skip
        """split_ratio bins per input pixel over `extent` times the input."""
        return cls(round(image_size * split_ratio * extent), extent, sigma, window)

    def encode(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """keypoints (B, K, 2) -> target distributions over x bins and y bins, (B, K, N) each."""
        centres = _cell_centres(self.bins, self.extent, keypoints.device)
        bin_width = 2 * self.extent / self.bins
        kp = keypoints.float().clamp(-self.extent, self.extent)
        out = []
        for axis in (0, 1):
            g = torch.exp(
                -0.5 * ((centres - kp[..., axis : axis + 1]) / (self.sigma * bin_width)) ** 2
            )
            out.append(g / g.sum(dim=-1, keepdim=True).clamp_min(1e-12))
        return out[0], out[1]

    def decode_axis(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (B, K, N) -> coordinates (B, K)."""
        logits = logits.float()
        centres = _cell_centres(logits.shape[-1], self.extent, logits.device)
        peak = logits.argmax(dim=-1, keepdim=True)  # (B, K, 1)
        index = torch.arange(logits.shape[-1], device=logits.device)
        near = ((index - peak).abs() <= self.window).float()
        weights = torch.softmax(logits, dim=-1) * near
        return (weights * centres).sum(dim=-1) / weights.sum(dim=-1).clamp_min(1e-12)

    def decode(self, x_logits: torch.Tensor, y_logits: torch.Tensor) -> torch.Tensor:
        """(B, K, N) twice -> keypoints (B, K, 2)."""
        return torch.stack([self.decode_axis(x_logits), self.decode_axis(y_logits)], dim=-1)


@CODECS.register("pip")
class PixelInPixelCoding:
    """Pixel-in-pixel (PIPNet, Jin et al., IJCV 2021): the point's cell on the feature grid,
    classified, plus its offset from that cell's centre, regressed, in cell units.

    Points beyond the crop belong to the nearest border cell with an offset above one half,
    so nothing is clamped.
    """

    def __init__(self, size: tuple[int, int]) -> None:
        self.h, self.w = size

    @classmethod
    def for_features(cls, size: tuple[int, int], image_size: int) -> PixelInPixelCoding:
        """One cell per feature-map cell."""
        return cls(size)

    def encode(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """keypoints (B, K, 2) -> the cell index (B, K) (row-major) and offsets (B, K, 2)."""
        kp = keypoints.float()
        gx = (kp[..., 0] + 1) / 2 * self.w  # in cells, 0 .. w across the input
        gy = (kp[..., 1] + 1) / 2 * self.h
        col = gx.floor().clamp(0, self.w - 1)
        row = gy.floor().clamp(0, self.h - 1)
        offsets = torch.stack([gx - col - 0.5, gy - row - 0.5], dim=-1)
        return (row * self.w + col).long(), offsets

    def decode(self, scores: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """scores (B, K, h, w), offsets (B, K, 2, h, w) -> keypoints (B, K, 2)."""
        b, k, h, w = scores.shape
        cell = scores.float().reshape(b, k, h * w).argmax(dim=-1)  # (B, K)
        at = self.offsets_at(offsets, cell)
        col = (cell % w).float()
        row = torch.div(cell, w, rounding_mode="floor").float()
        x = (col + 0.5 + at[..., 0]) / w * 2 - 1
        y = (row + 0.5 + at[..., 1]) / h * 2 - 1
        return torch.stack([x, y], dim=-1)

    @staticmethod
    def offsets_at(offsets: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """offsets (B, K, 2, h, w) read at cell (B, K) -> (B, K, 2)."""
        b, k, _, h, w = offsets.shape
        flat = offsets.float().reshape(b, k, 2, h * w)
        return flat.gather(-1, cell[:, :, None, None].expand(b, k, 2, 1)).squeeze(-1)
