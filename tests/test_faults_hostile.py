"""Fault injection, part two: files crafted to make fkp act on other files, hostile demo
visitors, torn writes, settings the schema used to let through, and data that is wrong in
ways a finite-number check misses. Each test asserts one line (or a bounded, quiet outcome)
and that nothing outside the run, or already written, was touched."""

import contextlib
import csv
import json
import os
import shutil
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fkp.cli.train import train
from fkp.errors import FkpError
from fkp.models.stored import read_checkpoint
from fkp.plain import check_plain_data
from fkp.runtime.predictor import FaceKeypointDetector
from fkp.runtime.preprocess import read_preprocessing
from fkp.training.checkpoints import accepted_callback_states
from tests.conftest import QUICK, compose_train
from tests.test_faults import _mounted, _one_line_error, _run


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


# --- the demo: visitors choose from a list, uploads are measured by what decodes them -------


def _demo():
    pytest.importorskip("gradio", reason="needs the demo extra (pip install -e '.[demo]')")
    from fkp.cli import demo as module

    return module


def _demo_config(log_dir: Path):
    from fkp.config import compose_config

    return compose_config({}, [f"paths.log_dir={log_dir}", "hydra.run.dir=x"], "demo")


def test_demo_visitors_cannot_name_a_model_file(tmp_path):
    demo = _demo()
    cfg = _demo_config(tmp_path)
    crafted = tmp_path / "uploaded.ckpt"
    torch.save({"state_dict": {}}, crafted)
    choices = demo.model_choices(tmp_path, ["pretrained"])
    assert choices == ["pretrained", "newest"]
    models = demo.Models(cfg, choices)
    for spec in [str(crafted), "/etc/passwd", "../fkp/weights/fast.ckpt"]:
        with pytest.raises(FkpError, match=r"^choose a model from the list\.$"):
            models.get(spec, 2, False)
    assert models.loaded == {}


def test_the_demo_keeps_a_bounded_number_of_models(tmp_path, monkeypatch):
    demo = _demo()
    monkeypatch.setattr(demo, "CACHED_MODELS", 2)
    models = demo.Models(_demo_config(tmp_path), ["pretrained"])
    first = models.get("pretrained", 0, False)
    models.get("pretrained", 1, False)
    models.get("pretrained", 2, False)
    assert len(models.loaded) == 2 and first not in models.loaded.values()


