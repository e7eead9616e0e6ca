"""On-disk cache of chat responses (sqlite).

Keyed by a hash of the canonical request (`ChatRequest.key`: backend, its
endpoint, model, system prompt, messages, sampling parameters, sample
index), so re-running the same requests makes no HTTP call, and two servers
that serve models of the same name never share answers. The key and the
stored value hold no key material: requests never contain API keys, the
endpoint is the base URL without any credentials (`endpoint_id`), and only
the response text and its usage are stored.

Only answers the caller accepted are stored (requester.py): a rejected
answer cached would be returned for good, however healthy the server is
next time. `get` takes the same test, so an entry an older version stored
without it is dropped and asked again instead of being served.

One connection per cache, guarded by a lock: the requester calls it from the
teacher's event-loop thread, tests and tools from others.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tripost.errors import TripostError
from tripost.teachers.chat import ChatResponse

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise TripostError(f"teacher cache {self.path}: cannot open ({e})") from None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, accept: Callable[[ChatResponse], bool] | None = None) -> ChatResponse | None:
        """The stored answer, or None. An answer `accept` refuses is deleted
        and counts as a miss."""
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
            response = _load(row[0]) if row is not None else None
            if response is not None and accept is not None and not accept(response):
                response = None
            if response is None:
                if row is not None:
                    self._db.execute("DELETE FROM responses WHERE key = ?", (key,))
                self.misses += 1
                return None
            self.hits += 1
        return response

    def put(self, key: str, backend: str, model: str, response: ChatResponse) -> None:
        blob = json.dumps(response.to_dict(), ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, backend, model, response, created) VALUES (?, ?, ?, ?, ?)",
                (key, backend, model, blob, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _load(blob: str) -> ChatResponse | None:
    # A row that does not read back (a torn or foreign write) is a miss, not a crash.
    try:
        data = json.loads(blob)
        return ChatResponse.from_dict(data) if isinstance(data, dict) else None
    except (TypeError, ValueError):
        return None
