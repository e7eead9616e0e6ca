"""Interaction log durability and replay-buffer composition."""

import json
from collections import Counter

import pytest

from tripost.buffer import BufferConfig, build_buffer, save_buffer, to_dataset
from tripost.errors import InputError, TripostError
from tripost.log import SKIP_HINT, LogRecord, LogWriter, read_log


def record(i, kind="improvement", difficulty="2", iteration=0, family="arithmetic", correct=True, text=None):
    q = f"({i} + 1) ="
    gold = f"(1) {i} + 1 = {i + 1}.\n(Final response) So the answer is {i + 1}."
    wrong = f"(1) {i} + 1 = {i + 2}.\n(Final response) So the answer is {i + 2}."
    turns = [{"rationale": text or gold, "feedback": None}] if kind == "direct" else [
        {"rationale": wrong, "feedback": f'In step (1) the part "{i} + 1 = {i + 2}" is incorrect. This is because {i} + 1 = {i + 1}.'},
        {"rationale": gold, "feedback": None},
    ]
    return LogRecord(
        key=f"p{i}#0@{iteration}", kind=kind if correct else "failed", turns=turns, final_correct=correct,
        stop_reason="correct" if correct else "max_edits", iteration=iteration,
        problem={"id": f"p{i}", "family": family, "question": q, "answer": str(i + 1), "rationale": gold, "difficulty": difficulty, "subset": "seen"},
    )


def test_writer_appends_flushes_and_resumes(tmp_path):
    path = tmp_path / "log.jsonl"
    with LogWriter(path) as w:
        for i in range(3):
            w.write(record(i))
    # A crash mid-write leaves a torn last line; reopening cuts it off.
    with path.open("a") as f:
        f.write('{"key": "p9#0@0", "problem": {')
    w = LogWriter(path)
    assert w.n_records == 3 and w.done("p1#0@0") and not w.done("p9#0@0")
    w.write(record(9))
    with pytest.raises(TripostError, match="written twice"):
        w.write(record(9))
    w.close()
    keys = [r.key for r in read_log(path)]
    assert keys == ["p0#0@0", "p1#0@0", "p2#0@0", "p9#0@0"]


def test_corrupt_line_names_file_and_line_unless_skipped(tmp_path):
    path = tmp_path / "log.jsonl"
    lines = [record(0).to_json(), "{broken", record(1).to_json(), json.dumps({"key": "x"})]
    path.write_text("\n".join(lines) + "\n")
    # Only a reader that has --skip-bad-lines (buffer, replay) may offer it.
    with pytest.raises(InputError, match=r"log.jsonl:2: corrupt log line .*--skip-bad-lines"):
        list(read_log(path, hint=SKIP_HINT))
    with pytest.raises(InputError, match=r"log.jsonl:2: corrupt log line .*repair or delete this line") as err:
        list(read_log(path))
    assert "--skip-bad-lines" not in str(err.value)
    bad: list[int] = []
    assert [r.key for r in read_log(path, skip_bad_lines=True, bad=bad)] == ["p0#0@0", "p1#0@0"]
    assert bad == [2, 4]


def test_buffer_ratio_and_kinds():
    recs = [record(i, "improvement") for i in range(30)] + [record(100 + i, "direct") for i in range(60)] + [record(200 + i, correct=False) for i in range(5)]
    examples, stats = build_buffer(recs, BufferConfig(seed=1, turns="whole"))
    kinds = Counter(e.kind for e in examples)
    # Every improvement kept; ceil(30 / 1.5) non-improvement; as many gold: 30 : 20 : 20.
    assert kinds == {"improvement": 30, "direct": 20, "gold": 20}
    assert stats.dropped["not correct"] == 5
    imp = next(e for e in examples if e.kind == "improvement")
    assert "\nFeedback: " in imp.completion and "\nUpdated Answer: " in imp.completion
    assert imp.completion.rstrip().endswith("The final response is also correct.")
    ds = to_dataset(examples)
    assert ds.num_rows == 70 and set(ds.column_names) >= {"prompt", "completion", "kind", "difficulty", "weight"}


@pytest.mark.parametrize("ratio", [(1, 1, 0), (2, 1, 1), (1, 0, 1)])
def test_buffer_ratio_holds_within_rounding(ratio):
    recs = [record(i, "improvement") for i in range(40)] + [record(100 + i, "direct") for i in range(50)]
    examples, _ = build_buffer(recs, BufferConfig(ratio=ratio, seed=2, turns="whole"))
    kinds = Counter(e.kind for e in examples)
    total = sum(kinds.values())
    for k, r in zip(("improvement", "direct", "gold"), ratio):
        assert abs(kinds[k] - total * r / sum(ratio)) <= 1


