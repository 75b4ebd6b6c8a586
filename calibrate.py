"""Calibrate a face detector's box to the training framing: `python calibrate.py detector=haar`.

The same as `fkp calibrate ...`; the code lives in fkp/cli/calibrate.py.
"""

from fkp.cli.calibrate import main

if __name__ == "__main__":
    main()
