"""README's shell commands run, each as README shows it (training with tiny settings appended),
and the manual (docs/, mkdocs.yml) builds with `mkdocs build --strict`."""

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ROOT
from tests.conftest import SYNTHETIC

README = (ROOT / "README.md").read_text()
# Appended to README's training command: the same command, a few batches of synthetic data.
TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "data.image_size=64", "data.batch_size=4",
        "data.num_workers=0", f"data.data_dir={SYNTHETIC}",
        "callbacks.progress_bar=null"]  # fmt: skip


def _shell_commands() -> list[str]:
    """Every command of README's ```bash blocks, `&&` chains split, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands += [c.strip() for c in line.split("&&")]
    return commands


def _fkp_command() -> list[str]:
    search = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    found = shutil.which("fkp", path=search)
    if found is None:
        pytest.fail("the fkp command is not installed; pip install -e .")
    return [found]


def _run(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_readme_shows_the_two_commands_and_the_examples():
    commands = _shell_commands()
    assert commands[:4] == [
        "pip install torch --index-url https://download.pytorch.org/whl/cpu",  # no CUDA packages
        'pip install -e ".[all]"',
        "python train.py experiment=fast seed=1",
        "python -m pytest",
    ]
    assert len(commands) == 6  # and the two prediction examples below


def test_ci_installs_and_tests_exactly_as_readme_says():
    """CI installs PyTorch's CPU build first (from the wheels this machine offers, as README's
    CPU index would), then fkp as README does, and runs README's test command."""
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    torch_line = next(
        i for i, line in enumerate(ci) if line.startswith("python -m pip install torch")
    )
    project = ci.index('python -m pip install -e ".[all]"')
    assert torch_line < project and _shell_commands()[1] == 'pip install -e ".[all]"'
    assert "python -m pytest" in ci and _shell_commands()[3] == "python -m pytest"


@pytest.mark.parametrize("index", range(2, 6), ids=["train", "tests", "predict", "fkp-predict"])
def test_readme_command_runs(index, tmp_path):
    command = shlex.split(_shell_commands()[index])
    if command[:3] == ["python", "-m", "pytest"]:
        pytest.skip("the test command is the suite itself (and what .ci/run runs)")
    if command[0] == "python":
        command[0] = sys.executable
    elif command[0] == "fkp":
        command = _fkp_command() + command[1:]
    extra = [f"hydra.run.dir={tmp_path / 'run'}"]
    if "train.py" in command[1]:
        extra += TINY
    done = _run(command + extra, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    if "predict" in command[1] or command[1] == "predict":
        assert (tmp_path / "run" / "keypoints.json").is_file()
    else:
        assert (tmp_path / "run" / "metrics.json").is_file()


def _table_commands() -> list[str]:
    section = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(fkp [^`]+)`", section, flags=re.M)


def test_readme_command_table_composes(tmp_path):
    """The table's commands, placeholders filled in, compose their configs (`--cfg job`: every
    option checked, nothing run); argparse commands show their help."""
    commands = _table_commands()
    assert len(commands) == 8
    fill = {"<photo, folder, glob, video or webcam>": "docs/samples/astronaut.jpg",
            "<file.ckpt>": "pretrained", "outputs/multirun/<sweep>": str(tmp_path)}  # fmt: skip
    for shown in commands:
        for alternative in shown.split(" / "):
            text = alternative.strip().strip("`")
            for placeholder, value in fill.items():
                text = text.replace(placeholder, value)
            argv = shlex.split(re.sub(r"[\[\]]", "", text))
            argv = _fkp_command() + argv[1:]
            if argv[1] in ("report", "data"):
                argv = argv[:3] + ["--help"] if argv[1] == "data" else argv[:2] + ["--help"]
            else:
                argv += ["--cfg", "job"]
            done = _run(argv, tmp_path)
            assert done.returncode == 0, f"{text}: {done.stderr[-2000:]}"


def test_the_manual_builds_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        if os.environ.get("CI"):
            pytest.fail("CI builds the manual: pip install -e '.[docs]'")
        pytest.skip("the docs extra is not installed")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "layout" / "index.html").is_file()


def test_readme_is_the_front_door_not_the_manual():
    assert len(README.splitlines()) <= 250
    for page in re.findall(r"\]\((docs/[^)#]+)\)", README):
        assert (ROOT / page).is_file(), page
