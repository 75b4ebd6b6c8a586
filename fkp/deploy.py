"""Exported models: ONNX (run with onnxruntime) and TorchScript, each with a JSON file of the
preprocessing beside it, so inference needs neither Lightning nor Hydra.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from fkp.checkpoints import read_checkpoint
from fkp.data.transforms import (
    OPTIONAL_SETTINGS,
    TRANSFORM_SETTINGS,
    KeypointTransform,
    transform_from_record,
)
from fkp.errors import FkpError
from fkp.files import atomic_write


def preprocessing_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def save_preprocessing(data_config: dict, model_path: Path, network: str) -> Path:
    """Write the evaluation preprocessing (framing and normalisation settings, and the
    evaluation transform specs, as the checkpoint stores them) beside the exported model."""
    settings = {k: data_config[k] for k in TRANSFORM_SETTINGS}
    settings.update({k: data_config[k] for k in OPTIONAL_SETTINGS if data_config.get(k)})
    record = {
        "network": network,
        "preprocessing": {**settings, "eval_transforms": data_config.get("eval_transforms") or []},
    }
    path = preprocessing_path(model_path)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def load_preprocessing(model_path: str | Path) -> KeypointTransform:
    """The evaluation transform of an exported model, from its JSON: data only, built from an
    allow-list (older files in albumentations' `to_dict` form are read too)."""
    path = preprocessing_path(model_path)
    if not path.is_file():
        raise FkpError(
            f"{path}: missing; export.py writes it beside {Path(model_path).name}: keep both."
        )
    try:
        record = json.loads(path.read_text())
        settings = dict(record["preprocessing"])
    except (ValueError, KeyError, TypeError):
        raise FkpError(f"{path}: not an fkp preprocessing file; export the model again.") from None
    if "eval_transforms" not in settings and record.get("eval_pipeline"):
        settings["eval_transforms"] = [record["eval_pipeline"]["transform"]]  # older files
    return transform_from_record(settings, str(path))


def export(
    model: torch.nn.Module, transform: KeypointTransform, path: Path | io.BytesIO, fmt: str
) -> Path | io.BytesIO:
    """Export a KeypointModule's network (images (B, C, S, S) -> keypoints (B, 68, 2) in
    [-1, 1], decoded by its head) with a dynamic batch size, to a file or (ONNX) an in-memory
    buffer. Only the bare network is traced: nothing of Lightning."""
    model = model.net.eval().cpu()
    example = torch.zeros(1, transform.channels, transform.image_size, transform.image_size)
    target = path if isinstance(path, io.BytesIO) else str(path)
    if not isinstance(path, io.BytesIO):
        path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        with warnings.catch_warnings():  # the TorchScript-based exporter, deprecated, still exact
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), target, input_names=["image"], output_names=["keypoints"],
                dynamic_axes={"image": {0: "batch"}, "keypoints": {0: "batch"}}, dynamo=False,
            )  # fmt: skip
    elif fmt == "torchscript":
        with warnings.catch_warnings():  # asked for by name; torch's deprecation notice is noise
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.trace(model, example).save(target)
    else:
        raise FkpError(f"format={fmt} is unknown; use onnx or torchscript.")
    return path


def onnx_runtime_model(model: torch.nn.Module, transform: KeypointTransform,
                       threads: int | None = None) -> OnnxModel:  # fmt: skip
    """The network exported to ONNX in memory and run by onnxruntime: the same keypoints
    (within 0.01 px), two to three times faster than PyTorch eager at batch 1 on a CPU
    (bench/predict_speed.py), with no file written."""
    buffer = export(model, transform, io.BytesIO(), "onnx")
    return OnnxModel(buffer.getvalue(), threads)


def slim_checkpoint(source: str | Path, path: Path, half: bool = False) -> Path:
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
    return atomic_write(path, lambda f: f.write(buffer.getbuffer()))


class OnnxModel:
    """An exported ONNX network behind the same call as the PyTorch one."""

    def __init__(self, path: str | Path | bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                path if isinstance(path, bytes) else str(path), options,
                providers=["CPUExecutionProvider"],
            )  # fmt: skip
        except Exception as e:  # onnxruntime raises its own types for unreadable files
            name = "the exported model" if isinstance(path, bytes) else path
            raise FkpError(f"{name}: not a readable ONNX model ({type(e).__name__}).") from None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"image": images.detach().cpu().numpy().astype(np.float32)})
        return torch.from_numpy(out[0])
