"""How long each command takes to start: wall seconds from the shell to the work done or
begun, on an idle machine, best and worst of a few rounds.

    FKP_DATA_DIR=../shared/data/youtube_faces python bench/startup.py [--rounds 3]

Rows: --help; predict.py on the sample photo with the shipped model, and with a checkpoint
(the shipped fast.ckpt run as a user's own: PyTorch, no Lightning); eval.py on 20 test faces;
export.py to ONNX; train.py until its model line (everything before the first batch: imports,
settings, reading and decoding the data, building the model and trainer) with trainer=debug
and with the defaults (3462 training images decoded); and, for scale, `import torch` and
`import pytorch_lightning` alone, which every training run pays and fkp cannot shorten.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Row, cpu_name, print_rows

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "docs" / "samples" / "astronaut.jpg"
CKPT = ROOT / "fkp" / "weights" / "fast.ckpt"


def wall(argv: list[str], until: str | None = None) -> float:
    """Seconds until the command ends, or until it prints a line starting with `until`
    (then it is stopped: the rest is training, not start-up)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    seen = None
    for line in proc.stdout:
        if until and line.startswith(until):
            seen = time.perf_counter() - start
            proc.kill()
            break
    proc.wait()
    if until and seen is None:
        raise SystemExit(f"{' '.join(argv[1:])}: never printed {until!r}")
    if not until and proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:])}: failed (exit {proc.returncode})")
    return seen if until else time.perf_counter() - start


def commands(out: Path) -> list[tuple[str, list[str], str | None]]:
    py = sys.executable
    run = [f"hydra.run.dir={out}"]
    return [
        ("import torch", [py, "-c", "import torch"], None),
        ("import pytorch_lightning", [py, "-c", "import pytorch_lightning"], None),
        ("predict.py --help", [py, "predict.py", "--help"], None),
        ("predict.py, the shipped model", [py, "predict.py", f"input={PHOTO}", *run], None),
        ("predict.py, a checkpoint (PyTorch)",
         [py, "predict.py", f"input={PHOTO}", f"ckpt_path={CKPT}", "runtime=torch", *run], None),
        ("eval.py, 20 test faces",
         [py, "eval.py", "ckpt_path=pretrained", "limit=20", "protocols=[gt]", "worst=0", *run],
         None),
        ("export.py to ONNX", [py, "export.py", "ckpt_path=pretrained", *run], None),
        ("train.py trainer=debug, until its model line",
         [py, "train.py", "trainer=debug", *run], "model:"),
        ("train.py (defaults), until its model line", [py, "train.py", *run], "model:"),
    ]  # fmt: skip


def measure(rounds: int = 3) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (what, argv, until) in enumerate(commands(Path(tmp) / "run")):
            times = []
            for r in range(rounds):
                out = Path(tmp) / f"run{i}-{r}"
                argv = [a.replace(f"{Path(tmp) / 'run'}", str(out)) for a in argv]
                times.append(wall(argv, until))
            rows.append((what, f"best of {rounds}", min(times), "s"))
            rows.append((what, f"worst of {rounds}", max(times), "s"))
            print(f"{what}: {min(times):.2f}-{max(times):.2f} s", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if "FKP_DATA_DIR" not in os.environ:
        raise SystemExit("set FKP_DATA_DIR to the data folder (eval and train read it)")
    print_rows((measure(args.rounds), f"{cpu_name()}, wall clock"))


if __name__ == "__main__":
    main()
