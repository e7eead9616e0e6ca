"""The student's shared types: what sampling and scoring take and return.

The student package is layered one way, so that no module needs a
function-level or TYPE_CHECKING import to dodge a cycle:

    base, tokens, spec, prompt, hardware, embedded   import no student module
    tiny      -> embedded
    fastdecode -> base
    engine    -> base, fastdecode
    generate  -> base, tokens, engine
    logprob   -> base, tokens
    load      -> base, spec, hardware, embedded, generate, logprob
    __init__  -> everything

`Student` (load.py) sits on top because its convenience methods call into
generate and logprob; the layers below see a student only as a
`LoadedModel`: a model, its tokenizer and its device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from collections.abc import Sequence
from typing import Any, Protocol

from tripost.errors import TripostError

FINISH_REASONS = ("stop", "eos", "length")


class LoadedModel(Protocol):
    """What sampling and scoring need of a student (`tripost.student.Student` is one)."""

    model: Any  # a transformers model, or a PEFT wrapper around one
    tokenizer: Any

    @property
    def device(self) -> Any: ...


def unwrap_model(model: Any) -> Any:
    """The transformers model under PEFT / DDP wrappers."""
    base = model
    while hasattr(base, "get_base_model") or hasattr(base, "module"):
        base = base.module if hasattr(base, "module") else base.get_base_model()
    return base


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. `temperature == 0` means greedy decoding (then `n` must be 1
    and `top_p`/`seed` are irrelevant). `stop` strings end a completion and are
    cut from its text, as in the OpenAI API. `ignore_eos` (vLLM's name) makes
    every completion exactly `max_new_tokens` long (EOS is masked out): for
    fixed-work throughput measurements."""

    n: int = 1
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int = 0
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        if self.n < 1:
            raise TripostError(f"number of samples must be at least 1, got {self.n}")
        if self.temperature < 0:
            raise TripostError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise TripostError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise TripostError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if any(not s for s in self.stop):
            raise TripostError("stop strings must not be empty")
        if self.greedy and self.n != 1:
            raise TripostError("greedy decoding (temperature 0) gives one sample per prompt; use n=1")
        object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class Generation:
    """One completion. `n_tokens` counts generated tokens (an end-of-sequence
    token included, padding not)."""

    prompt_index: int
    sample_index: int
    text: str
    n_tokens: int
    finish_reason: str  # one of FINISH_REASONS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SequenceScore:
    """`sum` and `mean` of the continuation's token log-probabilities (natural
    log). An empty continuation has n_tokens 0, sum 0.0 (log 1) and mean 0.0;
    callers ranking by mean should look at n_tokens."""

    sum: float
    mean: float
    n_tokens: int
    token_logprobs: tuple[float, ...] = ()


class StudentLike(Protocol):
    """What the stages above the student (sources, evaluation, the gap, the
    verifier, sharpening) ask of a student: a tokenizer to render prompts
    with, a description for records, and sampling, greedy decoding and
    scoring. `tripost.student.Student` (the model in this process) and
    `tripost.student.remote.RemoteStudent` (an OpenAI-compatible engine) both
    are one; code that needs the model's weights takes a `LoadedModel`."""

    tokenizer: Any

    @property
    def in_process(self) -> bool:
        """True when the model runs in this process (the student is then also
        a `LoadedModel`, whose weights a scorer may run directly, as the
        verifier's one shared pass does); False for an engine reached over HTTP."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def sample(self, prompts: Sequence[str], params: SamplingParams, **kw: Any) -> list[list[Generation]]: ...

    def greedy(self, prompts: Sequence[str], max_new_tokens: int = 256, stop: Sequence[str] = (), **kw: Any) -> list[Generation]: ...

    def logprobs(self, prompts: Sequence[str], continuations: Sequence[str], **kw: Any) -> list[SequenceScore]: ...
