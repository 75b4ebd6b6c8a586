"""Composing fkp's Hydra configs outside `@hydra.main` (tools, notebooks, tests)."""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, InstantiationException
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fkp import CONF_DIR
from fkp.errors import FkpError, JobFailed, as_fkp_error, reported_as_one_line

# `${pid:}` in conf/hydra/default.yaml: run folders are named by time and process id, so two
# runs started in the same second never share one.
OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True, replace=True)
# `${abspath:outputs}`: tools that keep their own working folder (MLflow's store) get the
# absolute form of a path that README's commands give relative to the project root.
OmegaConf.register_new_resolver("abspath", lambda p: os.path.abspath(p), replace=True)


class CheckOutputFolder(Callback):
    """Hydra makes the run folder before fkp's code runs, and a folder it cannot make ends in
    its traceback: this callback (conf/hydra/default.yaml) makes and checks it first, so a
    read-only or uncreatable `hydra.run.dir` is one line and exit status 2, as every other
    unwritable folder is."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir=<folder>")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir=<folder>")

    @staticmethod
    def _check(folder: str, setting: str) -> None:
        from fkp.files import ensure_writable

        with reported_as_one_line():
            ensure_writable(folder, setting)


def compose_config(
    groups: dict[str, str], overrides: Sequence[str] = (), config_name: str | None = None
) -> DictConfig:
    """The config made of the named group options plus command-line style overrides.

    groups: e.g. {"data": "youtube_faces", "paths": "default"}; config_name: a primary config
    of conf/ to start from instead ("train": then `experiment=...` overrides work too).
    """
    added = [f"+{g}={o}" for g, o in groups.items()]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=added + list(overrides))
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


# One schema for the settings users set on the command line: each rule is (key, test,
# requirement, example). Settings a config lacks (another optimizer's momentum, say) are skipped;
# everything a rule names is checked before any work starts.
def _integer(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(low: float, high: float = math.inf, open_low: bool = False) -> Callable[[Any], bool]:
    def test(v: Any) -> bool:
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            return False
        return (v > low if open_low else v >= low) and v <= high

    return test


def _seed(v: Any) -> bool:  # what NumPy's and torch's generators take
    return _integer(0)(v) and v < 2**32


def _optional(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or test(v)


def _boolean(v: Any) -> bool:
    return isinstance(v, bool)


def _count_or_fraction(v: Any) -> bool:
    return v is None or _integer(1)(v) or _number(0, 1, open_low=True)(v)


def _widths(v: Any) -> bool:
    values = v if isinstance(v, list | tuple | ListConfig) else [v]
    return len(values) > 0 and all(_integer(1)(w) for w in values)


def _three_numbers(positive: bool) -> Callable[[Any], bool]:
    def test(v: Any) -> bool:
        if not isinstance(v, list | tuple | ListConfig) or len(v) not in (1, 3):
            return False
        return all(_number(0, open_low=positive)(x) for x in v)

    return test


Rule = tuple[str, Callable[[Any], bool], str, str]
TRAIN_RULES: tuple[Rule, ...] = (
    ("seed", _optional(_seed), "a whole number 0-4294967295, or null", "seed=42"),
    ("test", _boolean, "true or false", "test=false"),
    ("data.batch_size", _integer(1), "a whole number >= 1", "data.batch_size=16"),
    ("data.num_workers", _integer(0), "a whole number >= 0", "data.num_workers=2"),
    (
        "data.image_size",
        lambda v: _integer(16)(v) and v <= 1024,
        "a whole number of pixels 16-1024",
        "data.image_size=112",
    ),  # fmt: skip
    (
        "data.margin",
        _number(0, 4),
        "a number 0-4 (0.5: half the face's extent)",
        "data.margin=0.5",
    ),  # fmt: skip
    ("data.frame_scale", _number(1, 4), "a number 1-4", "data.frame_scale=1.116"),
    ("data.grayscale", _boolean, "true or false", "data.grayscale=true"),
    (
        "data.val_fraction",
        _number(0, 1, open_low=True),
        "a fraction in (0, 1)",
        "data.val_fraction=0.1",
    ),  # fmt: skip
    ("data.limit", _optional(_integer(1)), "a whole number >= 1, or null", "data.limit=100"),
    ("data.seed", _seed, "a whole number 0-4294967295", "data.seed=42"),
    ("data.pin_memory", _boolean, "true or false", "data.pin_memory=false"),
    ("data.cache", _boolean, "true or false", "data.cache=false"),
    ("data.download", _boolean, "true or false", "data.download=true"),
    ("data.mean", _three_numbers(False), "three numbers >= 0", "data.mean=[0.485,0.456,0.406]"),
    ("data.std", _three_numbers(True), "three numbers > 0", "data.std=[0.229,0.224,0.225]"),
    ("optimizer.lr", _number(0, open_low=True), "a finite number > 0", "optimizer.lr=0.001"),
    (
        "optimizer.weight_decay",
        _number(0),
        "a finite number >= 0",
        "optimizer.weight_decay=0.0001",
    ),  # fmt: skip
    ("optimizer.momentum", _number(0, 1), "a number in [0, 1]", "optimizer.momentum=0.9"),
    ("trainer.max_epochs", _integer(1), "a whole number >= 1", "trainer.max_epochs=30"),
    (
        "trainer.check_val_every_n_epoch",
        _optional(_integer(1)),
        "a whole number of epochs >= 1",
        "trainer.check_val_every_n_epoch=1",
    ),  # fmt: skip
    (
        "trainer.limit_train_batches",
        _count_or_fraction,
        "a batch count >= 1 or a fraction in (0, 1]",
        "trainer.limit_train_batches=1.0",
    ),  # fmt: skip
    (
        "trainer.limit_val_batches",
        _count_or_fraction,
        "a batch count >= 1 or a fraction in (0, 1]",
        "trainer.limit_val_batches=1.0",
    ),  # fmt: skip
    (
        "model.network_kwargs.channels",
        _widths,
        "a non-empty list of widths >= 1",
        "model.network_kwargs.channels=[24,48,96,192]",
    ),  # fmt: skip
    ("model.network_kwargs.hidden", _widths, "widths >= 1", "model.network_kwargs.hidden=256"),
    (
        "model.network_kwargs.dropout",
        _number(0, 0.99),
        "a probability in [0, 1)",
        "model.network_kwargs.dropout=0.1",
    ),  # fmt: skip
    (
        "model.head.extent",
        _number(1),
        "a number >= 1 (the input's side is 1)",
        "model.head.extent=1.25",
    ),
    ("model.head.sigma", _number(0, open_low=True), "a number > 0", "model.head.sigma=1.0"),
    ("model.head.upsample", _integer(0), "a whole number of stages >= 0", "model.head.upsample=0"),
    ("model.head.channels", _integer(1), "a whole number >= 1", "model.head.channels=64"),
    ("model.head.heatmap_weight", _number(0), "a number >= 0", "model.head.heatmap_weight=0.0"),
    (
        "model.head.split_ratio",
        _number(0, open_low=True),
        "a number > 0",
        "model.head.split_ratio=2.0",
    ),
    ("model.head.hidden", _optional(_widths), "widths >= 1, or null", "model.head.hidden=256"),
    ("model.head.window", _integer(1), "a whole number of bins >= 1", "model.head.window=9"),
    ("model.head.offset_weight", _number(0), "a number >= 0", "model.head.offset_weight=1.0"),
)

DETECTOR_RULES: tuple[Rule, ...] = (
    (
        "detector.scale_factor",
        _number(1, open_low=True),
        "a number > 1",
        "detector.scale_factor=1.2",
    ),  # fmt: skip
    ("detector.min_neighbors", _integer(0), "a whole number >= 0", "detector.min_neighbors=2"),
    ("detector.min_size", _integer(1), "a whole number of pixels >= 1", "detector.min_size=30"),
    (
        "detector.max_side",
        _integer(32),
        "a whole number of pixels >= 32",
        "detector.max_side=800",
    ),  # fmt: skip
)
# Settings of using a model, shared by eval.py, predict.py and demo.py.
USE_RULES: tuple[Rule, ...] = (
    ("flip_test", _boolean, "true or false", "flip_test=false"),
    ("refine", _optional(_integer(0)), "a whole number of passes >= 0, or null", "refine=2"),
)
PRECISION_RULE: Rule = (
    "precision",
    lambda v: v in ("float32", "int8", "float16"),
    "float32, int8 or float16",
    "precision=int8",
)
EVAL_RULES: tuple[Rule, ...] = (
    ("limit", _optional(_integer(1)), "a whole number >= 1, or null", "limit=200"),
    ("threads", _integer(1), "a whole number >= 1", "threads=1"),
    ("worst", _integer(0), "a whole number >= 0", "worst=16"),
    *USE_RULES,
    ("dlib", _boolean, "true or false", "dlib=true"),
    PRECISION_RULE,
    (
        "people",
        lambda v: v in ("all", "held_out", "seen"),
        "all, held_out or seen",
        "people=held_out",
    ),  # fmt: skip
    *DETECTOR_RULES,
)
PREDICT_RULES: tuple[Rule, ...] = (
    *USE_RULES,
    ("parts", _boolean, "true or false", "parts=true"),
    ("crops", _boolean, "true or false", "crops=true"),
    (
        "workers",
        lambda v: v == "auto" or _integer(1)(v),
        "auto or a whole number >= 1",
        "workers=2",
    ),  # fmt: skip
    ("video.smooth", _boolean, "true or false", "video.smooth=true"),
    ("video.detect_every", _integer(1), "a whole number of frames >= 1", "video.detect_every=10"),
    ("video.passes", _integer(1), "a whole number of passes >= 1", "video.passes=1"),
    ("video.verify_every", _integer(1), "a whole number of frames >= 1", "video.verify_every=10"),
    (
        "video.detect_side",
        _integer(0),
        "a whole number of pixels (0: full size)",
        "video.detect_side=320",
    ),
    ("video.flip_test", _boolean, "true or false", "video.flip_test=true"),
    ("video.min_cutoff", _number(0, open_low=True), "a number > 0", "video.min_cutoff=1.0"),
    ("video.beta", _number(0), "a number >= 0", "video.beta=0.05"),
    *DETECTOR_RULES,
)
DEMO_RULES: tuple[Rule, ...] = (
    ("port", lambda v: _integer(1)(v) and v < 65536, "a port number 1-65535", "port=7860"),
    *USE_RULES,
    *DETECTOR_RULES,
)


def validate(cfg: DictConfig, rules: Sequence[Rule] = TRAIN_RULES) -> None:
    """Raise one FkpError for the first setting that breaks its rule, naming it and the fix."""
    for key, test, requirement, example in rules:
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
        except OmegaConfBaseException as e:
            raise FkpError(f"{key}: {' '.join(str(e).split())}; set it, e.g. {example}.") from None
        if value is _ABSENT:
            continue
        if not test(value):
            raise FkpError(f"{key}={value!r} is not allowed: use {requirement}, e.g. {example}.")


_ABSENT = object()


def command_line_error(error: BaseException, command: str) -> str | None:
    """The one-line form of a mistake Hydra or OmegaConf found in a command line (a missing
    value, a setting or option that does not exist, an override it cannot read), or None for
    anything else."""
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )

    help_hint = f"`fkp {command} --help` lists the settings"
    missing = as_fkp_error(error)  # a mandatory value not given
    if missing is not None:
        return str(missing)
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.strip("/").rpartition("/")
        if group and error.options:
            return f"{group}={option}: no such option; use one of {', '.join(error.options)}."
    if isinstance(error, OverrideParseException):
        reasons = [line for line in str(error).splitlines()
                   if not line.startswith(("Error parsing override", "See https"))]  # fmt: skip
        return (
            f"{error.override}: not a readable override ({'; '.join(reasons) or 'bad syntax'});"
            f" write key=value, quoting values with spaces, brackets or * ('input=photos/*.jpg');"
            f" {help_hint}."
        )
    if isinstance(error, ConfigCompositionException):
        key = re.search(r"Could not override '([^']+)'", str(error))
        if key:
            near = close_settings(key.group(1), command)
            maybe = f"did you mean {' or '.join(near)}? " if near else ""
            return f"{key.group(1)}: no such setting; {maybe}{help_hint} (--cfg job shows them)."
    if isinstance(error, HydraException | OmegaConfBaseException):
        return f"config: {' '.join(str(error).split())}"
    return None


def close_settings(key: str, command: str) -> list[str]:
    """Settings of the command's own config (fkp/conf/<command>.yaml) spelt like `key`."""
    import difflib

    import yaml

    try:
        node: Any = yaml.safe_load((CONF_DIR / f"{command}.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    *parents, last = key.split(".")
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return []
    prefix = "".join(f"{p}." for p in parents)
    names = [str(k) for k in node if k != "defaults"]
    return [prefix + n for n in difflib.get_close_matches(last, names, n=2, cutoff=0.6)]


def one_line_errors(command: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """For a `@hydra.main` entry point: mistakes Hydra or OmegaConf find in the command line
    are one line and exit status 2 instead of Hydra's report and its HYDRA_FULL_ERROR hint
    (setting HYDRA_FULL_ERROR=1 yourself still gives Hydra's full traceback)."""

    def wrap(hydra_main: Callable[[], Any]) -> Callable[[], Any]:
        @functools.wraps(hydra_main)
        def main() -> Any:
            own = "HYDRA_FULL_ERROR" not in os.environ
            if own:  # Hydra then raises the error here instead of printing its own report
                os.environ["HYDRA_FULL_ERROR"] = "1"
            try:
                return hydra_main()
            except JobFailed as e:  # a sweep job failed; its line is already printed
                print(f"error: a job of the sweep failed ({e}); the others ran.", file=sys.stderr)
                sys.exit(1)
            except Exception as e:
                line = command_line_error(e, command) if own else None
                if line is None:
                    raise
                print(f"error: {line}", file=sys.stderr)
                sys.exit(2)
            finally:
                if own:
                    os.environ.pop("HYDRA_FULL_ERROR", None)

        return main

    return wrap
