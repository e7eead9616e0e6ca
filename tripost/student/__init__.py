"""The student: a small local language model that learns to correct itself.

    from tripost.student import load_student, SamplingParams, build_prompt
    s = load_student("smollm2-135m", precision="nf4")
    prompts = [build_prompt(s.tokenizer, p.question) for p in problems]
    attempts = s.sample(prompts, SamplingParams(n=4, temperature=0.7, max_new_tokens=256))
    scores = s.logprobs(prompts, [a.text for a in attempts[0]])

Specs (spec.py): `smollm2-135m` (embedded, embedded.py), `hf:PATH`, `gguf:PATH`.

Layers (base.py says which module may import which): shared types in
base.py, token ids and the forward pass in tokens.py, sampling in
generate.py (engine.py: continuous batching), scoring in logprob.py, and
loading (the `Student`, adapters) in load.py on top.
"""

from tripost.student.base import Generation, LoadedModel, SamplingParams, SequenceScore, StudentLike, unwrap_model
from tripost.student.embedded import embedded_model_dir, find_embedded_gguf, gguf_model_dir
from tripost.student.generate import GenerationBackend, GenerationStats, LocalBackend, greedy, sample
from tripost.student.load import (
    PRECISIONS,
    LoraSettings,
    Student,
    attach_lora,
    check_adapter_dir,
    load_adapter,
    load_student,
    save_adapter,
)
from tripost.student.logprob import logprob_batches, sequence_logprobs
from tripost.student.prompt import PromptFormat, build_prompt, build_prompts, render_chat
from tripost.student.spec import EMBEDDED_NAME, StudentSpec, parse_spec
from tripost.student.tiny import build_tiny_model
from tripost.student.tokens import encode_continuation, encode_prompt, forward_logits, left_pad, pad_token_id, position_ids

__all__ = [
    "EMBEDDED_NAME",
    "PRECISIONS",
    "Generation",
    "GenerationBackend",
    "GenerationStats",
    "LoadedModel",
    "LocalBackend",
    "LoraSettings",
    "PromptFormat",
    "SamplingParams",
    "SequenceScore",
    "Student",
    "StudentLike",
    "StudentSpec",
    "attach_lora",
    "build_prompt",
    "build_prompts",
    "build_tiny_model",
    "check_adapter_dir",
    "embedded_model_dir",
    "encode_continuation",
    "encode_prompt",
    "find_embedded_gguf",
    "forward_logits",
    "gguf_model_dir",
    "greedy",
    "left_pad",
    "load_adapter",
    "load_student",
    "logprob_batches",
    "pad_token_id",
    "parse_spec",
    "position_ids",
    "render_chat",
    "sample",
    "save_adapter",
    "sequence_logprobs",
    "unwrap_model",
]
