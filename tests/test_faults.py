"""Fault injection: hostile files, bad settings, kills, signals, full disks and read-only
folders. Each test asserts the exit status or error, one line without a traceback, and that
nothing already written was lost."""

import contextlib
import csv
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fkp import CONF_DIR
from fkp.cli.train import train
from fkp.data.download import ensure_dataset
from fkp.data.io import check_images_exist, read_keypoints_csv
from fkp.errors import FkpError
from fkp.models.backbones import load_pretrained
from fkp.models.stored import read_checkpoint
from fkp.runtime.predictor import FaceKeypointDetector, pretrained_path
from fkp.runtime.preprocess import read_preprocessing
from fkp.training.callbacks import BestCheckpoint
from fkp.training.checkpoints import AtomicCheckpointIO
from tests import ROOT
from tests.conftest import QUICK, compose_train


def _run(script: str, *args: str, cwd: Path = ROOT, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / script), *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)  # fmt: skip


def _one_line_error(err: str, text: str) -> None:
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and text in last, err[-3000:]


def _records(run: Path) -> list[dict[str, str]]:
    with (run / "records.csv").open() as f:
        return list(csv.DictReader(f))


@contextlib.contextmanager
def _mounted(path: Path, options: str):
    """A tmpfs at path (root only: a size-limited or read-only folder, as users meet them);
    skips where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True)  # fmt: skip
    if done.returncode:
        pytest.skip("needs a tmpfs mount (root in a container that allows it)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# --- files passed in are data, never code -------------------------------------------------


class _OpensAFile:
    """Unpickling this object would call open(victim, "w"), emptying the file."""

    def __init__(self, victim: str) -> None:
        self.victim = victim

    def __reduce__(self):
        return (open, (self.victim, "w"))


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    return victim


def test_a_checkpoint_cannot_make_fkp_call_anything(tiny_checkpoint, tmp_path):
    victim = _victim(tmp_path)
    crafted = torch.load(tiny_checkpoint, weights_only=True)
    step = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    crafted["hyper_parameters"]["data_config"]["eval_transforms"] = [step]
    torch.save(crafted, tmp_path / "crafted.ckpt")
    with pytest.raises(FkpError, match=r"'builtins.open' is not an allowed transform"):
        FaceKeypointDetector.from_checkpoint(tmp_path / "crafted.ckpt")
    # nested inside an allowed container transform, and albumentations' Lambda
    step = {"_target_": "albumentations.OneOf", "transforms": [step]}
    crafted["hyper_parameters"]["data_config"]["eval_transforms"] = [step]
    torch.save(crafted, tmp_path / "nested.ckpt")
    with pytest.raises(FkpError, match=r"not an allowed transform"):
        FaceKeypointDetector.from_checkpoint(tmp_path / "nested.ckpt")
    crafted["hyper_parameters"]["data_config"]["eval_transforms"] = [
        {"_target_": "albumentations.Lambda", "image": "os.system"}
    ]
    torch.save(crafted, tmp_path / "lambda.ckpt")
    with pytest.raises(FkpError, match=r"not an allowed transform"):
        FaceKeypointDetector.from_checkpoint(tmp_path / "lambda.ckpt")
    # a pickled object that would run code when loaded
    crafted["hyper_parameters"]["payload"] = _OpensAFile(str(victim))
    torch.save(crafted, tmp_path / "pickled.ckpt")
    with pytest.raises(FkpError, match=r"holds Python objects"):
        read_checkpoint(tmp_path / "pickled.ckpt")
    assert victim.read_text() == "keep me"


def test_predict_and_eval_refuse_a_crafted_checkpoint(tiny_checkpoint, tmp_path, photos):
    victim = _victim(tmp_path)
    crafted = torch.load(tiny_checkpoint, weights_only=True)
    crafted["hyper_parameters"]["data_config"]["eval_transforms"] = [
        {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    ]
    torch.save(crafted, tmp_path / "crafted.ckpt")
    for script, extra in [("predict.py", [f"input={photos / 'obamas.jpg'}"]), ("export.py", [])]:
        proc = _run(script, f"ckpt_path={tmp_path / 'crafted.ckpt'}", *extra,
                    f"hydra.run.dir={tmp_path / script}")  # fmt: skip
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2
        _one_line_error(err, "crafted.ckpt eval_transforms[0]: 'builtins.open' is not an allowed")
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize("style", ["fkp", "albumentations"])
def test_an_export_json_cannot_make_fkp_call_anything(tmp_path, style):
    victim = _victim(tmp_path)
    settings = {"image_size": 64, "grayscale": True, "margin": 0.5, "frame_scale": 1.0,
                "mean": [0.5], "std": [0.25]}  # fmt: skip
    if style == "fkp":
        settings["eval_transforms"] = [{"_target_": "builtins.open", "file": str(victim),
                                        "mode": "w"}]  # fmt: skip
        record = {"network": "x", "preprocessing": settings}
    else:  # the older albumentations to_dict form
        step = {"__class_fullname__": "builtins.open", "file": str(victim), "mode": "w"}
        record = {"network": "x", "preprocessing": settings,
                  "eval_pipeline": {"transform": {"__class_fullname__": "Compose",
                                                  "transforms": [step]}}}  # fmt: skip
    (tmp_path / "m.json").write_text(json.dumps(record))
    with pytest.raises(FkpError, match=r"not an allowed transform"):
        read_preprocessing(tmp_path / "m.onnx")
    assert victim.read_text() == "keep me"


def test_an_older_export_json_still_loads(tmp_path):
    import albumentations as A

    pipeline = A.to_dict(A.Compose([A.CenterCrop(64, 64)]))
    settings = {"image_size": 64, "grayscale": True, "margin": 0.5, "frame_scale": 1.116,
                "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}  # fmt: skip
    record = {"network": "fast_net", "preprocessing": settings, "eval_pipeline": pipeline}
    (tmp_path / "m.json").write_text(json.dumps(record))
    transform = read_preprocessing(tmp_path / "m.onnx")
    assert [type(t).__name__ for t in transform.steps] == ["dict"]  # stored, read as data
    assert not transform.native  # albumentations' own form runs through albumentations
    pixels, _ = transform.sample(np.zeros((80, 80), np.uint8), np.array([40.0, 40.0, 60.0]))
    assert pixels.shape == (1, 64, 64)


def test_downloaded_pretrained_weights_are_loaded_weights_only(tmp_path, monkeypatch):
    from fkp.models.backbones import BasicBlock, ResNet

    victim = _victim(tmp_path)
    buffer = io.BytesIO()
    torch.save({"conv1.weight": _OpensAFile(str(victim))}, buffer)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(buffer.getvalue())))
            self.end_headers()
            self.wfile.write(buffer.getvalue())

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/resnet18-f37072fd.pth"
        with pytest.raises(FkpError, match=r"could not load pretrained resnet18"):
            load_pretrained(ResNet(BasicBlock, (2, 2, 2, 2)), "resnet18", url)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert victim.read_text() == "keep me"


# --- every bad setting is one line, before any work ------------------------------------------


@pytest.mark.parametrize(
    "override,key",
    [
        ("data.batch_size=0", "data.batch_size=0"),
        ("optimizer.lr=-1", "optimizer.lr=-1"),
        ("optimizer.lr=nan", "optimizer.lr=nan"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay=-1"),
        ("data.num_workers=-1", "data.num_workers=-1"),
        ("seed=abc", "seed='abc'"),
        ("data.image_size=0", "data.image_size=0"),
        ("data.margin=-1", "data.margin=-1"),
        ("data.grayscale=maybe", "data.grayscale='maybe'"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0"),
        ("model.network_kwargs.channels=[]", "model.network_kwargs.channels=[]"),
        ("data.val_fraction=1.5", "data.val_fraction=1.5"),
    ],
)
def test_a_bad_setting_is_named_with_its_fix_before_anything_runs(tmp_path, override, key):
    cfg = compose_train(tmp_path, [*QUICK, override, "data.data_dir=/nonexistent"])
    with pytest.raises(FkpError) as error:
        train(cfg)
    message = str(error.value)
    assert message.startswith(f"{key} is not allowed: use ") and ", e.g. " in message
    assert "\n" not in message and not (tmp_path / "checkpoints").exists()


def test_a_bad_transform_setting_is_one_short_line(tmp_path):
    cfg = compose_train(tmp_path, [*QUICK, "data.train_transforms.1.p=7"])
    with pytest.raises(FkpError, match=r"^data.train_transforms\[1\] \(albumentations"):
        train(cfg)


def test_data_url_is_a_setting(tmp_path):
    cfg = compose_train(tmp_path, ["data.url=/somewhere/train-test-data.zip"])
    assert cfg.data.url == "/somewhere/train-test-data.zip"


# --- data files: validated before fit, one line each ---------------------------------------


def test_header_only_and_latin1_csvs_and_folder_images(tmp_path):
    header = "," + ",".join(str(i) for i in range(136)) + "\n"
    (tmp_path / "header.csv").write_text(header)
    with pytest.raises(FkpError, match=r"header.csv: a header row but no data rows"):
        read_keypoints_csv(tmp_path / "header.csv")
    row = "Jos\xe9_01.jpg," + ",".join(str(1 + i % 5) for i in range(136)) + "\n"
    (tmp_path / "latin1.csv").write_bytes((header + row).encode("latin-1"))
    with pytest.raises(FkpError, match=r"latin1.csv, line 2: not UTF-8 text .* save the CSV"):
        read_keypoints_csv(tmp_path / "latin1.csv")
    (tmp_path / "ok.csv").write_text(header + row.replace("\xe9", "e"))
    (tmp_path / "Jose_01.jpg").mkdir()
    with pytest.raises(FkpError, match=r"folders, not image files: Jose_01.jpg"):
        check_images_exist(read_keypoints_csv(tmp_path / "ok.csv"), tmp_path)


def test_a_bad_test_csv_stops_the_run_before_training(tiny_data, tmp_path):
    lines = (tiny_data / "test_frames_keypoints.csv").read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",oops"
    (tiny_data / "test_frames_keypoints.csv").write_text("\n".join(lines) + "\n")
    cfg = compose_train(tmp_path / "run", [*QUICK, f"data.data_dir={tiny_data}", "trainer=debug"])
    with pytest.raises(FkpError, match=r"test_frames_keypoints.csv, line 4, .*'oops'"):
        train(cfg)
    assert not (tmp_path / "run" / "records.csv").exists()


def test_a_partial_download_of_a_killed_process_is_removed(tmp_path, data_dir):
    parent = tmp_path / "data"
    stale = parent / ".youtube_faces-partial-999999-abc" / "extracted"
    stale.mkdir(parents=True)
    (stale / "big.bin").write_bytes(b"x" * 1000)
    archive = tmp_path / "release.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ["training_frames_keypoints.csv", "test_frames_keypoints.csv"]:
            zf.write(data_dir / name, name)
    ensure_dataset(parent / "youtube_faces", url=str(archive))
    assert sorted(p.name for p in parent.iterdir()) == ["youtube_faces"]


# --- runs: unique folders, nothing written lost ----------------------------------------------


def test_two_runs_started_in_the_same_second_keep_their_own_folders(tmp_path):
    args = [*QUICK, "trainer=debug", "trainer.max_epochs=1", "test=false",
            f"paths.log_dir={tmp_path}"]  # fmt: skip
    procs = [_run("train.py", *args) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    runs = sorted((tmp_path / "train").iterdir())
    assert len(runs) == 2
    for run in runs:
        assert (run / "metrics.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
        assert [r["epoch"] for r in _records(run)] == ["0"]


def test_an_unwritable_run_folder_fails_before_training(tmp_path):
    with _mounted(tmp_path / "ro", "ro,size=1m") as readonly:
        cfg = compose_train(readonly / "run", [*QUICK, "trainer=debug"])
        with pytest.raises(FkpError, match=r"cannot write there \(Read-only file system\)"):
            train(cfg)


def test_checkpoint_write_errors_are_not_swallowed(tmp_path):
    (tmp_path / "checkpoints").write_text("a file where the folder should be")
    with pytest.raises(OSError):
        AtomicCheckpointIO().save_checkpoint({"x": 1}, tmp_path / "checkpoints" / "last.ckpt")


def test_a_killed_save_leaves_no_temp_file_and_the_next_save_tidies(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "last.ckpt").write_bytes(b"the earlier checkpoint")
    (folder / ".last.ckpt.partial-999999").write_bytes(b"x" * 1000)  # a killed writer's
    AtomicCheckpointIO().save_checkpoint({"x": torch.ones(3)}, folder / "last.ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]
    assert torch.equal(torch.load(folder / "last.ckpt")["x"], torch.ones(3))

    class Exploding(io.BytesIO):
        def getbuffer(self):
            raise OSError(28, "No space left on device")

    io_ = AtomicCheckpointIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("fkp.files.io.BytesIO", Exploding)
        with pytest.raises(OSError):
            io_.save_checkpoint({"x": torch.zeros(3)}, folder / "last.ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]  # old one intact
    assert torch.equal(torch.load(folder / "last.ckpt")["x"], torch.ones(3))


def test_a_full_disk_is_one_line_and_keeps_what_was_written(tmp_path):
    with _mounted(tmp_path / "small", "size=2m") as small:
        run = small / "run"
        proc = _run("train.py", *QUICK, "trainer=debug", f"hydra.run.dir={run}")
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 2
        _one_line_error(err, "No space left on device")
        assert (run / ".hydra" / "config.yaml").read_text().startswith("task_name")
        leftovers = [p.name for p in (run / "checkpoints").iterdir() if "partial" in p.name]
        assert leftovers == []


# --- signals and resume ----------------------------------------------------------------------


def test_sigterm_to_the_process_group_saves_and_exits_non_zero(tmp_path):
    run = tmp_path / "run"
    proc = _run("train.py", *QUICK, "data.num_workers=2", "trainer=debug",
                "trainer.max_epochs=50", "trainer.limit_train_batches=6",
                f"hydra.run.dir={run}", start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run / "records.csv").exists() and len(_records(run)) >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before the signal"
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    _one_line_error(err, "stopped by a signal during epoch")
    assert "saved to" in err and "resume with ckpt_path=" in err
    ended = json.loads((run / "metrics.json").read_text())["ended"]  # and in train.log
    assert ended["how"] == "interrupted" and ended["resume"].startswith("ckpt_path=")
    assert "run stopped by a signal during epoch" in (run / "train.log").read_text()
    state = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert state["global_step"] >= 6  # at least the first epoch's steps


def test_resume_refusals_are_one_line(tiny_checkpoint, tmp_path):
    def attempt(name: str, *overrides: str, ckpt: Path = tiny_checkpoint) -> str:
        cfg = compose_train(tmp_path / name, [*QUICK, "trainer=debug", f"ckpt_path={ckpt}",
                                              *overrides])  # fmt: skip
        with pytest.raises(FkpError) as error:
            train(cfg)
        assert "\n" not in str(error.value) and str(error.value).endswith(".")
        return str(error.value)

    data = tiny_checkpoint.read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    assert "not a readable checkpoint (truncated" in attempt("a", ckpt=tmp_path / "truncated.ckpt")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    assert "the file is empty" in attempt("b", ckpt=tmp_path / "empty.ckpt")
    assert "trained with optimizer Adam, not SGD" in attempt("c", "optimizer=sgd")
    assert "has already trained 1 epochs; raise trainer.max_epochs" in attempt(
        "d", "trainer.max_epochs=1"
    )
    assert "holds weights only" in attempt("e", ckpt=pretrained_path())
    assert "does not fit model=fast_net" in attempt("f", "model=fast_net")


def test_resume_into_a_new_folder_keeps_the_best_checkpoint_of_the_whole_run(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    torch.save({"w": 1}, old / "epoch_000-nme_0.1000.ckpt")
    callback = BestCheckpoint(dirpath=new, monitor="val/nme", mode="min", save_top_k=1)
    callback.load_state_dict({
        "dirpath": str(old), "best_model_score": torch.tensor(0.1),
        "best_model_path": str(old / "epoch_000-nme_0.1000.ckpt"),
        "best_k_models": {str(old / "epoch_000-nme_0.1000.ckpt"): torch.tensor(0.1)},
    })  # fmt: skip
    assert callback.best_model_path == str(new / "epoch_000-nme_0.1000.ckpt")
    assert (new / "epoch_000-nme_0.1000.ckpt").is_file()
    assert float(callback.best_model_score) == pytest.approx(0.1)
    trainer = SimpleNamespace(
        strategy=SimpleNamespace(reduce_boolean_decision=lambda x, all=True: x)
    )
    assert not callback.check_monitor_top_k(trainer, torch.tensor(0.2))  # worse: not kept
    assert callback.check_monitor_top_k(trainer, torch.tensor(0.05))


def test_metrics_json_holds_the_best_checkpoints_validation(tmp_path):
    cfg = compose_train(tmp_path, [*QUICK, "trainer=debug", "trainer.max_epochs=3", "seed=3",
                                   "optimizer.lr=0.01", "test=false"])  # fmt: skip
    metrics = train(cfg)
    best = min(float(r["val/nme"]) for r in _records(tmp_path))
    assert metrics["val/nme"] == pytest.approx(best, rel=1e-5)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["val/nme"] == metrics["val/nme"]


# --- predict.py and export.py -----------------------------------------------------------------


def _video_with_a_damaged_frame(path: Path, frames: int = 12, damaged: int = 5) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 80))
    for i in range(frames):
        writer.write(np.random.default_rng(i).integers(0, 255, (80, 96, 3), dtype=np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    data[starts[damaged] : starts[damaged + 1] - 8] = bytes(starts[damaged + 1] - 8
                                                            - starts[damaged])  # fmt: skip
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_video_frame_is_skipped_not_the_rest(tmp_path):
    video = _video_with_a_damaged_frame(tmp_path / "clip.avi")
    proc = _run("predict.py", f"input={video}", f"hydra.run.dir={tmp_path / 'out'}")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "1 damaged frame skipped" in err
    record = json.loads((tmp_path / "out" / "clip_frames.json").read_text())
    assert len(record["frames"]) == 12 and record["damaged_frames"] == 1
    assert record["frames"][5].get("damaged") and not record["frames"][6].get("damaged")
    written = cv2.VideoCapture(str(tmp_path / "out" / "clip_keypoints.mp4"))
    assert written.get(cv2.CAP_PROP_FRAME_COUNT) == 12


def test_a_video_writer_that_cannot_open_is_reported(tmp_path, monkeypatch):
    from fkp.cli import predict

    class Closed:
        def __init__(self, *args):
            pass

        def isOpened(self):  # noqa: N802 (OpenCV's name)
            return False

    video = _video_with_a_damaged_frame(tmp_path / "clip.avi")
    monkeypatch.setattr(predict.cv2, "VideoWriter", Closed)
    det = FaceKeypointDetector.from_pretrained()
    settings = OmegaConf.load(CONF_DIR / "predict.yaml").video
    cfg = OmegaConf.create({"parts": True, "video": settings})
    with pytest.raises(FkpError, match=r"clip_keypoints.mp4: OpenCV cannot write this video"):
        predict.predict_video(video, det, cfg, tmp_path, "clip")


def test_inputs_with_the_same_name_in_different_folders_keep_their_outputs(tmp_path, photos):
    for folder in ["a", "b"]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "face.jpg").write_bytes((photos / "obamas.jpg").read_bytes())
    proc = _run("predict.py", f"input={tmp_path}/*/face.jpg", f"hydra.run.dir={tmp_path / 'o'}")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    out = tmp_path / "o"
    assert (out / "a_face.png").is_file() and (out / "b_face.png").is_file()
    crops = sorted(p.name for p in (out / "faces").iterdir())
    assert crops == ["a_face_00.png", "a_face_01.png", "b_face_00.png", "b_face_01.png"]


def test_export_accepts_the_shipped_model(tmp_path):
    out = tmp_path / "slim.ckpt"
    proc = _run("export.py", "ckpt_path=pretrained", "format=ckpt", f"output={out}",
                f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert FaceKeypointDetector.from_checkpoint(out).transform.image_size == 112


# --- sweeps ----------------------------------------------------------------------------------


def test_a_failed_sweep_job_does_not_stop_the_others(tmp_path):
    proc = _run("train.py", "-m", *QUICK, "trainer=debug", "trainer.max_epochs=1", "test=false",
                "optimizer.lr=nan,0.001", f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    _, err = proc.communicate(timeout=600)
    assert proc.returncode != 0  # the sweep reports that a job failed ...
    assert "error: optimizer.lr=nan is not allowed" in err
    assert (tmp_path / "1" / "metrics.json").is_file()  # ... after running the rest


def test_a_failed_optuna_trial_is_recorded_and_the_study_goes_on(tmp_path):
    proc = _run("train.py", "hparams_search=optuna", *QUICK, "hydra.sweeper.n_trials=4",
                "trainer=debug", "trainer.max_epochs=1", "test=false",
                "hydra.sweeper.params={optimizer.weight_decay:'choice(-1.0, 0.0001)'}",
                f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert "error: optimizer.weight_decay=-1.0 is not allowed" in err
    finished = [j for j in "0123" if (tmp_path / j / "metrics.json").is_file()]
    assert 0 < len(finished) < 4
    results = (tmp_path / "optimization_results.yaml").read_text()
    assert "optimizer.weight_decay: 0.0001" in results
