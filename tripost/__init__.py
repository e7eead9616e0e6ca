"""tripost: teach small language models to correct themselves (TriPosT).

Data flows one way (docs/design.md):
tasks -> student -> teacher -> log -> buffer -> trainer -> eval -> report.
"""

import os as _os

# How torch's OpenMP threads wait between kernels. Spinning without bound (the
# ACTIVE policy, or libgomp's default of 300,000 rounds) turns every
# oversubscribed moment (teacher threads, a second process, a busy CI box)
# into a stall: 24 tokens from the tiny test model took 18 s instead of 0.3 s
# on a loaded 2-core machine. Sleeping at once (PASSIVE) pays a thread wake-up
# (~50 us on these VMs) before each of the hundreds of small kernels of a
# decode step. Measured on a 2-core Zen 4 (embedded student, bf16; one decode step of
# 64 rows / the engine at batch 16, idle machine; and the engine at batch 16
# with two other 2-thread jobs running):
#
#     GOMP_SPINCOUNT     idle: step ms   idle: tok/s   loaded: tok/s
#     PASSIVE (0)          162-202         168-194         93-102
#     300                  137-151         195-206         87-91
#     3,000                110-116         221-236         64
#     10,000               117-133         245             37-39
#
# 3,000 rounds keeps most of the idle-machine gain and bounds the loss when
# the CPU is shared (the tiny-model case: 0.2-0.4 s). Sharing a small CPU on
# purpose (two runs side by side)? Set OMP_WAIT_POLICY=PASSIVE. It must be
# set before torch starts its OpenMP pool, so it lives here; an explicit
# OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment wins.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "3000"

__version__ = "0.1.0"
