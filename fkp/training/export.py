"""Exporting a trained model: ONNX (run by `fkp.runtime`, with NumPy, OpenCV and onnxruntime
only; in float32, int8 or float16) and TorchScript, each with a JSON file of the preprocessing
beside it, and the slim checkpoints fkp ships; `TorchNetwork` puts a PyTorch model behind the
runtime's call.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from fkp.errors import FkpError
from fkp.files import atomic_write, atomic_write_all
from fkp.models.stored import read_checkpoint
from fkp.runtime.onnx import OnnxModel
from fkp.runtime.preprocess import (
    OPTIONAL_SETTINGS,
    TRANSFORM_SETTINGS,
    Preprocessing,
    preprocessing_path,
)

PRECISIONS = ("float32", "int8", "float16")


def preprocessing_record(data_config: dict, network: str, precision: str = "float32") -> dict:
    """The evaluation preprocessing (framing and normalisation settings, and the evaluation
    transform specs, as the checkpoint stores them) that travels beside an exported model."""
    settings = {k: data_config[k] for k in TRANSFORM_SETTINGS}
    settings.update({k: data_config[k] for k in OPTIONAL_SETTINGS if data_config.get(k)})
    return {
        "network": network,
        "precision": precision,
        "preprocessing": {**settings, "eval_transforms": data_config.get("eval_transforms") or []},
    }


def export_with_preprocessing(
    model: torch.nn.Module,
    transform: Preprocessing,
    path: Path,
    fmt: str,
    setting: str | None = None,
    precision: str = "float32",
    calibration: np.ndarray | None = None,
) -> tuple[Path, Path]:
    """Export a trained network (`TrainedNetwork` or `KeypointModule`) and write its
    preprocessing JSON beside it, both or neither: a failure (a full disk) leaves any earlier
    pair under these names whole. precision and calibration: as `with_precision` (ONNX
    only)."""
    network = export(model, transform, io.BytesIO(), fmt).getvalue()
    if precision != "float32":
        if fmt != "onnx":
            raise FkpError(f"precision={precision} is for format=onnx; use precision=float32.")
        network = with_precision(network, precision, calibration)
    record = preprocessing_record(model.hparams.data_config, model.hparams.network, precision)
    text = (json.dumps(record, indent=2) + "\n").encode()
    json_path = preprocessing_path(path)
    atomic_write_all(
        {path: lambda f: f.write(network), json_path: lambda f: f.write(text)}, setting
    )
    return path, json_path


def export(
    model: torch.nn.Module, transform: Preprocessing, path: Path | io.BytesIO, fmt: str
) -> Path | io.BytesIO:
    """Export a trained network's `net` (images (B, C, S, S) -> keypoints (B, 68, 2) in
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


def onnx_runtime_model(
    model: torch.nn.Module,
    transform: Preprocessing,
    threads: int | None = None,
    precision: str = "float32",
    calibration: np.ndarray | None = None,
) -> OnnxModel:
    """The network exported to ONNX in memory and run by onnxruntime: the same keypoints
    (within 0.01 px), two to three times faster than PyTorch eager at batch 1 on a CPU
    (bench/predict_speed.py), with no file written; int8 or float16 as `with_precision`."""
    network = export(model, transform, io.BytesIO(), "onnx").getvalue()
    if precision != "float32":
        network = with_precision(network, precision, calibration)
    return OnnxModel(network, threads)


def calibration_inputs(
    data_config: dict, transform: Preprocessing, data_dir: str | Path, count: int = 256
) -> np.ndarray:
    """Model inputs (N, C, S, S) of `count` faces drawn at random from the rows a checkpoint
    trained on (its data settings; never its validation or test rows), each framed from its
    labelled points as in training: what an int8 export measures its value ranges on."""
    from omegaconf import OmegaConf

    from fkp.data.stored import load_faces

    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise FkpError(f"calibration={count}: use a number of training faces, e.g. 256.")
    rows = OmegaConf.create({"data_dir": str(data_dir), "split": "train", "csv": None,
                             "images": None, "subset": None, "limit": None})  # fmt: skip
    _, points, images = load_faces(rows, data_config, sample=count)
    return np.concatenate(
        [transform.inputs(im, transform.frame_for(p)[None])[0] for im, p in zip(images, points)]
    )


def with_precision(network: bytes, precision: str, calibration: np.ndarray | None = None) -> bytes:
    """An ONNX network (float32) in another precision.

    int8: onnxruntime's static quantization of the convolutions (weights per channel,
    activations per tensor), their value ranges measured on `calibration` inputs (N, C, S, S),
    which should be training faces (`calibration_inputs`), never validation or test ones.
    Additions, pooling and the head stay float32: quantizing every operation cost the shipped
    model 0.17 points of validation NME, the convolutions alone none (docs/inference.md).
    float16: weights and arithmetic in half precision, inputs and outputs float32 (half the
    file; for GPUs, slower than float32 on most CPUs).
    """
    if precision not in PRECISIONS:
        raise FkpError(f"precision={precision} is unknown; use {', '.join(PRECISIONS)}.")
    import onnx

    if precision == "float32":
        return network
    if precision == "float16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        half = convert_float_to_float16(onnx.load_from_string(network), keep_io_types=True)
        return half.SerializeToString()
    if calibration is None or not len(calibration):
        raise FkpError("precision=int8 needs calibration faces (training rows); none were given.")
    return _quantized(network, np.asarray(calibration, dtype=np.float32))


def _quantized(network: bytes, calibration: np.ndarray) -> bytes:
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(calibration, max(1, len(calibration) // 16)))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {"image": batch}

    with tempfile.TemporaryDirectory() as tmp:  # onnxruntime's quantizer works on files
        source, prepared, target = (Path(tmp) / n for n in ("in.onnx", "pre.onnx", "int8.onnx"))
        source.write_bytes(network)
        quiet = logging.getLogger("onnxruntime")  # its progress notes, at INFO
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            quant_pre_process(str(source), str(prepared))
        finally:
            quiet.setLevel(level)
        # the head (heatmaps, their decoding, a last layer) is a sliver of the work and the
        # most sensitive to rounding: it stays float32
        head = [n.name for n in onnx.load(str(prepared)).graph.node if n.name.startswith("/head/")]
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # its notes on pre-processing, already done
            quantize_static(
                str(prepared), str(target), Batches(), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv"], per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.Percentile, nodes_to_exclude=head,
            )  # fmt: skip
        return target.read_bytes()


def slim_checkpoint(
    source: str | Path, path: Path, half: bool = False, setting: str | None = None
) -> Path:
    """Keep only what `TrainedNetwork.restore` needs (weights, hyperparameters): a training
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
    """A trained network behind the runtime's call: images (B, C, S, S) float32 NumPy in,
    keypoints (B, K, 2) float32 NumPy out, run on `device` without gradients."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.module = model.to(self.device).eval()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        with torch.no_grad():
            return self.module(batch.to(self.device)).float().cpu().numpy()
