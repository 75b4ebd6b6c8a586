"""fkp as a library: a wheel built from this checkout, installed without `-e` into a fresh
virtual environment, used from a folder that holds no fkp code, through the `fkp` command."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ROOT
from tests.conftest import SYNTHETIC


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The venv's bin folder, with the wheel installed (its dependencies come from this
    environment: --system-site-packages, so nothing is downloaded)."""
    where = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(where)], check=True)  # fmt: skip
    (wheel,) = where.glob("fkp-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(where / "venv")],
                   check=True)  # fmt: skip
    bin_dir = where / "venv" / "bin"
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
                   check=True)  # fmt: skip
    return bin_dir


def _in(folder: Path, *command: str | Path) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run([str(c) for c in command], cwd=folder, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def test_the_wheel_imports_and_predicts_from_any_folder(installed, tmp_path):
    done = _in(
        tmp_path,
        installed / "python",
        "-c",
        "import fkp; from fkp import FaceKeypointDetector; print(fkp.__file__)",
    )
    assert done.returncode == 0, done.stderr[-2000:]  # fmt: skip
    assert str(installed.parent) in done.stdout  # the wheel's copy, not the checkout's
    photo = shutil.copy(ROOT / "docs" / "samples" / "astronaut.jpg", tmp_path / "photo.jpg")
    done = _in(tmp_path, installed / "fkp", "predict", f"input={photo}")
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = (tmp_path / "outputs" / "predict").iterdir()  # under the working folder
    faces = json.loads((run / "keypoints.json").read_text())[str(photo)]["faces"]
    assert len(faces) == 1 and len(faces[0]["keypoints"]) == 68


def test_the_wheel_trains_one_tiny_epoch(installed, tmp_path):
    done = _in(tmp_path, installed / "fkp", "train", f"data.data_dir={SYNTHETIC}",
               "data.limit=40", "data.image_size=64", "data.batch_size=4", "data.num_workers=0",
               "callbacks.progress_bar=null", "trainer=debug", "test=false")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "outputs" / "train").iterdir()
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "records.csv").is_file()


def test_the_fkp_command_names_its_subcommands(installed, tmp_path):
    done = _in(tmp_path, installed / "fkp", "--help")
    assert done.returncode == 0 and "predict" in done.stdout and "train" in done.stdout
    done = _in(tmp_path, installed / "fkp", "trian")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: fkp trian: no such command; use one of train, predict, eval, export, demo, "
        "calibrate, report, data."
    )
