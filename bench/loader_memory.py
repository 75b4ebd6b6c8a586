"""Training-loader memory against the number of rows: data.cache=true (every image decoded once
and held) against data.cache=false (the loader workers read each image when its sample is
drawn). The rows are the training CSV's, repeated under new names (symbolic links) up to each
size, so a 60k-row data set needs no extra disk. Memory is the proportional set size (PSS:
shared pages split between the processes that share them) of the main process plus its loader
workers, read from /proc after setup and while one pass of the loader runs. Linux only. Run
from the project root:

    FKP_DATA_DIR=../shared/data/youtube_faces python bench/loader_memory.py

Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from common import Row, hardware, print_rows

from fkp.config import build, compose_config
from fkp.data import FaceKeypointsDataModule


def pss_mib(pid: int) -> float:
    """Proportional set size of one process, MiB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss line for process {pid}")


def family_mib() -> float:
    """PSS of this process and its children (the loader workers)."""
    me = os.getpid()
    pids = [me]
    for task in Path(f"/proc/{me}/task").iterdir():
        children = (task / "children").read_text().split()
        pids += [int(c) for c in children]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a worker just ended
            total += pss_mib(pid)
    return total


def repeated_copy(data_dir: Path, rows: int, folder: Path) -> None:
    """A data folder whose training CSV holds `rows` rows: the real rows again and again, each
    copy under its own image names (links to the real files)."""
    frame = pd.read_csv(data_dir / "training_frames_keypoints.csv")
    (folder / "training").mkdir(parents=True)
    copies = []
    for k in range(-(-rows // len(frame))):
        part = frame.copy()
        part.iloc[:, 0] = [f"c{k}_{name}" for name in frame.iloc[:, 0]]
        for name, new in zip(frame.iloc[:, 0], part.iloc[:, 0]):
            (folder / "training" / new).symlink_to(data_dir / "training" / name)
        copies.append(part)
    pd.concat(copies).iloc[:rows].to_csv(folder / "training_frames_keypoints.csv", index=False)
    (folder / "test").mkdir()  # the test split is not read here
    frame.iloc[:0].to_csv(folder / "test_frames_keypoints.csv", index=False)


def measure(data_dir: Path, rows: int, cache: bool, batches: int, workers: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        repeated_copy(data_dir, rows, Path(tmp))
        cfg = compose_config(
            {"data": "youtube_faces", "paths": "default"},
            [f"data.data_dir={tmp}", f"data.cache={cache}", "data.image_size=112",
             "data.batch_size=32", f"data.num_workers={workers}", "data.val_fraction=0.1"],
        )  # fmt: skip
        before = family_mib()
        start = time.perf_counter()
        dm: FaceKeypointsDataModule = build(cfg.data)
        dm.setup("fit")
        setup_s = time.perf_counter() - start
        after_setup = family_mib()
        loader = dm.train_dataloader()
        samples, peak, first = 0, after_setup, None
        start = time.perf_counter()
        for i, batch in enumerate(loader):
            samples += len(batch["name"])
            if i % 20 == 0:
                now = family_mib()
                first = now if first is None else first
                peak = max(peak, now)
            if i + 1 == batches:
                break
        rate = samples / (time.perf_counter() - start)
        end = family_mib()
        del loader
    setting = f"{rows} rows, cache={str(cache).lower()}, {workers} workers"
    return [
        ("loader memory: after setup", f"{setting} ({setup_s:.0f} s)", after_setup - before, "MiB"),
        ("loader memory: first batches", setting, first - before, "MiB"),
        (f"loader memory: after {samples} samples (peak)", setting, max(peak, end) - before, "MiB"),
        ("loader throughput", setting, rate, "samples/s"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[3462, 60000])
    parser.add_argument("--cached-rows", type=int, nargs="*", default=[3462, 15000])
    parser.add_argument("--batches", type=int, default=300, help="batches read per setting")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("ROWS", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data_dir = Path(os.environ.get("FKP_DATA_DIR", "data/youtube_faces")).resolve()
    if args.one:  # one setting, in a process of its own, rows printed as JSON
        rows, cache = int(args.one[0]), args.one[1] == "true"
        print(json.dumps(measure(data_dir, rows, cache, args.batches, args.workers)))
        return
    table = measure_all(args.rows, args.cached_rows, args.batches, args.workers)
    print_rows((table, hardware(threads=1)))


def measure_all(
    rows: Sequence[int] = (3462, 60000),
    cached_rows: Sequence[int] = (3462, 15000),
    batches: int = 300,
    workers: int = 2,
) -> list[Row]:
    """Every setting, each in a fresh process (freed memory is not always given back)."""
    settings = [(n, "true") for n in cached_rows] + [(n, "false") for n in rows]
    table: list[Row] = []
    for n, cache in settings:
        command = [sys.executable, __file__, "--one", str(n), cache, "--batches",
                   str(batches), "--workers", str(workers)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        table += [tuple(row) for row in json.loads(done.stdout.strip().splitlines()[-1])]
    return table


if __name__ == "__main__":
    main()
