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
        # Any whitespace-free token is a word now (c0stume, shouldn't, ph.d), but the
        # rationale quotes words with '"', so a word cannot hold one.
        (_record('oven co"stume'), "double quote"),
        (_record("oven co\u200bstume"), "invisible"),
        (_record("oven " + "c" * 65), "65 characters long"),
        ({"question": "Sort the following words alphabetically: List:", "answer": "x"}, "empty"),
        ({"question": 3, "answer": "x"}, "question"),
        ({"question": "Sort ... List: a b"}, "answer"),
    ],
)
def test_bad_records(record, message):
    with pytest.raises(TripostError, match=message):
        TASK.from_record(record)


# ------------------------------------ real-world words (issue 20, item 12) ---
# Real word lists hold apostrophes, periods and more (shouldn't, o'connell,
# ph.d); the family refused a whole file at the first such word. Any token
# without whitespace or '"' is a word; the order is Python's string order, as
# in the BIG-bench benchmark's answers.

REAL = "shouldn't o'connell ph.d it's it ph.d. x-ray at&t 1,000 naïve o a]b"


def _assert_scripted_round_trip(p, rng: random.Random) -> None:
    """The gold rationale passes; every corrupted step is flagged and fixed."""
    check = TASK._check_steps(p, p.rationale)
    assert check.all_correct and check.correct, (p.rationale, check)
    assert TASK.check_answer(p, TASK.parse_answer(p.rationale))
    teacher = ScriptedTeacher()
    for k in range(1, parse_rationale(p.rationale).n_steps + 2):
        bad = TASK.corrupt(p, k, rng)
        found = TASK._check_steps(p, bad)
        assert found.first_error_step == k, (k, bad, found)
        assert found.segment in _step_text(bad, k)
        fb = teacher.feedback(p, bad)
        assert fb.feedback.error_step == k
        fixed = TASK._check_steps(p, teacher.improve(p, bad, fb.feedback).rationale)
        assert fixed.all_correct and fixed.correct


def test_real_world_words_are_sorted_in_string_order():
    p = TASK.from_record(_record(REAL))
    assert p.answer == " ".join(sorted(REAL.split()))
    assert p.answer.startswith("1,000 a]b at&t it it's naïve o o'connell ph.d ph.d. shouldn't")
    # a character outside a-z counts from "a" by code point: "'" is -57, "." is -50
    assert '"o\'connell"="\'" (-57)' in p.rationale and '"ph.d."="." (-50)' in p.rationale
    _assert_scripted_round_trip(p, random.Random(0))


def test_a_word_that_ran_out_comes_before_punctuation():
    # "it" < "it's" although "" counts 0 and "'" counts -57: order is by the characters
    p = TASK.from_record(_record("it's it"))
    assert p.answer == "it it's" and "(0) \"it\" < (-57) \"it's\"" in p.rationale
    assert TASK._check_steps(p, p.rationale).all_correct
    swapped = p.rationale.replace("(0) \"it\" < (-57) \"it's\"", "(-57) \"it's\" < (0) \"it\"")
    check = TASK._check_steps(p, swapped)
    assert check.first_error_step == parse_rationale(p.rationale).n_steps - 1
    assert check.reason == 'a missing letter (0) comes before "\'" (-57)'
    wrong_number = p.rationale.replace("\"it's\"=\"'\" (-57)", "\"it's\"=\"'\" (39)")
    check = TASK._check_steps(p, wrong_number)
    assert "counts as -57" in check.reason


def test_answers_with_periods_and_apostrophes_stay_exact():
    p = TASK.from_record(_record("ph.d. ph.d etc. 'em"))
    assert p.answer == "'em etc. ph.d ph.d."
    assert TASK.check_answer(p, "'em etc. ph.d ph.d.")
    assert TASK.check_answer(p, TASK.parse_answer("So the answer is 'em, etc., ph.d, ph.d.."))
    assert not TASK.check_answer(p, TASK.parse_answer("So the answer is 'em, etc., ph.d., ph.d."))
    assert TASK.check_answer(p, '["\'em", "etc.", "ph.d", "ph.d."]')
    assert not TASK.check_answer(p, "'em etc. ph.d. ph.d")  # "ph.d" < "ph.d."
    # "'em" and "etc." are plain words once their ends are stripped, which
    # parse_answer does as it always has; check_answer knows them by that bare form.
    assert TASK.parse_answer(p.rationale) == "em etc ph.d ph.d."
    assert TASK.check_answer(p, TASK.parse_answer(p.rationale))
    with pytest.raises(TripostError, match="alphabetical order"):
        TASK.from_record(_record("ph.d. ph.d", answer="ph.d. ph.d"))
    assert TASK.from_record(_record("ph.d. ph.d", answer="ph.d, ph.d.")).answer == "ph.d ph.d."


