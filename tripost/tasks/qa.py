"""Free-form question answering with a gold final answer (e.g. GSM8K-style files).

Only the final answer is checked: there is no step checker that could tell
which step of free text is wrong, so feedback always concerns the final
response, and the scripted teacher cannot write improvements for this family
(an LLM teacher can: see tripost/teachers).
"""

from __future__ import annotations

import random
import re
from typing import Any

from tripost.errors import TripostError
from tripost.format import parse_final_answer, parse_rationale
from tripost.tasks.base import Problem, StepCheck
from tripost.tasks.external import check_record, record_difficulty, record_id, record_options, record_split, record_subset

_NUMBER_RE = re.compile(r"^[-+]?\$?\d[\d,]*(\.\d+)?%?$")


def normalise(answer: str) -> str:
    """Case, surrounding punctuation, thousands separators and currency signs
    do not matter; numbers compare by value ("1,000.0" == "1000")."""
    a = answer.strip().strip(".").strip()
    a = re.sub(r"\s+", " ", a).lower()
    if _NUMBER_RE.match(a):
        a = a.replace(",", "").replace("$", "").rstrip("%")
        try:
            value = float(a)
        except ValueError:
            return a
        return str(int(value)) if value == int(value) else repr(value)
    return a


class QATask:
    name = "qa"
    scripted = False

    def levels(self, preset: str, subset: str) -> list[str]:
        return []

    def generate(self, rng: random.Random, level: str) -> Problem:
        raise TripostError("the qa family has no generator: load problems with --data FILE.jsonl")

    def from_record(self, record: dict[str, Any]) -> Problem:
        # Types and sizes first: a wrong type is one clear error, never a traceback.
        check_record(record)
        question, answer = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise TripostError("field 'question' must be a non-empty string")
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            answer = str(answer)
        if not isinstance(answer, str) or not answer.strip():
            raise TripostError("field 'answer' must be a non-empty string or a number")
        # GSM8K writes its gold answer as "... #### 72": keep the part after ####.
        if "####" in answer:
            answer = answer.rsplit("####", 1)[1]
            if not answer.strip():
                raise TripostError("field 'answer' has nothing after '####'")
        question = question.strip()
        # Id, split and subset by the rule of the generated families (tasks.family).
        return Problem(
            id=record_id(record, self.name, question),
            family=self.name,
            question=question,
            answer=answer.strip(),
            rationale=record.get("rationale") or "",
            difficulty=record_difficulty(record, "external"),
            subset=record_subset(record),
            split=record_split(record, question),
            options=record_options(record),
        )

    def parse_answer(self, text: str) -> str | None:
        if text is None:
            return None
        parsed = parse_rationale(text)
        if parsed.final is not None:
            answer = parse_final_answer(parsed.final)
        elif "\n" in text.strip() or "answer is" in text.lower():
            answer = parse_final_answer(text)
        else:
            answer = text.strip() or None
        return normalise(answer) if answer else None

    def check_answer(self, problem: Problem, answer: str | None) -> bool:
        return answer is not None and normalise(answer) == normalise(problem.answer)

    def check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        parsed = parse_rationale(rationale)
        answer = self.parse_answer(rationale)
        n = parsed.n_steps
        if self.check_answer(problem, answer):
            return StepCheck(correct=True, first_error_step=None, n_steps=n, answer=answer)
        if parsed.final is None:
            segment = parsed.steps[-1] if parsed.steps else rationale.strip()[:80]
            return StepCheck(False, n + 1, segment[:80], "the final response is missing", n, None)
        return StepCheck(False, n + 1, parsed.final, "the final answer does not match the gold answer", n, answer)

    def continue_rationale(self, problem: Problem, kept_steps: list[str]) -> tuple[list[str], str]:
        raise TripostError("the scripted teacher cannot improve qa problems: use an LLM teacher")

    def corrupt(self, problem: Problem, step: int, rng: random.Random) -> str:
        raise TripostError("qa problems have no structured rationale to corrupt")

    def wrong_attempt(self, problem: Problem, step: int, rng: random.Random) -> str:
        raise TripostError("qa problems have no structured rationale to corrupt")
