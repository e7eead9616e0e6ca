"""`tripost train`: weighted (Q)LoRA SFT of the student on a replay buffer."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap

from tripost.cli._io import TRAIN_PRECISION_HELP, check_out_dir
from tripost.config import apply_override, check_types, merge, read_toml
from tripost.errors import TripostError
from tripost.settings import described
from tripost.student.load import PRECISIONS
from tripost.student.spec import SPEC_HELP
from tripost.train import OBJECTIVES, is_main_process, load_buffer_dataset
from tripost.train.config import TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune the student on a replay buffer (weighted QLoRA SFT)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=key_list(),
        description=textwrap.fill(
            "Weighted SFT on the buffer (TriPosT): prompt tokens weigh 0, the first attempt 1.0, everything from the "
            "first 'Feedback:' on 1.5 in examples built from improvements (1.0 in the others); loss = sum w*CE / target tokens. LoRA r=16 on all linear layers (mode=lora) or every weight (mode=full); mode=auto, the default, picks full on a CPU where the training state fits, else LoRA; "
            "the setup is chosen for the device and printed: QLoRA on a GPU, fp32 with packed rows on a CPU (bf16 autocast "
            "where the CPU has bf16 matrix units). Writes a PEFT adapter folder, or the full weights, (plus tokenizer, "
            "train_config.json, train_metrics.json) to --out; an interrupted run "
            "resumes from OUT/checkpoints. Any TrainConfig field can be set as KEY=VALUE (listed below with their defaults and help), e.g. epochs=2 "
            "feedback_weight=1.0 report_to=tensorboard (a 'train.' prefix is accepted). Several GPUs: "
            "accelerate launch --multi_gpu --num_processes N -m tripost train ... (README, 'Several GPUs')"
        ),
    )
    c = TrainConfig  # the defaults, written once there; a flag not given leaves --config's value or the default
    p.add_argument("--student", default=None, metavar="SPEC", help=f"{SPEC_HELP} (default {c.student})")
    p.add_argument("--adapter", default=None, metavar="DIR", help="continue from this adapter (the previous iteration's)")
    p.add_argument("--buffer", required=True, metavar="DIR", help="a `tripost buffer` folder (DIR or DIR/dataset)")
    p.add_argument("--out", required=True, metavar="DIR", help="output adapter folder")
    p.add_argument("--precision", choices=PRECISIONS, default=None, help=f"{TRAIN_PRECISION_HELP} (default {c.precision})")
    p.add_argument("--epochs", type=float, default=None, help=f"passes over the buffer (default {c.epochs:g})")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps (overrides --epochs)")
    p.add_argument("--config", default=None, metavar="FILE", help="TOML file with train settings (top level or a [train] table)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="TrainConfig overrides")
    p.set_defaults(handler=cmd_train)


def key_list() -> str:
    """Every TrainConfig field as KEY=DEFAULT and its help: the epilog of
    `tripost train --help`, from the field metadata (written once, in
    tripost/train/config.py)."""
    lines = ["TrainConfig keys (KEY=VALUE), with their defaults:"]
    defaults = train_defaults()
    for f in dataclasses.fields(TrainConfig):
        lines.append(f"  {f.name}={json.dumps(defaults[f.name])}")
        lines += textwrap.wrap(described(f), 76, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def train_defaults() -> dict:
    """Every TrainConfig field at its default, by name."""
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory() for f in dataclasses.fields(TrainConfig)}  # type: ignore[misc]


def train_config_from_args(args: argparse.Namespace):
    """TrainConfig defaults < --config FILE (top level or a [train] table) <
    KEY=VALUE overrides < the flags; every key and type checked by the run
    config's loader (tripost.config), errors naming `train.KEY`."""
    known = train_defaults()
    values: dict = dict(known)
    if args.config:
        data = read_toml(args.config)
        data = data["train"] if isinstance(data.get("train"), dict) else data
        try:
            values = merge(values, data, known, where="train")
        except TripostError as e:
            raise TripostError(f"config file {args.config}: {e}") from None
    for item in args.overrides:
        key = item.partition("=")[0].strip()
        item = item.strip()[len("train."):] if key.startswith("train.") else item
        apply_override(values, item, known)
    for flag, key in (("student", "student"), ("adapter", "adapter"), ("precision", "precision"), ("epochs", "epochs"), ("max_steps", "max_steps")):
        v = getattr(args, flag)
        if v is not None:
            values[key] = v
    # Types first, so a wrong one is named by its key (train.epochs="two"),
    # then TrainConfig's own checks of the values.
    check_types(values, known, "train")
    return TrainConfig.from_dict(values)


def cmd_train(args: argparse.Namespace) -> int:
    config = train_config_from_args(args)
    check_out_dir(args.out)
    dataset = load_buffer_dataset(args.buffer)
    # sft: weighted SFT; dpo: preference pairs (tripost buffer --pairs), RLHF-sharpening
    objective = OBJECTIVES.get(config.objective)
    m = objective.train(config, dataset, args.out)
    if not is_main_process():  # under accelerate launch / torchrun, one summary for the run
        return 0
    if args.json:
        print(json.dumps({k: v for k, v in m.items() if k != "loss_curve"}, sort_keys=True))
    else:
        print(objective.summary(m, args.out), file=sys.stdout)
    return 0
