"""`tripost serve-student`: a loaded student behind an OpenAI-compatible
completions API, the subset tripost's remote engine uses, with vLLM's rules
where they decide what a client gets, so that tests against it catch what
would go wrong against vLLM (the vLLM source each rule comes from is cited
where it is applied).

    GET  /v1/models        the base model's name, and the adapters' names
    POST /v1/load_lora_adapter  {"lora_name", "lora_path", "load_inplace"}:
                           load a PEFT LoRA adapter folder at runtime under
                           that name (vLLM's runtime LoRA API). A name loaded
                           before is vLLM's 400 unless `load_inplace`, which
                           reads the folder again (an adapter retrained at the
                           same path serves its new weights); a folder with no
                           adapter is vLLM's 404 "No adapter found". A folder
                           that fails to load is a 400 and leaves the served
                           model exactly as it was (PEFT injects an adapter's
                           layers before it reads the weights: they are taken
                           out again). 200 is vLLM's plain-text "Success: ..."
    POST /v1/unload_lora_adapter  {"lora_name"}: drop that adapter (vLLM's 404
                           when it is not loaded)
    POST /v1/completions   prompt, n, temperature, top_p, max_tokens, stop,
                           seed: sampled by the in-process engine, so a
                           request equals the in-process call with the same
                           prompts and seed. vLLM's forms and rules:
                           - `prompt` is a string, a list of strings, a list
                             of token ids (one prompt) or a list of such
                             lists; at most `--max-prompts` of them (1,024,
                             vLLM's VLLM_MAX_COMPLETION_PROMPTS), else vLLM's
                             400;
                           - a text prompt is tokenized with
                             `add_special_tokens` (true when absent): a
                             tokenizer that adds a BOS adds one even before a
                             prompt whose text starts with BOS, as vLLM does;
                           - `prompt_logprobs` (0 to 20, vLLM's default
                             --max-logprobs): each choice's prompt_logprobs,
                             None for the first token, then {token id:
                             {logprob, rank, decoded_token}} for the prompt's
                             token and the `prompt_logprobs` likeliest;
                           - `echo` puts the prompt's text before the
                             choice's; with `logprobs` and max_tokens 0, the
                             prompt's tokens, token_logprobs, top_logprobs
                             and text_offset as vLLM computes them: each token
                             decoded alone (or "token_id:N" with
                             `return_tokens_as_token_ids`), the offsets a
                             running sum of those lengths, so a character
                             split across tokens shifts every later offset.
                           Log-probabilities of generated tokens are not
                           served (400): score a sequence as a prompt.

`model` names the base model or a LoRA adapter: the one loaded with
`--adapter` (as vLLM's `--lora-modules NAME=DIR`) or one loaded since; PEFT
holds them all on the one base and the request's adapter is made active for
it, the base is served with adapters switched off. One request is answered
at a time (one model in memory). `start_student_server(runtime_lora=False)`
serves no LoRA routes (404), as vLLM without VLLM_ALLOW_RUNTIME_LORA_UPDATING.
Errors have vLLM's shape: {"error": {"message", "type", "param", "code"}}.
Requests carry the server's token as the API key, as with serve-teacher.

What a request may cost (issue 32). Reading is serve-teacher's (bounds.py):
the token before the body, the declared length checked before reading (400,
411, 413 over `--max-body-mb`), the body within `--read-timeout`, at most
`--max-connections` at once. The work is bounded too (`WorkLimits`): at most
`--max-prompts` prompts (1024), `n` up to `--max-n` (128), `max_tokens` up
to `--max-tokens` (32768) and never past the model's context, prompts x n x
max_tokens up to `--max-request-tokens` (2^24), at most 16 stop strings of
at most 1024 characters, token ids within the vocabulary, and a scored
prompt no longer than the context: over any of these is a 400 before the
model is touched. A request whose client has gone away is dropped while it
waits for the model and cancelled between decode steps (the model's input
embedding checks the socket every CANCEL_CHECK_S seconds), so a client that
gave up holds the model no longer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Re-exported: what was defined here before the split, imported from here still.
from tripost.errors import TripostError
from tripost.serve.bounds import BoundedHandler, BoundedServer, CLIENT_GONE, Limits, add_limit_arguments, token_matches
from tripost.serve.failures import HTTPFailure
from tripost.serve.running import RunningServer, TOKEN_ENV, check_token, new_token
from tripost.serve.student_model import SCORE_BATCH_TOKENS
from tripost.serve.student_requests import (ClientGone, DEFAULT_COMPLETION_TOKENS, DEFAULT_MAX_N, DEFAULT_MAX_PROMPTS,
                                            DEFAULT_MAX_REQUEST_TOKENS, DEFAULT_MAX_TOKENS, MAX_LOGPROBS, MAX_STOP, MAX_STOP_CHARS,
                                            RequestError, VLLM_ERROR_TYPES, WorkLimits)
from tripost.serve.student_service import CANCEL_CHECK_S, LOCK_POLL_S, StudentService
from tripost.student.load import PRECISIONS, check_adapter_dir, load_student
from tripost.student.spec import EMBEDDED_NAME, SPEC_HELP

log = logging.getLogger("tripost.serve.student")
MAX_BODY = Limits().max_body  # bytes of a request body read at most, by default (--max-body-mb)


def make_handler(service: StudentService, token: str) -> type[BoundedHandler]:
    class Handler(BoundedHandler):
        """The routes; reading and bounding requests is BoundedHandler's (bounds.py)."""

        server_version = "tripost-serve-student"

        def log_message(self, format: str, *args: Any) -> None:  # the request line only, never headers
            log.debug("%s %s", self.address_string(), format % args)

        def client_gone(self, e: BaseException) -> None:
            log.info("client %s went away (%s)", self.client_address[0], type(e).__name__)

        def _send(self, status: int, payload: dict[str, Any] | str) -> None:
            # vLLM's LoRA routes answer 200 with a plain text (Response(content=...), lora/api_router.py).
            text = isinstance(payload, str)
            data = (payload if text else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("content-type", "text/plain; charset=utf-8" if text else "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, param: str | None = None) -> None:
            # vLLM's ErrorResponse: {"error": {"message", "type", "param", "code"}}, code the HTTP status.
            kind = VLLM_ERROR_TYPES.get(status) or {401: "authentication_error", 408: "timeout_error",
                                                    413: "request_too_large"}.get(status, "invalid_request_error")
            self._send(status, {"error": {"message": message, "type": kind, "param": param, "code": status}})

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path in ("", "/health"):
                self._send(200, {"status": "ok"})
            elif not token_matches(self.headers, token):
                self._error(401, "missing or wrong token: send serve-student's token as the API key")
            elif path in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "tripost"} for m in service.models()]})
            else:
                self._error(404, f"no route {path}")

        def do_POST(self) -> None:
            # The token first, then the route, then the declared length, and only then the body (bounds.py).
            path = self.path.split("?")[0].rstrip("/")
            if not token_matches(self.headers, token):
                self._error(401, "missing or wrong token: send serve-student's token as the API key")
                return
            routes: dict[str, Callable[..., Any]] = {"/v1/completions": service.complete, "/completions": service.complete}
            if service.runtime_lora:  # vLLM registers these only with VLLM_ALLOW_RUNTIME_LORA_UPDATING (lora/api_router.py)
                routes.update({"/v1/load_lora_adapter": service.load_adapter, "/load_lora_adapter": service.load_adapter,
                               "/v1/unload_lora_adapter": service.unload_adapter, "/unload_lora_adapter": service.unload_adapter})
            if path not in routes:
                self._error(404, f"no route {path} (this server answers {', '.join(r for r in routes if r.startswith('/v1/'))})")
                return
            try:
                raw = self.read_body()
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise RequestError(400, "the body must be a JSON object")
                payload = routes[path](body, gone=self.peer_closed)
            except CLIENT_GONE:
                raise  # handle() says so: nobody to answer
            except ClientGone as e:
                log.info("client %s went away; its request to %s was dropped (%s)", self.client_address[0], path, e)
                self.close_connection = True
                return
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                self._error(400, "the body is not JSON")
                return
            except HTTPFailure as e:
                self._error(e.status, str(e), getattr(e, "param", None))
                return
            except Exception as e:  # one bad request must not end the server
                log.exception("request to %s failed", path)
                self._error(500, f"{type(e).__name__}: {e}")
                return
            self._send(200, payload)

    return Handler


