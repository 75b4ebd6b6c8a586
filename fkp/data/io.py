"""Reading keypoint CSVs and images, with errors that name the file, line and column."""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fkp.errors import FkpError, counted
from fkp.files import write_text
from fkp.landmarks import landmark_set

log = logging.getLogger("fkp.data")

# Files fkp reads as images (decoded by content; these name them in folders and globs).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

_PERSON_SUFFIX = re.compile(r"_\d+\.[^.]+$")


@dataclass
class KeypointTable:
    """One keypoints CSV: names[i] is the image file of keypoints[i].

    keypoints: (N, K, 2) float32, (x, y) in original-image pixels.
    lines: (N,) the 1-based line of each row in the CSV, for error messages.
    Optional, where the source format has them (`fkp.data.formats`): boxes (N, 4) annotated
    face boxes x_min, y_min, x_max, y_max; visible (N, K) per-point visibility; attributes:
    name -> (N,) flags (WFLW's pose, occlusion, ...), so benchmark subsets can be selected.
    """

    csv_path: Path
    names: list[str]
    keypoints: np.ndarray
    lines: np.ndarray
    boxes: np.ndarray | None = None
    visible: np.ndarray | None = None
    attributes: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index: np.ndarray | list[int]) -> KeypointTable:
        index = np.asarray(index, dtype=int)
        return KeypointTable(
            self.csv_path,
            [self.names[i] for i in index],
            self.keypoints[index],
            self.lines[index],
            None if self.boxes is None else self.boxes[index],
            None if self.visible is None else self.visible[index],
            None if self.attributes is None else {k: v[index] for k, v in self.attributes.items()},
        )


def _column_label(column: int) -> str:
    point, axis = divmod(column - 1, 2)
    return f"column {column + 1} ({'xy'[axis]} of keypoint {point})"


def read_keypoints_csv(path: str | Path, num_points: int | None = None) -> KeypointTable:
    """Parse a CSV with a header row, then rows of: image name, x0, y0, ..., x(K-1), y(K-1)
    for a landmark set of K = num_points points (None: the 68-point iBUG set)."""
    path = Path(path)
    num_points = landmark_set(None).num_points if num_points is None else num_points
    columns = 1 + 2 * num_points
    if not path.is_file():
        raise FkpError(f"{path}: keypoints CSV not found; check the data directory setting.")
    # Row structure first, with the csv module: pandas silently pads short rows.
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [(n, len(r)) for n, r in enumerate(csv.reader(f), start=1) if r]
    except UnicodeDecodeError as e:
        with path.open("rb") as f:
            line = f.read(e.start).count(b"\n") + 1
        raise FkpError(
            f"{path}, line {line}: not UTF-8 text (byte {e.object[e.start]:#x}); save the CSV "
            "as UTF-8."
        ) from None
    if not rows:
        raise FkpError(f"{path}: the file is empty; expected a header row and one row per image.")
    if len(rows) == 1:
        raise FkpError(f"{path}: a header row but no data rows; add one row per image.")
    for line, n_fields in rows:
        if n_fields != columns:
            last = num_points - 1
            raise FkpError(
                f"{path}, line {line}: {n_fields} columns, expected {columns} (image name then "
                f"x0,y0,...,x{last},y{last} for {num_points} points); fix or remove that row, or "
                "choose the data's landmark set (data/landmarks=...)."
            )
    lines = np.array([line for line, _ in rows[1:]], dtype=int)
    parsed = _read_clean_csv(path, columns)
    if parsed is None:  # some cell is not a plain number: find it, cell by cell
        names, numbers = _read_csv_cells(path, lines)
    else:
        names, numbers = parsed
    keypoints = numbers.astype(np.float32, copy=False).reshape(len(names), num_points, 2)
    return check_table(KeypointTable(path, names.tolist(), keypoints, lines))


# A coordinate beyond this many pixels is a typing or unit mistake, whatever the image.
MAX_COORDINATE = 1e6
# Points may lie outside their image (a face cut by the border), by up to this many image sizes.
OUTSIDE_IMAGES = 1.0
MIN_IMAGE_SIDE = 8  # pixels; smaller files are not face photos


def coordinates_ok(values: np.ndarray) -> np.ndarray:
    """Elementwise: a finite number of at most MAX_COORDINATE pixels (so finite as float32,
    the type training holds coordinates in)."""
    return np.isfinite(values) & (np.abs(values) <= MAX_COORDINATE)


