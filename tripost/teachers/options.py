"""The options of an LLM teacher, declared once for the run config and the CLI.

`TeacherOptions` holds every option a user can set on an LLM teacher, each
with its default and help text in one place. The run config's `[teacher]`
section (tripost/loop.py) is built from it, `tripost collect` and
`tripost teach` get their `--teacher-*` flags from `add_teacher_flags`, and
both end in `make_teacher(spec, **options.teacher_kwargs())`:

    timeout      seconds per HTTP request before it counts as failed (and is retried)
    max_tokens   the answer length limit (0: the backend's default)
    temperature  sampling temperature, sent to the API (and part of the cache key)
    token_param  the name the length limit travels under to OpenAI: max_tokens, or
                 max_completion_tokens for its reasoning models (which refuse max_tokens)
    concurrency  teacher requests in flight at once, and trajectories (collect) or
                 attempts (teach) worked on at once
    prices       a TOML/JSON price table layered over the built-in one (usage.py)
    cache        the on-disk response cache under $TRIPOST_HOME on or off
    batch        send each round's requests as one OpenAI Batch / Anthropic Message
                 Batch at half the list price (batch.py), answers in minutes to hours
    batch_wait   seconds without a new request before a round goes out as a batch
    batch_poll   seconds before a batch's status is checked again (growing 1.5x a time)

The options are ignored by the teachers that are not LLMs (scripted, replay).
A wrong value is one `TripostError` naming the key the way the user wrote it
(`teacher.timeout` in a run config, `--teacher-timeout` on the command line).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tripost.errors import TripostError
from tripost.settings import add_flags, from_section, option, section_defaults
from tripost.settings import from_args as section_from_args

# How OpenAI's Chat Completions take the answer length limit: `max_tokens`
# (most models, every OpenAI-compatible server) or `max_completion_tokens`
# (the o-series reasoning models refuse `max_tokens`). Anthropic's Messages
# API has only `max_tokens`; hf generates locally.
TOKEN_PARAMS = ("max_tokens", "max_completion_tokens")
MAX_TEMPERATURE = 2.0  # OpenAI's upper bound; Anthropic's is 1.0 and its API says so


@dataclass(frozen=True)
class TeacherOptions:
    timeout: float = option(60.0, "seconds per teacher request before it counts as failed and is retried", metavar="SECONDS")
    max_tokens: int = option(0, "answer length limit in tokens (0: the backend's default, 768; 320 for hf)", metavar="N")
    temperature: float = option(0.0, f"teacher sampling temperature, 0 to {MAX_TEMPERATURE:g} (sent to the API, part of the cache key)", metavar="T")
    token_param: str = option("max_tokens", "the name OpenAI gets the length limit under (max_completion_tokens for its reasoning models)",
                              choices=TOKEN_PARAMS)
    concurrency: int = option(8, "teacher requests in flight at once, and attempts worked on at once (an hf teacher answers one at a time)", metavar="N")
    prices: str = option("", "a TOML price table (USD per million tokens) over the built-in one, e.g. [\"my-model\"] input = 0.5", metavar="FILE.toml")
    cache: bool = option(True, "reuse answers from the on-disk response cache ($TRIPOST_HOME/teacher-cache.sqlite)")
    batch: bool = option(False, "send each collection round's requests as one OpenAI Batch / Anthropic Message Batch, billed at half "
                                "the list price; answers take minutes to hours; concurrency is then the most requests per batch")
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
        `check_types`); values are checked here, errors name `teacher.KEY`."""
        return from_section(cls, section).check(lambda name: f"teacher.{name}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TeacherOptions":
        """From the flags `add_teacher_flags` added; errors name the flag."""
        return section_from_args(cls, args, dest=_dest).check(_flag)

    def check(self, name: Callable[[str], str]) -> "TeacherOptions":
        """Self, when every value is usable; else one error naming the key
        (`name` spells a field the way the user set it)."""
        if not self.timeout > 0:
            raise TripostError(f"{name('timeout')} must be more than 0 seconds, not {self.timeout}")
        if self.max_tokens < 0:
            raise TripostError(f"{name('max_tokens')} must be at least 1 (or 0: the backend's default), not {self.max_tokens}")
        if not 0.0 <= self.temperature <= MAX_TEMPERATURE:
            raise TripostError(f"{name('temperature')} must be between 0 and {MAX_TEMPERATURE:g}, not {self.temperature}")
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
            from tripost.teachers.usage import load_prices

            # Read now, so a missing or broken file stops the command before
            # any work, not after the first paid request.
            try:
                load_prices(self.prices)
            except TripostError as e:
                raise TripostError(f"{name('prices')}: {e}") from None
        return self

    def teacher_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `make_teacher` these options set."""
        return {
            "timeout": float(self.timeout),
            "max_tokens": self.max_tokens or None,
            "temperature": float(self.temperature),
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
