"""Importing fkp has no side effects: no plotting backend switched, no file read."""

import os
import subprocess
import sys


def test_importing_fkp_modules_leaves_matplotlibs_backend_alone():
    code = (
        "import matplotlib; import fkp.callbacks, fkp.evaluate, fkp.report, fkp.viz; "
        "import fkp.cli.train, fkp.cli.predict, fkp.cli.eval; print(matplotlib.get_backend())"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "svg"


def test_importing_fkp_reads_no_config_or_landmark_file():
    code = (
        "import pathlib; read = []; original = pathlib.Path.read_text\n"
        "def spy(self, *a, **k):\n    read.append(str(self)); return original(self, *a, **k)\n"
        "pathlib.Path.read_text = spy\n"
        "import fkp.landmarks, fkp.data.io, fkp.evaluate, fkp.robustness, fkp.metrics\n"
        "import fkp.models, fkp.viz, fkp.runtime.predictor, fkp.runtime.track, fkp.cli.predict\n"
        "print([p for p in read if p.endswith('.yaml')])\n"
        "from fkp.landmarks import IBUG68\n"
        "print(IBUG68.num_points)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]", "68"]  # read when first used, not on import
