"""The student: a small local language model that learns to correct itself.

    from tripost.student import load_student, SamplingParams, build_prompt
    s = load_student("smollm2-135m", precision="nf4")
    prompts = [build_prompt(s.tokenizer, p.question) for p in problems]
    attempts = s.sample(prompts, SamplingParams(n=4, temperature=0.7, max_new_tokens=256))
    scores = s.logprobs(prompts, [a.text for a in attempts[0]])

Specs (spec.py): `smollm2-135m` (embedded, embedded.py), `hf:PATH`, `gguf:PATH`.
"""

from tripost.student.embedded import embedded_model_dir, find_embedded_gguf, gguf_model_dir
from tripost.student.generate import (
    Generation,
    GenerationBackend,
    GenerationStats,
    LocalBackend,
    SamplingParams,
    greedy,
    sample,
)
from tripost.student.load import (
    PRECISIONS,
    LoraSettings,
    Student,
    attach_lora,
    check_adapter_dir,
    load_student,
    save_adapter,
)
from tripost.student.logprob import SequenceScore, sequence_logprobs
from tripost.student.prompt import PromptFormat, build_prompt, build_prompts
from tripost.student.spec import EMBEDDED_NAME, StudentSpec, parse_spec
from tripost.student.tiny import build_tiny_model

__all__ = [
    "EMBEDDED_NAME",
    "PRECISIONS",
    "Generation",
    "GenerationBackend",
    "GenerationStats",
    "LocalBackend",
    "LoraSettings",
    "PromptFormat",
    "SamplingParams",
    "SequenceScore",
    "Student",
    "StudentSpec",
    "attach_lora",
    "build_prompt",
    "build_prompts",
    "build_tiny_model",
    "check_adapter_dir",
    "embedded_model_dir",
    "find_embedded_gguf",
    "gguf_model_dir",
    "greedy",
    "load_student",
    "parse_spec",
    "sample",
    "save_adapter",
    "sequence_logprobs",
]
