"""Callbacks that keep every run's history on disk and in TensorBoard."""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only
from matplotlib.figure import Figure
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from fkp.files import atomic_copy, atomic_write, write_text
from fkp.geometry import denormalise
from fkp.viz import make_grid

log = logging.getLogger("fkp.train")

RECORD_FIELDS = ("epoch", "lr", "train/loss", "val/loss", "val/nme", "time_s")


# Lightning's console notices that say nothing a user can act on (verbose=false drops them):
# accelerators not present, the anomaly detection trainer=debug turns on by design, the
# checkpoint it restores to validate and test, and its own ending, which fkp's says better.
NOTICES = ("GPU available: False", "TPU available: False", "HPU available: False",
           "You have turned on `Trainer(detect_anomaly=True)`", "Restoring states from the",
           "Loaded model weights from", "`Trainer.fit` stopped:")  # fmt: skip


def quiet_lightning(verbose: bool = False) -> None:
    """Drop console lines that tell a user nothing about their run: Lightning's advert for its
    cloud logger, a deprecation inside Lightning itself (not fixable here), and its notice
    that a run resumed in its own folder (`ckpt_path=last`) finds checkpoints there; unless
    verbose, also its `NOTICES`."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    rank_zero.filters.clear()
    dropped = ("\N{ELECTRIC LIGHT BULB} Tip", *(() if verbose else NOTICES))
    rank_zero.addFilter(lambda record: not str(record.msg).startswith(dropped))
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


class EpochRecords(pl.Callback):
    """Append each epoch's epoch, lr, train loss, val loss, val NME and training wall time so far
    (time_s, validation included, so time-to-accuracy reads off the CSV) to a CSV, and redraw a
    loss-curve PNG beside it, as the epoch ends: a run killed at any point keeps its records.

    The write-up lost its first 20 epochs of records; here, a resumed run first copies the
    earlier rows from the records file beside the checkpoint it resumes from (in the same
    folder, as `ckpt_path=last` does, rows of epochs after the checkpoint are dropped).
    """

    def __init__(self, dirpath: str | Path, filename: str = "records.csv",
                 plot: str = "loss_curve.png") -> None:  # fmt: skip
        self.path = Path(dirpath) / filename
        self.plot_path = Path(dirpath) / plot

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._earlier = self._records_of(trainer.ckpt_path)
        self._validated: int | None = None  # the epoch validation last ran in
        self._start, self._offset = time.perf_counter(), 0.0

    def _carry_over(self, first_epoch: int) -> None:
        """Copy the resumed run's rows before `first_epoch` (the epoch counter is only
        restored once training starts, hence not in on_fit_start)."""
        same_folder = self._earlier is not None and self._earlier == self.path.resolve()
        if self._earlier and (same_folder or not self.path.exists()):
            rows = [r for r in read_records(self._earlier) if int(r["epoch"]) < first_epoch]
            times = [float(r["time_s"]) for r in rows if r.get("time_s")]
            self._offset = times[-1] if times else 0.0  # a resumed run's clock continues
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, RECORD_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
            write_text(self.path, text.getvalue())  # whole or not at all: it may be the source
        self._earlier = None

    def _records_of(self, ckpt_path: str | None) -> Path | None:
        if not ckpt_path:
            return None
        candidate = Path(ckpt_path).resolve().parent.parent / self.path.name
        return candidate if candidate.is_file() else None  # (rows past it are dropped)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self._carry_over(trainer.current_epoch)
        # the rate this epoch trains with; schedulers step before on_train_epoch_end
        self._lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else ""

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:  # (trainer.check_val_every_n_epoch may skip epochs)
            self._validated = trainer.current_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch, "lr": getattr(self, "_lr", "")}
        validated = self._validated == trainer.current_epoch
        for key in RECORD_FIELDS[2:5]:
            fresh = validated or not key.startswith("val/")  # not an earlier epoch's value
            row[key] = float(metrics[key]) if key in metrics and fresh else ""
        row["time_s"] = round(self._offset + time.perf_counter() - self._start, 1)
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, RECORD_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        plot_records(read_records(self.path), self.plot_path)
        numbers = " ".join(f"{k} {row[k]:.4g}" for k in RECORD_FIELDS[2:4] if row[k] != "")
        nme = f" val/nme {100 * row['val/nme']:.2f}%" if row["val/nme"] != "" else ""
        lr = f" lr {row['lr']:.3g}" if isinstance(row["lr"], float) else ""
        log.info("epoch %d: %s%s%s (%.0f s)", row["epoch"], numbers, nme, lr, row["time_s"])


def read_records(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def record_column(rows: list[dict[str, str]], key: str) -> list[float]:
    """One column of records.csv rows as floats, NaN where a row has no value."""
    return [float(r[key]) if r.get(key) not in ("", None) else math.nan for r in rows]


def plot_records(rows: list[dict[str, str]], path: Path) -> None:
    """Train and val loss per epoch (log scale), lr on a second axis."""

    def column(key: str) -> np.ndarray:
        return np.array(record_column(rows, key))

    epochs = column("epoch")
    fig = Figure(figsize=(7, 4), dpi=100)  # no pyplot: importing fkp leaves the backend be
    ax = fig.subplots()
    for key, color in [("train/loss", "tab:blue"), ("val/loss", "tab:orange")]:
        ax.plot(epochs, column(key), marker=".", color=color, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if np.nanmin(np.r_[column("train/loss"), column("val/loss"), np.inf]) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    lr_axis = ax.twinx()
    lr_axis.plot(epochs, column("lr"), color="tab:gray", linestyle="--", label="lr")
    lr_axis.set_ylabel("learning rate")
    lines = ax.get_legend_handles_labels()
    more = lr_axis.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


class PredictionGrid(pl.Callback):
    """Every N epochs, log a grid of validation predictions (magenta) over truth (green)."""

    def __init__(self, every_n_epochs: int = 5, count: int = 16) -> None:
        self.every_n_epochs = every_n_epochs
        self.count = count

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        epoch = trainer.current_epoch
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if (epoch + 1) % self.every_n_epochs and epoch + 1 != trainer.max_epochs:
            return
        transform = trainer.datamodule.eval_transform
        size = transform.image_size
        n = min(self.count, len(batch["image"]))
        grid = make_grid(
            [transform.to_pixels(im) for im in batch["image"][:n]],
            [denormalise(k, size).cpu().numpy() for k in batch["keypoints"][:n]],
            [denormalise(p, size).cpu().numpy() for p in outputs[:n].float()],
            landmarks=transform.landmarks,
        )
        for logger in trainer.loggers:
            if isinstance(logger, pl.loggers.TensorBoardLogger):
                image = torch.from_numpy(grid).permute(2, 0, 1)
                logger.experiment.add_image("val/predictions", image, trainer.global_step)


class BestCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that keeps the best checkpoints of a run resumed into a new folder.

    Lightning forgets the earlier scores when the folder changes, so the resumed part would
    pick (and train.py test) its own best epoch while the true best stayed behind in the old
    folder. Here the earlier best files are copied into the new folder with their scores, so
    `best_model_path` is the best of the whole run and lives in this run's folder.
    """

    @property
    def state_key(self) -> str:
        # ModelCheckpoint's key, so checkpoints written before this class still resume into it
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old_dir = state_dict.get("dirpath", self.dirpath)
        if self.dirpath is None or old_dir == self.dirpath or not state_dict.get("best_k_models"):
            super().load_state_dict(state_dict)
            return
        moved: dict[str, Any] = {}
        for path, score in state_dict["best_k_models"].items():
            source = Path(path)
            target = Path(self.dirpath) / source.name
            if not source.is_file():
                continue
            if rank_zero_only.rank == 0 and not target.exists():
                atomic_copy(source, target)
            moved[str(target)] = score
        if not moved:  # the earlier files are gone: nothing to compare against
            return
        self.best_k_models = moved
        best, worst = (min, max) if self.mode == "min" else (max, min)
        self.best_model_path = best(moved, key=lambda p: float(moved[p]))
        self.best_model_score = moved[self.best_model_path]
        self.kth_best_model_path = worst(moved, key=lambda p: float(moved[p]))
        self.kth_value = moved[self.kth_best_model_path]


