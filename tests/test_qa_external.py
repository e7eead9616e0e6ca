"""The free-form qa family and external problem files."""

import json

import pytest

from tripost.errors import InputError, TripostError
from tripost.tasks import get_task
from tripost.tasks.external import load_problems
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
