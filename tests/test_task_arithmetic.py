"""The arithmetic family: generator, gold rationales, step checker, scripted teacher."""

from __future__ import annotations

import random
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripost.errors import TripostError
from tripost.format import parse_rationale
from tripost.tasks import PRESETS, SPLITS, SUBSETS, get_task, sample_problems, split_of
from tripost.tasks.arithmetic import MAX_NUMBERS, ArithmeticTask, Group, parse_expression, render
from tripost.tasks.base import Problem, Task
from tripost.tasks.external import MAX_QUESTION_CHARS, MAX_RATIONALE_CHARS
from tripost.teachers.scripted import ScriptedTeacher

TASK = get_task("arithmetic")
EXAMPLE = "((-3 + 5 * 2) - (7 - -1)) ="
GOLD = """(1) This equation can be written as "(A - B)", where A = (-3 + 5 * 2) and B = (7 - -1).
(2) Let's calculate A = (-3 + 5 * 2) = (-3 + 10) = 7.
(3) Let's calculate B = (7 - -1) = 8.
(4) Then, the final equation is (A - B) = (7 - 8) = -1.
(Final response) So the answer is -1."""


def _example():
    return TASK.from_record({"question": EXAMPLE, "answer": "-1"})


def _problems(per_combo: int = 6, seed: int = 3):
    out = []
    for preset in PRESETS:
        for subset in SUBSETS:
            out += sample_problems(TASK, split="train", subset=subset, preset=preset, n=per_combo, seed=seed)
    return out


# ------------------------------------------------------------- levels ---


def test_protocol_and_registry():
    assert isinstance(TASK, ArithmeticTask) and isinstance(TASK, Task)
    assert TASK.name == "arithmetic" and TASK.scripted is True


@pytest.mark.parametrize("preset", PRESETS)
def test_levels_seen_and_unseen_differ(preset):
    seen, unseen = TASK.levels(preset, "seen"), TASK.levels(preset, "unseen")
    assert seen and unseen and not set(seen) & set(unseen)
    rng = random.Random(0)
    for level in seen + unseen:
        p = TASK.generate(rng, level)
        assert p.difficulty == level and p.question.endswith(" =")


def test_paper_and_small_levels_as_documented():
    assert TASK.levels("paper", "seen") == ["len3-2", "len4-2", "len3-2-2", "len4-2-2"]
    assert all(lv.startswith("len5") or lv.count("-") >= 3 for lv in TASK.levels("paper", "unseen"))
    # small: short rationales for the 135M student (at most 4 steps, short lines).
    for p in _problems(per_combo=20):
        if p.difficulty in TASK.levels("small", "seen") + TASK.levels("small", "unseen"):
            assert parse_rationale(p.rationale).n_steps <= 4
            assert max(len(line) for line in p.rationale.splitlines()) <= 100


def test_unknown_level_and_preset_are_clear_errors():
    with pytest.raises(TripostError, match="level"):
        TASK.generate(random.Random(0), "len3-7x")
    with pytest.raises(TripostError, match="preset"):
        TASK.levels("huge", "seen")


# ---------------------------------------------- gold rationales, splits ---


def test_gold_rationales_pass_for_every_preset_subset_split():
    """1,080 problems: 90 for each preset x subset x split."""
    total = 0
    for preset in PRESETS:
        for subset in SUBSETS:
            questions = {}
            for split in SPLITS:
                problems = sample_problems(TASK, split=split, subset=subset, preset=preset, n=90, seed=11)
                questions[split] = {p.question for p in problems}
                assert len(questions[split]) == 90
                for p in problems:
                    total += 1
                    assert split_of(p.question) == split and p.subset == subset
                    assert p.difficulty in TASK.levels(preset, subset)
                    check = TASK.check_steps(p, p.rationale)
                    assert check.first_error_step is None, (p.question, p.rationale, check)
                    assert check.correct and check.answer == p.answer
                    assert TASK.parse_answer(p.rationale) == p.answer == TASK.parse_answer(p.answer)
                    assert TASK.check_answer(p, p.rationale) and TASK.check_answer(p, p.answer)
            assert not questions["train"] & questions["val"]
            assert not questions["train"] & questions["test"]
            assert not questions["val"] & questions["test"]
    assert total >= 1000


