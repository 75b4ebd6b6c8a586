import shutil
import subprocess

import pytest

from tests import ROOT


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    ruff = shutil.which("ruff")
    assert ruff, "ruff is part of the dev extra: pip install -e '.[dev]'"
    result = subprocess.run([ruff, *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
