"""Issue 27: the teacher's own attempt (`AttemptingTeacher.attempt`).

The demo ablation as the authors ran it (jasonyux/TriPosT
runners/trainer/train_self_improve_from_demo.py) has the LLM write the
attempts at temperature 1.0. These tests send the attempt call through the
real `openai` and `anthropic` SDKs over real HTTP to `tripost serve-teacher`
on loopback, running the scripted teacher (whose attempts are seeded draws
of the gold rationale or the family's wrong attempt: tripost/serve/attempts.py),
and read in its /stats what each request carried. Also: the cache key holds
the temperature and the sample, the attempt prompt hides the gold unless
asked, the hf backend samples reproducibly, replay replays recorded
attempts, and the scripted teacher has no attempt call.
"""

from __future__ import annotations

import json

import pytest
from sdk_env import isolate_sdks, point_at, stats

from tripost.errors import TripostError
from tripost.format import parse_rationale
from tripost.serve import start_server
from tripost.tasks import get_task, sample_problems
from tripost.tasks.base import Problem
from tripost.teachers import make_teacher
from tripost.teachers.base import ATTEMPT_TEMPERATURE, AttemptingTeacher, attempting
from tripost.teachers.prompted import (
    BAD_NUMBERING,
    BAD_TEMPERATURE,
    EMPTY,
    NO_FINAL_ANSWER,
    UNPARSEABLE,
    PromptedTeacher,
    validate_attempt,
)
from tripost.teachers.replay import ReplayTeacher
from tripost.teachers.retry import RetryPolicy
from tripost.teachers.scripted import ScriptedTeacher
from tripost.teachers.templates import load_template, parse_block

TOKEN = "tpst-test-DO-NOT-LEAK-attempt-token-2468"
FAST = RetryPolicy(max_attempts=3, initial=0.005, jitter=0.005, max_wait=0.05)
SPECS = ("openai:scripted", "anthropic:scripted")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    isolate_sdks(monkeypatch, tmp_path, TOKEN)


@pytest.fixture
def server(monkeypatch):
    with start_server(ScriptedTeacher(), token=TOKEN) as srv:
        point_at(monkeypatch, srv)
        yield srv




def llm_teacher(spec: str, *, gold: bool = True, **kw) -> PromptedTeacher:
    """An LLM teacher through the SDK; `gold`: its attempt requests carry the
    gold, which the scripted server needs to write attempts."""
    kw.setdefault("cache", False)
    kw.setdefault("policy", FAST)
    t = make_teacher(spec, **kw)
    assert isinstance(t, PromptedTeacher)
    t.attempt_gold = gold
    return t


def problems(family: str = "arithmetic", n: int = 4, seed: int = 11):
    return sample_problems(get_task(family), n=n, seed=seed)


QA = Problem(id="qa-1", family="qa", question="What is the capital of France?", answer="Paris", rationale="(1) It is Paris.\n"
             "(Final response) So the answer is Paris.", difficulty="external")


# ------------------------------------------------------------ who attempts ---


def test_llm_teachers_can_attempt_the_scripted_teacher_cannot():
    t = make_teacher("openai:m", cache=False, base_url="http://127.0.0.1:9/v1", api_key=TOKEN)
    try:
        assert isinstance(t, AttemptingTeacher) and attempting(t) is t
    finally:
        t.close()
    scripted = make_teacher("scripted")
    assert not hasattr(scripted, "attempt") and attempting(scripted) is None


# ------------------------------------------- through the SDKs, over HTTP ---


@pytest.mark.parametrize("spec", SPECS)
def test_an_attempt_reaches_the_server_at_temperature_1_through_the_sdk(server, spec):
    """The authors sample the LLM's attempts at 1.0 (train_self_improve_from_demo.py:256)
    and its feedback and fixes at 0.0: what the server receives, per request.
    Anthropic under API version 2026-10-21 takes no temperature at all
    (sampling.py): its attempts go at the provider's default, which is 1.0,
    and its feedback can only go there too."""
    openai_ = spec.startswith("openai")
    t = llm_teacher(spec, temperature=0.0 if openai_ else None)  # the authors' 0.0 for feedback and fixes, where it can be sent
    task = get_task("arithmetic")
    right = wrong = 0
    try:
        for p in problems():
            for sample in range(3):
                reply = t.attempt(p, sample=sample)
                assert reply.rejected is None and reply.rationale is not None
                assert [c.kind for c in reply.calls] == ["attempt"] and reply.calls[0].backend == spec.split(":")[0]
                assert reply.calls[0].usage["input"] > 0 and not reply.calls[0].cached
                check = task.check_steps(p, reply.rationale)
                right += check.correct
                wrong += not check.correct
                if check.correct:
                    assert reply.rationale == p.rationale  # the scripted sampler's right draw is the gold
                else:
                    assert check.first_error_step is not None and reply.rationale != p.rationale
            fb = t.feedback(p, p.rationale)
            assert fb.rejected is None and fb.feedback.is_correct
    finally:
        t.close()
    s = stats(server)
    if openai_:
        assert s["params"]["temperature=1.0"] == 12 and s["params"]["temperature=0.0"] == 4, s["params"]
        assert "temperature=absent" not in s["params"]
    else:
        assert {k: v for k, v in s["params"].items() if k.startswith("temperature")} == {"temperature=absent": 16}, s["params"]
    assert right and wrong  # a sampler: both kinds, at 1.0 sent or at the provider's default 1.0


