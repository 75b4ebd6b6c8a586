"""Everything worth measuring on a GPU, in one run of under 8 minutes (a short loan is enough).

    FKP_DATA_DIR=<youtube_faces folder> python bench/gpu.py [--device cuda] [--seconds 20]

1. Batch inference, the shipped model in PyTorch: faces per second at batch 1, 64 and 512,
   float32 and bf16 autocast.
2. bf16 against float32 on the 339 validation faces (boxes from the labelled points): NME of
   each and the difference in points (the target: within 0.05).
3. Training, `experiment=fast` and `experiment=best` with their real data pipelines
   (decoding cache, augmentation, loader workers), samples per second over `--seconds` after
   a warm-up; then the same network on batches already on the GPU. Their ratio says whether
   the loader keeps the GPU busy (near 1: it does; well below: the loader is the bottleneck,
   raise data.num_workers).

`--device cpu --quick` runs every step at toy sizes, to check the script where no GPU is.
Prints markdown rows for docs/benchmarks.md with the device's name.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import Row, hardware, print_rows
from omegaconf import OmegaConf, open_dict

from fkp.config import build, compose_config
from fkp.data.stored import load_faces
from fkp.evaluation.metrics import per_image_nme
from fkp.runtime.predictor import FaceKeypointDetector
from fkp.training.export import TorchNetwork


class Autocast(TorchNetwork):
    """The runtime's call with the network under bf16 autocast."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            return super().__call__(images)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def inference_rows(device: str, batches: list[int], seconds: float) -> list[Row]:
    det = FaceKeypointDetector.from_pretrained(runtime="torch", device=device)
    module, size = det.model.module, det.transform.image_size
    rows: list[Row] = []
    for precision in ("float32", "bf16 autocast"):
        cast = (torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
                if precision != "float32" else contextlib.nullcontext())  # fmt: skip
        for batch in batches:
            images = torch.randn(batch, det.transform.channels, size, size, device=device)
            with torch.inference_mode(), cast:
                for _ in range(3):
                    module(images)
                synchronize(device)
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds / (2 * len(batches)) or count < 3:
                    module(images)
                    count += 1
                synchronize(device)
            rate = count * batch / (time.perf_counter() - start)
            rows.append((f"inference: shipped model, PyTorch, {precision}",
                         f"{size} px, batch {batch}", rate, "faces/s"))  # fmt: skip
    return rows


def bf16_rows(device: str, data_dir: Path, limit: int | None) -> list[Row]:
    det = FaceKeypointDetector.from_pretrained(runtime="torch", device=device)
    choice = OmegaConf.create({"data_dir": str(data_dir), "split": "val", "csv": None,
                               "images": None, "subset": None, "limit": limit})  # fmt: skip
    _, truth, images = load_faces(choice, det.model.module.hparams.data_config)
    nme = {}
    for name, network in (("float32", det.model), ("bf16", Autocast(det.model.module, device))):
        det.model = network
        predicted = np.stack(
            [det.keypoints_in(im, det.transform.frame_for(t)[None])[0]
             for im, t in zip(images, truth)]
        )  # fmt: skip
        errors = per_image_nme(torch.from_numpy(predicted), torch.from_numpy(truth),
                               det.transform.landmarks.nme_points)  # fmt: skip
        nme[name] = float(errors.mean())
    setting = f"{len(truth)} validation faces, boxes from the labelled points"
    return [
        ("accuracy: shipped model, float32", setting, 100 * nme["float32"], "% NME"),
        ("accuracy: shipped model, bf16 autocast", setting, 100 * nme["bf16"], "% NME"),
        ("accuracy: bf16 - float32 (target: within 0.05)", setting,
         100 * (nme["bf16"] - nme["float32"]), "points"),
    ]  # fmt: skip


class Clock:
    """Samples per second over training steps, from the `skip`-th step on."""

    def __init__(self, batch: int, skip: int) -> None:
        self.batch, self.skip, self.steps, self.start = batch, skip, 0, 0.0

    def tick(self, device: str) -> None:
        self.steps += 1
        if self.steps == self.skip:
            synchronize(device)
            self.start = time.perf_counter()

    def rate(self, device: str) -> float:
        synchronize(device)
        counted = self.steps - self.skip
        return counted * self.batch / (time.perf_counter() - self.start) if counted > 0 else 0.0


