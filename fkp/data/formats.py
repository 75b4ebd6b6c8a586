"""Other landmark data formats, read into fkp's `KeypointTable` and written back:

- **300W** (Sagonas et al. 2013): a folder of images, each with a `.pts` file beside it
  (`version: 1`, `n_points: 68`, `{`, one `x y` line per point, `}`), coordinates 1-based
  pixels; subfolders such as `afw`, `helen/trainset`, `lfpw/testset`, `ibug`.
- **WFLW** (Wu et al. 2018): one annotation list, a line per face: 196 coordinates (98 x, y
  pairs, 0-based pixels), the face box (x_min y_min x_max y_max), six attribute flags (pose,
  expression, illumination, make-up, occlusion, blur) and the image path under WFLW_images/.

`python -m fkp.data convert <source> <out.csv> --format 300w|wflw [--subsets ...]` writes
fkp's CSV layout (`fkp.data.io.write_keypoints_csv`); `--format csv` writes a CSV's faces back
as .pts files. Errors name the file and line and say the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fkp.data.io import (
    IMAGE_SUFFIXES,
    MAX_COORDINATE,
    KeypointTable,
    check_table,
    coordinates_ok,
    read_keypoints_csv,
)
from fkp.errors import FkpError
from fkp.files import write_text
from fkp.registry import Registry

WFLW_ATTRIBUTES = ("pose", "expression", "illumination", "make_up", "occlusion", "blur")

# data.format -> a reader: (data_dir, source, images, num_points) -> the table and the folder
# its image names are relative to. source is data.train_csv / test_csv (a file, or for 300W
# subset folders), images data.train_images / test_images. A new format is a file in fkp/data/
# with `@DATA_FORMATS.register("name")` on its reader (docs/data.md).
Reader = Callable[[Path, "str | Sequence[str]", str, int], tuple[KeypointTable, Path]]
DATA_FORMATS: Registry = Registry("data format", "data.format", "fkp.data")


@DATA_FORMATS.register("csv")
def csv_format(data_dir: Path, source: str | Sequence[str], images: str,
               num_points: int) -> tuple[KeypointTable, Path]:  # fmt: skip
    """fkp's CSV layout (the YouTube Faces release): an image name, then x0, y0, ... x67, y67."""
    return read_keypoints_csv(data_dir / str(source), num_points), data_dir / images


@DATA_FORMATS.register("300w")
def w300_format(data_dir: Path, source: str | Sequence[str], images: str,
                num_points: int) -> tuple[KeypointTable, Path]:  # fmt: skip
    """300W: subset folders under data_dir, each image with a .pts beside it."""
    subsets = [source] if isinstance(source, str) else list(source)
    return check_table(read_300w(data_dir, subsets, num_points)), data_dir


@DATA_FORMATS.register("wflw")
def wflw_format(data_dir: Path, source: str | Sequence[str], images: str,
                num_points: int) -> tuple[KeypointTable, Path]:  # fmt: skip
    """WFLW: one annotation list; images under data_dir/images."""
    return check_table(read_wflw(data_dir / str(source), num_points)), data_dir / images


def read_pts(path: str | Path) -> np.ndarray:
    """One .pts file -> (K, 2) float32 0-based pixels."""
    path = Path(path)
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise FkpError(f"{path}: not readable as a .pts file ({type(e).__name__}).") from None
    header = {}
    for number, line in enumerate(lines, start=1):
        if line == "{":
            break
        if ":" in line:
            key, value = (s.strip() for s in line.split(":", 1))
            header[key] = value
        elif line:
            raise FkpError(f"{path}, line {number}: {line!r} is not a header line; a .pts file "
                           "starts with version: 1, n_points: N and a line with {.")  # fmt: skip
    else:
        raise FkpError(f"{path}: no '{{' line; a .pts file lists its points between {{ and }}.")
    try:
        count = int(header["n_points"])
    except (KeyError, ValueError):
        raise FkpError(f"{path}: no valid n_points line in the header; add n_points: 68.") from None
    start = lines.index("{") + 1
    if "}" not in lines[start:]:
        raise FkpError(f"{path}: no closing '}}' line after the points; add one.")
    end = lines.index("}", start)
    body = [(n, line) for n, line in enumerate(lines[start:end], start=start + 1) if line]
    if len(body) != count:
        raise FkpError(f"{path}: n_points is {count} but {len(body)} points are listed; "
                       "fix the count or the points.")  # fmt: skip
    points = np.empty((count, 2), dtype=np.float64)
    for i, (number, line) in enumerate(body):
        try:
            x, y = (float(v) for v in line.split())
        except ValueError:
            raise FkpError(f"{path}, line {number}: {line!r} is not two numbers (x y).") from None
        if not coordinates_ok(np.array([x, y])).all():
            raise FkpError(
                f"{path}, line {number}: {line!r} is not a coordinate (finite, at most "
                f"{MAX_COORDINATE:.0f} pixels); fix the point."
            )
        points[i] = x - 1, y - 1  # 1-based pixels -> fkp's 0-based ones
    return points.astype(np.float32)


