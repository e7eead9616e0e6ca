"""`hf:PATH` teachers: a tiny random model with the real tokenizer (fast) and
the embedded SmolLM2 (slow). Their answers are mostly rejected; the point is
that rejection is clean: a reply with a reason, never an exception."""

from __future__ import annotations

import json
import random

import pytest

from tripost.format import parse_rationale
from tripost.serve import start_server
from tripost.tasks import get_task, sample_problems
from tripost.teachers import make_teacher
from tripost.teachers.hf_chat import HFChat
from tripost.teachers.prompted import PromptedTeacher
from tripost.teachers.scripted import ScriptedTeacher

SCRIPTED = ScriptedTeacher()
KNOWN_REASONS = {"empty", "unparseable", "step_out_of_range", "segment_not_in_attempt", "no_final_answer",
                 "bad_step_numbers", "changed_kept_steps", "wrong_step_unchanged", "empty_segment"}


@pytest.fixture
def tiny(tiny_model_dir):
    return tiny_model_dir  # tests/conftest.py: built once per session


def wrong_attempt(family: str, seed: int = 0):
    task = get_task(family)
    p = sample_problems(task, n=1, seed=seed)[0]
    rng = random.Random(seed)
    return p, task.corrupt(p, rng.randint(1, parse_rationale(p.rationale).n_steps), rng)


def check_clean(reply, kind: str) -> None:
    call = reply.calls[0]
    assert call.backend == "hf" and call.kind == kind
    if reply.rejected:
        assert reply.rejected in KNOWN_REASONS and call.rejected == reply.rejected
    assert call.cached or call.usage["input"] > 0


def test_tiny_hf_teacher_rejects_cleanly_and_caches(tiny, tmp_path):
    t = make_teacher(f"hf:{tiny}", cache=tmp_path / "cache.sqlite", max_tokens=12)
    assert isinstance(t, PromptedTeacher) and isinstance(t.backend, HFChat)
    try:
        # logical_deduction's few-shot prompt is longer than the tiny model's
        # context: the oldest examples are dropped instead of failing.
        for fam in ("arithmetic", "logical_deduction"):
            p, bad = wrong_attempt(fam)
            fb = t.feedback(p, bad)
            check_clean(fb, "feedback")
            imp = t.improve(p, bad, SCRIPTED.feedback(p, bad).feedback)
            check_clean(imp, "improve")
            assert imp.rationale is None or imp.rejected is None
            again = t.feedback(p, bad)
            # Only answers that pass validation are cached; a rejected one is asked again
            # (greedy decoding: the same text).
            assert again.calls[0].cached == (fb.rejected is None) and again.text == fb.text
        assert sum(t.rejections.values()) >= 1
        assert t.ledger.entry("hf", str(tiny)).output_tokens > 0
    finally:
        t.close()


def test_hf_backend_behind_serve_teacher_answers_like_the_direct_one(tiny, tmp_path, monkeypatch):
    """serve-teacher exposes an LLM teacher as a chat proxy: the same prompt
    through the OpenAI SDK gives the backend's own (greedy) text."""
    direct = make_teacher(f"hf:{tiny}", cache=False, max_tokens=10)
    p, bad = wrong_attempt("word_sorting", seed=1)
    try:
        want = direct.feedback(p, bad)
        with start_server(direct) as srv:
            monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
            monkeypatch.setenv("OPENAI_API_KEY", srv.token)  # the SDK sends its key as the token
            client = make_teacher("openai:whatever", cache=False, max_tokens=10)
            try:
                got = client.feedback(p, bad)
            finally:
                client.close()
    finally:
        direct.close()
    assert got.text == want.text and got.rejected == want.rejected


def test_teach_command_with_hf_teacher(tiny, tmp_path, monkeypatch, capsys):
    from tripost.cli import main

    monkeypatch.setenv("TRIPOST_HOME", str(tmp_path / "home"))
    p, bad = wrong_attempt("arithmetic", seed=2)
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({**p.to_dict(), "attempt": bad}) + "\n")
    assert main(["teach", "--teacher", f"hf:{tiny}", "--task", "arithmetic", str(path)]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["calls"] and row["calls"][0]["backend"] == "hf"
    assert row["rejected"] is None or row["rejected"] in KNOWN_REASONS


@pytest.mark.slow
def test_embedded_smollm2_as_teacher(embedded_dir, tmp_path):
    t = make_teacher("hf:smollm2-135m", cache=tmp_path / "cache.sqlite", max_tokens=40)
    try:
        p, bad = wrong_attempt("arithmetic", seed=3)
        fb = t.feedback(p, bad)
        check_clean(fb, "feedback")
        imp = t.improve(p, bad, SCRIPTED.feedback(p, bad).feedback)
        check_clean(imp, "improve")
    finally:
        t.close()
