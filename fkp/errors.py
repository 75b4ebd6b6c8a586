class FkpError(Exception):
    """A mistake in the user's input or settings.

    The message is one sentence that names the file, row or option and the fix; command-line
    entry points print it without a traceback and exit with status 2.
    """