def test_same_seed_same_problems():
    a = sample_problems(TASK, split="val", subset="seen", preset="paper", n=12, seed=4)
    b = sample_problems(TASK, split="val", subset="seen", preset="paper", n=12, seed=4)
    c = sample_problems(TASK, split="val", subset="seen", preset="paper", n=12, seed=5)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert [p.question for p in a] != [p.question for p in c]
    assert TASK.generate(random.Random(9), "len3-2") == TASK.generate(random.Random(9), "len3-2")


def test_levels_have_room_for_hundreds_per_split():
    # val and test get 10% of the hash space each; small has the smallest levels.
    for subset in SUBSETS:
        n = 150 * len(TASK.levels("small", subset))
        ps = sample_problems(TASK, split="test", subset=subset, preset="small", n=n, seed=2)
        assert len({p.question for p in ps}) == len(ps) == n


def test_meta_is_json_and_structured():
    import json

    p = _example()
    assert json.loads(json.dumps(p.meta)) == p.meta
    assert p.meta["expression"] == "((-3 + 5 * 2) - (7 - -1))"
    assert p.meta["pattern"] == "(A - B)" and p.meta["variables"] == {"A": "(-3 + 5 * 2)", "B": "(7 - -1)"}
    assert p.rationale == GOLD and p.answer == "-1" and p.difficulty == "len3-2"


def test_shape_one_skips_the_naming_step():
    p = TASK.from_record({"question": "(3 + -4 * 2) =", "answer": -5})
    assert p.rationale == "(1) Let's calculate (3 + -4 * 2) = (3 + -8) = -5.\n(Final response) So the answer is -5."
    assert p.difficulty == "len3-1"
    assert TASK.check_steps(p, p.rationale).first_error_step is None


# ---------------------------------------------------------- the checker ---


def _check(text, problem=None):
    return TASK.check_steps(problem or _example(), text)


def test_alternative_wording_names_and_order_pass():
    text = """Let's think step by step.
(1) This equation can be written as "(X - Y)", where X = (-3 + 5 * 2) and Y = (7 - -1).
(2) First, Y = (7 - -1) = 8.
(3) Now X = (-3 + 5 * 2) = 7.
(4) So (X - Y) = (7 - 8) = -1.
(Final response) So the answer is -1."""
    c = _check(text)
    assert c.first_error_step is None and c.correct and c.n_steps == 4


def test_whole_expression_in_one_chain_passes():
    text = "(1) ((-3 + 5 * 2) - (7 - -1)) = ((-3 + 10) - 8) = (7 - 8) = -1.\n(Final response) So the answer is -1."
    assert _check(text).first_error_step is None


@pytest.mark.parametrize(
    "old,new,step,segment,reason",
    [
        ("(-3 + 10) = 7.", "(-3 + 10) = 8.", 2, "(-3 + 10) = 8", "-3 + 10 = 7"),
        ("= (-3 + 10) = 7", "= (2 * 2) = 4", 2, "(-3 + 5 * 2) = (2 * 2)", "-3 + 5 * 2 = 7"),
        ("(7 - -1) = 8", "(7 - -1) = 6", 3, "(7 - -1) = 6", "7 - -1 = 8"),
        ("(A - B) = (7 - 8)", "(A - B) = (7 - 6)", 4, "(A - B) = (7 - 6)", "B = 8"),
        ('"(A - B)"', '"(A + B)"', 1, "(A + B)", 'the equation has the form "(A - B)"'),
        ("where A = (-3 + 5 * 2)", "where A = (-3 + 5 * 3)", 1, "A = (-3 + 5 * 3)", "A stands for (-3 + 5 * 2) in the equation"),
        ("calculate A = (-3 + 5 * 2) =", "calculate A = (-3 + 5) =", 2, "A = (-3 + 5)", "A was defined as (-3 + 5 * 2)"),
        ("(2) Let's calculate A", "(2) Let's calculate C", 2, "C", "C is not defined in an earlier step"),
        ("So the answer is -1.", "So the answer is 1.", 5, "1", "the steps above give -1"),
    ],
)
def test_wrong_steps_are_found_with_segment_and_reason(old, new, step, segment, reason):
    assert old in GOLD
    c = _check(GOLD.replace(old, new, 1))
    assert (c.first_error_step, c.segment, c.reason) == (step, segment, reason)
    assert c.segment in (parse_rationale(GOLD.replace(old, new, 1)).steps + ("So the answer is 1.",))[step - 1]