def check_table(table: KeypointTable) -> KeypointTable:
    """Faults a finite-number check misses, each named with its row: a name that leaves the
    image folder (absolute, or through ..) or repeats another once `./` and the like are
    normalised; a coordinate that is not finite as float32 or beyond MAX_COORDINATE pixels;
    a face whose points all lie within one pixel (zero extent: nothing to frame)."""
    where = table.csv_path
    seen: dict[str, int] = {}
    for row, name in enumerate(table.names):
        plain = os.path.normpath(name)
        if os.path.isabs(plain) or plain == ".." or plain.startswith(".." + os.sep):
            raise FkpError(
                f"{where}, line {table.lines[row]}, column 1: image {name!r} lies outside the "
                "image folder; name images relative to it, without .. or a leading /."
            )
        if plain in seen:
            raise FkpError(
                f"{where}, line {table.lines[row]}, column 1: image {name!r} is listed again "
                f"(first on line {table.lines[seen[plain]]}); remove the duplicate row."
            )
        seen[plain] = row
    points = table.keypoints
    bad = ~coordinates_ok(points)
    if bad.any():
        row, point, axis = (int(v) for v in np.argwhere(bad)[0])
        raise FkpError(
            f"{where}, line {table.lines[row]}, {_column_label(1 + 2 * point + axis)}: "
            f"{points[row, point, axis]:g} is not a coordinate (every value must be a finite "
            f"number of at most {MAX_COORDINATE:.0f} pixels); fix that value."
        )
    return table


def check_extent(table: KeypointTable) -> KeypointTable:
    """Faces are framed from their labelled points (training, gt-box evaluation): a face whose
    points all lie within one pixel has nothing to frame, and is named with its row."""
    if len(table):
        extent = np.ptp(table.keypoints, axis=1).max(axis=1)  # (N,) larger side of the box
        flat = np.flatnonzero(extent < 1)
        if len(flat):
            raise FkpError(
                f"{table.csv_path}, line {table.lines[flat[0]]}: all points of this face lie "
                "within one pixel (a zero-extent face); fix or remove that row."
            )
    return table


def _read_clean_csv(path: Path, columns: int) -> tuple[pd.Series, np.ndarray] | None:
    """Names and numbers when every coordinate parses as a finite number and every name is
    there, else None. Parsing numbers as numbers keeps memory to the arrays themselves: a
    60k-row CSV read cell by cell as strings leaves hundreds of MB held by the allocator."""
    dtypes = {0: str, **{i: np.float32 for i in range(1, columns)}}  # as they are kept
    try:
        with warnings.catch_warnings():  # 1e39 overflows float32: the cell path names it
            warnings.simplefilter("ignore", RuntimeWarning)
            frame = pd.read_csv(path, header=None, skiprows=1, dtype=dtypes,
                                keep_default_na=False, skipinitialspace=True,
                                encoding="utf-8")  # fmt: skip
    except ValueError:
        return None
    names = frame.iloc[:, 0].str.strip()
    numbers = frame.iloc[:, 1:].to_numpy(dtype=np.float32)
    if (names == "").any() or not coordinates_ok(numbers).all():
        return None
    return names, numbers


