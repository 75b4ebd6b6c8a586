"""Each how-to in the manual, done as its page says: the page's files written where it says
(fkp/<package>/<file>.py beside fkp's own modules, fkp/conf/<group>/<file>.yaml in a config
folder joined through hydra.searchpath), then its commands run (with a few batches of the
synthetic data appended to training)."""

import json
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

import fkp.data
import fkp.models
import fkp.runtime
from fkp import CONF_DIR
from fkp.data.formats import DATA_FORMATS
from fkp.data.io import read_keypoints_csv
from fkp.data.transforms import TRANSFORMS
from fkp.models.backbones import BACKBONES
from fkp.models.codecs import CODECS
from fkp.models.heads import HEADS
from fkp.runtime.detect import DETECTORS
from tests import ROOT
from tests.conftest import QUICK, SYNTHETIC

REGISTRIES = (BACKBONES, HEADS, CODECS, DATA_FORMATS, TRANSFORMS, DETECTORS)
PACKAGES = {"models": fkp.models, "data": fkp.data, "runtime": fkp.runtime}
HOWTOS = [("models.md", "Add a backbone"), ("models.md", "Add a head and its codec"),
          ("data.md", "Add a data format"), ("data.md", "Add a transform"),
          ("inference.md", "Add a face detector")]  # fmt: skip
TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "trainer.log_every_n_steps=1", "test=true"]  # fmt: skip


def _section(page: str, title: str) -> str:
    text = (ROOT / "docs" / page).read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _files(section: str) -> dict[str, str]:
    pattern = r"\*\*`([^`]+)`\*\*\n\n```\w+\n(.*?)```"
    return dict(re.findall(pattern, section, flags=re.S))


def _commands(section: str) -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines() if line.strip()]


@pytest.fixture
def own_components(monkeypatch, tmp_path):
    """Undo what a how-to registers: registries, package paths and modules as they were."""
    for registry in REGISTRIES:
        monkeypatch.setattr(registry, "_items", dict(registry._items))
        monkeypatch.setattr(registry, "_discovered", False)
    for package in PACKAGES.values():
        monkeypatch.setattr(package, "__path__", list(package.__path__))
    before = set(sys.modules)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("fkp."):
            del sys.modules[name]


def _compose(config: str, run_dir: Path, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.paths.log_dir = cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def _without(defaults: list[str], overrides: list[str]) -> list[str]:
    """defaults less the keys the page's own overrides set."""
    keys = {o.split("=", 1)[0] for o in overrides}
    return [d for d in defaults if d.split("=", 1)[0] not in keys]


def _json_faces(folder: Path) -> None:
    """The synthetic data in the how-to's JSON format, for `data.data_dir=my_faces`."""
    folder.mkdir()
    for csv, images, out in (("training_frames_keypoints.csv", "training", "train.json"),
                             ("test_frames_keypoints.csv", "test", "test.json")):  # fmt: skip
        table = read_keypoints_csv(SYNTHETIC / csv)
        faces = [{"image": n, "points": p.tolist()} for n, p in zip(table.names, table.keypoints)]
        (folder / out).write_text(json.dumps(faces))
        (folder / images).symlink_to(SYNTHETIC / images)


def _run(command: list[str], search: str, run_dir: Path) -> None:
    from fkp.cli import calibrate, predict, train

    assert command[0] == "fkp", command
    overrides = [search, *command[2:]]
    if command[1] == "train":
        cfg = _compose("train", run_dir, _without(QUICK + TINY, overrides) + overrides)
        metrics = train.train(cfg)
        assert np.isfinite(metrics["test/nme"])
    elif command[1] == "predict":  # run from the checkout, as the page's paths are
        overrides = [f"input={ROOT / o[6:]}" if o.startswith("input=") else o for o in overrides]
        cfg = _compose("predict", run_dir, overrides)
        assert predict.predict(cfg) == 0
        faces = json.loads((run_dir / "keypoints.json").read_text())
        assert len(next(iter(faces.values()))["faces"]) == 1
    elif command[1] == "calibrate":
        cfg = _compose("calibrate", run_dir, [f"data.data_dir={SYNTHETIC}", *overrides])
        assert calibrate.run(cfg)["faces"] > 0
    else:
        raise AssertionError(f"the how-to runs {command}; teach this test that command")


@pytest.mark.parametrize("page,title", HOWTOS, ids=[t for _, t in HOWTOS])
def test_the_howto_works_as_written(page, title, own_components):
    section = _section(page, title)
    files, commands = _files(section), _commands(section)
    assert files and commands
    conf = own_components / "my_conf"
    for path, text in files.items():
        parts = Path(path).parts
        if parts[:2] == ("fkp", "conf"):
            target = conf.joinpath(*parts[2:])
        else:
            assert parts[0] == "fkp" and parts[1] in PACKAGES and path.endswith(".py"), path
            target = own_components / "code" / Path(*parts)
            PACKAGES[parts[1]].__path__.append(str(target.parent))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if "data.data_dir=my_faces" in " ".join(" ".join(c) for c in commands):
        _json_faces(own_components / "my_faces")
    search = f"hydra.searchpath=[file://{conf}]"
    for k, command in enumerate(commands):
        _run(command, search, own_components / f"run{k}")
