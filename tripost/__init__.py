"""tripost: teach small language models to correct themselves (TriPosT).

Data flows one way (docs/design.md):
tasks -> student -> teacher -> log -> buffer -> trainer -> eval -> report.
"""

import os as _os

# OpenMP threads that spin while waiting turn every oversubscribed moment
# (teacher threads, a second process, a busy CI box) into a stall: measured
# here, 24 tokens from the tiny test model took 18 s with the default (active)
# wait policy on a loaded 2-core machine and 0.3 s with PASSIVE. It must be set
# before torch starts its OpenMP pool, so it lives here; an explicit setting
# in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