class RunningStudentServer(RunningServer):
    """serve-student in a background thread; `url` is the API base clients use."""

    @property
    def url(self) -> str:
        return super().url + "/v1"


def start_student_server(student: Any, *, name: str, adapter_name: str | None = None, token: str | None = None,
                         host: str = "127.0.0.1", port: int = 0, limits: Limits | None = None,
                         work: WorkLimits | None = None, runtime_lora: bool = True) -> RunningStudentServer:
    """Serve `student` in a daemon thread (port 0: a free one), reading and
    doing no more than `limits` and `work` allow (defaults: `Limits()`,
    `WorkLimits()`); `runtime_lora=False` serves no LoRA routes, as vLLM
    without VLLM_ALLOW_RUNTIME_LORA_UPDATING."""
    service = StudentService(student, name, adapter_name, work=work, runtime_lora=runtime_lora)
    token = token if token is not None else new_token()
    try:
        httpd = BoundedServer((host, port), make_handler(service, token), limits)
    except OSError as e:
        raise TripostError(f"serve-student: cannot listen on {host}:{port} ({e.strerror})") from None
    return RunningStudentServer.start(httpd, service, token, "tripost-serve-student")


# ------------------------------------------------------------- the verb ---


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--student", default=EMBEDDED_NAME, metavar="SPEC", help=f"{SPEC_HELP} (default: {EMBEDDED_NAME})")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="student weights precision (default auto)")
    p.add_argument("--name", default=None, metavar="NAME", help="the base model's name in requests (default: the student spec)")
    p.add_argument("--adapter", default=None, metavar="DIR", help="a PEFT adapter folder to serve as well")
    p.add_argument("--adapter-name", default=None, metavar="NAME", help="the adapter's name in requests (default: the folder's name)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--token", default=None, metavar="TOKEN",
                   help=f"the token clients send as the API key (default: ${TOKEN_ENV}, else a new one, printed once)")
    add_limit_arguments(p)
    p.add_argument("--max-prompts", type=int, default=DEFAULT_MAX_PROMPTS, metavar="N",
                   help=f"most prompts in one completions request; more is vLLM's 400 (default {DEFAULT_MAX_PROMPTS}, "
                        "vLLM's VLLM_MAX_COMPLETION_PROMPTS)")
    p.add_argument("--max-n", type=int, default=DEFAULT_MAX_N, metavar="N",
                   help=f"most completions per prompt, `n` (default {DEFAULT_MAX_N})")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N",
                   help=f"largest `max_tokens`; never more than the model's context either (default {DEFAULT_MAX_TOKENS})")
    p.add_argument("--max-request-tokens", type=int, default=DEFAULT_MAX_REQUEST_TOKENS, metavar="N",
                   help=f"most tokens one request may ask for, prompts x n x max_tokens (default {DEFAULT_MAX_REQUEST_TOKENS})")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit code."""

    if not 0 <= args.port <= 65535:
        raise TripostError(f"--port must be 0-65535, got {args.port}")
    limits, work = Limits.from_args(args), WorkLimits.from_args(args)  # before the model loads
    if args.adapter_name and not args.adapter:
        raise TripostError("--adapter-name goes with --adapter DIR")
    if args.adapter:
        check_adapter_dir(args.adapter)
    token = check_token(args.token, "--token") if args.token else (check_token(os.environ[TOKEN_ENV], TOKEN_ENV) if os.environ.get(TOKEN_ENV) else new_token())
    student = load_student(args.student, precision=args.precision, adapter=args.adapter)
    name = args.name or args.student
    adapter_name = (args.adapter_name or Path(args.adapter).resolve().name) if args.adapter else None
    if adapter_name == name:
        raise TripostError(f"--adapter-name {adapter_name!r} is the base model's name too; give another")
    server = start_student_server(student, name=name, adapter_name=adapter_name, token=token, host=args.host, port=args.port,
                                  limits=limits, work=work)
    print(f"serving {', '.join(server.service.models())} on {server.url} (completions: {server.url}/completions)", flush=True)
    if not args.token and not os.environ.get(TOKEN_ENV):
        print(f"token: {token} (clients send it as the API key: TRIPOST_ENGINE_KEY; shown only here)", flush=True)
    try:
        while server.thread.is_alive():
            server.thread.join(timeout=1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


__all__ = [
    "CANCEL_CHECK_S", "DEFAULT_COMPLETION_TOKENS", "DEFAULT_MAX_N", "DEFAULT_MAX_PROMPTS", "DEFAULT_MAX_REQUEST_TOKENS",
    "DEFAULT_MAX_TOKENS", "LOCK_POLL_S", "MAX_BODY", "MAX_LOGPROBS", "MAX_STOP", "MAX_STOP_CHARS", "SCORE_BATCH_TOKENS",
    "VLLM_ERROR_TYPES", "ClientGone", "RequestError", "RunningStudentServer", "StudentService", "WorkLimits",
    "add_arguments", "make_handler", "run", "start_student_server",
]
