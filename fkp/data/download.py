"""Fetch the YouTube Faces keypoints release when it is not on disk yet.

The data folder appears whole or not at all: the zip is downloaded (pooch: streamed to a
temporary file, progress bar) and extracted in a hidden folder beside the target (named with
the process id, so the next run removes what a killed one left), its CSVs are checked against
known SHA-256 sums, and only then is it renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import pooch

from fkp.errors import FkpError
from fkp.files import pid_alive

RELEASE_URL = (
    "https://s3.amazonaws.com/video.udacity-data.com/topher/2018/May/"
    "5aea1b91_train-test-data/train-test-data.zip"
)
TRAIN_CSV = "training_frames_keypoints.csv"
TEST_CSV = "test_frames_keypoints.csv"
RELEASE_SHA256 = {
    TRAIN_CSV: "9f3d1213429893d4955e2789076f6ce11e297253fed86337cffb6ca85bd61ec8",
    TEST_CSV: "348e5e1a5906001f64d3da627e4f61dc3de90771d6d92f5d93628029b3c85e65",
}
_STALE_SECONDS = 3600


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_dataset(
    data_dir: str | Path,
    download: bool = True,
    url: str = RELEASE_URL,
    sha256: dict[str, str] | None = None,
) -> Path:
    """Return data_dir, downloading the release into it first if it does not exist."""
    data_dir = Path(data_dir).expanduser()
    if data_dir.exists():
        return data_dir
    if not download:
        raise FkpError(
            f"{data_dir}: data folder not found; set FKP_DATA_DIR (or data.data_dir) to the "
            "folder holding the CSVs and images, or enable data.download=true."
        )
    download_release(data_dir, url, RELEASE_SHA256 if sha256 is None else sha256)
    return data_dir


def download_release(data_dir: Path, url: str, sha256: dict[str, str]) -> None:
    """Download and extract the release zip into data_dir, atomically.

    url: an http(s) address, or the path of a zip already on disk.
    sha256: expected checksums of files inside the zip, by name relative to its data folder.
    """
    parent = data_dir.parent
    # folders made here are removed again on failure
    created = [p for p in [parent, *parent.parents] if not p.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(parent, data_dir.name)
    try:
        _download_into(parent, data_dir, url, sha256)
    except BaseException:
        for folder in created:  # innermost first; only folders left empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _download_into(parent: Path, data_dir: Path, url: str, sha256: dict[str, str]) -> None:
    prefix = f".{data_dir.name}-partial-{os.getpid()}-"
    with tempfile.TemporaryDirectory(dir=parent, prefix=prefix) as tmp:
        archive = _fetch(url, Path(tmp), data_dir)
        extracted = Path(tmp) / "extracted"
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(extracted)
        except (zipfile.BadZipFile, OSError) as e:
            raise FkpError(f"{url}: the download is not a readable zip ({e}); try again.") from None
        root = _find_root(extracted, url)
        for name, expected in sha256.items():
            file = root / name
            if not file.is_file():
                raise FkpError(f"{url}: the zip holds no {name}; check data.url.")
            actual = sha256_of(file)
            if actual != expected:
                raise FkpError(
                    f"{url}: {name} has SHA-256 {actual}, expected {expected}; the download "
                    "is damaged or not the release, so nothing was installed."
                )
        root.rename(data_dir)


def _fetch(url: str, tmp: Path, data_dir: Path) -> Path:
    local = Path(url).expanduser()
    if "://" not in url and local.is_file():
        return local
    logging.getLogger("pooch").setLevel(logging.WARNING)  # its hash hint is noise here
    try:
        path = pooch.retrieve(url, known_hash=None, fname="release.zip", path=tmp, progressbar=True)
    except Exception as e:  # network errors come in many types; all mean the same to a user
        raise FkpError(
            f"could not download {url} ({type(e).__name__}: {e}); download the zip by hand and "
            f"pass it as data.url=<file.zip>, unzip it into {data_dir}, or point FKP_DATA_DIR "
            "at a folder that holds it."
        ) from None
    return Path(path)


def _find_root(extracted: Path, url: str) -> Path:
    """The folder inside the zip that holds the training CSV (top level or one folder down)."""
    for candidate in [extracted, *sorted(p for p in extracted.iterdir() if p.is_dir())]:
        if (candidate / TRAIN_CSV).is_file():
            return candidate
    raise FkpError(f"{url}: the zip holds no {TRAIN_CSV}; check data.url.")


def _remove_stale(parent: Path, name: str) -> None:
    """Delete partial folders that a killed download left behind: those of processes that
    are gone (the pid is in the name), and any older than an hour."""
    for stale in parent.glob(f".{name}-partial-*"):
        pid = stale.name[len(f".{name}-partial-") :].split("-", 1)[0]
        dead = pid.isdigit() and not pid_alive(int(pid))
        if dead or time.time() - stale.stat().st_mtime > _STALE_SECONDS:
            shutil.rmtree(stale, ignore_errors=True)
