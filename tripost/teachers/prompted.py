"""The prompted teacher: one `Teacher` for every LLM backend.

It writes the feedback and improve prompts (templates.py), sends them
through a `Requester` (cache, retries, concurrency, ledger) to a
`ChatBackend`, and parses and validates what comes back. An LLM answer is
only used when it is well-formed (TriPosT, Yu et al. 2024, Section 2.1: the
teacher edits the student's attempt from the first wrong step on):

feedback   parses as a TriPosT feedback sentence, names a step that exists,
           and quotes a segment that occurs in the attempt;
improve    keeps the steps before the wrong one verbatim, parses as a full
           rationale with a final answer, and changes the wrong step;
attempt    (the teacher's own attempt at a problem, `attempt`) parses as
           numbered steps from (1) and a final answer; it is kept in the
           canonical form (`render_rationale`), right or wrong: checking it
           is the feedback's job.

Anything else is rejected with a reason (counted in `rejections`, logged at
WARNING with the start of the offending text) and returned as a reply with
`rejected` set, never raised. Backend failures that outlive their retries are
rejected as "unavailable", a 200 whose body does not parse as
"malformed_response", an answer longer than `max_tokens` allows (a generous
multiple, chat.py `max_answer_chars`) as "too_long", its text dropped
unread (never cached, never in a log record);
configuration errors (bad key, bad model, spend limit) raise `TripostError`.

Only answers that pass validation are cached (`answer_check` is handed to
the requester): a re-run after a bad server asks again.

Sync methods implement the `Teacher` protocol (and `AttemptingTeacher`);
`afeedback`/`aimprove` and the `*_many` batch helpers run many requests
concurrently, bounded per backend.

An attempt is sampled at its own temperature (1.0 by default, the authors'),
whatever the teacher's `temperature` (which feedback and fixes use), and its
`sample` number goes into the request's cache key (`ChatRequest.sample_index`)
when that temperature is above 0: n samples are n calls, each cached and
replayed as itself.

Temperatures reach the API only where the model takes them (sampling.py):
the teacher's own (None: unset, the provider's default) is checked against
its backend when the teacher is made, so a value the model refuses is one
error line before any request. A model that takes only its default (Anthropic
under API version 2026-10-21, OpenAI's reasoning models, both defaulting to
1.0) gets no temperature at all; its attempt at 1.0 is then a request at the
provider's default, whose cache key still holds the sample number.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from tripost.format import (
    FEEDBACK_PREFIX,
    UPDATED_PREFIX,
    Feedback,
    Rationale,
    parse_feedback,
    parse_rationale,
    render_rationale,
)
from tripost.tasks.base import Problem
from tripost.teachers.aio import LoopThread
from tripost.teachers.base import ATTEMPT_TEMPERATURE, AttemptReply, FeedbackReply, ImproveReply, TeacherCall
from tripost.teachers.cache import ResponseCache
from tripost.teachers.chat import ChatBackend, ChatRequest, ChatResponse
from tripost.teachers.requester import Outcome, Requester
from tripost.teachers.retry import MALFORMED, TOO_LONG, RetryPolicy
from tripost.teachers.sampling import parse_temperature, rule_of
from tripost.teachers.templates import load_template, render_block, request_fields
from tripost.teachers.usage import Ledger

log = logging.getLogger("tripost.teachers")

# Rejection reasons (stable labels: they are counted and written to logs).
UNAVAILABLE = "unavailable"
EMPTY = "empty"
UNPARSEABLE = "unparseable"
STEP_OUT_OF_RANGE = "step_out_of_range"
EMPTY_SEGMENT = "empty_segment"
SEGMENT_NOT_IN_ATTEMPT = "segment_not_in_attempt"
NO_FINAL_ANSWER = "no_final_answer"
BAD_NUMBERING = "bad_step_numbers"
CHANGED_KEPT_STEPS = "changed_kept_steps"
WRONG_STEP_UNCHANGED = "wrong_step_unchanged"
BAD_TEMPERATURE = "bad_temperature"  # an attempt asked for at a temperature below 0
# and MALFORMED ("malformed_response", retry.py): a 200 whose body does not parse;
# TOO_LONG ("too_long", retry.py): an answer over what its max_tokens allows.

_FENCE_RE = re.compile(r"^```[\w-]*\s*$", re.MULTILINE)
_IN_STEP_RE = re.compile(r"In step \((\d+)\)", re.IGNORECASE)


class PromptedTeacher:
    def __init__(
        self,
        backend: ChatBackend,
        *,
        cache: ResponseCache | None = None,
        ledger: Ledger | None = None,
        concurrency: int | None = None,
        policy: RetryPolicy | None = None,
        max_tokens: int = 768,
        temperature: float | str | None = None,
        embed_request: bool = True,
        sample_index: int = 0,
        name: str | None = None,
        attempt_gold: bool = False,
    ):
        self.backend = backend
        self.name = name or f"{backend.name}:{backend.model}"
        # None ("" from an unset option): the provider's default. Checked against the model now,
        # before any request: a value it refuses is one error line (sampling.py).
        self.temperature = parse_temperature(temperature, "teacher.temperature")
        self.sampling_rule = rule_of(backend)
        self.sampling_rule.request_temperature(self.temperature, f"teacher {self.name}")
        self.requester = Requester(backend, cache=cache, ledger=ledger, policy=policy, concurrency=concurrency)
        self.max_tokens = max_tokens
        self.embed_request = embed_request
        self.sample_index = sample_index
        # Whether an attempt request's block holds the problem's gold. Off by
        # default: the authors' attempt model sees the question and the
        # examples only (models/wrappers.py, LLM_*.prepare_input), and an LLM
        # that reads the answer writes right attempts. On for a scripted
        # `serve-teacher`, which needs the gold to write attempts at all.
        self.attempt_gold = attempt_gold
        self.rejections: Counter[str] = Counter()
        self._loop = LoopThread(f"tripost-teacher-{backend.name}")

    @property
    def ledger(self) -> Ledger:
        return self.requester.ledger

    @property
    def cache(self) -> ResponseCache | None:
        return self.requester.cache

    @property
    def answers_in_rounds(self) -> bool:
        """Whether requests are answered a round at a time (a provider batch:
        `teacher.batch`, batch.py), so a caller gains by asking everything it
        can at once (sources/teacher.py)."""
        return bool(getattr(self.backend, "answers_in_rounds", False))

    # ------------------------------------------------------------ protocol ---

    # Every LLM backend can be asked for an attempt (AttemptingTeacher).
    can_attempt = True

    def feedback(self, problem: Problem, attempt: str) -> FeedbackReply:
        return self._loop.run(self._feedback(problem, attempt))

    def attempt(self, problem: Problem, sample: int = 0, temperature: float = ATTEMPT_TEMPERATURE) -> AttemptReply:
        """The teacher's own step-by-step attempt at `problem`, sampled at
        `temperature` (the `AttemptingTeacher` call)."""
        return self._loop.run(self._attempt(problem, sample, temperature))

    def improve(self, problem: Problem, attempt: str, feedback: Feedback) -> ImproveReply:
        return self._loop.run(self._improve(problem, attempt, feedback))

    async def afeedback(self, problem: Problem, attempt: str) -> FeedbackReply:
        return await self._loop.run_async(self._feedback(problem, attempt))

    async def aimprove(self, problem: Problem, attempt: str, feedback: Feedback) -> ImproveReply:
        return await self._loop.run_async(self._improve(problem, attempt, feedback))

    def feedback_many(self, items: Sequence[tuple[Problem, str]]) -> list[FeedbackReply]:
        """Feedback on many (problem, attempt) pairs at once, in order."""
        return self._loop.run(self._gather([self._feedback(p, a) for p, a in items]))

    def improve_many(self, items: Sequence[tuple[Problem, str, Feedback]]) -> list[ImproveReply]:
        return self._loop.run(self._gather([self._improve(p, a, f) for p, a, f in items]))

    async def afeedback_many(self, items: Sequence[tuple[Problem, str]]) -> list[FeedbackReply]:
        return await self._loop.run_async(self._gather([self._feedback(p, a) for p, a in items]))

    def complete(self, request: ChatRequest, accept: Callable[[ChatResponse], bool] | None = None) -> Outcome:
        """Send a ready-made chat request through this teacher's cache, retries
        and ledger (serve-teacher uses it to expose the backend as a service);
        only answers `accept` passes are cached."""
        return self._loop.run(self.requester.request(request, accept=accept))

    @staticmethod
    async def _gather(coros: list[Any]) -> list[Any]:
        # The requester's semaphore bounds what is in flight; gather just queues.
        return list(await asyncio.gather(*coros))

    def stats(self) -> dict[str, Any]:
        return {
            "teacher": self.name,
            "rejections": dict(self.rejections),
            "ledger": self.ledger.to_dict(),
            "max_in_flight": self.requester.max_in_flight,
            "concurrency": self.requester.concurrency,
        }

    def close(self) -> None:
        async def shutdown() -> None:
            await self.backend.aclose()

        try:
            self._loop.run(shutdown())
        finally:
            self._loop.close()

    # ------------------------------------------------------------- requests ---

    def build_request(self, kind: str, problem: Problem, attempt: str, feedback: str | None = None, *,
                      sample: int = 0, temperature: float | None = None) -> ChatRequest:
        """The chat request of a `kind` call. `temperature` (default: the
        teacher's) and `sample` are an attempt's: its sample number is its
        cache key's `sample_index`, above temperature 0 only, where samples
        differ (at 0 every sample is one request). The request carries the
        temperature only where the model takes it (sampling.py); one the
        model samples at anyway (its provider's default) travels as none, and
        one it refuses is a `TripostError`."""
        if temperature is None:
            wanted, setting = self.temperature, "teacher.temperature / --teacher-temperature"
        else:
            wanted, setting = float(temperature), f"by the {kind} call"
        sent = self.sampling_rule.request_temperature(wanted, f"teacher {self.name}", setting)
        # What the model samples at: the sent value, else its provider's default.
        effective = sent if sent is not None else self.sampling_rule.default
        template = load_template(problem.family, kind)
        messages = template.messages(request_fields(problem, attempt, feedback))
        sample_index = self.sample_index
        if kind == "attempt":
            sample_index = int(sample) if effective > 0 else 0
        if self.embed_request:
            last = messages[-1]
            block = render_block(kind, problem, attempt, feedback, sample=sample_index, gold=self.attempt_gold if kind == "attempt" else None)
            messages = messages[:-1] + (type(last)(last.role, last.content + "\n\n" + block),)
        if kind == "feedback":
            stop: tuple[str, ...] = (f"\n{UPDATED_PREFIX}",)
        elif kind == "improve":
            stop = (f"\n{FEEDBACK_PREFIX}",)
        else:
            # An attempt ends at its final response: not a feedback of its
            # own, nor a next few-shot question.
            stop = (f"\n{FEEDBACK_PREFIX}", "\nQuestion:")
        return ChatRequest(
            model=self.backend.model,
            system=template.system,
            messages=messages,
            max_tokens=self.max_tokens,
            temperature=sent,
            stop=stop,
            sample_index=sample_index,
            cache_prefix=len(messages) - 1,
        )

    def _call(self, kind: str, out: Outcome, rejected: str | None) -> TeacherCall:
        if out.cached:
            usage = {}
        elif out.response is not None:
            usage = out.response.usage.buckets()
        else:  # billed although refused (too long), or nothing billed
            usage = out.usage.buckets() if out.usage is not None else {}
        return TeacherCall(
            backend=self.backend.name,
            model=self.backend.model,
            kind=kind,
            latency_s=out.latency_s,
            usage=usage,
            retries=out.retries,
            cached=out.cached,
            cost_usd=out.cost_usd,
            rejected=rejected,
            batch=out.response.batch_id if out.response is not None and not out.cached else "",
        )

    def _reject(self, kind: str, problem: Problem, reason: str, text: str) -> None:
        self.rejections[reason] += 1
        snippet = " ".join(text.split())[:160]
        log.warning("%s: rejected %s for %s (%s): %r", self.name, kind, problem.id or problem.family, reason, snippet)

    async def _feedback(self, problem: Problem, attempt: str) -> FeedbackReply:
        out = await self.requester.request(
            self.build_request("feedback", problem, attempt), accept=answer_check("feedback", attempt)
        )
        text = out.response.text if out.response is not None else ""
        if out.error is not None:
            reason = _failure_reason(out)
            self._reject("feedback", problem, reason, str(out.error))
            return FeedbackReply(feedback=None, text="", calls=(self._call("feedback", out, reason),), rejected=reason)
        sentence, fb, reason = validate_feedback(text, attempt)
        if reason is not None:
            self._reject("feedback", problem, reason, text)
        return FeedbackReply(feedback=fb, text=sentence, calls=(self._call("feedback", out, reason),), rejected=reason)

    async def _improve(self, problem: Problem, attempt: str, feedback: Feedback) -> ImproveReply:
        if feedback.error_step is None:
            # Nothing to fix: the attempt stands, as with the scripted teacher.
            return ImproveReply(rationale=attempt)
        out = await self.requester.request(
            self.build_request("improve", problem, attempt, feedback.render()),
            accept=answer_check("improve", attempt, feedback),
        )
        if out.error is not None:
            reason = _failure_reason(out)
            self._reject("improve", problem, reason, str(out.error))
            return ImproveReply(rationale=None, calls=(self._call("improve", out, reason),), rejected=reason)
        text = out.response.text if out.response is not None else ""
        rationale, reason = validate_improvement(text, attempt, feedback)
        if reason is not None:
            self._reject("improve", problem, reason, text)
        return ImproveReply(rationale=rationale, calls=(self._call("improve", out, reason),), rejected=reason)

    async def _attempt(self, problem: Problem, sample: int, temperature: float) -> AttemptReply:
        if not temperature >= 0:
            # A value no API takes: one rejection, not a request that fails as a 400.
            self._reject("attempt", problem, BAD_TEMPERATURE, f"temperature {temperature}")
            return AttemptReply(rationale=None, rejected=BAD_TEMPERATURE)
        out = await self.requester.request(self.build_request("attempt", problem, "", sample=sample, temperature=temperature),
                                           accept=answer_check("attempt", ""))
        if out.error is not None:
            reason = _failure_reason(out)
            self._reject("attempt", problem, reason, str(out.error))
            return AttemptReply(rationale=None, calls=(self._call("attempt", out, reason),), rejected=reason)
        text = out.response.text if out.response is not None else ""
        rationale, reason = validate_attempt(text)
        if reason is not None:
            self._reject("attempt", problem, reason, text)
        return AttemptReply(rationale=rationale, calls=(self._call("attempt", out, reason),), rejected=reason)


def _failure_reason(out: Outcome) -> str:
    assert out.error is not None
    return out.error.kind if out.error.kind in (MALFORMED, TOO_LONG) else UNAVAILABLE


# -------------------------------------------------------------- validation ---


def answer_check(kind: str, attempt: str, feedback: Feedback | None = None) -> Callable[[ChatResponse], bool]:
    """Whether an answer to a `kind` request about `attempt` passes
    validation: the test an answer must pass to be cached."""
    if kind == "feedback":
        return lambda r: validate_feedback(r.text, attempt)[2] is None
    if kind == "attempt":
        return lambda r: validate_attempt(r.text)[1] is None
    if feedback is None or feedback.error_step is None:
        raise ValueError("answer_check: an improve request needs feedback that names a wrong step")
    return lambda r: validate_improvement(r.text, attempt, feedback)[1] is None


def _norm(text: str) -> str:
    # Feedback renders double quotes in a segment as single ones (format.py).
    return " ".join(text.replace('"', "'").split())


def _strip_fences(text: str) -> str:
    return _FENCE_RE.sub("", text).strip()


def extract_feedback_sentence(text: str) -> str:
    """The feedback sentence in an LLM answer: after `Feedback:` if present,
    up to a blank line or an `Updated Answer:`."""
    body = _strip_fences(text)
    i = body.find(FEEDBACK_PREFIX)
    if i >= 0:
        body = body[i + len(FEEDBACK_PREFIX):]
    body = body.split(UPDATED_PREFIX)[0]
    body = re.split(r"\n\s*\n", body.strip(), maxsplit=1)[0]
    return " ".join(body.split())


def validate_feedback(text: str, attempt: str) -> tuple[str, Feedback | None, str | None]:
    """(sentence, feedback or None, rejection reason or None).

    An accepted sentence comes back in canonical form (`Feedback.render`): it
    goes into training data, where "Step (1) to step (k-1) are correct" must
    agree with k whatever the LLM wrote. A rejected one comes back as written."""
    if not text.strip():
        return "", None, EMPTY
    sentence = extract_feedback_sentence(text)
    parsed = parse_rationale(attempt)
    n = parsed.n_steps
    fb = parse_feedback(sentence, n)
    if fb is None:
        return sentence, None, UNPARSEABLE
    if fb.error_step is None:
        return fb.render(), fb, None
    # "In step (k)" must name a numbered step (the final response is named as such).
    m = _IN_STEP_RE.search(sentence)
    if m and not 1 <= int(m.group(1)) <= n:
        return sentence, None, STEP_OUT_OF_RANGE
    if not _norm(fb.segment):
        return sentence, None, EMPTY_SEGMENT
    if _norm(fb.segment) not in _norm(attempt):
        return sentence, None, SEGMENT_NOT_IN_ATTEMPT
    return fb.render(), fb, None


def _with_final_answer(body: str):
    """(the parsed rationale, None) when `body` has steps or a final line with
    an answer, else (it, the rejection reason): the check an attempt and an
    improvement share."""
    parsed = parse_rationale(body)
    if not parsed.steps and parsed.final is None:
        return parsed, UNPARSEABLE
    if parsed.final is None or not parsed.answer:
        return parsed, NO_FINAL_ANSWER
    return parsed, None


def validate_attempt(text: str) -> tuple[str | None, str | None]:
    """(the attempt in canonical form or None, rejection reason or None).

    Numbered steps from (1) on, in order, and a final response with an
    answer; a preamble ("Answer: Let's think step by step.") and code
    fences are dropped, and the final line is written in the canonical form,
    as an improvement's is. Right or wrong is not judged here: the attempt
    goes to the feedback call like a student's."""
    body = _strip_fences(text)
    if not body:
        return None, EMPTY
    parsed, reason = _with_final_answer(body)
    if reason is not None:
        return None, reason
    answer = parsed.answer
    if list(parsed.numbers) != list(range(1, parsed.n_steps + 1)):
        return None, BAD_NUMBERING
    return render_rationale(list(parsed.steps), answer), None


def validate_improvement(text: str, attempt: str, feedback: Feedback) -> tuple[str | None, str | None]:
    """(improved rationale or None, rejection reason or None).

    Accepts a full rationale (steps from (1)) or a continuation from the wrong
    step (k). The result keeps the attempt's text byte-for-byte up to step k
    and writes the final line in the canonical form."""
    body = _strip_fences(text)
    if not body:
        return None, EMPTY
    i = body.find(UPDATED_PREFIX)
    if i >= 0:
        body = body[i + len(UPDATED_PREFIX):].strip()
    new, reason = _with_final_answer(body)
    if reason is not None:
        return None, reason
    answer = new.answer
    old = parse_rationale(attempt)
    k = feedback.error_step
    assert k is not None
    tail = _tail_steps(new, old, k)
    if isinstance(tail, str):
        return None, tail
    if k <= old.n_steps:
        if not tail or _norm(tail[0]) == _norm(old.steps[k - 1]):
            return None, WRONG_STEP_UNCHANGED
    else:
        old_answer = old.answer or ""
        if not tail and _norm(answer).lower() == _norm(old_answer).lower():
            return None, WRONG_STEP_UNCHANGED
    prefix = old.text[: old.offset_of(k)] if old.steps else ""
    if prefix and not prefix.endswith("\n"):
        prefix += "\n"
    return prefix + render_rationale(tail, answer, start=k), None


def _tail_steps(new: Rationale, old: Rationale, k: int) -> list[str] | str:
    """The new steps from step k on, or a rejection reason."""
    numbers = list(new.numbers)
    if not numbers:
        # Only a final response: fine when every numbered step was kept.
        return [] if k > old.n_steps else CHANGED_KEPT_STEPS
    start = numbers[0]
    if numbers != list(range(start, start + len(numbers))):
        return BAD_NUMBERING
    if start == 1:
        kept = new.steps[: k - 1]
        if len(kept) < k - 1 or [_norm(s) for s in kept] != [_norm(s) for s in old.steps[: k - 1]]:
            return CHANGED_KEPT_STEPS
        return list(new.steps[k - 1:])
    if start == k:
        return list(new.steps)
    return BAD_NUMBERING