def test_dedupe_and_length_limit():
    recs = [record(1, "direct"), record(1, "direct"), record(2, "direct", text="(1) " + "x" * 5000 + "\n(Final response) So the answer is 3.")]
    recs[1].key = "dup"
    examples, stats = build_buffer(recs, BufferConfig(ratio=(0, 1, 0), max_chars=2000, include_gold=False))
    assert len(examples) == 1 and stats.dropped["duplicate"] == 1 and stats.dropped["too long"] == 1


def test_a_right_attempt_ends_with_its_verdict_unless_told_not_to():
    (with_verdict,), _ = build_buffer([record(1, "direct")], BufferConfig(ratio=(0, 1, 0), include_gold=False))
    (alone,), _ = build_buffer([record(1, "direct")], BufferConfig(ratio=(0, 1, 0), include_gold=False, verdict=False))
    assert alone.completion == "(1) 1 + 1 = 2.\n(Final response) So the answer is 2."  # GSI's: the sampled rationale alone
    assert with_verdict.completion.startswith(alone.completion + "\nFeedback:") and "correct" in with_verdict.completion


def test_tripost_buffer_no_verdict_trains_the_attempt_alone(tmp_path):
    import datasets

    from tripost.cli import main

    with LogWriter(tmp_path / "log.jsonl") as w:
        w.write(record(1, "direct"))
    for flags, has_verdict in (([], True), (["--no-verdict"], False)):
        out = tmp_path / ("alone" if flags else "verdict")
        assert main(["buffer", str(tmp_path / "log.jsonl"), "--out", str(out), "--no-gold", *flags]) == 0
        (completion,) = datasets.load_from_disk(str(out / "dataset"))["completion"]
        assert ("Feedback:" in completion) is has_verdict


def test_difficulty_aware_mode_raises_hard_share_on_skewed_pool():
    # 90% easy, 10% hard direct examples; the buffer keeps 1 in 3 of them.
    recs = [record(i, "improvement", "easy") for i in range(20)]
    recs += [record(100 + i, "direct", "easy" if i < 180 else "hard") for i in range(200)]
    share = {}
    for mode in ("plain", "inverse", "cap"):
        examples, stats = build_buffer(recs, BufferConfig(ratio=(1.5, 1, 0), difficulty_mode=mode, bucket_cap=0.5, seed=3))
        direct = [e for e in examples if e.kind == "direct"]
        share[mode] = sum(e.difficulty == "hard" for e in direct) / len(direct)
        assert stats.difficulty["pool"] and stats.difficulty["buffer"]
    assert share["inverse"] > share["plain"] and share["cap"] > share["plain"]


def test_retention_keep_last_and_decay_are_deterministic():
    recs = [record(i, "direct", iteration=it) for it in range(4) for i in range(it * 100, it * 100 + 50)]
    ex, stats = build_buffer(recs, BufferConfig(keep_last=2, ratio=(0, 1, 0)))
    assert {e.iteration for e in ex} == {2, 3} and stats.retained == 100
    a, _ = build_buffer(recs, BufferConfig(decay=0.5, keep_last=None, ratio=(0, 1, 0), seed=4))
    b, _ = build_buffer(recs, BufferConfig(decay=0.5, keep_last=None, ratio=(0, 1, 0), seed=4))
    assert [e.problem_id for e in a] == [e.problem_id for e in b]
    per_iter = Counter(e.iteration for e in a)
    assert per_iter[3] == 50 and per_iter[0] < per_iter[2]


def test_bad_buffer_config_is_clear():
    with pytest.raises(TripostError, match="ratio"):
        BufferConfig(ratio=(0, 0, 0))
    with pytest.raises(TripostError, match="difficulty mode"):
        BufferConfig(difficulty_mode="hard-first")


def test_save_buffer_writes_arrow_and_stats(tmp_path):
    import datasets

    examples, stats = build_buffer([record(i) for i in range(4)] + [record(10 + i, "direct") for i in range(4)])
    out = save_buffer(examples, stats, tmp_path / "buf")
    ds = datasets.load_from_disk(str(out / "dataset"))
    assert ds.num_rows == len(examples)
    assert json.loads((out / "stats.json").read_text())["by_kind_after"]["improvement"] == 4


def test_every_improvement_is_kept_however_rarely_the_student_is_right():
    # A student that is right once: 1 direct, 40 improvement records. The old
    # rule scaled improvements down to the right-at-first examples; the
    # authors' keeps all of them (tests/test_faithful.py has the rule itself).
    recs = [record(i, "improvement") for i in range(40)] + [record(100, "direct")]
    for turns in ("single", "whole"):
        examples, stats = build_buffer(recs, BufferConfig(ratio=(1.5, 1, 1), seed=1, turns=turns))
        kinds = Counter(e.kind for e in examples)
        assert kinds["improvement"] == 40
        assert kinds["direct"] <= -(-40 // 1.5) and kinds["gold"] <= kinds["direct"]
