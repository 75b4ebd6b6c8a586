"""Export a checkpoint for deployment: `python export.py ckpt_path=<file.ckpt> format=onnx`
(ckpt_path also takes `pretrained`, the shipped model, and `newest`).

onnx / torchscript: the network (dynamic batch size) and a JSON file of its preprocessing
beside it; `FaceKeypointDetector.from_onnx` and `predict.py runtime=onnx` use the pair.
ckpt: a slim checkpoint (weights and hyperparameters only), the form fkp's shipped model takes.
precision=int8 (onnx): the convolutions quantized, their value ranges measured on the
checkpoint's own training rows (`calibration` faces under data_dir); float16: half the file.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from fkp.config import one_line_errors  # (and the ${pid:} resolver of the run folder)
from fkp.errors import FkpError, reported_as_one_line
from fkp.files import ensure_writable
from fkp.runtime.predictor import FaceKeypointDetector, eval_transform_of, resolve_checkpoint
from fkp.training.export import calibration_inputs, export_with_preprocessing, slim_checkpoint


def run(cfg: DictConfig) -> Path:
    ckpt = resolve_checkpoint(cfg.ckpt_path, Path(cfg.paths.log_dir), "newest")
    model = FaceKeypointDetector.from_checkpoint(ckpt, runtime="torch").model.module
    suffix = {"onnx": ".onnx", "torchscript": ".pt", "ckpt": ".ckpt"}.get(cfg.format)
    if suffix is None:
        raise FkpError(f"format={cfg.format} is unknown; use onnx, torchscript or ckpt.")
    out = Path(cfg.output) if cfg.output else Path(cfg.paths.output_dir) / (ckpt.stem + suffix)
    ensure_writable(out.parent, "output=<file>")
    if cfg.format != "onnx" and cfg.precision != "float32":
        raise FkpError(
            f"precision={cfg.precision} is for format=onnx (a checkpoint in half size: "
            "format=ckpt half=true); use precision=float32."
        )
    if cfg.format == "ckpt":
        slim_checkpoint(ckpt, out, half=cfg.half, setting="output=<file>")
        FaceKeypointDetector.from_checkpoint(out)  # it must load on its own
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
        return out
    transform = eval_transform_of(model, str(ckpt))
    calibration = None
    if cfg.precision == "int8" and cfg.format == "onnx":
        print(f"calibrating int8 on {cfg.calibration} training faces under {cfg.data_dir}")
        calibration = calibration_inputs(
            model.hparams.data_config, transform, cfg.data_dir, cfg.calibration
        )
    _, settings = export_with_preprocessing(
        model, transform, out, cfg.format, "output=<file>", cfg.precision, calibration
    )
    print(f"wrote {out} and {settings}")
    return out


@one_line_errors("export")
@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    with reported_as_one_line():
        run(cfg)
