"""`tripost export`: a trained student as an adapter, a merged folder, a GGUF and a model card (tripost.export)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tripost.cli._io import check_out_dir
from tripost.export import GGUF_TYPE, GGUF_TYPES, MERGE_DTYPE, MERGE_DTYPES, check_push, export_student, find_source, push_folder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a trained student: adapter or merged folder, GGUF, model card, Hub push",
        description=(
            "Export the student of a run folder (its last trained iteration, or --iteration N) or of a train output folder "
            "into a new folder with a model card (README.md: the base model's Hub id and revision, the method, the data, "
            "the evaluation table). Without --merge a LoRA adapter stays an adapter, its base named by Hub id; a fully "
            "fine-tuned student is always a standard transformers folder."
        ),
    )
    p.add_argument("source", metavar="RUN_OR_DIR", help="a run folder, or a folder `tripost train` wrote")
    p.add_argument("--to", required=True, metavar="DIR", help="the export folder (new, or empty)")
    p.add_argument("--iteration", type=int, metavar="N", help="a run's iteration to export (default: the last one trained)")
    p.add_argument("--merge", action="store_true", help="merge a (Q)LoRA adapter into its full-precision base: a standard transformers folder")
    p.add_argument("--dtype", choices=MERGE_DTYPES, default=MERGE_DTYPE, help=f"precision of merged weights (default {MERGE_DTYPE})")
    p.add_argument("--gguf", action="store_true", help="also write DIR/DIR.TYPE.gguf for llama.cpp and Ollama (Llama-architecture students)")
    p.add_argument("--gguf-type", choices=GGUF_TYPES, default=GGUF_TYPE, help=f"tensor type of the GGUF (default {GGUF_TYPE}; norms stay f32)")
    p.add_argument("--push", metavar="ORG/NAME", help="upload the export folder to this Hugging Face Hub model repository (needs the Hub: not with HF_HUB_OFFLINE=1)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    # Everything that can be refused is refused before a model loads.
    if args.push:
        check_push(args.push)
    check_out_dir(args.to)
    src = find_source(args.source, args.iteration)
    summary = export_student(src, args.to, merge=args.merge, gguf=args.gguf, gguf_type=args.gguf_type, dtype=args.dtype)
    if args.push:
        summary["pushed"] = push_folder(Path(summary["folder"]), args.push)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return 0
    if summary["note"]:
        print(f"note: {summary['note']}")
    what = {"lora": "LoRA adapter", "merged": "merged transformers folder", "full": "transformers folder"}[summary["kind"]]
    print(f"exported {what} from {summary['source']} to {summary['folder']}: {', '.join(summary['files'])}")
    if summary.get("pushed"):
        print(f"pushed: {summary['pushed']}")
    return 0
