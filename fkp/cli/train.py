"""Train a facial keypoint model: `python train.py [group=option ...] [key=value ...]`.

Examples:
    python train.py                                    # the original write-up's experiment
    python train.py model=resnet18 data.image_size=128 trainer.max_epochs=5
    python train.py -m optimizer.lr=0.01,0.001 model=custom_cnn,resnet18
    python train.py ckpt_path=outputs/train/<run>/checkpoints/last.ckpt   # resume
    python train.py ckpt_path=last hydra.run.dir=outputs/train/<run>        # the same
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning_fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.utilities.exceptions import SIGTERMException

from fkp.config import build, one_line_errors, validate
from fkp.errors import FkpError, Interrupted, reported_as_one_line
from fkp.files import ensure_writable, run_lock, write_text
from fkp.training.callbacks import ModelLine, SaveOnInterrupt, how_it_ended, quiet_lightning
from fkp.training.checkpoints import AtomicCheckpointIO, check_resume
from fkp.training.trackers import close_trackers, log_config, log_files

log = logging.getLogger("fkp.train")
quiet_lightning()


def _flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, int | float | str | bool) else str(value)
    return out


def _fit_validate_test(cfg, trainer: pl.Trainer, model, datamodule, ckpt_path) -> dict:
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    ended = how_it_ended(trainer)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if trainer.fast_dev_run or not best:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    else:  # the best checkpoint's validation metrics, not the last epoch's
        results = trainer.validate(
            model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True
        )
        metrics = {k: float(v) for k, v in results[0].items()}
    if cfg.get("test") and not trainer.fast_dev_run:
        results = trainer.test(
            model, datamodule=datamodule, ckpt_path=best or None, weights_only=True,
            verbose=False,
        )  # fmt: skip
        metrics.update({k: float(v) for k, v in results[0].items()})
        metrics["best_checkpoint"] = best
    metrics["ended"] = ended
    if trainer.is_global_zero:
        log.info(metrics_table(metrics))
        log.info(ended["sentence"])
    return metrics


def check_batch_limits(cfg: DictConfig, datamodule: pl.LightningDataModule) -> None:
    """A fraction of the batches that comes to none is one line, not Lightning's error."""
    loaders = {"train": datamodule.train_dataloader, "val": datamodule.val_dataloader}
    for split, loader in loaders.items():
        key = f"trainer.limit_{split}_batches"
        limit = OmegaConf.select(cfg, key)
        if not isinstance(limit, float) or limit >= 1:
            continue
        with torch.random.fork_rng(devices=[]):  # building a train loader draws a seed
            batches = len(loader())
        if int(batches * limit) < 1:
            least = math.ceil(1000 / batches) / 1000
            raise FkpError(
                f"{key}={limit} leaves none of the {batches} {split} batches; use at least "
                f"{least} or a batch count, e.g. {key}=1."
            )


def resume_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    """The checkpoint to resume from: `ckpt_path` as given, or this run folder's last.ckpt for
    `ckpt_path=last`, and also when SLURM restarts a requeued job (a preempted or timed-out
    sweep job comes back in the same folder, `SLURM_RESTART_COUNT` > 0). A fresh run folder
    starts from scratch either way."""
    if ckpt_path == "":
        raise FkpError(
            "ckpt_path= is empty; pass a checkpoint to resume from (ckpt_path=<run>/checkpoints/"
            "last.ckpt or ckpt_path=last), or leave it out to start a new run."
        )
    last = run_dir / "checkpoints" / "last.ckpt"
    requeued = int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0
    if ckpt_path == "last" or (ckpt_path is None and requeued):
        if last.is_file():
            log.info("resuming from %s", last)
            return str(last)
        return None
    return ckpt_path


