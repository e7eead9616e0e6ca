"""serve-student's answering part (`StudentService`): the loaded student,
its served names (the base model and LoRA adapters), one request at a time
on the model, a request dropped or cancelled when its client goes away,
and `POST /v1/completions` (the adapter routes: student_adapters.py)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from tripost.serve import student_model
from tripost.serve.student_adapters import AdapterRoutes
from tripost.serve.student_requests import ClientGone, RequestError, WorkLimits, flag, logprob_count, prompt_list, sampling_params
from tripost.student.base import unwrap_model
from tripost.student.generate import context_length

CANCEL_CHECK_S = 0.2  # how often a running request looks whether its client is still there
LOCK_POLL_S = 0.5  # ... and a waiting one


class StudentService(AdapterRoutes):
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

    def complete(self, body: dict[str, Any], gone: Callable[[], bool] | None = None) -> dict[str, Any]:
        """`POST /v1/completions`, checked against `self.work` before the
        model is touched; `gone()` says whether the client has gone away
        (then ClientGone, and the work stops)."""

        self.counts["completions"] += 1
        model = str(body.get("model") or "")
        w = self.work
        prompts = prompt_list(body.get("prompt"), w.max_prompts)
        context = context_length(self.student.model)
        echo = flag(body, "echo", False)
        logprobs, prompt_logprobs = logprob_count(body, "logprobs"), logprob_count(body, "prompt_logprobs")
        as_ids = flag(body, "return_tokens_as_token_ids", False)
        n, params = sampling_params(w, body, len(prompts), context, echo)
        if logprobs is not None and params is not None:
            raise RequestError(400, "serve-student returns no log-probabilities of generated tokens: score a sequence as "
                                    "a prompt (prompt_logprobs, or echo with logprobs and max_tokens 0)", "logprobs")
        add_special = flag(body, "add_special_tokens", True)
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
            scores = student_model.score(self.student, ids, top) if scored else []
            rows = student_model.sample(self.student, ids, params, scores) if params is not None else []
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
                    choice["logprobs"] = student_model.echo_logprobs(self.student, x, scores[i], logprobs, as_ids)
                if prompt_logprobs is not None:
                    choice["prompt_logprobs"] = student_model.prompt_logprobs(self.student, x, scores[i], prompt_logprobs)
                choices.append(choice)
        prompt_tokens = sum(len(x) for x in ids)
        completion_tokens = sum(g.n_tokens for row in rows for g in row)
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }

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
