"""`python -m flight_server` starts the server."""

import sys

from .cli import main

sys.exit(main())
