"""Exporting a trained model: ONNX (run by `fkp.runtime`, with NumPy, OpenCV and onnxruntime
only) and TorchScript, each with a JSON file of the preprocessing beside it, and the slim
checkpoints fkp ships; `TorchNetwork` puts a PyTorch model behind the runtime's call.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from fkp.errors import FkpError
from fkp.files import atomic_write, atomic_write_all
from fkp.runtime.onnx import OnnxModel
from fkp.runtime.preprocess import (
    OPTIONAL_SETTINGS,
    TRANSFORM_SETTINGS,
    Preprocessing,
    preprocessing_path,
)
from fkp.training.checkpoints import read_checkpoint


def preprocessing_record(data_config: dict, network: str) -> dict:
    """The evaluation preprocessing (framing and normalisation settings, and the evaluation
    transform specs, as the checkpoint stores them) that travels beside an exported model."""
    settings = {k: data_config[k] for k in TRANSFORM_SETTINGS}
    settings.update({k: data_config[k] for k in OPTIONAL_SETTINGS if data_config.get(k)})
    return {
        "network": network,
        "preprocessing": {**settings, "eval_transforms": data_config.get("eval_transforms") or []},
    }


def export_with_preprocessing(
    model: torch.nn.Module,
    transform: Preprocessing,
    path: Path,
    fmt: str,
    setting: str | None = None,
) -> tuple[Path, Path]:
    """Export a KeypointModule and write its preprocessing JSON beside it, both or neither:
    a failure (a full disk) leaves any earlier pair under these names whole."""
    network = export(model, transform, io.BytesIO(), fmt).getvalue()
    record = preprocessing_record(model.hparams.data_config, model.hparams.network)
    text = (json.dumps(record, indent=2) + "\n").encode()
    json_path = preprocessing_path(path)
    atomic_write_all(
        {path: lambda f: f.write(network), json_path: lambda f: f.write(text)}, setting
    )
    return path, json_path


def export(
    model: torch.nn.Module, transform: Preprocessing, path: Path | io.BytesIO, fmt: str
) -> Path | io.BytesIO:
    """Export a KeypointModule's network (images (B, C, S, S) -> keypoints (B, 68, 2) in
    [-1, 1], decoded by its head) with a dynamic batch size, to a file (whole or not at all)
    or an in-memory buffer. Only the bare network is traced: nothing of Lightning."""
    model = model.net.eval().cpu()
    example = torch.zeros(1, transform.channels, transform.image_size, transform.image_size)
    buffer = path if isinstance(path, io.BytesIO) else io.BytesIO()
    if fmt == "onnx":
        with warnings.catch_warnings():  # the TorchScript-based exporter, deprecated, still exact
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), buffer, input_names=["image"], output_names=["keypoints"],
                dynamic_axes={"image": {0: "batch"}, "keypoints": {0: "batch"}}, dynamo=False,
            )  # fmt: skip
    elif fmt == "torchscript":
        with warnings.catch_warnings():  # asked for by name; torch's deprecation notice is noise
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(torch.jit.trace(model, example), buffer)
    else:
        raise FkpError(f"format={fmt} is unknown; use onnx or torchscript.")
    if isinstance(path, io.BytesIO):
        return path
    return atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def onnx_runtime_model(model: torch.nn.Module, transform: Preprocessing,
                       threads: int | None = None) -> OnnxModel:  # fmt: skip
    """The network exported to ONNX in memory and run by onnxruntime: the same keypoints
    (within 0.01 px), two to three times faster than PyTorch eager at batch 1 on a CPU
    (bench/predict_speed.py), with no file written."""
    buffer = export(model, transform, io.BytesIO(), "onnx")
    return OnnxModel(buffer.getvalue(), threads)


def slim_checkpoint(
    source: str | Path, path: Path, half: bool = False, setting: str | None = None
) -> Path:
    """Keep only what `KeypointModule.restore` needs (weights, hyperparameters): a training
    checkpoint also carries optimizer state and callback records, twice to three times the
    size, which a model that ships in the package should not.

    half: store float weights as float16 (half the size again); loading copies them back into
    the float32 network, so only the rounding of the stored values remains.
    """
    full = read_checkpoint(source)
    keep = ("state_dict", "hyper_parameters", "hparams_name", "pytorch-lightning_version")
    slim = {k: full[k] for k in keep if k in full}
    if half:
        slim["state_dict"] = {
            k: v.half() if v.is_floating_point() else v for k, v in slim["state_dict"].items()
        }
    buffer = io.BytesIO()
    torch.save(slim, buffer)
    return atomic_write(path, lambda f: f.write(buffer.getbuffer()), setting)


class TorchNetwork:
    """A KeypointModule behind the runtime's call: images (B, C, S, S) float32 NumPy in,
    keypoints (B, K, 2) float32 NumPy out, run on `device` without gradients."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.module = model.to(self.device).eval()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        with torch.no_grad():
            return self.module(batch.to(self.device)).float().cpu().numpy()
