import subprocess
import sys

import cv2
import numpy as np

from fkp.viz import GREEN, MAGENTA, draw_keypoints, make_grid


def _show(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fkp.data", "show", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_show_writes_a_grid_of_augmented_samples(tiny_data, tmp_path):
    out = tmp_path / "samples.png"
    result = _show("--split", "train", "--n", "4", "--augment", "--out", str(out),
                   f"data.data_dir={tiny_data}", "data.image_size=64")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "4 augmented samples of the train split" in result.stdout
    image = cv2.imread(str(out))
    assert image.shape == (2 * 224, 2 * 224, 3)
    green = (image[..., 1] > 150) & (image[..., 0] < 80) & (image[..., 2] < 80)
    assert green.sum() > 500  # the keypoints are drawn
    preset = _show("--n", "2", "--augment", "--out", str(out), "experiment=fast_wild",
                   f"data.data_dir={tiny_data}")  # fmt: skip
    assert preset.returncode == 0, preset.stderr  # a training preset's augmentation


def test_show_test_split_without_augmentation(tiny_data, tmp_path):
    out = tmp_path / "test.png"
    result = _show("--split", "test", "--n", "3", "--out", str(out), f"data.data_dir={tiny_data}")
    assert result.returncode == 0, result.stderr
    assert "3 evaluation samples of the test split (8 images)" in result.stdout
    assert out.is_file()


def test_show_bad_input_is_one_line_without_traceback(tmp_path):
    result = _show("--out", str(tmp_path / "x.png"), f"data.data_dir={tmp_path}/absent",
                   "data.download=false")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "data folder not found; set FKP_DATA_DIR" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_draw_keypoints_marks_the_points():
    image = np.zeros((100, 100, 3), np.uint8)
    points = np.stack([np.linspace(10, 90, 68), np.linspace(20, 80, 68)], axis=1)
    drawn = draw_keypoints(image, points, GREEN, parts=False)
    assert (image == 0).all()  # the input is left alone
    for x, y in points[::10].round().astype(int):
        assert tuple(drawn[y, x]) == GREEN
    # sized to the face, not the image: a 40 px face in a 4000 px photo keeps thin lines
    big = np.zeros((4000, 4000, 3), np.uint8)
    small_face = np.stack([np.linspace(100, 140, 68), np.linspace(100, 140, 68)], axis=1)
    dots = draw_keypoints(big, small_face, GREEN, parts=False, copy=False)
    assert dots is big and (big[90:150, 90:150] == GREEN).all(axis=-1).mean() < 0.1


def test_grid_tiles_truth_and_prediction():
    images = [np.zeros((50, 40, 3), np.uint8)] * 5
    truth = [np.full((68, 2), 20.0)] * 5
    predicted = [np.full((68, 2), 30.0)] * 5
    grid = make_grid(images, truth, predicted, titles=list("abcde"), tile=100)
    assert grid.shape == (200, 300, 3)
    # each 50 x 40 image is scaled by 2 into its 100 px tile
    assert tuple(grid[40, 40]) == GREEN and tuple(grid[140, 140]) == GREEN
    assert tuple(grid[60, 60]) == MAGENTA
