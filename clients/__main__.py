"""`python -m clients` runs the `duckdb-flight` command."""

import sys

from .cli import main

sys.exit(main())