def metrics_table(metrics: dict) -> str:
    """The best checkpoint's metrics as eval.py prints them: NME, FR and AUC in percent."""
    columns = [("nme", "NME"), ("fr", "FR@0.10"), ("auc", "AUC@0.10"), ("fr_0.08", "FR@0.08"),
               ("mpe_px", "error px"), ("loss", "loss")]  # fmt: skip
    lines = ["| split | " + " | ".join(name for _, name in columns) + " |",
             "| --- |" + " --- |" * len(columns)]  # fmt: skip
    for split in ("val", "test"):
        if f"{split}/nme" not in metrics:
            continue
        cells = []
        for key, _ in columns:
            value = metrics.get(f"{split}/{key}")
            if value is None:
                cells.append("-")
            elif key in ("mpe_px", "loss"):
                cells.append(f"{value:.4g}")
            else:
                cells.append(f"{100 * value:.2f}%")
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(["best checkpoint:", *lines])


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then validate and test the best checkpoint; returns its metrics (also in
    metrics.json).

    Everything a run can be refused for is checked before the first step: every setting
    (`fkp.config.validate`), the run folder being writable, every data file (training, and
    test when test=true), and a resume checkpoint (`fkp.training.checkpoints.check_resume`).
    """
    validate(cfg)
    check_loss_is_used(cfg)
    run_dir = Path(cfg.paths.output_dir)
    ensure_writable(run_dir / "checkpoints", "hydra.run.dir=<folder>")
    if rank_zero_only.rank != 0:  # the other processes of a multi-process run share it
        return _train(cfg, run_dir)
    with run_lock(run_dir / "checkpoints"):
        return _train(cfg, run_dir)


def check_loss_is_used(cfg: DictConfig) -> None:
    """A `loss=` chosen on the command line for a head that trains with its own loss (simcc,
    pip) would be ignored: say so in one line instead."""
    from fkp.models.heads import HEADS

    name = (cfg.model.get("head") or {}).get("name", "regression")
    head = HEADS.get(name)
    if head.uses_coord_loss or not HydraConfig.initialized():
        return
    chosen = [o for o in HydraConfig.get().overrides.task
              if o.lstrip("+~").split("=")[0].split(".")[0] == "loss"]  # fmt: skip
    if chosen:
        raise FkpError(
            f"{chosen[0]}: model/head={name} trains with its own loss, not the loss group; "
            f"drop {chosen[0]}, or use model/head=regression or integral, which use it."
        )


def _train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
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
    interrupt = SaveOnInterrupt(run_dir / "checkpoints" / "last.ckpt")
    callbacks = [build(c) for c in (cfg.get("callbacks") or {}).values() if c] + [interrupt]
    verbose = bool(cfg.get("verbose"))
    quiet_lightning(verbose)
    console = {}
    if not verbose:  # one model line, and progress bars only where a terminal shows them
        callbacks.append(ModelLine())
        console["enable_model_summary"] = False
        if not sys.stdout.isatty():
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
            console["enable_progress_bar"] = False
    loggers = [build(c) for c in (cfg.get("logger") or {}).values() if c]
    trainer: pl.Trainer = build(
        cfg.trainer, callbacks=callbacks, logger=loggers, plugins=[AtomicCheckpointIO()], **console
    )

    ckpt_path = resume_path(cfg.get("ckpt_path"), run_dir)
    if ckpt_path:
        optimizers = model.configure_optimizers()
        optimizer, scheduler = (
            (optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"])
            if isinstance(optimizers, dict)
            else (optimizers, None)
        )
        scheduler = scheduler if cfg.get("scheduler") else None  # not the constant stand-in
        check_resume(ckpt_path, model, optimizer, scheduler, cfg.trainer.max_epochs,
                     cfg.model.network)  # fmt: skip
    # Every data file is read now, not after training: a bad test CSV stops the run here.
    datamodule.prepare_data()
    datamodule.setup("fit")
    if cfg.get("test"):
        datamodule.setup("test")
    check_batch_limits(cfg, datamodule)
    flat = _flatten(OmegaConf.to_container(cfg, resolve=True))
    try:
        log_config(loggers, flat)
        metrics = _fit_validate_test(cfg, trainer, model, datamodule, ckpt_path)
        if trainer.is_global_zero:
            _save_metrics(trainer, run_dir, metrics, flat)
    except (SIGTERMException, KeyboardInterrupt, SystemExit) as e:
        # Lightning ends a Ctrl-C with its own sys.exit(1), after the callbacks have seen it
        if isinstance(e, SystemExit) and interrupt.signal is None:
            raise
        ctrl_c = interrupt.signal == "Ctrl-C" or isinstance(e, KeyboardInterrupt)
        where = interrupt.saved or "nothing new (no training step had run)"
        resume = f"ckpt_path={interrupt.saved or '<last.ckpt>'}"
        sentence = (f"stopped by {'Ctrl-C' if ctrl_c else 'a signal'} during epoch "
                    f"{trainer.current_epoch}; the training state was saved to {where}; resume "
                    f"with {resume}.")  # fmt: skip
        record_ending(
            trainer,
            run_dir,
            {
                "how": "interrupted",
                "epoch": trainer.current_epoch,
                "resume": resume,
                "sentence": f"run {sentence}",
            },
        )
        raise Interrupted(sentence, exit_code=130 if ctrl_c else 143) from None
    except Exception as e:
        why = str(e) if isinstance(e, FkpError) else f"{type(e).__name__}: {e}"
        record_ending(
            trainer,
            run_dir,
            {
                "how": "failed",
                "epoch": trainer.current_epoch,
                "why": why,
                "sentence": f"run failed: {why}",
            },
        )
        raise
    finally:
        close_trackers(loggers)  # the next job of an in-process sweep starts its own run
    return metrics


def record_ending(trainer: pl.Trainer, run_dir: Path, ended: dict) -> None:
    """An interrupted or failed run's ending, in metrics.json and train.log (the console gets
    the error line itself); nothing here may hide the error being reported."""
    if not trainer.is_global_zero:
        return
    for handler in logging.getLogger().handlers:  # train.log only
        if isinstance(handler, logging.FileHandler):
            handler.handle(log.makeRecord(log.name, logging.INFO, __file__, 0,
                                          ended["sentence"], None, None))  # fmt: skip
    with contextlib.suppress(Exception):  # a full disk: the error itself is what to report
        write_text(run_dir / "metrics.json", json.dumps({"ended": ended}, indent=2) + "\n")


def _save_metrics(trainer: pl.Trainer, run_dir: Path, metrics: dict, flat: dict) -> None:
    """metrics.json, the TensorBoard HPARAMS entry, and the run's files to trackers."""
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    for logger in trainer.loggers:
        if isinstance(logger, pl.loggers.TensorBoardLogger):
            numbers = {k: v for k, v in metrics.items() if isinstance(v, float)}
            logger.log_hyperparams(flat, numbers)
            logger.experiment.flush()  # the writer flushes on a timer; do it before exit
    run_files = ["metrics.json", "records.csv", "loss_curve.png"]
    log_files(trainer.loggers, [run_dir / f for f in run_files]
              + [Path(metrics.get("best_checkpoint") or "")], run_dir)  # fmt: skip
    log.info("run directory: %s", run_dir)


@one_line_errors("train")
@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    with reported_as_one_line(multirun=HydraConfig.get().mode == RunMode.MULTIRUN):
        metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric"))
