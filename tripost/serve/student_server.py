"""`tripost serve-student`: a loaded student behind an OpenAI-compatible
completions API, the subset tripost's remote engine uses (what vLLM serves).

    GET  /v1/models        the base model's name, and the adapters' names
    POST /v1/load_lora_adapter  {"lora_name", "lora_path"}: load a PEFT LoRA
                           adapter folder at runtime under that name (vLLM's
                           runtime LoRA API); a name loaded before is a 400
                           saying so, as vLLM answers. A folder that fails to
                           load is a 400 and leaves the served model exactly
                           as it was (PEFT injects an adapter's layers before
                           it reads the weights: they are taken out again)
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

What a request may cost (issue 32). Reading is serve-teacher's (bounds.py):
the token before the body, the declared length checked before reading (400,
411, 413 over `--max-body-mb`), the body within `--read-timeout`, at most
`--max-connections` at once. The work is bounded too (`WorkLimits`): at most
`--max-prompts` prompts (4096), `n` up to `--max-n` (128), `max_tokens` up
to `--max-tokens` (32768) and never past the model's context, prompts x n x
max_tokens up to `--max-request-tokens` (2^24), at most 16 stop strings of
at most 1024 characters, and a scored prompt no longer than the context: over
any of these is a 400 before the model is touched. A request whose client
has gone away is dropped while it waits for the model and cancelled between
decode steps (the model's input embedding checks the socket every
CANCEL_CHECK_S seconds), so a client that gave up holds the model no longer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.serve.bounds import CLIENT_GONE, BoundedHandler, BoundedServer, Limits, add_limit_arguments, token_matches
from tripost.serve.failures import HTTPFailure
from tripost.serve.server import TOKEN_ENV, RunningServer, check_token, new_token
from tripost.student.base import SamplingParams

log = logging.getLogger("tripost.serve.student")
MAX_BODY = Limits().max_body  # bytes of a request body read at most, by default (--max-body-mb)
CANCEL_CHECK_S = 0.2  # how often a running request looks whether its client is still there
LOCK_POLL_S = 0.5  # ... and a waiting one
MAX_STOP = 16  # stop strings a request may give
MAX_STOP_CHARS = 1024  # ... and their length

DEFAULT_MAX_PROMPTS = 4096
DEFAULT_MAX_N = 128  # the OpenAI API's own bound on n
DEFAULT_MAX_TOKENS = 32768
DEFAULT_MAX_REQUEST_TOKENS = 2**24  # prompts x n x max_tokens


class RequestError(HTTPFailure):
    """A request serve-student refuses, with its status."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message)


class ClientGone(Exception):
    """The client of a request went away: its work is abandoned."""


