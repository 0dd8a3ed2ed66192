"""`python -m otel_llm_cost` runs the CLI."""

import sys

from otel_llm_cost.cli.main import main

sys.exit(main())
