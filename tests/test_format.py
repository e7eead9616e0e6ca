"""The trajectory text format: parse what we render, find steps by offset."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tripost.format import (
    Feedback,
    Trajectory,
    Turn,
    final_line,
    parse_feedback,
    parse_final_answer,
    parse_rationale,
    parse_trajectory,
    render_rationale,
)

# Step texts: one line, no leading "(" so they cannot look like a step marker.
step_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=40).map(
    lambda s: "x" + s.strip().replace("Feedback:", "F:").replace("Updated Answer:", "U:")
)
answer_text = st.from_regex(r"[A-Za-z0-9/()\- ]{1,12}", fullmatch=True).map(str.strip).filter(bool)


@given(st.lists(step_text, max_size=8), answer_text)
@settings(max_examples=200)
def test_render_then_parse_round_trips(steps, answer):
    text = render_rationale(steps, answer, preamble="Let's think step by step.")
    r = parse_rationale(text)
    assert list(r.steps) == [s.strip() for s in steps]
    assert r.preamble == "Let's think step by step."
    assert r.answer == answer.rstrip(".").strip()
    assert r.numbers == tuple(range(1, len(steps) + 1))
    for k in range(1, len(steps) + 1):
        assert text[r.offset_of(k):].startswith(f"({k}) ")
    assert text[r.offset_of(len(steps) + 1):].startswith("(Final response)")


def test_parse_stops_at_feedback_and_reads_continuation_lines():
    text = "(1) a\n  more of a\n(2) b\n(Final response) So the answer is 3.\nFeedback: fine"
    r = parse_rationale(text)
    assert r.steps == ("a more of a", "b")
    assert r.answer == "3"
    assert "Feedback" not in r.text


def test_final_answer_forms():
    assert parse_final_answer("So the answer is -1.") == "-1"
    assert parse_final_answer("so THE ANSWER IS (A)") == "(A)"
    assert parse_final_answer("I give up") is None
    assert final_line("12/14/1937") == "(Final response) So the answer is 12/14/1937."


@given(st.integers(1, 12), st.integers(0, 13), st.text(alphabet="abc +-=0123456789", min_size=1, max_size=20))
def test_feedback_round_trip(n, k, seg):
    fb = Feedback(n_steps=n, error_step=None if k == 0 else min(k, n + 1), segment=seg.strip() or "x", reason="-3 + 10 = 7")
    text = fb.render()
    back = parse_feedback("Feedback: " + text, n)
    assert back is not None
    assert back.error_step == fb.error_step
    if fb.error_step is not None:
        assert back.segment == fb.segment.replace('"', "'")
        assert back.reason.startswith("-3 + 10 = 7")


def test_feedback_sentences_match_tripost():
    assert Feedback(4, 3, "(7 - 8) = -2", "7 - 8 = -1").render() == (
        'Step (1) to step (2) are correct. In step (3) the part "(7 - 8) = -2" is incorrect. This is because 7 - 8 = -1.'
    )
    assert Feedback(4, 2, "x", "").render() == 'Step (1) is correct. In step (2) the part "x" is incorrect.'
    assert Feedback(4, 1, "x", "The word is wrong").render().startswith('In step (1) the part "x" is incorrect. This is because the word')
    assert Feedback(4, None).render() == "Step (1) to step (4) are correct. The final response is also correct."
    assert Feedback(2, 3, "So the answer is 5.", "x").render().startswith('Step (1) to step (2) are correct. In the final response the part')
    assert parse_feedback("no idea", 3) is None


def test_trajectory_render_parse():
    traj = Trajectory(
        turns=(
            Turn("(1) a\n(Final response) So the answer is 1.", 'In step (1) the part "a" is incorrect.'),
            Turn("(1) b\n(Final response) So the answer is 2.", "Step (1) is correct. The final response is also correct."),
        )
    )
    text = traj.render()
    assert "\nUpdated Answer: (1) b" in text
    assert parse_trajectory(text) == traj
    # An attempt with no feedback yet is one open turn.
    assert parse_trajectory("(1) a") == Trajectory(turns=(Turn("(1) a"),))
