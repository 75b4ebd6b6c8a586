"""User mistakes, reported as one line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class FkpError(Exception):
    """A mistake in the user's input or settings.

    The message is one sentence that names the file, row or option and the fix; command-line
    entry points print it without a traceback and exit with status 2.
    """


@contextmanager
def reported_as_one_line() -> Iterator[None]:
    """For command-line entry points: an FkpError becomes `error: ...` and exit status 2."""
    try:
        yield
    except FkpError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
