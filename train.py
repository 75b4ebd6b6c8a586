"""Train a facial keypoint model: `python train.py [group=option ...] [key=value ...]`.

Examples:
    python train.py                                    # the original write-up's experiment
    python train.py model=resnet18 data.image_size=128 trainer.max_epochs=5
    python train.py -m optimizer.lr=0.01,0.001 model=custom_cnn,resnet18
    python train.py ckpt_path=outputs/train/<run>/checkpoints/last.ckpt   # resume
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from fkp.config import build
from fkp.errors import FkpError, reported_as_one_line

log = logging.getLogger("fkp.train")


def _flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, int | float | str | bool) else str(value)
    return out


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test the best checkpoint; returns the final metrics (also in metrics.json)."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.paths.output_dir)
    datamodule = build(cfg.data)
    model = build(
        cfg.model,
        optimizer=build(cfg.optimizer),
        scheduler=build(cfg.scheduler) if cfg.get("scheduler") else None,
        loss=build(cfg.loss),
    )
    # Set after building: Hydra would instantiate the `_target_`s inside this plain record.
    # No data_dir: a checkpoint travels, and eval.py / predict.py take the data location from
    # their own settings.
    data_config = OmegaConf.to_container(cfg.data, resolve=True)
    data_config.pop("data_dir", None)
    model.hparams.data_config = data_config
    callbacks = [build(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = [build(c) for c in (cfg.get("logger") or {}).values() if c]
    trainer: pl.Trainer = build(cfg.trainer, callbacks=callbacks, logger=loggers)

    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path and not Path(ckpt_path).is_file():
        raise FkpError(f"ckpt_path={ckpt_path}: no such checkpoint file; check the path.")
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except RuntimeError as e:
        if ckpt_path and "state_dict" in str(e):
            raise FkpError(
                f"ckpt_path={ckpt_path} does not fit model={cfg.model.network} "
                f"({str(e).splitlines()[0]}); resume with the model settings it was trained with."
            ) from None
        raise
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}

    if cfg.get("test") and not trainer.fast_dev_run:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        results = trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update({k: float(v) for k, v in results[0].items()})
        metrics["best_checkpoint"] = best
    if trainer.is_global_zero:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        for logger in trainer.loggers:
            if isinstance(logger, pl.loggers.TensorBoardLogger):
                numbers = {k: v for k, v in metrics.items() if isinstance(v, float)}
                flat = _flatten(OmegaConf.to_container(cfg, resolve=True))
                logger.log_hyperparams(flat, numbers)
        log.info("run directory: %s", run_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    with reported_as_one_line():
        metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
