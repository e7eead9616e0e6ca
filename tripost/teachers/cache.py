"""On-disk cache of chat responses (sqlite).

Keyed by a hash of the canonical request (`ChatRequest.key`: backend, model,
system prompt, messages, sampling parameters, sample index), so re-running
the same requests makes no HTTP call. The key and the stored value hold no
key material: requests never contain API keys or base URLs, and only the
response text and its usage are stored.

One connection per cache, guarded by a lock: the requester calls it from the
teacher's event-loop thread, tests and tools from others.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
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

    def get(self, key: str) -> ChatResponse | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return ChatResponse.from_dict(json.loads(row[0]))

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
