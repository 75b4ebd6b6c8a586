"""Evaluate a checkpoint: `python eval.py [ckpt_path=...] [split=test | csv=... images=...]`.

The same as `fkp eval ...`; the code lives in fkp/cli/eval.py.
"""

from fkp.cli.eval import main

if __name__ == "__main__":
    main()
