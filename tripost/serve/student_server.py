"""`tripost serve-student`: a loaded student behind an OpenAI-compatible
completions API, the subset tripost's remote engine uses (what vLLM serves).

    GET  /v1/models        the base model's name, and the adapters' names
    POST /v1/load_lora_adapter  {"lora_name", "lora_path"}: load a PEFT LoRA
                           adapter folder at runtime under that name (vLLM's
                           runtime LoRA API); a name loaded before is a 400
                           saying so, as vLLM answers
    POST /v1/completions   prompt (a string or a list), n, temperature, top_p,
                           max_tokens, stop, seed: sampled by the in-process
                           engine, so a request equals the in-process call with
                           the same prompts and seed; with `echo` and
                           `logprobs`, the prompt's token log-probabilities
                           instead (tokens, token_logprobs, text_offset), nothing
                           generated: what scoring needs

`model` names the base model or a LoRA adapter: the one loaded with
`--adapter` (as vLLM's `--lora-modules NAME=DIR`) or one loaded since; PEFT
holds them all on the one base and the request's adapter is made active for
it, the base is served with adapters switched off. One request is answered
at a time (one model in memory).
Requests carry the server's token as the API key, as with serve-teacher.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import logging
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.serve.server import TOKEN_ENV, RunningServer, check_token, new_token
from tripost.student.base import SamplingParams

log = logging.getLogger("tripost.serve.student")
MAX_BODY = 64 * 1024 * 1024  # bytes of a request body we read at most


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class StudentService:
    """Answers completions requests with a loaded `Student`."""

    def __init__(self, student: Any, name: str, adapter_name: str | None = None):
        self.student = student
        self.name = name
        # served name -> PEFT's name for the adapter in the model (None: the
        # student was loaded with full trained weights, which are its base too)
        self.adapters: dict[str, str | None] = {}
        if adapter_name and student.adapter is not None:
            self.adapters[adapter_name] = "default" if student.has_lora else None
        self.lock = threading.Lock()

    def models(self) -> list[str]:
        return [self.name, *self.adapters]

    def _weights(self, model: str) -> Any:
        """A context in which the student is the model the request names."""
        if model not in self.models():
            raise RequestError(404, f"model {model!r} not found; this server has {', '.join(self.models())}")
        if model == self.name:
            return self.student.model.disable_adapter() if self.student.has_lora else contextlib.nullcontext()
        peft_name = self.adapters[model]
        if peft_name is not None:
            self.student.model.set_adapter(peft_name)
        return contextlib.nullcontext()

    def load_adapter(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/load_lora_adapter`: add the LoRA adapter folder
        `lora_path` under the name `lora_name`."""
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not name.strip() or not isinstance(path, str) or not path:
            raise RequestError(400, "load_lora_adapter takes {\"lora_name\": NAME, \"lora_path\": FOLDER}")
        if not (Path(path) / "adapter_config.json").is_file():
            raise RequestError(400, f"lora_path {path}: no PEFT LoRA adapter there (adapter_config.json); serve-student "
                                    "loads LoRA adapters at runtime, not full weights")
        if self.student.adapter is not None and not self.student.has_lora:
            raise RequestError(400, "this server's student was loaded with full trained weights; start one on the base "
                                    "model to serve LoRA adapters of it")
        from tripost.student.load import load_adapter

        with self.lock:
            if name in self.models():
                raise RequestError(400, f"The lora adapter '{name}' has already been loaded.")
            peft_name = f"adapter{len(self.adapters) + 1}"
            try:  # a folder PEFT cannot read, or an adapter of another base model: one line
                self.student.model = load_adapter(self.student.model, path, name=peft_name)
            except TripostError as e:
                raise RequestError(400, f"lora_path: {e}") from None
            self.student.model.eval()
            self.adapters[name] = peft_name
        log.info("loaded adapter %s", name)
        return {"object": "lora_adapter", "id": name, "status": "loaded"}

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        model = str(body.get("model") or "")
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise RequestError(400, "prompt: a string or a non-empty list of strings")
        with self.lock, self._weights(model):
            if body.get("echo") and body.get("logprobs") is not None:
                choices = [self._score(i, p) for i, p in enumerate(prompts)]
                completion_tokens = 0
            else:
                choices, completion_tokens = self._generate(prompts, body)
        prompt_tokens = sum(len(self.student.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }

    def _generate(self, prompts: list[str], body: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        stop = body.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop)
        try:
            params = SamplingParams(n=int(body.get("n") or 1), temperature=float(body.get("temperature", 1.0)),
                                    top_p=float(body.get("top_p", 1.0)), max_new_tokens=int(body.get("max_tokens") or 16),
                                    stop=stop, seed=int(body.get("seed") or 0))
        except (TypeError, ValueError, TripostError) as e:
            raise RequestError(400, str(e)) from None
        rows = self.student.sample(prompts, params)
        choices = []
        for i, row in enumerate(rows):
            for g in row:
                choices.append({"index": i * params.n + g.sample_index, "text": g.text, "logprobs": None,
                                "finish_reason": "length" if g.finish_reason == "length" else "stop"})
        return choices, sum(g.n_tokens for row in rows for g in row)

    def _score(self, index: int, text: str) -> dict[str, Any]:
        """The echoed prompt with each token's log-probability given the ones
        before it (the first token has none, as in the OpenAI API)."""
        import torch

        from tripost.student.tokens import adds_special_tokens, encode_prompt, forward_logits

        tok = self.student.tokenizer
        # Tokenized as encode_prompt does, with the offsets the API reports.
        enc = tok(text, add_special_tokens=adds_special_tokens(tok, text), return_offsets_mapping=True)
        ids = enc["input_ids"] or encode_prompt(tok, text)
        offsets = [int(a) for a, _ in enc.get("offset_mapping") or [(0, 0)] * len(ids)]
        x = torch.tensor([ids], dtype=torch.long, device=self.student.device)
        attention = torch.ones_like(x)
        positions = torch.arange(len(ids), device=x.device)[None]
        with torch.no_grad():
            logp = torch.log_softmax(forward_logits(self.student.model, x, attention, positions, len(ids))[0].float(), dim=-1)
        values: list[float | None] = [None] + [float(logp[k - 1, ids[k]]) for k in range(1, len(ids))]
        return {"index": index, "text": text, "finish_reason": "length",
                "logprobs": {"tokens": tok.convert_ids_to_tokens(ids), "token_logprobs": values, "text_offset": offsets,
                             "top_logprobs": None}}


def make_handler(service: StudentService, token: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "tripost-serve-student"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # the request line only, never headers
            log.debug("%s %s", self.address_string(), format % args)

        def _authorized(self) -> bool:
            scheme, _, value = (self.headers.get("authorization") or "").strip().partition(" ")
            presented = value.strip() if scheme.lower() == "bearer" else ""
            return hmac.compare_digest(presented.encode(), token.encode())

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}.get(status, "server_error")
            self._send(status, {"error": {"message": message, "type": kind}})

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path in ("", "/health"):
                self._send(200, {"status": "ok"})
            elif not self._authorized():
                self._error(401, "missing or wrong token: send serve-student's token as the API key")
            elif path in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "tripost"} for m in service.models()]})
            else:
                self._error(404, f"no route {path}")

        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                self._error(400, f"request body over {MAX_BODY} bytes")
                return
            raw = self.rfile.read(length) if length else b""
            if not self._authorized():
                self._error(401, "missing or wrong token: send serve-student's token as the API key")
                return
            routes = {"/v1/completions": service.complete, "/completions": service.complete,
                      "/v1/load_lora_adapter": service.load_adapter, "/load_lora_adapter": service.load_adapter}
            if path not in routes:
                self._error(404, f"no route {path} (this server answers /v1/completions and /v1/load_lora_adapter)")
                return
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise RequestError(400, "the body must be a JSON object")
                self._send(200, routes[path](body))
            except json.JSONDecodeError:
                self._error(400, "the body is not JSON")
            except RequestError as e:
                self._error(e.status, str(e))
            except Exception as e:  # one bad request must not end the server
                log.exception("completions request failed")
                self._error(500, f"{type(e).__name__}: {e}")

    return Handler


