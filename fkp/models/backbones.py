"""Networks that map a face image to K (x, y) keypoints: a backbone and a head, built from
plain hyperparameters.

Each backbone is a `KeypointNet`: it computes a feature map (`forward_features`, as in timm)
and carries its head (`fkp.models.heads`) as `self.head`, so any backbone combines with any head.
Backbones are found by name in `BACKBONES`: a new one is a file in fkp/models/ with
`@BACKBONES.register("name")` on its class, and fkp/conf/model/<name>.yaml (docs/models.md).
`build_network(name, in_channels, image_size, head=..., **kwargs)` is what the LightningModule
calls, so a checkpoint's hyperparameters alone rebuild its network. The ResNets are plain
PyTorch with torchvision's parameter names and shapes, so torchvision's published ImageNet
weights load into them without torchvision installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fkp.errors import FkpError
from fkp.landmarks import landmark_set
from fkp.models.heads import build_head
from fkp.registry import Registry

# name -> a KeypointNet class or factory taking (in_channels, image_size, **settings)
BACKBONES: Registry = Registry("backbone", "model.network", "fkp.models")


class KeypointNet(nn.Module):
    """A backbone with a keypoint head: images (B, C, S, S) -> keypoints (B, K, 2) in [-1, 1].

    The head runs in float32 with autocast off: under 16-bit mixed precision its last layer
    would round a coordinate to a few bits (a point at 453.58 px came back as 453.75).
    """

    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """images (B, C, S, S) -> feature map (B, C', h, w)."""
        raise NotImplementedError

    def regression_layout(self) -> dict[str, Any]:
        """The backbone's own fully connected head, used by `model/head=regression`."""
        return {}

    def forward_head(self, features: torch.Tensor) -> Any:
        with torch.autocast(features.device.type, enabled=False):
            return self.head(features.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.decode(self.forward_head(self.forward_features(x)))


@BACKBONES.register("custom_cnn")
class CustomCNN(KeypointNet):
    """The original write-up's network.

    Four blocks of two 3x3 convolutions (ReLU), each block closed by 2x2 max pooling and batch
    normalisation; its regression head has two hidden fully connected layers with dropout.
    The flattened size follows from the input size, so any `image_size` divisible by 16 works.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 224,
        channels: Sequence[int] = (32, 64, 128, 256),
        hidden: Sequence[int] = (1024, 512),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for width in channels:
            layers += [
                nn.Conv2d(prev, width, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, 2),
                nn.BatchNorm2d(width),
            ]
            prev = width
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(channels)
        if side < 1:
            raise FkpError(
                f"model: data.image_size={image_size} is too small for {len(channels)} pooling "
                f"steps; use at least {2 ** len(channels)}."
            )
        self.hidden, self.dropout = tuple(hidden), dropout

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def regression_layout(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "dropout": self.dropout}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # stride here: "V1.5"
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _downsample(inplanes: int, outplanes: int, stride: int) -> nn.Module | None:
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(
        nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), nn.BatchNorm2d(outplanes)
    )


class ResNet(KeypointNet):
    """torchvision's ResNet layout (same names and shapes) up to layer4 (stride 32); its
    regression head averages the map and has one fully connected layer, like torchvision's
    classifier."""

    def __init__(
        self, block: type[BasicBlock | Bottleneck], layers: Sequence[int], in_channels: int = 3
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stride = 1 if i == 1 else 2
            stage = [block(inplanes, planes, stride)]
            inplanes = planes * block.expansion
            stage += [block(inplanes, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def regression_layout(self) -> dict[str, Any]:
        return {"pool": True}


@BACKBONES.register("fast_net")
class FastNet(KeypointNet):
    """A small residual network for CPU speed: every convolution after the stem runs at half the
    input side or less.

    A stride-2 stem, one BasicBlock per stage (stride 2 from the second stage), then a 1x1
    convolution that thins the last map (stride 16). Its regression head flattens that map:
    keeping where each feature sits (rather than global pooling) is what a coordinate
    regressor needs. With the defaults and that head at 96 px: 1.18M parameters (1.34M at
    112 px), most in the last stage and the head.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 96,
        channels: Sequence[int] = (24, 48, 96, 192),
        blocks: Sequence[int] | None = None,
        head_channels: int = 48,
        hidden: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        blocks = [1] * len(channels) if blocks is None else blocks
        if len(blocks) != len(channels):
            raise FkpError(
                f"model: fast_net has {len(channels)} channels but {len(blocks)} blocks entries; "
                "give one block count per stage."
            )
        side = image_size // 2 ** len(channels)
        if side < 1 or image_size % 2 ** len(channels):
            raise FkpError(
                f"model: data.image_size={image_size} does not fit fast_net's {len(channels)} "
                f"stages; use a multiple of {2 ** len(channels)}."
            )
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, channels[0], 3, 2, 1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        ]
        prev = channels[0]
        for i, (width, count) in enumerate(zip(channels, blocks)):
            for j in range(count):
                layers.append(BasicBlock(prev, width, 2 if i > 0 and j == 0 else 1))
                prev = width
        layers += [
            nn.Conv2d(prev, head_channels, 1, bias=False),
            nn.BatchNorm2d(head_channels),
            nn.ReLU(inplace=True),
        ]
        self.features = nn.Sequential(*layers)
        self.hidden, self.dropout = hidden, dropout

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def regression_layout(self) -> dict[str, Any]:
        return {"hidden": (self.hidden,), "input_dropout": self.dropout}


@BACKBONES.register("resnet18")
def resnet18(in_channels: int, image_size: int) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels)


