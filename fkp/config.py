"""Composing fkp's Hydra configs outside `@hydra.main` (tools, notebooks, tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from fkp import CONF_DIR
from fkp.errors import FkpError


def compose_config(groups: dict[str, str], overrides: Sequence[str] = ()) -> DictConfig:
    """The config made of the named group options plus command-line style overrides.

    groups: e.g. {"data": "youtube_faces", "paths": "default"}.
    """
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(overrides=[f"+{g}={o}" for g, o in groups.items()] + list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise FkpError(f"config: {e}".replace("\n", " ")) from None
    return cfg


def build(node: DictConfig, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, with user mistakes raised as one-line `FkpError`s.

    Hydra wraps whatever the constructor raised; an FkpError inside comes out as it was, and
    any other failure (a misspelt argument, say) is named with the config key it came from.
    Nested settings arrive as plain dicts and lists, so they pickle into checkpoints.
    """
    kwargs.setdefault("_convert_", "all")
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, FkpError):
            raise e.__cause__ from None
        raise FkpError(f"config: {' '.join(str(e).split())}") from None
    except OmegaConfBaseException as e:
        raise FkpError(f"config: {' '.join(str(e).split())}") from None
