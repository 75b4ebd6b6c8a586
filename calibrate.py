"""Calibrate a face detector's box to the training framing: `python calibrate.py detector=haar`.

The same as `fkp calibrate ...`; the code lives in fkp/cli/calibrate.py.
"""

import sys

from fkp.cli import main

if __name__ == "__main__":
    sys.exit(main(["calibrate", *sys.argv[1:]], program=sys.argv[0]))
