"""fkp: facial keypoint models with PyTorch Lightning and Hydra."""

from pathlib import Path

__version__ = "0.1.0"

# conf/ sits beside the package in the repository (install with `pip install -e .`).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
