"""`python -m pipelines.cli`, as the `yardstick` command."""

import sys

from pipelines.cli import main

sys.exit(main())