class SaveOnInterrupt(pl.Callback):
    """On SIGTERM (a scheduler's stop) or Ctrl-C, save the training state reached so far to
    `path` (last.ckpt), mid-epoch included, so `ckpt_path=` resumes from it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.saved: Path | None = None
        self.signal: str | None = None  # "SIGTERM" or "Ctrl-C", once one has arrived

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception) -> None:
        if not isinstance(exception, SIGTERMException | KeyboardInterrupt):
            return
        self.signal = "Ctrl-C" if isinstance(exception, KeyboardInterrupt) else "SIGTERM"
        if trainer.state.fn != "fit" or trainer.global_step == 0:
            return
        trainer.save_checkpoint(self.path)
        self.saved = self.path


def how_it_ended(trainer: pl.Trainer) -> dict[str, Any]:
    """How a fit that returned ended, as data (metrics.json's "ended") with a sentence for the
    console and train.log: every epoch run, or stopped early (when, why, the best epoch and
    its monitored value), or stopped at a step or time limit."""
    epochs, limit = trainer.current_epoch, trainer.max_epochs
    ended: dict[str, Any] = {"how": "finished", "epochs": epochs, "max_epochs": limit}
    best = trainer.checkpoint_callback
    best_path = Path(best.best_model_path) if best and best.best_model_path else None
    if best_path is not None:
        ended["best_checkpoint"] = str(best_path)
        if best.best_model_score is not None:
            ended["monitor"] = best.monitor
            ended["best_value"] = float(best.best_model_score)
        epoch = re.search(r"epoch[_=]?(\d+)", best_path.name)
        if epoch:
            ended["best_epoch"] = int(epoch.group(1))
    stopper = trainer.early_stopping_callback
    if stopper is not None and stopper.stopped_epoch > 0:
        why = " ".join(str(stopper.stopping_reason_message or "").split())
        if stopper.stopping_reason.name == "PATIENCE_EXHAUSTED":
            by = f" by {abs(stopper.min_delta):g}" if stopper.min_delta else ""
            s = "s" * (stopper.patience != 1)
            why = f"{stopper.monitor} had not improved{by} for {stopper.patience} epoch{s}"
        ended.update(how="stopped early", stopped_epoch=stopper.stopped_epoch, why=why)
    elif trainer.max_steps not in (-1, None) and trainer.global_step >= trainer.max_steps:
        ended.update(how="stopped at the step limit", why=f"trainer.max_steps={trainer.max_steps}")
    elif limit is not None and limit >= 0 and epochs < limit:
        ended.update(how="stopped", why="trainer.max_time, or a callback, ended it")
    ended["sentence"] = ending_sentence(ended)
    return ended


def ending_sentence(ended: dict[str, Any]) -> str:
    """The one line a run ends with; `ended` as `how_it_ended` gives it."""
    epochs = f"{ended['epochs']} of {ended['max_epochs']} epochs"
    if ended["how"] == "finished":
        head = f"run finished: {epochs}"
    elif ended["how"] == "stopped early":
        head = f"run stopped early after {epochs} ({ended['why'].rstrip('.')})"
    else:
        head = f"run {ended['how']} after {epochs} ({ended['why']})"
    if "best_epoch" in ended and "best_value" in ended:
        value = ended["best_value"]
        shown = f"{100 * value:.2f}%" if "nme" in ended["monitor"] else f"{value:.4g}"
        head += f"; best epoch {ended['best_epoch']}, {ended['monitor']} {shown}"
    return head + "."


class ModelLine(pl.Callback):
    """One line about the model as training starts (in place of Lightning's table, which
    `verbose=true` brings back): network, head, parameters, FLOPs per image, input size."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from torch.utils.flop_counter import FlopCounterMode

        hp = pl_module.hparams
        channels = 1 if hp.get("grayscale", True) else 3
        size = int(hp.get("image_size", 96))
        example = torch.zeros(1, channels, size, size, device=pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            pl_module(example)
        pl_module.train(was_training)
        params = sum(p.numel() for p in pl_module.parameters())
        head = (hp.get("head") or {}).get("name", "regression")
        log.info(
            "model: %s with the %s head, %.2fM parameters, %.2f GFLOPs per image, input %dx%dx%d",
            hp.get("network"), head, params / 1e6, counter.get_total_flops() / 1e9,
            channels, size, size,
        )  # fmt: skip
