"""Writing files so that nothing already written is lost: checks before work starts, atomic
replacement, and clean-up of what a killed process left behind."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fkp.errors import WRITE_ERRORS, FkpError, write_failure

_PARTIAL = ".partial-"


def ensure_writable(folder: str | Path, setting: str) -> Path:
    """Make `folder` and check a file can be written in it, before any work is done.

    setting: the option that chooses the folder, named in the error with the fix.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".fkp-write-check-"):
            pass
    except OSError as e:
        raise FkpError(
            f"{folder}: cannot write there ({e.strerror}); fix its permissions or free space, "
            f"or choose another folder with {setting}."
        ) from None
    return folder


@contextmanager
def run_lock(folder: Path, what: str = "run folder") -> Iterator[None]:
    """Hold an exclusive lock on `folder` (a `.lock` file in it) while a run writes there, so a
    second run in the same folder (two resumes of one run) stops with one line instead of
    interleaving its checkpoints and records. The lock goes with the process, however it ends."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one run per folder is then up to you
        yield
        return
    lock = (folder / ".lock").open("a+")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FkpError(
                f"{folder}: another fkp process is using this {what}; wait for it to end, or "
                "resume into a new folder (ckpt_path=<its last.ckpt> without hydra.run.dir)."
            ) from None
        yield
    finally:
        lock.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_dead_partials(folder: Path) -> None:
    """Delete `.<stem>.partial-<pid><suffix>` files in folder whose writer process has died."""
    for partial in folder.glob(f".*{_PARTIAL}*"):
        pid = partial.name.rsplit(_PARTIAL, 1)[1].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            partial.unlink(missing_ok=True)


def partial_path(path: Path) -> Path:
    """Where `path` is written before it is renamed into place (same folder, same suffix, so
    writers that choose a format by extension still do)."""
    return path.with_name(f".{path.stem}{_PARTIAL}{os.getpid()}{path.suffix}")


def atomic_write(
    path: str | Path, write: Callable[[io.BufferedWriter], Any], setting: str | None = None
) -> Path:
    """Write a file whole or not at all: into a partial file beside it, synced, then renamed
    over the old one. A kill leaves the old file intact (and a partial file that the next
    write in that folder removes); a failed write (a full disk, say) removes the partial file
    and raises for `path` itself: with `setting` (the option that moves the file), as one
    FkpError naming both."""
    return atomic_write_all({Path(path): write}, setting)[0]


def atomic_write_all(
    writers: dict[Path, Callable[[io.BufferedWriter], Any]], setting: str | None = None
) -> list[Path]:
    """Several files that belong together (a model and its JSON), each written beside its
    target first: only when every one is written whole are they renamed into place, so a
    failure leaves all the earlier files as they were."""
    partials: dict[Path, Path] = {}
    try:
        for path, write in writers.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_dead_partials(path.parent)
            partials[path] = partial_path(path)
            try:
                with partials[path].open("wb") as f:
                    write(f)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                raise _failed_write(e, path, setting) from None
        for path, partial in partials.items():
            os.replace(partial, path)
    except BaseException:
        for partial in partials.values():
            partial.unlink(missing_ok=True)
        raise
    return list(writers)


def _failed_write(error: OSError, path: Path, setting: str | None) -> Exception:
    if setting is None or error.errno not in WRITE_ERRORS:
        return OSError(error.errno, error.strerror, str(path))
    return write_failure(path, error.strerror, setting)


def atomic_copy(source: str | Path, target: str | Path) -> Path:
    """Copy a file whole or not at all (a kill mid-copy leaves no torn file under `target`)."""

    def copy(f: io.BufferedWriter) -> None:
        with Path(source).open("rb") as src:
            shutil.copyfileobj(src, f, 1 << 20)

    path = atomic_write(target, copy)
    shutil.copystat(source, path)
    return path


def write_text(path: str | Path, text: str, setting: str | None = None) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()), setting)