def write_pts(points: np.ndarray, path: str | Path) -> Path:
    """(K, 2) 0-based pixels -> a .pts file (1-based), as 300W stores them."""
    path = Path(path)
    body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in np.asarray(points, dtype=np.float64))
    return write_text(path, f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n")


def read_300w(root: str | Path, subsets: Sequence[str], num_points: int = 68) -> KeypointTable:
    """Every image with a .pts beside it under root/<subset> for each subset (e.g. "afw",
    "helen/trainset"); names are paths relative to root."""
    root = Path(root)
    names, points = [], []
    for subset in subsets:
        folder = root / subset
        if not folder.is_dir():
            raise FkpError(
                f"{folder}: no such 300W subset folder; check data.data_dir and the subset "
                "names (e.g. afw, helen/trainset, lfpw/testset, ibug)."
            )
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        labelled = len(names)
        for image in found:
            pts = image.with_suffix(".pts")
            if not pts.is_file():
                continue  # 300W folders also hold unlabelled images
            marks = read_pts(pts)
            if len(marks) != num_points:
                raise FkpError(f"{pts}: {len(marks)} points, but the landmark set has "
                               f"{num_points}; choose the matching data/landmarks.")  # fmt: skip
            names.append(image.relative_to(root).as_posix())
            points.append(marks)
        if len(names) == labelled:
            raise FkpError(
                f"{folder}: no images with a .pts file beside them; check the subset folder."
            )
    return KeypointTable(root / "+".join(subsets), names, np.stack(points),
                         np.arange(1, len(names) + 1))  # fmt: skip


def read_wflw(path: str | Path, num_points: int = 98) -> KeypointTable:
    """A WFLW annotation list -> a table whose `boxes` (N, 4) x_min, y_min, x_max, y_max and
    `attributes` (name -> (N,) 0/1) are kept, so the published subsets can be selected."""
    path = Path(path)
    if not path.is_file():
        raise FkpError(f"{path}: no such WFLW annotation list; check data.data_dir.")
    width = 2 * num_points + 4 + len(WFLW_ATTRIBUTES) + 1
    names, points, boxes, flags, lines = [], [], [], [], []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FkpError(
            f"{path}: not readable as a WFLW annotation list ({type(e).__name__}); pass the "
            "text list, e.g. list_98pt_rect_attr_train.txt."
        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != width:
            raise FkpError(f"{path}, line {number}: {len(fields)} fields, expected {width} "
                           f"({num_points} x y pairs, 4 box values, 6 attribute flags, the image "
                           "path); fix or remove that line.")  # fmt: skip
        try:
            values = np.array(fields[:-1], dtype=np.float64)
        except ValueError:
            raise FkpError(f"{path}, line {number}: a coordinate, box value or flag is not a "
                           "number; fix that line.") from None  # fmt: skip
        if not coordinates_ok(values).all():
            raise FkpError(
                f"{path}, line {number}: a value is not finite or beyond {MAX_COORDINATE:.0f} "
                "pixels; fix that line."
            )
        names.append(fields[-1])
        points.append(values[: 2 * num_points].reshape(num_points, 2))
        boxes.append(values[2 * num_points : 2 * num_points + 4])
        flags.append(values[2 * num_points + 4 :].astype(int))
        lines.append(number)
    if not names:
        raise FkpError(f"{path}: no faces listed; expected one line per face.")
    flags_array = np.stack(flags)
    return KeypointTable(
        path, names, np.stack(points).astype(np.float32), np.array(lines),
        boxes=np.stack(boxes).astype(np.float32),
        attributes={a: flags_array[:, i] for i, a in enumerate(WFLW_ATTRIBUTES)},
    )  # fmt: skip