def test_unicode_operators_read_and_segments_stay_verbatim():
    text = GOLD.replace("= (-3 + 10) = 7.", "= (\u22123 + 10) = 8.")
    c = _check(text)
    assert (c.first_error_step, c.segment, c.reason) == (2, "(\u22123 + 10) = 8", "-3 + 10 = 7")
    assert _check(GOLD.replace("5 * 2", "5 \u00d7 2")).first_error_step is None


def test_value_preserving_slips_are_still_wrong():
    p = TASK.from_record({"question": "((2 - 2) * (3 * 5 * 0)) =", "answer": 0})
    assert TASK.check_steps(p, p.rationale).first_error_step is None
    bad = p.rationale.replace("(15 * 0)", "(16 * 0)")
    c = TASK.check_steps(p, bad)
    assert (c.first_error_step, c.reason) == (3, "3 * 5 = 15")
    bad = p.rationale.replace("(A * B) = (0 * 0)", "(A * B) = (0 * 4)")
    c = TASK.check_steps(p, bad)
    assert (c.first_error_step, c.reason) == (4, "B = 0")
    # A different but valid order of operations is fine.
    ok = p.rationale.replace("(3 * 5 * 0) = (15 * 0)", "(3 * 5 * 0) = (3 * 0)")
    assert ok != p.rationale and TASK.check_steps(p, ok).first_error_step is None


def test_variable_used_before_it_is_calculated():
    text = GOLD.replace("(3) Let's calculate B = (7 - -1) = 8.\n", "").replace("(4) Then", "(3) Then")
    c = _check(text)
    assert c.first_error_step == 3 and c.reason == "B has not been calculated yet" and c.segment == "(A - B)"


def test_misnumbered_garbage_missing_and_skipped_steps():
    c = _check(GOLD.replace("(3) Let's", "(4) Let's"))
    assert c.first_error_step == 3 and "numbered" in c.reason
    c = _check(GOLD.replace("(3) Let's calculate B = (7 - -1) = 8.", "(3) I like turtles."))
    assert c.first_error_step == 3 and c.reason == "this step does not follow the expected form"
    assert c.segment == "I like turtles."
    no_final = GOLD.rsplit("\n", 1)[0]
    c = _check(no_final)
    assert (c.first_error_step, c.correct, c.reason) == (5, False, "the final response is missing")
    c = _check("So the answer is -1.")
    assert c.first_error_step == 1 and c.n_steps == 0
    c = _check("(Final response) So the answer is -1.")
    assert c.first_error_step == 1 and c.correct  # right answer, but nothing derived it
    skipped = GOLD.split("\n")[0] + "\n(Final response) So the answer is -1."
    c = _check(skipped)
    assert c.first_error_step == 2 and c.correct and "not calculated the whole equation" in c.reason
    c = _check(GOLD.replace("(A - B) = (7 - 8) = -1.", "(A - B) = (7 - 8)."))
    assert c.first_error_step == 4 and "single number" in c.reason


# ------------------------------------------- corruption and the teacher ---


def test_corrupt_is_flagged_at_exactly_that_step_and_the_teacher_fixes_it():
    teacher = ScriptedTeacher()
    rng = random.Random(7)
    count = 0
    for p in _problems(per_combo=8):
        gold = parse_rationale(p.rationale)
        n = gold.n_steps
        for k in range(1, n + 2):
            bad = TASK.corrupt(p, k, rng)
            parsed = parse_rationale(bad)
            cut = parsed.offset_of(k)
            assert bad[:cut] == p.rationale[:cut] and bad != p.rationale
            check = TASK.check_steps(p, bad)
            assert check.first_error_step == k, (p.rationale, bad, check)
            where = parsed.steps[k - 1] if k <= n else parsed.final
            assert check.segment and check.segment in where and check.reason
            fb = teacher.feedback(p, bad)
            assert fb.feedback is not None and fb.feedback.error_step == k
            assert f'the part "{check.segment}" is incorrect' in fb.text
            fixed = teacher.improve(p, bad, fb.feedback).rationale
            assert fixed is not None and fixed[:cut] == bad[:cut]
            after = TASK.check_steps(p, fixed)
            assert after.first_error_step is None and after.correct, (bad, fixed, after)
            count += 1
    assert count > 150


