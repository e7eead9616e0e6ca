"""date_understanding: generator, step checker, corruption, scripted teacher, records."""

from __future__ import annotations

import json
import random
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripost.errors import TripostError
from tripost.format import parse_rationale
from tripost.tasks import get_task, sample_problems
from tripost.tasks.base import PRESETS, SPLITS, SUBSETS, Problem, split_of
from tripost.tasks.date_understanding import DateUnderstandingTask, Offset, add_months, normalise
from tripost.teachers.scripted import ScriptedTeacher

TASK = DateUnderstandingTask()
_CACHE: dict[tuple, list[Problem]] = {}


def problems(preset: str, subset: str, split: str = "train", n: int = 40, seed: int = 0) -> list[Problem]:
    key = (preset, subset, split, n, seed)
    if key not in _CACHE:
        _CACHE[key] = sample_problems(TASK, split=split, subset=subset, preset=preset, n=n, seed=seed)
    return _CACHE[key]


def one(seed: int, preset: str = "paper", subset: str = "unseen") -> Problem:
    return problems(preset, subset, n=40)[seed % 40]


def find(pred, level: str, tries: int = 5000) -> Problem:
    rng = random.Random(7)
    for _ in range(tries):
        p = TASK.generate(rng, level)
        if pred(p):
            return p
    raise AssertionError("no such problem generated")


def dates(p: Problem) -> list[str]:
    return [n["date"] for n in p.meta["nodes"]]


# ------------------------------------------------------------------ basics ---


def test_registry_and_protocol():
    task = get_task("date_understanding")
    assert isinstance(task, DateUnderstandingTask)
    assert task.name == "date_understanding" and task.scripted is True


def test_levels():
    assert TASK.levels("paper", "seen") == ["1", "2"]
    assert TASK.levels("paper", "unseen") == ["3", "4"]
    assert TASK.levels("small", "seen") == ["1"]
    assert TASK.levels("small", "unseen") == ["2"]
    for preset in PRESETS:
        assert not set(TASK.levels(preset, "seen")) & set(TASK.levels(preset, "unseen"))
    with pytest.raises(TripostError):
        TASK.levels("huge", "seen")
    with pytest.raises(TripostError):
        TASK.generate(random.Random(0), "9")


def test_month_arithmetic_clamps_and_leap_years():
    assert add_months(date(2021, 1, 31), 1) == date(2021, 2, 28)
    assert add_months(date(2020, 1, 31), 1) == date(2020, 2, 29)
    assert add_months(date(2004, 2, 29), 12) == date(2005, 2, 28)
    assert add_months(date(2021, 12, 15), 1) == date(2022, 1, 15)
    assert add_months(date(2021, 1, 15), -1) == date(2020, 12, 15)
    assert Offset(1, "day", 1).apply(date(2004, 2, 28)) == date(2004, 2, 29)
    assert Offset(1, "day", 1).apply(date(2003, 2, 28)) == date(2003, 3, 1)
    assert Offset(2, "week", -1).apply(date(2000, 3, 10)) == date(2000, 2, 25)
    assert Offset(1, "day", -1).apply(date(1, 1, 1)) is None


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("subset", SUBSETS)
@pytest.mark.parametrize("split", SPLITS)
def test_gold_rationales_pass(preset, subset, split):
    # 2 presets x 2 subsets x 3 splits x 90 = 1,080 problems.
    ps = problems(preset, subset, split, n=90)
    levels = TASK.levels(preset, subset)
    for p in ps:
        assert p.split == split and p.subset == subset and p.difficulty in levels
        assert split_of(p.question) == split
        check = TASK._check_steps(p, p.rationale)
        assert check.first_error_step is None, (p.question, p.rationale, check)
        assert check.correct and check.answer == p.answer
        assert TASK.parse_answer(p.rationale) == p.answer
        assert TASK.check_answer(p, TASK.parse_answer(p.rationale))
        # difficulty = number of reasoning steps
        assert parse_rationale(p.rationale).n_steps == int(p.difficulty)
        # BIG-bench phrasing and 4-6 options with exactly one correct
        assert p.question.split("\n")[0].endswith("in MM/DD/YYYY?")
        assert 4 <= len(p.options) <= 6 and p.options.count(p.answer) == 1
        assert len(set(p.options)) == len(p.options)
        json.dumps(p.meta)


def test_small_rationales_are_short():
    for p in problems("small", "seen", n=60) + problems("small", "unseen", n=60):
        steps = parse_rationale(p.rationale).steps
        assert len(steps) <= 2 and all(len(s) <= 120 for s in steps)


