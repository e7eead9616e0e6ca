"""Which sampling parameters a teacher request may carry, by provider and model.

tripost sends a sampling parameter only when the user set it and the model
takes it; otherwise the request carries none and the model samples at its
provider's default, which the cache key records as `PROVIDER_DEFAULT`
instead of a number (chat.py `ChatRequest.canonical`).

Anthropic: the SDK this project pins (anthropic 2.x) sends
`anthropic-version: 2026-10-21` on every request (anthropic/_constants.py,
`ANTHROPIC_API_VERSION`; anthropic/_client.py puts it in the default
headers), and its `MessageCreateParams` has no `temperature`, `top_p` or
`top_k` any more (anthropic/types/message_create_params.py). Under that API
version the Messages API and Message Batches refuse all three with a 400
("temperature: Extra inputs are not permitted"), even at their default
values. The SDK offers no other sampling control (its `output_config` holds
`effort` and `format` only), so under 2026-10-21 a request carries none, and
a temperature the user set is one error line before any request, never a
silent drop. An SDK that still sends 2023-06-01 (0.x, 1.x) takes one: it
travels in `extra_body`.

OpenAI: the reasoning models (the o-series and GPT-5 onwards) take only the
default temperature, 1 ("Unsupported value: 'temperature' does not support
0.0 with this model. Only the default (1) value is supported."), and refuse
`max_tokens` for `max_completion_tokens` (the SDK's own note on `max_tokens`,
openai/types/chat/completion_create_params.py: "not compatible with o-series
models"). Other models and OpenAI-compatible servers take any temperature
from 0 to 2.

Both providers document 1.0 as the default temperature (OpenAI's Chat
Completions reference: "Defaults to 1"; Anthropic's Messages reference
under 2023-06-01: "Defaults to 1.0"), so asking one of these models for
exactly 1.0 is asking for what it does anyway: nothing is sent and no error
is raised. A local hf model's default is greedy decoding (hf_chat.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tripost.errors import TripostError, clip

# What a cache key holds for a request that carries no temperature.
PROVIDER_DEFAULT = "provider default"
# The default setting: greedy (0) where the model takes a temperature, as the
# authors ask their LLM for feedback and fixes (jasonyux/TriPosT
# runners/trainer/train_self_improve_from_demo.py:262-269, temperature 0.0),
# and the provider's default where the model takes none.
AUTO = "auto"
# The default temperature of the two APIs (see the module docstring).
API_DEFAULT_TEMPERATURE = 1.0
# The first Anthropic API version without sampling parameters.
NO_SAMPLING_ANTHROPIC_VERSION = "2026-10-21"
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
MAX_TEMPERATURE = 2.0  # OpenAI's upper bound; Anthropic's was 1.0, and its API said so

# OpenAI's reasoning models by name: o1, o3, o4-mini, ... and gpt-5, gpt-5.4-mini,
# gpt-6-luna, ...; a provider prefix ("openai/gpt-5" on a router) is looked through.
_REASONING = re.compile(r"(o\d+|gpt-(\d+))([.\-].*)?", re.IGNORECASE)
FIRST_REASONING_GPT = 5


def openai_reasoning_model(model: str) -> bool:
    """Whether `model` names one of OpenAI's reasoning models (o-series, GPT-5 onwards)."""
    m = _REASONING.fullmatch(str(model).rsplit("/", 1)[-1].strip())
    return m is not None and (m.group(2) is None or int(m.group(2)) >= FIRST_REASONING_GPT)


def anthropic_api_version() -> str:
    """The `anthropic-version` the installed SDK sends."""
    from anthropic._constants import ANTHROPIC_API_VERSION  # the SDK's own constant (see the module docstring)

    return str(ANTHROPIC_API_VERSION)


def anthropic_takes_sampling(version: str) -> bool:
    """Whether Anthropic API `version` (a date) takes temperature, top_p and top_k."""
    return str(version).strip() < NO_SAMPLING_ANTHROPIC_VERSION


