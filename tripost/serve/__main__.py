"""`python -m tripost.serve ...`: the same as `tripost serve-teacher ...`."""

import sys

from tripost.serve.command import main

sys.exit(main())