def test_continue_keeps_what_kept_steps_did():
    p = _example()
    kept = [
        'This equation can be written as "(X - Y)", where X = (-3 + 5 * 2) and Y = (7 - -1).',
        "Let's calculate Y = (7 - -1) = 8.",
    ]
    steps, answer = TASK.continue_rationale(p, kept)
    assert answer == "-1"
    assert steps == ["Let's calculate X = (-3 + 5 * 2) = (-3 + 10) = 7.", "Then, the final equation is (X - Y) = (7 - 8) = -1."]
    from tripost.format import render_rationale

    assert _check(render_rationale(kept + steps, answer)).first_error_step is None
    done = GOLD.splitlines()[:4]
    assert TASK.continue_rationale(p, [s[4:] for s in done]) == ([], "-1")
    assert TASK.continue_rationale(p, [])[0] == [s[4:] for s in done]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), data=st.data())
def test_corrupt_any_level_any_step(seed, data):
    levels = sorted({lv for pr in PRESETS for s in SUBSETS for lv in TASK.levels(pr, s)})
    level = data.draw(st.sampled_from(levels))
    p = TASK.generate(random.Random(seed), level)
    n = parse_rationale(p.rationale).n_steps
    k = data.draw(st.integers(1, n + 1))
    bad = TASK.corrupt(p, k, random.Random(seed))
    assert TASK.check_steps(p, bad).first_error_step == k
    fixed = ScriptedTeacher().improve(p, bad, ScriptedTeacher().feedback(p, bad).feedback).rationale
    assert TASK.check_steps(p, fixed).first_error_step is None


# -------------------------------------------------------- robustness ---

_PIECES = list("()0123456789+-*= ABXYZ.,\"\n\u2212\u00d7") + ["where ", "Let's calculate ", "\n(1) ", "\n(2) ", "\n(Final response) So the answer is "]
_STEPLIKE = st.lists(st.sampled_from(_PIECES), max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=300), _STEPLIKE))
def test_checker_never_raises_on_any_text(text):
    c = TASK.check_steps(_example(), text)
    assert c.first_error_step is None or 1 <= c.first_error_step <= c.n_steps + 1
    assert c.first_error_step is not None or c.correct
    _assert_segment_verbatim(text, c)
    TASK.parse_answer(text)


def _assert_segment_verbatim(text, c):
    parsed = parse_rationale(text)
    if c.first_error_step is not None and c.segment:
        where = parsed.steps[c.first_error_step - 1] if c.first_error_step <= parsed.n_steps else parsed.final
        assert c.segment in where


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_garbled_and_truncated_gold(data):
    p = data.draw(st.sampled_from(_GARBLE_POOL))
    text = p.rationale
    # Truncated before the answer is complete: never "all correct".
    cut = data.draw(st.integers(0, text.rindex(".") - 1))
    c = TASK.check_steps(p, text[:cut])
    assert c.first_error_step is not None
    # Random edits never make the checker raise.
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(chars)))
        op = data.draw(st.sampled_from(["del", "ins", "sub"]))
        ch = data.draw(st.sampled_from(list("()=-+*0189AB .\n\"(")))
        if op == "ins" or not chars:
            chars.insert(i, ch)
        elif i < len(chars):
            chars[i] = ch if op == "sub" else ""
    c = TASK.check_steps(p, "".join(chars))
    assert c.first_error_step is None or 1 <= c.first_error_step <= c.n_steps + 1
    _assert_segment_verbatim("".join(chars), c)


_GARBLE_POOL = _problems(per_combo=3, seed=21)


def test_deeply_nested_or_huge_text_does_not_raise():
    p = _example()
    for text in ["(1) " + "(" * 5000 + "1" + ")" * 5000 + " = 1", "(1) A = " + "9" * 5000, "(1) " + " * ".join(["99999"] * 3000) + " = 0"]:
        assert TASK.check_steps(p, text).first_error_step == 1


# ------------------------------------------------ answers and records ---


