"""Serving a teacher from the command line: the options, and running them.

`python -m tripost.serve ...` and `tripost serve-teacher ...` are the same
command. The options and the run live here, in the library, so that the
library never imports the CLI; tripost.cli.serve_cmd only registers the verb.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from tripost.errors import TripostError
from tripost.serve.bounds import Limits, add_limit_arguments
from tripost.serve.faults import Faults, parse_fail_codes
from tripost.serve.running import TOKEN_ENV, check_token, new_token
from tripost.serve.server import make_server
from tripost.serve.teacher_service import CACHE_MIN_TOKENS, TeacherService
from tripost.student.spec import hub_offline_by_default
from tripost.teachers import TeacherOptions, make_teacher
from tripost.teachers.options import add_teacher_flags

TOKEN_HELP = (
    "the token clients must send as their API key (OPENAI_API_KEY / ANTHROPIC_API_KEY, i.e. "
    "Authorization: Bearer or x-api-key); default: $TRIPOST_SERVE_TOKEN, else a new random one, printed once "
    "at start (the only place serve-teacher ever shows it). Prefer the variable: a flag is visible in ps"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The serve-teacher options, on `p`."""
    p.add_argument("--backend", default="scripted", metavar="SPEC",
                   help="teacher to serve: scripted (default), openai:MODEL, anthropic:MODEL, hf:PATH, replay:LOG")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; any other address is warned about)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--token", default=None, metavar="TOKEN", help=TOKEN_HELP)
    p.add_argument("--model-name", default=None, metavar="NAME", help="model name reported by /v1/models")
    p.add_argument("--fail-rate", type=float, default=0.0, metavar="R", help="share of requests answered with an error")
    p.add_argument("--fail-codes", default="429,500,529", metavar="CODES",
                   help="error statuses to draw from (default 429,500,529; 'quota' = a 429 out-of-quota error)")
    p.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="sleep before every answer")
    p.add_argument("--garbage-rate", type=float, default=0.0, metavar="R", help="share of 200 answers with garbage text")
    p.add_argument("--malformed-rate", type=float, default=0.0, metavar="R",
                   help="share of 200 answers whose body a client cannot read (cut-off JSON, HTML, null text)")
    p.add_argument("--retry-after", type=float, default=1.0, metavar="SECONDS",
                   help="Retry-After sent with (half of the) injected 429s (default 1)")
    p.add_argument("--batch-latency", type=float, default=0.0, metavar="SECONDS",
                   help="batch APIs (/v1/batches, /v1/messages/batches): how long a batch stays in progress before "
                        "its items are answered (default 0)")
    p.add_argument("--batch-expire-rate", type=float, default=0.0, metavar="R",
                   help="batch APIs: share of batch items never answered, so that their batch ends expired (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault-injection draws")
    p.add_argument("--no-cache", action="store_true", help="LLM backends: do not use the on-disk response cache (as --no-teacher-cache)")
    p.add_argument("--cache-min-tokens", type=int, default=CACHE_MIN_TOKENS, metavar="N",
                   help=f"shortest prompt prefix (estimated tokens) the mimicked provider prompt cache keeps (default {CACHE_MIN_TOKENS}, "
                        "as OpenAI and most Claude models; 0: every prefix)")
    add_limit_arguments(p)  # what one request may cost: body size, read timeout, connections (bounds.py)

    add_teacher_flags(p)  # for a proxied LLM backend (openai:, anthropic:, hf:), as collect and teach


def _log_to_stderr() -> None:
    """The server's own lines (a refused request, a client that went away, a
    failed upstream, the non-loopback warning) on stderr, one line each."""
    logger = logging.getLogger("tripost.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("serve-teacher: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def faults_from(args: argparse.Namespace) -> Faults:
    """The fault injection the parsed options ask for."""
    return Faults(
        fail_rate=args.fail_rate,
        fail_codes=parse_fail_codes(args.fail_codes),
        latency=args.latency,
        garbage_rate=args.garbage_rate,
        retry_after=args.retry_after,
        seed=args.seed,
        malformed_rate=args.malformed_rate,
        batch_latency=args.batch_latency,
        batch_expire_rate=args.batch_expire_rate,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted, as the parsed options (`add_arguments`) say; returns the exit code."""

    faults = faults_from(args)
    limits = Limits.from_args(args)
    if not 0 <= args.port <= 65535:
        raise TripostError(f"--port must be 0-65535, got {args.port}")
    if args.token is not None:
        token, told = check_token(args.token, "--token"), "given by --token"
    elif os.environ.get(TOKEN_ENV):
        token, told = check_token(os.environ[TOKEN_ENV], TOKEN_ENV), f"from ${TOKEN_ENV}"
    else:
        token, told = new_token(), ""
    _log_to_stderr()
    kind = args.backend.partition(":")[0]
    # A proxy (openai:/anthropic:/hf: backend) takes the teacher options as collect and teach do.
    options = TeacherOptions.from_args(args).teacher_kwargs() if kind in ("openai", "anthropic", "hf") else {}
    if args.no_cache and options:
        options["cache"] = False
    teacher = make_teacher(args.backend, **options)
    if args.cache_min_tokens < 0:
        raise TripostError(f"--cache-min-tokens must be 0 or more, got {args.cache_min_tokens}")
    service = TeacherService(teacher, model=args.model_name or args.backend, faults=faults, cache_min_tokens=args.cache_min_tokens)
    httpd = make_server(service, args.host, args.port, token=token, limits=limits)
    host, port = httpd.server_address[:2]
    # The first stdout line says where we listen (scripts read it when --port 0),
    # the second which token clients send: the one place it is ever shown, and
    # only when nobody else knows it yet.
    print(f"serving {args.backend} on http://{host}:{port} (OpenAI: /v1/chat/completions, Anthropic: /v1/messages, stats: /stats)", flush=True)
    if told:
        print(f"token: {told} (clients send it as OPENAI_API_KEY / ANTHROPIC_API_KEY)", flush=True)
    else:
        print(f"token: {token} (clients send it as OPENAI_API_KEY / ANTHROPIC_API_KEY; shown only here)", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        service.batches.close()
        httpd.server_close()
        close = getattr(teacher, "close", None)
        if close is not None:
            close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m tripost.serve`: parse `argv`, serve, and return the exit code."""

    hub_offline_by_default()
    p = argparse.ArgumentParser(prog="python -m tripost.serve", description="Serve a teacher over HTTP.")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except TripostError as e:
        print(f"serve-teacher: error: {e}", file=sys.stderr)
        return e.exit_code
