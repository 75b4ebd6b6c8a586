"""The model that ships inside the package: it loads with no training and no download, and
still measures what its card (fkp/weights/fast.card.json, quoted in docs/results.md) says."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fkp import FaceKeypointDetector
from fkp.data.io import decode_image
from fkp.errors import FkpError
from fkp.runtime.predictor import PRETRAINED_DIR, pretrained_path
from tests import ROOT

CARD = json.loads((PRETRAINED_DIR / "fast.card.json").read_text())


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_shipped_model_is_small_and_loads_by_name(photos):
    assert pretrained_path().stat().st_size <= 5 * 10**6
    det = FaceKeypointDetector.from_pretrained()
    faces = det(decode_image(photos / "obamas.jpg"))
    assert len(faces) == 2 and all(f.keypoints.shape == (68, 2) for f in faces)
    with pytest.raises(FkpError, match="no shipped model called 'huge'; shipped: fast"):
        FaceKeypointDetector.from_pretrained("huge")


def test_shipped_model_reaches_its_stated_nme_on_a_fixed_test_subset(data_dir, tmp_path):
    check = CARD["subset_check"]
    result = _run("eval.py", "ckpt_path=pretrained", f"limit={check['faces']}", "protocols=[gt]",
                  "worst=4", f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    nme = json.loads((tmp_path / "metrics.json").read_text())["fkp (gt box)"]["nme"]
    assert nme == pytest.approx(check["nme"], abs=2e-4)  # evaluation is deterministic
    assert nme <= CARD["test"]["nme_target"]


def test_predict_py_uses_the_shipped_model_by_default(photos, tmp_path):
    result = _run("predict.py", f"input={photos / 'obamas.jpg'}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    faces = json.loads((tmp_path / "keypoints.json").read_text())[str(photos / "obamas.jpg")]
    assert len(faces["faces"]) == 2


def test_shipped_model_reaches_its_stated_end_to_end_nme_on_a_fixed_subset(data_dir, tmp_path):
    """As predict.py runs it (its default detector, refinement passes), figures from the card."""
    check = CARD["end_to_end_check"]
    assert check["command"].endswith(f"precision={check['precision']}")
    result = _run("eval.py", "ckpt_path=pretrained", f"limit={check['faces']}",
                  "protocols=[detector]", f"precision={check['precision']}", "worst=0",
                  f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())["fkp (detector box)"]
    assert metrics["nme"] == pytest.approx(check["nme"], abs=2e-4)
    assert metrics["miss_rate"] == check["miss_rate"]


def test_readme_sample_photo_works_with_no_data(tmp_path):
    """README's first prediction example: a photo in the repository, the shipped model."""
    sample = ROOT / "docs" / "samples" / "astronaut.jpg"
    result = _run("predict.py", f"input={sample}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    faces = json.loads((tmp_path / "keypoints.json").read_text())[str(sample)]["faces"]
    assert len(faces) == 1
    x, y, w, h = faces[0]["box"]
    points = np.array(faces[0]["keypoints"])
    assert points.shape == (68, 2) and (points.min(0) > [x - w / 4, y]).all()
    assert (points.max(0) < [x + 1.25 * w, y + 1.4 * h]).all()  # the points lie on the face


def test_shipped_model_runs_int8_on_a_cpu_unless_asked_otherwise(photos):
    """precision=auto: the int8 twin (fast.int8.onnx), which its card justifies on validation
    rows; float32 on request; int8 is refused where no int8 network exists."""
    assert CARD["int8"]["val_nme_change_points"]["end_to_end"] <= 0.05  # the rule for the default
    image = decode_image(photos / "obamas.jpg")
    int8 = FaceKeypointDetector.from_pretrained()
    float32 = FaceKeypointDetector.from_pretrained(precision="float32")
    assert int8.model.name == "fast.int8.onnx" and float32.model.name == "fast.onnx"
    a, b = int8(image), float32(image)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        side = x.frame[2]
        assert np.abs(x.keypoints - y.keypoints).mean() < 0.01 * side  # about the same points
    with pytest.raises(FkpError, match="precision=int8 runs the shipped model"):
        FaceKeypointDetector.from_pretrained(runtime="torch", precision="int8")
    with pytest.raises(FkpError, match="precision=int4 is unknown"):
        FaceKeypointDetector.from_pretrained(precision="int4")
