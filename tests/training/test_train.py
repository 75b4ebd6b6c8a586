import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fkp.cli.train import train
from fkp.errors import FkpError
from fkp.training.module import KeypointModule
from tests import ROOT
from tests.conftest import QUICK, compose_train


def _records(run: Path) -> list[dict[str, str]]:
    with (run / "records.csv").open() as f:
        return list(csv.DictReader(f))


def _train_py(*args: str, cwd: Path = ROOT, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *[a for a in args if a.startswith("-")],
         *QUICK, *[a for a in args if not a.startswith("-")]],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )  # fmt: skip


@pytest.mark.parametrize("model", ["custom_cnn", "resnet18"])
def test_fast_dev_run(tmp_path, model):
    cfg = compose_train(tmp_path, [*QUICK, f"model={model}", "+trainer.fast_dev_run=true"])
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["val/nme"]))
    assert (tmp_path / "metrics.json").is_file()


def test_records_csv_loss_curve_tensorboard_and_metrics(tmp_path):
    cfg = compose_train(tmp_path, [*QUICK, "trainer=debug", "trainer.max_epochs=3", "seed=0",
                                   "optimizer=adamw", "scheduler=cosine"])  # fmt: skip
    metrics = train(cfg)
    rows = _records(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert all(float(r[k]) > 0 for r in rows for k in ["lr", "train/loss", "val/loss", "val/nme"])
    assert float(rows[0]["lr"]) == 0.001 > float(rows[2]["lr"])  # cosine, recorded per epoch
    times = [float(r["time_s"]) for r in rows]
    assert 0 < times[0] < times[1] < times[2]  # training wall time so far
    assert (tmp_path / "loss_curve.png").stat().st_size > 10_000

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test/nme"] == metrics["test/nme"] > 0
    assert {"test/fr", "test/auc", "test/fr_0.08", "test/auc_0.08", "test/mpe_px"} <= set(saved)
    assert Path(saved["best_checkpoint"]).is_file()

    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/nme", "val/fr", "val/auc", "epoch"} <= tags
    assert "lr" in tags  # one name whatever the optimizer, so runs overlay
    val_nme = [e.value for e in events.Scalars("val/nme")]
    # one per epoch, then the final value logged with the hyperparameters (hparams tab)
    assert val_nme[:3] == pytest.approx([float(r["val/nme"]) for r in rows], rel=1e-5)
    assert val_nme[3] == pytest.approx(metrics["val/nme"], rel=1e-5)
    hparams = events.PluginTagToContent("hparams")  # TensorBoard's HPARAMS tab
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert "val/predictions" in events.Tags()["images"]  # the last epoch always logs the grid


def test_checkpoints_keep_the_slash_out_of_names_and_restore_alone(tmp_path):
    train(compose_train(tmp_path, [*QUICK, "trainer=debug", "trainer.max_epochs=1"]))
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(n.startswith("epoch_000-nme_") for n in ckpts)
    model = KeypointModule.restore(tmp_path / "checkpoints" / "last.ckpt")
    assert model.hparams.network == "custom_cnn" and model.hparams.image_size == 64
    assert model.hparams.data_config["margin"] == 0.5  # what prediction needs to frame faces
    assert "data_dir" not in model.hparams.data_config  # no machine paths in checkpoints
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 68, 2)


def test_seed_makes_deterministic_runs_identical(tmp_path):
    args = [*QUICK, "trainer=debug", "seed=7", "trainer.deterministic=true", "test=false"]
    first = train(compose_train(tmp_path / "a", args))
    second = train(compose_train(tmp_path / "b", args))
    assert first["val/nme"] == second["val/nme"] and first["val/loss"] == second["val/loss"]


def test_nan_loss_stops_naming_epoch_and_batch():
    model = KeypointModule(image_size=32, loss=lambda p, t: (p - t).sum() * float("nan"))
    batch = {"image": torch.zeros(2, 1, 32, 32), "keypoints": torch.zeros(2, 68, 2)}
    with pytest.raises(FkpError, match=r"train loss became nan at epoch 0, batch 3"):
        model.training_step(batch, 3)


