"""TriPosT as its authors ran it (jasonyux/TriPosT at c618e98), rule by rule:
iteration 0 on rationales only, weight 1.5 only where an example was built
from an improvement, single-turn conversion for training and re-prompting at
test time, rebalancing that keeps every improvement, each iteration's own
data, attempts sampled at temperature 1.0, gold only for labelled sources."""

from __future__ import annotations

from collections import Counter

import pytest

from tripost.buffer import BufferConfig, build_buffer, rationale_examples, rebalance, single_turn_texts, to_dataset
from tripost.errors import TripostError
from tripost.evaluate.selfimprove import run_self_improvement_batch
from tripost.log import LogRecord
from tripost.tasks import get_task, sample_problems

WRONG1 = "(1) 2 + 3 = 6.\n(2) 6 * 2 = 12.\n(Final response) So the answer is 12."
WRONG2 = "(1) 2 + 3 = 5.\n(2) 5 * 2 = 11.\n(Final response) So the answer is 11."
RIGHT = "(1) 2 + 3 = 5.\n(2) 5 * 2 = 10.\n(Final response) So the answer is 10."
FB1 = 'In step (1) the part "2 + 3 = 6" is incorrect. This is because 2 + 3 = 5.'
FB2 = 'Step (1) is correct. In step (2) the part "5 * 2 = 11" is incorrect. This is because 5 * 2 = 10.'
CLOSING = "Step (1) to step (2) are correct. The final response is also correct."
GOLD = "(1) First, 2 + 3 = 5.\n(2) Then 5 * 2 = 10.\n(Final response) So the answer is 10."  # not the student's words: no duplicate


def _record(i: int, kind: str = "improvement", iteration: int = 1) -> LogRecord:
    turns = ([{"rationale": WRONG1, "feedback": FB1}, {"rationale": WRONG2, "feedback": FB2}, {"rationale": RIGHT, "feedback": CLOSING}]
             if kind == "improvement" else [{"rationale": RIGHT, "feedback": CLOSING}])
    return LogRecord(key=f"p{i}#0@{iteration}", kind=kind, turns=turns, final_correct=True, stop_reason="correct", iteration=iteration,
                     problem={"id": f"p{i}", "family": "arithmetic", "question": f"Q{i}: (2 + 3) * 2 =", "answer": "10",
                              "rationale": GOLD, "difficulty": "2", "subset": "seen"})


def test_iteration0_examples_are_rationales_without_feedback():
    problems = sample_problems(get_task("arithmetic"), split="train", subset="seen", preset="small", n=6, seed=0)
    examples = rationale_examples(problems)
    assert len(examples) == 6 and {e.kind for e in examples} == {"gold"}
    for e, p in zip(examples, problems):
        assert "Feedback:" not in e.completion and "also correct" not in e.completion
        assert e.completion.strip() == p.rationale.strip() and not e.weighted_feedback


def test_single_turn_split_gives_the_authors_examples():
    # A trajectory of three attempts: two edits -> two (attempt, feedback,
    # update) examples, and (last attempt, closing feedback) as
    # non-improvement data (train_self_improve_rl_noeval.py:573-605).
    rec = _record(0)
    edits, last = single_turn_texts(rec.turns)
    assert edits == [f"{WRONG1}\nFeedback: {FB1}\nUpdated Answer: {WRONG2}", f"{WRONG2}\nFeedback: {FB2}\nUpdated Answer: {RIGHT}"]
    assert last == f"{RIGHT}\nFeedback: {CLOSING}"
    examples, stats = build_buffer([rec], BufferConfig(include_gold=False))
    assert Counter(e.kind for e in examples) == {"improvement": 2, "direct": 1}
    assert all(e.weighted_feedback for e in examples)  # all three come from an improvement: feedback at 1.5
    whole, _ = build_buffer([rec], BufferConfig(include_gold=False, turns="whole"))
    assert [e.kind for e in whole] == ["improvement"] and whole[0].completion.count("Updated Answer:") == 2
    with pytest.raises(TripostError, match="buffer turns must be one of single, whole"):
        BufferConfig(turns="both")


def test_rebalancing_keeps_every_improvement():
    # The case: 200 improvements, 10 direct, 96 gold. Ours kept 80 / 10 / 96;
    # the authors keep all 200, cap non-improvement at ceil(200 / 1.5), gold as many as non-improvement.
    assert rebalance({"improvement": 200, "direct": 10, "gold": 96}, (1.5, 1, 1)) == {"improvement": 200, "direct": 10, "gold": 10}
    assert rebalance({"improvement": 30, "direct": 100, "gold": 100}, (1.5, 1, 1)) == {"improvement": 30, "direct": 20, "gold": 20}
    # No improvement (rejection, sharpening): every non-improvement example, and as many gold.
    assert rebalance({"improvement": 0, "direct": 50, "gold": 80}, (1.5, 1, 1)) == {"improvement": 0, "direct": 50, "gold": 50}
    assert rebalance({"improvement": 7, "direct": 0, "gold": 9}, (1.5, 0, 1)) == {"improvement": 7, "direct": 0, "gold": 5}


def test_gold_and_own_correct_examples_train_at_weight_1_and_improvements_at_1_5(tiny_model_dir):
    from transformers import AutoTokenizer

    from tripost.train import TrainConfig, prepare_dataset

    recs = [_record(i) for i in range(3)] + [_record(10 + i, "direct") for i in range(3)]
    examples, _ = build_buffer(recs, BufferConfig())
    ds = to_dataset(examples)
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    encoded, _ = prepare_dataset(ds, tok, TrainConfig(student=f"hf:{tiny_model_dir}"))
    seen = Counter()
    for ex, weights in zip(examples, encoded["loss_weights"]):
        values = set(weights) - {0.0}
        if ex.weighted_feedback:
            assert values == {1.0, 1.5}, (ex.kind, values)
        else:
            assert values == {1.0}, (ex.kind, values)  # gold and the student's own right answers, verdict included
        seen[(ex.kind, ex.weighted_feedback)] += 1
    assert seen[("gold", False)] and seen[("direct", False)] and seen[("improvement", True)] and seen[("direct", True)]


