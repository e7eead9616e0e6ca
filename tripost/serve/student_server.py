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
import contextlib
import copy
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
from tripost.student.base import Generation, SamplingParams, unwrap_model
from tripost.student.remote import MAX_COMPLETION_PROMPTS

log = logging.getLogger("tripost.serve.student")
MAX_BODY = Limits().max_body  # bytes of a request body read at most, by default (--max-body-mb)
CANCEL_CHECK_S = 0.2  # how often a running request looks whether its client is still there
LOCK_POLL_S = 0.5  # ... and a waiting one
MAX_STOP = 16  # stop strings a request may give
MAX_STOP_CHARS = 1024  # ... and their length

DEFAULT_MAX_PROMPTS = MAX_COMPLETION_PROMPTS  # vLLM's cap (VLLM_MAX_COMPLETION_PROMPTS), which RemoteStudent keeps to
DEFAULT_MAX_N = 128  # the OpenAI API's own bound on n
DEFAULT_MAX_TOKENS = 32768
DEFAULT_MAX_REQUEST_TOKENS = 2**24  # prompts x n x max_tokens
# Most log-probabilities a request may ask for per position: vLLM's default
# --max-logprobs (ModelConfig.max_logprobs = 20); -1 (all) is over it too.
MAX_LOGPROBS = 20
SCORE_BATCH_TOKENS = 2048  # positions (padded) in one scoring forward pass: as many rows of vocabulary-wide logits
DEFAULT_COMPLETION_TOKENS = 16  # max_tokens when a request leaves it out (vLLM's CompletionRequest, as OpenAI's)
# vLLM's error type for each status serve-student answers with vLLM's meaning
# (create_error_response in vllm/entrypoints/openai/models/serving.py);
# the others keep the types bounds.py gives them.
VLLM_ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError"}