def test_an_anthropic_attempt_carries_no_temperature_and_its_sample_in_the_key():
    """The pinned anthropic SDK sends API version 2026-10-21, which refuses
    any temperature: an attempt asked for at 1.0, Anthropic's default, goes
    with none (not in the body, not in a batch item), its cache key records
    the provider's default and still tells the samples apart; an attempt at
    any other temperature is one error line, unsent."""
    from tripost.teachers.anthropic_chat import AnthropicChat

    t = PromptedTeacher(AnthropicChat("claude-x", base_url="http://127.0.0.1:9", api_key=TOKEN))
    try:
        p = problems(n=1)[0]
        req = t.build_request("attempt", p, "", sample=5, temperature=ATTEMPT_TEMPERATURE)
        params = t.backend.build_params(req)
        assert "temperature" not in json.dumps(params) and "extra_body" not in params
        assert "temperature" not in t.backend.batch_params(req)
        assert params["stop_sequences"] == ["\nFeedback:", "\nQuestion:"]
        assert (req.temperature, req.sample_index) == (None, 5) and req.canonical("anthropic")["temperature"] == "provider default"
        keys = {t.requester.key(t.build_request("attempt", p, "", sample=s)) for s in range(4)}
        assert len(keys) == 4  # n samples: n requests, each cached as itself
        with pytest.raises(TripostError) as err:
            t.attempt(p, sample=1, temperature=0.0)
        assert "temperature 0 is set (by the attempt call)" in str(err.value) and "\n" not in str(err.value)
    finally:
        t.close()


@pytest.mark.parametrize("spec", SPECS)
def test_each_sample_is_a_call_of_its_own_and_cached_as_itself(server, spec, tmp_path):
    p = problems(n=1)[0]
    cache = tmp_path / "cache.sqlite"
    t = llm_teacher(spec, cache=cache)
    try:
        first = [t.attempt(p, sample=s) for s in range(4)]
        assert stats(server)["requests"] == 4  # n samples: n calls, none shared
        again = [t.attempt(p, sample=s) for s in range(4)]
        assert stats(server)["requests"] == 4  # all from the cache ...
        assert all(r.calls[0].cached for r in again)
        assert [r.rationale for r in again] == [r.rationale for r in first]  # ... each its own sample's answer
        assert len({r.rationale for r in first}) > 1  # the samples differ
        if spec.startswith("anthropic"):  # no temperature but the default: no greedy attempt, and nothing sent
            with pytest.raises(TripostError, match="refuses temperature"):
                t.attempt(p, sample=0, temperature=0.0)
            assert stats(server)["requests"] == 4
            return
        # At temperature 0 every sample is the same request: one call, then the cache.
        greedy = [t.attempt(p, sample=s, temperature=0.0) for s in (0, 7, 9)]
        assert stats(server)["requests"] == 5 and [r.calls[0].cached for r in greedy] == [False, True, True]
        assert stats(server)["params"]["temperature=0.0"] == 1
    finally:
        t.close()


