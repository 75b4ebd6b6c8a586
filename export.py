"""Export a checkpoint for deployment: `python export.py ckpt_path=<file.ckpt> format=onnx`.

The same as `fkp export ...`; the code lives in fkp/cli/export.py.
"""

import sys

from fkp.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]], program=sys.argv[0]))
