"""fkp: facial keypoint models with PyTorch Lightning and Hydra."""

from pathlib import Path

__version__ = "0.1.0"

# conf/ sits beside the package in the repository (install with `pip install -e .`).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def __getattr__(name: str):
    # The API loads torch and Lightning; import it only when asked for.
    if name in ("FaceKeypointDetector", "Face"):
        from fkp import predictor

        return getattr(predictor, name)
    raise AttributeError(name)
