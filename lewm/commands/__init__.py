"""Subcommands of the `lewm` command that belong to the model package (see lewm/cli.py)."""
