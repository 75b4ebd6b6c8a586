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


def settings_help(command: str) -> str:
    """A Hydra command's --help: what it does, its settings as its YAML holds them (with their
    comments), and the options of the groups it uses; read from the files alone (Hydra's own
    help composes every group of fkp/conf, several seconds)."""
    from fkp import CONF_DIR

    path = CONF_DIR / f"{command}.yaml"
    text = path.read_text()
    lines = [f"fkp {command}: {COMMANDS[command][1]}", "",
             f"usage: fkp {command} [setting=value ...]   (python {command}.py ... in a checkout)",
             "", f"settings ({path}):", "", text.rstrip(), ""]  # fmt: skip
    groups = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")
    used = [g for g in groups if f"- {g}" in text or f"/{g}" in text]
    for group in used:
        for folder in [CONF_DIR / group, *sorted((CONF_DIR / group).iterdir())]:
            options = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
            if options and folder.name not in ("landmarks", "launcher"):
                name = folder.relative_to(CONF_DIR).as_posix()
                lines.append(f"{name}=<option>: {', '.join(options)}")
    lines += ["", "Also: --cfg job (the composed settings), -m (a sweep), --hydra-help."]
    return "\n".join(lines)


def main(argv: list[str] | None = None, program: str | None = None) -> int | None:
    """argv: the command and its overrides; program: the script that ran it (train.py in a
    checkout), kept as sys.argv[0] so processes started again from it (Lightning's DDP
    launcher) run the same command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: fkp {command}: no such command; use one of {', '.join(COMMANDS)}.",
              file=sys.stderr)  # fmt: skip
        return 2
    if command not in ARGPARSE_COMMANDS and {"--help", "-h"} & set(rest):
        print(settings_help(command))  # before the command's imports: under a second
        return 0
    module = importlib.import_module(COMMANDS[command][0])
    if command in ARGPARSE_COMMANDS:
        return module.main(rest)
    sys.argv = [program or f"fkp {command}", *rest]
    return module.main()
