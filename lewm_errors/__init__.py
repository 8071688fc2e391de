"""The error every package raises for input it cannot use, at the bottom of the import graph (it imports nothing)
so that scenes/, lewm/, export/ and monitor/ can all raise it; the `lewm` command prints it as one line, without a
traceback, and exits with code 2."""


class UserError(Exception):
    """Input that cannot be used (a setting, a file, a folder): the message says what is wrong and what to do."""
