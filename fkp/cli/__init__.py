"""The `fkp` command: `fkp <command> [overrides or options]`, one subcommand per task.

Each Hydra command (train, predict, eval, export, demo, calibrate) composes the configs that
ship inside the package (fkp/conf); overrides, `-m` sweeps and `--help` work as with the
scripts in a checkout (`python train.py ...` is `fkp train ...`). Runs land under
./outputs of the folder you run from.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, what it does); Hydra apps read their overrides from sys.argv
COMMANDS = {
    "train": ("fkp.cli.train", "train a model (python train.py)"),
    "predict": ("fkp.cli.predict", "keypoints of every face in photos, folders or videos"),
    "eval": ("fkp.cli.eval", "evaluate a checkpoint or export on a split or a CSV"),
    "export": ("fkp.cli.export", "export a checkpoint to ONNX, TorchScript or a slim .ckpt"),
    "demo": ("fkp.cli.demo", "a web page for trying a model (needs the demo extra)"),
    "calibrate": ("fkp.cli.calibrate", "fit a face detector's box to the training framing"),
    "report": ("fkp.cli.report", "one table and plot of many runs"),
    "data": ("fkp.cli.data", "look at the data (show) or convert 300W / WFLW (convert)"),
}
ARGPARSE_COMMANDS = ("report", "data")  # the others are Hydra apps


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(
        ["usage: fkp <command> [overrides]   (fkp <command> --help for its options)", "",
         "commands:", *lines, "", "e.g. fkp predict input=photo.jpg; fkp train experiment=fast"]
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int | None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: fkp {command}: no such command; use one of {', '.join(COMMANDS)}.",
              file=sys.stderr)  # fmt: skip
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    if command in ARGPARSE_COMMANDS:
        return module.main(rest)
    sys.argv = [f"fkp {command}", *rest]
    return module.main()
