"""The LightningModule: a keypoint network, its loss in the normalised frame, metrics in pixels."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from fkp.errors import FkpError
from fkp.evaluation.metrics import KeypointMetrics
from fkp.geometry import to_image
from fkp.landmarks import landmark_set
from fkp.models.stored import keypoint_network, restored
from fkp.training.checkpoints import accepted_callback_states

log = logging.getLogger("fkp.train")


class KeypointModule(pl.LightningModule):
    """Finds (K, 2) keypoints in [-1, 1] of the input image, K from the landmark set.

    The network is built from plain hyperparameters (backbone name, grayscale or RGB input,
    input size, network_kwargs, head: {"name": ..., settings}, landmarks: the landmark set's
    plain data, `fkp.landmarks`; none: the 68-point iBUG set), all saved in checkpoints, so
    `KeypointModule.restore(path)` alone brings a trained model back. optimizer and scheduler
    are partials (Hydra `_partial_: true`) taking the parameters / optimizer; they and the
    loss are not saved as hyperparameters.

    data_config: the data settings the model was trained with (framing, normalisation, eval
    transforms), kept in the checkpoint so prediction preprocesses faces the same way.
    loss: the coordinate loss, used by the heads that compare coordinates (regression,
    integral); the others train with their own (`fkp.models.heads`).
    """

    def __init__(
        self,
        network: str = "custom_cnn",
        grayscale: bool = True,
        image_size: int = 224,
        network_kwargs: dict[str, Any] | None = None,
        head: dict[str, Any] | None = None,
        landmarks: dict[str, Any] | None = None,
        pretrained: bool = False,
        weights: str | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        monitor: str = "val/loss",
        loss: nn.Module | None = None,
        data_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "loss"])
        self.landmarks = landmark_set(landmarks, "model.landmarks")
        self.net = keypoint_network(
            self.landmarks,
            network,
            grayscale,
            image_size,
            network_kwargs,
            head,
            pretrained,
            weights,
        )
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss = loss if loss is not None else nn.MSELoss()
        self.val_metrics = KeypointMetrics(nme_points=self.landmarks.nme_points)
        # Lightning's model summary counts FLOPs and shapes from this (0 without it)
        self.example_input_array = torch.zeros(1, 1 if grayscale else 3, image_size, image_size)
        self.test_metrics = KeypointMetrics(nme_points=self.landmarks.nme_points)

    @classmethod
    def restore(cls, path: str | Path, map_location: str | torch.device = "cpu") -> KeypointModule:
        """The LightningModule of a checkpoint, with its weights (no pretrained download),
        for Lightning's validate or test or to train on; inference needs no Lightning
        (`fkp.models.stored.TrainedNetwork`). The file is read as data: its settings choose a
        network from fkp's registry and nothing else."""
        return restored(cls, path, map_location)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # What a resume must match: checked by fkp.training.checkpoints.check_resume before fitting.
        trainer = self._trainer
        if trainer is None:
            return
        schedulers = trainer.lr_scheduler_configs
        checkpoint["fkp"] = {
            "optimizer": type(trainer.optimizers[0]).__name__ if trainer.optimizers else None,
            "scheduler": (  # None: no scheduler configured (a constant rate)
                type(schedulers[0].scheduler).__name__
                if schedulers and self.scheduler_factory is not None
                else None
            ),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Runs before Lightning hands the callbacks their state: what they may act on is
        # limited here (fkp.training.checkpoints.accepted_callback_states).
        trainer = self._trainer
        source = trainer.ckpt_path if trainer is not None else None
        if not source:
            checkpoint["callbacks"] = {}
            return
        dropped = accepted_callback_states(checkpoint, source)
        if dropped:
            log.warning(
                "%s: ignored what its records name outside its own folder (%s); training "
                "goes on from its weights and state.",
                source,
                "; ".join(dropped[:3])
                + (f"; and {len(dropped) - 3} more" if len(dropped) > 3 else ""),
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, C, S, S) -> keypoints (B, K, 2) in [-1, 1] of the input."""
        return self.net(images)

    def _step(self, batch: dict, stage: str, batch_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.net.forward_head(self.net.forward_features(batch["image"]))
        loss = self.net.head.loss(raw, batch["keypoints"], self.loss)
        predicted = self.net.head.decode(raw)
        if not torch.isfinite(loss):
            raise FkpError(
                f"{stage} loss became {loss.item()} at epoch {self.current_epoch}, batch "
                f"{batch_idx}; lower optimizer.lr or check the data for bad values."
            )
        batch_size = batch["image"].shape[0]
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch_size, sync_dist=stage != "train")  # fmt: skip
        return loss, predicted

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", batch_idx)[0]

    def _evaluate(self, batch: dict, stage: str, batch_idx: int, metrics: KeypointMetrics):
        _, predicted = self._step(batch, stage, batch_idx)
        # heads decode in float32 and to_image maps in float64, whatever the training precision
        pixels = to_image(predicted.detach(), batch["affine"], self.hparams.image_size)
        metrics.update(pixels, batch["points"])
        return predicted

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "val", batch_idx, self.val_metrics)

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "test", batch_idx, self.test_metrics)

    def _log_metrics(self, stage: str, metrics: KeypointMetrics) -> None:
        values = metrics.compute()
        names = {"nme": "nme", "fr_0.10": "fr", "auc_0.10": "auc", "fr_0.08": "fr_0.08",
                 "auc_0.08": "auc_0.08", "mpe_px": "mpe_px"}  # fmt: skip
        for key, value in values.items():
            self.log(f"{stage}/{names[key]}", value, prog_bar=key == "nme")
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise FkpError("model: no optimizer configured; choose one, e.g. optimizer=adam.")
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:  # a constant rate, as a scheduler: see "name"
            scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, 1.0, total_iters=0)
        else:
            scheduler = self.scheduler_factory(optimizer=optimizer)
        # "name": the rate is logged as "lr" whatever the optimizer, so runs overlay in
        # TensorBoard (Lightning would name it lr-Adam, lr-AdamW, ...)
        # a scheduler watching a validation metric steps when validation runs
        # (trainer.check_val_every_n_epoch), so it never looks for a value not yet logged
        every = getattr(self._trainer, "check_val_every_n_epoch", None) or 1
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.hparams.monitor,
                             "interval": "epoch", "frequency": every, "name": "lr"},
        }  # fmt: skip
