"""Keypoint heads: the part of a network after the backbone's feature map.

A head owns three things, so the LightningModule, the export and the flip test need not know
which one they hold (the pattern of mmpose's heads):
- `forward(features)`: the raw outputs (a tensor or a tuple of tensors);
- `decode(raw)`: keypoints (B, K, 2) in [-1, 1] of the input, in float32;
- `loss(raw, target, coord_loss)`: its training loss against target keypoints (B, K, 2);
  `coord_loss` is the configured `loss` group (MSE, smooth L1, Wing), used by the heads that
  compare coordinates.
Targets are coded by a codec (`fkp.models.codecs`) the head is given: the class names its
codec's kind (`codec = "simcc"`, or None), `build_head` makes it for the backbone's feature map
and passes it in. `uses_coord_loss` says whether the configured `loss` means anything to it.

Add a head: a class with those three methods and the constructor
`(in_channels, size, num_points, codec, **settings)`, in a file in fkp/models/ with
`@HEADS.register("name")`, and a YAML file in fkp/conf/model/head/ naming it (docs/models.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fkp.errors import FkpError
from fkp.models.codecs import CODECS, HeatmapCoding, PixelInPixelCoding, SimCCCoding
from fkp.registry import Registry, accepted

HEADS: Registry = Registry("head", "model.head.name", "fkp.models")
CoordLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def build_head(
    name: str, in_channels: int, size: tuple[int, int], num_points: int, image_size: int, **settings
) -> nn.Module:
    """The head called `name` for a backbone whose feature map is (in_channels, *size), with
    its codec made for that map and the input size. Each setting goes to the head's and/or the
    codec's constructor, whichever names it; one no signature names is one line."""
    cls = HEADS.get(name)
    own = accepted(cls, skip=4) or []  # after in_channels, size, num_points, codec
    codec, coded = None, []
    if cls.codec is not None:
        make = CODECS.get(cls.codec).for_features
        coded = accepted(make, skip=2) or []  # after size, image_size
        codec = make(size, image_size, **{k: v for k, v in settings.items() if k in coded})
    unknown = [k for k in settings if k not in own and k not in coded]
    if unknown:
        takes = ", ".join(sorted(set(own) | set(coded))) or "no settings"
        raise FkpError(
            f"model/head={name}: it takes no setting {', '.join(unknown)}; it takes {takes}."
        )
    return cls(in_channels, size, num_points, codec, **{k: v for k, v in settings.items()
                                                        if k in own})  # fmt: skip


