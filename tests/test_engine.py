"""The continuous-batching decoder (tripost.student.engine) on the tiny model.

The reference for every greedy sequence is the plainest decoder there is:
the whole sequence through the model again for every new token, no cache,
batch of one. The engine must produce exactly its tokens while it refills
slots, shares the prompts' prefix and drops unused cache columns.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tripost.student import build_prompt, load_student  # noqa: E402
from tripost.student.engine import ContinuousBatcher, _shared_prefix_len  # noqa: E402
from tripost.student.generate import LocalBackend, SamplingParams  # noqa: E402
from tripost.student.tokens import encode_prompt  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    # A tiny model whose greedy text depends on the prompt (see build_tiny_model).
    from tripost.student import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("varied"), init_std=0.5, tie_embeddings=False, seed=1)
    return load_student(f"hf:{path}", "fp32")


@pytest.fixture(scope="module")
def prompts(student):
    from tripost.tasks import get_task, sample_problems

    probs = sample_problems(get_task("arithmetic"), split="train", subset="seen", preset="small", n=9, seed=3)
    probs += sample_problems(get_task("word_sorting"), split="train", subset="seen", preset="small", n=5, seed=3)
    return [build_prompt(student.tokenizer, p.question) for p in probs]


def reference_greedy(model, ids, n, stop_at=None):
    out = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=torch.tensor([ids + out])).logits[0, -1]
            out.append(int(logits.argmax()))
            if stop_at is not None and stop_at(out):
                break
    return out


def test_greedy_matches_a_cache_free_reference_through_refills_and_compactions(student, prompts):
    # 3 slots for 14 prompts: many refills. Sequences end at different lengths
    # (a token-dependent stop), so slots free up one at a time, the shared
    # write column runs past the capacity and unused columns get dropped.
    tok = student.tokenizer
    ids = [encode_prompt(tok, p) for p in prompts]

    def stop_at(out):  # ends sequences at scattered lengths, deterministically
        return len(out) >= 4 + out[0] % 31

    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=40)
    eng = ContinuousBatcher(student.model, tok, slots=3)
    got = eng.run(ids, params, eos_ids=[tok.eos_token_id], stop_check=stop_at)
    st = eng.stats
    assert st.prefills > 3 and st.compactions >= 1, st
    assert st.prefill_tokens < st.prompt_tokens  # the shared prefix ran once
    lengths = set()
    for i, p in enumerate(ids):
        want = reference_greedy(student.model, p, 40, stop_at)
        assert got[i][0] == want, f"prompt {i}"
        lengths.add(len(want))
        assert eng.finishes[i][0] == ("stop" if stop_at(want) else "length")
    assert len(lengths) > 3  # the refills really were staggered


def test_continuous_and_static_engines_agree_on_greedy_text(student, prompts):
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=16)
    static = LocalBackend(student, batch_size=4, engine="static").generate(prompts, params)
    cont = LocalBackend(student, batch_size=4, engine="continuous").generate(prompts, params)
    assert [r[0].text for r in cont] == [r[0].text for r in static]
    assert [r[0].n_tokens for r in cont] == [r[0].n_tokens for r in static]


def test_seeded_sampling_is_reproducible_and_every_sample_differs(student, prompts):
    params = SamplingParams(n=3, temperature=0.9, top_p=0.9, max_new_tokens=12, seed=11)
    a = LocalBackend(student, batch_size=5).generate(prompts, params)
    b = LocalBackend(student, batch_size=5).generate(prompts, params)
    assert [[g.text for g in r] for r in a] == [[g.text for g in r] for r in b]
    assert all(len({g.text for g in r}) > 1 for r in a)  # samples of one prompt are not copies
    c = LocalBackend(student, batch_size=5).generate(prompts, SamplingParams(n=3, temperature=0.9, top_p=0.9, max_new_tokens=12, seed=12))
    assert [[g.text for g in r] for r in c] != [[g.text for g in r] for r in a]


def test_nucleus_sampling_stays_inside_the_nucleus(student, prompts):
    # top_p so small that the nucleus is the single most likely token: sampling
    # must then equal greedy decoding, whatever the draws.
    greedy = LocalBackend(student).generate(prompts[:4], SamplingParams(n=1, temperature=0.0, max_new_tokens=10))
    tight = LocalBackend(student).generate(prompts[:4], SamplingParams(n=2, temperature=1.0, top_p=1e-6, max_new_tokens=10, seed=4))
    for g, t in zip(greedy, tight):
        assert [s.text for s in t] == [g[0].text] * 2


def test_stop_strings_cut_the_text_and_end_the_sequence(student, prompts):
    free = LocalBackend(student).generate(prompts[:6], SamplingParams(n=1, temperature=0.0, max_new_tokens=30))
    # A stop string taken from inside each greedy text: a second piece of the
    # same text, so the sequence must end where it first appears.
    for row, p in zip(free, prompts[:6]):
        text = row[0].text
        if len(text) < 12:
            continue
        stop = text[6:9]
        got = LocalBackend(student).generate([p], SamplingParams(n=1, temperature=0.0, max_new_tokens=30, stop=(stop,)))[0][0]
        assert got.finish_reason == "stop"
        assert got.text == text[: text.find(stop)]
        assert got.n_tokens < row[0].n_tokens


def test_ignore_eos_gives_exactly_max_new_tokens(student, prompts):
    out = LocalBackend(student).generate(prompts[:5], SamplingParams(n=2, temperature=1.0, max_new_tokens=9, ignore_eos=True))
    assert all(g.n_tokens == 9 and g.finish_reason == "length" for r in out for g in r)


def test_shared_prefix_leaves_every_prompt_a_token_of_its_own():
    assert _shared_prefix_len([[1] * 20 + [2], [1] * 20 + [3]]) == 20
    assert _shared_prefix_len([[1] * 20, [1] * 20]) == 19  # identical prompts: the last token is each one's own
    assert _shared_prefix_len([[1, 2, 3], [1, 2, 4]]) == 0  # too short to be worth a pass
    assert _shared_prefix_len([[5] * 30]) == 29


@pytest.fixture(scope="module")
def student64(tmp_path_factory):
    # The same varied model in float64: see the test below.
    from tripost.student import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("varied64"), init_std=0.5, tie_embeddings=False, seed=1)
    s = load_student(f"hf:{path}", "fp32")
    s.model.to(torch.float64)
    return s


def test_per_prompt_seeds_make_a_prompts_samples_its_own(student64, prompts):
    # With a seed per prompt, a prompt's random draws do not depend on which
    # other prompts share the call or where it sits in it, on either engine.
    # This tests the seeding, so it runs in float64: in fp32 the *numbers*
    # can depend on the batch (on an AVX-512 CPU an fp32 matmul of 1-3 rows
    # takes another kernel than one of 4+, ~1e-6 apart, and this model's
    # large weights amplify that into another sampled token), and in bf16
    # they do (README, "Reproducibility").
    student = student64
    params = SamplingParams(n=2, temperature=0.9, top_p=0.95, max_new_tokens=10)
    seeds = [100 + i for i in range(len(prompts))]
    for engine in ("continuous", "static"):
        whole = LocalBackend(student, batch_size=4, engine=engine).generate(prompts, params, seeds=seeds)
        back = LocalBackend(student, batch_size=3, engine=engine).generate(prompts[::-1], params, seeds=seeds[::-1])[::-1]
        alone = LocalBackend(student, engine=engine).generate([prompts[5]], params, seeds=[seeds[5]])
        assert [[g.text for g in r] for r in whole] == [[g.text for g in r] for r in back]
        assert [g.text for g in alone[0]] == [g.text for g in whole[5]]


def test_a_prompt_longer_than_the_context_is_cut_and_counted(student, prompts, capsys):
    limit = student.model.config.max_position_embeddings
    tok = student.tokenizer
    long_prompt = prompts[0] + " word" * (limit + 50)
    backend = LocalBackend(student)
    out = backend.generate([long_prompt, prompts[1]], SamplingParams(n=1, temperature=0.0, max_new_tokens=8))
    assert backend.last_stats.truncated == 1 and len(out) == 2 and out[0][0].n_tokens == 8
    assert "1 prompt(s) longer than the model's context" in capsys.readouterr().err
    # The cut keeps the prompt's end: the engine saw exactly its last tokens.
    room = limit - 8
    ids = encode_prompt(tok, long_prompt)[-room:]
    assert out[0][0].text == tok.decode(reference_greedy(student.model, ids, 8))
