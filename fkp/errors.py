"""User mistakes, reported as one line."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Write failures that are the machine's state, not a bug: a full disk, a read-only or
# unwritable folder, a quota.
WRITE_ERRORS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT}


class FkpError(Exception):
    """A mistake in the user's input or settings.

    The message is one sentence that names the file, row or option and the fix; command-line
    entry points print it without a traceback and exit with `exit_code` (2).
    """

    exit_code = 2


class Interrupted(FkpError):
    """The run was stopped by a signal after saving what it could; exit status 128 + the
    signal's number, as shells and schedulers expect (143 SIGTERM, 130 Ctrl-C)."""

    def __init__(self, message: str, exit_code: int = 143) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def as_fkp_error(error: BaseException) -> FkpError | None:
    """The one-line form of an error a user can act on, or None for a bug."""
    if isinstance(error, FkpError):
        text = str(error)
        if "Original Traceback" in text:  # raised in a DataLoader worker, which wraps the
            # message in the worker's traceback; the sentence is its last line
            last = text.strip().splitlines()[-1]
            return FkpError(last.split("FkpError: ", 1)[-1])
        return error
    if type(error).__name__ == "MissingMandatoryValue":  # OmegaConf's: a `???` not given
        return missing_value(getattr(error, "full_key", "") or "a setting")
    if isinstance(error, OSError) and error.errno in WRITE_ERRORS:
        where = error.filename or error.filename2 or "a file in the output folder"
        return write_failure(where, error.strerror)
    return None


# The settings a command cannot run without, with an example for its one-line message.
REQUIRED_EXAMPLES = {
    "input": "input=photo.jpg",
    "ckpt_path": "ckpt_path=outputs/train/<run>/checkpoints/last.ckpt",
}


def missing_value(key: str) -> FkpError:
    """A setting the command needs and was not given, with an example command line."""
    command = os.path.basename(sys.argv[0]).removesuffix(".py").split()[-1] if sys.argv else ""
    example = REQUIRED_EXAMPLES.get(key, f"{key}=<value>")
    return FkpError(f"{key} is required, e.g. fkp {command} {example}".rstrip() + ".")


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """ "1 face", "2 faces", "1 refinement pass", "3 refinement passes": messages say what
    they count in proper English, not "face(s)"."""
    many = plural or (noun + "es" if noun.endswith(("s", "sh", "ch", "x")) else noun + "s")
    return f"{count} {noun if count == 1 else many}"


def write_failure(where: object, reason: str, setting: str = "hydra.run.dir=<folder>") -> FkpError:
    """A write that failed for the machine's reasons (full disk, permissions): the file, why,
    and the option that writes elsewhere."""
    return FkpError(
        f"{where}: cannot write ({reason}); free some space or fix the folder's permissions, "
        f"or write elsewhere with {setting}; files written earlier are kept."
    )


@contextmanager
def reported_as_one_line(multirun: bool = False) -> Iterator[None]:
    """For command-line entry points: an FkpError (or a write failure) becomes `error: ...`
    and its exit status.

    multirun: inside a Hydra sweep job, print the line and raise it on as a plain exception,
    so Hydra marks just this job as failed and the sweep goes on (sys.exit would end it).
    """
    try:
        yield
    except Exception as e:
        error = as_fkp_error(e)
        if error is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        if multirun:
            raise JobFailed(str(error)) from None
        sys.exit(error.exit_code)


class JobFailed(RuntimeError):
    """One job of a sweep failed for a reason already printed as one line."""