def test_each_iteration_trains_on_its_own_data_by_default():
    recs = [_record(i, "direct", iteration=1) for i in range(5)] + [_record(10 + i, "direct", iteration=2) for i in range(5)]
    examples, stats = build_buffer(recs, BufferConfig(include_gold=False))
    assert {e.iteration for e in examples} == {2} and stats.retained == 5
    examples, _ = build_buffer(recs, BufferConfig(include_gold=False, keep_last=None))
    assert {e.iteration for e in examples} == {1, 2}


def test_run_defaults_follow_the_authors():
    from tripost.runconfig import RunConfig

    cfg = RunConfig.defaults()
    assert (cfg["collect"]["temperature"], cfg["collect"]["top_p"]) == (1.0, 1.0)  # :343-347
    assert cfg["buffer"]["keep_last"] == 1 and cfg["buffer"]["turns"] == "single" and cfg["eval"]["turns"] == "single"
    assert RunConfig.load(None, []).buffer_config(1).include_gold is True  # the teacher source uses labels
    for source in ("sharpen", "self_verified", "guided"):
        extra = ["collect.samples_per_problem=2"] if source == "self_verified" else []
        assert RunConfig.load(None, [f"collect.source={source}", *extra]).buffer_config(1).include_gold is False
    assert RunConfig.load(None, ["collect.source=sharpen", "buffer.include_gold=true"]).buffer_config(1).include_gold is True
    with pytest.raises(TripostError, match="buffer.include_gold must be"):
        RunConfig.load(None, ["buffer.include_gold=sometimes"])


class _Recorder:
    """A generate function that answers by phase and keeps every prefix it saw."""

    def __init__(self):
        self.prefixes: list[str] = []

    def __call__(self, prefixes, stop):
        out = []
        for p in prefixes:
            self.prefixes.append(p)
            if p.endswith("Feedback:"):
                out.append(" " + (CLOSING if p[: -len("\nFeedback:")].endswith(RIGHT) else FB1))
            elif p.endswith("Updated Answer:"):
                out.append(" " + RIGHT)
            else:
                out.append(WRONG1)
        return out


@pytest.mark.parametrize("turns", ["single", "whole"])
def test_test_time_reprompting_sees_the_last_answer_only_in_single_mode(turns):
    problem = sample_problems(get_task("arithmetic"), split="test", subset="seen", preset="small", n=1, seed=0)[0]
    gen = _Recorder()
    [t] = run_self_improvement_batch([problem], gen, max_turns=2, prompt_fn=lambda p: "PROMPT ", turns=turns)
    assert t.rationales[0] == WRONG1 and t.final_rationale == RIGHT and t.stop_reason == "correct"
    # attempt, feedback, update, feedback on the update
    assert len(gen.prefixes) == 4
    last = gen.prefixes[3]
    if turns == "single":
        assert last == f"PROMPT {RIGHT}\nFeedback:"
        assert WRONG1 not in last and gen.prefixes[2] == f"PROMPT {WRONG1}\nFeedback: {FB1}\nUpdated Answer:"
    else:
        assert WRONG1 in last and last.endswith(f"Updated Answer: {RIGHT}\nFeedback:")


class _StallingTeacher:
    """The scripted teacher, except that its feedback on `stall_on` repeats
    its feedback on `same_as` (same step, same part: no progress), and its
    fixes are `fixes` in turn."""

    name = "stalling"

    def __init__(self, fixes, stall_on=None, same_as=None):
        from tripost.teachers.scripted import ScriptedTeacher

        self.inner = ScriptedTeacher()
        self.fixes = iter(fixes)
        self.stall_on, self.same_as = stall_on, same_as

    def feedback(self, problem, attempt):
        return self.inner.feedback(problem, self.same_as if attempt == self.stall_on else attempt)

    def improve(self, problem, attempt, feedback):
        from tripost.teachers.base import ImproveReply

        return ImproveReply(rationale=next(self.fixes))


def test_an_edit_without_progress_that_still_ends_right_keeps_only_the_critique():
    import random

    from tripost.sources.teacher import edit_trajectory

    task = get_task("arithmetic")
    problem = sample_problems(task, split="train", subset="seen", preset="small", n=1, seed=5)[0]
    first = task.wrong_attempt(problem, 1, random.Random(1))
    again = next(w for k in range(2, 50) if (w := task.wrong_attempt(problem, 1, random.Random(k))) != first)
    turns, kind, stop, _ = edit_trajectory(problem, first, _StallingTeacher([again, problem.rationale], stall_on=again, same_as=first), max_edits=4)
    assert kind == "critique" and len(turns) == 1 and turns[0]["rationale"] == first and "step (1)" in turns[0]["feedback"]
    rec = LogRecord(key="p#0@1", kind=kind, turns=turns, final_correct=False, stop_reason=stop, iteration=1, problem=problem.to_dict())
    examples, _ = build_buffer([rec], BufferConfig(include_gold=False))
    assert [(e.kind, e.weighted_feedback) for e in examples] == [("direct", True)]
    assert examples[0].completion.startswith(first + "\nFeedback: ") and "Updated Answer" not in examples[0].completion
    # The same edit making progress is an improvement, as before.
    turns, kind, _, _ = edit_trajectory(problem, first, _StallingTeacher([problem.rationale]), max_edits=4)
    assert kind == "improvement" and len(turns) == 2