def _png(width: int, height: int, good_crc: bool = True) -> bytes:
    """A gray PNG of the given size (all black); good_crc=False adds a text chunk with a
    damaged CRC, which PIL refuses and libpng skips."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
        crc = zlib.crc32(kind + data) if crc is None else crc
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = zlib.compress(b"\0" * ((width + 1) * height), 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    text = b"" if good_crc else chunk(b"tEXt", b"Comment\0x", crc=0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + text + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))  # fmt: skip


def test_the_demo_pixel_limit_holds_when_the_header_is_damaged(tmp_path):
    demo = _demo()
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png(9000, 9000, good_crc=False))  # 81 MP behind a bad CRC: ~80 KB
    assert bomb.stat().st_size < 200_000
    assert cv2.imread(str(bomb), cv2.IMREAD_GRAYSCALE).shape == (9000, 9000)  # OpenCV would
    with pytest.raises(FkpError, match=r"not an image fkp can read"):
        demo.read_upload(str(bomb))
    large = tmp_path / "large.png"
    large.write_bytes(_png(8000, 8000))  # a valid 64 MP image
    with pytest.raises(FkpError, match=r"8000x8000 \(64 megapixels\), more than the page takes"):
        demo.read_upload(str(large))
    fine = tmp_path / "fine.png"
    fine.write_bytes(_png(40, 30))
    image = demo.read_upload(str(fine))
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    sixteen = tmp_path / "sixteen.png"
    cv2.imwrite(str(sixteen), np.full((20, 10), 65535, np.uint16))
    assert (demo.read_upload(str(sixteen)) == 255).all()


# --- files fkp writes for users: whole or not at all ----------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "ckpt"])
def test_a_full_disk_keeps_the_earlier_export_whole(tiny_checkpoint, tmp_path, fmt):
    with _mounted(tmp_path / "small", "size=64m") as small:
        out = small / f"model.{ {'onnx': 'onnx', 'torchscript': 'pt', 'ckpt': 'ckpt'}[fmt] }"
        args = [f"ckpt_path={tiny_checkpoint}", f"format={fmt}", f"output={out}",
                f"hydra.run.dir={tmp_path / 'x'}"]  # fmt: skip
        proc = _run("export.py", *args)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        earlier = {p.name: p.read_bytes() for p in small.iterdir()}
        filler = small / "filler"
        free = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
        filler.write_bytes(b"\0" * max(free - 20_000, 0))  # room for less than a model
        proc = _run("export.py", *args)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err[-2000:]
        _one_line_error(err, f"{out}: cannot write (No space left on device)")
        assert "output=<file>" in err.strip().splitlines()[-1]
        filler.unlink()
        assert {p.name: p.read_bytes() for p in small.iterdir()} == earlier  # nothing torn


# --- what a checkpoint or export holds is bounded ---------------------------------------------


def _crafted(tiny_checkpoint: Path, tmp_path: Path, name: str, change) -> Path:
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    change(checkpoint["hyper_parameters"])
    torch.save(checkpoint, tmp_path / name)
    return tmp_path / name


def test_a_checkpoint_of_shared_references_is_refused_quickly(tiny_checkpoint, tmp_path):
    def bomb(hparams):  # 10 levels of 10 references to one list: 10^10 leaves, a few KB
        value = [0.5]
        for _ in range(10):
            value = [value] * 10
        hparams["data_config"]["mean"] = value

    path = _crafted(tiny_checkpoint, tmp_path, "bomb.ckpt", bomb)
    assert path.stat().st_size < tiny_checkpoint.stat().st_size + 10_000
    start = time.perf_counter()
    with pytest.raises(FkpError, match=r"bomb.ckpt: holds more than 200000 values"):
        read_checkpoint(path)
    assert time.perf_counter() - start < 10


def test_self_reference_and_deep_nesting_are_one_line():
    loop: list = [1]
    loop.append(loop)
    with pytest.raises(FkpError, match=r"contains itself"):
        check_plain_data({"a": loop}, "x.ckpt")
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(FkpError, match=r"nested more than 32 levels"):
        check_plain_data(deep, "x.ckpt")
    shared = [1, 2]
    check_plain_data({"a": shared, "b": shared}, "x.ckpt")  # shared, but small: fine


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda h: h.update(image_size=60000), r"image_size=60000 is out of range"),
        (lambda h: h["network_kwargs"].update(hidden=10**7), r"network_kwargs.hidden=10000000"),
        (lambda h: h.update(landmarks="../conf/data/landmarks/ibug68.yaml"),
         r"no such landmark set; use .* \(a stored set names a shipped one\)"),
        (lambda h: h["data_config"].update(margin=1e300), r"margin: 1e\+300 is out of range"),
        (lambda h: h["data_config"]["eval_transforms"][0].update(height=60000),
         r"height: 60000 is out of range"),
    ],
)  # fmt: skip
def test_settings_in_a_checkpoint_are_bounded(tiny_checkpoint, tmp_path, change, expected):
    path = _crafted(tiny_checkpoint, tmp_path, "crafted.ckpt", change)
    with pytest.raises(FkpError, match=expected):
        FaceKeypointDetector.from_checkpoint(path)


def test_an_export_json_is_bounded(tmp_path):
    settings = {"image_size": 60000, "grayscale": True, "margin": 0.5, "frame_scale": 1.0,
                "mean": [0.5], "std": [0.25], "eval_transforms": []}  # fmt: skip
    (tmp_path / "m.json").write_text(json.dumps({"network": "x", "preprocessing": settings}))
    with pytest.raises(FkpError, match=r"m.json image_size: 60000 is out of range"):
        read_preprocessing(tmp_path / "m.onnx")
    (tmp_path / "m.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FkpError, match=r"not an fkp preprocessing file"):
        read_preprocessing(tmp_path / "m.onnx")
    settings.update(image_size=64, landmarks="/etc/some.yaml")
    (tmp_path / "m.json").write_text(json.dumps({"network": "x", "preprocessing": settings}))
    with pytest.raises(FkpError, match=r"a stored set names a shipped one"):
        read_preprocessing(tmp_path / "m.onnx")


def test_eval_runs_no_regex_and_reads_no_file_a_checkpoint_names(tiny_checkpoint, tmp_path):
    slow = _crafted(tiny_checkpoint, tmp_path, "regex.ckpt",
                    lambda h: h["data_config"].update(person_pattern="(a+)+$"))  # fmt: skip
    outside = _crafted(tiny_checkpoint, tmp_path, "outside.ckpt",
                       lambda h: h["data_config"].update(test_csv="../../etc/passwd"))  # fmt: skip
    no_split = _crafted(tiny_checkpoint, tmp_path, "nosplit.ckpt",
                        lambda h: h["data_config"].pop("val_split"))  # fmt: skip
    from tests.conftest import SYNTHETIC

    for ckpt, split, expected in [
        (slow, "val", "fkp does not run a pattern read from a checkpoint"),
        (outside, "test", "test_csv='../../etc/passwd' is not a plain name under data_dir"),
        (no_split, "val", "its data settings lack a usable val_split"),
    ]:
        start = time.perf_counter()
        proc = _run("eval.py", f"ckpt_path={ckpt}", f"split={split}", f"data_dir={SYNTHETIC}",
                    f"hydra.run.dir={tmp_path / ckpt.stem}")  # fmt: skip
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err[-2000:]
        _one_line_error(err, expected)
        assert time.perf_counter() - start < 60


# --- settings the schema used to let through, run folders, Ctrl-C ---------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.frame_scale=1e5", r"data.frame_scale=100000.0 is not allowed: use a number 1-4"),
        ("data.margin=1e300", r"data.margin=1e\+300 is not allowed: use a number 0-4"),
        ("seed=99999999999", r"seed=99999999999 is not allowed: use a whole number 0-4294967295"),
        ("data.image_size=60000", r"use a whole number of pixels 16-1024"),
        ("trainer.check_val_every_n_epoch=0", r"use a whole number of epochs >= 1"),
        ("trainer.limit_train_batches=1e-6",
         r"trainer.limit_train_batches=1e-06 leaves none of the 9 train batches; use at least "
         r"0.112 or a batch count"),
        ("ckpt_path=", r"ckpt_path= is empty; pass a checkpoint to resume from"),
    ],
)  # fmt: skip
def test_settings_that_used_to_crash_are_one_line(tmp_path, override, expected):
    cfg = compose_train(tmp_path, [*QUICK, "trainer=debug", "test=false", override])
    with pytest.raises(FkpError, match=expected) as error:
        train(cfg)
    assert "\n" not in str(error.value)


def test_validation_every_second_epoch_trains_with_the_plateau_scheduler(tmp_path):
    cfg = compose_train(
        tmp_path,
        [
            *QUICK,
            "trainer=debug",
            "test=false",
            "scheduler=plateau",
            "trainer.check_val_every_n_epoch=2",
            "trainer.max_epochs=4",
        ],
    )
    metrics = train(cfg)  # fmt: skip
    with (tmp_path / "records.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["val/nme"] != "" for r in rows] == [False, True, False, True]
    assert "val/nme" in metrics


@pytest.mark.parametrize("where", ["under_a_file", "read_only"])
def test_a_run_folder_that_cannot_be_made_is_one_line(tmp_path, where):
    if where == "under_a_file":
        (tmp_path / "a_file").write_text("x")
        context, folder = contextlib.nullcontext(), tmp_path / "a_file" / "run"
    else:
        context, folder = _mounted(tmp_path / "ro", "ro,size=1m"), tmp_path / "ro" / "run"
    with context:
        proc = _run("train.py", *QUICK, "trainer=debug", f"hydra.run.dir={folder}")
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    _one_line_error(err, f"{folder}: cannot write there")
    assert "hydra.run.dir=<folder>" in err


def test_ctrl_c_saves_says_how_to_resume_and_exits_130(tmp_path):
    run = tmp_path / "run"
    proc = _run("train.py", *QUICK, "trainer=debug", "trainer.max_epochs=50",
                "trainer.limit_train_batches=6", f"hydra.run.dir={run}",
                start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run / "records.csv").exists() and (run / "records.csv").read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before Ctrl-C"
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends its foreground group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    _one_line_error(err, "stopped by Ctrl-C during epoch")
    assert f"resume with ckpt_path={run / 'checkpoints' / 'last.ckpt'}" in err
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] >= 6


# --- data a finite-number check lets through ------------------------------------------------


def _edit_first_row(tiny_data: Path, name: str | None = None, values=None) -> Path:
    """Change the first data row of the tiny training CSV: its image name and/or values
    ({column index: text}); returns the CSV."""
    path = tiny_data / "training_frames_keypoints.csv"
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    if name is not None:
        cells[0] = name
    for column, text in (values or {}).items():
        cells[column] = text
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (dict(values={3: "1e39"}),
         r"line 2, column 4 \(x of keypoint 1\): '1e39' is more than 1000000 pixels"),
        (dict(values={3: "1e30"}), r"line 2, column 4 .*'1e30' is more than 1000000 pixels"),
        (dict(values={3: "-5000"}),
         r"line 2: keypoint 1 at \(-5000, .*\) lies more than 1 image size outside its"),
        (dict(values={i: "50" for i in range(1, 137)}), r"line 2: all points of this face lie "
         r"within one pixel"),
        (dict(name="../training/training00_01.jpg"), r"lies outside the image folder"),
        (dict(name="/etc/hostname"), r"lies outside the image folder"),
        (dict(name="./training00_01.jpg"), r"line 3, column 1: image 'training00_01.jpg' is "
         r"listed again \(first on line 2\)"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("cache", [True, False])
def test_bad_rows_are_named_before_training(tiny_data, tmp_path, change, expected, cache):
    _edit_first_row(tiny_data, **change)
    cfg = compose_train(tmp_path, [*QUICK, f"data.data_dir={tiny_data}", "trainer=debug",
                                   f"data.cache={str(cache).lower()}"])  # fmt: skip
    with pytest.raises(FkpError, match=expected):
        train(cfg)


def test_a_tiny_image_is_named(tiny_data, tmp_path):
    path = _edit_first_row(tiny_data)
    name = path.read_text().splitlines()[1].split(",")[0]
    cv2.imwrite(str(tiny_data / "training" / name), np.zeros((1, 1, 3), np.uint8))
    cfg = compose_train(tmp_path, [*QUICK, f"data.data_dir={tiny_data}", "trainer=debug"])
    with pytest.raises(FkpError, match=rf"line 2: image '{name}' is 1x1 pixels; fkp needs at "
                                       r"least 8x8"):  # fmt: skip
        train(cfg)


def test_a_pts_coordinate_beyond_float32_is_named(tmp_path):
    from fkp.data.formats import read_300w
    from fkp.data.io import check_table

    (tmp_path / "afw").mkdir()
    cv2.imwrite(str(tmp_path / "afw" / "a.png"), np.zeros((100, 100, 3), np.uint8))
    body = "\n".join(["1e39 5"] + [f"{10 + i} {20 + i}" for i in range(67)])
    (tmp_path / "afw" / "a.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    with pytest.raises(FkpError, match=r"a.pts, line 4: '1e39 5' is not a coordinate"):
        check_table(read_300w(tmp_path, ["afw"]))


def test_an_image_deleted_mid_training_is_one_line_from_loader_workers(tiny_data, capsys):
    from torch.utils.data import DataLoader

    from fkp.data.datamodule import KeypointsDataset
    from fkp.data.io import ImageFiles, read_keypoints_csv
    from fkp.data.transforms import KeypointTransform
    from fkp.errors import reported_as_one_line

    table = read_keypoints_csv(tiny_data / "training_frames_keypoints.csv")
    images = ImageFiles(tiny_data / "training", table.names)
    dataset = KeypointsDataset(images, table.keypoints, table.names, KeypointTransform(32))
    (tiny_data / "training" / table.names[3]).unlink()  # gone after the checks, mid-training
    with pytest.raises(SystemExit) as stop, reported_as_one_line():
        for _ in DataLoader(dataset, batch_size=4, num_workers=2):
            pass
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: {tiny_data / 'training' / table.names[3]}: cannot read")


def test_the_converter_writes_only_inside_its_output_folder(tmp_path, capsys):
    from fkp.cli.data import main
    from fkp.data.io import write_keypoints_csv

    points = np.tile(np.arange(136, dtype=np.float32).reshape(1, 68, 2), (1, 1, 1))

    def refused(*argv: str) -> str:
        with pytest.raises(SystemExit) as stop:
            main(["convert", *argv])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        return err

    for name in ["../../escaped.jpg", "/abs/escaped.jpg"]:
        write_keypoints_csv([name], points, tmp_path / "in.csv")
        assert "lies outside the image folder" in refused(
            str(tmp_path / "in.csv"), str(tmp_path / "out" / "pts"), "--format", "csv"
        )
    assert not list(tmp_path.rglob("escaped.pts")) and not Path("/abs").exists()
    (tmp_path / "300w" / "afw").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "300w" / "afw" / "a.png"), np.zeros((9, 9, 3), np.uint8))
    assert "no images with a .pts file beside them" in refused(
        str(tmp_path / "300w"), str(tmp_path / "o.csv"), "--format", "300w", "--subsets", "afw"
    )
    (tmp_path / "wflw.txt").write_bytes(b"\xff\xfe\x00binary")
    assert "not readable as a WFLW annotation list" in refused(
        str(tmp_path / "wflw.txt"), str(tmp_path / "o.csv"), "--format", "wflw"
    )
    (tmp_path / "a_folder").mkdir()
    assert "a folder; name the CSV file to write" in refused(
        str(tmp_path / "wflw.txt"), str(tmp_path / "a_folder"), "--format", "wflw"
    )


def test_keypoints_csv_round_trips_names_with_commas_and_newlines(tmp_path):
    from fkp.data.io import read_keypoints_csv, write_keypoints_csv

    names = ["a,b.jpg", "c\nd.jpg", 'e "f".jpg']
    points = np.random.default_rng(0).uniform(0, 100, (3, 68, 2)).astype(np.float32)
    write_keypoints_csv(names, points, tmp_path / "k.csv")
    table = read_keypoints_csv(tmp_path / "k.csv")
    assert table.names == names and np.allclose(table.keypoints, points, atol=1e-3)


def test_two_runs_in_one_folder_at_once_the_second_stops(tmp_path):
    run = tmp_path / "run"
    first = _run("train.py", *QUICK, "trainer=debug", "trainer.max_epochs=30",
                 f"hydra.run.dir={run}")  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "records.csv").exists():
        time.sleep(0.05)
    second = _run("train.py", *QUICK, "trainer=debug", "trainer.max_epochs=30",
                  "ckpt_path=last", f"hydra.run.dir={run}")  # fmt: skip
    _, err = second.communicate(timeout=300)
    first.kill()
    first.communicate()
    assert second.returncode == 2
    _one_line_error(err, "another fkp process is using this run folder")
