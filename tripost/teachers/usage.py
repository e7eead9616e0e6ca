"""Token usage ledger per backend and model, and cost from a price table.

Prices are US dollars per million tokens, one price per usage bucket
(input, output, cache read, cache write; see chat.py for the buckets). The
defaults below are list prices at the time of writing and WILL go stale:
override them with `prices=` (a mapping or a TOML/JSON file, see
`load_prices`; `teacher.prices` / `--teacher-prices`). A model with no price
is never guessed: its requests add nothing to the cost, the ledger marks it
unpriced and says so once on stderr, and summaries and reports show
"unpriced" (`format_cost`) instead of a cost that looks like $0.
A backend that runs on this machine (`LOCAL_BACKENDS`) bills nothing and is
never unpriced.

A request answered through a provider's batch API (`teacher.batch`,
batch.py) is billed at `BATCH_PRICE` of the list price: OpenAI's Batch API
and Anthropic's Message Batches both take 50% off every token bucket,
prompt-cache reads and writes included. The ledger keeps what those requests
would have cost live (`list_cost_usd`) beside what they cost, so a report can
show the saving.
"""

from __future__ import annotations

import json
import sys
import threading
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from tripost.errors import TripostError
from tripost.teachers.chat import Usage


@dataclass(frozen=True)
class Price:
    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * self.cache_read
            + usage.cache_write_tokens * self.cache_write
        ) / 1_000_000

    @classmethod
    def from_mapping(cls, name: str, d: Mapping[str, Any]) -> "Price":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise TripostError(
                f"price for {name!r}: unknown field(s) {', '.join(sorted(unknown))}; "
                f"expected {', '.join(cls.__dataclass_fields__)} (USD per million tokens)"
            )
        try:
            values = {k: float(v) for k, v in d.items()}
        except (TypeError, ValueError):
            raise TripostError(f"price for {name!r}: every value must be a number (USD per million tokens)") from None
        if any(v < 0 for v in values.values()):
            raise TripostError(f"price for {name!r}: prices cannot be negative")
        return cls(**values)


# The share of the list price a batched request costs (OpenAI Batch API,
# Anthropic Message Batches: "50% discount" on input and output alike).
BATCH_PRICE = 0.5

# Backends that run on this machine: nothing to bill, so a missing price is no gap.
LOCAL_BACKENDS = frozenset({"hf"})

# Model name prefix -> price. Longest matching prefix wins, so dated model
# names ("claude-3-5-haiku-20241022") find their family.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.60, 0.075, 0.0),
    "gpt-4o": Price(2.50, 10.00, 1.25, 0.0),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025, 0.0),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10, 0.0),
    "gpt-4.1": Price(2.00, 8.00, 0.50, 0.0),
    "claude-3-5-haiku": Price(0.80, 4.00, 0.08, 1.00),
    "claude-3-5-sonnet": Price(3.00, 15.00, 0.30, 3.75),
    "claude-3-7-sonnet": Price(3.00, 15.00, 0.30, 3.75),
    "claude-sonnet-4": Price(3.00, 15.00, 0.30, 3.75),
    "claude-opus-4": Price(15.00, 75.00, 1.50, 18.75),
}


class PriceTable:
    def __init__(self, overrides: Mapping[str, Price | Mapping[str, Any]] | None = None, defaults: bool = True):
        self.prices: dict[str, Price] = dict(DEFAULT_PRICES) if defaults else {}
        for name, p in (overrides or {}).items():
            self.prices[name] = p if isinstance(p, Price) else Price.from_mapping(name, p)

    def lookup(self, model: str) -> Price | None:
        best = None
        for prefix in self.prices:
            if model == prefix or model.startswith(prefix):
                if best is None or len(prefix) > len(best):
                    best = prefix
        return self.prices[best] if best is not None else None

    def cost(self, model: str, usage: Usage) -> float:
        price = self.lookup(model)
        return price.cost(usage) if price is not None else 0.0