def test_the_cache_key_holds_the_temperature_and_the_sample():
    t = PromptedTeacher(make_backend(), temperature=0.0)
    try:
        p = problems(n=1)[0]

        def key(**kw):
            return t.requester.key(t.build_request("attempt", p, "", **kw))

        at1 = key(sample=3, temperature=1.0)
        assert at1 == key(sample=3, temperature=1.0)
        assert len({at1, key(sample=4, temperature=1.0), key(sample=3, temperature=0.7), key(sample=3, temperature=0.0)}) == 4
        assert key(sample=3, temperature=0.0) == key(sample=4, temperature=0.0)  # greedy: one request
        req = t.build_request("attempt", p, "", sample=3, temperature=1.0)
        assert (req.temperature, req.sample_index) == (1.0, 3)
        assert TOKEN not in json.dumps(req.canonical("openai", t.backend.endpoint))  # no key in what the cache key hashes
        # Feedback and fixes keep the teacher's own temperature and sample.
        fb = t.build_request("feedback", p, p.rationale)
        assert (fb.temperature, fb.sample_index) == (0.0, 0)
    finally:
        t.close()
    # A temperature left unset: none sent, and the key says so.
    t = PromptedTeacher(make_backend())
    try:
        fb = t.build_request("feedback", p, p.rationale)
        assert fb.temperature is None and fb.canonical("openai")["temperature"] == "provider default"
    finally:
        t.close()


def make_backend():
    from tripost.teachers.openai_chat import OpenAIChat

    return OpenAIChat("m", base_url="http://127.0.0.1:9/v1", api_key=TOKEN)


# ------------------------------------------------------------ the prompt ---


@pytest.mark.parametrize("family", ["arithmetic", "word_sorting", "date_understanding", "logical_deduction", "qa"])
def test_the_attempt_prompt_shows_gold_rationales_as_examples_and_no_gold_of_its_own(family):
    """As the authors' attempt prompt: instructions, (question, gold
    rationale) examples, the question; the block tells a tool the sample
    number but holds the problem's gold only when asked."""
    t = PromptedTeacher(make_backend())
    try:
        tpl = load_template(family, "attempt")
        assert tpl.examples and all(parse_rationale(a).answer for _, a in tpl.examples)
        p = QA if family == "qa" else problems(family, n=1)[0]
        req = t.build_request("attempt", p, "", sample=12, temperature=1.0)
        last = req.messages[-1].content
        assert last.startswith(f"Question: {p.question.strip()}")
        block = parse_block(last)
        assert block.kind == "attempt" and block.sample == 12 and not block.gold
        assert block.problem.answer == "" and block.problem.rationale == "" and not block.problem.meta
        assert p.rationale not in last and '"answer"' not in last
        t.attempt_gold = True
        block = parse_block(t.build_request("attempt", p, "", sample=12, temperature=1.0).messages[-1].content)
        assert block.gold and block.problem.answer == p.answer and block.problem.rationale == p.rationale
    finally:
        t.close()


def test_without_the_gold_the_scripted_server_refuses_an_attempt_in_one_line(server):
    t = llm_teacher("openai:scripted", gold=False)
    try:
        with pytest.raises(TripostError) as err:
            t.attempt(problems(n=1)[0], sample=1)
    finally:
        t.close()
    msg = str(err.value)
    assert "HTTP 400" in msg and "attempt_gold" in msg and "\n" not in msg and TOKEN not in msg


# ------------------------------------------------------------ validation ---


def test_attempt_validation():
    gold = problems(n=1)[0].rationale
    assert validate_attempt(gold) == (gold, None)
    fenced = f"```\nAnswer: Let's think step by step.\n{gold.replace('So the answer is', 'so the answer is')}\n```"
    assert validate_attempt(fenced) == (gold, None)  # preamble and fences dropped, the final line canonical
    assert validate_attempt("  ") == (None, EMPTY)
    assert validate_attempt("I do not know.") == (None, UNPARSEABLE)
    assert validate_attempt("(1) Let's calculate 2 + 2 = 4.") == (None, NO_FINAL_ANSWER)
    assert validate_attempt("(1) a.\n(3) b.\n(Final response) So the answer is 4.") == (None, BAD_NUMBERING)
    assert validate_attempt("(2) a.\n(Final response) So the answer is 4.") == (None, BAD_NUMBERING)


def test_a_malformed_attempt_is_a_rejection_with_a_reason_and_never_cached(monkeypatch, tmp_path):
    """Every answer garbage (serve-teacher's --garbage-rate 1: empty text,
    prose, a feedback, an update without a final answer, ...)."""
    from tripost.serve import Faults

    p = problems(n=1)[0]
    with start_server(ScriptedTeacher(), token=TOKEN, faults=Faults(garbage_rate=1.0, seed=5)) as srv:
        point_at(monkeypatch, srv)
        t = llm_teacher("openai:scripted", cache=tmp_path / "cache.sqlite")
        try:
            replies = [t.attempt(p, sample=1) for _ in range(6)]
            assert all(r.rationale is None and r.rejected in {EMPTY, UNPARSEABLE, NO_FINAL_ANSWER} for r in replies)
            assert all(r.calls[0].rejected == r.rejected and not r.calls[0].cached for r in replies)  # asked again each time
            assert sum(t.rejections.values()) == 6 and stats(srv)["requests"] == 6
            bad = t.attempt(p, sample=1, temperature=-1.0)
            assert bad.rejected == BAD_TEMPERATURE and not bad.calls and stats(srv)["requests"] == 6
        finally:
            t.close()