def test_determinism_and_split_safety():
    a = problems("paper", "seen", "train", n=30, seed=3)
    b = sample_problems(TASK, split="train", subset="seen", preset="paper", n=30, seed=3)
    assert [p.question for p in a] == [p.question for p in b]
    assert [p.rationale for p in a] == [p.rationale for p in b]
    rng1, rng2 = random.Random(11), random.Random(11)
    assert TASK.generate(rng1, "3") == TASK.generate(rng2, "3")
    qs = {s: {p.question for p in problems("small", "seen", s, n=90)} for s in SPLITS}
    assert not qs["train"] & qs["val"] and not qs["train"] & qs["test"] and not qs["val"] & qs["test"]


def test_problem_space_is_large():
    # The smallest level, its smallest split: hundreds of distinct problems.
    ps = sample_problems(TASK, split="test", subset="seen", preset="small", n=300, seed=1)
    assert len({p.question for p in ps}) == 300


def test_options_are_plausible_distractors():
    p = one(1)
    gold = date(int(p.answer[6:]), int(p.answer[:2]), int(p.answer[3:5]))
    for o in p.options:
        if o != p.answer:
            d = date(int(o[6:]), int(o[:2]), int(o[3:5]))
            assert d != gold


# -------------------------------------------------------- corrupt + teacher ---


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    preset=st.sampled_from(PRESETS),
    subset=st.sampled_from(SUBSETS),
    idx=st.integers(0, 39),
)
def test_corrupt_every_step_and_scripted_fix(seed, preset, subset, idx):
    p = problems(preset, subset, n=40)[idx]
    teacher = ScriptedTeacher()
    gold = parse_rationale(p.rationale)
    n = gold.n_steps
    rng = random.Random(seed)
    for k in range(1, n + 2):
        bad = TASK.corrupt(p, k, rng)
        assert bad[: gold.offset_of(k)] == p.rationale[: gold.offset_of(k)]
        check = TASK._check_steps(p, bad)
        assert check.first_error_step == k, (bad, check)
        parsed = parse_rationale(bad)
        part = parsed.steps[k - 1] if k <= n else parsed.final
        assert check.segment in part and check.reason
        fb = teacher.feedback(p, bad)
        assert fb.feedback is not None and fb.feedback.error_step == k
        fixed = teacher.improve(p, bad, fb.feedback).rationale
        assert fixed is not None
        offset = parsed.offset_of(k)
        assert fixed[:offset] == bad[:offset]
        after = TASK._check_steps(p, fixed)
        assert after.first_error_step is None and after.correct, (bad, fixed, after)


def test_corrupt_rejects_bad_step():
    p = one(0)
    with pytest.raises(TripostError):
        TASK.corrupt(p, 0, random.Random(0))
    with pytest.raises(TripostError):
        TASK.corrupt(p, parse_rationale(p.rationale).n_steps + 2, random.Random(0))


def test_continue_after_combined_step_does_not_redo_it():
    p = find(lambda p: p.question.startswith("Yesterday was") and "tomorrow in" in p.question, "2")
    d = dates(p)
    kept = [f"Tomorrow is 2 days after {d[0]}, which is {d[2]}."]
    steps, answer = TASK.continue_rationale(p, kept)
    assert steps == [] and answer == d[2]
    kept = [f"Yesterday was {d[0]}, so today is {d[1]}."]
    steps, answer = TASK.continue_rationale(p, kept)
    assert steps == [f"The day after {d[1]} is {d[2]}."]


# ------------------------------------------------------ checker semantics ---


def test_alternative_phrasings_pass():
    p = find(lambda p: p.question.startswith("Yesterday was") and "tomorrow in" in p.question, "2")
    d = dates(p)
    letter = "ABCDEF"[p.options.index(p.answer)]
    good = [
        f"(1) Yesterday was {d[0]}, so today is {d[1]}.\n(2) Tomorrow is {d[2]}.\n(Final response) So the answer is {d[2]}.",
        f"(1) Tomorrow is 2 days after {d[0]}, which is {d[2]}.\n(Final response) So the answer is {d[2]}.",
        f"(1) {d[0]} + 1 day = {d[1]}.\n(2) {d[1]} plus 24 hours is {d[2]}.\n(Final response) So the answer is {d[2]}.",
        f"(1) One day later than {d[0]} is {d[1]}.\n(2) The next day is {d[2]}.\n(Final response) So the answer is ({letter}).",
    ]
    for text in good:
        check = TASK._check_steps(p, text)
        assert check.first_error_step is None and check.correct, (text, check)


