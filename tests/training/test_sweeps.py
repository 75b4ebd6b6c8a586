"""Sweeps beyond one process (submitit's local executor, the SLURM preset) and report.py."""

import csv
import importlib.util
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from fkp.training.report import load_runs, nme_labels, plot, table
from tests import ROOT
from tests.conftest import QUICK, compose_train

needs_submitit = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="needs the cluster extra: pip install -e '.[cluster]'",
)


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@needs_submitit
def test_two_job_sweep_through_submitit_local_then_one_report(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _python("train.py", "-m", "hydra/launcher=submitit_local", "trainer=debug",
                   "trainer.max_epochs=2", "test=false", "optimizer.lr=0.01,0.0001", *QUICK,
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sweep / ".submitit").is_dir()  # the jobs really went through submitit
    for job, lr in [("0", 0.01), ("1", 0.0001)]:
        with (sweep / job / "records.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert [int(r["epoch"]) for r in rows] == [0, 1]
        assert float(rows[0]["lr"]) == lr
        assert (sweep / job / "metrics.json").is_file()

    out = tmp_path / "report.png"
    proc = _python("report.py", str(sweep), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    rows = [line for line in lines if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert len(rows) == 2  # one row per run, named by the override that differs
    assert {"optimizer.lr=0.01", "optimizer.lr=0.0001"} == {r.split(" | ")[1] for r in rows}
    runs = load_runs([sweep])
    best = [r.value("val/nme") for r in runs]
    assert best == sorted(best) and all(0 < b < float("inf") for b in best)  # best first
    assert all(r.finished and len(r.records) == 2 for r in runs)
    assert out.stat().st_size > 20_000  # two panels of curves and a legend


def test_report_on_one_run_and_on_a_run_still_going(tmp_path):
    from fkp.cli.train import train

    train(compose_train(tmp_path / "done", [*QUICK, "trainer=debug", "trainer.max_epochs=2",
                                            "test=true"]))  # fmt: skip
    going = tmp_path / "going"
    going.mkdir()
    (going / "records.csv").write_text(
        "epoch,lr,train/loss,val/loss,val/nme,time_s\n0,0.001,1.0,0.9,0.30,5\n1,0.001,0.8,0.7,0.20,9\n"
    )
    runs = load_runs([tmp_path / "done", going])
    assert [r.path.name for r in runs] == ["going", "done"] or runs[0].value("val/nme") <= 0.2
    text = table(runs)
    assert "running or stopped" in text and "finished" in text
    done = next(r for r in runs if r.path.name == "done")
    assert f"{100 * done.metrics['test/nme']:.2f}%" in text
    going_row = next(line for line in text.splitlines() if str(going) in line)
    assert "20.00%" in going_row and "| 2 |" in going_row  # best epoch so far, 2 epochs


def test_report_names_the_folder_that_is_not_a_run(tmp_path):
    proc = _python("report.py", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'nowhere'}")
    proc = _python("report.py", str(tmp_path))
    assert proc.returncode == 2 and "no runs found" in proc.stderr


@needs_submitit
def test_slurm_preset_asks_for_a_gpu_per_task_and_requeues(tmp_path, monkeypatch):
    import submitit

    fake = tmp_path / "bin"  # submitit only renders the script if it can find srun
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")

    cfg = compose_train(tmp_path, ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["gpus_per_node"] == launcher["tasks_per_node"] == 1  # Lightning: task/GPU
    assert launcher["max_num_timeout"] > 0
    # the sbatch script submitit would submit, built from the preset as the plugin builds it
    executor = submitit.SlurmExecutor(folder=tmp_path / "submitit",
                                      max_num_timeout=launcher["max_num_timeout"])  # fmt: skip
    skip = {"_target_", "submitit_folder", "max_num_timeout", "name", "stderr_to_stdout"}
    params = {k: v for k, v in launcher.items() if k not in skip and v not in (None, {})}
    params["time"] = params.pop("timeout_min")
    params["mem"] = f"{params.pop('mem_gb')}GB"
    params["ntasks_per_node"] = params.pop("tasks_per_node")
    executor.update_parameters(**params)
    script = executor._make_submission_file_text("python train.py", "uid")
    for line in ["--gpus-per-node=1", "--ntasks-per-node=1", "--partition=gpu",
                 "--signal=USR2@120", "--time=720", "--cpus-per-task=8"]:  # fmt: skip
        assert line in script, script


def test_a_diverged_run_off_the_nme_axis_says_so_in_the_legend(tmp_path):
    for name, nme in (("good", "0.05"), ("diverged", "0.60")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "records.csv").write_text(
            f"epoch,lr,train/loss,val/loss,val/nme,time_s\n0,0.001,1.0,0.9,{nme},5\n"
        )
    runs = load_runs([tmp_path / "good", tmp_path / "diverged"])
    labels, lowest = nme_labels(runs)
    assert lowest == 5.0
    assert [("above the NME axis: its best is 60.0%" in label) for label in labels] == [
        r.path.name == "diverged" for r in runs
    ]
    assert plot(runs, tmp_path / "report.png").stat().st_size > 10_000
