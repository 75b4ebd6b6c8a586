"""Fault injection, part two: files crafted to make fkp act on other files, hostile demo
visitors, torn writes, settings the schema used to let through, and data that is wrong in
ways a finite-number check misses. Each test asserts one line (or a bounded, quiet outcome)
and that nothing outside the run, or already written, was touched."""

import shutil
from pathlib import Path

import pytest
import torch

from fkp.checkpoints import accepted_callback_states
from tests.conftest import QUICK, compose_train
from train import train

ROOT = Path(__file__).resolve().parent.parent


def _resumable_run(tiny_checkpoint: Path, run: Path) -> Path:
    """A run folder holding a copy of a trained last.ckpt (to craft and resume)."""
    (run / "checkpoints").mkdir(parents=True)
    return Path(shutil.copy(tiny_checkpoint, run / "checkpoints" / "last.ckpt"))


def _checkpoint_state(checkpoint: dict, monitor: str | None = "val/nme") -> dict:
    """The state of the ModelCheckpoint watching `monitor` (None: the last.ckpt writer)."""
    key = f"ModelCheckpoint{{'monitor': {monitor!r}"
    return next(v for k, v in checkpoint["callbacks"].items() if k.startswith(key))


# --- a checkpoint names no file fkp will delete, copy, read or write ----------------------


@pytest.mark.parametrize("scheme", ["local://", "file://", "", "../../"])
def test_a_resumed_checkpoint_cannot_make_the_run_delete_a_folder(tiny_checkpoint, tmp_path,
                                                                 scheme):  # fmt: skip
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep me")
    run = tmp_path / "run"
    last = _resumable_run(tiny_checkpoint, run)
    crafted = torch.load(last, weights_only=True)
    target = f"{scheme}{victim}" if scheme != "../../" else str(run / "checkpoints/../../precious")
    folder = str((run / "checkpoints").resolve())
    _checkpoint_state(crafted).update(
        dirpath=folder, best_model_path=target, kth_best_model_path=target,
        kth_value=torch.tensor(1e9), best_model_score=torch.tensor(1e9),
        best_k_models={target: torch.tensor(1e9)},
    )  # fmt: skip
    _checkpoint_state(crafted, None).update(dirpath=folder, best_model_path=target)
    torch.save(crafted, last)
    train(compose_train(run, [*QUICK, "trainer=debug", "trainer.max_epochs=2", "test=false",
                              "ckpt_path=last"]))  # fmt: skip
    assert (victim / "keep.txt").read_text() == "keep me"
    assert sorted(p.name for p in (run / "checkpoints").glob("epoch_*.ckpt"))  # a new best


def test_a_resumed_checkpoint_cannot_make_the_run_copy_a_file_in(tiny_checkpoint, tmp_path):
    secret = tmp_path / "elsewhere" / "secret.ckpt"
    secret.parent.mkdir()
    secret.write_text("not yours")
    last = _resumable_run(tiny_checkpoint, tmp_path / "old")
    crafted = torch.load(last, weights_only=True)
    _checkpoint_state(crafted).update(dirpath=str(secret.parent), best_model_path=str(secret),
                 best_k_models={str(secret): torch.tensor(0.001)})  # fmt: skip
    torch.save(crafted, last)
    new = tmp_path / "new"
    train(compose_train(new, [*QUICK, "trainer=debug", "trainer.max_epochs=2", "test=false",
                              f"ckpt_path={last}"]))  # fmt: skip
    copied = [p.name for p in (new / "checkpoints").iterdir()]
    assert "secret.ckpt" not in copied and secret.read_text() == "not yours"


def test_only_own_checkpoint_files_and_counters_are_accepted(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    own = str(folder / "epoch_001-nme_0.1000.ckpt")
    checkpoint = {"callbacks": {
        "ModelCheckpoint{'monitor': 'val/nme'}": {
            "dirpath": "/somewhere/else", "best_model_path": own,
            "best_model_score": torch.tensor(0.1), "best_k_models": {
                own: torch.tensor(0.1), "s3://bucket/x.ckpt": torch.tensor(0.05),
                str(tmp_path / "outside.ckpt"): torch.tensor(0.01), str(folder / "x.txt"): 0.2},
            "last_model_path": "/etc/passwd", "kth_best_model_path": own},
        "EarlyStopping{'monitor': 'val/nme'}": {"wait_count": 3, "patience": "x",
                                               "best_score": torch.tensor(0.1)},
        "SomethingElse": {"path": "/etc"},
    }}  # fmt: skip
    dropped = accepted_callback_states(checkpoint, folder / "last.ckpt")
    best = checkpoint["callbacks"]["ModelCheckpoint{'monitor': 'val/nme'}"]
    assert best["best_k_models"] == {own: torch.tensor(0.1)}
    assert best["dirpath"] == str(folder.resolve()) and best["last_model_path"] == ""
    assert checkpoint["callbacks"]["EarlyStopping{'monitor': 'val/nme'}"].keys() == {
        "wait_count", "best_score"}  # fmt: skip
    assert "SomethingElse" not in checkpoint["callbacks"] and len(dropped) == 5
