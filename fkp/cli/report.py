"""One table and one plot of many runs: `python report.py <multirun folder or run folders>`.

Examples:
    python report.py outputs/train/multirun/2026-11-30_12-00-00_4242      # a whole sweep
    python report.py outputs/fast/<run> outputs/best/<run>                # runs side by side
    python report.py outputs/train/multirun/<sweep> --metric val/loss --out lr_sweep.png

Prints a Markdown table (best first by --metric, default val/nme) and writes a PNG with every
run's validation NME and loss curves, each run named by the overrides it was started with.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fkp.errors import counted, reported_as_one_line
from fkp.training.report import load_runs, plot, table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="run folders or multirun folders")
    parser.add_argument("--metric", default="val/nme", help="sort by this (smallest first)")
    parser.add_argument("--out", default=None,
                        help="PNG to write (default: report.png in the first folder)")  # fmt: skip
    args = parser.parse_args(argv)
    with reported_as_one_line():
        runs = load_runs(args.folders, args.metric)
        print(table(runs, args.metric))
        out = plot(runs, args.out or Path(args.folders[0]) / "report.png")
        print(f"curves of {counted(len(runs), 'run')}: {out}")
