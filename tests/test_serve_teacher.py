"""The API teachers for real: the official `openai` and `anthropic` SDKs talk
to `serve-teacher` on loopback (127.0.0.1, an ephemeral port), configured
through OPENAI_BASE_URL / ANTHROPIC_BASE_URL, with the server's token as
their API key."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import urllib.request
from pathlib import Path

import openai
import pytest

from tripost.errors import TripostError
from tripost.format import parse_rationale
from tripost.serve import Faults, start_server
from tripost.tasks import FAMILIES, get_task, sample_problems
from tripost.teachers import make_teacher
from tripost.teachers.prompted import PromptedTeacher
from tripost.teachers.retry import RetryPolicy, classify
from tripost.teachers.scripted import ScriptedTeacher

ROOT = Path(__file__).resolve().parent.parent
FAKE_OPENAI_KEY = "sk-test-DO-NOT-LEAK-0penai-1234567890"
FAKE_ANTHROPIC_KEY = "sk-ant-test-DO-NOT-LEAK-anthr0pic-0987"
# Not key-shaped on purpose: only its registration keeps it out of messages.
TOKEN = "tpst-test-DO-NOT-LEAK-serve-token-24680"
SECRETS = (TOKEN, FAKE_OPENAI_KEY, FAKE_ANTHROPIC_KEY)
FAST = RetryPolicy(max_attempts=10, initial=0.005, jitter=0.005, max_wait=0.05)
SDKS = ("openai", "anthropic")
SCRIPTED = ScriptedTeacher()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("TRIPOST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC_KEY)
    for var in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)


def serve(teacher=None, **kw):
    """serve-teacher in a thread, with the tests' token."""
    return start_server(teacher or ScriptedTeacher(), token=TOKEN, **kw)


def point_at(monkeypatch, srv) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
    # The server's token is what the SDKs send as their API key.
    monkeypatch.setenv("OPENAI_API_KEY", srv.token)
    monkeypatch.setenv("ANTHROPIC_API_KEY", srv.token)


@pytest.fixture
def server(monkeypatch):
    # Below the providers' 1,024: most few-shot prefixes are shorter than that
    # (docs/benchmarks/teacher-prefixes.md), and these tests watch the caching.
    with serve(cache_min_tokens=512) as srv:
        point_at(monkeypatch, srv)
        yield srv


def teacher(sdk: str, **kw) -> PromptedTeacher:
    kw.setdefault("cache", False)
    kw.setdefault("policy", FAST)
    t = make_teacher(f"{sdk}:scripted", **kw)
    assert isinstance(t, PromptedTeacher)
    return t


def families() -> list[str]:
    out = []
    for fam in FAMILIES:
        try:
            get_task(fam)
        except (ImportError, TripostError):
            continue
        out.append(fam)
    return out


def cases(family: str, n: int = 3, seed: int = 0) -> list[tuple]:
    """(problem, attempt) pairs: wrong attempts at random steps plus one gold rationale."""
    task = get_task(family)
    if not task.scripted:  # qa: answer-only problems from records
        p = task.from_record({"id": "qa-1", "question": "How many legs do 3 spiders have?", "answer": "24"})
        return [(p, "(1) A spider has 8 legs.\n(2) 3 * 8 = 21.\n(Final response) So the answer is 21."),
                (p, "(1) A spider has 8 legs.\n(2) 3 * 8 = 24.\n(Final response) So the answer is 24.")]
    out = []
    problems = sample_problems(task, n=n, seed=seed)
    for i, p in enumerate(problems):
        rng = random.Random(f"{family}|{seed}|{i}")
        k = rng.randint(1, parse_rationale(p.rationale).n_steps + 1)
        out.append((p, task.corrupt(p, k, rng)))
    out.append((problems[0], problems[0].rationale))
    return out


def stats(srv) -> dict:
    with urllib.request.urlopen(srv.url + "/stats") as r:
        return json.loads(r.read())


# ----------------------------------------------------------- equivalence ---