def _kl_divergence(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over (B, K) of KL(target || softmax(logits)): the cross-entropy less the targets'
    own entropy, so a perfect prediction scores 0 whatever the smoothing."""
    own = (target * target.clamp_min(1e-12).log()).sum(dim=-1)
    return (own - (target * torch.log_softmax(logits.float(), dim=-1)).sum(dim=-1)).mean()


@HEADS.register("regression")
class RegressionHead(nn.Sequential):
    """Direct coordinate regression: fully connected layers from the flattened feature map
    (or its global average, `pool`) to 2K numbers.

    hidden: widths of the hidden layers, each Linear -> ReLU -> Dropout(dropout);
    input_dropout: dropout on the flattened features. Each backbone gives its own layout
    (`KeypointNet.regression_layout`), which settings given here override.
    """

    codec = None
    uses_coord_loss = True

    def __init__(
        self,
        in_channels: int,
        size: tuple[int, int],
        num_points: int,
        codec: None = None,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        pool: bool = False,
    ) -> None:
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1)] if pool else []
        layers.append(nn.Flatten())
        if input_dropout:
            layers.append(nn.Dropout(input_dropout))
        prev = in_channels * (1 if pool else size[0] * size[1])
        for width in hidden:
            layers += [nn.Linear(prev, width), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            prev = width
        layers.append(nn.Linear(prev, 2 * num_points))
        super().__init__(*layers)
        self.num_points = num_points

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float().view(-1, self.num_points, 2)

    def loss(self, raw: torch.Tensor, target: torch.Tensor, coord_loss: CoordLoss) -> torch.Tensor:
        return coord_loss(self.decode(raw), target)


@HEADS.register("integral")
class IntegralHead(nn.Module):
    """Integral regression: a heatmap per point (after `upsample` 2x deconvolution stages of
    `channels` channels), decoded by soft-argmax and trained on the decoded coordinates with
    the configured coordinate loss; heatmap_weight > 0 adds a DSNT-style divergence from
    Gaussian target maps (sigma in cells)."""

    codec = "heatmap"
    uses_coord_loss = True

    def __init__(
        self,
        in_channels: int,
        size: tuple[int, int],
        num_points: int,
        codec: HeatmapCoding,
        upsample: int = 0,
        channels: int = 64,
        heatmap_weight: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for _ in range(upsample):
            layers += [
                nn.ConvTranspose2d(prev, channels, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
            prev = channels
        layers.append(nn.Conv2d(prev, num_points, 1))
        self.layers = nn.Sequential(*layers)
        self.coding = codec
        self.heatmap_weight = heatmap_weight

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return self.coding.decode(raw)

    def loss(self, raw: torch.Tensor, target: torch.Tensor, coord_loss: CoordLoss) -> torch.Tensor:
        loss = coord_loss(self.decode(raw), target)
        if self.heatmap_weight:
            b, k = raw.shape[:2]
            maps = self.coding.encode(target).reshape(b, k, -1)
            loss = loss + self.heatmap_weight * _kl_divergence(raw.reshape(b, k, -1), maps)
        return loss


@HEADS.register("simcc")
class SimCCHead(nn.Module):
    """SimCC as in RTMPose: a 3x3 convolution to one map per point; each point's map,
    flattened, through a shared hidden layer to logits over x bins and over y bins; trained by
    KL divergence from Gaussian-smoothed 1-D targets (sigma in bins), as RTMPose is."""

    codec = "simcc"
    uses_coord_loss = False

    def __init__(
        self,
        in_channels: int,
        size: tuple[int, int],
        num_points: int,
        codec: SimCCCoding,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        bins = codec.bins
        self.conv = nn.Conv2d(in_channels, num_points, 3, padding=1)
        self.mlp = nn.Sequential(nn.Linear(size[0] * size[1], hidden), nn.ReLU(inplace=True))
        self.x_bins = nn.Linear(hidden, bins)
        self.y_bins = nn.Linear(hidden, bins)
        self.coding = codec

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        per_point = self.mlp(self.conv(features).flatten(2))  # (B, K, hidden)
        return self.x_bins(per_point), self.y_bins(per_point)

    def decode(self, raw: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.coding.decode(*raw)

    def loss(self, raw, target: torch.Tensor, coord_loss: CoordLoss) -> torch.Tensor:
        tx, ty = self.coding.encode(target)
        return (_kl_divergence(raw[0], tx) + _kl_divergence(raw[1], ty)) / 2


@HEADS.register("pip")
class PixelInPixelHead(nn.Module):
    """Pixel-in-pixel (PIPNet without its neighbour regression): per point, 1x1 convolutions
    score every feature cell and regress the offset within it; trained by cross-entropy over
    the cells plus `offset_weight` x L1 on the offsets at the labelled cell."""

    codec = "pip"
    uses_coord_loss = False

    def __init__(
        self,
        in_channels: int,
        size: tuple[int, int],
        num_points: int,
        codec: PixelInPixelCoding,
        offset_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_points = num_points
        self.scores = nn.Conv2d(in_channels, num_points, 1)
        self.offsets = nn.Conv2d(in_channels, 2 * num_points, 1)
        self.coding = codec
        self.offset_weight = offset_weight

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = features.shape
        offsets = self.offsets(features).view(b, self.num_points, 2, h, w)
        return self.scores(features), offsets

    def decode(self, raw: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.coding.decode(*raw)

    def loss(self, raw, target: torch.Tensor, coord_loss: CoordLoss) -> torch.Tensor:
        scores, offsets = raw
        cell, target_offsets = self.coding.encode(target)
        b, k = cell.shape
        classify = F.cross_entropy(scores.float().reshape(b * k, -1), cell.reshape(-1))
        at = self.coding.offsets_at(offsets, cell)
        return classify + self.offset_weight * F.l1_loss(at, target_offsets)
