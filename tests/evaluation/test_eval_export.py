import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from fkp import FaceKeypointDetector
from fkp.data.io import decode_image, read_keypoints_csv
from fkp.training.export import TorchNetwork, export_with_preprocessing
from tests import ROOT


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_eval_writes_metrics_ced_and_worst_faces(data_dir, tmp_path):
    result = _run("eval.py", "ckpt_path=pretrained", "limit=12", "worst=4",
                  f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["faces"] == 12
    gt, detected = metrics["fkp (gt box)"], metrics["fkp (detector box)"]
    # the gt-box figures, computed here independently of fkp.evaluation.protocols
    det = FaceKeypointDetector.from_pretrained(precision="float32")  # eval.py's default
    table = read_keypoints_csv(data_dir / "test_frames_keypoints.csv").subset(np.arange(12))
    nmes = []
    for name, truth in zip(table.names, table.keypoints):
        box = det.transform.frame_for(truth)[None]
        predicted = det.keypoints_in(decode_image(data_dir / "test" / name), box)[0]
        error = np.linalg.norm(predicted - truth, axis=1).mean()
        nmes.append(error / np.linalg.norm(truth[36] - truth[45]))
    assert gt["nme"] == pytest.approx(np.mean(nmes), rel=1e-4)
    assert gt["fr_0.10"] == pytest.approx(np.mean(np.array(nmes) > 0.10))
    assert 0 < detected["nme"] < 0.15 and detected["miss_rate"] < 0.2  # the shipped model
    for m in (gt, detected):
        assert {"nme_jaw", "nme_brows", "nme_nose", "nme_eyes", "nme_mouth"} <= set(m)
    assert gt["miss_rate"] == 0 and gt["ms_per_face"] > 0
    assert (tmp_path / "ced.png").stat().st_size > 10_000 and (tmp_path / "worst.png").is_file()
    assert "| fkp (gt box) |" in result.stdout


def test_eval_on_a_custom_csv_and_the_val_split(tiny_checkpoint, tiny_data, tmp_path):
    result = _run("eval.py", f"ckpt_path={tiny_checkpoint}", "protocols=[gt]",
                  f"csv={tiny_data / 'test_frames_keypoints.csv'}", f"images={tiny_data / 'test'}",
                  f"hydra.run.dir={tmp_path / 'a'}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["faces"] == 8
    result = _run("eval.py", f"ckpt_path={tiny_checkpoint}", "split=val", "protocols=[gt]",
                  "limit=5", f"hydra.run.dir={tmp_path / 'b'}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def test_dlib_side_by_side(tiny_checkpoint, data_dir, tmp_path):
    pytest.importorskip("dlib", reason="the bench extra is not installed")
    result = _run("eval.py", f"ckpt_path={tiny_checkpoint}", "limit=10", "dlib=true",
                  f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    dlib = metrics["dlib (HOG detector box)"]
    assert dlib["nme"] < 0.2 and metrics["dlib (gt box)"]["ms_per_face"] > 0


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_agrees_with_pytorch_on_real_images(
    tiny_checkpoint, data_dir, tmp_path, fmt
):
    det = FaceKeypointDetector.from_checkpoint(tiny_checkpoint, runtime="torch")
    path, _ = export_with_preprocessing(det.model.module, det.transform, tmp_path / f"m.{fmt}", fmt)
    table = read_keypoints_csv(data_dir / "test_frames_keypoints.csv")
    images = [decode_image(data_dir / "test" / n) for n in table.names[:6]]
    boxes = det.transform.frame_for(table.keypoints[:6])
    expected = np.stack([det.keypoints_in(im, b[None])[0] for im, b in zip(images, boxes)])
    if fmt == "onnx":
        exported = FaceKeypointDetector.from_onnx(path)
    else:  # TorchScript behind the same API
        with warnings.catch_warnings():  # TorchScript is deprecated in torch, still loads
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(path))
        exported = FaceKeypointDetector(TorchNetwork(scripted), det.transform)
    got = np.stack([exported.keypoints_in(im, b[None])[0] for im, b in zip(images, boxes)])
    assert np.abs(got - expected).max() < 0.01  # pixels
    batch = np.random.default_rng(0).normal(size=(5, 1, 64, 64)).astype(np.float32)  # any batch
    assert exported.model(batch).shape == (5, 68, 2)


def test_export_cli_and_predict_with_onnx_runtime(tiny_checkpoint, data_dir, tmp_path):
    result = _run("export.py", f"ckpt_path={tiny_checkpoint}", "format=onnx",
                  f"output={tmp_path / 'm.onnx'}", f"hydra.run.dir={tmp_path / 'x'}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "m.onnx").is_file() and (tmp_path / "m.json").is_file()
    image = data_dir.parent / "images" / "obamas.jpg"
    runs = {}
    for runtime, model in [("onnx", tmp_path / "m.onnx"), ("torch", tiny_checkpoint)]:
        out = tmp_path / runtime
        result = _run("predict.py", f"runtime={runtime}", f"ckpt_path={model}", f"input={image}",
                      f"hydra.run.dir={out}")  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        runs[runtime] = json.loads((out / "keypoints.json").read_text())[str(image)]["faces"]
    for a, b in zip(runs["onnx"], runs["torch"]):
        assert np.abs(np.array(a["keypoints"]) - np.array(b["keypoints"])).max() < 0.02
    (tmp_path / "m.json").unlink()
    result = _run("predict.py", "runtime=onnx", f"ckpt_path={tmp_path / 'm.onnx'}",
                  f"input={image}", f"hydra.run.dir={tmp_path / 'y'}")  # fmt: skip
    assert result.returncode == 2 and "m.json: missing" in result.stderr
    # a checkpoint under onnxruntime (runtime=auto on a CPU): exported in memory, same points
    result = _run("predict.py", "runtime=auto", f"ckpt_path={tiny_checkpoint}", f"input={image}",
                  f"hydra.run.dir={tmp_path / 'z'}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    auto = json.loads((tmp_path / "z" / "keypoints.json").read_text())[str(image)]["faces"]
    for a, b in zip(auto, runs["torch"]):
        assert np.abs(np.array(a["keypoints"]) - np.array(b["keypoints"])).max() < 0.02
    result = _run("predict.py", "runtime=torch", f"ckpt_path={tmp_path / 'm.onnx'}",
                  f"input={image}", f"hydra.run.dir={tmp_path / 'w'}")  # fmt: skip
    assert result.returncode == 2 and "m.onnx is an ONNX model: use runtime=onnx" in result.stderr


@pytest.mark.parametrize("half", [False, True])
def test_slim_checkpoint_drops_training_state_and_predicts_the_same(
    tiny_checkpoint, data_dir, tmp_path, half
):
    slim_path = tmp_path / "slim.ckpt"
    result = _run("export.py", f"ckpt_path={tiny_checkpoint}", "format=ckpt", f"half={half}",
                  f"output={slim_path}", f"hydra.run.dir={tmp_path / 'x'}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    slim = torch.load(slim_path, weights_only=False)
    assert "optimizer_states" not in slim and "callbacks" not in slim
    weights = slim["state_dict"]["net.head.4.weight"]
    assert weights.dtype == (torch.float16 if half else torch.float32)
    assert slim_path.stat().st_size < tiny_checkpoint.stat().st_size / (1 + half)
    image = decode_image(data_dir.parent / "images" / "obamas.jpg")
    full = FaceKeypointDetector.from_checkpoint(tiny_checkpoint, runtime="torch")(image)
    slim_detector = FaceKeypointDetector.from_checkpoint(slim_path, runtime="torch")
    assert next(slim_detector.model.module.parameters()).dtype == torch.float32  # loads as float32
    again = slim_detector(image)
    assert len(full) == len(again) == 2
    for a, b in zip(full, again):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=0.1 if half else 0)


def test_int8_and_float16_exports_load_and_agree_with_float32(tiny_checkpoint, tmp_path):
    """export.py precision=int8 calibrates on the checkpoint's own training rows (here the
    synthetic set it trained on); both load as ONNX files and find about the same points."""
    from tests.conftest import SYNTHETIC

    paths = {}
    for precision in ("float32", "int8", "float16"):
        paths[precision] = tmp_path / f"m.{precision}.onnx"
        result = _run("export.py", f"ckpt_path={tiny_checkpoint}", f"precision={precision}",
                      f"data_dir={SYNTHETIC}", "calibration=16", f"output={paths[precision]}",
                      f"hydra.run.dir={tmp_path / precision}")  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        record = json.loads(paths[precision].with_suffix(".json").read_text())
        assert record["precision"] == precision
        if precision == "int8":
            assert "calibrating int8 on 16 training faces" in result.stdout
    import onnx

    graphs = {p: onnx.load(str(path)).graph for p, path in paths.items()}
    int8_convs = [n for n in graphs["int8"].node if n.op_type == "DequantizeLinear"]
    assert int8_convs and not any(n.name.startswith("/head/") for n in int8_convs)
    halves = [t for t in graphs["float16"].initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) > len(graphs["float16"].initializer) / 2
    image = decode_image(SYNTHETIC / "test" / sorted((SYNTHETIC / "test").iterdir())[0].name)
    models = {p: FaceKeypointDetector.from_onnx(path) for p, path in paths.items()}
    frame = np.array([[image.shape[1] / 2, image.shape[0] / 2, min(image.shape[:2])]])
    points = {p: m.keypoints_in(image, frame)[0] for p, m in models.items()}
    side = frame[0, 2]
    assert np.abs(points["float16"] - points["float32"]).max() < 0.002 * side
    assert np.abs(points["int8"] - points["float32"]).mean() < 0.02 * side
    result = _run("export.py", f"ckpt_path={tiny_checkpoint}", "precision=int8", "format=ckpt",
                  f"hydra.run.dir={tmp_path / 'c'}")  # fmt: skip
    assert result.returncode == 2 and "precision=int8 is for format=onnx" in result.stderr
    result = _run("export.py", f"ckpt_path={tiny_checkpoint}", "precision=int4",
                  f"hydra.run.dir={tmp_path / 'd'}")  # fmt: skip
    assert result.returncode == 2 and "precision=int4 is unknown" in result.stderr
