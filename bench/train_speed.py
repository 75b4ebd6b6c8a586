"""Training throughput per model and input size: samples/s of forward + backward + Adam step.

Times the model on random batches (the data pipeline is measured by bench/data_pipeline.py),
so the figures say what the network costs on this machine. Run from the project root:

    python bench/train_speed.py [--device cuda] [--batch-size 32] [--seconds 4]

Prints a markdown table for README.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from fkp.models import RESNETS
from fkp.module import KeypointModule


def samples_per_second(network: str, size: int, batch: int, device: str, seconds: float) -> float:
    model = KeypointModule(network, grayscale=True, image_size=size).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 1, size, size, device=device)
    targets = torch.rand(batch, 68, 2, device=device) * 2 - 1

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.loss(model(images), targets).backward()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 224])
    parser.add_argument("--models", nargs="+", default=["custom_cnn", *RESNETS])
    args = parser.parse_args()
    if args.device == "cpu":
        where = f"CPU, {torch.get_num_threads()} threads of {os.cpu_count()} cores"
    else:
        where = torch.cuda.get_device_name()
    print(f"training samples/s, batch {args.batch_size}, grayscale, {where}\n")
    print("| model | " + " | ".join(f"{s} px" for s in args.sizes) + " |")
    print("| --- |" + " --- |" * len(args.sizes))
    for name in args.models:
        rates = [samples_per_second(name, s, args.batch_size, args.device, args.seconds)
                 for s in args.sizes]  # fmt: skip
        print(f"| {name} | " + " | ".join(f"{r:.0f}" for r in rates) + " |", flush=True)


if __name__ == "__main__":
    main()
