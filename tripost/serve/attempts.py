"""How `tripost serve-teacher` answers an attempt request without an LLM.

An attempt request (the prompted teacher's `attempt`: tripost.teachers.base,
`AttemptingTeacher`) asks the teacher to solve a problem itself, sampled at a
temperature. A served teacher that can attempt (a replay log with recorded
attempts) answers it; the scripted teacher cannot (it has no attempt call),
so for it the server plays a sampler over the problem's family instead:

- the attempt is the gold rationale (right) or the family's wrong attempt
  (`Task.wrong_attempt`: a mistake at a drawn step carried on to a wrong
  answer), each drawn with probability `RIGHT_SHARE`;
- the draw is seeded by (the server's fault seed, the problem, the
  request's sample number): the same request gets the same answer, and
  another sample another draw, as a sampling LLM's would differ. At
  temperature 0 the sample number is ignored: a greedy answer does not
  change from one request to the next.

It needs the gold, which an attempt's request block holds only when the
client asks for it (`PromptedTeacher.attempt_gold`; an LLM must not see the
answer it is to find): without it the request is refused, 400, saying so.
Families with no gold rationale to work from (qa) are refused likewise, 422.
"""

from __future__ import annotations

import random
from typing import Any

from tripost.errors import TripostError
from tripost.format import parse_rationale
from tripost.serve.failures import HTTPFailure
from tripost.tasks import get_task
from tripost.teachers.base import attempting
from tripost.teachers.templates import BlockRequest

# The share of right attempts the scripted sampler writes: both kinds are
# common, as with an LLM at temperature 1.0 on these tasks.
RIGHT_SHARE = 0.5


def answer_attempt(teacher: Any, block: BlockRequest, temperature: float, seed: int = 0) -> str:
    """The text answering an attempt request `block` for a served teacher
    that is not an LLM (see the module docstring); HTTPFailure when it cannot."""
    own = attempting(teacher)
    if own is not None:
        reply = own.attempt(block.problem, sample=block.sample, temperature=temperature)
        return reply.rationale or ""
    problem = block.problem
    if not block.gold:
        # Under 200 characters: what a client's error line quotes of it (tripost.teachers.retry).
        raise HTTPFailure(
            400,
            f"the {getattr(teacher, 'name', 'scripted')} teacher writes an attempt from the problem's gold, which this request "
            "does not hold (an LLM must not see it): send it with PromptedTeacher.attempt_gold=True",
        )
    task = get_task(problem.family)
    if not task.scripted or not problem.rationale.strip():
        raise HTTPFailure(422, f"the {getattr(teacher, 'name', 'scripted')} teacher writes attempts only for problems of the "
                               f"generated families with a gold rationale, not {problem.family!r} problem {problem.id!r}")
    draw = block.sample if temperature > 0 else 0
    rng = random.Random(f"serve-attempt|{seed}|{problem.id}|{draw}")
    if rng.random() < RIGHT_SHARE:
        return problem.rationale
    n = parse_rationale(problem.rationale).n_steps
    try:
        return task.wrong_attempt(problem, rng.randint(1, n + 1), rng)
    except TripostError as e:
        raise HTTPFailure(422, str(e)) from None


__all__ = ["RIGHT_SHARE", "answer_attempt"]
