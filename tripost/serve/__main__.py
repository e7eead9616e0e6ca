"""`python -m tripost.serve ...`: the same as `tripost serve-teacher ...`."""

import sys

from tripost.cli.serve_cmd import main

sys.exit(main())