@dataclass(frozen=True)
class WorkLimits:
    """What one completions request may ask of the model."""

    max_prompts: int = DEFAULT_MAX_PROMPTS
    max_n: int = DEFAULT_MAX_N
    max_tokens: int = DEFAULT_MAX_TOKENS  # and never more than the model's context
    max_request_tokens: int = DEFAULT_MAX_REQUEST_TOKENS  # prompts x n x max_tokens

    def __post_init__(self) -> None:
        for name in ("max_prompts", "max_n", "max_tokens", "max_request_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise TripostError(f"--{name.replace('_', '-')} must be at least 1, got {v}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "WorkLimits":
        return cls(max_prompts=args.max_prompts, max_n=args.max_n, max_tokens=args.max_tokens,
                   max_request_tokens=args.max_request_tokens)


def _whole(body: dict[str, Any], name: str, default: int, low: int, high: int, why: str) -> int:
    """`body[name]` as a whole number in [low, high] (absent or null: `default`); else a 400."""
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise RequestError(400, f"{name} must be a whole number")
    v = int(v)
    if v < low:
        raise RequestError(400, f"{name} must be at least {low}, got {v}")
    if v > high:
        raise RequestError(400, f"{name} {v} is over this server's limit of {high} ({why})")
    return v


def _number(body: dict[str, Any], name: str, default: float) -> float:
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise RequestError(400, f"{name} must be a finite number")
    return float(v)


class _Snapshot:
    """What loading an adapter may change in the served model, taken before
    the load so that a failed one can be undone completely: each module's
    children (PEFT swaps target layers for LoRA layers), each parameter's
    requires_grad, each module's train/eval mode, and, for a PEFT model, its
    adapters and the active one."""

    def __init__(self, model: Any):
        from peft import PeftModel

        self.model = model
        modules = list(model.modules())
        self.children = [(m, dict(m._modules)) for m in modules]
        self.training = [(m, m.training) for m in modules]
        self.grads = [(p, p.requires_grad) for p in model.parameters()]
        self.peft = isinstance(model, PeftModel)
        self.adapters = set(model.peft_config) if self.peft else set()
        self.active = model.active_adapter if self.peft else None
        self.had_config = [m for m in modules if "peft_config" in vars(m)]

    def restore(self, failed: str) -> Any:
        """The model as it was; raises if it cannot be made so."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        m = self.model
        if self.peft:
            if failed in m.peft_config and failed not in self.adapters:
                with contextlib.suppress(Exception):  # the module tree is put back below whatever happens here
                    m.delete_adapter(failed)
            for name in [k for k in m.peft_config if k not in self.adapters]:
                m.peft_config.pop(name, None)
            if m.active_adapter != self.active:
                m.set_adapter(self.active)
        for module, children in self.children:
            module._modules.clear()
            module._modules.update(children)
        for module, training in self.training:
            module.training = training
        for p, flag in self.grads:
            p.requires_grad_(flag)
        had = {id(x) for x in self.had_config}
        for module in m.modules():  # PEFT copies its config onto the model it wraps
            if "peft_config" in vars(module) and id(module) not in had:
                delattr(module, "peft_config")
        # Checked, not assumed: no adapter layer a plain model did not have, no adapter a PEFT model did not have.
        if not self.peft and any(isinstance(x, BaseTunerLayer) for x in m.modules()):
            raise TripostError("adapter layers are still in the model")
        if self.peft and set(m.peft_config) != self.adapters:
            raise TripostError("the model's adapters are not what they were")
        return m


class StudentService:
    """Answers completions requests with a loaded `Student`, within `work`."""

    def __init__(self, student: Any, name: str, adapter_name: str | None = None, work: WorkLimits | None = None):
        self.student = student
        self.name = name
        self.work = work or WorkLimits()
        # served name -> PEFT's name for the adapter in the model (None: the
        # student was loaded with full trained weights, which are its base too)
        self.adapters: dict[str, str | None] = {}
        if adapter_name and student.adapter is not None:
            self.adapters[adapter_name] = "default" if student.has_lora else None
        self.lock = threading.Lock()
        self._loads = 0  # adapter loads tried: a failed one's PEFT name is never reused
        self.broken: str | None = None  # why the model can no longer be trusted (a failed load not undone)
        # "cancelled" (a client gone, its work dropped), "refused_load" (a failed adapter load, undone)
        self.counts: Counter[str] = Counter()

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

    @contextlib.contextmanager
    def _turn(self, gone: Callable[[], bool] | None) -> Iterator[None]:
        """The model, once the requests before this one are done; dropped
        (ClientGone) if the client goes away while it waits."""
        while not self.lock.acquire(timeout=LOCK_POLL_S):
            if gone is not None and gone():
                self.counts["cancelled"] += 1
                raise ClientGone("the client went away while its request waited for the model")
        try:
            if self.broken:
                raise RequestError(500, f"the served model can no longer be trusted ({self.broken}); restart serve-student")
            if gone is not None and gone():
                self.counts["cancelled"] += 1
                raise ClientGone("the client went away while its request waited for the model")
            yield
        finally:
            self.lock.release()

    @contextlib.contextmanager
    def _cancel_when(self, gone: Callable[[], bool] | None) -> Iterator[None]:
        """Every forward pass (each decode step, each prefill, each scoring
        pass) first looks, at most every CANCEL_CHECK_S seconds, whether the
        client is gone, and then stops the request (ClientGone)."""
        if gone is None:
            yield
            return
        from tripost.student.base import unwrap_model

        inner = unwrap_model(self.student.model)
        get = getattr(inner, "get_input_embeddings", None)
        module = (get() if callable(get) else None) or inner
        last = [time.monotonic()]

        def check(_module: Any, _args: Any) -> None:
            now = time.monotonic()
            if now - last[0] >= CANCEL_CHECK_S:
                last[0] = now
                if gone():
                    raise ClientGone("the client went away while its request was being answered")

        handle = module.register_forward_pre_hook(check)
        try:
            yield
        except ClientGone:
            self.counts["cancelled"] += 1
            raise
        finally:
            handle.remove()

    def load_adapter(self, body: dict[str, Any], gone: Callable[[], bool] | None = None) -> dict[str, Any]:
        """`POST /v1/load_lora_adapter`: add the LoRA adapter folder
        `lora_path` under the name `lora_name`. A folder that fails to load
        leaves the model as it was (`_Snapshot`)."""
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

        with self._turn(gone):
            if name in self.models():
                raise RequestError(400, f"The lora adapter '{name}' has already been loaded.")
            self._loads += 1
            peft_name = f"adapter{max(self._loads, len(self.adapters) + 1)}"
            snapshot = _Snapshot(self.student.model)
            try:  # a folder PEFT cannot read, or an adapter of another base model: one line
                self.student.model = load_adapter(self.student.model, path, name=peft_name)
                self.student.model.eval()
            except Exception as e:
                self.counts["refused_load"] += 1
                try:
                    self.student.model = snapshot.restore(peft_name)
                except Exception as undo:  # noqa: BLE001 - whatever it was, the model is not to be trusted
                    self.broken = f"a failed adapter load could not be undone: {type(undo).__name__}: {undo}"
                    log.error("serve-student: %s", self.broken)
                msg = str(e) if isinstance(e, TripostError) else f"cannot load adapter {path}: {type(e).__name__}: {e}"
                raise RequestError(400, f"lora_path: {msg}") from None
            self.adapters[name] = peft_name
        log.info("loaded adapter %s", name)
        return {"object": "lora_adapter", "id": name, "status": "loaded"}

    def complete(self, body: dict[str, Any], gone: Callable[[], bool] | None = None) -> dict[str, Any]:
        """`POST /v1/completions`, checked against `self.work` before the
        model is touched; `gone()` says whether the client has gone away
        (then ClientGone, and the work stops)."""
        from tripost.student.generate import context_length

        model = str(body.get("model") or "")
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise RequestError(400, "prompt: a string or a non-empty list of strings")
        w = self.work
        if len(prompts) > w.max_prompts:
            raise RequestError(400, f"{len(prompts)} prompts in one request; this server takes at most {w.max_prompts} "
                                    "(--max-prompts): send them in several requests")
        context = context_length(self.student.model)
        scoring = bool(body.get("echo")) and body.get("logprobs") is not None
        params = None if scoring else self._params(body, len(prompts), context)
        if model not in self.models():
            raise RequestError(404, f"model {model!r} not found; this server has {', '.join(self.models())}")
        with self._turn(gone), self._weights(model), self._cancel_when(gone):
            if params is None:
                choices = [self._score(i, p, context) for i, p in enumerate(prompts)]
                completion_tokens = 0
            else:
                choices, completion_tokens = self._generate(prompts, params)
        prompt_tokens = sum(len(self.student.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }

    def _params(self, body: dict[str, Any], n_prompts: int, context: int | None) -> SamplingParams:
        """The request's sampling parameters, within `self.work`; a 400 otherwise."""
        w = self.work
        n = _whole(body, "n", 1, 1, w.max_n, "--max-n")
        top = min(w.max_tokens, context) if context else w.max_tokens
        why = "the model's context" if context and context < w.max_tokens else "--max-tokens"
        max_tokens = _whole(body, "max_tokens", 16, 1, top, why)
        if n_prompts * n * max_tokens > w.max_request_tokens:
            raise RequestError(400, f"this request asks for up to {n_prompts * n * max_tokens} tokens ({n_prompts} prompts x "
                                    f"n={n} x max_tokens={max_tokens}); this server answers at most {w.max_request_tokens} "
                                    "per request (--max-request-tokens): send fewer prompts per request")
        stop = body.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else stop
        if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
            raise RequestError(400, "stop: a string or a list of strings")
        if len(stop) > MAX_STOP or any(len(s) > MAX_STOP_CHARS for s in stop):
            raise RequestError(400, f"stop: at most {MAX_STOP} strings of at most {MAX_STOP_CHARS} characters")
        seed = _whole(body, "seed", 0, -(2**63), 2**63 - 1, "a 64-bit seed")
        try:
            return SamplingParams(n=n, temperature=_number(body, "temperature", 1.0), top_p=_number(body, "top_p", 1.0),
                                  max_new_tokens=max_tokens, stop=tuple(stop), seed=seed)
        except TripostError as e:
            raise RequestError(400, str(e)) from None

    def _generate(self, prompts: list[str], params: SamplingParams) -> tuple[list[dict[str, Any]], int]:
        rows = self.student.sample(prompts, params)
        choices = []
        for i, row in enumerate(rows):
            for g in row:
                choices.append({"index": i * params.n + g.sample_index, "text": g.text, "logprobs": None,
                                "finish_reason": "length" if g.finish_reason == "length" else "stop"})
        return choices, sum(g.n_tokens for row in rows for g in row)

    def _score(self, index: int, text: str, context: int | None = None) -> dict[str, Any]:
        """The echoed prompt with each token's log-probability given the ones
        before it (the first token has none, as in the OpenAI API); a prompt
        longer than the model's context is a 400."""
        import torch

        from tripost.student.tokens import adds_special_tokens, encode_prompt, forward_logits

        tok = self.student.tokenizer
        # Tokenized as encode_prompt does, with the offsets the API reports.
        enc = tok(text, add_special_tokens=adds_special_tokens(tok, text), return_offsets_mapping=True)
        ids = enc["input_ids"] or encode_prompt(tok, text)
        limit = context or self.work.max_tokens
        if len(ids) > limit:
            why = "the model's context" if context else "--max-tokens"
            raise RequestError(400, f"prompt {index} is {len(ids)} tokens, over the {limit} this server scores ({why})")
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


def make_handler(service: StudentService, token: str) -> type[BoundedHandler]:
    class Handler(BoundedHandler):
        """The routes; reading and bounding requests is BoundedHandler's (bounds.py)."""

        server_version = "tripost-serve-student"

        def log_message(self, format: str, *args: Any) -> None:  # the request line only, never headers
            log.debug("%s %s", self.address_string(), format % args)

        def client_gone(self, e: BaseException) -> None:
            log.info("client %s went away (%s)", self.client_address[0], type(e).__name__)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 408: "timeout_error",
                    411: "invalid_request_error", 413: "request_too_large"}.get(status, "server_error")
            self._send(status, {"error": {"message": message, "type": kind}})

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
            routes = {"/v1/completions": service.complete, "/completions": service.complete,
                      "/v1/load_lora_adapter": service.load_adapter, "/load_lora_adapter": service.load_adapter}
            if path not in routes:
                self._error(404, f"no route {path} (this server answers /v1/completions and /v1/load_lora_adapter)")
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
                self._error(e.status, str(e))
                return
            except Exception as e:  # one bad request must not end the server
                log.exception("completions request failed")
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
                         work: WorkLimits | None = None) -> RunningStudentServer:
    """Serve `student` in a daemon thread (port 0: a free one), reading and
    doing no more than `limits` and `work` allow (defaults: `Limits()`, `WorkLimits()`)."""
    service = StudentService(student, name, adapter_name, work=work)
    token = token if token is not None else new_token()
    try:
        httpd = BoundedServer((host, port), make_handler(service, token), limits)
    except OSError as e:
        raise TripostError(f"serve-student: cannot listen on {host}:{port} ({e.strerror})") from None
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
    add_limit_arguments(p)
    p.add_argument("--max-prompts", type=int, default=DEFAULT_MAX_PROMPTS, metavar="N",
                   help=f"most prompts in one completions request (default {DEFAULT_MAX_PROMPTS})")
    p.add_argument("--max-n", type=int, default=DEFAULT_MAX_N, metavar="N",
                   help=f"most completions per prompt, `n` (default {DEFAULT_MAX_N})")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N",
                   help=f"largest `max_tokens`; never more than the model's context either (default {DEFAULT_MAX_TOKENS})")
    p.add_argument("--max-request-tokens", type=int, default=DEFAULT_MAX_REQUEST_TOKENS, metavar="N",
                   help=f"most tokens one request may ask for, prompts x n x max_tokens (default {DEFAULT_MAX_REQUEST_TOKENS})")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit code."""
    from tripost.student.load import check_adapter_dir, load_student

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


__all__ = ["RunningStudentServer", "StudentService", "WorkLimits", "add_arguments", "run", "start_student_server"]
