"""The project's one user-facing error type.

It lives at the bottom of the import graph (scenes/ imports nothing of ours) so every package
can raise it; the `lewm` command prints its message as one line, without a traceback."""


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and what to do."""
