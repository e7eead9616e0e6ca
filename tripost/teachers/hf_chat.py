"""`hf:PATH`: a local transformers model as a chat backend.

Greedy decoding at temperature 0, or with no temperature set (a local
model's default: `sampling_rule`); above 0 (an
attempt, sampled at 1.0 as the authors', tripost.teachers.base) it samples at
that temperature with no top-k or top-p cut, as the APIs do, from a seed
that is a hash of the whole request (its cache key, which holds the
attempt's sample number): the same request writes the same text, another
sample another one, and the process's global random state is left as it was.

PATH is a transformers folder, a `.gguf` file, or `smollm2-135m` (the
embedded model); loading goes through the student loader, so the same specs
mean the same models. The model loads on the first request. Prompts use the
tokenizer's chat template; when a prompt would not fit the model's context,
the oldest few-shot examples are dropped first. Generation runs in a worker
thread, one request at a time (`max_concurrency = 1`: a CPU model gains
nothing from parallel requests).

A small model is a weak teacher: most of its answers are rejected by the
prompted teacher's validation, which is the point of testing it.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.student.load import load_student
from tripost.student.spec import parse_spec
from tripost.teachers.chat import ChatMessage, ChatRequest, ChatResponse, Usage
from tripost.teachers.sampling import rule_for


def student_spec_for(path: str) -> str:
    """The student spec that loads `hf:PATH` (a folder, a GGUF file or the embedded name)."""

    raw = path.strip()
    if not raw:
        raise TripostError("hf teacher: give a model folder, e.g. hf:/models/my-teacher (or hf:smollm2-135m)")
    if raw.lower().endswith(".gguf"):
        spec = f"gguf:{raw}"
    elif Path(raw).expanduser().exists():
        spec = f"hf:{raw}"
    else:
        spec = raw  # the embedded aliases; anything else fails in parse_spec with a clear message
    try:
        return str(parse_spec(spec))
    except TripostError as e:
        raise TripostError(f"hf teacher: {e}") from None


class HFChat:
    name = "hf"
    endpoint = ""  # this machine: the model path already names what answers
    max_concurrency = 1

    @classmethod
    def from_spec(cls, arg: str, *, device: str | None = None, **options: Any) -> "HFChat":
        """`hf:PATH` (a folder, a .gguf file, or smollm2-135m)."""
        return cls(arg, device=device)

    def __init__(self, path: str, *, device: str | None = None):
        self.spec = student_spec_for(path)
        self.model = path.strip()
        self.sampling_rule = rule_for(self.name, self.model)  # any temperature; none set: greedy
        self.device = device
        self._loaded: Any = None
        self._lock = threading.Lock()

    def _student(self) -> Any:
        with self._lock:
            if self._loaded is None:
                self._loaded = load_student(self.spec, precision="fp32", device=self.device)
            return self._loaded

    def _prompt_ids(self, tokenizer: Any, request: ChatRequest, limit: int) -> list[int]:
        messages = list(request.messages)
        while True:
            chat = ([{"role": "system", "content": request.system}] if request.system else []) + [
                {"role": m.role, "content": m.content} for m in messages
            ]
            ids = _encode_chat(tokenizer, chat)
            if len(ids) + request.max_tokens <= limit or len(messages) <= 1:
                return ids[-max(limit - request.max_tokens, 1):]
            messages = _drop_oldest_example(messages)

    def generate(self, request: ChatRequest) -> ChatResponse:
        import torch

        student = self._student()
        model, tokenizer = student.model, student.tokenizer
        limit = int(getattr(model.config, "max_position_embeddings", 0) or 4096)
        ids = self._prompt_ids(tokenizer, request, limit)
        input_ids = torch.tensor([ids], device=model.device)
        sampling: dict[str, Any] = {"do_sample": False}
        if request.temperature is not None and request.temperature > 0:
            # top_k 0 and top_p 1: no cut (a generation_config may set one), as the APIs sample.
            sampling = {"do_sample": True, "temperature": float(request.temperature), "top_k": 0, "top_p": 1.0}
        devices = [model.device] if model.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(request_seed(request))
            out = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=request.max_tokens,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
                **sampling,
            )
        new = out[0, input_ids.shape[1]:].tolist()
        text = tokenizer.decode(new, skip_special_tokens=True)
        finish = "length" if len(new) >= request.max_tokens else "stop"
        for stop in request.stop:
            i = text.find(stop)
            if i >= 0:
                text, finish = text[:i], "stop"
        return ChatResponse(
            text=text,
            usage=Usage(input_tokens=len(ids), output_tokens=len(new)),
            model=self.model,
            finish_reason=finish,
        )

    async def acomplete(self, request: ChatRequest) -> ChatResponse:
        return await asyncio.to_thread(self.generate, request)

    async def aclose(self) -> None:
        return None


def request_seed(request: ChatRequest) -> int:
    """The sampling seed of `request`: its cache key, so a sample is fixed by
    the request, its sample number included."""
    return int(request.key(HFChat.name)[:15], 16)


def _encode_chat(tokenizer: Any, chat: list[dict[str, str]]) -> list[int]:
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    else:
        text = "".join(f"{m['role']}: {m['content']}\n" for m in chat) + "assistant: "
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _drop_oldest_example(messages: list[ChatMessage]) -> list[ChatMessage]:
    # Few-shot examples come in (user, assistant) pairs before the real request.
    if len(messages) >= 3 and messages[0].role == "user" and messages[1].role == "assistant":
        return messages[2:]
    return messages[1:]
