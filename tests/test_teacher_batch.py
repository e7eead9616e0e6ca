"""Issue 19, item 2: `teacher.batch`, the OpenAI Batch API and Anthropic
Message Batches at half price, through the real SDKs against serve-teacher.

The client (tripost/teachers/batch.py) holds a round's requests, sends them
as one batch, polls, and answers each request with its result; failures and
expiry inside a batch retry into the next one; a killed run resumes the batch
it already sent (the run folder's record) instead of paying twice; answers
cost `BATCH_PRICE` of the list price, and are the answers the live API gives.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tripost.cli import main
from tripost.errors import TripostError
from tripost.format import parse_rationale
from tripost.serve import Faults, start_server
from tripost.sources.teacher import CollectConfig, collect
from tripost.tasks import get_task, sample_problems
from tripost.teachers import make_teacher
from tripost.teachers.batch import BATCH_LOG_FILE, BatchLog
from tripost.teachers.prompted import PromptedTeacher
from tripost.teachers.retry import RetryPolicy
from tripost.teachers.scripted import ScriptedTeacher
from tripost.teachers.usage import BATCH_PRICE

TOKEN = "tpst-test-DO-NOT-LEAK-batch-token-2468"
FAST = RetryPolicy(max_attempts=6, initial=0.01, jitter=0.01, max_wait=0.05)
TASK = get_task("arithmetic")
PRICES = {"scripted": {"input": 1.0, "output": 2.0}}
SPECS = ("openai:scripted", "anthropic:scripted")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("TRIPOST_HOME", str(tmp_path / "home"))
    for var in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", TOKEN)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TOKEN)


def serve(monkeypatch, **faults):
    srv = start_server(ScriptedTeacher(), token=TOKEN, faults=Faults(**faults))
    monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
    return srv


def stats(srv) -> dict:
    with urllib.request.urlopen(srv.url + "/stats") as r:
        return json.loads(r.read())


def wrong_attempts(n: int, seed: int = 0) -> list[tuple]:
    out = []
    for i, p in enumerate(sample_problems(TASK, n=n, seed=seed)):
        rng = random.Random(f"{seed}|{i}")
        out.append((p, TASK.corrupt(p, rng.randint(1, parse_rationale(p.rationale).n_steps + 1), rng)))
    return out


def teacher(spec: str, tmp_path: Path, batch: bool = True, **kw) -> PromptedTeacher:
    kw.setdefault("cache", False)
    kw.setdefault("policy", FAST)
    kw.setdefault("prices", PRICES)
    t = make_teacher(spec, batch=batch, batch_wait=0.2, batch_poll=0.05, batch_log=tmp_path / BATCH_LOG_FILE, **kw)
    assert isinstance(t, PromptedTeacher)
    return t


@pytest.mark.parametrize("spec", SPECS)
def test_a_round_goes_out_as_one_batch_with_the_live_answers_at_half_price(spec, monkeypatch, tmp_path):
    items = wrong_attempts(6)
    with serve(monkeypatch, batch_latency=0.1) as srv:
        live = teacher(spec, tmp_path, batch=False)
        batched = teacher(spec, tmp_path)
        try:
            want = live.feedback_many(items)
            before = stats(srv)
            got = batched.feedback_many(items)
            after = stats(srv)
        finally:
            live.close()
            batched.close()
    assert [r.text for r in got] == [r.text for r in want] and all(r.feedback is not None for r in got)
    # One batch of six; no live request went out for them.
    assert after["batches"]["created"] == 1 and after["batches"]["requests"] == 6
    chat_path = "/v1/chat/completions" if spec.startswith("openai") else "/v1/messages"
    assert after["by_path"].get(chat_path, 0) == before["by_path"].get(chat_path, 0)
    batch_ids = {r.calls[0].batch for r in got}
    assert len(batch_ids) == 1 and batch_ids != {""}
    assert all(r.calls[0].batch == "" for r in want)  # a live call logs no batch
    # The same tokens cost half.
    live_cost = sum(r.calls[0].cost_usd for r in want)
    batch_cost = sum(r.calls[0].cost_usd for r in got)
    assert live_cost > 0 and batch_cost == pytest.approx(BATCH_PRICE * live_cost)
    entry = batched.ledger.to_dict()[f"{spec.split(':')[0]}:scripted"]
    assert entry["batched"] == 6 and entry["list_cost_usd"] == pytest.approx(live_cost)
    assert batched.ledger.total_list_cost() == pytest.approx(live_cost)
    # The record of batches sent holds ids and hashes only.
    record = json.loads((tmp_path / BATCH_LOG_FILE).read_text())
    assert [b["state"] for b in record["batches"]] == ["completed" if spec.startswith("openai") else "ended"]
    assert TOKEN not in (tmp_path / BATCH_LOG_FILE).read_text()


@pytest.mark.parametrize("spec", SPECS)
def test_failed_and_expired_requests_retry_into_the_next_batch(spec, monkeypatch, tmp_path):
    items = wrong_attempts(12, seed=3)
    with serve(monkeypatch, fail_rate=0.25, fail_codes=(500, 529), batch_expire_rate=0.25, seed=7) as srv:
        t = teacher(spec, tmp_path)
        try:
            replies = t.feedback_many(items)
        finally:
            t.close()
        s = stats(srv)
    assert all(r.feedback is not None for r in replies), [r.rejected for r in replies]
    assert s["batches"]["errored"] > 0 and s["batches"]["expired"] > 0
    assert s["batches"]["created"] >= 2  # the failures went out again, together
    assert s["batches"]["succeeded"] == 12  # each request answered once: nothing paid twice
    record = BatchLog(tmp_path / BATCH_LOG_FILE)
    assert sum(len(b["keys"]) - len(b["failed"]) for b in record.batches) == 12
    retried = [r for r in replies if r.calls[0].retries]
    assert retried and all(r.calls[0].batch for r in replies)


@pytest.mark.parametrize("spec", SPECS)
def test_a_killed_run_resumes_its_batch_instead_of_paying_twice(spec, monkeypatch, tmp_path):
    items = wrong_attempts(5, seed=5)
    with serve(monkeypatch, batch_latency=1.5) as srv:
        first = teacher(spec, tmp_path)
        worker = threading.Thread(target=lambda: _swallow(first.feedback_many, items), daemon=True)
        worker.start()
        deadline = time.monotonic() + 20
        while not (tmp_path / BATCH_LOG_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (tmp_path / BATCH_LOG_FILE).exists()
        first.close()  # the run dies with its batch sent and unanswered
        worker.join(timeout=10)
        assert not worker.is_alive()  # closing the teacher released the caller
        second = teacher(spec, tmp_path)
        try:
            replies = second.feedback_many(items)
        finally:
            second.close()
        s = stats(srv)
    assert all(r.feedback is not None for r in replies)
    assert s["batches"]["created"] == 1 and s["batches"]["requests"] == 5
    assert len({r.calls[0].batch for r in replies}) == 1


def _swallow(fn, *args):
    try:
        fn(*args)
    except BaseException:  # the teacher closed under it: that is the point
        pass


def test_an_answered_batch_is_read_again_not_resent_and_the_cache_serves_accepted_answers(monkeypatch, tmp_path):
    """A rerun after the batch ended downloads its results again (no new
    batch); with the response cache on, accepted answers need no batch at all."""
    items = wrong_attempts(4, seed=9)
    with serve(monkeypatch) as srv:
        for _ in range(2):
            t = teacher("openai:scripted", tmp_path)
            try:
                t.feedback_many(items)
            finally:
                t.close()
        assert stats(srv)["batches"]["created"] == 1
        cache = tmp_path / "cache.sqlite"
        for _ in range(2):
            t = teacher("openai:scripted", tmp_path / "cached", cache=cache)
            try:
                replies = t.feedback_many(items)
            finally:
                t.close()
        assert stats(srv)["batches"]["created"] == 2
    assert all(r.calls[0].cached for r in replies)


def test_collect_edits_trajectories_round_by_round_through_batches(monkeypatch, tmp_path):
    """The ordinary collection loop, unchanged, over a batch teacher: the
    same trajectories as a live teacher, every call answered by a batch."""
    problems = sample_problems(TASK, n=6, seed=11)
    wrong = dict((p.id, a) for p, a in wrong_attempts(6, seed=11))

    def sampler(batch, n, seed):
        return [[wrong[p.id]] * n for p in batch]

    logs = {}
    with serve(monkeypatch) as srv:
        for name, batch in (("live", False), ("batch", True)):
            t = teacher("openai:scripted", tmp_path / name, batch=batch)
            try:
                result = collect(problems, sampler, t, tmp_path / name / "log.jsonl", CollectConfig(samples_per_problem=1, teacher_concurrency=6), progress=False)
            finally:
                t.close()
            logs[name] = [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
            if batch:
                assert result.batched_calls == result.teacher_calls > 6
                assert result.usable == 6
        s = stats(srv)
    strip = lambda recs: [(r["key"], r["kind"], r["turns"]) for r in recs]  # noqa: E731
    assert strip(logs["batch"]) == strip(logs["live"])
    # Feedback, improve, feedback again: one batch a round, not one per request.
    assert 2 <= s["batches"]["created"] <= 2 * CollectConfig().max_edits + 1
    assert all(c.get("batch") for r in logs["batch"] for c in r["teacher_calls"])
    assert not any("batch" in c for r in logs["live"] for c in r["teacher_calls"])


def test_a_round_is_everything_the_pass_can_ask_not_teacher_concurrency(monkeypatch, tmp_path):
    """Issue 29, item 4: with a batching teacher the collection samples the
    whole pass (several student batches) and edits every trajectory at once,
    so the first round is one batch of every trajectory's feedback request,
    not `teacher_concurrency` of them."""
    problems = sample_problems(TASK, n=9, seed=17)
    rng = random.Random(17)
    attempts = {p.id: [TASK.corrupt(p, rng.randint(1, parse_rationale(p.rationale).n_steps + 1), rng) for _ in range(2)] for p in problems}

    def sampler(batch, n, seed):
        return [attempts[p.id][:n] for p in batch]

    distinct = len({(p.id, a) for p in problems for a in attempts[p.id]})
    with serve(monkeypatch):
        t = teacher("openai:scripted", tmp_path)
        assert t.answers_in_rounds
        try:
            cfg = CollectConfig(samples_per_problem=2, teacher_concurrency=2, batch_size=4, max_edits=1)
            result = collect(problems, sampler, t, tmp_path / "log.jsonl", cfg, progress=False)
        finally:
            t.close()
    assert result.records_written == 18 and result.batched_calls > 0
    calls = [c for line in (tmp_path / "log.jsonl").read_text().splitlines() for c in json.loads(line)["teacher_calls"]]
    assert all(c.get("batch") for c in calls if not c["cached"])  # (a cached one: the same request asked twice at once)
    sizes = [len(b["keys"]) for b in BatchLog(tmp_path / BATCH_LOG_FILE).batches]
    assert sizes[0] == distinct > cfg.teacher_concurrency  # the pass's every feedback request in one batch
    assert len(sizes) <= 1 + 2 * cfg.max_edits  # then one batch a round


def test_split_round_keeps_the_providers_count_and_byte_limits():
    from tripost.teachers.batch import ENVELOPE_BYTES, split_round

    limit = ENVELOPE_BYTES + 100
    assert split_round([10] * 7, 3, 10**9) == ([[0, 1, 2], [3, 4, 5], [6]], [])
    assert split_round([40, 40, 40, 30, 101, 60], 10, limit) == ([[0, 1], [2, 3], [5]], [4])
    assert split_round([], 3, limit) == ([], [])


@pytest.mark.parametrize("spec", SPECS)
def test_a_round_over_the_providers_limits_goes_out_as_several_batches(spec, monkeypatch, tmp_path):
    """A round bigger than one batch may hold (OpenAI: 50,000 requests or
    200 MB of input file; Anthropic: 100,000 or 256 MB) is split; here the
    byte limit is lowered to about three requests a batch."""
    from tripost.teachers.batch import ENVELOPE_BYTES

    items = wrong_attempts(8, seed=19)
    with serve(monkeypatch):
        t = teacher(spec, tmp_path)
        try:
            inner = t.backend.backend
            assert (inner.MAX_BATCH_REQUESTS, inner.MAX_BATCH_BYTES) == (
                (50_000, 200_000_000) if spec.startswith("openai") else (100_000, 256_000_000))
            size = max(len(inner.batch_item("x" * 64, t.build_request("feedback", p, a))) for p, a in items)
            t.backend.max_bytes = ENVELOPE_BYTES + 3 * size
            replies = t.feedback_many(items)
        finally:
            t.close()
    assert all(r.feedback is not None for r in replies)
    sizes = [len(b["keys"]) for b in BatchLog(tmp_path / BATCH_LOG_FILE).batches]
    assert sum(sizes) == 8 and len(sizes) >= 3 and max(sizes) <= 3, sizes


def test_anthropic_batches_cache_the_prefix_for_an_hour_at_its_price(monkeypatch, tmp_path):
    """Message Batches items mark the shared prefix with the 1-hour TTL
    (a batch runs longer than the default 5 minutes keep it); the writes come
    back as 1-hour writes and are billed at the 1-hour price (an override
    without one: twice its input price), at half in a batch."""
    items = wrong_attempts(4, seed=23)
    with start_server(ScriptedTeacher(), token=TOKEN, cache_min_tokens=0) as srv:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        t = teacher("anthropic:scripted", tmp_path, prices={"scripted": {"input": 1.0, "output": 2.0, "cache_read": 0.1, "cache_write": 1.25}})
        try:
            replies = t.feedback_many(items)
        finally:
            t.close()
    assert all(r.feedback is not None for r in replies)
    e = t.ledger.entry("anthropic", "scripted")
    assert e.batched == 4 and e.cache_write_tokens > 0 and e.cache_write_1h_tokens == e.cache_write_tokens
    list_cost = (e.input_tokens * 1.0 + e.output_tokens * 2.0 + e.cache_read_tokens * 0.1 + e.cache_write_1h_tokens * 2.0) / 1e6
    assert e.list_cost_usd == pytest.approx(list_cost) and e.cost_usd == pytest.approx(BATCH_PRICE * list_cost)


def test_collect_cli_takes_teacher_batch_and_records_batches_in_the_run_folder(monkeypatch, tmp_path, capsys):
    from tripost.cli import build_parser
    from tripost.teachers import TeacherOptions

    args = build_parser().parse_args(["collect", "--task", "arithmetic", "--out", str(tmp_path / "c"), "--teacher-batch",
                                      "--teacher-batch-wait", "0.5", "--teacher-batch-poll", "7"])
    options = TeacherOptions.from_args(args)
    assert (options.batch, options.batch_wait, options.batch_poll) == (True, 0.5, 7.0)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    t = make_teacher("openai:scripted", **options.teacher_kwargs(), batch_log=tmp_path / "c" / BATCH_LOG_FILE)
    try:
        assert t.backend.wait == 0.5 and t.backend.poll == 7.0 and t.backend.log.path == tmp_path / "c" / BATCH_LOG_FILE
    finally:
        t.close()


def test_teach_batches_its_rounds_and_says_what_they_saved(monkeypatch, tmp_path, capsys):
    attempts = tmp_path / "attempts.jsonl"
    attempts.write_text("".join(json.dumps({**p.to_dict(), "attempt": a}) + "\n" for p, a in wrong_attempts(3, seed=13)))
    prices = tmp_path / "prices.toml"
    prices.write_text('["scripted"]\ninput = 1.0\noutput = 2.0\n')
    with serve(monkeypatch) as srv:
        rc = main(["teach", "--teacher", "anthropic:scripted", "--task", "arithmetic", str(attempts), "--teacher-batch",
                   "--teacher-batch-wait", "0.2", "--teacher-batch-poll", "0.05", "--teacher-prices", str(prices), "--no-teacher-cache"])
        s = stats(srv)
    assert rc == 0
    captured = capsys.readouterr()
    out = [json.loads(line) for line in captured.out.splitlines()]
    assert len(out) == 3 and all(o["improved"] for o in out)
    assert all(c["batch"] for o in out for c in o["calls"])
    assert s["batches"]["created"] == 2  # the feedback round, then the improve round
    summary = captured.err.strip().splitlines()[-1]
    cost = sum(c["cost_usd"] for o in out for c in o["calls"])
    assert summary.startswith("taught 3:") and f"cost ${cost:.4f} (6 answers from provider batches at half price; ${2 * cost:.4f} at list price)" in summary, summary
    assert (tmp_path / "home" / BATCH_LOG_FILE).exists()  # teach keeps its record under TRIPOST_HOME


def test_a_fatal_batch_error_stops_with_one_line(monkeypatch, tmp_path):
    items = wrong_attempts(2)
    with serve(monkeypatch):
        monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-for-the-batch-test")
        t = teacher("openai:scripted", tmp_path)
        try:
            with pytest.raises(TripostError) as err:
                t.feedback_many(items)
        finally:
            t.close()
    assert "401" in str(err.value) and "sk-wrong" not in str(err.value)
    assert not (tmp_path / BATCH_LOG_FILE).exists()  # nothing was sent, so nothing to resume


@pytest.mark.parametrize("args, needle", [
    (["--teacher", "hf:smollm2-135m", "--teacher-batch"], "teacher.batch (--teacher-batch) needs an openai: or anthropic: teacher"),
    (["--teacher", "openai:x", "--teacher-batch", "--teacher-batch-wait", "0"], "--teacher-batch-wait must be more than 0 seconds"),
    (["--teacher", "openai:x", "--teacher-batch-poll", "-1"], "--teacher-batch-poll must be more than 0 seconds"),
])
def test_a_wrong_batch_option_is_one_line(tmp_path, capsys, args, needle):
    attempts = tmp_path / "a.jsonl"
    attempts.write_text("")
    assert main(["teach", "--task", "arithmetic", *args, str(attempts)]) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and needle in err[0], err


def test_run_config_takes_teacher_batch(tmp_path):
    from tripost.runconfig import RunConfig

    options = RunConfig.load(None, ["teacher.batch=true", "teacher.batch_wait=1.5", "teacher.batch_poll=60"]).teacher_options()
    assert (options.batch, options.batch_wait, options.batch_poll) == (True, 1.5, 60.0)
    with pytest.raises(TripostError, match="teacher.batch_poll must be more than 0 seconds"):
        RunConfig.load(None, ["teacher.batch_poll=0"]).teacher_options()


def test_an_unreadable_batch_record_is_kept_and_named(tmp_path):
    path = tmp_path / BATCH_LOG_FILE
    path.write_text("{not json")
    with pytest.raises(TripostError, match="is unreadable.*not overwritten"):
        BatchLog(path)
    assert path.read_text() == "{not json"


def _record(tmp_path: Path, batch_id: str, spec: str, items: list[tuple]) -> None:
    """A record that says the requests of `items` went out in `batch_id`."""
    t = teacher(spec, tmp_path / "keys")
    try:
        keys = [t.requester.key(t.build_request("feedback", p, a)) for p, a in items]
    finally:
        t.close()
    BatchLog(tmp_path / BATCH_LOG_FILE).add(batch_id, "openai", "x", "scripted", keys)


def test_a_batch_the_provider_does_not_know_is_sent_again(monkeypatch, tmp_path):
    items = wrong_attempts(3, seed=17)
    with serve(monkeypatch) as srv:
        _record(tmp_path, "batch_from_another_project", "openai:scripted", items)
        t = teacher("openai:scripted", tmp_path)
        try:
            replies = t.feedback_many(items)
        finally:
            t.close()
        assert stats(srv)["batches"]["created"] == 1
    assert all(r.feedback is not None for r in replies)
    states = {b["id"]: b["state"] for b in BatchLog(tmp_path / BATCH_LOG_FILE).batches}
    assert states["batch_from_another_project"] == "gone" and sorted(states.values()) == ["completed", "gone"]


def test_a_batch_the_provider_failed_stops_the_run_once_and_the_rerun_sends_a_new_one(monkeypatch, tmp_path):
    import openai

    items = wrong_attempts(2, seed=19)
    with serve(monkeypatch) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key=TOKEN, max_retries=0)
        bad = client.files.create(file=("bad.jsonl", b'{"custom_id": "x"}\n'), purpose="batch")
        failed = client.batches.create(input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h")
        _record(tmp_path, failed.id, "openai:scripted", items)
        t = teacher("openai:scripted", tmp_path)
        try:
            with pytest.raises(TripostError, match=f"batch {failed.id} failed before it ran"):
                t.feedback_many(items)
        finally:
            t.close()
        assert BatchLog(tmp_path / BATCH_LOG_FILE).batches[0]["state"] == "failed"
        t = teacher("openai:scripted", tmp_path)
        try:
            assert all(r.feedback is not None for r in t.feedback_many(items))
        finally:
            t.close()
        assert stats(srv)["batches"]["created"] == 2  # the failed one, and the rerun's


def test_two_records_of_one_file_keep_each_others_batches(tmp_path):
    a, b = BatchLog(tmp_path / BATCH_LOG_FILE), BatchLog(tmp_path / BATCH_LOG_FILE)
    a.add("batch_a", "openai", "e", "m", ["k1", "k2"])
    b.add("batch_b", "openai", "e", "m", ["k3"])
    a.ended("batch_a", "completed", ["k2"])
    fresh = BatchLog(tmp_path / BATCH_LOG_FILE)
    assert sorted(x["id"] for x in fresh.batches) == ["batch_a", "batch_b"]
    assert (fresh.find("k1"), fresh.find("k2"), fresh.find("k3")) == ("batch_a", None, "batch_b")
    # A request failed in a later batch is found in the earlier one it succeeded in.
    a.add("batch_c", "openai", "e", "m", ["k1"])
    a.ended("batch_c", "expired", ["k1"])
    assert a.find("k1") == "batch_a" == BatchLog(tmp_path / BATCH_LOG_FILE).find("k1")


def test_a_run_keeps_its_batch_record_in_the_run_folder(monkeypatch, tmp_path):
    from tripost.loop import Run
    from tripost.runconfig import RunConfig

    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    cfg = RunConfig.load(None, ["teacher.spec=openai:scripted", "teacher.batch=true", "teacher.batch_wait=0.5"]).to_dict()
    run = Run(tmp_path / "run", cfg, progress=False)
    t = run.teacher()
    try:
        assert t.backend.log.path == tmp_path / "run" / BATCH_LOG_FILE and t.backend.wait == 0.5
    finally:
        t.close()
