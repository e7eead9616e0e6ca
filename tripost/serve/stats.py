"""serve-teacher's /stats: requests by status, path and injected fault,
the sampling parameters they carried, the most answered at once, and the
batch counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

DISCONNECTED = "disconnected"  # the /stats status of a request whose client went away

# /stats "batches": batches created (both APIs, then each), items received, and how items ended.
BATCH_COUNTERS = ("created", "openai", "anthropic", "requests", "succeeded", "errored", "expired", "canceled")


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    by_status: Counter[str] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    # "max_completion_tokens=99", "temperature=0.3", "temperature=absent": how
    # the length limit and the temperature arrived, so a test can see what a
    # client really sent (values of two parameters, never content).
    params: Counter[str] = field(default_factory=Counter)
    # Batch API counters (BATCH_COUNTERS): batches created, items received and how they ended.
    batches: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0  # the most chat requests answered at once
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, path: str, status: int | str, fault: str | None = None) -> None:
        with self.lock:
            self.by_status[str(status)] += 1
            self.by_path[path] += 1
            if fault:
                self.faults[fault] += 1

    def batch(self, *keys: str, n: int = 1, fault: str | None = None) -> None:
        """Count `n` under each of `keys` in "batches" (and a batch item's injected `fault`)."""
        with self.lock:
            for key in keys:
                self.batches[key] += n
            if fault:
                self.faults[fault] += 1

    def sampling(self, body: dict[str, Any]) -> None:
        def shown(v: Any) -> str:  # numbers only: a client's text never lands in /stats
            return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "other"

        with self.lock:
            for name in ("max_tokens", "max_completion_tokens"):
                if name in body:
                    self.params[f"{name}={shown(body[name])}"] += 1
            self.params[f"temperature={shown(body['temperature']) if 'temperature' in body else 'absent'}"] += 1

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def disconnected(self, status: int) -> None:
        """A request recorded with `status` whose client went away before the answer was written."""
        with self.lock:
            self.by_status[str(status)] -= 1
            if self.by_status[str(status)] <= 0:
                del self.by_status[str(status)]
            self.by_status[DISCONNECTED] += 1

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": sum(self.by_path.values()),
                "by_status": dict(self.by_status),
                "by_path": dict(self.by_path),
                "faults": dict(self.faults),
                "params": dict(self.params),
                "batches": {key: self.batches[key] for key in BATCH_COUNTERS},
                "max_in_flight": self.max_in_flight,
                "uptime_s": round(time.time() - self.started, 3),
            }
