"""300W (.pts folders) and WFLW (annotation lists): readers, converter, data configs, training.

tests/fixtures/ holds files written to the published formats: 300W's .pts (version line,
n_points with its two spaces, braces, 1-based pixels) and WFLW's list lines (196 coordinates,
box, 6 attribute flags, image path)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from fkp import FaceKeypointDetector
from fkp.cli.train import train
from fkp.data.datamodule import FaceKeypointsDataModule
from fkp.data.formats import read_300w, read_pts, read_wflw, write_pts
from fkp.data.io import read_keypoints_csv
from fkp.data.splits import DataSplits
from fkp.errors import FkpError
from tests import FIXTURES, ROOT
from tests.conftest import QUICK, compose_train
from tests.synthetic import draw_face


def _with_images(src: Path, dst: Path, names: list[str]) -> Path:
    """A copy of a fixture folder with a small image at each of `names`."""
    shutil.copytree(src, dst)
    for name in names:
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dst / name), np.full((140, 120, 3), 90, np.uint8))
    return dst


def test_read_pts_gives_0_based_pixels():
    path = FIXTURES / "300w" / "afw" / "134212_1.pts"
    points = read_pts(path)
    first = [float(v) for v in path.read_text().splitlines()[3].split()]
    assert points.shape == (68, 2) and np.allclose(points[0], np.array(first) - 1)


@pytest.mark.parametrize(
    "text, message",
    [
        ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "n_points is 3 but 2 points are listed"),
        ("version: 1\nn_points: 2\n1 2\n3 4\n", "line 3: '1 2' is not a header line"),
        ("version: 1\nn_points: 2\n{\n1 2\n3 4\n", "no closing '}'"),
        ("version: 1\nn_points: 2\n{\n1 2\n3 x\n}\n", r"line 5: '3 x' is not two numbers"),
        ("version: 1\n{\n1 2\n}\n", "no valid n_points"),
    ],
)
def test_a_broken_pts_file_is_one_sentence(tmp_path, text, message):
    path = tmp_path / "bad.pts"
    path.write_text(text)
    with pytest.raises(FkpError, match=message):
        read_pts(path)


def test_read_300w_subsets(tmp_path):
    names = ["afw/134212_1.jpg", "afw/1051618982_1.jpg", "ibug/image_003_1.png"]
    root = _with_images(FIXTURES / "300w", tmp_path / "300w", names)
    (root / "afw" / "unlabelled.jpg").write_bytes((root / names[0]).read_bytes())
    table = read_300w(root, ["afw", "ibug"])
    assert sorted(table.names) == sorted(names) and table.keypoints.shape == (3, 68, 2)
    with pytest.raises(FkpError, match="no such 300W subset folder"):
        read_300w(root, ["helen/testset"])
    with pytest.raises(FkpError, match="68 points, but the landmark set has 98"):
        read_300w(root, ["afw"], num_points=98)


def test_read_wflw_keeps_boxes_and_attributes():
    table = read_wflw(FIXTURES / "wflw" / "list_98pt_rect_attr_test.txt")
    assert table.keypoints.shape == (2, 98, 2) and table.boxes.shape == (2, 4)
    assert list(table.attributes["pose"]) == [0, 1] and list(table.attributes["occlusion"]) == [
        1,
        0,
    ]
    assert table.names[0] == "51--Dresses/51_Dresses_wearingdress_51_377.jpg"
    lo, hi = table.keypoints[0].min(axis=0), table.keypoints[0].max(axis=0)
    assert np.allclose(table.boxes[0], np.r_[np.floor(lo), np.floor(hi)], atol=1)
    sub = table.subset([1])
    assert sub.names == table.names[1:] and list(sub.attributes["blur"]) == [1]


def test_a_broken_wflw_line_is_one_sentence(tmp_path):
    lines = (FIXTURES / "wflw" / "list_98pt_rect_attr_test.txt").read_text().splitlines()
    path = tmp_path / "list.txt"
    path.write_text(lines[0] + "\n" + lines[1].split(" ", 1)[1] + "\n")
    with pytest.raises(FkpError, match=r"list.txt, line 2: 206 fields, expected 207"):
        read_wflw(path)


def test_convert_300w_to_csv_and_back_to_pts(tmp_path):
    names = ["afw/134212_1.jpg", "afw/1051618982_1.jpg", "ibug/image_003_1.png"]
    root = _with_images(FIXTURES / "300w", tmp_path / "300w", names)
    run = [sys.executable, "-m", "fkp.data", "convert"]
    args = [str(root), str(tmp_path / "all.csv"), "--format", "300w", "--subsets", "afw", "ibug"]
    result = subprocess.run([*run, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = read_keypoints_csv(tmp_path / "all.csv")
    assert len(table) == 3
    result = subprocess.run([*run, str(tmp_path / "all.csv"), str(tmp_path / "back"), "--format",
                             "csv"], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in names:
        original = read_pts(FIXTURES / "300w" / Path(name).with_suffix(".pts"))
        assert (
            np.abs(read_pts(tmp_path / "back" / Path(name).with_suffix(".pts")) - original).max()
            < 1e-3
        )
    result = subprocess.run([*run, str(FIXTURES / "wflw" / "list_98pt_rect_attr_test.txt"),
                             str(tmp_path / "wflw.csv"), "--format", "wflw"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0 and len(read_keypoints_csv(tmp_path / "wflw.csv", 98)) == 2
    args = [
        str(tmp_path / "nowhere"),
        str(tmp_path / "x.csv"),
        "--format",
        "300w",
        "--subsets",
        "afw",
    ]
    result = subprocess.run([*run, *args], capture_output=True, text=True)
    assert result.returncode == 2 and "no such 300W subset folder" in result.stderr


def test_wflw_data_config_reads_the_test_subsets(tmp_path):
    lines = FIXTURES / "wflw" / "list_98pt_rect_attr_test.txt"
    names = [line.split()[-1] for line in lines.read_text().splitlines()]
    root = tmp_path / "wflw"
    (root / "lists").mkdir(parents=True)
    shutil.copy(lines, root / "lists" / "test.txt")
    _with_images(root, tmp_path / "w", [f"WFLW_images/{n}" for n in names])
    cfg = compose_train(tmp_path / "run", ["data=wflw", f"data.data_dir={tmp_path / 'w'}",
                                           "data.test_csv=lists/test.txt"])  # fmt: skip
    assert cfg.data.landmarks.num_points == 98 and cfg.model.landmarks.name == "wflw98"
    settings = OmegaConf.to_container(cfg.data, resolve=True)
    settings = {k: v for k, v in settings.items() if k not in ("_target_", "_recursive_")}
    dm = FaceKeypointsDataModule(**{**settings, "test_subset": "pose"})
    table, folder = dm.splits.read_split("test")
    assert table.names == names[1:] and (folder / table.names[0]).is_file()
    with pytest.raises(FkpError, match="data.test_subset=glasses is unknown"):
        FaceKeypointsDataModule(**{**settings, "test_subset": "glasses"}).splits.read_split("test")


def test_person_pattern_groups_names():
    splits = DataSplits("x", person_pattern=r"^(\w+?)_\d+")
    assert splits.person("indoor_001.png") == "indoor" and splits.person("misc.png") == "misc.png"
    assert DataSplits("x").person("Kim_Clijsters_40.jpg") == "Kim_Clijsters"


def test_a_model_trains_on_a_300w_folder_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "300w"
    for subset, count in [("lfpw/trainset", 20), ("ibug", 6)]:
        (root / subset).mkdir(parents=True)
        for i in range(count):
            image, points = draw_face(rng)
            cv2.imwrite(str(root / subset / f"image_{i:04d}.png"), image[..., ::-1])
            write_pts(points, root / subset / f"image_{i:04d}.pts")
    run = tmp_path / "run"
    overrides = [*QUICK, "data=300w", f"data.data_dir={root}", "data.train_csv=[lfpw/trainset]",
                 "data.test_csv=[ibug]", "model=fast_net", "trainer=debug", "trainer.max_epochs=1",
                 "data.limit=null"]  # fmt: skip
    metrics = train(compose_train(run, overrides))
    assert 0 < metrics["test/nme"] < 10
    ckpt = run / "checkpoints" / "last.ckpt"
    result = subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), f"ckpt_path={ckpt}", f"data_dir={root}",
         "protocols=[gt]", f"hydra.run.dir={tmp_path / 'eval'}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["faces"] == 6
    det = FaceKeypointDetector.from_checkpoint(ckpt, runtime="onnx")
    image = cv2.imread(str(root / "ibug" / "image_0000.png"))[..., ::-1].copy()
    box = det.transform.frame_for(read_pts(root / "ibug" / "image_0000.pts"))[None]
    assert det.keypoints_in(image, box).shape == (1, 68, 2)
