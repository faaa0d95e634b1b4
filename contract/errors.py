"""Errors the user fixes, not the code: the command prints their one-line message (which names
the file or the run at fault) and exits 2, without a traceback (tamscope.cli)."""


class UserError(Exception):
    """A problem with what the user gave (a malformed input file, a dataset another run is writing)."""