class RequestError(HTTPFailure):
    """A request serve-student refuses, with its status and, as vLLM names
    it, the request field at fault (`param`)."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(status, message, VLLM_ERROR_TYPES.get(status, "BadRequestError"))
        self.param = param


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
        raise RequestError(400, f"{name} must be a whole number", name)
    v = int(v)
    if v < low:
        raise RequestError(400, f"{name} must be at least {low}, got {v}", name)
    if v > high:
        raise RequestError(400, f"{name} {v} is over this server's limit of {high} ({why})", name)
    return v


def _number(body: dict[str, Any], name: str, default: float) -> float:
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise RequestError(400, f"{name} must be a finite number", name)
    return float(v)


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise RequestError(400, f"{name} must be true or false", name)
    return v


def _logprob_count(body: dict[str, Any], name: str) -> int | None:
    """`logprobs` / `prompt_logprobs`: None (not asked) or how many of the
    likeliest tokens to return per position besides the one there."""
    if body.get(name) is None:
        return None
    return _whole(body, name, 0, 0, MAX_LOGPROBS, "vLLM's default --max-logprobs")


def _is_id(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _prompt_list(prompt: Any, max_prompts: int) -> list[str | list[int]]:
    """A request's prompts, in vLLM's forms (CompletionRequest.prompt): a
    string, a list of strings, a list of token ids (one prompt) or a list of
    such lists. More than `max_prompts` is vLLM's 400, checked first as vLLM
    does (validate_prompt_list_length, before the fields are parsed)."""
    if isinstance(prompt, list) and prompt and not all(_is_id(x) for x in prompt) and len(prompt) > max_prompts:
        # vLLM's message, with the flag that sets the cap here in place of its environment variable.
        raise RequestError(400, f"prompt list length {len(prompt)} exceeds the maximum allowed count of {max_prompts}. "
                                "To increase this limit, start serve-student with a larger --max-prompts.", "prompt")
    if isinstance(prompt, str):
        prompts: list[Any] = [prompt]
    elif isinstance(prompt, list) and prompt and all(_is_id(x) for x in prompt):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and (all(isinstance(x, str) for x in prompt) or
                                                  all(isinstance(x, list) and x and all(_is_id(t) for t in x) for x in prompt)):
        prompts = list(prompt)
    else:
        raise RequestError(400, "prompt: a string, a list of strings, a list of token ids or a non-empty list of lists "
                                "of token ids", "prompt")
    if any(p == "" for p in prompts):
        raise RequestError(400, "prompt: an empty string has nothing to complete from", "prompt")
    return prompts


class _GivenIds:
    """The student's tokenizer, except that the placeholder texts serve-student
    hands the sampler (`placeholder`) stand for token ids made already, by
    vLLM's rules (`StudentService._encode`): the sampler encodes its prompts
    through the tokenizer, and this way it starts from exactly those ids.
    Everything else is the tokenizer's own."""

    def __init__(self, tokenizer: Any, ids: list[list[int]]):
        self._tokenizer = tokenizer
        self._ids = {self.placeholder(k): x for k, x in enumerate(ids)}

    @staticmethod
    def placeholder(k: int) -> str:
        return f"\x00serve-student prompt {k}\x00"

    def __call__(self, text: Any, *args: Any, **kw: Any) -> Any:
        if isinstance(text, str) and text in self._ids:
            return {"input_ids": list(self._ids[text])}
        return self._tokenizer(text, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


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

    def __init__(self, student: Any, name: str, adapter_name: str | None = None, work: WorkLimits | None = None,
                 runtime_lora: bool = True):
        self.student = student
        self.name = name
        self.work = work or WorkLimits()
        self.runtime_lora = runtime_lora  # the LoRA routes are served (vLLM: VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)
        # The student was loaded with full trained weights: they are its base, no LoRA adapter can go beside them.
        self.full_weights = student.adapter is not None and not student.has_lora
        # served name -> PEFT's name for the adapter in the model (None: the
        # student was loaded with full trained weights, which are its base too)
        self.adapters: dict[str, str | None] = {}
        if adapter_name and student.adapter is not None:
            self.adapters[adapter_name] = "default" if student.has_lora else None
        self.lock = threading.Lock()
        self._loads = 0  # adapter loads tried: a failed one's PEFT name is never reused
        self.broken: str | None = None  # why the model can no longer be trusted (a failed load not undone)
        # "completions" (requests answered or refused there), "cancelled" (a client gone, its work dropped),
        # "refused_load" (a failed adapter load, undone), "unloaded" (adapters dropped on request)
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

    def load_adapter(self, body: dict[str, Any], gone: Callable[[], bool] | None = None) -> str:
        """`POST /v1/load_lora_adapter`: add the LoRA adapter folder
        `lora_path` under the name `lora_name`, as vLLM's
        OpenAIServingModels.load_lora_adapter answers
        (vllm/entrypoints/openai/models/serving.py): a name loaded before is a
        400 unless `load_inplace`, which reads the folder again and serves the
        new weights under the name. A folder that fails to load leaves the
        model as it was (`_Snapshot`); with `load_inplace` the old weights
        stay served then."""
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not name.strip() or not isinstance(path, str) or not path:
            raise RequestError(400, "Both 'lora_name' and 'lora_path' must be provided.", "lora_name")
        inplace = _flag(body, "load_inplace", False)
        if name == self.name:
            raise RequestError(400, f"'{name}' is the base model's name here; give the adapter another", "lora_name")
        if not (Path(path) / "adapter_config.json").is_file():
            # vLLM's LoRA loader says so (vllm/lora/worker_manager.py), and vLLM answers it 404.
            raise RequestError(404, f"Loading lora {name} failed: No adapter found for {path} (serve-student loads PEFT "
                                    "LoRA adapter folders, with an adapter_config.json)", "lora_path")
        if self.full_weights:
            raise RequestError(400, "this server's student was loaded with full trained weights; start one on the base "
                                    "model to serve LoRA adapters of it")
        from tripost.student.load import load_adapter

        with self._turn(gone):
            if name in self.adapters and not inplace:
                raise RequestError(400, f"The lora adapter '{name}' has already been loaded. If you want to load the "
                                        "adapter in place, set 'load_inplace' to True.", "lora_name")
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
                raise RequestError(400, f"lora_path: {msg}", "lora_path") from None
            old = self.adapters.get(name)
            self.adapters[name] = peft_name
            if old is not None:  # reloaded in place: the weights read before go (made inactive first, as PEFT warns otherwise)
                self.student.model.set_adapter(peft_name)
                self.student.model.delete_adapter(old)
        log.info("%s adapter %s from %s", "reloaded" if old is not None else "loaded", name, path)
        return f"Success: LoRA adapter '{name}' added successfully."

    def unload_adapter(self, body: dict[str, Any], gone: Callable[[], bool] | None = None) -> str:
        """`POST /v1/unload_lora_adapter`: drop the adapter `lora_name`, as
        vLLM's OpenAIServingModels.unload_lora_adapter answers (404 when it is
        not loaded). The last LoRA adapter's going leaves the plain base model."""
        name = body.get("lora_name")
        if not isinstance(name, str) or not name:
            raise RequestError(400, "'lora_name' needs to be provided to unload a LoRA adapter.", "lora_name")
        with self._turn(gone):
            if name not in self.adapters:
                raise RequestError(404, f"The lora adapter '{name}' cannot be found.", "lora_name")
            peft_name = self.adapters[name]
            if peft_name is None:
                raise RequestError(400, f"'{name}' is the full trained weights this server was started with; it cannot "
                                        "be unloaded", "lora_name")
            del self.adapters[name]
            rest = [p for p in self.adapters.values() if p is not None]
            if rest:
                self.student.model.set_adapter(rest[0])  # never delete the active one (PEFT warns)
                self.student.model.delete_adapter(peft_name)
            else:
                # PEFT can delete its last adapter but leaves a wrapper with none; the base model is what remains.
                self.student.model = self.student.model.unload()
                for module in self.student.model.modules():  # PEFT copies its config onto the model it wraps
                    if "peft_config" in vars(module):
                        delattr(module, "peft_config")
            self.counts["unloaded"] += 1
        log.info("unloaded adapter %s", name)
        return f"Success: LoRA adapter '{name}' removed successfully."

    def complete(self, body: dict[str, Any], gone: Callable[[], bool] | None = None) -> dict[str, Any]:
        """`POST /v1/completions`, checked against `self.work` before the
        model is touched; `gone()` says whether the client has gone away
        (then ClientGone, and the work stops)."""
        from tripost.student.generate import context_length

        self.counts["completions"] += 1
        model = str(body.get("model") or "")
        w = self.work
        prompts = _prompt_list(body.get("prompt"), w.max_prompts)
        context = context_length(self.student.model)
        echo = _flag(body, "echo", False)
        logprobs, prompt_logprobs = _logprob_count(body, "logprobs"), _logprob_count(body, "prompt_logprobs")
        as_ids = _flag(body, "return_tokens_as_token_ids", False)
        n, params = self._params(body, len(prompts), context, echo)
        if logprobs is not None and params is not None:
            raise RequestError(400, "serve-student returns no log-probabilities of generated tokens: score a sequence as "
                                    "a prompt (prompt_logprobs, or echo with logprobs and max_tokens 0)", "logprobs")
        add_special = _flag(body, "add_special_tokens", True)
        ids = [self._encode(i, p, add_special) for i, p in enumerate(prompts)]
        scored = logprobs is not None or prompt_logprobs is not None
        if scored:
            limit = context or w.max_tokens
            why = "the model's context" if context else "--max-tokens"
            for i, x in enumerate(ids):
                if len(x) > limit:
                    raise RequestError(400, f"prompt {i} is {len(x)} tokens, over the {limit} this server scores ({why})", "prompt")
        if model not in self.models():
            raise RequestError(404, f"model {model!r} not found; this server has {', '.join(self.models())}", "model")
        top = max(logprobs or 0, prompt_logprobs or 0)
        with self._turn(gone), self._weights(model), self._cancel_when(gone):
            scores = self._score(ids, top) if scored else []
            rows = self._sample(ids, params, scores) if params is not None else []
        tok = self.student.tokenizer
        choices = []
        for i, x in enumerate(ids):
            p = prompts[i]
            # vLLM echoes a prompt given as ids decoded (serving_completion: prompt_text + output text).
            echoed = (p if isinstance(p, str) else tok.decode(x)) if echo else ""
            for j in range(n):
                g = rows[i][j] if rows else None
                choice: dict[str, Any] = {"index": i * n + j, "text": echoed + (g.text if g else ""), "logprobs": None,
                                          "finish_reason": "length" if g is None or g.finish_reason == "length" else "stop",
                                          "stop_reason": None}
                if logprobs is not None:
                    choice["logprobs"] = self._echo_logprobs(x, scores[i], logprobs, as_ids)
                if prompt_logprobs is not None:
                    choice["prompt_logprobs"] = self._prompt_logprobs(x, scores[i], prompt_logprobs)
                choices.append(choice)
        prompt_tokens = sum(len(x) for x in ids)
        completion_tokens = sum(g.n_tokens for row in rows for g in row)
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }

    def _params(self, body: dict[str, Any], n_prompts: int, context: int | None, echo: bool) -> tuple[int, SamplingParams | None]:
        """`n` and the request's sampling parameters, within `self.work`; a
        400 otherwise. None: nothing to generate (max_tokens 0, which vLLM
        takes with `echo` only: the prompt comes back alone)."""
        w = self.work
        n = _whole(body, "n", 1, 1, w.max_n, "--max-n")
        top = min(w.max_tokens, context) if context else w.max_tokens
        why = "the model's context" if context and context < w.max_tokens else "--max-tokens"
        max_tokens = _whole(body, "max_tokens", DEFAULT_COMPLETION_TOKENS, 0 if echo else 1, top, why)
        if max_tokens == 0:
            return n, None
        if n_prompts * n * max_tokens > w.max_request_tokens:
            raise RequestError(400, f"this request asks for up to {n_prompts * n * max_tokens} tokens ({n_prompts} prompts x "
                                    f"n={n} x max_tokens={max_tokens}); this server answers at most {w.max_request_tokens} "
                                    "per request (--max-request-tokens): send fewer prompts per request")
        stop = body.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else stop
        if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
            raise RequestError(400, "stop: a string or a list of strings", "stop")
        if len(stop) > MAX_STOP or any(len(s) > MAX_STOP_CHARS for s in stop):
            raise RequestError(400, f"stop: at most {MAX_STOP} strings of at most {MAX_STOP_CHARS} characters", "stop")
        seed = _whole(body, "seed", 0, -(2**63), 2**63 - 1, "a 64-bit seed")
        try:
            return n, SamplingParams(n=n, temperature=_number(body, "temperature", 1.0), top_p=_number(body, "top_p", 1.0),
                                     max_new_tokens=max_tokens, stop=tuple(stop), seed=seed)
        except TripostError as e:
            raise RequestError(400, str(e)) from None

    def _encode(self, index: int, prompt: str | list[int], add_special_tokens: bool) -> list[int]:
        """A prompt's token ids as vLLM makes them: a text tokenized with the
        request's `add_special_tokens` (CompletionRequest.build_tok_params
        hands it to the tokenizer), so a tokenizer that adds a BOS adds one
        even before a text that starts with BOS; ids as given, each within
        the vocabulary."""
        tok = self.student.tokenizer
        if isinstance(prompt, str):
            ids = list(tok(prompt, add_special_tokens=add_special_tokens)["input_ids"])
            if not ids:
                raise RequestError(400, f"prompt {index} has no tokens", "prompt")
            return ids
        vocab = len(tok)
        size = getattr(getattr(self.student.model, "config", None), "vocab_size", None)
        if isinstance(size, int) and size > 0:
            vocab = min(vocab, size)
        if max(prompt) >= vocab:
            raise RequestError(400, f"prompt {index}: token id {max(prompt)} is out of vocabulary ({vocab} tokens)", "prompt")
        return list(prompt)

    def _sample(self, ids: list[list[int]], params: SamplingParams, scores: list["_Scored"]) -> list[list[Generation]]:
        """`params.n` generations from each prompt's ids, by the in-process
        engine. A scoring request (one greedy token, no stop strings) takes
        its token from the scoring pass: the same argmax, one forward pass
        instead of two."""
        if scores and params.n == 1 and params.greedy and params.max_new_tokens == 1 and not params.stop:
            tok = self.student.tokenizer
            ends = _end_ids(self.student)
            return [[Generation(prompt_index=i, sample_index=0, text=tok.decode([s.next_id], skip_special_tokens=True),
                                n_tokens=1, finish_reason="eos" if s.next_id in ends else "length")]
                    for i, s in enumerate(scores)]
        view = copy.copy(self.student)  # the same model, a tokenizer that hands the sampler these ids
        view.tokenizer = _GivenIds(self.student.tokenizer, ids)
        return view.sample([_GivenIds.placeholder(k) for k in range(len(ids))], params)

    def _score(self, prompts: list[list[int]], top: int) -> list["_Scored"]:
        """Each prompt token's log-probability given the ones before it, its
        rank, the `top` likeliest tokens at each position and the likeliest
        next token, for every prompt: left-padded forward passes over
        prompts of similar length, at most SCORE_BATCH_TOKENS positions each
        (as many logits rows, each a vocabulary wide)."""
        import torch

        from tripost.student.tokens import forward_logits, left_pad, pad_token_id, position_ids

        order = sorted(range(len(prompts)), key=lambda k: len(prompts[k]))
        batches: list[list[int]] = []
        for k in order:  # ascending lengths: a batch's width is its last prompt's length
            if batches and (len(batches[-1]) + 1) * len(prompts[k]) <= SCORE_BATCH_TOKENS:
                batches[-1].append(k)
            else:
                batches.append([k])
        out: list[_Scored | None] = [None] * len(prompts)
        pad = pad_token_id(self.student.tokenizer)
        device = self.student.device
        for batch in batches:
            x, attention = left_pad([prompts[k] for k in batch], pad)
            width = x.shape[1]
            with torch.no_grad():
                logits = forward_logits(self.student.model, x.to(device), attention.to(device),
                                        position_ids(attention).to(device), width).float()
                norm = logits.logsumexp(-1)  # log-probability = logit - this; no second vocabulary-wide tensor
                for r, k in enumerate(batch):
                    ids = prompts[k]
                    row, row_norm = logits[r, width - len(ids) :], norm[r, width - len(ids) : width - 1]
                    target = torch.tensor(ids[1:], dtype=torch.long, device=row.device)
                    at = row[:-1].gather(-1, target[:, None]).squeeze(-1)
                    ranks = (row[:-1] > at[:, None]).sum(-1) + 1
                    best = row[:-1].topk(top, dim=-1) if top and len(ids) > 1 else None
                    out[k] = _Scored(logprobs=(at - row_norm).tolist(), ranks=ranks.tolist(),
                                     top=[list(zip(t, v)) for t, v in zip(best.indices.tolist(), (best.values - row_norm[:, None]).tolist())]
                                     if best else [],
                                     next_id=int(row[-1].argmax()))
        return [s for s in out if s is not None]

    def _prompt_logprobs(self, ids: list[int], s: "_Scored", k: int) -> list[dict[str, dict[str, Any]] | None]:
        """vLLM's `prompt_logprobs` of a choice: None for the first token,
        then {token id: {logprob, rank, decoded_token}} for the prompt's token
        and the `k` likeliest (vllm.logprobs.Logprob; -inf clamped to -9999 as
        vLLM's clamp_prompt_logprobs does). Each token is decoded alone."""
        tok = self.student.tokenizer
        out: list[dict[str, dict[str, Any]] | None] = [None]
        for pos in range(1, len(ids)):
            entry = {str(ids[pos]): {"logprob": max(s.logprobs[pos - 1], -9999.0), "rank": s.ranks[pos - 1],
                                     "decoded_token": tok.decode([ids[pos]])}}
            for rank, (t, v) in enumerate(s.top[pos - 1][:k] if k else [], start=1):
                entry.setdefault(str(t), {"logprob": max(v, -9999.0), "rank": rank, "decoded_token": tok.decode([t])})
            out.append(entry)
        return out

    def _echo_logprobs(self, ids: list[int], s: "_Scored", k: int, as_ids: bool) -> dict[str, Any]:
        """The OpenAI `logprobs` of an echoed prompt, built as vLLM's
        _create_completion_logprobs builds them (serving_completion): each
        token decoded alone, or "token_id:N" with return_tokens_as_token_ids;
        text_offset the running sum of those strings' lengths from 0, so a
        character split across tokens (each part decodes to U+FFFD) shifts the
        offsets after it; the first token has no log-probability."""
        tok = self.student.tokenizer

        def name(t: int) -> str:
            return f"token_id:{t}" if as_ids else tok.decode([t])

        tokens = [name(t) for t in ids]
        offsets, at = [], 0
        for t in tokens:
            offsets.append(at)
            at += len(t)
        top_logprobs: list[dict[str, float] | None] = [None]
        for pos in range(1, len(ids)):
            entry = {tokens[pos]: max(s.logprobs[pos - 1], -9999.0)}
            for t, v in s.top[pos - 1][:k] if k else []:
                entry.setdefault(name(t), max(v, -9999.0))
            top_logprobs.append(entry)
        return {"tokens": tokens, "token_logprobs": [None, *(max(v, -9999.0) for v in s.logprobs)],
                "top_logprobs": top_logprobs, "text_offset": offsets}


@dataclass(frozen=True)
class _Scored:
    """What one scoring pass over a prompt found (StudentService._score):
    per position after the first, the prompt token's log-probability and
    rank and the likeliest (id, log-probability) pairs; the likeliest next token."""

    logprobs: list[float]
    ranks: list[int]
    top: list[list[tuple[int, float]]]
    next_id: int


def _end_ids(student: Any) -> set[int]:
    """The token ids that end a generation: the tokenizer's EOS and the model's generation config's."""
    ends = {student.tokenizer.eos_token_id}
    raw = getattr(getattr(student.model, "generation_config", None), "eos_token_id", None)
    ends.update(raw if isinstance(raw, (list, tuple)) else [raw])
    return {int(x) for x in ends if x is not None}


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