def _read_csv_cells(path: Path, lines: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """The CSV read as text, to name the first empty name or bad coordinate (file, line,
    column); returns names and numbers if there is none."""
    frame = pd.read_csv(
        path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8"
    )
    names = frame.iloc[:, 0].str.strip()
    values = frame.iloc[:, 1:].apply(lambda s: s.str.strip())

    empty = names == ""
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise FkpError(f"{path}, line {lines[row]}, column 1: empty image name; fill it in.")
    numbers = values.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~coordinates_ok(numbers)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        cell = values.iat[row, col]
        what = "empty cell" if cell == "" else f"{cell!r} is not a finite number"
        if np.isfinite(numbers[row, col]):
            what = f"{cell!r} is more than {MAX_COORDINATE:.0f} pixels"
        raise FkpError(
            f"{path}, line {lines[row]}, {_column_label(col + 1)}: {what}; "
            "every coordinate must be a number in pixels."
        )
    return names, numbers


def person_of(name: str) -> str:
    """The person a frame shows: the file name without its trailing `_NN.jpg`."""
    stem = Path(name).name
    return _PERSON_SUFFIX.sub("", stem) if _PERSON_SUFFIX.search(stem) else Path(stem).stem


def decode_image(path: str | Path) -> np.ndarray:
    """Decode an image by its content, whatever its extension says.

    Returns (H, W, 3) uint8 in RGB order. PNG (with or without alpha), WebP, JPEG, grayscale
    and 16-bit files all come out this way; alpha is dropped (the release's is constant 255).
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise FkpError(f"{path}: cannot read the file ({e.strerror}).") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise FkpError(f"{path}: not a readable image (corrupt or not an image file); replace it.")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_images_exist(table: KeypointTable, image_dir: Path) -> None:
    """Raise one error that lists every image the CSV names but the folder lacks."""
    folders = [n for n in table.names if (image_dir / n).is_dir()]
    if folders:
        raise FkpError(
            f"{table.csv_path}: {counted(len(folders), 'listed image')} in {image_dir}, folders,"
            f" not image files: {', '.join(folders)}; put the image files there or remove their "
            "rows."
        )
    missing = [n for n in table.names if not (image_dir / n).is_file()]
    if missing:
        raise FkpError(
            f"{table.csv_path}: {counted(len(missing), 'listed image')} missing from {image_dir}: "
            f"{', '.join(missing)}; add them or remove their rows."
        )


class ImageFiles:
    """A table's images, decoded only when indexed: stands in for the list `load_images` makes
    where the images would not fit in memory (the loader workers read each one when its sample
    is drawn). Paths are kept in one NumPy string array, so forked workers touching them do not
    copy the memory (a Python list's reference counts would).

    images[i]: (H, W, 3) RGB uint8, as `decode_image` returns it.
    """

    def __init__(self, image_dir: str | Path, names: list[str] | np.ndarray) -> None:
        self.image_dir = Path(image_dir)
        self.names = np.asarray(names, dtype=str)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> np.ndarray:
        return decode_image(self.image_dir / str(self.names[index]))

    def subset(self, index: np.ndarray | list[int]) -> ImageFiles:
        return ImageFiles(self.image_dir, self.names[np.asarray(index, dtype=int)])


def load_images(
    table: KeypointTable,
    image_dir: Path,
    workers: int = 4,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Decode every image of the table (in threads: OpenCV releases the GIL while decoding),
    each passed through `prepare` as soon as it is decoded, so the full-colour copies of a
    grayscale data set never pile up."""
    check_images_exist(table, image_dir)

    def read(name: str) -> np.ndarray:
        image = decode_image(image_dir / name)
        return prepare(image) if prepare else image

    with ThreadPoolExecutor(max_workers=workers) as pool:
        images = list(pool.map(read, table.names))
    check_points_in_decoded(table, images)
    return images


def check_points_in_decoded(table: KeypointTable, images: list[np.ndarray]) -> int:
    """`check_points_in_images` for images already decoded (their sizes are their shapes)."""
    sizes = np.array([im.shape[1::-1] for im in images], dtype=np.float32).reshape(-1, 2)
    return check_points_in_images(table, sizes)


def image_sizes(image_dir: Path, names: list[str], workers: int = 4) -> np.ndarray:
    """(N, 2) width, height of each image, from its header (nothing decoded)."""
    from PIL import Image

    def size(name: str) -> tuple[int, int]:
        try:
            with Image.open(image_dir / name) as image:
                return image.size
        except Exception:  # PIL cannot read the header: decode it to learn the size
            return decode_image(image_dir / name).shape[1::-1]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.array(list(pool.map(size, names)), dtype=np.float32).reshape(-1, 2)


def check_points_in_images(table: KeypointTable, sizes: np.ndarray) -> int:
    """Refuse, naming the row, an image smaller than MIN_IMAGE_SIDE or a point more than
    OUTSIDE_IMAGES image sizes beyond its image's border; count the rows with points just
    outside their image and say so once (such rows are kept: a face cut by the border).

    sizes: (N, 2) width, height of each row's image."""
    small = np.flatnonzero(sizes.min(axis=1, initial=np.inf) < MIN_IMAGE_SIDE)
    if len(small):
        row = int(small[0])
        w, h = (int(v) for v in sizes[row])
        raise FkpError(
            f"{table.csv_path}, line {table.lines[row]}: image {table.names[row]!r} is {w}x{h} "
            f"pixels; fkp needs at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}: replace it or "
            "remove its row."
        )
    kp = table.keypoints
    reach = OUTSIDE_IMAGES * sizes[:, None, :]
    far = ((kp < -reach) | (kp > sizes[:, None, :] + reach)).any(axis=2)  # (N, K)
    if far.any():
        row, point = (int(v) for v in np.argwhere(far)[0])
        w, h = (int(v) for v in sizes[row])
        x, y = (float(v) for v in kp[row, point])
        raise FkpError(
            f"{table.csv_path}, line {table.lines[row]}: keypoint {point} at ({x:g}, {y:g}) "
            f"lies more than {OUTSIDE_IMAGES:g} image size outside its {w}x{h} image "
            f"{table.names[row]!r}; fix the row (are x and y swapped, or in another scale?)."
        )
    return warn_points_outside(table, sizes)


def warn_points_outside(table: KeypointTable, sizes: np.ndarray) -> int:
    """Count rows with a keypoint outside its image and say so once; such rows are kept.

    sizes: (N, 2) width, height of each row's image."""
    kp = table.keypoints
    outside = ((kp < 0) | (kp > sizes[:, None, :])).any(axis=(1, 2))
    count = int(outside.sum())
    if count:
        log.warning(
            f"{table.csv_path}: {count} of {len(table)} rows have keypoints outside their image "
            "(kept as they are)."
        )
    return count


def write_keypoints_csv(names: list[str], keypoints: np.ndarray, path: str | Path) -> Path:
    """The CSV layout `read_keypoints_csv` reads (header, then image name, x0, y0, ...), written
    atomically. keypoints: (N, K, 2) pixels."""
    columns = 2 * (keypoints.shape[1] if len(keypoints) else 0)
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")  # quotes a name holding , " or a newline
    writer.writerow(["", *range(columns)])
    for name, points in zip(names, keypoints):
        writer.writerow([name, *(f"{v:.3f}" for v in np.asarray(points).reshape(-1))])
    return write_text(Path(path), text.getvalue())
