"""The help formatter of every command: an option's default is shown once, and only when it says something."""
from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help unless the help already names its default, the option is
    required, or the default is None or False (no value, an unset flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if ("default" in help_text or action.required or action.default is None or action.default is False
                or action.default is argparse.SUPPRESS):
            return help_text
        return super()._get_help_string(action)
