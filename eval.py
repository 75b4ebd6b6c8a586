"""Evaluate a checkpoint: `python eval.py [ckpt_path=...] [split=test | csv=... images=...]`.

The same as `fkp eval ...`; the code lives in fkp/cli/eval.py.
"""

import sys

from fkp.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]], program=sys.argv[0]))
