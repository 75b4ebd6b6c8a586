"""fkp: facial keypoint models with PyTorch Lightning and Hydra."""

from pathlib import Path

__version__ = "0.1.0"

# The Hydra configs ship inside the package (a wheel has them too); a user's own config folder
# joins them through Hydra's search path (`hydra.searchpath=[file://my_conf]`).
CONF_DIR = Path(__file__).resolve().parent / "conf"


def __getattr__(name: str):
    # The API loads torch and Lightning; import it only when asked for.
    if name in ("FaceKeypointDetector", "Face"):
        from fkp.runtime import predictor

        return getattr(predictor, name)
    raise AttributeError(name)
