"""Checkpoints in training: atomic writes, the callback records a resume may use, and checking
a resume before training starts (reading a checkpoint as data: `fkp.models.stored`).

A checkpoint is a file a user passes in, so it is loaded with torch's weights-only unpickler
(tensors, numbers, strings, lists and dicts; no classes, no calls) and its settings are used
as plain values. Anything a checkpoint names (a network, a transform) is looked up in fkp's
registries, never imported.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from fkp.errors import FkpError
from fkp.files import atomic_write
from fkp.models.stored import read_checkpoint

# What a training checkpoint (last.ckpt, epoch_*.ckpt) holds beyond weights and settings.
TRAINING_STATE = ("optimizer_states", "loops", "epoch", "global_step")


def check_resume(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    max_epochs: int,
    model_name: str,
) -> dict[str, Any]:
    """Everything Lightning would trip over when resuming from `path`, as one sentence each:
    a slim or unreadable file, weights of another model, another optimizer or scheduler, and a
    run that has already trained `max_epochs` epochs."""
    checkpoint = read_checkpoint(path)
    missing = [k for k in TRAINING_STATE if k not in checkpoint]
    if missing:
        raise FkpError(
            f"ckpt_path={path} holds weights only (no optimizer or epoch state), so training "
            "cannot resume from it; pass a run's checkpoints/last.ckpt, or evaluate it with "
            "eval.py."
        )
    try:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError:
        raise FkpError(
            f"ckpt_path={path} does not fit model={model_name}: its weights are another "
            "network's; resume with the model settings it was trained with."
        ) from None
    stored = checkpoint.get("fkp", {})
    for kind, current in (("optimizer", optimizer), ("scheduler", scheduler)):
        name = type(current).__name__ if current is not None else None
        saved = stored.get(kind, name)  # checkpoints from before fkp recorded these
        if saved != name:
            raise FkpError(
                f"ckpt_path={path} was trained with {kind} {saved}, not {name}; resume with "
                f"the {kind} it was trained with, or start a new run."
            )
    if optimizer is not None:
        saved_groups = checkpoint["optimizer_states"][0].get("param_groups", [])
        current_groups = optimizer.state_dict()["param_groups"]
        if [sorted(g) for g in saved_groups] != [sorted(g) for g in current_groups] and (
            "optimizer" not in stored
        ):
            raise FkpError(
                f"ckpt_path={path} was trained with another optimizer; resume with the "
                "optimizer it was trained with, or start a new run."
            )
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    done = int(progress.get("current", {}).get("processed", int(checkpoint["epoch"]) + 1))
    if 0 <= max_epochs <= done:
        raise FkpError(
            f"ckpt_path={path} has already trained {done} epochs; raise trainer.max_epochs "
            f"above {done} to continue it."
        )
    return checkpoint


# The callback state fkp takes from a checkpoint it resumes: ModelCheckpoint's record of its
# files and scores, and EarlyStopping's counters. Anything else (another callback's state, a
# key Lightning would restore blindly) is dropped.
_CHECKPOINT_PATHS = ("best_model_path", "kth_best_model_path", "last_model_path")
_CHECKPOINT_SCORES = ("best_model_score", "kth_value", "current_score")
_EARLY_STOPPING = {"wait_count": int, "stopped_epoch": int, "patience": int, "best_score": float}


def _score(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and value.is_floating_point()
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _own_file(value: Any, folder: Path) -> bool:
    """A plain local path (no URL, no fsspec chain) of a .ckpt file directly inside `folder`,
    also once links are followed."""
    if not isinstance(value, str) or not value or "://" in value or "::" in value:
        return False
    path = Path(value)
    if not path.is_absolute() or path.suffix != ".ckpt" or ".." in path.parts:
        return False
    return path.parent == folder and path.resolve().parent == folder.resolve()


def accepted_callback_states(checkpoint: dict[str, Any], source: str | Path) -> list[str]:
    """Keep, in `checkpoint["callbacks"]`, only callback state that names nothing outside the
    resumed checkpoint's own folder; returns what was dropped, one phrase each.

    Lightning restores ModelCheckpoint's paths (best, k-th best, last, top-k) from the file
    and later deletes the "previous best" and copies the earlier best files; a crafted
    checkpoint could aim those at any file, or at a URL that skips Lightning's own
    inside-the-folder check. Here every such path must be a plain local .ckpt file beside
    `source` (the run's checkpoints/ folder), so a run only acts on its own files and the
    checkpoint the user named.
    """
    folder = Path(os.path.realpath(source)).parent
    states = checkpoint.get("callbacks")
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, state in states.items() if isinstance(states, dict) else ():
        if not isinstance(key, str) or not isinstance(state, dict):
            dropped.append(f"callback state {str(key)[:60]!r}")
        elif key.startswith("ModelCheckpoint"):
            kept[key] = _model_checkpoint_state(state, folder, dropped)
        elif key.startswith("EarlyStopping"):
            kept[key] = {
                k: state[k]
                for k, kind in _EARLY_STOPPING.items()
                if k in state and (_score(state[k]) if kind is float else type(state[k]) is int)
            }
        else:
            dropped.append(f"callback state {key[:60]!r}")
    checkpoint["callbacks"] = kept
    return dropped


def _model_checkpoint_state(state: dict, folder: Path, dropped: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"dirpath": str(folder)}
    if isinstance(state.get("monitor"), str | None):
        out["monitor"] = state.get("monitor")
    for key in _CHECKPOINT_SCORES:
        if key in state and _score(state[key]):
            out[key] = state[key]
    best_k = state.get("best_k_models")
    out["best_k_models"] = {}
    for path, score in best_k.items() if isinstance(best_k, dict) else ():
        if _own_file(path, folder) and _score(score) and score is not None:
            out["best_k_models"][path] = score
        else:
            dropped.append(f"best_k_models entry {str(path)[:80]!r}")
    for key in _CHECKPOINT_PATHS:
        value = state.get(key, "")
        if value in ("", None) or _own_file(value, folder):
            out[key] = value or ""
        else:
            out[key] = ""
            dropped.append(f"{key} {str(value)[:80]!r}")
    if out["best_model_path"] and out["best_model_path"] not in out["best_k_models"]:
        out["best_k_models"][out["best_model_path"]] = out.get("best_model_score")
        if out["best_k_models"][out["best_model_path"]] is None:
            del out["best_k_models"][out["best_model_path"]]
    out.setdefault("best_model_score", None)
    return out


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made strict and tidy.

    Lightning's own writer swallows a PermissionError (a run then trains on with no
    checkpoints) and stages the file in the system temp folder, where a kill leaves it. Here
    the checkpoint is serialised in memory, written beside its target and renamed into place:
    any write error stops the run, and a killed save leaves only a partial file in the
    checkpoints folder, removed by the next save.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write(path, lambda f: f.write(buffer.getbuffer()))