@pytest.mark.parametrize("sdk", SDKS)
def test_sdk_teacher_equals_scripted_for_every_family(sdk, server):
    t = teacher(sdk)
    refused = 0
    try:
        for fam in families():
            items = cases(fam)
            got = t.feedback_many(items)
            for (p, attempt), reply in zip(items, got):
                want = SCRIPTED.feedback(p, attempt)
                assert reply.rejected is None, (fam, reply)
                assert reply.text == want.text
                assert reply.feedback.error_step == want.feedback.error_step
                assert reply.feedback.segment == want.feedback.segment.replace('"', "'")
                if want.feedback.is_correct:
                    continue
                if not get_task(fam).scripted:
                    # The scripted teacher cannot improve qa; the server says so and the client raises.
                    with pytest.raises(TripostError, match="HTTP 422"):
                        t.improve(p, attempt, reply.feedback)
                    refused += 1
                    continue
                imp = t.improve(p, attempt, reply.feedback)
                assert imp.rejected is None and imp.rationale == SCRIPTED.improve(p, attempt, want.feedback).rationale
        entry = t.ledger.entry(sdk, "scripted")
        assert entry.input_tokens > 0 and entry.output_tokens > 0 and entry.failures == refused
        # Shared prompt prefixes (system + few-shot) come back as provider cache reads.
        assert entry.cache_read_tokens > 0
        if sdk == "anthropic":
            assert entry.cache_write_tokens > 0
    finally:
        t.close()


# ------------------------------------------------------ faults and caching ---


def test_prompt_caching_needs_a_prefix_as_long_as_the_providers_minimum(monkeypatch, capsys):
    """Issue 19, item 3: the Anthropic backend marks a shared prefix only when
    it is long enough to be cached, and serve-teacher, like the APIs, caches
    no prefix below its minimum, marked or not. Issue 29: a model the table
    of minimums does not know is marked, and a marked prefix the provider
    cached none of (cache_creation_input_tokens 0) is one warning."""
    import dataclasses

    from tripost.teachers.anthropic_chat import AnthropicChat, cache_minimum, prefix_tokens

    short = cases("arithmetic")[:3]   # ~580 tokens of few-shot prefix
    long = cases("logical_deduction")[:3]  # ~1,000 tokens (SmolLM2), 1,572 by the client's estimate
    backend = AnthropicChat("claude-sonnet-4-5")
    t = teacher("anthropic")
    try:
        built = {name: t.build_request("feedback", p, a) for name, (p, a) in (("short", short[0]), ("long", long[0]))}
    finally:
        t.close()
    reqs = {name: dataclasses.replace(r, model="claude-sonnet-4-5") for name, r in built.items()}
    assert cache_minimum("claude-3-5-haiku-20241022") == 2048 and cache_minimum("claude-sonnet-4-5") == 1024
    assert cache_minimum("claude-haiku-5-5") == cache_minimum("claude-opus-4-7") == 0  # newer than the table: marked
    assert AnthropicChat("scripted").caches(built["short"])
    assert prefix_tokens(reqs["short"]) < 1024 <= prefix_tokens(reqs["long"])
    marked = lambda params: "cache_control" in json.dumps(params)  # noqa: E731
    assert not marked(backend.build_params(reqs["short"])) and marked(backend.build_params(reqs["long"]))
    haiku = dataclasses.replace(reqs["long"], model="claude-3-5-haiku-latest")  # its minimum is 2,048
    assert not marked(AnthropicChat("claude-3-5-haiku-latest").build_params(haiku))
    # The server at the real minimum: repeats of a short prefix are never cache reads, for either SDK.
    capsys.readouterr()
    with serve() as srv:
        point_at(monkeypatch, srv)
        for sdk in SDKS:
            t = teacher(sdk)
            try:
                t.feedback_many(short + short)
                entry = t.ledger.entry(sdk, "scripted")
                assert entry.cache_read_tokens == 0 and entry.cache_write_tokens == 0 and entry.input_tokens > 0
            finally:
                t.close()
    # The Anthropic teacher marked them ("scripted" is not in the table) and the server cached none: said once.
    warned = [line for line in capsys.readouterr().err.splitlines() if "cached none of a prompt prefix" in line]
    assert len(warned) == 1 and warned[0].startswith("tripost: warning: anthropic model 'scripted'"), warned
    # With the minimum at 0 the same short prefix is cached once asked for (OpenAI: always; Anthropic: when marked).
    with serve(cache_min_tokens=0) as srv:
        point_at(monkeypatch, srv)
        t = teacher("openai")
        try:
            t.feedback_many(short + short)
            assert t.ledger.entry("openai", "scripted").cache_read_tokens > 0
        finally:
            t.close()


