"""Word sorting, after BIG-bench's `word_sorting` task.

    Sort the following words alphabetically: List: oven costume counterpart

The gold rationale is the bucket sort of Suzgun et al.'s chain-of-thought
prompt for this task (the one TriPosT starts from, Yu et al. 2024, Table 1):
group the words by their first letter, then sort every group of two or more
different words by the next letter, until every group is settled.

    (1) The first letter: "oven"="o" (15), "costume"="c" (3), "counterpart"="c" (3).
    (2) We now have: (3) ["costume" ? "counterpart"] < (15) "oven".
    (3) Now sort this subpart ["costume" ? "counterpart"] by looking at their second letters: "costume"="o" (15), "counterpart"="o" (15).
    (4) We now have: (15) ["costume" ? "counterpart"].
    (5) Now sort this subpart ["costume" ? "counterpart"] by looking at their third letters: "costume"="s" (19), "counterpart"="u" (21).
    (6) We now have: (19) "costume" < (21) "counterpart".
    (7) Hence, we have "costume" < "counterpart" < "oven".
    (Final response) So the answer is costume counterpart oven.

A word that has run out of letters shows as `"car"="" (0)`, so a prefix
comes first ("car" < "card"). Identical words (possible in external files)
form a settled group written `["car" = "car"]`.

Real word lists hold more than letters (`shouldn't`, `o'connell`, `ph.d`), so
an external word is any token without whitespace or a double quote (the
rationale quotes words with it). The order is plain string order, Python's
`sorted`, as the BIG-bench benchmark's answers use: characters compare by
code point. The number after a character counts from "a" by code point, so
a-z keep 1-26, an apostrophe is -57 and a period -50; a missing letter stays
0 and still comes first ("it" < "it's"). The order of a split is judged on
the characters themselves, the numbers only name them.

The `small` preset (for the 135M student) uses fewer, more common words and
a shorter variant of the same procedure: a subpart is sorted at once by the
first letter at which its words differ, skipping letters they all share.

The step checker replays the procedure as a state machine (the groups known
so far, in order, and which of them still hold different words) and judges
each step's claims against it: letters and their alphabet positions, the
grouping and order of a split, and the final order. Subparts may be sorted in
any order and a subpart may skip letters its words share, so alternative
correct rationales pass; `continue_rationale` replays kept steps the same way
and finishes from the state they reached.

Modules: `words` (the list, letters, questions), `answers` (reading an
answer), `render` (step texts), `check` (the state machine), `corrupt`
(mistakes for `corrupt`); the family itself is here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from tripost.errors import TripostError
from tripost.format import Rationale, final_line, parse_final_answer, parse_rationale, render_rationale
from tripost.tasks.base import Problem, StepCheck
from tripost.tasks.external import MAX_RATIONALE_CHARS, record_difficulty, record_options
from tripost.tasks.family import FORM_REASON, GeneratedFamily, clip, first_wrong_step, text_field
from tripost.tasks.word_sorting.answers import Vocab, answer_words, normalise
from tripost.tasks.word_sorting.check import Checker, head
from tripost.tasks.word_sorting.corrupt import wrong_answers, wrong_runs, wrong_steps
from tripost.tasks.word_sorting.words import (
    MAX_WORDS,
    QUESTION_PREFIX,
    easy_words,
    is_word,
    letter_at,
    letter_value,
    ordinal,
    parse_question,
    word_list,
)

# Difficulty = number of words. TriPosT (Yu et al. 2024, Sec. 4.1) trains on
# 1-7 words and tests generalisation on 8+; the `-easy` levels of the small
# preset draw common short words and use the shorter rationale variant.
LEVELS = {
    "paper": {"seen": ["1", "2", "3", "4", "5", "6", "7"], "unseen": ["8", "9", "10", "11", "12"]},
    "small": {"seen": ["2-easy", "3-easy"], "unseen": ["4-easy", "5-easy"]},
}


class WordSortingTask(GeneratedFamily):
    """Sort a list of words alphabetically (BIG-bench's word_sorting)."""

    name = "word_sorting"
    LEVELS = LEVELS

    # -- problems ---------------------------------------------------------------

    def generate(self, rng: random.Random, level: str) -> Problem:
        n, easy = _parse_level(level)
        pool = easy_words() if easy else word_list()
        words = rng.sample(pool, n)
        return self._problem(words, level, skip=easy)

    def _problem(self, words: list[str], difficulty: str, skip: bool, rationale: str | None = None) -> Problem:
        ordered = sorted(words)
        answer = " ".join(ordered)
        if rationale is None:
            steps = Checker(words).finish(skip)
            rationale = render_rationale(steps, answer)
        return Problem(
            id="",
            family=self.name,
            question=f"{QUESTION_PREFIX} {' '.join(words)}",
            answer=answer,
            rationale=rationale,
            difficulty=difficulty,
            meta={"words": list(words), "sorted": ordered, "variant": "skip" if skip else "full"},
        )

    def _read_record(self, record: dict[str, Any], question: str) -> Problem:
        answer = text_field(record, "answer", self.name)
        words = parse_question(question)
        gold = " ".join(sorted(words))
        vocab = Vocab.of(words)
        if answer_words(answer, vocab) != answer_words(gold, vocab):  # read both alike, as check_answer does
            raise TripostError(
                f"word_sorting record: answer {clip(answer.strip())!r} is not the list in alphabetical order ({clip(gold)!r})"
            )
        difficulty = record_difficulty(record, str(len(words)))
        p = self._problem(words, difficulty, skip=False)
        if len(p.rationale) > MAX_RATIONALE_CHARS:
            # Long words that share long prefixes are read letter by letter.
            raise TripostError(
                f"word_sorting record: the step-by-step rationale for this list is {len(p.rationale):,} characters long, "
                f"more than the {MAX_RATIONALE_CHARS:,} accepted"
            )
        given_rationale = record.get("rationale")
        if isinstance(given_rationale, str) and given_rationale.strip():
            # Keep the file's own rationale when it is right; otherwise the generated gold one.
            if self.check_steps(p, given_rationale).all_correct:
                p = self._problem(words, difficulty, skip=False, rationale=given_rationale)
        return replace(p, options=record_options(record))

    # -- answers ------------------------------------------------------------------

    def parse_answer(self, text: str) -> str | None:
        if not isinstance(text, str) or not text.strip():
            return None
        try:
            parsed = parse_rationale(text)
        except (ValueError, OverflowError):
            return None
        if parsed.final is not None:
            answer = parse_final_answer(parsed.final)
            return normalise(answer) if answer else None
        if parsed.steps:
            return None  # a rationale that never reached its final response
        m = re.search(r"the answer is\s*(.*)$", text, re.IGNORECASE | re.DOTALL)
        # One period ends the sentence, as parse_final_answer drops it: a
        # second one may belong to the last word ("... ph.d..").
        return normalise(re.sub(r"\.\s*$", "", m.group(1) if m else text))

    def check_answer(self, problem: Problem, answer: str | None) -> bool:
        if answer is None:
            return False
        # Read against the gold words, so that "ph.d" and "ph.d." stay apart.
        vocab = Vocab.of(problem.answer.lower().split())
        gold = answer_words(problem.answer, vocab)
        return bool(gold) and answer_words(answer, vocab) == gold

    # -- steps --------------------------------------------------------------------

    def _check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        text = rationale if isinstance(rationale, str) else ""
        try:
            parsed = parse_rationale(text)
        except ValueError:  # e.g. a step number too long for int()
            return StepCheck(False, 1, "", FORM_REASON, 0, None)
        n = parsed.n_steps
        answer = None
        if parsed.final is not None:
            raw = parse_final_answer(parsed.final)
            answer = normalise(raw) if raw else None
        correct = self.check_answer(problem, answer)

        def result(step: int | None, segment: str = "", reason: str = "") -> StepCheck:
            return StepCheck(correct, step, segment, reason, n, answer)

        checker = Checker(_words_of(problem))
        wrong = first_wrong_step(parsed, checker.step, head)
        if wrong is not None:
            return result(wrong[0], wrong[1].segment, wrong[1].reason)
        if parsed.final is None:
            return result(n + 1, "", "the final response is missing")
        final_seg = parse_final_answer(parsed.final) or head(parsed.final)
        if answer is None:
            return result(n + 1, head(parsed.final), 'the final response should say "So the answer is ..."')
        if not correct:
            return result(n + 1, final_seg, f'the words in alphabetical order are "{problem.answer}"')
        unfinished = checker.unfinished_reason()
        if unfinished:
            return result(n + 1, final_seg, unfinished)
        return result(None)

    def continue_rationale(self, problem: Problem, kept_steps: list[str]) -> tuple[list[str], str]:
        checker = Checker(_words_of(problem))
        for step in kept_steps:
            # Kept steps are the correct prefix of an attempt; should one be
            # wrong anyway (feedback from elsewhere), carry on from the state
            # the right ones reached.
            if checker.step(step) is not None:
                break
        skip = isinstance(problem.meta, dict) and problem.meta.get("variant") == "skip"
        return checker.finish(skip), problem.answer

    # -- corruption -----------------------------------------------------------------

    def _wrong_finals(self, problem: Problem, parsed: Rationale, rng: random.Random) -> list[str]:
        return [final_line(ans) for ans in wrong_answers(problem, rng)] + [final_line("unknown")]

    def _wrong_steps(self, problem: Problem, parsed: Rationale, step: int, rng: random.Random) -> list[str]:
        return wrong_steps(parsed.steps[step - 1], problem, rng) + ["I am not sure what comes next."]

    def _wrong_runs(self, problem: Problem, parsed: Rationale, step: int, rng: random.Random) -> Iterator[tuple[list[str], str]]:
        # The procedure replayed over the gold steps before `step`, then run on
        # with a letter misread (or words swapped, or a word copied wrong) in
        # `step` and carried to the answer (corrupt.wrong_runs).
        skip = isinstance(problem.meta, dict) and problem.meta.get("variant") == "skip"
        return wrong_runs(_words_of(problem), parsed.steps[: step - 1], skip, rng)


def _parse_level(level: str) -> tuple[int, bool]:
    m = re.fullmatch(r"(\d{1,3})(-easy)?", str(level))
    if not m or not 1 <= int(m.group(1)) <= MAX_WORDS:
        raise TripostError(f"word_sorting: unknown level {level!r} (expected e.g. '3' or '3-easy')")
    return int(m.group(1)), bool(m.group(2))



def _words_of(problem: Problem) -> list[str]:
    words = problem.meta.get("words") if isinstance(problem.meta, dict) else None
    if isinstance(words, list) and words and all(is_word(w) for w in words):
        return list(words)
    return parse_question(problem.question)


__all__ = [
    "QUESTION_PREFIX",
    "WordSortingTask",
    "letter_at",
    "letter_value",
    "ordinal",
    "parse_question",
    "word_list",
]
