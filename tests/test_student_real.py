"""The real embedded student (SmolLM2-135M-Instruct from the shipped GGUF).

Few and short on purpose: each loads a 135M model on CPU."""

from __future__ import annotations

import pytest
import torch

from tripost.student import SamplingParams, build_prompt, load_student, sequence_logprobs
from tripost.student import embedded as emb

pytestmark = pytest.mark.slow

QUESTION = "What is 12 + 30?"


@pytest.fixture(scope="module")
def smollm(embedded_dir):
    # fp32, named: these tests compare against the GGUF's own values and an
    # fp32 footprint; `auto` would pick bf16 on a bf16-capable CPU. (The bf16
    # path is tested on the tiny model, cheap even where bf16 is emulated.)
    return load_student("smollm2-135m", precision="fp32")


def test_fresh_cache_converts_once_then_reuses(tmp_path, monkeypatch):
    """From an empty cache, offline (conftest sets HF_HUB_OFFLINE): converts the
    GGUF, leaves no temporary folder, and the second call reuses the cache."""
    monkeypatch.setenv("TRIPOST_HOME", str(tmp_path))
    folder = emb.embedded_model_dir()
    assert emb.is_converted(folder) and (folder / "model.safetensors").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]

    def must_not_run(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr(emb, "convert_gguf", must_not_run)
    assert emb.embedded_model_dir() == folder
    s = load_student("smollm2-135m")
    assert s.source_dir == folder and s.model.config.num_hidden_layers == 30


def test_converted_weights_match_the_gguf(smollm):
    """The cached safetensors hold the GGUF's tensors, dequantised exactly
    (read here with the `gguf` package itself, independently of transformers)."""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(str(emb.find_embedded_gguf()))
    tensors = {t.name: t for t in reader.tensors}
    state = smollm.model.state_dict()
    pairs = {
        "token_embd.weight": "model.embed_tokens.weight",  # Q8_0
        "blk.0.ffn_down.weight": "model.layers.0.mlp.down_proj.weight",  # Q4_1
        "blk.29.ffn_up.weight": "model.layers.29.mlp.up_proj.weight",
        "blk.0.attn_v.weight": "model.layers.0.self_attn.v_proj.weight",
        "output_norm.weight": "model.norm.weight",  # F32
    }
    for g, h in pairs.items():
        t = tensors[g]
        expected = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        assert np.array_equal(state[h].numpy(), expected.reshape(state[h].shape)), g
    # Tied output embeddings, as in the original model.
    assert smollm.model.lm_head.weight.data_ptr() == smollm.model.model.embed_tokens.weight.data_ptr()


def test_greedy_identical_across_loads_and_sampling_reproducible(smollm):
    prompt = build_prompt(smollm.tokenizer, QUESTION)
    first = smollm.greedy([prompt], max_new_tokens=16)[0]
    again = load_student("smollm2-135m", precision="fp32")
    assert again.greedy([prompt], max_new_tokens=16)[0] == first
    assert first.text.strip()  # the instruct model answers something
    params = SamplingParams(n=2, temperature=0.8, max_new_tokens=10, seed=3)
    assert again.sample([prompt], params) == smollm.sample([prompt], params)


def test_eos_ends_a_completion_unless_ignored(smollm):
    prompt = build_prompt(smollm.tokenizer, "What is 2 + 2?")  # answered in ~17 tokens, then <|im_end|>
    short = smollm.greedy([prompt], max_new_tokens=24)[0]
    assert short.finish_reason == "eos" and short.n_tokens < 24
    assert "<|im_end|>" not in short.text
    full = smollm.sample([prompt], SamplingParams(n=2, max_new_tokens=24, ignore_eos=True))[0]
    assert [g.n_tokens for g in full] == [24, 24] and {g.finish_reason for g in full} == {"length"}


def test_nf4_footprint_and_quantisation_cache(smollm):
    """NF4 takes under 40% of fp32's memory; the quantised weights cached next to
    the conversion load back bit-identical to a fresh quantisation."""
    from tripost.student.load import _load_nf4

    q = load_student("smollm2-135m", precision="nf4")
    ratio = q.model.get_memory_footprint() / smollm.model.get_memory_footprint()
    assert ratio < 0.40, ratio
    assert (smollm.source_dir / "nf4-cpu" / "tripost-nf4.json").is_file()
    cached = load_student("smollm2-135m", precision="nf4")  # from the cache now
    fresh = _load_nf4(smollm.source_dir, torch.device("cpu"), cacheable=False)
    ids = smollm.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = fresh(ids).logits
        assert torch.equal(q.model(ids).logits, expected)
        assert torch.equal(cached.model(ids).logits, expected)
    assert cached.model.config._name_or_path == str(smollm.source_dir)
    out = cached.greedy([build_prompt(q.tokenizer, QUESTION)], max_new_tokens=4)[0]
    assert out.n_tokens >= 1


def test_logprobs_on_the_real_model(smollm):
    prompt = build_prompt(smollm.tokenizer, QUESTION)
    right, wrong = sequence_logprobs(smollm, [prompt, prompt], ["12 + 30 = 42.", "12 + 30 = 97."])
    tok = smollm.tokenizer
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok("12 + 30 = 42.", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = smollm.model(torch.tensor([p + c])).logits[0].double().log_softmax(-1)
    direct = sum(float(logp[len(p) + k - 1, c[k]]) for k in range(len(c)))
    assert right.sum == pytest.approx(direct, abs=1e-3)
    assert right.sum > wrong.sum  # the model prefers the right sum
