"""The word_sorting family: generator, gold rationales, step checker, scripted teacher."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripost.errors import TripostError
from tripost.format import parse_feedback, parse_rationale, render_rationale
from tripost.tasks import get_task
from tripost.tasks.base import PRESETS, SPLITS, SUBSETS, Task, sample_problems, split_of
from tripost.tasks.word_sorting import WordSortingTask, word_list
from tripost.teachers.scripted import ScriptedTeacher

TASK = WordSortingTask()
ALL_LEVELS = [lv for p in PRESETS for s in SUBSETS for lv in TASK.levels(p, s)]
COMBOS = [(p, s, sp) for p in PRESETS for s in SUBSETS for sp in SPLITS]
N_PER_COMBO = 1000  # per preset x subset x split: 12,000 problems checked in total


def _record(words: str, answer: str | None = None, **extra) -> dict:
    answer = answer if answer is not None else " ".join(sorted(words.split()))
    return {"question": f"Sort the following words alphabetically: List: {words}", "answer": answer, **extra}


def _step_text(text: str, k: int) -> str:
    parsed = parse_rationale(text)
    return parsed.steps[k - 1] if k <= parsed.n_steps else (parsed.final or "")


# ------------------------------------------------------------ the family ---


def test_registry_and_protocol():
    task = get_task("word_sorting")
    assert isinstance(task, WordSortingTask) and isinstance(task, Task)
    assert task.name == "word_sorting" and task.scripted


def test_word_list_is_clean():
    words = word_list()
    assert len(words) >= 3000
    assert len(set(words)) == len(words)
    assert all(w.isascii() and w.isalpha() and w.islower() for w in words)


def test_levels_seen_and_unseen_differ():
    for preset in PRESETS:
        seen, unseen = TASK.levels(preset, "seen"), TASK.levels(preset, "unseen")
        assert seen and unseen and not set(seen) & set(unseen)
        n_words = lambda lv: int(lv.split("-")[0])  # noqa: E731
        assert max(map(n_words, seen)) < min(map(n_words, unseen))
    assert TASK.levels("paper", "seen")[-1] == "7" and TASK.levels("paper", "unseen")[0] == "8"
    with pytest.raises(TripostError):
        TASK.generate(random.Random(0), "nonsense")


@pytest.mark.parametrize("preset,subset,split", COMBOS)
def test_gold_rationales_pass(preset, subset, split):
    problems = sample_problems(TASK, preset=preset, subset=subset, split=split, n=N_PER_COMBO, seed=7)
    assert len({p.question for p in problems}) == len(problems)
    for p in problems:
        assert p.split == split == split_of(p.question) and p.subset == subset
        assert p.difficulty in TASK.levels(preset, subset)
        words = p.question.split("List:")[1].split()
        assert len(words) == int(p.difficulty.split("-")[0])
        assert p.answer == " ".join(sorted(words))
        check = TASK.check_steps(p, p.rationale)
        assert check.first_error_step is None and check.correct, (p.rationale, check)
        assert check.n_steps == parse_rationale(p.rationale).n_steps
        assert TASK.parse_answer(p.rationale) == p.answer
        assert TASK.check_answer(p, TASK.parse_answer(p.rationale))
        json.dumps(p.meta)


def test_small_rationales_are_short():
    problems = sample_problems(TASK, preset="small", subset="seen", n=200, seed=0)
    assert max(parse_rationale(p.rationale).n_steps for p in problems) <= 7
    assert max(len(line) for p in problems for line in p.rationale.splitlines()) <= 200


def test_same_seed_same_problems_and_splits_disjoint():
    a = sample_problems(TASK, preset="paper", split="train", n=60, seed=3)
    b = sample_problems(TASK, preset="paper", split="train", n=60, seed=3)
    c = sample_problems(TASK, preset="paper", split="train", n=60, seed=4)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert [p.question for p in a] != [p.question for p in c]
    questions = {
        split: {p.question for s in SUBSETS for p in sample_problems(TASK, preset="paper", subset=s, split=split, n=150)}
        for split in SPLITS
    }
    assert not questions["train"] & questions["val"]
    assert not questions["train"] & questions["test"]
    assert not questions["val"] & questions["test"]


# ------------------------------------------------ corruption and teacher ---


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**9), level=st.sampled_from(ALL_LEVELS))
def test_every_corrupted_step_is_flagged_and_fixed(seed, level):
    rng = random.Random(seed)
    problem = TASK.generate(rng, level)
    gold = problem.rationale
    parsed_gold = parse_rationale(gold)
    n = parsed_gold.n_steps
    teacher = ScriptedTeacher()
    for k in range(1, n + 2):
        bad = TASK.corrupt(problem, k, rng)
        offset = parsed_gold.offset_of(k)
        assert bad[:offset] == gold[:offset] and bad != gold
        check = TASK.check_steps(problem, bad)
        assert check.first_error_step == k, (k, bad, check)
        assert check.reason and check.segment in _step_text(bad, k)
        fb = teacher.feedback(problem, bad)
        assert fb.feedback.error_step == k
        assert parse_feedback(fb.text, parse_rationale(bad).n_steps).error_step == k
        improved = teacher.improve(problem, bad, fb.feedback).rationale
        fixed = TASK.check_steps(problem, improved)
        assert fixed.first_error_step is None and fixed.correct, (bad, improved, fixed)
        keep = parse_rationale(bad).offset_of(k)
        assert improved[:keep] == bad[:keep]


def test_corrupt_rejects_out_of_range_step():
    p = TASK.generate(random.Random(0), "3")
    with pytest.raises(TripostError):
        TASK.corrupt(p, 0, random.Random(0))


# ---------------------------------------------------- checker semantics ---

EXAMPLE = TASK.from_record(_record("oven costume counterpart car card"))


def test_prefix_words_come_first():
    assert EXAMPLE.answer == "car card costume counterpart oven"
    assert '"car"="" (0)' in EXAMPLE.rationale
    assert TASK.check_steps(EXAMPLE, EXAMPLE.rationale).all_correct


ALTERNATIVE = """Let's think step by step.
(1) The first letter: "oven"="o" (15), "costume"="c" (3), "counterpart"="c" (3), "car"="c" (3), "card"="c" (3).
(2) We now have: (3) ["car" ? "card" ? "costume" ? "counterpart"] < (15) "oven".
(3) Now sort this subpart ["costume" ? "counterpart" ? "car" ? "card"] by looking at their second letters: "car"="a" (1), "costume"="o" (15), "card"="a" (1), "counterpart"="o" (15).
(4) We now have: (1) ["card" ? "car"] < (15) ["costume" ? "counterpart"].
(5) Now sort this subpart ["costume" ? "counterpart"] by looking at their third letters: "costume"="s" (19), "counterpart"="u" (21).
(6) We now have: (19) "costume" < (21) "counterpart".
(7) Now sort this subpart ["card" ? "car"] by looking at their fourth letters: "card"="d" (4), "car"="" (0).
(8) We now have: (0) "car" < (4) "card".
(9) Hence, we have "car" < "card" < "costume" < "counterpart" < "oven".
(Final response) So the answer is car card costume counterpart oven."""


def test_alternative_correct_rationale_passes():
    # Different listing order, subparts sorted right to left, letters shared by
    # a subpart skipped: all still correct.
    check = TASK.check_steps(EXAMPLE, ALTERNATIVE)
    assert check.first_error_step is None and check.correct


def test_continuation_respects_what_kept_steps_did():
    kept = list(parse_rationale(ALTERNATIVE).steps[:6])  # "costume"/"counterpart" already sorted
    steps, answer = TASK.continue_rationale(EXAMPLE, kept)
    assert answer == EXAMPLE.answer
    assert not any("costume" in s and "third letters" in s for s in steps)
    assert steps[0].startswith('Now sort this subpart ["card" ? "car"]')
    full = render_rationale(kept + steps, answer)
    assert TASK.check_steps(EXAMPLE, full).all_correct
    # After a letters step the continuation states that split next.
    steps, _ = TASK.continue_rationale(EXAMPLE, kept[:3])
    assert steps[0] == 'We now have: (1) ["car" ? "card"] < (15) ["costume" ? "counterpart"].'
    assert TASK.check_steps(EXAMPLE, render_rationale(kept[:3] + steps, answer)).all_correct


def _with_step(k: int, new: str) -> str:
    lines = ALTERNATIVE.splitlines()
    lines[k] = f"({k}) {new}"
    return "\n".join(lines)


@pytest.mark.parametrize(
    "k,new,segment,reason_part",
    [
        (1, 'The first letter: "oven"="o" (15), "costume"="c" (3), "counterpart"="c" (3), "car"="c" (3).', "", 'letter of "card" is missing'),
        (1, 'The first letter: "oven"="o" (15), "costume"="k" (11), "counterpart"="c" (3), "car"="c" (3), "card"="c" (3).', '"costume"="k" (11)', 'first letter of "costume" is "c"'),
        (2, 'We now have: (3) ["car" ? "card" ? "costume"] < (15) ["oven" ? "counterpart"].', '(15) ["oven" ? "counterpart"]', "different first letters"),
        (2, 'We now have: (3) ["car" ? "card"] < (3) ["costume" ? "counterpart"] < (15) "oven".', '(3) ["costume" ? "counterpart"]', "same first letter"),
        (3, 'Now sort this subpart ["costume" ? "counterpart" ? "car" ? "card"] by looking at their third letters: "car"="r" (18), "costume"="s" (19), "card"="r" (18), "counterpart"="u" (21).', "third letters", "already differ at their second letters"),
        (3, 'Now sort this subpart ["costume" ? "oven"] by looking at their second letters: "costume"="o" (15), "oven"="v" (22).', '["costume" ? "oven"]', "not one of the subparts"),
        (3, "Hence, we have \"car\" < \"card\" < \"costume\" < \"counterpart\" < \"oven\".", '"car" < "card" < "costume" < "counterpart"', "has not been sorted yet"),
        (3, "The words are sorted.", "The words are sorted.", "expected form"),
        (8, 'We now have: (0) "car" < (4) "card" < (5) "oven".', '(5) "oven"', '"oven" is not in this subpart'),
        (9, 'Hence, we have "card" < "car" < "costume" < "counterpart" < "oven".', '"card" < "car"', 'the word "car" comes before "card"'),
    ],
)
def test_specific_mistakes(k, new, segment, reason_part):
    text = _with_step(k, new)
    check = TASK.check_steps(EXAMPLE, text)
    assert check.first_error_step == k, check
    assert segment in _step_text(text, k) and (not segment or check.segment == segment), check
    assert reason_part in check.reason


def test_missing_or_wrong_final_and_numbering():
    lines = ALTERNATIVE.splitlines()
    no_final = "\n".join(lines[:-1])
    check = TASK.check_steps(EXAMPLE, no_final)
    assert check.first_error_step == 10 and not check.correct and "missing" in check.reason
    wrong = ALTERNATIVE.replace("answer is car card", "answer is card car")
    check = TASK.check_steps(EXAMPLE, wrong)
    assert check.first_error_step == 10 and not check.correct and check.segment in _step_text(wrong, 10)
    misnumbered = ALTERNATIVE.replace("(5) Now", "(6) Now")
    check = TASK.check_steps(EXAMPLE, misnumbered)
    assert check.first_error_step == 5 and "numbered (6)" in check.reason
    extra = ALTERNATIVE.replace("\n(Final", '\n(10) Hence, we have "car" < "card".\n(Final')
    assert TASK.check_steps(EXAMPLE, extra).first_error_step == 10


def test_right_answer_without_finished_steps_is_flagged_at_final():
    only_final = "(Final response) So the answer is car card costume counterpart oven."
    check = TASK.check_steps(EXAMPLE, only_final)
    assert check.first_error_step == 1 and check.correct and check.n_steps == 0
    partial = "\n".join(ALTERNATIVE.splitlines()[:7] + [ALTERNATIVE.splitlines()[-1]])
    check = TASK.check_steps(EXAMPLE, partial)
    assert check.first_error_step == 7 and check.correct and '["card" ? "car"]' in check.reason
    assert TASK.check_steps(EXAMPLE, "").first_error_step == 1


def test_duplicate_words_in_external_records():
    p = TASK.from_record(_record("car apple car"))
    assert p.answer == "apple car car"
    assert '"car" = "car"' in p.rationale and TASK.check_steps(p, p.rationale).all_correct
    bad = p.rationale.replace('"car" = "car"', '"car" < "car"')
    assert TASK.check_steps(p, bad).first_error_step is not None
    teacher = ScriptedTeacher()
    for k in range(1, parse_rationale(p.rationale).n_steps + 2):
        corrupted = TASK.corrupt(p, k, random.Random(k))
        fb = teacher.feedback(p, corrupted)
        assert fb.feedback.error_step == k
        assert TASK.check_steps(p, teacher.improve(p, corrupted, fb.feedback).rationale).all_correct


# ------------------------------------------------------------ robustness ---


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=st.sampled_from('(1234)Final response"=[]?<.,: \nabcoTheWwnsort'), max_size=300))
def test_checker_never_raises_on_step_like_text(text):
    result = TASK._check_steps(EXAMPLE, text)  # the unguarded checker: a bug would raise here
    assert result.first_error_step is None or 1 <= result.first_error_step <= result.n_steps + 1


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=400))
def test_checker_never_raises_on_arbitrary_text(text):
    result = TASK._check_steps(EXAMPLE, text)
    assert result.first_error_step is not None
    assert TASK.check_steps(EXAMPLE, text) == result
    TASK.parse_answer(text)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**9), data=st.data())
def test_truncated_and_garbled_gold(seed, data):
    p = TASK.generate(random.Random(seed), random.Random(seed).choice(ALL_LEVELS))
    gold = p.rationale
    cut = data.draw(st.integers(0, len(gold) - 2))
    assert not TASK._check_steps(p, gold[:cut]).all_correct
    chars = list(gold)
    for _ in range(data.draw(st.integers(1, 5))):
        i = data.draw(st.integers(0, len(chars) - 1))
        chars[i] = data.draw(st.sampled_from(['"', "(", ")", "[", "]", "<", "x", "", "\n", "9"]))
    result = TASK._check_steps(p, "".join(chars))
    assert result.first_error_step is None or 1 <= result.first_error_step <= result.n_steps + 1


# ---------------------------------------------------- answers and records ---


def test_parse_and_check_answer():
    assert TASK.parse_answer("Car, card  costume.") == "car card costume"
    assert TASK.parse_answer("So the answer is car card.") == "car card"
    assert TASK.parse_answer("(1) The first letter: \"car\"=\"c\" (3).") is None
    assert TASK.parse_answer("   ") is None
    assert TASK.check_answer(EXAMPLE, "Car card costume counterpart oven.")
    assert not TASK.check_answer(EXAMPLE, "card car costume counterpart oven")
    assert not TASK.check_answer(EXAMPLE, None)


def test_from_record_round_trip():
    for p in sample_problems(TASK, preset="paper", subset="unseen", split="test", n=30, seed=1):
        q = TASK.from_record({"question": p.question, "answer": p.answer, "id": "x1"})
        assert (q.question, q.answer, q.id, q.family) == (p.question, p.answer, "x1", "word_sorting")
        assert q.meta["words"] == p.meta["words"] and q.difficulty == p.difficulty.split("-")[0]
        assert TASK.check_steps(q, q.rationale).all_correct
    custom = TASK.from_record(_record("b a", rationale=ALTERNATIVE))  # a wrong rationale is replaced
    assert TASK.check_steps(custom, custom.rationale).all_correct
    kept = TASK.from_record(_record("oven costume counterpart car card", rationale=ALTERNATIVE, difficulty="hard"))
    assert kept.rationale == ALTERNATIVE and kept.difficulty == "hard"


@pytest.mark.parametrize(
    "record,message",
    [
        ({"question": "Sort these: oven costume", "answer": "costume oven"}, "List:"),
        (_record("oven costume", answer="oven costume"), "alphabetical order"),
        (_record("oven c0stume"), "letters a-z"),
        ({"question": "Sort the following words alphabetically: List:", "answer": "x"}, "empty"),
        ({"question": 3, "answer": "x"}, "question"),
        ({"question": "Sort ... List: a b"}, "answer"),
    ],
)
def test_bad_records(record, message):
    with pytest.raises(TripostError, match=message):
        TASK.from_record(record)