@dataclass(frozen=True)
class SamplingRule:
    """What one model takes: any temperature (`takes_temperature`), or only
    its provider's `default` (then nothing is sent); `why` says so in an error."""

    takes_temperature: bool
    default: float  # what the model samples at when the request carries no temperature
    why: str = ""

    def request_temperature(self, wanted: float | str | None, who: str, setting: str = "teacher.temperature / --teacher-temperature") -> float | None:
        """The temperature a request for `wanted` carries (None: none, the
        provider's default); a `TripostError` naming `who` and the `setting`
        that asked for it when the model cannot sample at `wanted`."""
        if wanted is None:
            return None
        if wanted == AUTO:
            return 0.0 if self.takes_temperature else None
        wanted = float(wanted)
        if self.takes_temperature:
            return wanted
        if wanted == self.default:
            return None  # what it samples at anyway
        raise TripostError(f"{who}: temperature {wanted:g} is set ({setting}), but {self.why}; "
                           f"leave the temperature unset (the provider's default, {self.default:g})")


ANY_TEMPERATURE = SamplingRule(True, API_DEFAULT_TEMPERATURE)


def rule_for(kind: str, model: str, anthropic_version: str | None = None) -> SamplingRule:
    """The sampling rule of a teacher spec's backend `kind` ("openai",
    "anthropic", "hf") and `model`; `anthropic_version`: the installed SDK's
    unless given."""
    if kind == "anthropic":
        version = anthropic_version if anthropic_version is not None else anthropic_api_version()
        if not anthropic_takes_sampling(version):
            return SamplingRule(False, API_DEFAULT_TEMPERATURE,
                                f"the anthropic SDK sends API version {version}, which refuses temperature, top_p and top_k "
                                f"(a 400 even at their defaults)")
        return ANY_TEMPERATURE
    if kind == "openai" and openai_reasoning_model(model):
        return SamplingRule(False, API_DEFAULT_TEMPERATURE,
                            f"{clip(model)} is an OpenAI reasoning model, which takes only the default temperature")
    if kind == "hf":
        return SamplingRule(True, 0.0)  # a local model decodes greedily unless asked to sample
    return ANY_TEMPERATURE


def rule_of(backend: Any) -> SamplingRule:
    """A backend's rule: its own `sampling_rule`, or any temperature for a
    backend that declares none (a test's, a plug-in's)."""
    rule = getattr(backend, "sampling_rule", None)
    return rule if isinstance(rule, SamplingRule) else ANY_TEMPERATURE


def parse_temperature(value: Any, name: str) -> float | str | None:
    """A temperature option's value: None when unset ("" in a config), AUTO
    for "auto", else a number from 0 to MAX_TEMPERATURE; a one-line error
    naming the key `name` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, bool):
        raise TripostError(f"{name} must be a number between 0 and {MAX_TEMPERATURE:g} (or unset: the provider's default), not {value}")
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise TripostError(f"{name} must be a number between 0 and {MAX_TEMPERATURE:g} (or unset: the provider's default), "
                           f"not {clip(value)}") from None
    if not 0.0 <= t <= MAX_TEMPERATURE:
        raise TripostError(f"{name} must be between 0 and {MAX_TEMPERATURE:g} (or unset: the provider's default), not {value}")
    return t


def check_spec_temperature(spec: str, temperature: float | str | None) -> None:
    """A one-line error when the teacher `spec`'s model cannot sample at
    `temperature`; checked from the spec alone (no client, no key), so a run
    stops before its first stage."""
    kind, _, model = str(spec).strip().partition(":")
    if kind in ("openai", "anthropic", "hf") and model.strip():
        rule_for(kind, model.strip()).request_temperature(temperature, f"teacher {clip(spec)}")


__all__ = [
    "ANY_TEMPERATURE", "API_DEFAULT_TEMPERATURE", "AUTO", "MAX_TEMPERATURE", "NO_SAMPLING_ANTHROPIC_VERSION", "PROVIDER_DEFAULT", "SAMPLING_PARAMS",
    "SamplingRule", "anthropic_api_version", "anthropic_takes_sampling", "check_spec_temperature", "openai_reasoning_model",
    "parse_temperature", "rule_for", "rule_of",
]
