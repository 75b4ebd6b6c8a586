import importlib
import importlib.util

import pytest
from hydra.utils import instantiate

from fkp import CONF_DIR
from fkp.config import build
from tests.conftest import compose_train

GROUPS = ["model", "optimizer", "scheduler", "loss", "trainer", "callbacks", "logger",
          "experiment", "data", "paths", "hparams_search"]  # fmt: skip


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_the_issue_groups_and_options_exist():
    assert _options("model") == ["custom_cnn", "fast_net", "resnet18", "resnet34", "resnet50"]
    assert _options("model/head") == ["integral", "pip", "regression", "simcc"]
    assert _options("optimizer") == ["adam", "adamw", "sgd"]
    assert _options("scheduler") == ["cosine", "none", "plateau"]
    assert _options("loss") == ["mse", "smooth_l1", "wing"]
    assert _options("trainer") == ["cpu", "ddp", "debug", "default", "gpu"]
    assert _options("logger") == ["csv", "mlflow", "tensorboard", "wandb"]
    assert _options("hydra/launcher") == ["slurm"]  # beside the plugins' submitit_*, joblib
    assert {"article", "fast"} <= set(_options("experiment"))


def test_default_is_the_write_up_experiment(tmp_path):
    cfg = compose_train(tmp_path, [])
    assert cfg.model.network == "custom_cnn" and cfg.data.image_size == 224 and cfg.data.grayscale
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 0.001
    assert cfg.scheduler._target_.endswith("ReduceLROnPlateau") and cfg.data.batch_size == 16
    assert cfg.loss._target_ == "torch.nn.MSELoss" and cfg.trainer.accelerator == "auto"


@pytest.mark.parametrize(
    "override",
    [
        f"{g}={o}"
        for g in [*GROUPS, "model/head"]
        if g not in ("paths", "hparams_search")
        for o in _options(g)
    ],  # fmt: skip
)
def test_every_group_option_composes_and_instantiates(tmp_path, override):
    extra = {"logger=mlflow": "mlflow", "logger=wandb": "wandb"}.get(override)
    if extra and importlib.util.find_spec(extra) is None:
        pytest.skip(f"{override} needs the track extra: pip install -e '.[track]'")
    cfg = compose_train(tmp_path, [override, "data.image_size=64"])
    optimizer = build(cfg.optimizer)
    scheduler = build(cfg.scheduler) if cfg.get("scheduler") else None
    model = build(cfg.model, optimizer=optimizer, scheduler=scheduler, loss=build(cfg.loss))
    model.configure_optimizers()
    for node in ["callbacks", "logger"]:
        for sub in (cfg.get(node) or {}).values():
            build(sub)
    assert build(cfg.data).train_transform.image_size == cfg.data.image_size
    if "ddp" not in override and "gpu" not in override:
        instantiate(cfg.trainer)


def test_hparams_search_composes(tmp_path):
    cfg = compose_train(tmp_path, ["hparams_search=optuna"])
    assert cfg.hydra.sweeper.direction == "minimize" and cfg.optimized_metric == "val/nme"
    assert "optimizer.lr" in cfg.hydra.sweeper.params


def test_every_fkp_target_in_the_configs_exists():
    """fkp/conf/ mirrors the package: each `_target_` into fkp names an object the package has."""

    targets = set()
    for path in CONF_DIR.rglob("*.yaml"):
        for line in path.read_text().splitlines():
            if line.strip().startswith("_target_: fkp."):
                targets.add(line.split(":", 1)[1].split("#")[0].strip())
    assert len(targets) >= 6
    for target in sorted(targets):
        module, name = target.rsplit(".", 1)
        assert hasattr(importlib.import_module(module), name), target


def test_a_users_own_config_folder_joins_the_shipped_ones(tmp_path):
    """`hydra.searchpath=[file://my_conf]` adds a folder of the user's own options."""
    (tmp_path / "my_conf" / "experiment").mkdir(parents=True)
    (tmp_path / "my_conf" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: fast_net\ntrainer:\n  max_epochs: 3\n"
    )
    search = f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]"
    cfg = compose_train(tmp_path / "run", [search, "experiment=mine"])
    assert cfg.trainer.max_epochs == 3 and cfg.model.network == "fast_net"