def test_wrong_claims_are_flagged_with_segment_and_reason():
    p = find(lambda p: p.question.startswith("Today is 0") or p.question.startswith("Today is 1"), "1")
    d = dates(p)
    ok = TASK._check_steps(p, p.rationale)
    assert ok.first_error_step is None
    cases = {
        # today is misnamed
        f"(1) Today is {d[1]}.\n(Final response) So the answer is {d[1]}.": (1, d[1]),
        # a date the question never gave
        f"(1) The day after 01/01/1800 is 01/02/1800.\n(Final response) So the answer is {d[1]}.": (1, "01/01/1800"),
        # not a calendar date
        f"(1) 02/30/2001 is the date.\n(Final response) So the answer is {d[1]}.": (1, "02/30/2001"),
        # no date at all
        f"(1) Let us count the days.\n(Final response) So the answer is {d[1]}.": (1, "Let us count the days."),
    }
    for text, (step, seg) in cases.items():
        check = TASK._check_steps(p, text)
        assert check.first_error_step == step and check.segment == seg, (text, check)
    # wrong arithmetic names the right result
    first = parse_rationale(p.rationale).steps[0]
    wrong = first.replace(f"is {d[1]}", "is 01/01/1801")
    check = TASK._check_steps(p, f"(1) {wrong}\n(Final response) So the answer is {d[1]}.")
    assert check.first_error_step == 1 and check.segment == "01/01/1801" and d[1] in check.reason


def test_wrong_offset_is_blamed_on_the_offset():
    p = find(lambda p: "10 days ago" in p.question and p.question.startswith("Today is 1"), "1")
    d = dates(p)
    text = f"(1) 9 days ago from {d[0]} is {d[1]}.\n(Final response) So the answer is {d[1]}."
    check = TASK._check_steps(p, text)
    assert check.first_error_step == 1 and check.segment == "9 days ago" and "10 days before" in check.reason
    text = f"(1) 10 days after {d[0]} is {fmt_plus(d[0], 10)}.\n(Final response) So the answer is {d[1]}."
    check = TASK._check_steps(p, text)
    assert check.first_error_step == 1 and check.segment == "10 days after"


def fmt_plus(mmddyyyy: str, days: int) -> str:
    m, d, y = (int(x) for x in mmddyyyy.split("/"))
    out = Offset(days, "day", 1).apply(date(y, m, d))
    assert out is not None
    return f"{out.month:02d}/{out.day:02d}/{out.year}"


def test_structure_errors():
    p = one(2)
    gold = parse_rationale(p.rationale)
    n = gold.n_steps
    no_final = p.rationale[: gold.final_offset].rstrip("\n")
    check = TASK._check_steps(p, no_final)
    assert check.first_error_step == n + 1 and not check.correct
    no_steps = p.rationale[gold.final_offset :]
    check = TASK._check_steps(p, no_steps)
    assert check.first_error_step == 1 and check.correct and check.n_steps == 0
    renumbered = p.rationale.replace("(2) ", "(3) ", 1)
    check = TASK._check_steps(p, renumbered)
    assert check.first_error_step == 2 and "numbered" in check.reason
    wrong_final = p.rationale.replace(f"So the answer is {p.answer}", "So the answer is 01/01/1800")
    check = TASK._check_steps(p, wrong_final)
    assert check.first_error_step == n + 1 and check.segment == "01/01/1800" and not check.correct
    extra = p.rationale[: gold.final_offset] + f"({n + 1}) 1 day after {p.answer} is {fmt_plus(p.answer, 1)}.\n" + p.rationale[gold.final_offset :]
    check = TASK._check_steps(p, extra)
    assert check.first_error_step == n + 1


# ------------------------------------------------------------- robustness ---


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300), idx=st.integers(0, 39))
def test_arbitrary_text_never_raises(text, idx):
    p = one(idx)
    check = TASK._check_steps(p, text)
    assert check.first_error_step is None or check.first_error_step >= 1
    TASK.parse_answer(text)


_PIECES = ["(1) ", "(2) ", "(3) ", "(Final response) ", "So the answer is ", "12/24/1937", "13/45/2021", "1/1/0001",
           "12/31/9999", "99999 years after ", "10 days ago from ", "the day before ", " minus 3 weeks ", "today is ",
           "yesterday was ", "\n", "Feedback: ", "(A)", "(G)", "Apr 31, 2001", "a month later, "]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(idx=st.integers(0, 39), cut=st.integers(0, 10_000), cut2=st.integers(0, 10_000), junk=st.lists(st.sampled_from(_PIECES), max_size=8))
