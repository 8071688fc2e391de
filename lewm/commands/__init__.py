"""Subcommands of the `lewm` command that belong to the model package (registered in lewm_cli)."""
