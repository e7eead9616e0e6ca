"""Teacher pieces without a server: requests and keys, usage and prices, the
cache, retry classification and waits, validation of LLM answers, templates,
replay, and `make_teacher` specs."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import sqlite3
from pathlib import Path

import httpx2
import openai
import anthropic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripost.errors import TripostError
from tripost.format import Feedback, parse_rationale
from tripost.tasks import FAMILIES, get_task, sample_problems
from tripost.teachers import make_teacher
from tripost.teachers import prompted as P
from tripost.teachers.cache import ResponseCache
from tripost.teachers.chat import ChatMessage, ChatRequest, ChatResponse, Usage
from tripost.teachers.replay import ReplayTeacher
from tripost.teachers.retry import ChatError, RetryPolicy, _Wait, call_with_retries, classify, redact, retry_after_seconds
from tripost.teachers.scripted import ScriptedTeacher
from tripost.teachers.templates import load_template, parse_block, parse_template, render_block
from tripost.teachers.usage import Ledger, PriceTable, load_prices

ROOT = Path(__file__).resolve().parent.parent
SCRIPTED = ScriptedTeacher()


def available_scripted_families() -> list[str]:
    out = []
    for fam in FAMILIES:
        try:
            task = get_task(fam)
        except (ImportError, TripostError):
            continue
        if task.scripted:
            out.append(fam)
    return out


def corrupted(family: str, seed: int, n: int = 3) -> list[tuple]:
    """(problem, wrong attempt, error step) triples from the scripted families."""
    task = get_task(family)
    out = []
    for p in sample_problems(task, n=n, seed=seed):
        rng = random.Random(f"{seed}|{p.id}")
        steps = parse_rationale(p.rationale).n_steps
        k = rng.randint(1, steps + 1)
        try:
            bad = task.corrupt(p, k, rng)
        except TripostError:
            continue
        out.append((p, bad, k))
    return out


# ---------------------------------------------------------------- requests ---


def _req(**kw) -> ChatRequest:
    base = dict(model="m", system="sys", messages=(ChatMessage("user", "hi"),))
    base.update(kw)
    return ChatRequest(**base)


def test_request_key_covers_what_changes_the_answer_and_nothing_else():
    k = _req().key("openai")
    assert k == _req().key("openai")
    assert k != _req().key("anthropic")
    assert k != _req(model="m2").key("openai")
    assert k != _req(messages=(ChatMessage("user", "hi!"),)).key("openai")
    assert k != _req(temperature=0.5).key("openai")
    # No temperature (the provider's default) is recorded as such, not as a number.
    assert _req().canonical("openai")["temperature"] == "provider default"
    assert k != _req(temperature=1.0).key("openai") != _req(temperature=0.0).key("openai")
    assert k != _req(sample_index=1).key("openai")
    assert k != _req(max_tokens=7).key("openai")
    # cache_prefix is a transport hint: same answer, same key
    assert k == _req(cache_prefix=3).key("openai")
    assert "key" not in json.dumps(_req().canonical("openai")).lower().replace("keys", "")
    # The server is part of it: two servers may serve different models under one name.
    assert k != _req().key("openai", "http://127.0.0.1:8000/v1")
    assert _req().key("openai", "http://a/v1") != _req().key("openai", "http://b/v1")


def test_endpoint_id_keeps_the_server_and_drops_credentials():
    from tripost.urls import endpoint_id

    secret = "sk-DO-NOT-LEAK-1234"
    assert endpoint_id(f"HTTPS://user:{secret}@Api.Example.COM:8443/v1/?api_key={secret}#x") == "https://api.example.com:8443/v1"
    assert endpoint_id("http://127.0.0.1:8765/v1/") == endpoint_id("http://127.0.0.1:8765/v1") != endpoint_id("http://127.0.0.1:8766/v1")
    assert endpoint_id("http://[::1]:8000") == "http://[::1]:8000"
    canonical = json.dumps(_req().canonical("openai", endpoint_id(f"https://u:{secret}@host/v1?key={secret}")))
    assert secret not in canonical and "https://host/v1" in canonical


def test_usage_buckets_per_provider():
    o = Usage.from_openai({"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}})
    assert o == Usage(input_tokens=40, output_tokens=7, cache_read_tokens=60)
    a = Usage.from_anthropic({"input_tokens": 40, "output_tokens": 7, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 5})
    assert a == Usage(40, 7, 60, 5)
    assert Usage.from_openai(None) == Usage()
    assert (o + a).cache_read_tokens == 120
    assert o.buckets() == {"input": 40, "output": 7, "cache_read": 60, "cache_write": 0}
    assert Usage.from_dict(o.to_dict()) == o
    # Anthropic splits cache writes by TTL; the 1-hour ones are priced apart.
    one_hour = Usage.from_anthropic({"input_tokens": 4, "output_tokens": 1, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 9,
                                     "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 9}})
    assert one_hour == Usage(4, 1, 0, 9, 9) and one_hour.buckets()["cache_write_1h"] == 9
    assert Usage.from_dict(one_hour.to_dict()) == one_hour and (one_hour + a).cache_write_1h_tokens == 9


def test_prices_and_ledger():
    table = PriceTable({"my-model": {"input": 1.0, "output": 2.0, "cache_read": 0.1, "cache_write": 1.25}})
    u = Usage(input_tokens=1_000_000, output_tokens=500_000, cache_read_tokens=2_000_000, cache_write_tokens=0)
    assert table.cost("openai", "my-model-2025", u) == pytest.approx(1.0 + 1.0 + 0.2)
    assert table.cost("openai", "unknown-model", u) == 0.0 and not table.priced("openai", "unknown-model")
    assert table.override("my-model-2025") is table.prices["my-model"]
    ledger = Ledger(table)
    c1 = ledger.record("openai", "my-model", u, retries=2, retry_reasons={"http_429": 2})
    c2 = ledger.record("openai", "my-model", u, cached=True)
    assert c1 == pytest.approx(2.2) and c2 == 0.0
    e = ledger.entry("openai", "my-model")
    assert (e.calls, e.http_requests, e.retries, e.cache_hits) == (2, 3, 2, 1)
    assert e.input_tokens == 1_000_000 and e.cache_read_tokens == 2_000_000
    assert e.retry_reasons == {"http_429": 2}
    ledger.record("openai", "nobody-prices-this", u)
    assert ledger.entry("openai", "nobody-prices-this").priced is False


MILLION = 1_000_000


def test_prices_come_from_the_price_database():
    """Issue 29, item 3: list, cache and batch prices from genai-prices, for
    both providers, dated and aliased ids matched to their model; nothing
    hand-kept to go stale (Opus 4.5 lists at $5/$25, not Opus 4's $15/$75)."""
    table = PriceTable()
    m = Usage(input_tokens=MILLION, output_tokens=MILLION)
    assert table.cost("anthropic", "claude-opus-4-5", m) == pytest.approx(5 + 25)
    assert table.cost("anthropic", "claude-opus-4-5", m, batched=True) == pytest.approx((5 + 25) / 2)
    assert table.cost("anthropic", "claude-haiku-4-5-20251001", m) == pytest.approx(1 + 5)  # a dated id finds its model
    assert table.cost("openai", "gpt-4o-mini", m) == pytest.approx(0.15 + 0.60)
    assert table.cost("openai", "gpt-4o-mini", m, batched=True) == pytest.approx((0.15 + 0.60) / 2)
    # Cache reads and the two TTLs of cache writes at their own prices (Opus 4.5: 0.5, 6.25 for 5 minutes, 10 for an hour).
    cached = Usage(input_tokens=0, output_tokens=0, cache_read_tokens=MILLION, cache_write_tokens=2 * MILLION, cache_write_1h_tokens=MILLION)
    assert table.cost("anthropic", "claude-opus-4-5", cached) == pytest.approx(0.5 + 6.25 + 10)
    assert table.cost("anthropic", "claude-opus-4-5", cached, batched=True) == pytest.approx((0.5 + 6.25 + 10) / 2)
    # Unknown to the database: unpriced, never guessed; a local backend is never billed.
    assert not table.priced("openai", "scripted") and table.cost("openai", "scripted", m) == 0.0
    assert not table.priced("hf", "gpt-4o-mini")
    assert table.priced("anthropic", "claude-sonnet-4-6") and table.priced("openai", "gpt-5.4-mini")
    from tripost.teachers.usage import database_price

    assert (database_price("anthropic", "claude-opus-4-5").input, database_price("anthropic", "claude-opus-4-5").output) == (5.0, 25.0)
    assert database_price("openai", "no-such-model") is None


def test_a_prices_file_is_laid_over_the_database():
    m = Usage(input_tokens=MILLION, output_tokens=MILLION)
    table = load_prices({"claude-opus-4-5": {"input": 1.0, "output": 2.0}, "scripted": {"input": 0.5, "output": 0.5}})
    assert table.cost("anthropic", "claude-opus-4-5-20251101", m) == pytest.approx(3.0)  # the user's price wins
    assert table.cost("anthropic", "claude-opus-4-5", m, batched=True) == pytest.approx(1.5)  # at the providers' 50%
    assert table.cost("openai", "scripted", m) == pytest.approx(1.0) and table.priced("openai", "scripted")
    assert table.cost("anthropic", "claude-sonnet-4-6", m) == pytest.approx(3 + 15)  # the rest from the database
    # An override's 1-hour writes: its own price, else twice its input price (Anthropic's rate).
    one_hour = Usage(cache_write_tokens=MILLION, cache_write_1h_tokens=MILLION)
    assert table.cost("openai", "scripted", one_hour) == pytest.approx(1.0)
    assert load_prices({"x": {"input": 1.0, "cache_write_1h": 3.0}}).cost("openai", "x", one_hour) == pytest.approx(3.0)


def test_price_overrides_from_files(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('[prices."gpt-4o"]\ninput = 1.0\noutput = 3.0\n')
    assert load_prices(toml).override("gpt-4o").output == 3.0
    js = tmp_path / "p.json"
    js.write_text(json.dumps({"x": {"input": 0.5}}))
    assert load_prices(js).override("x").input == 0.5
    with pytest.raises(TripostError, match="unknown field"):
        load_prices({"x": {"inputs": 1}})
    with pytest.raises(TripostError, match="negative"):
        load_prices({"x": {"input": -1}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[prices\n")
    with pytest.raises(TripostError, match="not valid TOML"):
        load_prices(bad)


def test_cache_roundtrip(tmp_path):
    cache = ResponseCache(tmp_path / "c" / "cache.sqlite")
    resp = ChatResponse(text="Feedback: x", usage=Usage(1, 2, 3, 4), model="m", finish_reason="stop")
    assert cache.get("k") is None
    cache.put("k", "openai", "m", resp)
    assert cache.get("k") == resp
    assert len(cache) == 1 and cache.hits == 1 and cache.misses == 1
    cache.close()
    assert ResponseCache(tmp_path / "c" / "cache.sqlite").get("k") == resp  # persisted


def test_cache_drops_entries_the_caller_refuses(tmp_path):
    """Issue 20.1: an entry that fails the caller's validation (written by a
    version that cached everything) is deleted and counted as a miss."""
    cache = ResponseCache(tmp_path / "cache.sqlite")
    cache.put("bad", "openai", "m", ChatResponse(text="lorem ipsum"))
    cache.put("good", "openai", "m", ChatResponse(text="Feedback: fine"))
    valid = lambda r: r.text.startswith("Feedback:")  # noqa: E731
    assert cache.get("bad", valid) is None and cache.get("good", valid).text == "Feedback: fine"
    assert len(cache) == 1 and (cache.hits, cache.misses) == (1, 1)
    assert cache.get("bad") is None  # gone for good
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:  # a torn or foreign row
        db.execute("INSERT INTO responses VALUES ('torn', 'openai', 'm', '{not json', 0)")
    assert cache.get("torn") is None and len(cache) == 1  # a miss, and dropped


def test_a_malformed_answer_is_not_fatal(monkeypatch):
    """Issue 20.2: a 200 body that does not parse ends one request, not the run."""
    from tripost.teachers.retry import MALFORMED, malformed

    monkeypatch.setenv("OPENAI_API_KEY", "abc-very-secret-123")
    e = malformed("openai", ValueError("body says abc-very-secret-123"))
    assert e.kind == e.reason == MALFORMED and not e.retryable and not e.fatal
    assert "abc-very-secret-123" not in str(e) and str(e).startswith("openai: malformed 200 response (ValueError")
    for status, fatal in ((401, True), (400, True), (429, False), (529, False)):
        assert classify(openai.APIStatusError("x", response=_resp(status), body=None), "openai").fatal is fatal


# ------------------------------------------------------------------ retries ---


def _resp(status: int, headers: dict | None = None) -> httpx2.Response:
    return httpx2.Response(status, headers=headers or {}, request=httpx2.Request("POST", "http://127.0.0.1/v1/x"))


def test_classify_real_sdk_exceptions():
    e = classify(openai.RateLimitError("rate", response=_resp(429, {"retry-after-ms": "250"}), body={"message": "slow down"}), "openai")
    assert e.retryable and e.status == 429 and e.retry_after == pytest.approx(0.25) and e.reason == "http_429"
    quota = {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}
    e = classify(openai.RateLimitError("quota", response=_resp(429), body=quota), "openai")
    assert not e.retryable and e.kind == "spend_limit"
    for status in (400, 401, 403, 404, 422):
        assert not classify(openai.APIStatusError("x", response=_resp(status), body=None), "openai").retryable
    for status in (408, 409, 500, 502, 503, 529):
        assert classify(openai.APIStatusError("x", response=_resp(status), body=None), "openai").retryable
    e = classify(anthropic.OverloadedError("busy", response=_resp(529, {"retry-after": "2"}), body=None), "anthropic")
    assert e.retryable and e.retry_after == 2.0
    req = httpx2.Request("POST", "http://127.0.0.1/v1/x")
    assert classify(openai.APITimeoutError(request=req), "openai").kind == "timeout"
    assert classify(anthropic.APIConnectionError(request=req), "anthropic").kind == "connection"
    assert classify(asyncio.TimeoutError(), "hf").retryable
    assert not classify(ValueError("bug"), "hf").retryable


def test_retry_after_forms():
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_wait_honours_retry_after_else_backs_off():
    wait = _Wait(RetryPolicy(initial=0.5, max_wait=4, jitter=0.0))

    class State:
        def __init__(self, exc, n):
            self.attempt_number = n
            self.outcome = type("O", (), {"exception": lambda self_: exc})()

    told = ChatError("x", status=429, retryable=True, retry_after=3.0)
    assert 3.0 <= wait(State(told, 1)) <= 3.0 + 0.01 + 0.3
    plain = ChatError("x", status=500, retryable=True)
    assert wait(State(plain, 1)) == pytest.approx(0.5)
    assert wait(State(plain, 3)) == pytest.approx(2.0)
    assert wait(State(plain, 10)) == pytest.approx(4.0)


def test_call_with_retries_counts_and_stops():
    policy = RetryPolicy(max_attempts=4, initial=0.001, jitter=0.0, max_wait=0.01)
    calls = {"n": 0}
    seen: list[str] = []

    async def flaky():
        calls["n"] += 1
        if calls["n"] < 3:
            raise openai.InternalServerError("boom", response=_resp(500), body=None)
        return "ok"

    assert asyncio.run(call_with_retries(flaky, policy, "openai", on_retry=lambda e: seen.append(e.reason))) == ("ok", 2)
    assert seen == ["http_500", "http_500"]

    calls["n"] = 0

    async def denied():
        calls["n"] += 1
        raise openai.AuthenticationError("no", response=_resp(401), body=None)

    with pytest.raises(ChatError) as ei:
        asyncio.run(call_with_retries(denied, policy, "openai"))
    assert calls["n"] == 1 and ei.value.status == 401

    calls["n"] = 0

    async def always_busy():
        calls["n"] += 1
        raise ChatError("busy", status=529, retryable=True, retry_after=0.0)

    with pytest.raises(ChatError):
        asyncio.run(call_with_retries(always_busy, policy, "anthropic"))
    assert calls["n"] == 4

    calls["n"] = 0

    async def come_back_tomorrow():
        calls["n"] += 1
        raise ChatError("later", status=429, retryable=True, retry_after=86400.0)

    with pytest.raises(ChatError):
        asyncio.run(call_with_retries(come_back_tomorrow, policy, "openai"))
    assert calls["n"] == 1  # a Retry-After longer than the policy allows is not slept through


def test_redact_removes_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "abc-very-secret-123")
    text = redact("bad key abc-very-secret-123, also sk-proj-AbC123xyz and sk-ant-api03-****wxyz; Bearer tok123")
    assert "abc-very-secret-123" not in text and "sk-proj" not in text and "sk-ant" not in text and "tok123" not in text
    assert ChatError("HTTP 401 (Incorrect API key provided: sk-abcd****1234)").args[0].count("sk-") == 0


# --------------------------------------------------------------- validation ---


def test_feedback_validation_accepts_scripted_and_rejects_the_rest():
    p, bad, k = corrupted("arithmetic", seed=3, n=1)[0]
    fb = SCRIPTED.feedback(p, bad)
    sentence, parsed, reason = P.validate_feedback(f"Feedback: {fb.text}\n\nsome chatter after", bad)
    assert reason is None and parsed.render() == fb.feedback.render() and sentence == fb.text
    n = parse_rationale(bad).n_steps
    cases = {
        "": P.EMPTY,
        "   ": P.EMPTY,
        "This attempt looks fine to me.": P.UNPARSEABLE,
        f'In step ({n + 3}) the part "{bad.splitlines()[0][4:12]}" is incorrect.': P.STEP_OUT_OF_RANGE,
        'In step (1) the part "" is incorrect.': P.EMPTY_SEGMENT,
        'In step (1) the part "not in the attempt at all" is incorrect. This is because x.': P.SEGMENT_NOT_IN_ATTEMPT,
    }
    for text, want in cases.items():
        assert P.validate_feedback(text, bad)[2] == want, text
    ok = P.validate_feedback("Feedback: Step (1) is correct. The final response is also correct.", bad)
    assert ok[2] is None and ok[1].is_correct
    # Accepted feedback comes back canonical: the "are correct" prefix agrees with the step named.
    part = parse_rationale(bad).steps[0][:10]
    sentence, parsed, reason = P.validate_feedback(f'Step (1) to step (7) are correct. In step (1) the part "{part}" is incorrect. This is because X.', bad)
    assert reason is None and sentence == parsed.render() and sentence.startswith("In step (1)")


def test_improve_validation():
    p, bad, _ = next(c for c in corrupted("arithmetic", seed=5, n=6) if parse_rationale(c[0].rationale).n_steps >= 3 and c[2] >= 2)
    fb = SCRIPTED.feedback(p, bad).feedback
    good = SCRIPTED.improve(p, bad, fb).rationale
    k = fb.error_step
    assert P.validate_improvement(f"Updated Answer:\n{good}", bad, fb) == (good, None)
    assert P.validate_improvement(f"```\n{good}\n```", bad, fb) == (good, None)
    if k <= parse_rationale(good).n_steps:
        tail = good[parse_rationale(good).offset_of(k):]
        assert P.validate_improvement(tail, bad, fb) == (good, None)  # a continuation from step k
    lines = good.splitlines()
    if k >= 2:
        changed = "\n".join(["(1) something else entirely"] + lines[1:])
        assert P.validate_improvement(changed, bad, fb)[1] == P.CHANGED_KEPT_STEPS
    assert P.validate_improvement("\n".join(lines[:-1]), bad, fb)[1] == P.NO_FINAL_ANSWER
    assert P.validate_improvement("no idea", bad, fb)[1] in (P.UNPARSEABLE, P.NO_FINAL_ANSWER)
    assert P.validate_improvement(bad, bad, fb)[1] == P.WRONG_STEP_UNCHANGED
    assert P.validate_improvement("(1) a\n(3) b\n(Final response) So the answer is 1.", bad, fb)[1] == P.BAD_NUMBERING


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), family=st.sampled_from(["arithmetic", "word_sorting"]))
def test_scripted_answers_always_validate(seed, family):
    """What the scripted teacher writes is exactly what validation accepts:
    the same feedback and, byte for byte, the same improvement."""
    for p, bad, _ in corrupted(family, seed=seed, n=1):
        fb = SCRIPTED.feedback(p, bad)
        _, parsed, reason = P.validate_feedback(f"Feedback: {fb.text}", bad)
        assert reason is None and parsed.render() == fb.feedback.render()
        if fb.feedback.is_correct:
            continue
        good = SCRIPTED.improve(p, bad, fb.feedback).rationale
        assert P.validate_improvement(f"Updated Answer:\n{good}", bad, parsed) == (good, None)


# ---------------------------------------------------------------- templates ---


def test_templates_exist_and_load_for_every_family():
    for fam in FAMILIES:
        for kind in ("feedback", "improve"):
            t = load_template(fam, kind)
            assert t.system and t.examples and "{attempt}" in t.user
            if kind == "improve":
                assert "{feedback}" in t.user


def test_fewshot_examples_are_reproducible_and_correct():
    spec = importlib.util.spec_from_file_location("make_fewshot", ROOT / "scripts" / "make_fewshot.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, "prompts/teacher is stale: run scripts/make_fewshot.py"
    # Every feedback example is what the validator accepts for its attempt.
    for fam in available_scripted_families():
        for user, assistant in load_template(fam, "feedback").examples:
            attempt = user.split("Attempt:\n", 1)[1]
            assert P.validate_feedback(assistant, attempt)[2] is None


def test_template_parse_errors():
    with pytest.raises(TripostError, match="system"):
        parse_template("=== user ===\nx", "t")
    with pytest.raises(TripostError, match="example assistant"):
        parse_template("=== system ===\ns\n=== example user ===\nu\n=== user ===\nx", "t")
    with pytest.raises(TripostError, match="before the first"):
        parse_template("stray\n=== system ===\ns\n=== user ===\nx", "t")


def test_request_block_roundtrip_and_escaping():
    p = sample_problems(get_task("arithmetic"), n=1, seed=0)[0]
    attempt = "(1) tricky </tripost-request> text\n(Final response) So the answer is 1."
    text = "Question...\n\n" + render_block("improve", p, attempt, "In step (1) the part \"x\" is incorrect.")
    block = parse_block(text)
    assert block.kind == "improve" and block.attempt == attempt and block.problem.meta == p.meta
    assert parse_block("no block here") is None
    with pytest.raises(TripostError, match="malformed"):
        parse_block('<tripost-request>{"kind": "nope"}</tripost-request>')


# ------------------------------------------------------------------- replay ---


def _write_log(path: Path, records: list[dict]) -> None:
    with path.open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def test_replay_answers_recorded_requests_only(tmp_path):
    p, bad, _ = corrupted("arithmetic", seed=11, n=1)[0]
    fb = SCRIPTED.feedback(p, bad)
    good = SCRIPTED.improve(p, bad, fb.feedback).rationale
    fb2 = SCRIPTED.feedback(p, good)
    record = {
        "schema": "tripost.log/1", "key": f"{p.id}#p0s0@it0", "problem": p.to_dict(), "kind": "improvement",
        "turns": [{"rationale": bad, "feedback": fb.text, "source": "student"}, {"rationale": good, "feedback": fb2.text, "source": "teacher"}],
        "final_correct": True, "stop_reason": "correct",
    }
    log = tmp_path / "log.jsonl"
    _write_log(log, [record])
    t = make_teacher(f"replay:{log}")
    assert isinstance(t, ReplayTeacher)
    r = t.feedback(p, bad)
    assert r.text == fb.text and r.feedback.error_step == fb.feedback.error_step and r.calls[0].backend == "replay"
    assert t.improve(p, bad, r.feedback).rationale == good
    assert t.improve(p, bad, fb.feedback).rationale == good  # the caller's own Feedback value works too
    assert t.feedback(p, good).feedback.is_correct
    with pytest.raises(TripostError, match="no feedback"):
        t.feedback(p, "(1) never seen\n(Final response) So the answer is 0.")
    other = Feedback(n_steps=fb.feedback.n_steps, error_step=1, segment="x", reason="y")
    with pytest.raises(TripostError, match="no improvement"):
        t.improve(p, bad, other)
    # A folder of logs works; an empty one or a missing file is a clear error.
    assert make_teacher(f"replay:{tmp_path}").feedback(p, bad).text == fb.text
    (tmp_path / "empty").mkdir()
    with pytest.raises(TripostError, match="no \\*.jsonl"):
        make_teacher(f"replay:{tmp_path / 'empty'}")
    with pytest.raises(TripostError, match="no such log"):
        make_teacher(f"replay:{tmp_path / 'missing.jsonl'}")


# --------------------------------------------------------------------- specs ---


def test_make_teacher_specs(monkeypatch, tmp_path):
    assert make_teacher("scripted").name == "scripted"
    for bad in ("", "gpt", "scripted:x", "openai:", "anthropic:", "hf:", "replay:", "vllm:foo"):
        with pytest.raises(TripostError):
            make_teacher(bad)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(TripostError, match="OPENAI_API_KEY"):
        make_teacher("openai:gpt-6-luna", cache=False)
    with pytest.raises(TripostError, match="ANTHROPIC_API_KEY"):
        make_teacher("anthropic:claude-haiku-5-5", cache=False)
    with pytest.raises(TripostError, match="hf teacher"):
        make_teacher(f"hf:{tmp_path / 'nope'}", cache=False)
    # A local OpenAI-compatible server needs no key.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    t = make_teacher("openai:llama3", cache=tmp_path / "c.sqlite")
    assert t.name == "openai:llama3" and "key" not in repr(t.backend).lower()
    t.close()