@pytest.mark.parametrize("sdk", SDKS)
def test_injected_failures_are_retried_then_cache_makes_zero_requests(sdk, monkeypatch, tmp_path):
    faults = Faults(fail_rate=0.3, fail_codes=(429, 500, 529), retry_after=0.01, seed=7)
    items = cases("arithmetic", n=6, seed=1) + cases("word_sorting", n=6, seed=1)
    cache = tmp_path / "cache.sqlite"
    with serve(faults=faults) as srv:
        point_at(monkeypatch, srv)
        t = teacher(sdk, cache=cache, concurrency=4)
        try:
            replies = t.feedback_many(items)
        finally:
            t.close()
        assert all(r.rejected is None for r in replies)
        assert [r.text for r in replies] == [SCRIPTED.feedback(p, a).text for p, a in items]
        s = stats(srv)
        failures = sum(n for code, n in s["by_status"].items() if code != "200")
        assert failures > 0 and s["by_status"]["200"] == len(items)
        retries = sum(c.retries for r in replies for c in r.calls)
        assert retries == failures  # every failed request was retried, and recorded
        entry = t.ledger.entry(sdk, "scripted")
        assert entry.retries == failures and entry.http_requests == s["requests"]
        assert set(entry.retry_reasons) <= {"http_429", "http_500", "http_529"} and sum(entry.retry_reasons.values()) == failures

        before = s["requests"]
        again = teacher(sdk, cache=cache)
        try:
            replies2 = again.feedback_many(items)
        finally:
            again.close()
        assert stats(srv)["requests"] == before  # zero HTTP requests
        assert [r.text for r in replies2] == [r.text for r in replies]
        assert all(c.cached and c.cost_usd == 0 and c.usage == {} for r in replies2 for c in r.calls)


@pytest.mark.parametrize("sdk", SDKS)
def test_garbage_is_rejected_counted_and_logged(sdk, monkeypatch, caplog):
    items = cases("arithmetic", n=5, seed=2)
    with serve(faults=Faults(garbage_rate=1.0, seed=3)) as srv:
        point_at(monkeypatch, srv)
        t = teacher(sdk)
        try:
            with caplog.at_level(logging.WARNING, logger="tripost.teachers"):
                replies = t.feedback_many(items)
                p, attempt = items[0]
                fb = SCRIPTED.feedback(p, attempt).feedback
                imp = t.improve(p, attempt, fb) if not fb.is_correct else None
        finally:
            t.close()
    rejected = [r for r in replies if r.rejected]
    # Some garbage happens to say "all correct" in TriPosT form... none of ours does.
    assert len(rejected) == len(items)
    assert all(r.feedback is None and r.calls[0].rejected == r.rejected for r in rejected)
    if imp is not None:
        assert imp.rationale is None and imp.rejected
    total = sum(t.rejections.values())
    assert total == len(items) + (imp is not None)
    assert set(t.rejections) <= {"empty", "unparseable", "step_out_of_range", "segment_not_in_attempt", "no_final_answer",
                                 "bad_step_numbers", "changed_kept_steps", "wrong_step_unchanged", "empty_segment"}
    assert caplog.text.count("rejected") >= total


@pytest.mark.parametrize("sdk", SDKS)
@pytest.mark.parametrize("code", ["quota", "401", "400"])
def test_no_retry_on_auth_bad_request_or_spend_limit(sdk, code, monkeypatch, caplog):
    p, attempt = cases("arithmetic", n=1)[0]
    with serve(faults=Faults(fail_rate=1.0, fail_codes=(code if code == "quota" else int(code),))) as srv:
        point_at(monkeypatch, srv)
        t = teacher(sdk)
        try:
            with caplog.at_level(logging.DEBUG):
                with pytest.raises(TripostError) as ei:
                    t.feedback(p, attempt)
        finally:
            t.close()
        assert stats(srv)["requests"] == 1  # not retried
    msg = str(ei.value)
    assert ("429" in msg and "quota" in msg) if code == "quota" else f"HTTP {code}" in msg
    assert "\n" not in msg
    for key in SECRETS:
        assert key not in msg and key not in caplog.text


def test_retry_after_header_is_read_from_real_sdk_errors(monkeypatch):
    with serve(faults=Faults(fail_rate=1.0, fail_codes=(429,), retry_after=0.25, seed=1)) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.token, max_retries=0)
        waits = []
        for _ in range(12):
            try:
                client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "hi"}])
            except openai.RateLimitError as e:
                waits.append(classify(e, "openai").retry_after)
        client.close()
    assert len(waits) == 12 and all(w in (None, 0.25) for w in waits)
    assert 0.25 in waits and None in waits  # "sometimes": half of the 429s carry Retry-After