def test_parse_and_check_answer():
    assert TASK.parse_answer("So the answer is \u22127.") == "-7"
    assert TASK.parse_answer(" 12 ") == "12"
    assert TASK.parse_answer("+05") == "5"
    assert TASK.parse_answer("(1) x\n(Final response) So the answer is 1,234.") == "1234"
    assert TASK.parse_answer("abc") is None and TASK.parse_answer("") is None
    # No (Final response) line: the last statement of the answer wins, and only its own line.
    assert TASK.parse_answer("So the answer is 3. Wait, the answer is 4.") == "4"
    assert TASK.parse_answer("The answer is 7.\nThe answer is 7.") == "7"
    assert TASK.parse_answer("The answer is 7.\nthat is all") == "7"
    p = _example()
    assert TASK.check_answer(p, "-1") and not TASK.check_answer(p, "1") and not TASK.check_answer(p, None)


def test_from_record_round_trip():
    for p in _problems(per_combo=10, seed=5):
        q = TASK.from_record({"question": p.question, "answer": p.answer})
        assert (q.question, q.answer, q.rationale, q.difficulty, q.meta) == (p.question, p.answer, p.rationale, p.difficulty, p.meta)
        assert TASK.from_record({"question": p.question, "answer": int(p.answer), "id": "x1"}).id == "x1"


def test_from_record_other_surface_forms():
    p = TASK.from_record({"question": "(1 + 2) * (3 - 4) =", "answer": "-3", "options": ["-3", "3"]})
    assert p.difficulty == "len2-2" and p.options == ("-3", "3")
    assert TASK.check_steps(p, p.rationale).first_error_step is None
    p = TASK.from_record({"question": "((1 + 2) * 3)", "answer": 9, "difficulty": "custom"})
    assert p.difficulty == "custom" and TASK.check_steps(p, p.rationale).first_error_step is None
    rng = random.Random(1)
    for k in range(1, parse_rationale(p.rationale).n_steps + 2):
        assert TASK.check_steps(p, TASK.corrupt(p, k, rng)).first_error_step == k


@pytest.mark.parametrize(
    "record,match",
    [
        ({"answer": 1}, "question"),
        ({"question": "  ", "answer": 1}, "question"),
        ({"question": "(1 + 2) =", "answer": None}, "answer"),
        ({"question": "(1 + 2) =", "answer": True}, "answer"),
        ({"question": "(1 + 2) =", "answer": "three"}, "answer"),
        ({"question": "(1 + 2) =", "answer": 4}, "does not match"),
        ({"question": "What is 1 + 2?", "answer": 3}, "cannot parse"),
        ({"question": "(1 / 2) =", "answer": 0}, "cannot parse"),
        ({"question": "(A + 2) =", "answer": 3}, "letters"),
        ({"question": "(7) =", "answer": 7}, "no operation"),
        ({"question": "(1 + 2) =", "answer": 3, "options": "abc"}, "options"),
        (["not", "a", "dict"], "JSON object"),
    ],
)
def test_bad_records_raise_clear_errors(record, match):
    with pytest.raises(TripostError, match=match) as e:
        TASK.from_record(record)
    assert "\n" not in str(e.value)