def test_external_file_with_real_words_loads(tmp_path):
    from tripost.tasks.external import load_problems

    rows = [_record(REAL), _record("don't do doesn't")]
    f = tmp_path / "words.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = load_problems(f, "word_sorting")
    assert [p.answer for p in problems] == [" ".join(sorted(r["question"].split("List:")[1].split())) for r in rows]
    assert problems[1].answer == "do doesn't don't"


def test_teacher_tolerates_a_meta_that_is_not_an_object():
    p = TASK.from_record(_record("oven costume"))
    odd = type(p).from_dict({**p.to_dict(), "meta": 7})
    steps, answer = TASK.continue_rationale(odd, [])
    assert answer == "costume oven" and TASK._check_steps(p, render_rationale(steps, answer)).all_correct


# Words as real lists have them: letters with apostrophes, periods, hyphens,
# digits, ampersands, brackets, commas, accents; none only punctuation.
_REAL_CHARS = "abcoe'.-&0]é,"
real_words = st.text(alphabet=_REAL_CHARS, min_size=1, max_size=7).filter(lambda w: w.strip("\"'.[],;") != "")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(real_words, min_size=1, max_size=9), seed=st.integers(0, 10**6))
def test_any_token_list_sorts_checks_and_teaches(words, seed):
    p = TASK.from_record(_record(" ".join(words)))
    assert p.answer.split() == sorted(words)
    _assert_scripted_round_trip(p, random.Random(seed))
    # The answer check is exact: any other order of the same words is wrong.
    # Unless two words differ only by punctuation at their ends ("a" and "a,"):
    # in a plain-text answer that punctuation cannot be told from a separator,
    # and only the step checker, which reads quoted words, can tell them apart.
    bare = {w.strip("\"'.[],;") for w in words}
    if len(set(words)) > 1 and len(bare) == len(set(words)):
        other = sorted(words, reverse=True)
        assert not TASK.check_answer(p, " ".join(other))
        assert not TASK.check_answer(p, TASK.parse_answer(render_rationale([], " ".join(other))))


def _old_normalise(text: str) -> str | None:
    """The answer reading before real-world words (a-z only)."""
    import re

    t = text.strip().lower().rstrip(".").strip()
    tokens = [tok.strip("\"'.[]") for tok in re.split(r"[\s,;]+", t)]
    return " ".join(tok for tok in tokens if tok) or None


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 10**6), data=st.data())
def test_plain_word_answers_read_as_before(seed, data):
    """For a-z words, answers are read and judged exactly as before."""
    p = TASK.generate(random.Random(seed), random.Random(seed).choice(ALL_LEVELS))
    words = p.answer.split()
    deco = st.text(alphabet="\"'.,;[] ", max_size=2)
    picked = data.draw(st.lists(st.sampled_from(words + ["x", "car"]), min_size=0, max_size=len(words) + 1))
    text = " ".join(data.draw(deco) + (w.upper() if data.draw(st.booleans()) else w) + data.draw(deco) for w in picked)
    for t in (text, f"So the answer is {text}.", f"(1) x\n(Final response) So the answer is {text}."):
        assert TASK.check_answer(p, t) == (_old_normalise(t) == _old_normalise(p.answer))
    assert TASK.parse_answer(text) == _old_normalise(text) or not text.strip()


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_garbled_rationale_of_real_words_never_raises(data):
    p = TASK.from_record(_record(REAL))
    chars = list(p.rationale)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(chars) - 1))
        chars[i] = data.draw(st.sampled_from(['"', "'", ".", "(", ")", "[", "]", "<", "-", "", "\n", "9", "é"]))
    result = TASK._check_steps(p, "".join(chars))  # the unguarded checker
    assert result.first_error_step is None or 1 <= result.first_error_step <= result.n_steps + 1
    TASK.parse_answer("".join(chars))
