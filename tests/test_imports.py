"""Importing fkp changes nothing outside it: no plotting backend switched for the caller."""

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
