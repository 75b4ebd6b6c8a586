"""Training throughput per model and input size: samples/s of forward + backward + Adam step.

Times the model on random batches (the data pipeline is measured by bench/data_pipeline.py),
so the figures say what the network costs on this machine. Run from the project root:

    python bench/train_speed.py [--device cuda] [--batch-size 32] [--seconds 4]
                                [--models fast_net] [--heads regression simcc]

Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from common import Row, hardware, print_rows

from fkp.models.backbones import PRETRAINED_URLS
from fkp.training.module import KeypointModule


def samples_per_second(network: str, size: int, batch: int, device: str, seconds: float,
                       head: str = "regression") -> float:  # fmt: skip
    model = KeypointModule(network, grayscale=True, image_size=size, head={"name": head})
    model = model.to(device).train()
    net = model.net
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 1, size, size, device=device)
    targets = torch.rand(batch, 68, 2, device=device) * 2 - 1

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        net.head.loss(
            net.forward_head(net.forward_features(images)), targets, model.loss
        ).backward()
        optimizer.step()

    for _ in range(2):  # warm-up
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 3:
        step()
        count += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return count * batch / (time.perf_counter() - start)


def measure(models, sizes, batch: int = 32, device: str = "cpu", seconds: float = 4.0,
            heads=("regression",)) -> list[Row]:  # fmt: skip
    torch.set_num_threads(os.cpu_count() or 1)  # training uses every core
    rows: list[Row] = []
    for name in models:
        for head in heads:
            for size in sizes:
                value = samples_per_second(name, size, batch, device, seconds, head)
                setting = f"{size} px, batch {batch}, grayscale, {device}"
                what = f"train: {name}" + ("" if head == "regression" else f" + {head} head")
                rows.append((what, setting, value, "samples/s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 224])
    parser.add_argument("--models", nargs="+", default=["custom_cnn", "fast_net", *PRETRAINED_URLS])
    parser.add_argument("--heads", nargs="+", default=["regression"])
    args = parser.parse_args()
    rows = measure(args.models, args.sizes, args.batch_size, args.device, args.seconds, args.heads)
    print_rows((rows, hardware(args.device)))


if __name__ == "__main__":
    main()
