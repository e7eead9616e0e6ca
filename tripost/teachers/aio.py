"""A private event loop in a daemon thread, for sync callers of async backends.

The `Teacher` protocol is synchronous, but API backends are async clients
whose connection pools and semaphores belong to one event loop. Running every
request of a teacher on one long-lived loop lets the sync methods, the async
methods (called from any other loop) and the batch helpers share those
resources safely, and lets a sync caller run many requests at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "tripost-teacher"):
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def main() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=main, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the private loop and block until it is done."""
        loop = self.loop
        if _running_loop() is loop:
            coro.close()
            raise RuntimeError("a teacher's sync method was called from inside its own event loop")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the private loop from whatever loop the caller is on."""
        loop = self.loop
        if _running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or loop.is_closed():
            return
        # Cancel what still runs (a sync caller in another thread is waiting
        # on it), so that caller gets CancelledError instead of waiting for good.
        try:
            asyncio.run_coroutine_threadsafe(_cancel_others(), loop).result(timeout=5)
        except Exception:  # a task that will not die: stop the loop all the same
            pass
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        if not loop.is_running():
            loop.close()


async def _cancel_others() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
