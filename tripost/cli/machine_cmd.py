"""`tripost machine`: the machine card (tripost.student.hardware.machine_card):
what this machine is, what `precision=auto` picks on it and why, and what
its matmuls measure. CI prints it first; run folders keep it as machine.json."""

from __future__ import annotations

import argparse
import json
from tripost.errors import TripostError
from tripost.student.hardware import CARD_MATMUL_N, SIMULATE_ENV, describe_card, machine_card


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "machine",
        help="describe this machine: CPU, flags, torch, the number format auto picks, matmul GFLOP/s",
        description=(
            "Print the machine card: CPU model, the flags that decide the number format (avx512_bf16, amx_bf16), "
            "threads, torch version, device, what precision=auto picks and why (decided from the hardware, never "
            f"from a timing), and measured fp32 and bf16 matmul GFLOP/s. {SIMULATE_ENV}=avx2|avx512_bf16|amx|cuda "
            "makes every auto decision see that kind of machine (the test suite's seam)."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.add_argument("--no-measure", action="store_true", help="skip the timed matmuls")
    p.add_argument("--matmul-n", type=int, default=CARD_MATMUL_N, metavar="N", help=f"matmul size (default {CARD_MATMUL_N})")
    p.set_defaults(handler=cmd_machine)


def cmd_machine(args: argparse.Namespace) -> int:
    if args.matmul_n < 1:
        raise TripostError("--matmul-n must be at least 1")
    card = machine_card(measure=not args.no_measure, matmul_n=args.matmul_n)
    print(json.dumps(card, indent=2) if args.json else describe_card(card))
    return 0
