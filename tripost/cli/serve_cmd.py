"""`tripost serve-teacher`: run a teacher as an OpenAI/Anthropic-shaped HTTP service."""

from __future__ import annotations

import argparse
import os
import sys

from tripost.errors import TripostError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="scripted", metavar="SPEC",
                   help="teacher to serve: scripted (default), openai:MODEL, anthropic:MODEL, hf:PATH, replay:LOG")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--model-name", default=None, metavar="NAME", help="model name reported by /v1/models")
    p.add_argument("--fail-rate", type=float, default=0.0, metavar="R", help="share of requests answered with an error")
    p.add_argument("--fail-codes", default="429,500,529", metavar="CODES",
                   help="error statuses to draw from (default 429,500,529; 'quota' = a 429 out-of-quota error)")
    p.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="sleep before every answer")
    p.add_argument("--garbage-rate", type=float, default=0.0, metavar="R", help="share of 200 answers with garbage text")
    p.add_argument("--retry-after", type=float, default=1.0, metavar="SECONDS",
                   help="Retry-After sent with (half of the) injected 429s (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault-injection draws")
    p.add_argument("--no-cache", action="store_true", help="LLM backends: do not use the on-disk response cache")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve-teacher",
        help="serve a teacher over HTTP (OpenAI and Anthropic API shapes)",
        description=(
            "Serve a teacher as POST /v1/chat/completions (OpenAI shape) and POST /v1/messages (Anthropic shape), "
            "with GET /stats. Point OPENAI_BASE_URL=http://HOST:PORT/v1 or ANTHROPIC_BASE_URL=http://HOST:PORT at "
            "it and use the teacher spec openai:NAME or anthropic:NAME. Fault injection options make it a test "
            "double for real APIs."
        ),
    )
    add_arguments(p)
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from tripost.serve.server import Faults, TeacherService, make_server, parse_fail_codes
    from tripost.teachers import make_teacher

    faults = Faults(
        fail_rate=args.fail_rate,
        fail_codes=parse_fail_codes(args.fail_codes),
        latency=args.latency,
        garbage_rate=args.garbage_rate,
        retry_after=args.retry_after,
        seed=args.seed,
    )
    if not 0 <= args.port <= 65535:
        raise TripostError(f"--port must be 0-65535, got {args.port}")
    kind = args.backend.partition(":")[0]
    options = {"cache": False} if args.no_cache and kind in ("openai", "anthropic", "hf") else {}
    teacher = make_teacher(args.backend, **options)
    service = TeacherService(teacher, model=args.model_name or args.backend, faults=faults)
    httpd = make_server(service, args.host, args.port)
    host, port = httpd.server_address[:2]
    # The first stdout line says where we listen (scripts read it when --port 0).
    print(f"serving {args.backend} on http://{host}:{port} (OpenAI: /v1/chat/completions, Anthropic: /v1/messages, stats: /stats)", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        close = getattr(teacher, "close", None)
        if close is not None:
            close()
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(prog="python -m tripost.serve", description="Serve a teacher over HTTP.")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_serve(args)
    except TripostError as e:
        print(f"serve-teacher: error: {e}", file=sys.stderr)
        return e.exit_code
