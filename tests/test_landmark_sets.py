"""A 98-point (WFLW markup) model end to end with only config changes: train, eval, export,
predict, flip test; the set travels in the checkpoint and the exported JSON."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fkp import FaceKeypointDetector
from fkp.cli.train import train
from fkp.data.io import decode_image, read_keypoints_csv
from fkp.errors import FkpError
from fkp.training.module import KeypointModule
from tests import ROOT
from tests.conftest import QUICK, compose_train
from tests.synthetic import write_dataset


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True,
                          text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def wflw(tmp_path_factory) -> tuple[Path, Path]:
    """Synthetic faces labelled with 98 points, and a checkpoint trained on them briefly."""
    data = write_dataset(tmp_path_factory.mktemp("wflw"), train=24, test=6, wflw98=True)
    run = tmp_path_factory.mktemp("wflw_run")
    overrides = [*QUICK, f"data.data_dir={data}", "data/landmarks=wflw98", "model=fast_net",
                 "model/head=simcc", "trainer=debug", "trainer.max_epochs=1"]  # fmt: skip
    metrics = train(compose_train(run, overrides))
    assert 0 < metrics["test/nme"] < 10
    return data, run / "checkpoints" / "last.ckpt"


def test_a_98_point_model_trains_and_keeps_its_set(wflw):
    _, ckpt = wflw
    model = KeypointModule.restore(ckpt)
    assert model.landmarks.name == "wflw98" and model.landmarks.num_points == 98
    assert model.val_metrics.nme_points == (60, 72)
    det = FaceKeypointDetector.from_checkpoint(ckpt, flip_test=True, refine=1)
    assert det.transform.landmarks.num_points == 98
    image = decode_image(next((wflw[0] / "test").iterdir()))
    points = det.keypoints_in(image, np.array([[60.0, 60.0, 80.0]]))
    assert points.shape == (1, 98, 2) and np.isfinite(points).all()


def test_eval_export_and_predict_a_98_point_model(wflw, tmp_path):
    data, ckpt = wflw
    csv, images = data / "test_frames_keypoints.csv", data / "test"
    result = _run("eval.py", f"ckpt_path={ckpt}", f"csv={csv}", f"images={images}",
                  "protocols=[gt]", f"hydra.run.dir={tmp_path / 'eval'}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["fkp (gt box)"]
    assert {"nme_contour", "nme_eyes", "nme_mouth"} <= set(metrics) and metrics["nme"] > 0
    result = _run("eval.py", f"ckpt_path={ckpt}", f"csv={csv}", f"images={images}", "dlib=true",
                  f"hydra.run.dir={tmp_path / 'dlib'}")  # fmt: skip
    assert result.returncode == 2 and "finds 98 points (wflw98)" in result.stderr

    onnx = tmp_path / "m.onnx"
    result = _run("export.py", f"ckpt_path={ckpt}", "format=onnx", f"output={onnx}",
                  f"hydra.run.dir={tmp_path / 'x'}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    stored = json.loads(onnx.with_suffix(".json").read_text())["preprocessing"]["landmarks"]
    assert stored["num_points"] == 98 and stored["nme_points"] == [60, 72]
    table = read_keypoints_csv(csv, 98)
    image = decode_image(images / table.names[0])
    box = FaceKeypointDetector.from_onnx(onnx).transform.frame_for(table.keypoints[0])[None]
    from_onnx = FaceKeypointDetector.from_onnx(onnx).keypoints_in(image, box)
    from_torch = FaceKeypointDetector.from_checkpoint(ckpt).keypoints_in(image, box)
    assert from_onnx.shape == (1, 98, 2) and np.abs(from_onnx - from_torch).max() < 0.02

    result = _run("predict.py", f"ckpt_path={ckpt}", f"input={images / table.names[0]}",
                  f"hydra.run.dir={tmp_path / 'p'}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_csv_of_another_set_is_one_sentence(wflw):
    data, _ = wflw
    with pytest.raises(FkpError, match=r"197 columns, expected 137 .*data/landmarks="):
        read_keypoints_csv(data / "test_frames_keypoints.csv")
