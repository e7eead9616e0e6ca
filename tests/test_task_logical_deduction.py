"""logical_deduction: generator, step checker, scripted teacher, external records."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripost.errors import TripostError
from tripost.format import parse_rationale
from tripost.tasks import get_task
from tripost.tasks.base import PRESETS, SPLITS, SUBSETS, sample_problems, split_of
from tripost.tasks.logical_deduction import LogicalDeductionTask
from tripost.teachers.scripted import ScriptedTeacher

TASK = LogicalDeductionTask()
TEACHER = ScriptedTeacher()
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

BOOKS = (
    "The following paragraphs each describe a set of three objects arranged in a fixed order. "
    "The statements are logically consistent within each paragraph. On a shelf, there are three books: "
    "a white book, a green book, and an orange book. The green book is to the right of the white book. "
    "The orange book is the rightmost.\n"
    "Options:\n(A) The white book is the leftmost\n(B) The green book is the leftmost\n(C) The orange book is the leftmost"
)
BRIEF_EXAMPLE = (
    '(1) "The orange book is the rightmost", so the orange book is third from the left.\n'
    '(2) "The green book is to the right of the white book" and the third position is taken, '
    "so the white book is first and the green book is second.\n"
    "(3) The order from left to right is: white book, green book, orange book.\n"
    "(4) Option (A) says the white book is the leftmost, which is true.\n"
    "(Final response) So the answer is (A)."
)


def _books():
    return TASK.from_record({"question": BOOKS, "answer": "(A)"})


def _problem(seed: int, preset: str, subset: str):
    rng = random.Random(seed)
    level = rng.choice(TASK.levels(preset, subset))
    return TASK.generate(rng, level)


# ------------------------------------------------------------------ levels ---


def test_registry_and_levels():
    assert isinstance(get_task("logical_deduction"), LogicalDeductionTask)
    assert TASK.levels("paper", "seen") == ["3", "5"] and TASK.levels("paper", "unseen") == ["7"]
    for preset in PRESETS:
        seen, unseen = TASK.levels(preset, "seen"), TASK.levels(preset, "unseen")
        assert seen and unseen and not set(seen) & set(unseen)
    with pytest.raises(TripostError, match="preset"):
        TASK.levels("huge", "seen")
    with pytest.raises(TripostError, match="level"):
        TASK.generate(random.Random(0), "12")


# ---------------------------------------------------- gold rationales pass ---


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("subset", SUBSETS)
@pytest.mark.parametrize("split", SPLITS)
def test_gold_rationales_pass(preset, subset, split):
    # 12 combinations x 84 = 1,008 problems in all.
    problems = sample_problems(TASK, split=split, subset=subset, preset=preset, n=84, seed=3)
    assert len({p.question for p in problems}) == len(problems)
    for p in problems:
        assert p.split == split and split_of(p.question) == split
        assert p.difficulty in TASK.levels(preset, subset)
        n = int(p.difficulty)
        assert p.question.count("\n(") == n == len(p.options)
        assert f"set of {['', '', '', 'three', 'four', 'five', 'six', 'seven'][n]} objects" in p.question
        check = TASK._check_steps(p, p.rationale)
        assert check.first_error_step is None and check.correct, (p.rationale, check)
        assert TASK.parse_answer(p.rationale) == p.answer and TASK.check_answer(p, p.answer)
        assert check.answer == p.answer and check.n_steps == parse_rationale(p.rationale).n_steps
        json.dumps(p.to_dict())  # meta is JSON-serialisable


def test_small_preset_is_short():
    for p in sample_problems(TASK, split="train", subset="seen", preset="small", n=60, seed=1):
        parsed = parse_rationale(p.rationale)
        assert parsed.n_steps <= 6
        # The longest step quotes two clues and places all three objects.
        assert max(len(s) for s in parsed.steps) < 250


def test_problem_space_is_large():
    rng = random.Random(5)
    questions = {TASK.generate(rng, "3").question for _ in range(800)}
    assert len(questions) >= 780


# -------------------------------------------------- determinism and splits ---


def test_same_seed_same_problems_and_splits_disjoint():
    a = sample_problems(TASK, split="train", subset="seen", preset="paper", n=20, seed=7)
    b = sample_problems(TASK, split="train", subset="seen", preset="paper", n=20, seed=7)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    c = sample_problems(TASK, split="train", subset="seen", preset="paper", n=20, seed=8)
    assert [p.question for p in a] != [p.question for p in c]
    r1, r2 = random.Random(11), random.Random(11)
    assert TASK.generate(r1, "5") == TASK.generate(r2, "5")
    by_split = {
        s: {p.question for p in sample_problems(TASK, split=s, subset="seen", preset="small", n=60, seed=2)}
        for s in SPLITS
    }
    assert not by_split["train"] & by_split["val"]
    assert not by_split["train"] & by_split["test"]
    assert not by_split["val"] & by_split["test"]


# ------------------------------------------------- corruption and teacher ---


@FAST
@given(seed=st.integers(0, 10**6), preset=st.sampled_from(PRESETS), subset=st.sampled_from(SUBSETS))
def test_corrupt_is_flagged_and_the_teacher_fixes_it(seed, preset, subset):
    p = _problem(seed, preset, subset)
    gold = parse_rationale(p.rationale)
    n = gold.n_steps
    rng = random.Random(seed)
    for k in range(1, n + 2):
        bad = TASK.corrupt(p, k, rng)
        parsed = parse_rationale(bad)
        assert bad[: gold.offset_of(k)] == p.rationale[: gold.offset_of(k)]
        check = TASK._check_steps(p, bad)
        assert check.first_error_step == k, (k, bad, check)
        where = parsed.steps[k - 1] if k <= parsed.n_steps else parsed.final
        assert check.segment and check.segment in where and check.reason
        fb = TEACHER.feedback(p, bad)
        assert fb.feedback.error_step == k
        assert f'the part "{check.segment}" is incorrect' in fb.text
        improved = TEACHER.improve(p, bad, fb.feedback).rationale
        assert improved.startswith(bad[: parsed.offset_of(k)])
        fixed = TASK._check_steps(p, improved)
        assert fixed.first_error_step is None and fixed.correct, (bad, improved, fixed)


@FAST
@given(seed=st.integers(0, 10**6), preset=st.sampled_from(PRESETS), subset=st.sampled_from(SUBSETS), data=st.data())
def test_continuation_from_any_correct_prefix(seed, preset, subset, data):
    p = _problem(seed, preset, subset)
    steps = list(parse_rationale(p.rationale).steps)
    k = data.draw(st.integers(0, len(steps)))
    more, answer = TASK.continue_rationale(p, steps[:k])
    assert more == steps[k:] and answer == p.answer


# --------------------------------------------------------------- semantics ---


def test_brief_example_and_alternative_phrasings_pass():
    p = _books()
    assert p.answer == "(A)" and p.difficulty == "3"
    assert TASK._check_steps(p, BRIEF_EXAMPLE).first_error_step is None
    alternatives = [
        # unquoted restated clues, a reversed order line, both options judged
        "(1) The orange book is the rightmost.\n"
        "(2) The green book is to the right of the white book, so the white book is the leftmost.\n"
        "(Final response) So the answer is (A).",
        '(1) "The orange book is the rightmost", so the orange book is third from the left.\n'
        '(2) "The white book is to the left of the green book", so the green book is the second from the left.\n'
        "(3) The order from right to left is: orange book, green book, white book.\n"
        "(4) Option (B) says the green book is the leftmost, which is false.\n"
        "(5) Option (A) says that the white book is the leftmost, which is correct.\n"
        "(Final response) So the answer is (A).",
        '(1) "The orange book is the rightmost" and "The green book is to the right of the white book", '
        "so the white book is not second from the left and the white book is not the rightmost.\n"
        "(2) The white book must be first.\n"
        "(Final response) So the answer is A.",
    ]
    for text in alternatives:
        check = TASK._check_steps(p, text)
        assert check.first_error_step is None and check.correct, (text, check)


@pytest.mark.parametrize(
    "text, step, segment",
    [
        # a guess that happens to be right does not follow
        ("(1) The white book is the leftmost.\n(Final response) So the answer is (A).", 1, "The white book is the leftmost"),
        ("(1) The order from left to right is: white book, green book, orange book.\n(Final response) So the answer is (A).", 1, "white book"),
        # a false claim, after a right one
        ('(1) "The orange book is the rightmost", so the orange book is third from the left.\n'
         '(2) "The green book is to the right of the white book", so the white book is second from the left.\n'
         "(Final response) So the answer is (B).", 2, "the white book is second from the left"),
        # a misquoted clue
        ('(1) "The orange book is the leftmost", so the orange book is first from the left.\n(Final response) So the answer is (C).', 1, "The orange book is the leftmost"),
        # a position that does not exist
        ('(1) "The orange book is the rightmost", so the orange book is fifth from the left.\n(Final response) So the answer is (A).', 1, "the orange book is fifth from the left"),
        # misnumbered
        ('(1) "The orange book is the rightmost", so the orange book is third from the left.\n(3) Something.\n(Final response) So the answer is (A).', 2, "Something."),
        # garbage step
        ("(1) I like turtles.\n(Final response) So the answer is (A).", 1, "I like turtles."),
        # right steps, wrong final answer
        (BRIEF_EXAMPLE.replace("answer is (A)", "answer is (C)"), 5, "(C)"),
        # right steps, no final response
        (BRIEF_EXAMPLE.rsplit("\n", 1)[0], 5, ""),
        # right steps, the final response names no option
        (BRIEF_EXAMPLE.replace("So the answer is (A).", "I am done."), 5, "I am done."),
        # no numbered steps at all
        ("(Final response) So the answer is (A).", 1, "(A)"),
        ("", 1, ""),
    ],
)
def test_wrong_rationales_are_flagged(text, step, segment):
    check = TASK._check_steps(_books(), text)
    assert check.first_error_step == step, check
    assert check.segment == segment and check.reason


def test_verdict_and_option_mismatch():
    p = _books()
    base = BRIEF_EXAMPLE.split("(4)")[0]
    check = TASK._check_steps(p, base + "(4) Option (A) says the white book is the leftmost, which is false.\n(Final response) So the answer is (B).")
    assert (check.first_error_step, check.segment) == (4, "which is false")
    check = TASK._check_steps(p, base + "(4) Option (B) says the white book is the leftmost, which is true.\n(Final response) So the answer is (A).")
    assert check.first_error_step == 4 and "option (B) says" in check.reason
    check = TASK._check_steps(p, base + "(4) Option (F) says the white book is the leftmost, which is true.\n(Final response) So the answer is (A).")
    assert check.first_error_step == 4 and check.segment == "Option (F)"


# -------------------------------------------------------------- robustness ---


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=400))
def test_arbitrary_text_never_raises(text):
    p = _books()
    check = TASK._check_steps(p, text)
    assert check.first_error_step is None or check.first_error_step >= 1
    TASK.parse_answer(text)


@FAST
@given(seed=st.integers(0, 10**6), data=st.data())
def test_truncated_and_garbled_gold(seed, data):
    p = _problem(seed, "paper", data.draw(st.sampled_from(SUBSETS)))
    text = p.rationale
    # Cut anywhere before the answer letter: never all correct.
    cut = data.draw(st.integers(0, text.rindex("(") ))
    assert TASK._check_steps(p, text[:cut]).first_error_step is not None
    # Garble: delete, duplicate or replace a random span; never raises.
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(i, min(len(text), i + 30)))
    junk = data.draw(st.text(max_size=20))
    for garbled in (text[:i] + text[j:], text[:j] + text[i:], text[:i] + junk + text[j:]):
        check = TASK._check_steps(p, garbled)
        assert check.first_error_step is None or 1 <= check.first_error_step <= check.n_steps + 1
    # Shuffled lines keep the checker calm too.
    lines = text.splitlines()
    data.draw(st.randoms(use_true_random=False)).shuffle(lines)
    TASK._check_steps(p, "\n".join(lines))


# ------------------------------------------------------------------ answers ---


def test_parse_and_check_answer():
    p = _books()
    for given_, want in [("(A)", "(A)"), ("A", "(A)"), ("a)", "(A)"), ("Option B", "(B)"),
                         ("(C) The orange book is the leftmost", "(C)"),
                         ("(1) x\n(Final response) So the answer is (B).", "(B)"),
                         ("So the answer is (C).", "(C)"), ("(1) no final", None), ("", None)]:
        assert TASK.parse_answer(given_) == want, given_
    assert TASK.check_answer(p, "(A)") and TASK.check_answer(p, "The white book is the leftmost.")
    assert not TASK.check_answer(p, "(B)") and not TASK.check_answer(p, None)


# ---------------------------------------------------------- external records ---


@FAST
@given(seed=st.integers(0, 10**6), preset=st.sampled_from(PRESETS), subset=st.sampled_from(SUBSETS))
def test_from_record_round_trip(seed, preset, subset):
    p = _problem(seed, preset, subset)
    q = TASK.from_record({"question": p.question, "answer": p.answer})
    assert (q.question, q.answer, q.options, q.difficulty, q.rationale) == (p.question, p.answer, p.options, p.difficulty, p.rationale)
    assert q.meta == p.meta and q.split == split_of(p.question)
    text_answer = p.options[ord(p.answer[1]) - ord("A")]
    assert TASK.from_record({"question": p.question, "answer": text_answer, "id": "x1"}).answer == p.answer
    assert TASK._check_steps(q, p.rationale).first_error_step is None


def test_from_record_without_a_parsable_puzzle_checks_only_the_answer():
    q = TASK.from_record({"question": "Which is first? Options: (A) red (B) blue", "answer": "(B)", "difficulty": "x"})
    assert q.options == ("red", "blue") and q.meta == {} and q.difficulty == "x"
    assert TASK._check_steps(q, "(1) Think.\n(Final response) So the answer is (B).").first_error_step is None
    assert TASK._check_steps(q, "(1) Think.\n(Final response) So the answer is (A).").first_error_step == 2
    with pytest.raises(TripostError, match="parsed puzzle"):
        TASK.continue_rationale(q, [])
    with pytest.raises(TripostError):
        TASK.corrupt(q, 1, random.Random(0))


@pytest.mark.parametrize(
    "record, message",
    [
        ("not a dict", "JSON object"),
        ({"answer": "(A)"}, "question"),
        ({"question": BOOKS}, "answer"),
        ({"question": BOOKS, "answer": 3}, "answer"),
        ({"question": BOOKS, "answer": "(D)"}, "not one of the 3 options"),
        ({"question": BOOKS, "answer": "the red book"}, "not one of"),
        ({"question": BOOKS, "answer": "(A)", "options": "A"}, "options"),
    ],
)
def test_bad_records(record, message):
    with pytest.raises(TripostError, match=message):
        TASK.from_record(record)


def test_record_answer_that_contradicts_the_puzzle_is_kept_answer_only():
    q = TASK.from_record({"question": BOOKS, "answer": "(B)"})
    assert q.answer == "(B)" and q.meta == {}