def test_garbled_gold_never_raises(idx, cut, cut2, junk):
    p = one(idx)
    g = p.rationale
    a, b = sorted((cut % (len(g) + 1), cut2 % (len(g) + 1)))
    text = g[:a] + "".join(junk) + g[b:]
    check = TASK._check_steps(p, text)
    if check.first_error_step is not None:
        parsed = parse_rationale(text)
        parts = [*parsed.steps, parsed.final or ""]
        if check.first_error_step <= len(parts):
            assert check.segment in parts[check.first_error_step - 1]
    TASK.continue_rationale(p, list(parse_rationale(text).steps))


@settings(max_examples=200, deadline=None)
@given(idx=st.integers(0, 39), cut=st.integers(0, 10_000))
def test_truncated_gold_is_not_all_correct(idx, cut):
    p = one(idx)
    g = p.rationale
    end_of_answer = g.rindex(p.answer) + len(p.answer)
    text = g[: cut % end_of_answer]
    check = TASK._check_steps(p, text)
    assert check.first_error_step is not None and not check.correct


# ------------------------------------------------------ answers and records ---


def test_parse_and_check_answer():
    p = one(3)
    letter = "ABCDEF"[p.options.index(p.answer)]
    other = "ABCDEF"[(p.options.index(p.answer) + 1) % len(p.options)]
    m, d, y = p.answer.split("/")
    assert TASK.parse_answer(p.answer) == p.answer
    assert TASK.parse_answer(f"{int(m)}/{int(d)}/{y}") == p.answer
    assert TASK.parse_answer(f"(Final response) So the answer is ({letter}).") == f"({letter})"
    assert TASK.check_answer(p, f"({letter})") and TASK.check_answer(p, letter)
    assert not TASK.check_answer(p, f"({other})") and not TASK.check_answer(p, "(F)" if len(p.options) < 6 else "(G)")
    assert not TASK.check_answer(p, None) and not TASK.check_answer(p, "no idea")
    assert TASK.parse_answer("(1) Today is 12/24/1937.") is None  # no final response
    assert TASK.parse_answer("garbage") is None
    assert normalise("May 6, 1992") == "05/06/1992"


def test_from_record_round_trip():
    for p in problems("paper", "seen", n=40) + problems("small", "unseen", n=40):
        q = TASK.from_record({"question": p.question, "answer": p.answer})
        assert q.question == p.question and q.answer == p.answer and q.options == p.options
        assert TASK.check_answer(q, p.answer)
        letter = "ABCDEF"[p.options.index(p.answer)]
        assert TASK.from_record({"question": p.question, "answer": f"({letter})"}).answer == p.answer
        # external records: only the final answer is checked
        assert TASK._check_steps(q, p.rationale).first_error_step is None
        wrong = TASK.corrupt(p, parse_rationale(p.rationale).n_steps + 1, random.Random(0))
        assert TASK._check_steps(q, wrong).first_error_step == parse_rationale(wrong).n_steps + 1
    with pytest.raises(TripostError):
        TASK.continue_rationale(q, [])


def test_from_record_optional_fields():
    rec = {"id": "x1", "question": "Today is 12/24/1937. What is the date 10 days ago in MM/DD/YYYY?",
           "answer": "B", "options": ["(A) 12/14/2026", "(B) 12/14/1937"], "difficulty": "2", "rationale": "r"}  # fmt: skip
    p = TASK.from_record(rec)
    assert (p.id, p.answer, p.options, p.difficulty, p.rationale) == ("x1", "12/14/1937", ("12/14/2026", "12/14/1937"), "2", "r")


@pytest.mark.parametrize(
    "record",
    [
        {"answer": "12/14/1937"},
        {"question": "", "answer": "12/14/1937"},
        {"question": "What is the date?"},
        {"question": "What is the date?", "answer": 5},
        {"question": "What is the date?", "answer": "soon"},
        {"question": "What is the date?", "answer": "(C)"},
        {"question": "What is the date? (A) 01/01/2000", "answer": "(B)"},
        {"question": "What is the date?", "answer": "02/30/2001"},
        {"question": "What is the date?", "answer": "12/14/1937", "options": "A B"},
        {"question": "What is the date?", "answer": "12/14/1937", "rationale": 3},
        ["not", "a", "dict"],
    ],
)
def test_bad_records(record):
    with pytest.raises(TripostError) as e:
        TASK.from_record(record)  # type: ignore[arg-type]
    assert "\n" not in str(e.value) and str(e.value)
