"""Import time and resident memory of the runtime against the full PyTorch path.

python bench/runtime_footprint.py [--image docs/samples/astronaut.jpg] [--repeats 5]

Each path runs in fresh interpreters (the best of --repeats): import fkp's API, load the
shipped model, find the keypoints of one photo. "runtime" is what `from_pretrained()` does on
a CPU (the shipped ONNX file: NumPy, OpenCV, onnxruntime); "PyTorch" is
`from_pretrained(runtime="torch")` (the checkpoint, read by PyTorch; Lightning is not loaded).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import Row, cpu_name, print_rows

from fkp.errors import counted

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import json, resource, sys, time
start = time.perf_counter()
from fkp import FaceKeypointDetector
import cv2
imported = time.perf_counter()
det = FaceKeypointDetector.from_pretrained(runtime=sys.argv[2])
loaded = time.perf_counter()
image = cv2.cvtColor(cv2.imread(sys.argv[1]), cv2.COLOR_BGR2RGB)
faces = det(image)
done = time.perf_counter()
stack = ("torch", "pytorch_lightning", "hydra", "albumentations")
heavy = sorted(m for m in stack if m in sys.modules)
print(json.dumps({"import": imported - start, "load": loaded - imported, "first": done - loaded,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "faces": len(faces), "heavy": heavy}))
"""


def run(image: str, runtime: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, image, runtime], capture_output=True,
                          text=True, check=True, cwd=ROOT)  # fmt: skip
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(ROOT / "docs" / "samples" / "astronaut.jpg"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows: list[Row] = []
    for name, runtime in (("runtime (ONNX)", "onnx"), ("PyTorch", "torch")):
        runs = [run(args.image, runtime) for _ in range(args.repeats)]
        best = {k: min(r[k] for r in runs) for k in ("import", "load", "first", "rss_mib")}
        loaded = ", ".join(runs[0]["heavy"]) or "none of torch, Lightning, Hydra, albumentations"
        setting = f"{Path(args.image).name}, {counted(runs[0]['faces'], 'face')}; loaded: {loaded}"
        rows.append((f"{name}: import fkp", setting, 1e3 * best["import"], "ms"))
        rows.append((f"{name}: import + model + first photo", setting,
                     1e3 * (best["import"] + best["load"] + best["first"]), "ms"))  # fmt: skip
        rows.append((f"{name}: peak resident memory", setting, best["rss_mib"], "MiB"))
    print_rows((rows, f"{cpu_name()}, best of {args.repeats} fresh interpreters"))


if __name__ == "__main__":
    main()
