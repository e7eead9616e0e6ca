"""Token usage ledger per backend and model, and cost from a price database.

Prices are US dollars per million tokens, by usage bucket (input, output,
cache read, cache write; see chat.py for the buckets). They come from
`genai-prices` (pydantic/genai-prices on GitHub, MIT): a maintained database
of both providers' list prices, with their prompt-cache prices (reads,
5-minute and 1-hour writes), long-context tiers, and Batch API prices, and
with the rule that matches a dated or aliased model id to its model. Its
data is the one in the installed package: tripost never downloads prices
(the package's `UpdatePrices` is opt-in and left off, so a run talks to
nobody but its teacher); `pip install -U genai-prices` brings newer ones.

Over the database: the user's table (`prices=`, a mapping or a TOML/JSON
file, `load_prices`; `teacher.prices` / `--teacher-prices`). A model it
names (the longest matching name prefix) is priced by it alone. A model in
neither is never guessed: its requests add nothing to the cost, the ledger
marks it unpriced and says so once on stderr, and summaries and reports
show "unpriced" (`format_cost`) instead of a cost that looks like $0.
A backend that runs on this machine (`LOCAL_BACKENDS`) bills nothing and is
never unpriced.

A request answered through a provider's batch API (`teacher.batch`,
batch.py) is billed at the database's batch price (OpenAI's Batch API and
Anthropic's Message Batches take 50% off every bucket; genai-prices bills a
model the provider does not serve in batch at its list price), or, for a
model the user's table prices, at `BATCH_PRICE` of that price. The ledger
keeps what those requests would have cost live (`list_cost_usd`) beside
what they cost, so a report can show the saving.

Costs are computed per request: a long-context tier (a price that rises
above 200k input tokens) applies to the request that crosses it.
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

PRICE_DATABASE = "genai-prices"
# tripost's backend -> the database's provider id.
DATABASE_PROVIDERS = {"openai": "openai", "anthropic": "anthropic"}
# Anthropic bills a 1-hour cache write at twice the input price (a 5-minute
# one at 1.25 times): the default of an override that names no 1-hour price.
ONE_HOUR_WRITE_FACTOR = 2.0
MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    """A user's price for a model (USD per million tokens)."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0
    cache_write_1h: float | None = None  # None: ONE_HOUR_WRITE_FACTOR times `input`

    def cost(self, usage: Usage) -> float:
        one_hour = self.cache_write_1h if self.cache_write_1h is not None else ONE_HOUR_WRITE_FACTOR * self.input
        five_minutes = max(usage.cache_write_tokens - usage.cache_write_1h_tokens, 0)
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * self.cache_read
            + five_minutes * self.cache_write
            + usage.cache_write_1h_tokens * one_hour
        ) / MILLION

    @classmethod
    def from_mapping(cls, name: str, d: Mapping[str, Any]) -> "Price":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise TripostError(
                f"price for {name!r}: unknown field(s) {', '.join(sorted(unknown))}; "
                f"expected {', '.join(cls.__dataclass_fields__)} (USD per million tokens)"
            )
        try:  # None: not given (asdict of a Price without a 1-hour price)
            values = {k: float(v) for k, v in d.items() if v is not None}
        except (TypeError, ValueError):
            raise TripostError(f"price for {name!r}: every value must be a number (USD per million tokens)") from None
        if any(v < 0 for v in values.values()):
            raise TripostError(f"price for {name!r}: prices cannot be negative")
        return cls(**values)


# The share of a user's list price a batched request costs (OpenAI Batch
# API, Anthropic Message Batches: "50% discount" on every bucket).
BATCH_PRICE = 0.5

# Backends that run on this machine: nothing to bill, so a missing price is no gap.
LOCAL_BACKENDS = frozenset({"hf"})


