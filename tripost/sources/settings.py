"""The settings of a collection, declared once: the run config's `[collect]`
section and the flags of `tripost collect` (tripost.settings says how).

The defaults are sized for a 2-core CPU and the embedded student; each source
reads the fields it uses (`Source.from_settings`) and ignores the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tripost.errors import TripostError
from tripost.settings import KeyName, option
from tripost.sources.registry import SOURCE_NAMES
from tripost.student.generate import DEFAULT_BATCH, SamplingParams
from tripost.verify import FILTERS as VERIFY_FILTERS
from tripost.verify import VERIFIERS as VERIFY_VERIFIERS
from tripost.student.base import StudentLike

# The choices of the method settings, declared here beside the settings so
# the sources import them from here (and their configs' defaults: `view`),
# not the reverse.
REWARDS = ("logprob", "mean_logprob", "majority")  # sharpen: tripost.sharpen says what each is
STRATEGIES = ("answer", "rationale", "state_reset", "interactive", "resample")  # guided: tripost.sources.guided
CHECKS = ("answer", "steps")  # guided: what a correct sample must get right
VERIFY_MODES = ("filter", "reweight")  # self_verified: tripost.sources.selfverify

_AT_LEAST_1 = ("samples_per_problem", "max_passes", "batch_size", "max_new_tokens", "guided_min_correct")
_AT_LEAST_0 = ("max_edits", "target_usable", "max_unavailable", "guided_rounds", "guided_budget")


@dataclass(frozen=True)
class CollectSettings:
    # Where an iteration's training data comes from (tripost.sources): `teacher`
    # is TriPosT's interactive editing; `rejection` the student's own correct
    # samples with no teacher (the STaR/LMSI baseline); `sharpen` the student's
    # own best of `samples_per_problem` by its likelihood, right or not
    # (SFT-sharpening, Huang et al. 2024); `guided` the student's own correct
    # samples plus guided rounds for the problems it rarely gets right (Guided
    # Self-Improvement, Ding et al. 2024); `self_verified` the student's own
    # samples kept or weighed by its own verifier, no gold answer (Song et al.
    # 2024, "Mind the Gap").
    source: str = option("teacher", "where the training data comes from", choices=SOURCE_NAMES)
    samples_per_problem: int = option(2, "attempts sampled per problem (guided: per round; sharpen: candidates)", metavar="N", flag="--samples")
    max_edits: int = option(5, "teacher improvements per trajectory (TriPosT: 5)", metavar="N")
    max_passes: int = option(1, "passes over the problems", metavar="N", flag="--passes")
    target_usable: int = option(0, "stop once this many usable trajectories exist (0: no target)", metavar="N")
    # The authors sample the student's attempts at temperature 1.0 with no
    # nucleus cut (jasonyux/TriPosT, runners/trainer/
    # train_self_improve_rl_noeval.py:343-347, get_wrapped_model_for_data).
    temperature: float = option(1.0, "student sampling temperature (0: greedy)", metavar="T")
    top_p: float = option(1.0, "student nucleus sampling share", metavar="P")
    max_new_tokens: int = option(192, "tokens the student may write per attempt (eval: also per feedback and per update)", metavar="N")
    # Its own flag: --batch-size is the sequences decoded together in every
    # verb that has one (sample, eval, gap, sharpen eval); this key is how
    # many problems a source hands the sampler at a time.
    batch_size: int = option(DEFAULT_BATCH, "problems per call to the student's sampler (sharpen: sequences decoded together; "
                             "self_verified: also verifications decoded together)", metavar="N", flag="--problems-per-call")
    # Trajectories in a row whose teacher could not be reached before the
    # collection stops: each has outlived its requests' retries, so a few in a
    # row mean the teacher is down or its address is wrong.
    max_unavailable: int = option(8, "trajectories in a row without a reachable teacher before collection stops (0: never)", metavar="N")
    sharpen_reward: str = option("mean_logprob", "sharpen: the student's reward that picks the best sample", choices=REWARDS, flag="--reward")
    guided_strategy: str = option("rationale", "guided: what the guided rounds show the student", choices=STRATEGIES)
    # GSI guides only the tail: round 0's plain samples must be able to lift a
    # problem to `guided_min_correct`, so it is at most `samples_per_problem`.
    # 1 guides exactly the problems round 0 left without any correct sample
    # (STaR's rationalization targets the same ones, Zelikman et al. 2022).
    guided_min_correct: int = option(1, "guided: correct samples a problem needs to leave the guided rounds (at most the samples)",
                                     metavar="K", flag="--min-correct")
    guided_rounds: int = option(8, "guided: rounds after the plain one", metavar="N")
    guided_check: str = option("answer", "guided: answer (the final answer decides) or steps (also no wrong step)", choices=CHECKS)
    guided_budget: int = option(0, "guided: most sampled sequences in all, round 0 included (0: no cap)", metavar="N", flag="--budget")
    guided_teacher_edits: bool = option(False, "guided: the plain round's wrong samples also get TriPosT's teacher edits", flag="--teacher-edits")
    # Self-verified data (tripost/sources/selfverify.py): the student's own
    # verifier scores each of its samples; `filter` keeps some, `reweight`
    # keeps all with the score, normalised per problem, as the example's
    # weight (which a run trains with only under train.use_example_weight=true).
    verify_verifier: str = option("mc", "self_verified: the student's own verifier (mc: p(Correct) after the attempt; self: its own "
                                  "feedback; cot: p(Correct) after a verification it writes)", choices=VERIFY_VERIFIERS)
    verify_mode: str = option("filter", "self_verified: filter (keep what the filter keeps) or reweight (keep all, weight = score normalised per problem)",
                              choices=VERIFY_MODES)
    verify_filter: str = option("quantile", "self_verified filter: quantile (per problem, a share) or threshold (score >= T)",
                                choices=VERIFY_FILTERS)
    verify_quantile: float = option(0.5, "self_verified quantile filter: the share of a problem's samples kept, in (0, 1]", metavar="Q")
    verify_threshold: float = option(0.5, "self_verified threshold filter: keep scores >= T, in [0, 1]", metavar="T")

    def check(self, name: KeyName) -> "CollectSettings":
        """Self, when every value is usable; else one error naming the key the
        way the user set it (`name`: collect.KEY or --flag)."""
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise TripostError(f"unknown {name(f.name)} {getattr(self, f.name)!r}; choose from {', '.join(choices)}")
        for key in _AT_LEAST_1:
            if getattr(self, key) < 1:
                raise TripostError(f"{name(key)} must be at least 1, not {getattr(self, key)}")
        for key in _AT_LEAST_0:
            if getattr(self, key) < 0:
                raise TripostError(f"{name(key)} must be 0 or more, not {getattr(self, key)}")
        if not self.temperature >= 0:
            raise TripostError(f"{name('temperature')} must be 0 or more, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise TripostError(f"{name('top_p')} must be in (0, 1], not {self.top_p}")
        if not 0 < self.verify_quantile <= 1:
            raise TripostError(f"{name('verify_quantile')} must be in (0, 1] (the share of samples kept), not {self.verify_quantile}")
        if not 0 <= self.verify_threshold <= 1:
            raise TripostError(f"{name('verify_threshold')} must be in [0, 1] (scores are probabilities), not {self.verify_threshold}")
        if self.source == "self_verified" and self.temperature == 0 and self.samples_per_problem > 1:
            raise TripostError(f"{name('temperature')} 0 samples one attempt per problem, not {self.samples_per_problem}: "
                               f"self_verified needs different samples to verify; raise {name('temperature')}")
        if self.source == "guided" and self.samples_per_problem < self.guided_min_correct:
            raise TripostError(f"{name('samples_per_problem')} ({self.samples_per_problem}) is below {name('guided_min_correct')} "
                               f"({self.guided_min_correct}): no problem could reach it in the plain round, so every problem would be "
                               "guided; raise the first or lower the second")
        return self

    def sampling_params(self, seed: int = 0) -> SamplingParams:
        """How the student samples its attempts (n and seed are set per call)."""
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens, seed=seed)

    def student_info(self, student: StudentLike, seed: int = 0) -> dict[str, Any]:
        """What every record says of the student that sampled it: spec,
        precision, adapter, how it sampled, and the batch size (in bf16 the
        text can depend on which prompts shared a batch: README, "Reproducibility")."""
        return {**student.describe(), "sampling": self.sampling_params(seed).to_dict(), "batch_size": self.batch_size}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Per-method overrides: where a method's own default differs from the
# collection's, it is declared here, once, with its reason; the method's
# library config takes it (`tripost.settings.view`), and
# tests/test_defaults.py allows exactly these second values.
#
# Best-of-N (tripost.sharpen: `SharpenConfig()` built in code, `tripost
# sharpen eval`) picks among N = 8 candidates by their summed
# log-likelihood, the paper's maximum-likelihood sharpening objective (Huang
# et al. 2024), sampled at temperature 0.7 and top-p 0.95 with 256 tokens an
# attempt: a measurement of best-of-N wants distinct, complete candidates.
# The sharpen *source* of `tripost collect --source sharpen` and of a run's
# collect stage takes the [collect] keys above instead (2 candidates, the
# length-normalised reward, the collection's sampling), as it always has.
SHARPEN_DEFAULTS: dict[str, Any] = {
    "samples_per_problem": 8,
    "sharpen_reward": "logprob",
    "temperature": 0.7,
    "top_p": 0.95,
    "max_new_tokens": 256,
}
OVERRIDES: dict[str, dict[str, Any]] = {"sharpen": SHARPEN_DEFAULTS}


__all__ = ["CHECKS", "OVERRIDES", "REWARDS", "SHARPEN_DEFAULTS", "STRATEGIES", "VERIFY_MODES", "CollectSettings"]
