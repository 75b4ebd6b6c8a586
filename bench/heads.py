"""Heads side by side under one fixed budget: the same backbone, input size, recipe, epochs and
seed for every row; only `model/head` changes.

    python bench/heads.py [--heads regression integral simcc pip] [--epochs 20]
                          [--out outputs/bench_heads] [--remeasure] [-- train.py overrides]

Each row trains with train.py (experiment=fast, so FastNet at 112 px, unless overridden), then
reports the person-split val and test NME / FR@0.10 / AUC@0.10 from the run's metrics.json,
the training minutes (wall clock, this machine), training samples/s (forward, backward and
optimizer step on random batches of 32, all cores; bench/train_speed.py), and ms per face of
the network in onnxruntime on 1 thread at batch 1. Finished rows are kept in
<out>/<head>/row.json and not trained again, so an interrupted table resumes; --remeasure
times finished rows again (run it with nothing else on the machine). Prints markdown for
docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import hardware
from predict_speed import best_of
from train_speed import samples_per_second

from fkp.runtime.predictor import FaceKeypointDetector
from fkp.training.export import onnx_runtime_model

ROOT = Path(__file__).resolve().parents[1]


def train(head: str, epochs: int, seed: int, run_dir: Path, extra: list[str]) -> float:
    """Train one row; returns wall-clock minutes."""
    command = [sys.executable, str(ROOT / "train.py"), "experiment=fast", f"model/head={head}",
               f"trainer.max_epochs={epochs}", f"seed={seed}", f"hydra.run.dir={run_dir}",
               "callbacks.progress_bar=null", *extra]  # fmt: skip
    start = time.perf_counter()
    with open(run_dir.with_suffix(".log"), "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return (time.perf_counter() - start) / 60


def ms_per_face(ckpt: str) -> float:
    torch.set_num_threads(1)
    det = FaceKeypointDetector.from_checkpoint(ckpt, runtime="torch")
    model = onnx_runtime_model(det.model.module, det.transform, threads=1)
    size, channels = det.transform.image_size, det.transform.channels
    one = torch.randn(1, channels, size, size)
    return 1e3 * best_of(lambda: model(one), 200)


def row(head: str, args: argparse.Namespace) -> dict:
    out = Path(args.out) / head
    saved = out / "row.json"
    if saved.is_file():
        result = json.loads(saved.read_text())
        if args.remeasure:  # speeds again, with nothing else running
            result["ms"] = ms_per_face(result["checkpoint"])
            result["samples_s"] = samples_per_second("fast_net", 112, 32, "cpu", 8.0, head)
            saved.write_text(json.dumps(result, indent=2) + "\n")
        return result
    out.parent.mkdir(parents=True, exist_ok=True)
    minutes = train(head, args.epochs, args.seed, out, args.extra)
    metrics = json.loads((out / "metrics.json").read_text())
    result = {
        "head": head,
        "minutes": minutes,
        "ms": ms_per_face(metrics["best_checkpoint"]),
        "samples_s": samples_per_second("fast_net", 112, 32, "cpu", 8.0, head),
        **{
            k: metrics[k]
            for k in ("val/nme", "val/fr", "val/auc", "test/nme", "test/fr", "test/auc")
        },
        "checkpoint": metrics["best_checkpoint"],
    }
    saved.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", nargs="+", default=["regression", "integral", "simcc", "pip"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/bench_heads")
    parser.add_argument(
        "--remeasure", action="store_true", help="measure finished rows' speed again"
    )
    parser.add_argument("extra", nargs="*", help="more train.py overrides, after --")
    args = parser.parse_args()
    rows = []
    for head in args.heads:
        rows.append(row(head, args))
        print(f"{head}: done", file=sys.stderr)
    base = next((r for r in rows if r["head"] == "regression"), rows[0])
    recipe = " ".join(["experiment=fast", *args.extra])
    print(f"{recipe}, {args.epochs} epochs, seed {args.seed}; ms/face on {hardware(threads=1)}\n")
    print("| head | val NME | val FR@0.10 | test NME | test FR@0.10 | test AUC@0.10 "
          "| ms/face (onnxruntime, 1 thread) | training samples/s (2 threads) "
          "| training minutes (wall) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in sorted(rows, key=lambda r: r["val/nme"]):
        print(f"| {r['head']} | {100 * r['val/nme']:.2f}% | {100 * r['val/fr']:.2f}% | "
              f"{100 * r['test/nme']:.2f}% | {100 * r['test/fr']:.2f}% | {r['test/auc']:.3f} | "
              f"{r['ms']:.2f} ({r['ms'] / base['ms']:.2f}x) | "
              f"{r['samples_s']:.0f} ({r['samples_s'] / base['samples_s']:.2f}x) | "
              f"{r['minutes']:.1f} ({r['minutes'] / base['minutes']:.2f}x) |")  # fmt: skip


if __name__ == "__main__":
    main()
