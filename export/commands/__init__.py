"""`lewm export` and `lewm bench` (see lewm/cli.py for how subcommands are registered)."""
