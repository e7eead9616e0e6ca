"""Issue 32, item 6: a teacher answer is bounded by what was asked.

A right scripted answer padded with a megabyte of text was accepted, cached
and written into every log record; a 100 MB answer was read whole (658 MB
peak for 2 attempts), though `max_tokens=768` was asked. Now an answer over
`max_answer_chars(max_tokens)` (32 characters a token) is rejected as
`too_long`, counted, never cached nor logged, and the SDK backends stop
reading the HTTP body at `max_body_bytes(max_tokens)`.

The teacher is the real OpenAI or Anthropic SDK against a small padding
proxy on loopback: it asks `tripost serve-teacher` (the scripted teacher)
and sends its answer back with padding appended, with a Content-Length or
(mode "stream") without one, the body running until the connection ends."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import tracemalloc
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tripost.format import parse_rationale
from tripost.serve import start_server
from tripost.tasks import get_task, sample_problems
from tripost.teachers import make_teacher
from tripost.teachers.cache import ResponseCache
from tripost.teachers.chat import ChatMessage, ChatRequest, ChatResponse, Usage, max_answer_chars, max_body_bytes
from tripost.teachers.requester import Requester
from tripost.teachers.retry import RetryPolicy
from tripost.teachers.scripted import ScriptedTeacher

TOKEN = "tpst-test-bounds-token-13579"
FAST = RetryPolicy(max_attempts=3, initial=0.005, jitter=0.005, max_wait=0.05)
SDKS = ("openai", "anthropic")
MARK = b" PADDING"  # what the padding is made of, to look for it afterwards
MB = 1 << 20


def test_the_bound_is_a_generous_multiple_of_max_tokens():
    assert max_answer_chars(768) == 24_576  # 8 x ~4 characters a token
    assert max_answer_chars(1) == max_answer_chars(0) == 4096  # never so small that an honest answer fails
    assert max_body_bytes(768) == 12 * 24_576 + 256 * 1024
    assert max_body_bytes(768) < MB


# ------------------------------------------------- the requester, no HTTP ---


class _Backend:
    name, model, endpoint, max_concurrency = "fake", "m", "", 4

    def __init__(self, text: str):
        self.text = text
        self.calls = 0

    async def acomplete(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        return ChatResponse(text=self.text, usage=Usage(input_tokens=10, output_tokens=request.max_tokens))

    async def aclose(self) -> None:
        pass


def _request(max_tokens: int = 768) -> ChatRequest:
    return ChatRequest(model="m", system="s", messages=(ChatMessage("user", "hello"),), max_tokens=max_tokens)


def test_the_requester_refuses_an_over_long_answer_and_never_caches_it(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    limit = max_answer_chars(768)
    backend = _Backend("x" * (limit + 1))
    req = Requester(backend, cache=cache, policy=FAST)
    out = asyncio.run(req.request(_request(), accept=lambda r: True))
    assert out.response is None and out.error is not None and out.error.kind == "too_long"
    assert str(out.error) == f"fake: answer too long ({limit + 1:,} characters where a 768-token answer may have {limit:,})"
    assert backend.calls == 1 and not out.error.fatal and out.retries == 0  # asked once, not retried
    assert out.usage == Usage(10, 768)  # billed all the same
    entry = req.ledger.to_dict()["fake:m"]
    assert entry["failures"] == 1 and entry["output_tokens"] == 768
    assert len(cache) == 0
    # At the bound it is an answer.
    backend.text = "x" * limit
    assert asyncio.run(req.request(_request())).response.text == backend.text and len(cache) == 1

    # An over-long answer an older version cached is dropped and asked again.
    key = req.key(_request(100))
    cache.put(key, "fake", "m", ChatResponse(text="y" * (max_answer_chars(100) + 1)))
    backend.text, calls = "short", backend.calls
    out = asyncio.run(req.request(_request(100)))
    assert not out.cached and out.response.text == "short" and backend.calls == calls + 1
    assert cache.get(key).text == "short"


# ------------------------------------------------------------ the proxy ---


@dataclass
class _Proxy:
    upstream: str
    pad: int = 0  # bytes of padding after the answer's text
    which: str = "all"  # "all", "feedback" or "improve": the answers padded
    mode: str = "length"  # "length": Content-Length sent; "stream": none, the body ends with the connection
    sent: list[int] = field(default_factory=list)  # padding bytes written per padded answer
    url: str = ""


def _envelope(anthropic: bool, text: str) -> tuple[bytes, bytes]:
    """The body before and after the padding: an answer whose text goes on."""
    esc = json.dumps(text)[1:-1].encode()
    if anthropic:
        return (b'{"id":"msg_pad","type":"message","role":"assistant","model":"scripted","stop_reason":"max_tokens",'
                b'"stop_sequence":null,"content":[{"type":"text","text":"' + esc,
                b'"}],"usage":{"input_tokens":100,"output_tokens":768}}')
    return (b'{"id":"chatcmpl-pad","object":"chat.completion","created":0,"model":"scripted","choices":[{"index":0,'
            b'"finish_reason":"length","message":{"role":"assistant","content":"' + esc,
            b'"}}],"usage":{"prompt_tokens":100,"completion_tokens":768,"total_tokens":868}}')


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # a body without a length runs to the end of the connection

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        cfg: _Proxy = self.server.cfg  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}", "x-api-key": TOKEN,
                   "anthropic-version": self.headers.get("anthropic-version") or "2023-06-01"}
        with urllib.request.urlopen(urllib.request.Request(cfg.upstream + self.path, data=body, headers=headers)) as r:
            answer = json.loads(r.read())
        anthropic = self.path.endswith("/messages")
        text = answer["content"][0]["text"] if anthropic else answer["choices"][0]["message"]["content"]
        kind = "feedback" if text.startswith("Feedback") else "improve"
        pad = cfg.pad if cfg.which in ("all", kind) else 0
        head, tail = _envelope(anthropic, text)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if cfg.mode == "length":
            self.send_header("Content-Length", str(len(head) + pad + len(tail)))
        self.end_headers()
        chunk = MARK * (65536 // len(MARK))
        sent = 0
        try:
            self.wfile.write(head)
            while sent < pad:
                part = chunk[: pad - sent]
                self.wfile.write(part)
                sent += len(part)
            self.wfile.write(tail)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what we want to see
        finally:
            if pad:
                cfg.sent.append(sent)


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture
def proxy():
    with start_server(ScriptedTeacher(), token=TOKEN) as upstream:
        cfg = _Proxy(upstream=upstream.url)
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.cfg = cfg  # type: ignore[attr-defined]
        cfg.url = "http://127.0.0.1:%d" % httpd.server_address[1]
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield cfg
        finally:
            httpd.shutdown()
            httpd.server_close()


def _teacher(sdk: str, proxy: _Proxy, **kw):
    base = proxy.url + "/v1" if sdk == "openai" else proxy.url
    kw.setdefault("cache", False)
    return make_teacher(f"{sdk}:scripted", base_url=base, api_key="sk-not-used-0000", policy=FAST, **kw)


def _wrong_attempts(n: int, seed: int = 4) -> list[tuple]:
    task = get_task("arithmetic")
    out = []
    for i, p in enumerate(sample_problems(task, n=n, seed=seed)):
        rng = random.Random(f"{seed}|{i}")
        out.append((p, task.corrupt(p, rng.randint(1, parse_rationale(p.rationale).n_steps), rng)))
    return out


@pytest.mark.parametrize("sdk", SDKS)
@pytest.mark.parametrize("pad", [100 * 1024, MB])
def test_a_padded_answer_is_too_long_counted_and_not_cached(sdk, pad, proxy, tmp_path):
    """100 KB of padding: the body is read (under the 557 KB byte bound), the
    text is over the 24,576 characters 768 tokens allow, and what it was
    billed is booked. 1 MB: the body is refused unread."""
    items = _wrong_attempts(3)
    cache = tmp_path / "cache.sqlite"
    proxy.pad = pad  # a right answer, then the padding
    t = _teacher(sdk, proxy, cache=cache)
    try:
        replies = t.feedback_many(items)
        ledger = t.ledger.to_dict()[f"{sdk}:scripted"]
    finally:
        t.close()
    assert [r.rejected for r in replies] == ["too_long"] * 3
    assert all(r.feedback is None and r.text == "" for r in replies)
    assert all(r.calls[0].rejected == "too_long" and r.calls[0].retries == 0 and not r.calls[0].cached for r in replies)
    assert t.rejections == {"too_long": 3}
    assert len(ResponseCache(cache)) == 0
    assert ledger["failures"] == 3 and ledger["http_requests"] == 3
    read = pad < max_body_bytes(768)
    assert all(r.calls[0].usage.get("output") == (768 if read else None) for r in replies)


@pytest.mark.parametrize("sdk", SDKS)
@pytest.mark.parametrize("which", ["feedback", "improve"])
def test_a_collected_record_never_holds_the_padding(sdk, which, proxy, tmp_path):
    from tripost.log import read_log
    from tripost.sources.teacher import CollectConfig, collect

    items = _wrong_attempts(3, seed=7)
    attempts = {p.id: a for p, a in items}
    proxy.pad, proxy.which = MB, which
    cache = tmp_path / "cache.sqlite"
    t = _teacher(sdk, proxy, cache=cache)
    log = tmp_path / "log.jsonl"
    try:
        res = collect([p for p, _ in items], lambda problems, n, seed: [[attempts[p.id]] * n for p in problems], t, log,
                      CollectConfig(samples_per_problem=1, teacher_concurrency=3), progress=False)
    finally:
        t.close()
    records = list(read_log(log))
    assert len(records) == 3 and res.teacher_rejections == {"too_long": 3}
    stop = f"teacher {'feedback' if which == 'feedback' else 'improvement'} rejected: too_long"
    assert all(r.kind == "failed" and r.stop_reason == stop for r in records)
    assert all(r.teacher_calls[-1]["rejected"] == "too_long" for r in records)
    assert MARK.strip() not in log.read_bytes() and log.stat().st_size < 64 * 1024
    # Only the right, short answers (feedback, when improvements were padded) are cached.
    assert len(ResponseCache(cache)) == (0 if which == "feedback" else 3)


@pytest.mark.parametrize("sdk", SDKS)
@pytest.mark.parametrize("mode", ["length", "stream"])
def test_a_100_mb_answer_is_not_read(sdk, mode, proxy):
    """The read stops at `max_body_bytes` (557 KB at 768 tokens): a declared
    length over it is refused before a byte of the body is read, a body
    without one is cut off there; the server sees the connection close."""
    items = _wrong_attempts(2, seed=11)
    t = _teacher(sdk, proxy)
    try:
        assert t.feedback(*items[0]).rejected is None  # warm: the SDK client made, its modules loaded
        proxy.mode, proxy.pad = mode, 100 * MB
        tracemalloc.start()
        try:
            replies = t.feedback_many(items)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        t.close()
    assert [r.rejected for r in replies] == ["too_long"] * 2
    assert t.rejections == {"too_long": 2}
    assert peak < 16 * MB, f"{peak / MB:.1f} MB"
    deadline = time.time() + 30  # the proxy's writes end when it sees the connection closed
    while len(proxy.sent) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(proxy.sent) == 2 and max(proxy.sent) < 40 * MB, proxy.sent  # the client hung up (socket buffers hold a few MB)