def test_api_keys_never_reach_cache_logs_or_errors(monkeypatch, tmp_path, caplog, capfd):
    cache = tmp_path / "cache.sqlite"
    items = cases("arithmetic", n=3, seed=4)
    with serve(faults=Faults(fail_rate=0.3, retry_after=0.01, seed=2)) as srv:
        point_at(monkeypatch, srv)
        with caplog.at_level(logging.DEBUG):
            for sdk in SDKS:
                t = teacher(sdk, cache=cache)
                try:
                    replies = t.feedback_many(items)
                    report = json.dumps([c.to_dict() for r in replies for c in r.calls]) + json.dumps(t.stats()) + repr(t.backend)
                finally:
                    t.close()
                for key in SECRETS:
                    assert key not in report
    out, err = capfd.readouterr()
    blobs = b"".join(f.read_bytes() for f in tmp_path.glob("cache.sqlite*"))
    assert blobs  # the cache was written
    for key in SECRETS:
        assert key.encode() not in blobs
        assert key not in caplog.text and key not in out and key not in err


# ------------------------------------- issue 20: caching, bodies, the server ---


def _wrong(items):
    """(problem, attempt, feedback) for the wrong attempts among `items`."""
    out = []
    for p, a in items:
        fb = SCRIPTED.feedback(p, a).feedback
        if not fb.is_correct:
            out.append((p, a, fb))
    return out


@pytest.mark.parametrize("sdk", SDKS)
def test_rejected_answers_are_not_cached_and_a_healthy_rerun_asks_again(sdk, monkeypatch, tmp_path):
    """Issue 20.1: after a garbage server, the cache holds nothing, and a
    re-run against a healthy one makes new requests and gets good answers."""
    from tripost.teachers.cache import ResponseCache

    cache = tmp_path / "cache.sqlite"
    items = cases("arithmetic", n=5, seed=8)
    wrong = _wrong(items)
    assert wrong
    with serve(faults=Faults(garbage_rate=1.0, seed=4)) as srv:
        point_at(monkeypatch, srv)
        t = teacher(sdk, cache=cache)
        try:
            bad_fb = t.feedback_many(items)
            bad_imp = t.improve_many(wrong)
        finally:
            t.close()
    assert all(r.rejected for r in bad_fb) and all(r.rejected for r in bad_imp)
    assert len(ResponseCache(cache)) == 0

    with serve() as healthy:
        point_at(monkeypatch, healthy)
        for run in range(2):
            t = teacher(sdk, cache=cache)
            try:
                fb = t.feedback_many(items)
                imp = t.improve_many(wrong)
            finally:
                t.close()
            assert all(r.rejected is None for r in fb + imp)
            assert [r.text for r in fb] == [SCRIPTED.feedback(p, a).text for p, a in items]
            assert [r.rationale for r in imp] == [SCRIPTED.improve(p, a, f).rationale for p, a, f in wrong]
            # The first run asks for every answer; the second finds them all cached.
            assert all(c.cached == (run == 1) for r in fb + imp for c in r.calls)
        assert stats(healthy)["requests"] == len(items) + len(wrong)
    assert len(ResponseCache(cache)) == len(items) + len(wrong)


@pytest.mark.parametrize("sdk", SDKS)
def test_a_cached_rejection_from_an_older_version_is_asked_again(sdk, monkeypatch, tmp_path):
    """A cache written before answers were validated may hold a rejected
    answer under the request's key: it is dropped and asked again, not served."""
    from tripost.teachers.cache import ResponseCache
    from tripost.teachers.chat import ChatResponse

    cache = tmp_path / "cache.sqlite"
    p, attempt = cases("word_sorting", n=1, seed=9)[0]
    with serve() as srv:
        point_at(monkeypatch, srv)
        t = teacher(sdk, cache=cache)
        try:
            key = t.requester.key(t.build_request("feedback", p, attempt))
            old = ResponseCache(cache)
            old.put(key, sdk, "scripted", ChatResponse(text="I am not sure what you mean."))
            old.close()
            reply = t.feedback(p, attempt)
        finally:
            t.close()
        assert stats(srv)["requests"] == 1
    assert reply.rejected is None and not reply.calls[0].cached
    assert ResponseCache(cache).get(key).text == f"Feedback: {SCRIPTED.feedback(p, attempt).text}"