def test_multirun_runs_each_job_in_its_own_directory(tmp_path):
    proc = _train_py("-m", "trainer=debug", "trainer.max_epochs=1", "optimizer.lr=0.01,0.001",
                     f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    lrs = [float(_records(job)[0]["lr"]) for job in jobs]
    assert lrs == [0.01, 0.001]
    assert all((job / "metrics.json").is_file() for job in jobs)
    logs = [(job / "train.log").read_text() for job in jobs]
    decoded = re.search(r"decoding (\d+) images of training_frames_keypoints.csv", logs[0])
    assert decoded and "decoding" not in logs[1]  # one process: the images decoded once
    assert f"reusing the {decoded[1]} images the previous job decoded" in logs[1]


@pytest.mark.parametrize("how", ["ckpt_path=last", "SLURM requeue"])
def test_a_run_resumes_in_its_own_folder(tmp_path, monkeypatch, how):
    args = [*QUICK, "trainer=debug", "test=false", "seed=0"]
    train(compose_train(tmp_path, [*args, "trainer.max_epochs=2"]))
    with (tmp_path / "records.csv").open("a") as f:  # an epoch recorded after the checkpoint
        f.write("2,0.001,1,1,1,999\n")
    if how == "SLURM requeue":  # a preempted sweep job is restarted in the same folder
        monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
        resume = []
    else:
        resume = ["ckpt_path=last"]
    train(compose_train(tmp_path, [*args, "trainer.max_epochs=3", *resume]))
    rows = _records(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # continued, the stale row replaced
    times = [float(r["time_s"]) for r in rows]
    assert times[0] < times[1] < times[2] < 999  # the clock continues from the checkpoint


def test_ckpt_path_last_in_a_new_folder_starts_from_scratch(tmp_path):
    train(compose_train(tmp_path, [*QUICK, "trainer=debug", "trainer.max_epochs=1", "test=false",
                                   "ckpt_path=last"]))  # fmt: skip
    assert [int(r["epoch"]) for r in _records(tmp_path)] == [0]


def test_resume_after_a_kill_loses_at_most_the_epoch_in_progress(tmp_path):
    first = tmp_path / "first"
    args = ["trainer=debug", "trainer.max_epochs=6", "trainer.limit_train_batches=6", "seed=1"]
    proc = _train_py(*args, f"hydra.run.dir={first}", start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (first / "records.csv").exists() and len(_records(first)) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    recorded = len(_records(first))
    last = first / "checkpoints" / "last.ckpt"
    saved_epoch = torch.load(last, weights_only=False, map_location="cpu")["epoch"]
    # Records are written as an epoch ends, its checkpoint just after (Lightning runs checkpoint
    # callbacks last), so the newest recorded epoch may be the one in progress.
    assert saved_epoch >= recorded - 2
    assert recorded < 6

    second = tmp_path / "second"
    proc = _train_py(*args, f"hydra.run.dir={second}", f"ckpt_path={last}")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    epochs = [int(r["epoch"]) for r in _records(second)]
    assert epochs == list(range(6))  # the earlier rows were carried over, none twice
    times = [float(r["time_s"]) for r in _records(second)]
    assert times == sorted(times)  # the resumed run's clock continues from the carried rows
    resumed = torch.load(second / "checkpoints" / "last.ckpt", weights_only=False)
    assert (resumed["epoch"], resumed["global_step"]) == (5, 36), (
        resumed["epoch"],
        resumed["global_step"],
    )


def test_ddp_on_two_cpu_processes_reduces_metrics_over_both_ranks(tmp_path):
    # 8 validation faces (the test split), 2 ranks x batch 4: no padding by the sampler.
    proc = _train_py("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                     "trainer.max_epochs=1", "trainer.limit_train_batches=2", "data.limit=8",
                     "data.val_split=test", "test=false", "logger=csv",
                     f"hydra.run.dir={tmp_path}")  # fmt: skip
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    ddp_nme = json.loads((tmp_path / "metrics.json").read_text())["val/nme"]
    # the same checkpoint validated in one process over all 8 faces
    cfg = compose_train(tmp_path / "check", [*QUICK, "data.limit=8", "data.val_split=test"])
    from fkp.config import build

    dm = build(cfg.data)
    dm.setup("fit")
    model = KeypointModule.restore(tmp_path / "checkpoints" / "last.ckpt")
    from pytorch_lightning import Trainer

    result = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False).validate(
        model, datamodule=dm
    )
    assert ddp_nme == pytest.approx(result[0]["val/nme"], rel=1e-4)


def test_bad_input_gets_one_line(tmp_path):
    proc = _train_py("model=nope", f"hydra.run.dir={tmp_path / 'a'}")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and err.strip().splitlines() == [
        "error: model=nope: no such option; use one of custom_cnn, fast_net, resnet18, resnet34, "
        "resnet50."
    ]

    env = {**os.environ, "FKP_DATA_DIR": str(tmp_path / "absent")}
    proc = _train_py("data.download=false", "data.data_dir=${oc.env:FKP_DATA_DIR}",
                     f"hydra.run.dir={tmp_path / 'b'}", env=env)  # fmt: skip
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "Traceback" not in err
    assert "data folder not found; set FKP_DATA_DIR" in err.strip().splitlines()[-1]


def test_checkpoint_that_does_not_fit_names_both(tmp_path):
    train(compose_train(tmp_path / "cnn", [*QUICK, "trainer=debug", "trainer.max_epochs=1",
                                           "test=false"]))  # fmt: skip
    ckpt = tmp_path / "cnn" / "checkpoints" / "last.ckpt"
    cfg = compose_train(tmp_path / "r18", [*QUICK, "model=resnet18", f"ckpt_path={ckpt}"])
    with pytest.raises(FkpError, match=r"last.ckpt does not fit model=resnet18"):
        train(cfg)


def test_optuna_search_minimises_val_nme(tmp_path):
    proc = _train_py(
        "hparams_search=optuna", "hydra.sweeper.n_trials=2", "trainer=debug",
        "trainer.max_epochs=1", "test=false", f"hydra.sweep.dir={tmp_path}",
    )  # fmt: skip
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    results = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert "optimizer.lr" in results.best_params
    trials = [json.loads((tmp_path / j / "metrics.json").read_text())["val/nme"] for j in "01"]
    assert results.best_value == pytest.approx(min(trials))


def test_every_experiment_preset_runs(tmp_path):
    proc = _train_py("-m", "experiment=glob(*)", "trainer=debug", "trainer.max_epochs=1",
                     "test=false", f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(jobs) >= 2 and all((job / "metrics.json").is_file() for job in jobs)


def test_every_run_says_how_it_ended(tmp_path):
    """Finished, stopped early (when, why, the best epoch), failed: in the console, train.log
    and metrics.json."""
    done = _train_py("trainer=debug", "trainer.max_epochs=2", f"hydra.run.dir={tmp_path / 'a'}")
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-2000:]
    ended = json.loads((tmp_path / "a" / "metrics.json").read_text())["ended"]
    assert ended["how"] == "finished" and (ended["epochs"], ended["max_epochs"]) == (2, 2)
    line = ended["sentence"]
    assert line.startswith("run finished: 2 of 2 epochs; best epoch ") and "val/nme" in line
    assert line in out and line in (tmp_path / "a" / "train.log").read_text()
    # quiet by default: one model line, no notices, warnings, tables or progress bars
    assert sum(x.startswith("model: custom_cnn with the regression head, ") for x in
               out.splitlines()) == 1  # fmt: skip
    for noise in ("GPU available", "detect_anomaly", "Warning", "┃", "Epoch 0/", "Tip"):
        assert noise not in out + err, noise
    assert err.strip() == ""

    # no improvement by 10 NME points can happen: early stopping ends the run after 2 epochs
    done = _train_py(
        "trainer=debug",
        "trainer.max_epochs=6",
        "callbacks.early_stopping.patience=1",
        "+callbacks.early_stopping.min_delta=10",
        f"hydra.run.dir={tmp_path / 'b'}",
    )
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-2000:]
    ended = json.loads((tmp_path / "b" / "metrics.json").read_text())["ended"]
    assert ended["how"] == "stopped early" and ended["epochs"] == 2
    assert ended["best_epoch"] in (0, 1)
    line = ended["sentence"]
    assert line.startswith("run stopped early after 2 of 6 epochs (val/nme had not improved by "
                           "10 for 1 epoch); best epoch ")  # fmt: skip
    assert line in out and line in (tmp_path / "b" / "train.log").read_text()


def test_a_failed_run_records_why(tmp_path):
    """A learning rate that blows the weights up: the loss turns non-finite and the run stops;
    metrics.json and train.log say why."""
    cfg = compose_train(tmp_path, [*QUICK, "trainer=debug", "trainer.max_epochs=3",
                                   "optimizer.lr=1e30"])  # fmt: skip
    with pytest.raises(FkpError, match="train loss became"):
        train(cfg)
    ended = json.loads((tmp_path / "metrics.json").read_text())["ended"]
    assert ended["how"] == "failed" and "train loss became" in ended["why"]


def test_verbose_brings_lightnings_details_back(tmp_path):
    done = _train_py("trainer=debug", "trainer.max_epochs=1", "verbose=true",
                     f"hydra.run.dir={tmp_path}")  # fmt: skip
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-2000:]
    assert "GPU available: False" in out + err and "Total params" in out + err
    assert not any(x.startswith("model: ") for x in out.splitlines())
