"""Landmark sets as data: how many points, their names and parts, which points trade places in a
mirror image, which two points normalise NME, and the regions of per-region NME.

Each set is a YAML file in fkp/conf/data/landmarks/ (ibug68, the default; wflw98; cofw29), chosen
with `data/landmarks=<name>`; a new markup needs only a new file there. The set a model was
trained with travels in its checkpoint (inside the data settings) and in an exported model's
JSON, so evaluation, export and prediction read the set from the model, never from here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fkp.errors import FkpError

LANDMARKS_DIR = Path(__file__).resolve().parent / "conf" / "data" / "landmarks"
MAX_POINTS = 1000  # dense face markups have a few hundred


@dataclass(frozen=True)
class LandmarkSet:
    """parts: name -> (first, last inclusive, closed outline); regions: name -> (first, end
    exclusive); flip_pairs: index pairs; nme_points: the two points whose distance normalises
    NME; lines: draw each part's outline (False: dots only)."""

    name: str
    num_points: int
    parts: dict[str, tuple[int, int, bool]]
    flip_pairs: tuple[tuple[int, int], ...]
    nme_points: tuple[int, int]
    regions: dict[str, tuple[int, int]]
    lines: bool = True

    @classmethod
    def from_dict(cls, record: dict[str, Any], where: str = "landmark set") -> LandmarkSet:
        """A set from plain data (a YAML file, a checkpoint), checked: one sentence per fault."""
        try:
            n = int(record["num_points"])
            parts = record["parts"].items()
            regions = (record.get("regions") or {}).items()
            made = cls(
                name=str(record.get("name", f"{n} points")),
                num_points=n,
                parts={str(k): (int(v[0]), int(v[1]), bool(v[2])) for k, v in parts},
                flip_pairs=tuple((int(a), int(b)) for a, b in record.get("flip_pairs") or ()),
                nme_points=(int(record["nme_points"][0]), int(record["nme_points"][1])),
                regions={str(k): (int(v[0]), int(v[1])) for k, v in regions},
                lines=bool(record.get("lines", True)),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise FkpError(
                f"{where}: not a landmark set ({type(e).__name__}: {e}); it needs num_points, "
                "parts, flip_pairs, nme_points and regions, as in "
                "fkp/conf/data/landmarks/ibug68.yaml."
            ) from None
        made._check(where)
        return made

    def _check(self, where: str) -> None:
        n = self.num_points
        if n > MAX_POINTS:
            raise FkpError(f"{where}: {n} points is more than fkp takes ({MAX_POINTS}).")
        indices = [i for pair in self.flip_pairs for i in pair] + list(self.nme_points)
        indices += [i for first, last, _ in self.parts.values() for i in (first, last)]
        if n < 2 or any(not 0 <= i < n for i in indices):
            raise FkpError(f"{where}: an index is outside 0..{n - 1}; fix the set's indices.")
        if len(set(i for pair in self.flip_pairs for i in pair)) != 2 * len(self.flip_pairs):
            raise FkpError(f"{where}: a point appears in two flip pairs; pair each point once.")
        if any(not 0 <= a < b <= n for a, b in self.regions.values()):
            raise FkpError(f"{where}: a region is not [first, end) within 0..{n}; fix regions.")
        if self.nme_points[0] == self.nme_points[1]:
            raise FkpError(f"{where}: nme_points must be two different points.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_points": self.num_points,
            "lines": self.lines,
            "parts": {k: list(v) for k, v in self.parts.items()},
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "nme_points": list(self.nme_points),
            "regions": {k: list(v) for k, v in self.regions.items()},
        }

    @cached_property
    def names(self) -> tuple[str, ...]:
        """One name per point: "<part>_<i>" within its part, "point_<i>" outside every part."""
        names = [f"point_{i}" for i in range(self.num_points)]
        for part, (first, last, _) in self.parts.items():
            for i in range(first, last + 1):
                names[i] = f"{part}_{i - first}" if last > first else part
        return tuple(names)

    @cached_property
    def flip_index(self) -> np.ndarray:
        """keypoints[flip_index] relabels a mirrored face so that index i is again point i."""
        index = np.arange(self.num_points)
        for a, b in self.flip_pairs:
            index[a], index[b] = b, a
        return index


def load_landmark_set(name: str, files: bool = True) -> LandmarkSet:
    """A set shipped in fkp/conf/data/landmarks/ by name, or (files=True: the user's own setting)
    a YAML file by path. Names read from a checkpoint or export pass files=False: they may
    only name a shipped set, never a file on disk."""
    known = sorted(p.stem for p in LANDMARKS_DIR.glob("*.yaml"))
    if name.endswith((".yaml", ".yml")) and files:
        path = Path(name)
    elif name in known:
        path = LANDMARKS_DIR / f"{name}.yaml"
    else:
        also = " or a .yaml file" if files else " (a stored set names a shipped one)"
        raise FkpError(
            f"data.landmarks={name[:100]}: no such landmark set; use {', '.join(known)}{also}."
        )
    if not path.is_file():
        raise FkpError(f"data.landmarks={name}: no such file; check the path.")
    return LandmarkSet.from_dict(yaml.safe_load(path.read_text()), str(path))


@functools.cache
def _ibug68() -> LandmarkSet:
    return load_landmark_set("ibug68")


def __getattr__(name: str) -> LandmarkSet:
    # IBUG68, the default set: read from its YAML on first use, not when fkp is imported
    if name == "IBUG68":
        return _ibug68()
    raise AttributeError(f"module 'fkp.landmarks' has no attribute {name!r}")


def landmark_set(
    spec: LandmarkSet | dict | str | None, where: str = "landmark set", files: bool = True
) -> LandmarkSet:
    """The set a setting names: a LandmarkSet, its plain-data form (as configs and checkpoints
    hold it), a name or (files=True, the user's own setting) a file, or None for the 68-point
    iBUG markup (models trained before sets were data)."""
    if spec is None:
        return _ibug68()
    if isinstance(spec, LandmarkSet):
        return spec
    if isinstance(spec, str):
        return load_landmark_set(spec, files)
    return LandmarkSet.from_dict(dict(spec), where)
