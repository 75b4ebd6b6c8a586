"""A web page for showing a keypoint model to others: `python demo.py`, then open its address.

The same as `fkp demo ...`; the code lives in fkp/cli/demo.py.
"""

import sys

from fkp.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]], program=sys.argv[0]))
