"""The API teachers for real: the official `openai` and `anthropic` SDKs talk
to `serve-teacher` on loopback (127.0.0.1, an ephemeral port), configured
through OPENAI_BASE_URL / ANTHROPIC_BASE_URL and dummy keys."""

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


def point_at(monkeypatch, srv) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)


@pytest.fixture
def server(monkeypatch):
    with start_server(ScriptedTeacher()) as srv:
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


@pytest.mark.parametrize("sdk", SDKS)
def test_injected_failures_are_retried_then_cache_makes_zero_requests(sdk, monkeypatch, tmp_path):
    faults = Faults(fail_rate=0.3, fail_codes=(429, 500, 529), retry_after=0.01, seed=7)
    items = cases("arithmetic", n=6, seed=1) + cases("word_sorting", n=6, seed=1)
    cache = tmp_path / "cache.sqlite"
    with start_server(ScriptedTeacher(), faults=faults) as srv:
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
    with start_server(ScriptedTeacher(), faults=Faults(garbage_rate=1.0, seed=3)) as srv:
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
    with start_server(ScriptedTeacher(), faults=Faults(fail_rate=1.0, fail_codes=(code if code == "quota" else int(code),))) as srv:
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
    for key in (FAKE_OPENAI_KEY, FAKE_ANTHROPIC_KEY):
        assert key not in msg and key not in caplog.text


def test_retry_after_header_is_read_from_real_sdk_errors(monkeypatch):
    with start_server(ScriptedTeacher(), faults=Faults(fail_rate=1.0, fail_codes=(429,), retry_after=0.25, seed=1)) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="dummy", max_retries=0)
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
    with start_server(ScriptedTeacher(), faults=Faults(fail_rate=0.3, retry_after=0.01, seed=2)) as srv:
        point_at(monkeypatch, srv)
        with caplog.at_level(logging.DEBUG):
            for sdk in SDKS:
                t = teacher(sdk, cache=cache)
                try:
                    replies = t.feedback_many(items)
                    report = json.dumps([c.to_dict() for r in replies for c in r.calls]) + json.dumps(t.stats()) + repr(t.backend)
                finally:
                    t.close()
                for key in (FAKE_OPENAI_KEY, FAKE_ANTHROPIC_KEY):
                    assert key not in report
    out, err = capfd.readouterr()
    blobs = b"".join(f.read_bytes() for f in tmp_path.glob("cache.sqlite*"))
    assert blobs  # the cache was written
    for key in (FAKE_OPENAI_KEY, FAKE_ANTHROPIC_KEY):
        assert key.encode() not in blobs
        assert key not in caplog.text and key not in out and key not in err


# ------------------------------------------------------------- concurrency ---


def test_concurrency_is_bounded_per_backend(monkeypatch):
    items = cases("arithmetic", n=10, seed=5) + cases("word_sorting", n=5, seed=5)
    with start_server(ScriptedTeacher(), faults=Faults(latency=0.05)) as srv:
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
        req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
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
    with urllib.request.urlopen(server.url + "/v1/models") as r:
        assert json.loads(r.read())["data"][0]["id"]
    s = stats(server)
    assert s["by_status"]["400"] == 2 and s["by_status"]["404"] == 1


def test_serve_teacher_command_runs_as_a_process(tmp_path):
    env = {**os.environ, "TRIPOST_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tripost.serve", "--port", "0", "--backend", "scripted", "--fail-rate", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving scripted on http://127.0.0.1:"), line + proc.stderr.read() if proc.poll() is not None else line
        url = line.split()[3]
        with urllib.request.urlopen(url + "/stats") as r:
            assert json.loads(r.read())["requests"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([sys.executable, "-m", "tripost.serve", "--fail-rate", "2"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr and "Traceback" not in bad.stderr


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
