"""The robustness suite: each perturbation does what it says, and eval.py reports them all."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fkp.data.io import decode_image, read_keypoints_csv
from fkp.evaluation.robustness import CONDITIONS, mirror, perturb, rotate, zoom
from fkp.geometry import mirror_points, points_extent
from fkp.landmarks import IBUG68
from tests import ROOT
from tests.conftest import SYNTHETIC


@pytest.fixture(scope="module")
def face():
    table = read_keypoints_csv(SYNTHETIC / "test_frames_keypoints.csv")
    return decode_image(SYNTHETIC / "test" / table.names[0]), table.keypoints[0].astype(np.float64)


def test_rotation_and_zoom_move_the_points_about_the_face_centre(face):
    image, points = face
    centre = points_extent(points)[:2]
    _, turned = rotate(30)(image, points)
    before, after = points - centre, turned - centre
    angles = np.arctan2(after[:, 1], after[:, 0]) - np.arctan2(before[:, 1], before[:, 0])
    # 30 degrees counter-clockwise on screen: y points down, so the angle falls by 30 degrees
    assert np.allclose(np.rad2deg(np.angle(np.exp(1j * angles))), -30, atol=1e-6)
    assert np.allclose(np.linalg.norm(after, axis=1), np.linalg.norm(before, axis=1))
    _, smaller = zoom(0.75)(image, points)
    assert np.allclose(smaller - centre, 0.75 * before)


def test_mirroring_twice_gives_the_face_back(face):
    image, points = face
    flipped, moved = mirror(image, points)
    assert np.array_equal(flipped[:, ::-1], image)
    assert moved[36, 0] < moved[45, 0]  # relabelled: point 36 is on the image's left again
    back = mirror_points(moved[None], np.array([image.shape[1]], dtype=float), IBUG68.flip_index)
    assert np.allclose(back[0], points)


def test_occluders_cover_their_region_and_leave_the_rest(face):
    image, points = face
    for region in ("eyes", "mouth"):
        covered, same = CONDITIONS[f"occluded {region}"](image, points)
        assert np.array_equal(same, points)
        first, last = IBUG68.regions[region]
        for x, y in points[first:last].astype(int):
            assert (covered[y, x] == 128).all()
        changed = (covered != image).any(axis=-1)
        assert 0 < changed.mean() < 0.5


def test_every_condition_keeps_images_valid(face):
    images, truth = perturb([face[0]] * 2, np.stack([face[1]] * 2), "clean")
    for condition in CONDITIONS:
        shown, moved = perturb(images, truth, condition)
        assert all(s.dtype == np.uint8 and s.shape == images[0].shape for s in shown)
        assert moved.shape == truth.shape and np.isfinite(moved).all()


def test_eval_robustness_suite_reports_every_condition(tiny_checkpoint, tmp_path):
    csv = SYNTHETIC / "test_frames_keypoints.csv"
    result = subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), f"ckpt_path={tiny_checkpoint}", "suite=robustness",
         f"csv={csv}", f"images={SYNTHETIC / 'test'}", "limit=4", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    table = json.loads((tmp_path / "robustness.json").read_text())["robustness"]["fkp"]
    assert set(CONDITIONS) <= set(table)
    assert table["clean"]["ratio"] == 1.0
    assert all(0 < row["nme"] < 10 for c, row in table.items() if c in CONDITIONS)
    assert 0 <= table["mirror_consistency"] < 10
    assert (tmp_path / "robustness.png").stat().st_size > 10_000
    assert "| roll 30 |" in result.stdout and "| mirror consistency |" in result.stdout
