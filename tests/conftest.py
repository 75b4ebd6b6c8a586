import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from fkp import CONF_DIR
from fkp.data.download import TEST_CSV, TRAIN_CSV
from tests.synthetic import write_dataset

# A synthetic data set in the release's layout (drawn faces, 48 training and 10 test rows),
# made once per test session: training tests run on it anywhere, with or without the real data.
SYNTHETIC = write_dataset(Path(tempfile.mkdtemp(prefix="fkp-synthetic-")))


# `python -m pytest -m quick`: these modules, under 3 minutes on 2 cores (geometry, landmark
# sets, layout and imports, models and heads, data reading and transforms, the runtime
# without the training stack, config composition); the whole suite runs everything.
QUICK_MODULES = {"test_geometry.py", "test_landmarks.py", "test_imports.py", "test_heads.py",
                 "test_models.py", "test_io.py", "test_transforms.py", "test_runtime.py",
                 "test_configs.py"}  # fmt: skip


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in QUICK_MODULES:
            item.add_marker(pytest.mark.quick)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SYNTHETIC, ignore_errors=True)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The full YouTube Faces data (FKP_DATA_DIR); CI must have it, elsewhere tests skip."""
    value = os.environ.get("FKP_DATA_DIR")
    path = Path(value) if value else None
    if path is None or not (path / TRAIN_CSV).is_file():
        message = "FKP_DATA_DIR does not point at the YouTube Faces data"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def photos(data_dir) -> Path:
    """The group photos beside the data set (../shared/data/images)."""
    images = data_dir.parent / "images"
    if not (images / "obamas.jpg").is_file():
        pytest.skip("the group photos are not beside the data set")
    return images


def _copy_rows(src: Path, dst: Path, csv_name: str, folder: str, rows: int) -> None:
    lines = (src / csv_name).read_text().splitlines(keepends=True)[: rows + 1]
    (dst / folder).mkdir(parents=True, exist_ok=True)
    for line in lines[1:]:
        name = line.split(",", 1)[0]
        shutil.copy(src / folder / name, dst / folder / name)
    (dst / csv_name).write_text("".join(lines))


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A copy of the synthetic data's first 40 training and 8 test rows, to modify freely."""
    root = tmp_path / "tiny"
    _copy_rows(SYNTHETIC, root, TRAIN_CSV, "training", 40)
    _copy_rows(SYNTHETIC, root, TEST_CSV, "test", 8)
    return root


def compose_train(output_dir: Path, overrides: list[str]) -> DictConfig:
    """fkp/conf/train.yaml composed as `python train.py` would, writing into output_dir."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


# Small and fast: 40 synthetic training rows, 64 px, tiny loaders.
QUICK = ["data.limit=40", "data.image_size=64", "data.batch_size=4", "data.num_workers=0",
         "callbacks.progress_bar=null", f"data.data_dir={SYNTHETIC}"]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint trained for a few steps on the synthetic data, once per test run."""
    from fkp.cli.train import train

    run = tmp_path_factory.mktemp("tiny_run")
    train(compose_train(run, [*QUICK, "trainer=debug", "trainer.max_epochs=1", "test=false"]))
    return run / "checkpoints" / "last.ckpt"