def test_never_eval():
    import ast
    from pathlib import Path

    import tripost.tasks.arithmetic as mod

    files = sorted(Path(mod.__file__).parent.glob("*.py"))
    assert len(files) > 1  # every module of the family, not only its __init__
    for f in files:
        calls = [n.func.id for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        assert not {"eval", "exec", "compile"} & set(calls), f


# ------------------------------------------- input size (issue 20, item 5) ---
# A question of 50,000 numbers once took 17.6 GB: the gold rationale writes a
# group out once per operation, so it grows with the square of the group's
# length. Sizes here stay small; no timings are asserted.


def _group(n: int, op: str = "+", number: str = "1") -> str:
    return "(" + f" {op} ".join([number] * n) + ") ="


def test_question_with_max_numbers_is_solved_and_one_more_is_refused():
    at_limit = TASK.from_record({"question": _group(MAX_NUMBERS), "answer": MAX_NUMBERS})
    assert at_limit.answer == str(MAX_NUMBERS) and at_limit.meta["length"] == MAX_NUMBERS
    check = TASK.check_steps(at_limit, at_limit.rationale)
    assert check.all_correct and check.correct
    # about the longest gold rationale at the limit: products of -9 up to 30 digits
    worst = TASK.from_record({"question": _group(MAX_NUMBERS - 1, "*", "-9")[:-3] + " + 1) =", "answer": str((-9) ** 31 + 1)})
    assert TASK.check_steps(worst, worst.rationale).all_correct and len(worst.rationale) <= MAX_RATIONALE_CHARS
    with pytest.raises(TripostError) as e:
        TASK.from_record({"question": _group(MAX_NUMBERS + 1), "answer": MAX_NUMBERS + 1})
    assert f"has {MAX_NUMBERS + 1} numbers, more than the {MAX_NUMBERS} accepted" in str(e.value)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


def test_numbers_are_counted_across_groups():
    nested = "(" + " - ".join(["(1 + 2 + 3)"] * 11) + ") ="  # 33 numbers, none more than 3 in a group
    with pytest.raises(TripostError, match=f"33 numbers, more than the {MAX_NUMBERS}"):
        TASK.from_record({"question": nested, "answer": -24})
    ok = "(" + " - ".join(["(1 + 2 + 3)"] * 10) + ") ="
    assert TASK.from_record({"question": ok, "answer": -48}).answer == "-48"


def test_long_question_is_refused_before_parsing():
    padded = _group(3).replace(" ", " " * 3000)  # 3 numbers, over MAX_QUESTION_CHARS characters
    assert len(padded) > MAX_QUESTION_CHARS
    with pytest.raises(TripostError, match="characters long, more than the 8,000 accepted"):
        TASK.from_record({"question": padded, "answer": 3})
    # a sampled record carries its expression in meta: that path is bounded too
    p = Problem.from_dict({**_example().to_dict(), "meta": {"expression": _group(MAX_NUMBERS + 1)[:-2]}})
    with pytest.raises(TripostError, match="more than the 32 accepted"):
        TASK.check_steps(p, GOLD)


def test_a_number_too_long_for_the_checker_is_refused():
    # (-9) ** 32 has 31 digits: the gold rationale was accepted, and the step
    # checker, which reads numbers of up to 30 digits, flagged it as wrong.
    with pytest.raises(TripostError, match="reaches a number of 31 digits on the way; the step checker reads at most 30"):
        TASK.from_record({"question": _group(MAX_NUMBERS, "*", "-9"), "answer": str((-9) ** MAX_NUMBERS)})


def test_long_numbers_that_make_a_long_rationale_are_refused():
    big = "9" * 30  # the checker's longest number; a - b + c - ... stays that short
    over = "(" + " + ".join([f"{big} - {big}"] * (MAX_NUMBERS // 2)) + ") ="
    with pytest.raises(TripostError, match="rationale .* is 17,077 characters long, more than the 16,000 accepted"):
        TASK.from_record({"question": over, "answer": 0})
    # One number fewer fits in the size, but its group (more than 400
    # characters) is longer than the checker looks back for: refused rather
    # than accepted with a gold rationale the checker flags as wrong.
    unreadable = "(" + " + ".join([f"{big} - {big}"] * (MAX_NUMBERS // 2 - 1)) + ") ="
    with pytest.raises(TripostError, match="too long for the step checker to read"):
        TASK.from_record({"question": unreadable, "answer": 0})
    short = "(" + " + ".join([f"{big} - {big}"] * 6) + ") ="
    p = TASK.from_record({"question": short, "answer": 0})
    assert TASK.check_steps(p, p.rationale).all_correct


def test_overlong_rationale_is_flagged_not_read():
    p = _example()
    long = GOLD.replace("(7 - -1) = 8.", "(7 - -1) = " + " = ".join(["(8 * 1 * 1)"] * 1500) + " = 8.")
    assert len(long) > MAX_RATIONALE_CHARS
    check = TASK.check_steps(p, long)
    assert check.first_error_step == 1 and "characters long, more than" in check.reason
    assert check.correct and check.answer == "-1" and check.n_steps == 4


def test_parsing_is_linear_and_bounded_in_memory():
    # 20,000 numbers parse (the checker reads model text this way); counting
    # them is what refuses a question before its rationale is written.
    # Memory, not time, is the bound checked: the quadratic parser took 1.2 GB
    # at 10,000 numbers; a linear one holds a tree of ~100 bytes per number.
    expr = _group(20_000)[:-2]
    tracemalloc.start()
    try:
        tree = parse_expression(expr)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(tree, Group) and len(tree.items) == 20_000
    assert peak < 64 * 2**20, f"parsing 20,000 numbers peaked at {peak / 2**20:.0f} MiB"
    assert render(tree) == expr
