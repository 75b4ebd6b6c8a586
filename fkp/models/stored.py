"""A trained network brought back from its checkpoint, for inference: weights and plain
settings, without Lightning (prediction, evaluation, export and the demo load checkpoints this
way and so start seconds sooner; training restores the LightningModule, `KeypointModule`).

A checkpoint is a file a user passes in, so it is loaded with torch's weights-only unpickler
(tensors, numbers, strings, lists and dicts; no classes, no calls) and its settings are used
as plain values. Anything a checkpoint names (a network, a transform) is looked up in fkp's
registries, never imported.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from fkp.errors import FkpError
from fkp.landmarks import LandmarkSet, landmark_set
from fkp.models.backbones import KeypointNet, build_network, upgrade_state_dict
from fkp.plain import MAX_VALUES, check_plain_data


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded weights-only on the CPU.

    Empty, truncated or foreign files, and files holding code (pickled objects other than
    tensors and plain containers), raise one FkpError each.
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "no such file"
        raise FkpError(f"{path}: {what}; pass a .ckpt written by train.py or export.py.")
    if path.stat().st_size == 0:
        raise FkpError(f"{path}: the file is empty (a save was interrupted); use another one.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" in str(e):  # the file names a class or function to call
            raise FkpError(
                f"{path}: holds Python objects, not only weights and settings, so fkp will not "
                "load it (a checkpoint must be data); use one written by fkp's train.py."
            ) from None
        raise FkpError(
            f"{path}: not an fkp checkpoint (not a readable checkpoint file); pass a .ckpt "
            "from outputs/<task>/<run>/checkpoints/."
        ) from None
    except (EOFError, RuntimeError, OSError, ValueError) as e:
        raise FkpError(
            f"{path}: not a readable checkpoint (truncated or not a checkpoint: "
            f"{type(e).__name__}); use another one, e.g. the run's epoch_*.ckpt."
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise FkpError(f"{path}: not an fkp checkpoint (no model weights); check the path.")
    check_plain_data(checkpoint, str(path), skip=("state_dict",))
    if len(checkpoint["state_dict"]) > MAX_VALUES or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor)
        for k, v in checkpoint["state_dict"].items()
    ):
        raise FkpError(f"{path}: its weights are not named tensors; use another checkpoint.")
    settings = checkpoint.get("hyper_parameters")
    if not isinstance(settings, dict) or not isinstance(settings.get("network"), str):
        raise FkpError(f"{path}: not an fkp checkpoint (no model settings); check the path.")
    return checkpoint


def load_weights(model: torch.nn.Module, state_dict: dict, source: str | Path) -> None:
    """Copy a checkpoint's weights into the model; a mismatch is one whole sentence."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        if len(detail) > 200:
            detail = detail[:200].rsplit(" ", 1)[0] + " ..."
        raise FkpError(
            f"{source}: its weights do not fit the model ({detail}); use the model settings "
            "it was trained with."
        ) from None


# The hyperparameters a checkpoint may set (the network and its input; the rest is training).
SETTINGS = ("network", "grayscale", "image_size", "network_kwargs", "head", "landmarks",
             "monitor", "data_config")  # fmt: skip


# A network is built from its settings before its weights are read, so a crafted checkpoint
# could ask for one too large to build: every number in them is bounded.
MAX_NETWORK_SETTING = 4096


def check_settings(settings: dict[str, Any], path: str | Path) -> None:
    size = settings.get("image_size")
    if type(size) is not int or not 16 <= size <= 1024:
        raise FkpError(f"{path}: its image_size={str(size)[:40]} is out of range (16-1024).")

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                walk(child, f"{where}.{key}")
        elif isinstance(value, list | tuple):
            for i, child in enumerate(value):
                walk(child, f"{where}[{i}]")
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and not (math.isfinite(value) and abs(value) <= MAX_NETWORK_SETTING)
        ):
            raise FkpError(
                f"{path}: its {where}={value} is out of range (at most "
                f"{MAX_NETWORK_SETTING}); use a checkpoint written by fkp."
            )

    for key in ("network_kwargs", "head"):
        walk(settings.get(key), key)


def stored_settings(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The network settings of a checkpoint `read_checkpoint` returned, bounded, with a stored
    landmark set resolved to plain data (a name may only be a shipped set)."""
    settings = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items()
                if k in SETTINGS}  # fmt: skip
    settings.update(pretrained=False, weights=None)
    check_settings(settings, path)
    if settings.get("landmarks") is not None:
        marks = landmark_set(settings["landmarks"], f"{path} landmarks", files=False)
        settings["landmarks"] = marks.to_dict()
    return settings


def keypoint_network(
    landmarks: LandmarkSet,
    network: str = "custom_cnn",
    grayscale: bool = True,
    image_size: int = 224,
    network_kwargs: dict[str, Any] | None = None,
    head: dict[str, Any] | None = None,
    pretrained: bool = False,
    weights: str | None = None,
) -> KeypointNet:
    """The network a model's plain settings describe: one construction for training
    (`KeypointModule`) and for inference (`TrainedNetwork`), so both read the same weights."""
    return build_network(
        network,
        1 if grayscale else 3,
        image_size,
        pretrained,
        weights,
        head=dict(head) if head else None,
        num_points=landmarks.num_points,
        **(network_kwargs or {}),
    )


class Settings(dict):
    """A checkpoint's settings, read as `settings.network` or `settings["network"]`, as a
    LightningModule's hparams are."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class TrainedNetwork(nn.Module):
    """A trained keypoint network and its settings: images (B, C, S, S) in, keypoints
    (B, K, 2) in [-1, 1] out, decoded by its head. What inference needs of a checkpoint
    (`net`, `landmarks`, `hparams` with the data settings it was trained with), and nothing
    of training."""

    def __init__(self, landmarks: dict[str, Any] | None = None, monitor: str | None = None,
                 data_config: dict[str, Any] | None = None, **network: Any) -> None:  # fmt: skip
        super().__init__()
        self.hparams = Settings(network, landmarks=landmarks, monitor=monitor,
                                data_config=data_config)  # fmt: skip
        self.landmarks = landmark_set(landmarks, "model.landmarks")
        self.net = keypoint_network(self.landmarks, **network)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    @classmethod
    def restore(cls, path: str | Path, map_location: str | torch.device = "cpu") -> TrainedNetwork:
        """The network of an fkp checkpoint, ready for evaluation; a file that is not one is
        one sentence."""
        return restored(cls, path, map_location, weights="net.")


M = TypeVar("M", bound=nn.Module)


def restored(
    cls: type[M], path: str | Path, map_location: str | torch.device = "cpu", weights: str = ""
) -> M:
    """`cls` built from a checkpoint's settings, holding its weights (those whose names start
    with `weights`), in eval mode: `TrainedNetwork` for inference, `KeypointModule` for
    Lightning. A file that is not an fkp checkpoint is one sentence."""
    checkpoint = read_checkpoint(path)
    settings = stored_settings(checkpoint, path)
    try:
        model = cls(**settings)
    except TypeError as e:
        raise FkpError(f"{path}: unusable model settings ({e}); use another checkpoint.") from None
    state = {k: v for k, v in upgrade_state_dict(checkpoint["state_dict"]).items()
             if k.startswith(weights)}  # fmt: skip
    load_weights(model, state, path)
    return model.to(map_location).eval()
