"""How long the teacher prompts' shared prefixes are, against the minimum a
provider caches (issue 19, item 3).

For each task family and request kind (feedback, improve) the prompt's
shared prefix (system prompt + few-shot messages, what `cache_control`
marks) is measured three ways: characters, tripost's generous estimate
(tripost.teachers.anthropic_chat.prefix_tokens) and the SmolLM2 tokenizer
(a real BPE count, close to but not the provider's). Prints a table and
writes docs/benchmarks/teacher-prefixes.{md,json}; no request is sent.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/teacher_prefixes.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # never contacted: only prompts are built

from tripost.student.embedded import embedded_model_dir  # noqa: E402
from tripost.tasks import get_task, sample_problems  # noqa: E402
from tripost.teachers import make_teacher  # noqa: E402
from tripost.teachers.anthropic_chat import CACHE_MINIMUMS, DEFAULT_CACHE_MINIMUM, cache_minimum, prefix_tokens  # noqa: E402

FAMILIES = ("arithmetic", "word_sorting", "date_understanding", "logical_deduction")
MODELS = ("claude-sonnet-4-5", "claude-3-5-haiku-latest", "claude-haiku-4-5")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " ")).parse_args(argv)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    teacher = make_teacher(f"anthropic:{MODELS[0]}", cache=False)
    rows = []
    for fam in FAMILIES:
        problem = sample_problems(get_task(fam), n=1, seed=0)[0]
        for kind in ("feedback", "improve"):
            req = teacher.build_request(kind, problem, problem.rationale, "Feedback: ..." if kind == "improve" else None)
            text = req.system + "".join(m.content for m in req.messages[: req.cache_prefix])
            row = {"family": fam, "kind": kind, "chars": len(text), "estimate": prefix_tokens(req),
                   "smollm2_tokens": len(tok(text)["input_ids"]), "prefix_messages": req.cache_prefix}
            row["marked"] = {m: row["estimate"] >= cache_minimum(m) for m in MODELS}
            rows.append(row)
    head = f"| family | kind | chars | estimate | SmolLM2 tokens | {' | '.join(f'marked for {m} (min {cache_minimum(m)})' for m in MODELS)} |"
    lines = [head, "|" + "---|" * (5 + len(MODELS))]
    for r in rows:
        lines.append(f"| {r['family']} | {r['kind']} | {r['chars']} | {r['estimate']} | {r['smollm2_tokens']} | "
                     + " | ".join("yes" if r["marked"][m] else "no" for m in MODELS) + " |")
    table = "\n".join(lines)
    print(table)
    summary = {
        "smollm2_tokens_min": min(r["smollm2_tokens"] for r in rows),
        "smollm2_tokens_max": max(r["smollm2_tokens"] for r in rows),
        "below_1024_by_smollm2": sum(r["smollm2_tokens"] < 1024 for r in rows),
        "prefixes": len(rows),
        "marked_for": {m: sum(r["marked"][m] for r in rows) for m in MODELS},
    }
    out = ROOT / "docs" / "benchmarks"
    (out / "teacher-prefixes.json").write_text(json.dumps({"summary": summary, "rows": rows, "minimums": dict(CACHE_MINIMUMS),
                                                           "default_minimum": DEFAULT_CACHE_MINIMUM}, indent=2) + "\n")
    (out / "teacher-prefixes.md").write_text(
        "# Teacher prompt prefixes vs the prompt-cache minimum\n\n"
        "Command: `HF_HUB_OFFLINE=1 .venv/bin/python scripts/teacher_prefixes.py`\n\n"
        "The shared prefix of each teacher prompt (system prompt + few-shot messages: what `cache_control` would mark), "
        "measured in characters, tripost's generous estimate (2.5 characters a token) and the SmolLM2 tokenizer. Anthropic "
        "caches a prefix only from a minimum on (1,024 tokens for most models, 2,048 for Claude 3.x Haiku and Sonnet 4.6, "
        "4,096 for Haiku 4.5 and Opus 4.5/4.6); the Anthropic backend marks a prefix only when the estimate reaches the "
        "model's minimum, and `tripost serve-teacher` applies the same minimum (`--cache-min-tokens`).\n\n"
        f"{table}\n\n"
        f"Reading: {summary['below_1024_by_smollm2']} of {summary['prefixes']} prefixes are below 1,024 tokens by the "
        "SmolLM2 count, so on most models prompt caching saves nothing for tripost's default prompts; only logical "
        "deduction's few-shot prefix comes near the minimum. Growing the prefixes with more examples to reach it would "
        "raise every uncached request's price to save on cached ones, so the backend leaves short prefixes unmarked "
        "instead.\n"
    )
    print(f"\nwrote {out / 'teacher-prefixes.md'} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
