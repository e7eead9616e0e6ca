"""serve-teacher's fault injection: the options (`Faults`, `--fail-codes`)
and the texts a garbage answer draws from. What the faults are is told in
server.py's docstring; failures.py holds the error answers themselves."""

from __future__ import annotations

from dataclasses import dataclass

from tripost.errors import TripostError
from tripost.serve.failures import QUOTA

DEFAULT_FAIL_CODES = (429, 500, 529)
GARBAGE = (
    "",
    "I am not sure what you mean.",
    "Feedback: In step (99) the part \"nothing\" is incorrect. This is because it does not exist.",
    "Feedback: everything looks great to me!",
    "Updated Answer:\n(1) Something unrelated.\n(2) More of it.",
    "Updated Answer:\n(1) Let us think.\n(Final response) So the answer is",
    "{\"feedback\": \"truncated json",
    "lorem ipsum dolor sit amet, consectetur adipiscing elit",
)


@dataclass
class Faults:
    fail_rate: float = 0.0
    fail_codes: tuple[int | str, ...] = DEFAULT_FAIL_CODES
    latency: float = 0.0
    garbage_rate: float = 0.0
    retry_after: float = 1.0
    seed: int = 0
    malformed_rate: float = 0.0
    batch_latency: float = 0.0  # seconds a batch stays in progress before its items are answered
    batch_expire_rate: float = 0.0  # share of batch items never answered (the batch ends expired)

    def __post_init__(self) -> None:
        for name in ("fail_rate", "garbage_rate", "malformed_rate", "batch_expire_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise TripostError(f"serve-teacher: --{name.replace('_', '-')} must be between 0 and 1, got {v}")
        if self.latency < 0 or self.retry_after < 0 or self.batch_latency < 0:
            raise TripostError("serve-teacher: --latency, --retry-after and --batch-latency cannot be negative")
        if self.fail_rate > 0 and not self.fail_codes:
            raise TripostError("serve-teacher: --fail-rate needs at least one code in --fail-codes")


def parse_fail_codes(text: str) -> tuple[int | str, ...]:
    """'429,500,529,quota' -> (429, 500, 529, 'quota')."""
    out: list[int | str] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part == QUOTA:
            out.append(QUOTA)
            continue
        try:
            code = int(part)
        except ValueError:
            raise TripostError(f"serve-teacher: bad status code {part!r} in --fail-codes (e.g. 429,500,529,quota)") from None
        if not 400 <= code <= 599:
            raise TripostError(f"serve-teacher: --fail-codes takes error statuses 400-599, got {code}")
        out.append(code)
    return tuple(out)
