"""Train a facial keypoint model: `python train.py [group=option ...] [key=value ...]`.

The same as `fkp train ...`; the code lives in fkp/cli/train.py.
"""

from fkp.cli.train import main

if __name__ == "__main__":
    main()
