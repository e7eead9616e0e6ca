"""Logical deduction: BIG-bench's ordering puzzles over N objects.

    The following paragraphs each describe a set of three objects arranged in a
    fixed order. The statements are logically consistent within each paragraph.
    On a shelf, there are three books: a white book, a green book, and an orange
    book. The green book is to the right of the white book. The orange book is
    the rightmost.
    Options:
    (A) The white book is the leftmost
    ...

TriPosT evaluated on this task with 3 and 5 objects seen and 7 unseen (Yu et
al. 2024, Section 4.1). Difficulty = the number of objects.

Every puzzle has exactly one solution. Orders of N objects are the N!
permutations (5040 for N = 7); a set of orders is a Python int used as a
bitset over them, so "the clues allow exactly one order" and "these premises
entail that X is third" are a few big-int ANDs (`_Space`).

The gold rationale is a chain of deductions. Each step quotes the clues it
uses and claims positions that those clues and the claims of earlier steps
force; then the full order, then the true option:

    (1) "The orange book is the rightmost", so the orange book is third from the left.
    (2) "The green book is to the right of the white book", so the white book is first from the left and the green book is second from the left.
    (3) The order from left to right is: white book, green book, orange book.
    (4) Option (A) says the white book is the leftmost, which is true.
    (Final response) So the answer is (A).

The step checker reads any text the same way: a quoted sentence must be one
of the puzzle's statements (in any equivalent wording); every unquoted claim
("X is second from the left", "X is not the oldest", "X is to the left of Y")
must be true and must follow from the quoted statements, the restated clues
and what earlier steps claimed. Claims are facts from then on; quotes are
citations for their own step only. So any valid order of deductions passes,
and a guess that happens to be right is still flagged as not following.

Modules: `scenes` (settings and wording), `space` (orders as bitsets),
`reader` (statements and claims), `puzzle` (one puzzle, questions),
`check` (the step checker), `answers`, `generate`, `corrupt`; the family
itself is here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

from tripost.errors import TripostError
from tripost.format import Rationale, final_line, parse_final_answer, parse_rationale, render_rationale
from tripost.tasks.base import Problem, StepCheck
from tripost.tasks.external import record_difficulty
from tripost.tasks.family import FORM_REASON, GeneratedFamily, first_wrong_step, text_field
from tripost.tasks.logical_deduction.answers import ANSWER_IS_RE, letter_of, normalise, text_key
from tripost.tasks.logical_deduction.check import Checker, State, snippet
from tripost.tasks.logical_deduction.corrupt import wrong_runs, wrong_steps
from tripost.tasks.logical_deduction.generate import FAMILY, generate_problem
from tripost.tasks.logical_deduction.puzzle import Puzzle, parse_question
from tripost.tasks.logical_deduction.scenes import LETTERS, PREAMBLE, lower_the

LEVELS = {
    # paper: TriPosT's split (seen 3 and 5 objects, unseen 7).
    "paper": {"seen": ["3", "5"], "unseen": ["7"]},
    # small: for a 135M student, short puzzles and rationales of 3-6 steps.
    "small": {"seen": ["3"], "unseen": ["4"]},
}


class LogicalDeductionTask(GeneratedFamily):
    """Order three to seven objects from clues (BIG-bench's logical_deduction)."""

    name = FAMILY
    LEVELS = LEVELS

    def generate(self, rng: random.Random, level: str) -> Problem:
        return generate_problem(rng, level)

    # -- external records ------------------------------------------------------
    def _read_record(self, record: dict[str, Any], question: str) -> Problem:
        answer = text_field(record, "answer", self.name, ' like "(A)"')
        pz, parsed_options = parse_question(question)
        options: tuple[str, ...] = parsed_options
        extra = record.get("options")
        if extra is not None:
            if not isinstance(extra, list) or not all(isinstance(o, str) for o in extra):
                raise TripostError("logical_deduction record: field 'options' must be a list of strings")
            given = tuple(re.sub(r"^\([A-Z]\)\s*", "", " ".join(o.split())) for o in extra)
            if options and given != options:
                pz = None  # the question and the record disagree: trust the record
            options = given
        letter = letter_of(answer, options)
        if options:
            if letter is None or LETTERS.index(letter[1]) >= len(options):
                raise TripostError(f"logical_deduction record: answer {answer.strip()!r} is not one of the {len(options)} options")
            answer = letter
        else:
            answer = normalise(answer) or answer.strip()
        if pz is not None and f"({LETTERS[pz.answer_index]})" != answer:
            pz = None  # the record's gold answer wins; check only the final answer
        rationale = record.get("rationale")
        if not isinstance(rationale, str):
            rationale = render_rationale(Checker(pz).finish(State(pz.space.full)), answer) if pz else ""
        default_difficulty = str(pz.n) if pz else str(len(options) or "external")
        return Problem(
            id="",
            family=FAMILY,
            question=question,
            answer=answer,
            rationale=rationale,
            difficulty=record_difficulty(record, default_difficulty),
            options=options,
            meta=pz.to_meta() if pz else {},
        )

    # -- answers ---------------------------------------------------------------
    def parse_answer(self, text: str) -> str | None:
        if not isinstance(text, str):
            return None
        try:
            parsed = parse_rationale(text)
        except ValueError:
            return None
        if parsed.final is not None:
            return normalise(parse_final_answer(parsed.final))
        if parsed.steps:
            return None
        m = ANSWER_IS_RE.search(text)
        return normalise(m.group(1).strip().rstrip(".") if m else text)

    def check_answer(self, problem: Problem, answer: str | None) -> bool:
        a = self.parse_answer(answer) if isinstance(answer, str) else None
        if a is None:
            return False
        la, lg = letter_of(a, problem.options), letter_of(problem.answer, problem.options)
        if la is not None and lg is not None:
            return la == lg
        return text_key(a) == text_key(problem.answer)

    # -- step checking -----------------------------------------------------------
    def _check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        text = rationale if isinstance(rationale, str) else ""
        try:
            parsed = parse_rationale(text)
        except ValueError:  # a step number too long for int()
            return StepCheck(False, 1, "", FORM_REASON, 0, None)
        n = parsed.n_steps
        answer = normalise(parse_final_answer(parsed.final)) if parsed.final is not None else None
        correct = self.check_answer(problem, answer)

        def result(step: int | None, segment: str = "", reason: str = "") -> StepCheck:
            return StepCheck(correct, step, segment, reason, n, answer)

        final_seg = (parse_final_answer(parsed.final) or snippet(parsed.final)) if parsed.final is not None else ""
        pz = _puzzle(problem)
        if pz is None:  # an external record: only the final answer can be checked
            if correct:
                return result(None)
            if parsed.final is None:
                return result(n + 1, "", "the final response is missing")
            return result(n + 1, final_seg, f"the correct answer is {problem.answer}")
        if n == 0:
            return result(1, final_seg or snippet(text), "there are no numbered reasoning steps before the answer")
        checker = Checker(pz)
        st = State(pz.space.full)
        wrong = first_wrong_step(parsed, lambda step: checker.step(step, st), lambda step: snippet(step, 40))
        if wrong is not None:
            return result(wrong[0], wrong[1].segment, wrong[1].reason)
        if parsed.final is None:
            return result(n + 1, "", "the final response is missing")
        if answer is None:
            return result(n + 1, final_seg, 'the final response should say "So the answer is (X)."')
        letter = letter_of(answer, problem.options)
        if not correct:
            if letter is None or LETTERS.index(letter[1]) >= len(pz.options):
                return result(n + 1, final_seg, f"the options only go from (A) to ({LETTERS[len(pz.options) - 1]})")
            i = LETTERS.index(letter[1])
            o = pz.options[i][0]
            return result(n + 1, final_seg, f"option {letter} is false: in fact {pz.claim_text(o, pz.solution[o])}")
        o, p = pz.options[pz.answer_index]
        rest = st.orders & (pz.space.full ^ pz.space.at[o][p])
        if rest:
            return result(n + 1, final_seg, f"the steps above do not show that {lower_the(pz.option_texts[pz.answer_index])}")
        return result(None)

    # -- the scripted teacher's continuation ---------------------------------------
    def continue_rationale(self, problem: Problem, kept_steps: list[str]) -> tuple[list[str], str]:
        pz = _puzzle(problem)
        if pz is None:
            raise TripostError(
                f"logical_deduction problem {problem.id or '(no id)'} has no parsed puzzle; "
                "the scripted teacher can only check its final answer"
            )
        checker = Checker(pz)
        st = State(pz.space.full)
        for step in kept_steps:
            # Kept steps are the correct prefix of an attempt; should one be
            # wrong anyway, carry on from what the right ones established.
            if checker.step(step, st) is not None:
                break
        return checker.finish(st), f"({LETTERS[pz.answer_index]})"

    # -- corruption (tests and demos) ------------------------------------------------
    def corrupt(self, problem: Problem, step: int, rng: random.Random) -> str:
        if _puzzle(problem) is None:
            raise TripostError("logical_deduction: only problems with a parsed puzzle can be corrupted")
        return super().corrupt(problem, step, rng)

    def _wrong_finals(self, problem: Problem, parsed: Rationale, rng: random.Random) -> list[str]:
        pz = _puzzle(problem)
        assert pz is not None  # corrupt() checked
        wrong = [f"({LETTERS[i]})" for i in range(len(pz.options)) if i != pz.answer_index]
        rng.shuffle(wrong)
        return [final_line(ans) for ans in wrong] + ["(Final response) I do not know."]

    def _wrong_steps(self, problem: Problem, parsed: Rationale, step: int, rng: random.Random) -> list[str]:
        pz = _puzzle(problem)
        assert pz is not None  # corrupt() checked
        return wrong_steps(pz, parsed.steps[step - 1], rng) + ["The answer must be obvious."]

    def wrong_attempt(self, problem: Problem, step: int, rng: random.Random) -> str:
        if _puzzle(problem) is None:
            raise TripostError("logical_deduction: only problems with a parsed puzzle can be corrupted")
        return super().wrong_attempt(problem, step, rng)

    def _wrong_runs(self, problem: Problem, parsed: Rationale, step: int, rng: random.Random) -> Iterator[tuple[list[str], str]]:
        # A wrong belief about the order from `step` on, carried to the
        # option it makes true (corrupt.wrong_runs); over the gold steps only.
        pz = _puzzle(problem)
        assert pz is not None  # wrong_attempt() checked
        return wrong_runs(pz, parsed.steps, step, rng)


def _puzzle(problem: Problem) -> Puzzle | None:
    """The problem's puzzle (None for an external record whose question did not parse)."""
    return Puzzle.from_meta(problem.meta, problem.options) if problem.meta else None


__all__ = ["PREAMBLE", "LogicalDeductionTask", "parse_question"]
