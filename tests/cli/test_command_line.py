"""Mistakes on the command line are one line with the fix and exit status 2, whether fkp or
Hydra finds them: a missing value, a setting or option that does not exist, an override that
cannot be read."""

import subprocess
import sys

import pytest

from tests import ROOT
from tests.conftest import SYNTHETIC


def _run(script: str, *args: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args,
                           f"hydra.run.dir={tmp_path}"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr[-2000:]  # no traceback, no Hydra report
    assert "HYDRA_FULL_ERROR" not in done.stderr
    return lines[0]


@pytest.mark.parametrize(
    "script,line",
    [
        ("predict.py", "error: input is required, e.g. fkp predict input=photo.jpg."),
        ("export.py", "error: ckpt_path is required, e.g. fkp export "
                      "ckpt_path=outputs/train/<run>/checkpoints/last.ckpt."),
    ],
)  # fmt: skip
def test_a_missing_value_is_one_line_with_an_example(script, line, tmp_path):
    assert _one_line(_run(script, tmp_path=tmp_path)) == line


@pytest.mark.parametrize("script", ["predict.py", "eval.py", "export.py", "train.py",
                                    "calibrate.py", "demo.py"])  # fmt: skip
def test_a_misspelt_setting_is_one_line_with_the_nearest_names(script, tmp_path):
    line = _one_line(_run(script, "refinee=2", tmp_path=tmp_path))
    assert line.startswith("error: refinee: no such setting;") and "--help" in line
    if script in ("predict.py", "eval.py", "demo.py"):  # they have a `refine` setting
        assert "did you mean refine?" in line


def test_an_unknown_option_lists_the_options(tmp_path):
    line = _one_line(_run("predict.py", "input=x.jpg", "detector=foo", tmp_path=tmp_path))
    assert line == "error: detector=foo: no such option; use one of haar, hog, yunet."
    line = _one_line(_run("train.py", "model=resnet99", tmp_path=tmp_path))
    assert line.startswith("error: model=resnet99: no such option; use one of ")
    assert "resnet18" in line and "fast_net" in line


def test_an_unreadable_override_is_one_line(tmp_path):
    line = _one_line(_run("predict.py", "input=[a", tmp_path=tmp_path))
    assert line.startswith("error: input=[a: not a readable override (")
    assert "quoting values" in line
    line = _one_line(_run("eval.py", "video.passes", tmp_path=tmp_path))
    assert line.startswith("error: video.passes: not a readable override (missing EQUAL")


def test_a_nested_misspelling_is_suggested(tmp_path):
    line = _one_line(_run("predict.py", "input=x.jpg", "video.pases=2", tmp_path=tmp_path))
    assert "video.pases: no such setting; did you mean video.passes?" in line


_REFUSING = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {refused!r}:
            raise ImportError("imported " + name)
sys.meta_path.insert(0, Refuse())
from fkp.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _refusing(refused: tuple[str, ...], *argv: str) -> subprocess.CompletedProcess:
    """fkp's command line in a Python where importing any of `refused` raises."""
    return subprocess.run([sys.executable, "-c", _REFUSING.format(refused=refused), *argv],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip


@pytest.mark.parametrize("command", ["train", "predict", "eval", "export", "demo", "calibrate"])
def test_help_reads_the_settings_without_importing_the_stack(command):
    done = _refusing(("torch", "pytorch_lightning", "lightning", "hydra"), command, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"fkp {command}: ")
    assert "settings (" in done.stdout and "task_name:" in done.stdout


def test_predict_with_the_shipped_model_never_imports_lightning_or_torch(tmp_path):
    photo = ROOT / "docs" / "samples" / "astronaut.jpg"
    done = _refusing(("torch", "pytorch_lightning", "lightning", "lightning_fabric"),
                     "predict", f"input={photo}", f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "keypoints.json").is_file()


LIGHTNING = ("pytorch_lightning", "lightning", "lightning_fabric")
CHECKPOINT = ROOT / "fkp" / "weights" / "fast.ckpt"


@pytest.mark.parametrize(
    "command,args,written",
    [
        ("predict", ["input=docs/samples/astronaut.jpg", "runtime=torch"], "keypoints.json"),
        ("predict", ["input=docs/samples/astronaut.jpg", "runtime=onnx"], "keypoints.json"),
        ("eval", [f"data_dir={SYNTHETIC}", "limit=4", "protocols=[gt]", "worst=0"],
         "metrics.json"),
        ("eval", [f"data_dir={SYNTHETIC}", "split=val", "limit=4", "protocols=[gt]",
                  "worst=0", "precision=int8"], "metrics.json"),
        ("export", ["format=onnx"], "fast.onnx"),
    ],
)  # fmt: skip
def test_using_a_checkpoint_never_imports_lightning(command, args, written, tmp_path):
    """A .ckpt is read as weights and settings (`fkp.models.stored.TrainedNetwork`): only
    training needs Lightning, so the other commands start seconds sooner."""
    done = _refusing(LIGHTNING, command, f"ckpt_path={CHECKPOINT}", *args,
                     f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / written).is_file()