@BACKBONES.register("resnet34")
def resnet34(in_channels: int, image_size: int) -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3), in_channels)


@BACKBONES.register("resnet50")
def resnet50(in_channels: int, image_size: int) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels)


# torchvision's published ImageNet weights (IMAGENET1K_V1).
PRETRAINED_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}


def load_pretrained(model: ResNet, name: str, weights: str | None = None) -> None:
    """Copy ImageNet weights into the backbone (all but torchvision's classifier `fc`).

    weights: a local .pth file or URL; default the published torchvision checkpoint (cached by
    torch.hub). For grayscale input the first convolution's RGB filters are summed.
    """
    source = weights or PRETRAINED_URLS[name]
    try:
        if Path(source).expanduser().is_file():
            state = torch.load(Path(source).expanduser(), map_location="cpu", weights_only=True)
        else:
            state = torch.hub.load_state_dict_from_url(
                source,
                map_location="cpu",
                progress=True,
                check_hash=weights is None,
                weights_only=True,  # a downloaded file is data: no pickled code runs
            )
    except Exception as e:  # network and file errors come in many types
        raise FkpError(
            f"model: could not load pretrained {name} weights from {source} "
            f"({type(e).__name__}: {e}); pass a local file with model.weights=<file.pth> "
            "or train from scratch with model.pretrained=false."
        ) from None
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    conv1 = state.get("conv1.weight")
    if conv1 is not None and conv1.shape[1] != model.conv1.in_channels:
        state["conv1.weight"] = conv1.sum(dim=1, keepdim=True)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes that do not fit
        missing, unexpected = [str(e).splitlines()[1].strip()], []
    wrong = [k for k in missing if not k.startswith("head.")] + list(unexpected)
    if wrong:
        raise FkpError(
            f"model: {source} does not fit {name} ({len(wrong)} mismatched names, e.g. "
            f"{wrong[0]}); pass torchvision's {name} weights."
        )


def build_network(
    name: str,
    in_channels: int = 1,
    image_size: int = 224,
    pretrained: bool = False,
    weights: str | None = None,
    head: dict[str, Any] | None = None,
    num_points: int | None = None,
    **kwargs,
) -> KeypointNet:
    """The backbone called `name` (see `BACKBONES`) with the head `head` ({"name": ..., and
    that head's settings}; default the backbone's regression head)."""
    num_points = landmark_set(None).num_points if num_points is None else num_points
    net = BACKBONES.build(name, in_channels, image_size, **kwargs)
    if pretrained or weights:
        if name not in PRETRAINED_URLS:
            raise FkpError(f"model.pretrained: no pretrained weights for {name}; use a resnet.")
        load_pretrained(net, name, weights)
    settings = dict(head or {})
    head_name = settings.pop("name", "regression")
    if head_name == "regression":
        settings = {
            **net.regression_layout(),
            **{k: v for k, v in settings.items() if v is not None},
        }
    was_training = net.training
    with torch.no_grad():  # the feature map's shape, for the head
        channels, h, w = (
            net.eval()
            .forward_features(torch.zeros(1, in_channels, image_size, image_size))
            .shape[1:]
        )
    net.train(was_training)
    net.head = build_head(head_name, channels, (h, w), num_points, image_size, **settings)
    return net


def upgrade_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights saved before backbones and heads were split: the ResNets' `fc` is now the
    regression head's last layer (custom_cnn and fast_net kept their names)."""
    return {k.replace("net.fc.", "net.head.2.", 1) if k.startswith("net.fc.") else k: v
            for k, v in state.items()}  # fmt: skip
