"""`python -m pytest_policyeval ...` is the `policyeval` command."""

import sys

from pytest_policyeval.cli import main

sys.exit(main())
