"""The free-form qa family and external problem files."""

import json
import os
import subprocess
import sys

import pytest

from tripost.errors import InputError, TripostError
from tripost.tasks import get_task
from tripost.tasks.external import MAX_ANSWER_CHARS, MAX_QUESTION_CHARS, MAX_RATIONALE_CHARS, load_problems
from tripost.teachers.scripted import ScriptedTeacher


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_qa_checks_only_the_final_answer(tmp_path):
    f = write_jsonl(tmp_path / "gsm.jsonl", [
        {"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "He has 3 + 4 = 7.\n#### 7"},
        {"id": "q2", "question": "Cost of 1000 pens at $1 each?", "answer": "$1,000"},
    ])
    task = get_task("qa")
    p1, p2 = load_problems(f, "qa")
    assert p1.answer == "7" and p2.id == "q2"
    good = "(1) 3 + 4 = 7.\n(Final response) So the answer is 7."
    assert task.check_steps(p1, good).all_correct
    bad = task.check_steps(p1, "(1) 3 + 4 = 8.\n(Final response) So the answer is 8.")
    assert not bad.correct and bad.first_error_step == 2 and bad.segment == "So the answer is 8."
    missing = task.check_steps(p1, "(1) 3 + 4 = 7.")
    assert missing.first_error_step == 2 and "missing" in missing.reason
    assert task.check_answer(p2, "1000") and task.check_answer(p2, "$1,000.00")
    assert not task.check_answer(p2, "100")


def test_qa_scripted_feedback_works_but_improve_is_a_clear_error(tmp_path):
    p = load_problems(write_jsonl(tmp_path / "q.jsonl", [{"question": "2+2?", "answer": 4}]), "qa")[0]
    fb = ScriptedTeacher().feedback(p, "(1) 2+2=5\n(Final response) So the answer is 5.")
    assert fb.feedback.error_step == 2 and "final response" in fb.text
    with pytest.raises(TripostError, match="cannot improve"):
        ScriptedTeacher().improve(p, "(1) 2+2=5\n(Final response) So the answer is 5.", fb.feedback)


@pytest.mark.parametrize(
    "rows, needle",
    [
        (["{not json"], "q.jsonl:1: not valid JSON"),
        ([{"question": "a"}], "q.jsonl:1: missing field 'answer'"),
        ([{"question": "a", "answer": "1"}, {"question": "", "answer": "1"}], "q.jsonl:2:"),
        ([{"question": "a", "answer": "1", "subset": "weird"}], "q.jsonl:1: subset must be"),
        ([{"id": "x", "question": "a", "answer": "1"}, {"id": "x", "question": "b", "answer": "2"}], "duplicate problem id"),
        (["[1, 2]"], "q.jsonl:1: expected a JSON object"),
        ([], "no problems"),
    ],
)
def test_bad_external_files_name_the_line(tmp_path, rows, needle):
    f = write_jsonl(tmp_path / "q.jsonl", rows)
    with pytest.raises(InputError) as e:
        load_problems(f, "qa")
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_problems(tmp_path / "nope.jsonl", "qa")


# ------------------------------------------------ wrong types (issue 20, item 4)

FAMILIES = ["qa", "arithmetic", "word_sorting", "date_understanding", "logical_deduction"]
GOOD = {
    "qa": {"question": "x?", "answer": "5"},
    "arithmetic": {"question": "(1 + 2) =", "answer": "3"},
    "word_sorting": {"question": "Sort the following words alphabetically: List: b a", "answer": "a b"},
    "date_understanding": {"question": "What is the date? Options: (A) 12/14/1937", "answer": "(A)"},
    "logical_deduction": {"question": "Which is first?", "answer": "(A)", "options": ["red", "blue"]},
}
WRONG_TYPES = [
    ({"options": 7}, "'options' must be a list"),  # the line of the issue: a traceback in qa.py
    ({"options": "abc"}, "'options' must be a list"),
    ({"options": [1, {"a": 2}]}, "'options' must be a list of strings"),
    ({"options": [["a"]]}, "'options' must be a list of strings"),
    ({"options": [str(i) for i in range(27)]}, "27 options"),
    ({"question": 5}, "'question'"),
    ({"question": ["x?"]}, "'question'"),
    ({"answer": ["5"]}, "'answer'"),
    ({"answer": {"value": 5}}, "'answer'"),
    ({"meta": 7}, "'meta' must be an object"),
    ({"meta": ["words"]}, "'meta' must be an object"),
    ({"rationale": 7}, "'rationale' must be a string"),
    ({"rationale": ["(1) x"]}, "'rationale' must be a string"),
    ({"id": [1]}, "'id' must be a string or a number"),
    ({"difficulty": {"a": 1}}, "'difficulty' must be a string or a number"),
    ({"subset": ["seen"]}, "subset must be one of"),
    ({"split": {"a": 1}}, "split must be one of"),
]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("change, needle", WRONG_TYPES, ids=[f"{next(iter(c))}={json.dumps(next(iter(c.values())))[:20]}" for c, _ in WRONG_TYPES])
def test_wrong_field_types_are_one_error_naming_the_line(tmp_path, family, change, needle):
    f = write_jsonl(tmp_path / "q.jsonl", [{**GOOD[family], "id": "first"}, {**GOOD[family], **change}])
    with pytest.raises(InputError) as e:
        load_problems(f, family)
    message = str(e.value)
    assert message.startswith(f"{f}:2: ") and "\n" not in message, message
    # qa is the family of the issue; the others word question/answer errors their own way
    field = next(iter(change))
    assert needle in message if family == "qa" or field not in ("question", "answer") else field in message, message


def test_good_records_of_every_family_load(tmp_path):
    # the records the wrong-type test changes are themselves fine
    for family in FAMILIES:
        f = write_jsonl(tmp_path / f"{family}.jsonl", [GOOD[family]])
        assert load_problems(f, family)[0].answer


def test_qa_keeps_number_options_as_text(tmp_path):
    f = write_jsonl(tmp_path / "q.jsonl", [{"question": "x?", "answer": 5, "options": [5, "6", 7.5], "rationale": None}])
    p = load_problems(f, "qa")[0]
    assert p.options == ("5", "6", "7.5") and p.rationale == "" and p.answer == "5"


# ----------------------------------------------------- sizes (issue 20, item 5)


@pytest.mark.parametrize("field, limit", [("question", MAX_QUESTION_CHARS), ("answer", MAX_ANSWER_CHARS), ("rationale", MAX_RATIONALE_CHARS)])
def test_field_sizes_are_bounded(tmp_path, field, limit):
    base = {"question": "How many?", "answer": "5"}
    at_limit = {**base, field: "7" * limit}
    over = {**base, field: "7" * (limit + 1)}
    p = load_problems(write_jsonl(tmp_path / "ok.jsonl", [at_limit]), "qa")[0]
    assert len(getattr(p, field)) == limit
    with pytest.raises(InputError) as e:
        load_problems(write_jsonl(tmp_path / "big.jsonl", [base, over]), "qa")
    assert str(e.value) == f"{tmp_path / 'big.jsonl'}:2: field {field!r} is {limit + 1:,} characters long, more than the {limit:,} accepted"


def test_every_family_bounds_its_question(tmp_path):
    for family in FAMILIES:
        big = {**GOOD[family], "question": GOOD[family]["question"] + " " * MAX_QUESTION_CHARS}
        with pytest.raises(TripostError, match="characters long, more than"):
            get_task(family).from_record(big)  # the path `tasks check` and `teach` take


def test_cli_reports_a_wrong_type_in_one_line(tmp_path):
    f = write_jsonl(tmp_path / "q.jsonl", [{"question": "x?", "answer": "5", "options": 7}])
    r = subprocess.run([sys.executable, "-m", "tripost", "tasks", "sample", "qa", "--data", str(f), "--json"],
                       capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"{f}:1: field 'options' must be a list of strings (or numbers)"), r.stderr


# Issue 32, item 8: JSON can spell a lone surrogate ("\ud800"), which is not text:
# it passed the checks and broke later (UnicodeEncodeError when the id was hashed,
# or when the first record was written).
SURROGATE = '"a \\ud800 b"'  # as it stands in the file: an escape json.loads turns into a lone surrogate


@pytest.mark.parametrize("field, row", [
    ("question", f'{{"question": {SURROGATE}, "answer": "4"}}'),
    ("answer", f'{{"question": "2 + 2?", "answer": {SURROGATE}}}'),
    ("options", f'{{"question": "2 + 2?", "answer": "4", "options": ["3", {SURROGATE}]}}'),
    ("rationale", f'{{"question": "2 + 2?", "answer": "4", "rationale": {SURROGATE}}}'),
    ("meta", f'{{"question": "2 + 2?", "answer": "4", "meta": {{"note": [{SURROGATE}]}}}}'),
])
def test_a_lone_surrogate_is_one_line_naming_the_row(tmp_path, field, row):
    f = write_jsonl(tmp_path / "q.jsonl", ['{"question": "fine?", "answer": "1"}', row])
    with pytest.raises(InputError) as e:
        load_problems(f, "qa")
    assert str(e.value) == f"{f}:2: field {field!r} holds a lone surrogate ('\\ud800' at character 2), which is not text; fix that escape in the row"
    # The command the issue ran: one line, no traceback, whatever split is asked for.
    for split in ("train", "test"):
        r = subprocess.run([sys.executable, "-m", "tripost", "tasks", "sample", "qa", "--data", str(f), "--split", split, "--json"],
                           capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [f"tripost tasks: error: {e.value}"], r.stderr[-2000:]


def test_a_record_from_tasks_sample_is_checked_for_surrogates_too():
    from tripost.tasks.external import problem_from_record

    record = {"question": "2 + 2?", "answer": "4", "meta": {"x": 1}, "rationale": "a \ud800"}
    with pytest.raises(InputError, match=r"^<stdin>:3: field 'rationale' holds a lone surrogate"):
        problem_from_record("qa", record, "<stdin>", 3)
