"""`python -m lewm_cli` is the `lewm` command."""
import sys

from lewm_cli import main

sys.exit(main())
