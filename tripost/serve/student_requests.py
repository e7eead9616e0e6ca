"""What one serve-student request may ask and how its fields are read:
the work bounds (`WorkLimits`, `--max-prompts` and the rest), vLLM's
forms of `prompt`, the sampling parameters, and the errors a request is
refused with (`RequestError`, in vLLM's types; `ClientGone` when its
client went away)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

from tripost.errors import TripostError
from tripost.serve.failures import HTTPFailure
from tripost.student.base import SamplingParams
from tripost.student.remote import MAX_COMPLETION_PROMPTS

MAX_STOP = 16  # stop strings a request may give
MAX_STOP_CHARS = 1024  # ... and their length

DEFAULT_MAX_PROMPTS = MAX_COMPLETION_PROMPTS  # vLLM's cap (VLLM_MAX_COMPLETION_PROMPTS), which RemoteStudent keeps to
DEFAULT_MAX_N = 128  # the OpenAI API's own bound on n
DEFAULT_MAX_TOKENS = 32768
DEFAULT_MAX_REQUEST_TOKENS = 2**24  # prompts x n x max_tokens
# Most log-probabilities a request may ask for per position: vLLM's default
# --max-logprobs (ModelConfig.max_logprobs = 20); -1 (all) is over it too.
MAX_LOGPROBS = 20
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


def whole(body: dict[str, Any], name: str, default: int, low: int, high: int, why: str) -> int:
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


def number(body: dict[str, Any], name: str, default: float) -> float:
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise RequestError(400, f"{name} must be a finite number", name)
    return float(v)


def flag(body: dict[str, Any], name: str, default: bool) -> bool:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise RequestError(400, f"{name} must be true or false", name)
    return v


def logprob_count(body: dict[str, Any], name: str) -> int | None:
    """`logprobs` / `prompt_logprobs`: None (not asked) or how many of the
    likeliest tokens to return per position besides the one there."""
    if body.get(name) is None:
        return None
    return whole(body, name, 0, 0, MAX_LOGPROBS, "vLLM's default --max-logprobs")


def _is_id(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def prompt_list(prompt: Any, max_prompts: int) -> list[str | list[int]]:
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


def sampling_params(work: WorkLimits, body: dict[str, Any], n_prompts: int, context: int | None,
                    echo: bool) -> tuple[int, SamplingParams | None]:
    """`n` and the request's sampling parameters, within `work`; a
    400 otherwise. None: nothing to generate (max_tokens 0, which vLLM
    takes with `echo` only: the prompt comes back alone)."""
    w = work
    n = whole(body, "n", 1, 1, w.max_n, "--max-n")
    top = min(w.max_tokens, context) if context else w.max_tokens
    why = "the model's context" if context and context < w.max_tokens else "--max-tokens"
    max_tokens = whole(body, "max_tokens", DEFAULT_COMPLETION_TOKENS, 0 if echo else 1, top, why)
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
    seed = whole(body, "seed", 0, -(2**63), 2**63 - 1, "a 64-bit seed")
    try:
        return n, SamplingParams(n=n, temperature=number(body, "temperature", 1.0), top_p=number(body, "top_p", 1.0),
                                 max_new_tokens=max_tokens, stop=tuple(stop), seed=seed)
    except TripostError as e:
        raise RequestError(400, str(e)) from None
