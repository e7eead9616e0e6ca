"""The options of an LLM teacher, declared once for the run config and the CLI.

`TeacherOptions` holds every option a user can set on an LLM teacher, each
with its default and help text in one place. The run config's `[teacher]`
section (tripost/loop.py) is built from it, `tripost collect` and
`tripost teach` get their `--teacher-*` flags from `add_teacher_flags`, and
both end in `make_teacher(spec, **options.teacher_kwargs())`:

    timeout      seconds per HTTP request before it counts as failed (and is retried)
    max_attempts tries per request, the first included, before it counts as unavailable
                 (retry.py's backoff between them)
    max_tokens   the answer length limit (0: the backend's default)
    temperature  sampling temperature, sent only when set and the model takes one
                 (unset, "": the provider's default); part of the cache key (sampling.py)
    token_param  the name the length limit travels under to OpenAI: max_tokens, or
                 max_completion_tokens for its reasoning models (which refuse max_tokens);
                 auto: by the model's name
    concurrency  teacher requests in flight at once, and trajectories (collect) or
                 attempts (teach) worked on at once (with batch: not a bound on a round)
    prices       a TOML/JSON price table over the price database (usage.py)
    cache        the on-disk response cache under $TRIPOST_HOME on or off
    batch        send each round's requests as OpenAI Batches / Anthropic Message
                 Batches at half the list price (batch.py), answers in minutes to hours
    batch_wait   seconds without a new request before a round goes out as a batch
    batch_poll   seconds before a batch's status is checked again (growing 1.5x a time)

The options are ignored by the teachers that are not LLMs (scripted, replay).
A wrong value is one `TripostError` naming the key the way the user wrote it
(`teacher.timeout` in a run config, `--teacher-timeout` on the command line).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tripost.errors import TripostError
from tripost.settings import add_flags, from_section, option, section_defaults
from tripost.settings import from_args as section_from_args
from tripost.teachers.sampling import AUTO, MAX_TEMPERATURE, check_spec_temperature, parse_temperature
from tripost.teachers.usage import load_prices

# How OpenAI's Chat Completions take the answer length limit: `max_tokens`
# (most models, every OpenAI-compatible server) or `max_completion_tokens`
# (the o-series and GPT-5+ reasoning models refuse `max_tokens`); "auto"
# picks by the model's name (openai_chat.py `token_param_for`). Anthropic's
# Messages API has only `max_tokens`; hf generates locally.
AUTO_TOKEN_PARAM = "auto"
TOKEN_PARAMS = (AUTO_TOKEN_PARAM, "max_tokens", "max_completion_tokens")
UNSET = ""  # a temperature left unset (TOML has no null): the provider's default


@dataclass(frozen=True)
class TeacherOptions:
    timeout: float = option(60.0, "seconds per teacher request before it counts as failed and is retried", metavar="SECONDS")
    max_attempts: int = option(6, "tries per teacher request, the first included, before it counts as unavailable "
                                  "(backoff 0.5 s doubling to 20 s between them, or the server's Retry-After)", metavar="N")
    max_tokens: int = option(0, "answer length limit in tokens (0: the backend's default, 768; 320 for hf)", metavar="N")
    # A number once `check` has read it; auto is greedy where the model takes a temperature (the
    # authors' feedback and fixes) and its provider's default where it takes none; unset (UNSET) is
    # the provider's default, and nothing is sent (sampling.py).
    temperature: float | str = option(AUTO, f"teacher sampling temperature, 0 to {MAX_TEMPERATURE:g}, sent only to a model that takes one "
                                            "(part of the cache key); auto: 0 where the model takes a temperature (the authors' "
                                            "feedback and fixes), else the provider's default; \"\" (unset): the provider's default "
                                            "(Anthropic and OpenAI's reasoning models take none but their default)", metavar="T")
    token_param: str = option(AUTO_TOKEN_PARAM, "the name OpenAI gets the length limit under: max_tokens, or max_completion_tokens "
                                                "(its reasoning models); auto: max_completion_tokens for o-series and GPT-5+ names",
                              choices=TOKEN_PARAMS)
    concurrency: int = option(8, "teacher requests in flight at once, and attempts worked on at once (an hf teacher answers one at a time)", metavar="N")
    prices: str = option("", "a TOML price table (USD per million tokens) over the price database (genai-prices), "
                             "e.g. [\"my-model\"] input = 0.5", metavar="FILE.toml")
    cache: bool = option(True, "reuse answers from the on-disk response cache ($TRIPOST_HOME/teacher-cache.sqlite)")
    batch: bool = option(False, "send each collection round's requests as OpenAI Batches / Anthropic Message Batches, billed at half "
                                "the list price; answers take minutes to hours; a round is everything the collection can ask at once")
    batch_wait: float = option(2.0, "with batch: seconds without a new request before the round is sent as one batch", metavar="SECONDS")
    batch_poll: float = option(30.0, "with batch: seconds before a batch's status is checked again (growing 1.5x a time, "
                                     "up to 10 minutes)", metavar="SECONDS")

    @classmethod
    def config_defaults(cls) -> dict[str, Any]:
        """The `[teacher]` keys of the run config, at their defaults."""
        return section_defaults(cls)

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "TeacherOptions":
        """From the run config's `[teacher]` section (types already checked by
        `check_types`); values are checked here, errors name `teacher.KEY`,
        and a temperature the section's `spec` cannot take stops the run
        before its first stage (sampling.py)."""
        options = from_section(cls, section).check(lambda name: f"teacher.{name}")
        if isinstance(section.get("spec"), str):
            check_spec_temperature(section["spec"], options.sampling_temperature)
        return options

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TeacherOptions":
        """From the flags `add_teacher_flags` added; errors name the flag."""
        return section_from_args(cls, args, dest=_dest).check(_flag)

    def check(self, name: Callable[[str], str]) -> "TeacherOptions":
        """Self, when every value is usable; else one error naming the key
        (`name` spells a field the way the user set it)."""
        if not self.timeout > 0:
            raise TripostError(f"{name('timeout')} must be more than 0 seconds, not {self.timeout}")
        if self.max_attempts < 1:
            raise TripostError(f"{name('max_attempts')} must be at least 1 (the first try), not {self.max_attempts}")
        if self.max_tokens < 0:
            raise TripostError(f"{name('max_tokens')} must be at least 1 (or 0: the backend's default), not {self.max_tokens}")
        # A flag arrives as text, a config value as a number or "": read once, here.
        temperature = parse_temperature(self.temperature, name("temperature"))
        if temperature is not None and temperature != self.temperature:
            return dataclasses.replace(self, temperature=temperature).check(name)
        if self.token_param not in TOKEN_PARAMS:
            raise TripostError(f"{name('token_param')} must be one of {', '.join(TOKEN_PARAMS)}, not {self.token_param!r}")
        for key in ("batch_wait", "batch_poll"):
            if not getattr(self, key) > 0:
                raise TripostError(f"{name(key)} must be more than 0 seconds, not {getattr(self, key)}")
        if self.concurrency < 1:
            raise TripostError(f"{name('concurrency')} must be at least 1, not {self.concurrency}")
        if not isinstance(self.prices, str):  # "" is the config's "unset", so its type check lets any value by
            raise TripostError(f"{name('prices')} must be a file name (a string), or \"\" for the built-in prices only")
        if self.prices:
            # Read now, so a missing or broken file stops the command before
            # any work, not after the first paid request.
            try:
                load_prices(self.prices)
            except TripostError as e:
                raise TripostError(f"{name('prices')}: {e}") from None
        return self

    @property
    def sampling_temperature(self) -> float | str | None:
        """The temperature set, "auto" (sampling.AUTO), or None when unset (the provider's default)."""
        return parse_temperature(self.temperature, "teacher.temperature")

    def teacher_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `make_teacher` these options set."""
        return {
            "timeout": float(self.timeout),
            "max_attempts": self.max_attempts,
            "max_tokens": self.max_tokens or None,
            "temperature": self.sampling_temperature,
            "token_param": self.token_param,
            "concurrency": self.concurrency,
            "prices": self.prices or None,
            "cache": self.cache,
            "batch": self.batch,
            "batch_wait": float(self.batch_wait),
            "batch_poll": float(self.batch_poll),
        }


def _dest(name: str) -> str:
    return f"teacher_{name}"


def _flag(name: str) -> str:
    return "--teacher-" + name.replace("_", "-")


def add_teacher_flags(parser: argparse.ArgumentParser) -> None:
    """The `--teacher-*` flags, one per `TeacherOptions` field, with its
    default and help (as `teacher.KEY` in `tripost run`'s config)."""
    g = parser.add_argument_group("teacher options (LLM teachers; in `tripost run`: teacher.KEY=VALUE)")
    add_flags(g, TeacherOptions, dest=_dest, flag=_flag)
