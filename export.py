"""Export a checkpoint for deployment: `python export.py ckpt_path=<file.ckpt> format=onnx`.

The same as `fkp export ...`; the code lives in fkp/cli/export.py.
"""

from fkp.cli.export import main

if __name__ == "__main__":
    main()
