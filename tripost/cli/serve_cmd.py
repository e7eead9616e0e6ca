"""`tripost serve-teacher` and `tripost serve-student`: HTTP services.

Thin verbs: serve-teacher's options and run are tripost.serve.command's
(shared with `python -m tripost.serve`), serve-student's
tripost.serve.student_server's.
"""

from __future__ import annotations

import argparse

from tripost.serve import student_server
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

    s = sub.add_parser(
        "serve-student",
        help="serve the student over an OpenAI-compatible completions API (a remote engine, as vLLM)",
        description=(
            "Serve a loaded student as POST /v1/completions and GET /v1/models, the subset of the OpenAI "
            "completions API tripost's remote engine uses (as vLLM serves it). `model` in a request names the "
            "base model (--name) or the adapter (--adapter DIR, --adapter-name). Point another tripost at it with "
            "--engine http://HOST:PORT/v1 --engine-model NAME and TRIPOST_ENGINE_KEY set to the token."
        ),
    )
    student_server.add_arguments(s)
    s.set_defaults(handler=student_server.run)