def training_rows(preset: str, device: str, data_dir: Path, seconds: float, quick: bool):
    import pytorch_lightning as pl

    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    overrides = [f"experiment={preset}", f"data.data_dir={data_dir}", "~logger",
                 "~callbacks", "test=false", "trainer.limit_val_batches=0",
                 "trainer.max_epochs=1000", "trainer.devices=1",
                 f"trainer.accelerator={accelerator}"]  # fmt: skip
    if quick:
        overrides += ["data.limit=64", "data.image_size=64", "data.num_workers=0"]
    cfg = compose_config({}, overrides, config_name="train")
    with open_dict(cfg):
        cfg.trainer.precision = "bf16-mixed" if device.startswith("cuda") else "32-true"
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
        cfg.trainer.enable_checkpointing = False
        cfg.trainer.default_root_dir = tempfile.mkdtemp(prefix="fkp-gpu-bench-")
    datamodule = build(cfg.data)
    model = build(cfg.model, optimizer=build(cfg.optimizer), loss=build(cfg.loss),
                  scheduler=build(cfg.scheduler) if cfg.get("scheduler") else None)  # fmt: skip
    model.hparams.data_config = OmegaConf.to_container(cfg.data, resolve=True)
    batch = int(cfg.data.batch_size)
    clock = Clock(batch, skip=5)

    class Timing(pl.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            clock.tick(device)
            if clock.steps > clock.skip and time.perf_counter() - clock.start > seconds:
                trainer.should_stop = True

    trainer = build(cfg.trainer, callbacks=[Timing()], logger=False)
    trainer.fit(model, datamodule=datamodule)
    with_loader = clock.rate(device)
    # the same network on batches already on the device: what the loader would have to keep up with
    size, channels = int(cfg.data.image_size), 1 if cfg.data.grayscale else 3
    net = model.net.to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    images = torch.randn(batch, channels, size, size, device=device)
    targets = torch.rand(batch, model.landmarks.num_points, 2, device=device) * 2 - 1
    cast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda")
            else contextlib.nullcontext())  # fmt: skip
    alone = Clock(batch, skip=5)
    while alone.steps <= alone.skip or time.perf_counter() - alone.start < seconds / 2:
        optimizer.zero_grad(set_to_none=True)
        with cast:
            loss = net.head.loss(net.forward_head(net.forward_features(images)), targets,
                                 model.loss)  # fmt: skip
        loss.backward()
        optimizer.step()
        alone.tick(device)
    network_only = alone.rate(device)
    setting = (f"{cfg.model.network}, {size} px, batch {batch}, "
               f"{cfg.data.num_workers} loader workers, {cfg.trainer.precision}")  # fmt: skip
    return [
        (f"train: experiment={preset}, real data pipeline", setting, with_loader, "samples/s"),
        (f"train: experiment={preset}, batches already on the device", setting, network_only,
         "samples/s"),
        (f"train: experiment={preset}, loader keeps the device busy (ratio)", setting,
         with_loader / network_only, "x"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=20.0, help="per training measure")
    parser.add_argument("--quick", action="store_true", help="toy sizes, to check the script")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; run with --device cpu --quick to check the script")
    data_dir = Path(os.environ.get("FKP_DATA_DIR", "../shared/data/youtube_faces"))
    start = time.perf_counter()
    batches = [1, 8] if args.quick else [1, 64, 512]
    rows = inference_rows(args.device, batches, 2.0 if args.quick else 12.0)
    rows += bf16_rows(args.device, data_dir, 16 if args.quick else None)
    for preset in ("fast", "best"):
        rows += training_rows(preset, args.device, data_dir, args.seconds, args.quick)
    rows.append(("bench/gpu.py: wall time", "", time.perf_counter() - start, "s"))
    print_rows((rows, hardware(args.device)))


if __name__ == "__main__":
    main()