def load_prices(source: str | Path | Mapping[str, Any] | None) -> PriceTable:
    """A price table from overrides: a mapping `{model: {input: .., output: ..}}`
    or a TOML/JSON file with that shape (a TOML file may nest it under
    `[prices]`, as in a run config)."""
    if source is None:
        return PriceTable()
    if isinstance(source, PriceTable):
        return source
    if isinstance(source, Mapping):
        return PriceTable(source)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TripostError(f"price table {path}: cannot read ({e.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise TripostError(f"price table {path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'} ({e})") from None
    if isinstance(data.get("prices"), dict):
        data = data["prices"]
    if not all(isinstance(v, dict) for v in data.values()):
        raise TripostError(f"price table {path}: expected a table per model, e.g. [\"gpt-4o\"] input = 2.5")
    return PriceTable(data)


@dataclass
class LedgerEntry:
    calls: int = 0  # teacher requests (cache hits included)
    http_requests: int = 0  # attempts that reached the backend, retries included
    retries: int = 0
    cache_hits: int = 0
    failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    batched: int = 0  # requests answered through a provider batch, at BATCH_PRICE
    list_cost_usd: float = 0.0  # what the billed requests would have cost live (= cost_usd without batches)
    priced: bool = True
    retry_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """Thread-safe running totals per (backend, model)."""

    def __init__(self, prices: PriceTable | None = None):
        self.prices = prices or PriceTable()
        self._entries: dict[tuple[str, str], LedgerEntry] = {}
        self._lock = threading.Lock()

    def unpriced(self, backend: str, model: str) -> bool:
        """Whether requests to `model` cost money this ledger cannot count."""
        return backend not in LOCAL_BACKENDS and self.prices.lookup(model) is None

    def record(
        self,
        backend: str,
        model: str,
        usage: Usage,
        *,
        retries: int = 0,
        cached: bool = False,
        failed: bool = False,
        retry_reasons: Mapping[str, int] | None = None,
        batched: bool = False,
    ) -> float:
        """Add one teacher request; returns its cost (0 for a cache hit;
        `BATCH_PRICE` of the list price for one a provider batch answered)."""
        list_cost = 0.0 if cached else self.prices.cost(model, usage)
        cost = list_cost * BATCH_PRICE if batched else list_cost
        newly_unpriced = False
        with self._lock:
            e = self._entries.setdefault((backend, model), LedgerEntry())
            e.calls += 1
            e.retries += retries
            e.http_requests += 0 if cached else retries + 1
            e.cache_hits += int(cached)
            e.failures += int(failed)
            for reason, n in (retry_reasons or {}).items():
                e.retry_reasons[reason] = e.retry_reasons.get(reason, 0) + n
            if not cached:
                e.input_tokens += usage.input_tokens
                e.output_tokens += usage.output_tokens
                e.cache_read_tokens += usage.cache_read_tokens
                e.cache_write_tokens += usage.cache_write_tokens
                e.cost_usd += cost
                e.list_cost_usd += list_cost
                e.batched += int(batched)
                # A failed request used no tokens: nothing went uncounted yet.
                if e.priced and not failed and self.unpriced(backend, model):
                    e.priced = False
                    newly_unpriced = True
        if newly_unpriced:
            # Once per model and ledger: a run of thousands of requests says it once.
            print(f"tripost: warning: no price for {backend} model {model!r} in the built-in price table or the prices file; "
                  "its cost is reported as unpriced, not $0 (set one with teacher.prices / --teacher-prices)",
                  file=sys.stderr, flush=True)
        return cost

    def entry(self, backend: str, model: str) -> LedgerEntry:
        with self._lock:
            e = self._entries.get((backend, model), LedgerEntry())
            return LedgerEntry(**{**asdict(e), "retry_reasons": dict(e.retry_reasons)})

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {f"{b}:{m}": e.to_dict() for (b, m), e in sorted(self._entries.items())}

    def total_cost(self) -> float:
        with self._lock:
            return sum(e.cost_usd for e in self._entries.values())

    def total_list_cost(self) -> float:
        """What the billed requests would have cost at list price (no batch discount)."""
        with self._lock:
            return sum(e.list_cost_usd for e in self._entries.values())

    def unpriced_models(self) -> list[str]:
        """`backend:model` of every model that answered requests without a price."""
        with self._lock:
            return [f"{b}:{m}" for (b, m), e in sorted(self._entries.items()) if not e.priced]


def format_cost(cost_usd: float, unpriced: Any = (), dollar: str = "$") -> str:
    """A cost for people: "$0.0123"; "unpriced" when requests went to a model
    without a price and nothing was counted; "$0.0123 + unpriced" when part
    was. `unpriced`: the unpriced models (or any truthy value)."""
    if not unpriced:
        return f"{dollar}{cost_usd:.4f}"
    return f"{dollar}{cost_usd:.4f} + unpriced" if cost_usd > 0 else "unpriced"