class RunningStudentServer(RunningServer):
    """serve-student in a background thread; `url` is the API base clients use."""

    @property
    def url(self) -> str:
        return super().url + "/v1"


def start_student_server(student: Any, *, name: str, adapter_name: str | None = None, token: str | None = None,
                         host: str = "127.0.0.1", port: int = 0) -> RunningStudentServer:
    """Serve `student` in a daemon thread (port 0: a free one)."""
    service = StudentService(student, name, adapter_name)
    token = token if token is not None else new_token()
    httpd = ThreadingHTTPServer((host, port), make_handler(service, token))
    return RunningStudentServer.start(httpd, service, token, "tripost-serve-student")


# ------------------------------------------------------------- the verb ---


def add_arguments(p: argparse.ArgumentParser) -> None:
    from tripost.student.load import PRECISIONS
    from tripost.student.spec import EMBEDDED_NAME, SPEC_HELP

    p.add_argument("--student", default=EMBEDDED_NAME, metavar="SPEC", help=f"{SPEC_HELP} (default: {EMBEDDED_NAME})")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="student weights precision (default auto)")
    p.add_argument("--name", default=None, metavar="NAME", help="the base model's name in requests (default: the student spec)")
    p.add_argument("--adapter", default=None, metavar="DIR", help="a PEFT adapter folder to serve as well")
    p.add_argument("--adapter-name", default=None, metavar="NAME", help="the adapter's name in requests (default: the folder's name)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--token", default=None, metavar="TOKEN",
                   help=f"the token clients send as the API key (default: ${TOKEN_ENV}, else a new one, printed once)")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit code."""
    from tripost.student.load import check_adapter_dir, load_student

    if not 0 <= args.port <= 65535:
        raise TripostError(f"--port must be 0-65535, got {args.port}")
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
    server = start_student_server(student, name=name, adapter_name=adapter_name, token=token, host=args.host, port=args.port)
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


__all__ = ["RunningStudentServer", "StudentService", "add_arguments", "run", "start_student_server"]