# ------------------------------------------------------------ proxy mode ---


@pytest.mark.parametrize("spec, carried", [("openai:scripted", "temperature=1.0"), ("anthropic:scripted", "temperature=absent")])
def test_a_proxy_serve_teacher_passes_the_attempt_and_its_temperature_upstream(monkeypatch, spec, carried):
    """serve-teacher in front of an LLM teacher: the client's temperature
    1.0 (OpenAI), or none (Anthropic: the provider's default), reaches the
    upstream as it came, and the answer comes back."""
    with start_server(ScriptedTeacher(), token=TOKEN) as upstream:
        upstream_teacher = llm_teacher("openai:scripted", base_url=upstream.url + "/v1", api_key=TOKEN)
        with start_server(upstream_teacher, token=TOKEN) as proxy:
            point_at(monkeypatch, proxy)
            t = llm_teacher(spec)
            try:
                p = problems(n=1)[0]
                reply = t.attempt(p, sample=3)
                assert reply.rejected is None and parse_rationale(reply.rationale).answer
            finally:
                t.close()
            assert stats(proxy)["params"][carried] == 1
        upstream_teacher.close()
        assert stats(upstream)["params"][carried] == 1


# --------------------------------------------------------------- hf: local ---


def test_hf_samples_an_attempt_at_its_temperature_reproducibly(tiny_model_dir):
    """Greedy at 0, sampled above 0 from a seed that is the request's key:
    the same sample gives the same text, another sample another text, and
    the process's global random state is untouched."""
    import torch

    t = make_teacher(f"hf:{tiny_model_dir}", cache=False, max_tokens=16)
    assert attempting(t) is t
    try:
        p = problems(n=1)[0]

        def text(sample: int, temperature: float) -> str:
            return t.backend.generate(t.build_request("attempt", p, "", sample=sample, temperature=temperature)).text

        state = torch.random.get_rng_state()
        one, other, one_again = text(1, 1.0), text(2, 1.0), text(1, 1.0)
        assert one == one_again and one != other
        assert text(1, 0.0) == text(2, 0.0)  # greedy: the sample number does not count
        assert torch.equal(state, torch.random.get_rng_state())
        reply = t.attempt(p, sample=1)  # a tiny random model: rejected, with a reason, not raised
        assert reply.calls[0].kind == "attempt" and reply.calls[0].usage["input"] > 0
        assert reply.rationale is not None or reply.rejected in {EMPTY, UNPARSEABLE, NO_FINAL_ANSWER, BAD_NUMBERING}
    finally:
        t.close()


# ----------------------------------------------------------------- replay ---


def test_replay_answers_the_attempts_a_demo_log_recorded(server, tmp_path):
    from tripost.sources.demo import demo_collect
    from tripost.sources.teacher import CollectConfig

    cfg = CollectConfig(samples_per_problem=2, seed=4, iteration=1)
    t = llm_teacher("openai:scripted")
    try:
        first = demo_collect(problems(), t, tmp_path / "a.jsonl", cfg, progress=False)
    finally:
        t.close()
    replay = ReplayTeacher(tmp_path / "a.jsonl")
    assert attempting(replay) is replay
    second = demo_collect(problems(), replay, tmp_path / "b.jsonl", cfg, progress=False)
    assert second.attempts_by == first.attempts_by == "teacher" and second.by_kind == first.by_kind

    def turns(path):
        return [json.loads(line)["turns"] for line in path.read_text().splitlines()]

    assert turns(tmp_path / "b.jsonl") == turns(tmp_path / "a.jsonl")
    with pytest.raises(TripostError, match="no teacher attempt for problem .* at sample 99"):
        replay.attempt(problems()[0], sample=99)
    # A log without recorded attempts (the scripted teacher's demo): no attempt call.
    demo_collect(problems(), ScriptedTeacher(), tmp_path / "c.jsonl", cfg, progress=False)
    assert attempting(ReplayTeacher(tmp_path / "c.jsonl")) is None
