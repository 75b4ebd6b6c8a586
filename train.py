"""Train a facial keypoint model: `python train.py [group=option ...] [key=value ...]`.

The same as `fkp train ...`; the code lives in fkp/cli/train.py.
"""

import sys

from fkp.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]], program=sys.argv[0]))
