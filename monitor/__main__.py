"""`python -m monitor` is `lewm monitor`."""
import sys

from monitor.commands import main

sys.exit(main())
