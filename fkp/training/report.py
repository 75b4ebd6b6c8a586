"""One table and one picture for many runs: what `report.py` prints after a sweep.

A run is a folder train.py wrote: `.hydra/overrides.yaml` (how it was started), `records.csv`
(one row per epoch) and, once it finished, `metrics.json`. A multirun folder is a folder of
runs. Runs are named by the overrides that differ between them, so a sweep's legend reads
`optimizer.lr=0.01 model=fast_net` rather than `3`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import yaml
from matplotlib.figure import Figure

from fkp.errors import FkpError
from fkp.files import atomic_write
from fkp.training.callbacks import read_records, record_column

# what train.py writes into every run folder; a folder with one of these is a run
RUN_MARKERS = ("records.csv", "metrics.json", ".hydra/overrides.yaml")


@dataclass
class Run:
    """What one run folder says about itself."""

    path: Path
    overrides: list[str]
    records: list[dict[str, str]]
    metrics: dict[str, float | str] = field(default_factory=dict)
    label: str = ""

    def column(self, key: str) -> list[float]:
        return record_column(self.records, key)

    @property
    def finished(self) -> bool:
        return "val/nme" in self.metrics

    def value(self, metric: str) -> float:
        """A metric of the best checkpoint (metrics.json), or for an unfinished run the best
        epoch so far (records.csv); NaN when neither has it."""
        if isinstance(self.metrics.get(metric), int | float):
            return float(self.metrics[metric])
        values = [v for v in self.column(metric) if not math.isnan(v)]
        return min(values) if values else math.nan


def is_run(folder: Path) -> bool:
    return any((folder / marker).is_file() for marker in RUN_MARKERS)


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run folders named by `paths` or found anywhere below them, in a stable order."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise FkpError(f"{path}: no such folder; pass a run folder or a multirun folder "
                           "(outputs/<task>/multirun/<date>_<time>) made by train.py.")  # fmt: skip
        if is_run(path):
            found.append(path)
            continue
        below = {p.parent for m in RUN_MARKERS for p in path.rglob(m)}
        found.extend(sorted({p.parent if p.name == ".hydra" else p for p in below}, key=_natural))
    runs = list(dict.fromkeys(p.resolve() for p in found))
    if not runs:
        where = ", ".join(map(str, paths))
        raise FkpError(f"{where}: no runs found (a run folder holds records.csv or "
                       "metrics.json); pass the folders train.py wrote.")  # fmt: skip
    return runs


def _natural(path: Path) -> tuple:
    """Sort sweep jobs 0, 1, 2, ..., 10 rather than 0, 1, 10, 2."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts)


def load_run(path: Path) -> Run:
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = []
    if overrides_file.is_file():
        overrides = [str(o) for o in (yaml.safe_load(overrides_file.read_text()) or [])]
    records = read_records(path / "records.csv") if (path / "records.csv").is_file() else []
    metrics = {}
    if (path / "metrics.json").is_file():
        try:
            metrics = json.loads((path / "metrics.json").read_text())
        except json.JSONDecodeError:
            metrics = {}  # a run that died while writing it reads as unfinished
    return Run(path=path, overrides=overrides, records=records, metrics=metrics)


def name_runs(runs: list[Run]) -> None:
    """Label each run by the overrides it does not share with every other run."""
    shared = set.intersection(*(set(r.overrides) for r in runs)) if len(runs) > 1 else set()
    for run in runs:
        own = [o for o in run.overrides if o not in shared]
        run.label = (
            " ".join(own) or (" ".join(run.overrides) if len(runs) == 1 else "") or (run.path.name)
        )


def load_runs(paths: list[str | Path], metric: str = "val/nme") -> list[Run]:
    """Every run below `paths`, best `metric` first (smallest; runs without it last)."""
    runs = [load_run(p) for p in find_runs(paths)]
    name_runs(runs)
    return sorted(runs, key=lambda r: (math.isnan(r.value(metric)), r.value(metric)))


def _shown(path: Path) -> str:
    """Relative to the working directory when inside it (as the user typed it), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f}%"


def table(runs: list[Run], metric: str = "val/nme") -> str:
    """A Markdown table, one row per run, in the order given."""
    head = ["#", "run", f"best {metric}", "test/nme", "test FR@0.10", "epochs", "minutes",
            "state", "folder"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for i, run in enumerate(runs, 1):
        epochs = int(max(run.column("epoch"), default=-1)) + 1  # a resumed run's rows continue
        times = [t for t in run.column("time_s") if not math.isnan(t)]
        best = run.value(metric)
        cells = [
            str(i),
            run.label,
            _percent(best) if "nme" in metric or "fr" in metric else f"{best:.4g}",
            _percent(run.value("test/nme") if "test/nme" in run.metrics else math.nan),
            _percent(run.value("test/fr") if "test/fr" in run.metrics else math.nan),
            str(epochs),
            f"{times[-1] / 60:.1f}" if times else "-",
            "finished" if run.finished else ("running or stopped" if epochs else "no epochs"),
            _shown(run.path),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def nme_labels(runs: list[Run]) -> tuple[list[str], float]:
    """Each run's legend label, and the lowest val NME (%) of all: the NME axis stops at three
    times that, so a run whose best lies above it (a diverged one) says so in its label."""
    best = [min([math.inf, *(100 * v for v in r.column("val/nme") if not math.isnan(v))])
            for r in runs]  # fmt: skip
    lowest = min(best, default=math.inf)
    labels = [r.label + (f" (above the NME axis: its best is {b:.1f}%)" if b > 3 * lowest
                         and math.isfinite(b) else "") for r, b in zip(runs, best)]  # fmt: skip
    return labels, lowest


def plot(runs: list[Run], path: str | Path) -> Path:
    """Validation NME and train/val loss per epoch of every run, one colour per run."""
    legend_rows = min(len(runs), 20)
    fig = Figure(figsize=(12, 4.5 + 0.22 * legend_rows), dpi=100, layout="constrained")
    nme_ax, loss_ax = fig.subplots(1, 2)
    colors = matplotlib.colormaps["tab10" if len(runs) <= 10 else "tab20"]
    any_positive_loss = False
    labels, lowest = nme_labels(runs)
    for i, run in enumerate(runs):
        if not run.records:
            continue
        color = colors(i % colors.N)
        epochs = run.column("epoch")
        nme = [100 * v for v in run.column("val/nme")]
        nme_ax.plot(epochs, nme, marker=".", color=color, label=labels[i])
        loss_ax.plot(epochs, run.column("val/loss"), color=color, label=f"{run.label} (val)")
        loss_ax.plot(epochs, run.column("train/loss"), color=color, linestyle=":", alpha=0.7)
        any_positive_loss |= min(run.column("val/loss") + [math.inf]) > 0
    nme_ax.set(xlabel="epoch", ylabel="val NME (%)", title="validation NME")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="val loss (solid), train loss (dotted)")
    if any_positive_loss:
        loss_ax.set_yscale("log")
    for ax in (nme_ax, loss_ax):
        ax.grid(alpha=0.3)
    if math.isfinite(lowest):  # first epochs are far off; keep the end of the curves readable
        nme_ax.set_ylim(0.95 * lowest, 3 * lowest)
    if legend_rows:
        fig.legend(*nme_ax.get_legend_handles_labels(), loc="outside lower center", ncols=1,
                   fontsize=8)  # fmt: skip
    return atomic_write(path, lambda f: fig.savefig(f, format="png"))
