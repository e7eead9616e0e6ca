"""`tripost serve-teacher`: run a teacher as an OpenAI/Anthropic-shaped HTTP service.

A thin verb: the options and the run are tripost.serve.command's, shared
with `python -m tripost.serve`.
"""

from __future__ import annotations

import argparse

from tripost.serve.command import add_arguments, run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve-teacher",
        help="serve a teacher over HTTP (OpenAI and Anthropic API shapes)",
        description=(
            "Serve a teacher as POST /v1/chat/completions (OpenAI shape) and POST /v1/messages (Anthropic shape), "
            "with GET /stats. Point OPENAI_BASE_URL=http://HOST:PORT/v1 or ANTHROPIC_BASE_URL=http://HOST:PORT at "
            "it, set OPENAI_API_KEY or ANTHROPIC_API_KEY to its token, and use the teacher spec openai:NAME or "
            "anthropic:NAME. Requests without the token are refused (401): it keeps other users and processes "
            "from using the teacher and, with --backend openai:/anthropic:, from spending your API key. "
            "The token is printed once at start when serve-teacher makes it, and never logged; "
            "/stats and /health (counts only) need none. "
            "Fault injection options make it a test double for real APIs."
        ),
    )
    add_arguments(p)
    p.set_defaults(handler=run)
