"""What train.py sends to run trackers (MLflow, Weights & Biases) beyond Lightning's metrics.

Lightning logs each epoch's metrics to every logger and the module's own hyperparameters. A
tracker user also wants the whole composed config as searchable parameters, and the run's
files (records, curves, metrics.json, the best checkpoint) beside it, so a run can be judged
and reused from the tracker alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

# TensorBoard gets the config together with the final metrics (its HPARAMS tab needs both);
# CSVLogger writes hparams.yaml on its own.
_CONFIG_ELSEWHERE = (pl.loggers.TensorBoardLogger, pl.loggers.CSVLogger)


def log_config(loggers: Sequence[pl.loggers.Logger], flat: dict[str, Any]) -> None:
    """The flattened config (`optimizer.lr`, `model.network`, ...) as each tracker's params."""
    for logger in loggers:
        if not isinstance(logger, _CONFIG_ELSEWHERE):
            logger.log_hyperparams(flat)


def log_files(loggers: Sequence[pl.loggers.Logger], files: Iterable[Path], run_dir: Path) -> None:
    """Copy the run's files to every tracker that stores files; missing files are skipped."""
    files = [Path(f) for f in files if f and Path(f).is_file()]
    for logger in loggers:
        if isinstance(logger, pl.loggers.MLFlowLogger):
            for path in files:
                where = path.parent.relative_to(run_dir) if path.is_relative_to(run_dir) else None
                logger.experiment.log_artifact(
                    logger.run_id, str(path), None if where in (None, Path()) else str(where)
                )
        elif isinstance(logger, pl.loggers.WandbLogger):
            import wandb  # only here: the track extra is optional

            run = logger.experiment
            artifact = wandb.Artifact(f"run-{run.id}", type="run-files")
            for path in files:
                inside = path.is_relative_to(run_dir)
                artifact.add_file(str(path), name=str(path.relative_to(run_dir) if inside
                                                      else path.name))  # fmt: skip
            run.log_artifact(artifact)


def close_trackers(loggers: Sequence[pl.loggers.Logger]) -> None:
    """End each tracker's run. W&B keeps one run per process and would hand it to the next
    job of an in-process sweep; Lightning does not finish it."""
    for logger in loggers:
        if isinstance(logger, pl.loggers.WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()
