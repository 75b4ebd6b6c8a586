"""Find every face and its 68 keypoints: `python predict.py input=<image|folder|glob|video>`.

The same as `fkp predict ...`; the code lives in fkp/cli/predict.py.
"""

import sys

from fkp.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]], program=sys.argv[0]))