@pytest.mark.parametrize("sdk", SDKS)
def test_malformed_200_is_one_rejection_not_an_abort(sdk, monkeypatch, tmp_path, caplog):
    """Issue 20.2: a 200 whose body cannot be read (cut-off JSON, an HTML
    page, a text block with null text) rejects that request only."""
    from tripost.serve.server import _MALFORMED
    from tripost.teachers.cache import ResponseCache

    cache = tmp_path / "cache.sqlite"
    items = cases("arithmetic", n=4, seed=10)
    wrong = _wrong(items)
    with serve(faults=Faults(malformed_rate=1.0)) as srv:
        point_at(monkeypatch, srv)
        t = teacher(sdk, cache=cache)
        try:
            with caplog.at_level(logging.WARNING, logger="tripost.teachers"):
                fb = t.feedback_many(items)
                imp = t.improve_many(wrong)
        finally:
            t.close()
        s = stats(srv)
    assert len(items) >= len(_MALFORMED[sdk])
    assert {r.rejected for r in fb + imp} == {"malformed_response"}
    assert all(r.calls[0].rejected == "malformed_response" and not r.calls[0].retries for r in fb + imp)
    assert t.rejections == {"malformed_response": len(items) + len(wrong)}
    # Every variant was sent, each exactly once per request (not retried), and none was cached.
    assert set(s["faults"]) == {f"malformed_{i}" for i in range(len(_MALFORMED[sdk]))}
    assert s["requests"] == len(items) + len(wrong)
    assert len(ResponseCache(cache)) == 0
    assert caplog.text.count("malformed 200 response") == len(items) + len(wrong)
    assert "Traceback" not in caplog.text

    # A run mixing good and malformed answers goes on and keeps the good ones.
    with serve(faults=Faults(malformed_rate=0.5, seed=1)) as srv:
        point_at(monkeypatch, srv)
        t = teacher(sdk, cache=False)
        try:
            mixed = t.feedback_many(items * 3)
        finally:
            t.close()
    kinds = {r.rejected for r in mixed}
    assert kinds == {None, "malformed_response"}
    assert all(r.text == SCRIPTED.feedback(p, a).text for r, (p, a) in zip(mixed, items * 3) if r.rejected is None)


@pytest.mark.parametrize("sdk", SDKS)
def test_teach_command_counts_malformed_answers(sdk, monkeypatch, tmp_path, capsys):
    from tripost.cli import main

    items = cases("arithmetic", n=2, seed=6)
    path = tmp_path / "attempts.jsonl"
    path.write_text("".join(json.dumps({**p.to_dict(), "attempt": a}) + "\n" for p, a in items))
    with serve(faults=Faults(malformed_rate=1.0)) as srv:
        point_at(monkeypatch, srv)
        assert main(["teach", "--teacher", f"{sdk}:scripted", "--task", "arithmetic", str(path)]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["rejected"] for r in rows] == ["malformed_response"] * len(items)
    assert f"{len(items)} teacher answers rejected" in err