def database_version() -> str:
    """The installed price database's version ("" when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PRICE_DATABASE)
    except PackageNotFoundError:
        return ""


def database_cost(backend: str, model: str, usage: Usage, *, batched: bool = False) -> float | None:
    """The price database's cost of one request (USD), or None when it does
    not price `model` for `backend`'s provider. `batched`: at the provider's
    batch price."""
    provider = DATABASE_PROVIDERS.get(backend)
    if provider is None or not model:
        return None
    from genai_prices import Usage as DatabaseUsage
    from genai_prices import calc_price

    # The database's `input_tokens` is every input token, cached or not; the
    # cache buckets are parts of it (its README, "Cached input tokens").
    counts = {
        "input_tokens": usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_1h_tokens": min(usage.cache_write_1h_tokens, usage.cache_write_tokens),
    }
    try:
        price = calc_price(DatabaseUsage(**{k: v for k, v in counts.items() if v}), model, provider_id=provider,
                           price_context={"processing": "batch"} if batched else None)
    except LookupError:  # the database does not know the model
        return None
    return float(price.total_price)


def database_price(backend: str, model: str) -> Price | None:
    """The database's list price of `model` as a flat `Price` (a tiered
    price at its base tier), or None when it has none: for showing a price
    and for scripts that bill one model as another. Costs go through
    `database_cost`, which applies tiers."""
    provider = DATABASE_PROVIDERS.get(backend)
    if provider is None:
        return None
    from datetime import UTC, datetime

    from genai_prices import data_snapshot

    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    p = info.get_prices(datetime.now(tz=UTC))

    def per_million(key: str) -> float | None:
        value = getattr(p, key, None)
        value = getattr(value, "base", value)  # TieredPrices: the base tier
        return float(value) if value is not None else None

    values = {f: per_million(k) for f, k in (("input", "input_mtok"), ("output", "output_mtok"), ("cache_read", "cache_read_mtok"),
                                               ("cache_write", "cache_write_mtok"), ("cache_write_1h", "cache_write_1h_mtok"))}
    if values["input"] is None and values["output"] is None:
        return None
    return Price(**{k: (v if v is not None else (None if k == "cache_write_1h" else 0.0)) for k, v in values.items()})


class PriceTable:
    """The user's prices (`overrides`: model name prefix -> Price) over the
    price database (`database`: off, only the user's prices count)."""

    def __init__(self, overrides: Mapping[str, Price | Mapping[str, Any]] | None = None, database: bool = True):
        self.prices: dict[str, Price] = {}
        self.database = database
        self._known: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()
        for name, p in (overrides or {}).items():
            self.prices[name] = p if isinstance(p, Price) else Price.from_mapping(name, p)

    def override(self, model: str) -> Price | None:
        """The user's price for `model`: the longest name prefix it matches."""
        best = None
        for prefix in self.prices:
            if model == prefix or model.startswith(prefix):
                if best is None or len(prefix) > len(best):
                    best = prefix
        return self.prices[best] if best is not None else None

    def priced(self, backend: str, model: str) -> bool:
        """Whether requests to `model` (through `backend`) have a price."""
        if self.override(model) is not None:
            return True
        if not self.database:
            return False
        with self._lock:
            known = self._known.get((backend, model))
        if known is None:
            known = database_cost(backend, model, Usage()) is not None
            with self._lock:
                self._known[(backend, model)] = known
        return known

    def cost(self, backend: str, model: str, usage: Usage, *, batched: bool = False) -> float:
        """The cost of one request (0 when unpriced); `batched`: at the batch price."""
        price = self.override(model)
        if price is not None:
            return price.cost(usage) * (BATCH_PRICE if batched else 1.0)
        if not self.database:
            return 0.0
        cost = database_cost(backend, model, usage, batched=batched)
        return cost if cost is not None else 0.0


def load_prices(source: str | Path | Mapping[str, Any] | None) -> PriceTable:
    """The price table: the database, with overrides from a mapping
    `{model: {input: .., output: ..}}` or a TOML/JSON file with that shape (a
    TOML file may nest it under `[prices]`, as in a run config)."""
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
    except RecursionError:  # a hostile file nested deeper than the parser's stack
        raise TripostError(f"price table {path}: nested too deeply to read") from None
    if isinstance(data.get("prices"), dict):
        data = data["prices"]
    if not all(isinstance(v, dict) for v in data.values()):
        raise TripostError(f"price table {path}: expected a table per model, e.g. [\"my-model\"] input = 2.5")
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
    cache_write_1h_tokens: int = 0  # of cache_write_tokens, those kept for an hour (Anthropic batches)
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
        return backend not in LOCAL_BACKENDS and not self.prices.priced(backend, model)

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
        """Add one teacher request; returns its cost (0 for a cache hit; the
        batch price for one a provider batch answered)."""
        list_cost = 0.0 if cached else self.prices.cost(backend, model, usage)
        cost = self.prices.cost(backend, model, usage, batched=True) if batched and not cached else list_cost
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
                e.cache_write_1h_tokens += usage.cache_write_1h_tokens
                e.cost_usd += cost
                e.list_cost_usd += list_cost
                e.batched += int(batched)
                # A failed request used no tokens: nothing went uncounted yet.
                if e.priced and not failed and self.unpriced(backend, model):
                    e.priced = False
                    newly_unpriced = True
        if newly_unpriced:
            # Once per model and ledger: a run of thousands of requests says it once.
            print(f"tripost: warning: no price for {backend} model {model!r} in the price database ({PRICE_DATABASE} "
                  f"{database_version()}) or the prices file; its cost is reported as unpriced, not $0 (set one with "
                  "teacher.prices / --teacher-prices)", file=sys.stderr, flush=True)
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