def _raw_post(url, path, body, headers):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("sdk", SDKS)
def test_requests_without_the_token_are_refused(sdk, monkeypatch, caplog):
    """Issue 20.11: no token, a wrong one, or the token in the wrong place is a 401."""
    p, attempt = cases("arithmetic", n=1)[0]
    with serve() as srv:
        point_at(monkeypatch, srv)
        key_var = "OPENAI_API_KEY" if sdk == "openai" else "ANTHROPIC_API_KEY"
        monkeypatch.setenv(key_var, "wrong-token-13579")
        t = teacher(sdk)
        try:
            with caplog.at_level(logging.DEBUG):
                with pytest.raises(TripostError, match="HTTP 401") as ei:
                    t.feedback(p, attempt)
        finally:
            t.close()
        assert "wrong-token-13579" not in str(ei.value) and "\n" not in str(ei.value)
        body = {"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        path = "/v1/chat/completions" if sdk == "openai" else "/v1/messages"
        for headers in ({}, {"authorization": "Bearer wrong-token-13579"}, {"x-api-key": ""},
                        {"authorization": TOKEN}, {"authorization": f"Basic {TOKEN}"}):
            status, answer = _raw_post(srv.url, path, body, headers)
            assert status == 401 and "token" in json.dumps(answer), headers
            assert TOKEN not in json.dumps(answer)
        assert _get(srv.url + "/v1/models")[0] == 401
        # The right token, in either header, gets past the door (400: "hi" is no tripost request).
        assert _raw_post(srv.url, path, body, {"authorization": f"Bearer {TOKEN}"})[0] == 400
        assert _raw_post(srv.url, path, body, {"x-api-key": TOKEN})[0] == 400
        assert _get(srv.url + "/health")[0] == 200 and _get(srv.url + "/stats")[0] == 200
        assert stats(srv)["by_status"] == {"401": 7, "400": 2, "200": 1}
    for secret in (TOKEN, "wrong-token-13579"):
        assert secret not in caplog.text


def test_proxy_passes_upstream_statuses_through_and_refuses_strangers(monkeypatch, caplog, capfd):
    """Issue 20.11, proxy mode: a request without the token never reaches the
    upstream; an upstream 401 / quota 429 / exhausted 529 reaches the client
    with that status, one log line, no 500, no traceback; no key anywhere."""
    p, attempt = cases("arithmetic", n=1)[0]
    upstream_token = "tpst-upstream-DO-NOT-LEAK-112233"
    for code, want in ((401, "401"), ("quota", "429"), (529, "529")):
        faults = Faults(fail_rate=1.0, fail_codes=(code,), retry_after=0.01)
        with start_server(ScriptedTeacher(), faults=faults, token=upstream_token) as up:
            # The operator's key for the upstream: wrong for the 401 case.
            key = FAKE_OPENAI_KEY if code == 401 else upstream_token
            proxied = make_teacher("openai:scripted", cache=False, base_url=up.url + "/v1", api_key=key,
                                   policy=RetryPolicy(max_attempts=2, initial=0.001, jitter=0.0, max_wait=0.01))
            try:
                with serve(proxied) as proxy:
                    point_at(monkeypatch, proxy)
                    status, _ = _raw_post(proxy.url, "/v1/chat/completions", {"model": "x", "messages": []}, {})
                    assert status == 401 and stats(up)["requests"] == 0  # a stranger costs the upstream nothing
                    t = teacher("openai", policy=RetryPolicy(max_attempts=1))
                    try:
                        with caplog.at_level(logging.DEBUG):
                            if code == 529:
                                reply = t.feedback(p, attempt)  # retryable: one request rejected, not fatal
                                assert reply.rejected == "unavailable"
                                assert t.ledger.entry("openai", "scripted").retry_reasons == {}
                            else:
                                with pytest.raises(TripostError) as ei:
                                    t.feedback(p, attempt)
                                msg = str(ei.value)
                                assert ("HTTP 401" in msg and "upstream" in msg) if code == 401 else "quota" in msg
                    finally:
                        t.close()
                    s = stats(proxy)
            finally:
                proxied.close()
            made = stats(up)["requests"]
        assert s["by_status"] == ({"401": 1, want: 1} if want != "401" else {"401": 2})
        assert made == (2 if code == 529 else 1)  # the proxy's own retries only
    out, err = capfd.readouterr()
    text = caplog.text + out + err
    assert "Traceback" not in text and "internal error" not in text
    server_lines = [r.getMessage() for r in caplog.records if r.name == "tripost.serve" and r.levelno >= logging.WARNING]
    assert [m.split(":")[0] for m in server_lines] == ["upstream refused a request"] * 2 + ["upstream failed"]
    for secret in SECRETS + (upstream_token,):
        assert secret not in text


def test_proxy_caches_only_answers_that_validate(monkeypatch, tmp_path):
    """Issue 20.1 one hop further: serve-teacher in front of an LLM backend
    caches upstream answers only when they pass validation."""
    from tripost.teachers.cache import ResponseCache

    cache = tmp_path / "proxy-cache.sqlite"
    items = cases("word_sorting", n=3, seed=12)
    upstream_token = "tpst-upstream-DO-NOT-LEAK-445566"
    port = 0  # then the first run's: the same upstream, restarted (the cache key holds its address)
    for garbage, run in ((1.0, "garbage"), (0.0, "healthy"), (0.0, "again")):
        with start_server(ScriptedTeacher(), faults=Faults(garbage_rate=garbage, seed=5), token=upstream_token, port=port) as up:
            port = up.httpd.server_address[1]
            proxied = make_teacher("openai:scripted", cache=cache, base_url=up.url + "/v1", api_key=upstream_token, policy=FAST)
            try:
                with serve(proxied) as proxy:
                    point_at(monkeypatch, proxy)
                    t = teacher("anthropic")
                    try:
                        replies = t.feedback_many(items)
                    finally:
                        t.close()
            finally:
                proxied.close()
            made = stats(up)["requests"]
        if run == "garbage":
            assert all(r.rejected for r in replies) and made == len(items)
            assert len(ResponseCache(cache)) == 0
        else:
            assert all(r.rejected is None for r in replies)
            assert made == (len(items) if run == "healthy" else 0)
            assert len(ResponseCache(cache)) == len(items)


def _post_and_reset(host, port, body):
    """Send a request and return the socket; `_reset` closes it as a killed client does."""
    import socket

    sock = socket.create_connection((host, port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )
    return sock


def _reset(sock):
    import socket
    import struct

    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    sock.close()


def _wait_for(predicate):
    """Poll until `predicate()` holds (the server's handler threads run on their own); no timing is asserted."""
    import time

    deadline = time.monotonic() + 60
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_client_that_goes_away_is_one_line_not_a_500(monkeypatch, caplog, capfd):
    """Issue 20.11: a client that disconnects before its answer leaves one
    log line and a "disconnected" count, no BrokenPipeError traceback:
    whether it left while the server waited (noticed before answering) or
    while the answer was on its way (the write fails)."""
    p, attempt = cases("arithmetic", n=1)[0]
    t = teacher("openai")
    request = t.build_request("feedback", p, attempt)
    t.close()
    body = json.dumps({"model": "scripted", "messages": request.openai_messages(), "max_tokens": 50}).encode()
    with caplog.at_level(logging.INFO, logger="tripost.serve"):
        # Gone while the server sleeps: noticed before answering.
        with serve(faults=Faults(latency=0.3)) as srv:
            for _ in range(2):
                _reset(_post_and_reset(*srv.httpd.server_address[:2], body))
            _wait_for(lambda: stats(srv)["by_status"].get("disconnected", 0) >= 2)
            s = stats(srv)
        assert s["by_status"] == {"disconnected": 2}
        # Gone while a proxy waits for its upstream: the answer's write fails.
        upstream_token = "tpst-upstream-DO-NOT-LEAK-778899"
        with start_server(ScriptedTeacher(), faults=Faults(latency=2.0), token=upstream_token) as up:
            proxied = make_teacher("openai:scripted", cache=False, base_url=up.url + "/v1", api_key=upstream_token)
            try:
                with serve(proxied) as proxy:
                    sock = _post_and_reset(*proxy.httpd.server_address[:2], body)
                    _wait_for(lambda: proxied.requester.in_flight >= 1)  # forwarded: the client was still there
                    _reset(sock)
                    _wait_for(lambda: stats(proxy)["by_status"].get("disconnected", 0) >= 1)
                    s = stats(proxy)
            finally:
                proxied.close()
        assert s["by_status"] == {"disconnected": 1}
    out, err = capfd.readouterr()
    gone = [line for line in caplog.text.splitlines() if "went away" in line]
    assert len(gone) == 3
    for text in (caplog.text, out, err):
        assert "Traceback" not in text and "BrokenPipeError" not in text and "internal error" not in text
        assert TOKEN not in text and upstream_token not in text


# ------------------------------------------------------------- concurrency ---


def test_concurrency_is_bounded_per_backend(monkeypatch):
    items = cases("arithmetic", n=10, seed=5) + cases("word_sorting", n=5, seed=5)
    with serve(faults=Faults(latency=0.05)) as srv:
        point_at(monkeypatch, srv)
        t = teacher("openai", concurrency=4)
        try:
            replies = t.feedback_many(items)
            assert all(r.rejected is None for r in replies)
            assert 2 <= t.requester.max_in_flight <= 4
            # The async API works from a caller's own event loop too.
            async def run():
                return await t.afeedback_many(items[:4]), await t.afeedback(*items[0])

            many, one = asyncio.run(run())
            assert [r.text for r in many] == [r.text for r in replies[:4]] and one.text == replies[0].text
        finally:
            t.close()


# --------------------------------------------------------------- the server ---


def test_server_routes_and_bad_requests(server):
    def post(path, body):
        req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    status, body = post("/v1/chat/completions", {"model": "x", "messages": [{"role": "user", "content": "hello"}]})
    assert status == 400 and "tripost-request" in body["error"]["message"]
    status, body = post("/v1/messages", {"model": "x", "messages": [{"role": "user", "content": "hello"}]})
    assert status == 400 and body["type"] == "error" and "max_tokens" in body["error"]["message"]
    assert post("/v1/nowhere", {})[0] == 404
    with urllib.request.urlopen(urllib.request.Request(server.url + "/v1/models", headers={"x-api-key": TOKEN})) as r:
        assert json.loads(r.read())["data"][0]["id"]
    s = stats(server)
    assert s["by_status"]["400"] == 2 and s["by_status"]["404"] == 1


def _serve_process(tmp_path, *args, token_env=None):
    """`python -m tripost.serve --port 0 ARGS` and its first two stdout lines."""
    env = {**os.environ, "TRIPOST_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env.pop("TRIPOST_SERVE_TOKEN", None)
    if token_env is not None:
        env["TRIPOST_SERVE_TOKEN"] = token_env
    proc = subprocess.Popen(
        [sys.executable, "-m", "tripost.serve", "--port", "0", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    first, second = proc.stdout.readline(), proc.stdout.readline()
    if proc.poll() is not None:
        raise AssertionError(first + second + proc.stderr.read())
    return proc, first, second


def _stop(proc) -> tuple[str, str]:
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    return out, err


def _get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_teacher_command_runs_as_a_process(tmp_path):
    proc, line, token_line = _serve_process(tmp_path, "--backend", "scripted", "--fail-rate", "0")
    try:
        assert line.startswith("serving scripted on http://127.0.0.1:"), line
        url = line.split()[3]
        # Generated and shown once, on the second line.
        assert token_line.startswith("token: tpst-") and "shown only here" in token_line
        token = token_line.split()[1]
        assert _get(url + "/stats")[1]["requests"] == 0
        assert _get(url + "/v1/models")[0] == 401
        assert _get(url + "/v1/models", {"authorization": f"Bearer {token}"})[0] == 200
    finally:
        out, err = _stop(proc)
    assert token not in out and token not in err  # never again after the start line
    assert "refused GET /v1/models" in err and "Traceback" not in err
    env = {**os.environ, "TRIPOST_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    bad = subprocess.run([sys.executable, "-m", "tripost.serve", "--fail-rate", "2"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr and "Traceback" not in bad.stderr


def test_serve_teacher_token_from_the_environment_and_a_warning_for_non_loopback(tmp_path):
    """Issue 20.11: a given token is not printed; binding beyond loopback is
    warned about on stderr; a bad token is one line."""
    proc, line, token_line = _serve_process(tmp_path, "--host", "0.0.0.0", token_env=TOKEN)
    try:
        assert line.startswith("serving scripted on http://0.0.0.0:"), line
        assert token_line.strip() == "token: from $TRIPOST_SERVE_TOKEN (clients send it as OPENAI_API_KEY / ANTHROPIC_API_KEY)"
        url = "http://127.0.0.1:" + line.split()[3].rsplit(":", 1)[1]
        assert _get(url + "/v1/models", {"x-api-key": "wrong-token-123"})[0] == 401
        assert _get(url + "/v1/models", {"x-api-key": TOKEN})[0] == 200
    finally:
        out, err = _stop(proc)
    assert "WARNING: listening on 0.0.0.0, which is not loopback" in err
    assert TOKEN not in out and TOKEN not in err and "wrong-token-123" not in err
    env = {**os.environ, "TRIPOST_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    bad = subprocess.run([sys.executable, "-m", "tripost.serve", "--token", "short"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--token must be at least 8" in bad.stderr
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------ tripost teach ---


def test_teach_command_with_every_api_backend(server, tmp_path, capsys):
    from tripost.cli import main

    items = cases("arithmetic", n=2, seed=6)
    path = tmp_path / "attempts.jsonl"
    path.write_text("".join(json.dumps({**p.to_dict(), "attempt": a}) + "\n" for p, a in items))
    want = [SCRIPTED.feedback(p, a).text for p, a in items]
    outputs = {}
    for spec in ("scripted", "openai:scripted", "anthropic:scripted"):
        assert main(["teach", "--teacher", spec, "--task", "arithmetic", str(path)]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["feedback"] for r in rows] == want, spec
        outputs[spec] = [r["improved"] for r in rows]
    assert outputs["openai:scripted"] == outputs["scripted"] == outputs["anthropic:scripted"]

    # replay: a log of what the scripted teacher said answers the same requests.
    log = tmp_path / "log.jsonl"
    with log.open("w") as f:
        for (p, a), improved in zip(items, outputs["scripted"]):
            turns = [{"rationale": a, "feedback": SCRIPTED.feedback(p, a).text}]
            if improved:
                turns.append({"rationale": improved, "feedback": SCRIPTED.feedback(p, improved).text})
            f.write(json.dumps({"schema": "tripost.log/1", "key": p.id, "problem": p.to_dict(), "kind": "improvement",
                                "turns": turns, "final_correct": True, "stop_reason": "correct"}) + "\n")
    assert main(["teach", "--teacher", f"replay:{log}", "--task", "arithmetic", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["feedback"] for r in rows] == want and [r["improved"] for r in rows] == outputs["scripted"]
