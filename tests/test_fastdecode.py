"""The engine's decode step without the transformers module stack (tripost.student.fastdecode).

It must compute what the model's own forward computes (logits within float
rounding in fp32), the engine must give the same tokens with it as without
it, and it must refuse models whose forward it does not reproduce (a LoRA
layer, another architecture), so the engine falls back for those.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tripost.student import build_prompt, load_student  # noqa: E402
from tripost.student.engine import ContinuousBatcher  # noqa: E402
from tripost.student.fastdecode import BLOCK, BlockCache, FastDecoder, supports_fast_decode  # noqa: E402
from tripost.student.generate import SamplingParams  # noqa: E402
from tripost.student.tokens import encode_prompt  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from tripost.student import build_tiny_model

    # Untied, larger init: greedy text that depends on the prompt; 4 heads over
    # 2 KV heads, so grouped-query attention is exercised.
    path = build_tiny_model(tmp_path_factory.mktemp("fast"), init_std=0.5, tie_embeddings=False, seed=2)
    return load_student(f"hf:{path}", "fp32")


@pytest.fixture(scope="module")
def prompt_ids(student):
    from tripost.tasks import get_task, sample_problems

    probs = sample_problems(get_task("arithmetic"), split="train", subset="seen", preset="small", n=6, seed=5)
    probs += sample_problems(get_task("word_sorting"), split="train", subset="seen", preset="small", n=4, seed=5)
    return [encode_prompt(student.tokenizer, build_prompt(student.tokenizer, p.question)) for p in probs]


def test_one_step_gives_the_models_own_logits(student, prompt_ids):
    model = student.model.eval()
    fast = FastDecoder(model)
    cfg = model.config
    kv, d = cfg.num_key_value_heads, cfg.head_dim
    for ids in prompt_ids[:3]:
        n = len(ids)
        # columns past the sequence hold zeros and are masked; a capacity over
        # two blocks, so the step attends across a block boundary
        cap = max(n + 5, BLOCK + 8)
        with torch.no_grad():
            want = model(input_ids=torch.tensor([ids])).logits[0, -1]
            past = model(input_ids=torch.tensor([ids[:-1]]), use_cache=True).past_key_values
            cache = BlockCache(cfg.num_hidden_layers, 1, kv, d, cap, torch.float32, "cpu")
            for layer in range(cfg.num_hidden_layers):
                cache.put(layer, slice(0, 1), 0, past.layers[layer].keys, past.layers[layer].values)
            allowed = torch.ones((1, n), dtype=torch.bool)
            got = fast.step(torch.tensor([ids[-1]]), torch.tensor([n - 1]), allowed, cache, n - 1)[0]
            k, v = cache.get(0, slice(0, 1), 0, n)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        # the step wrote the new token's key and value at column n - 1, and
        # the columns before it read back as they were put
        assert bool(k[0, :, n - 1].abs().sum() > 0) and bool(v[0, :, n - 1].abs().sum() > 0)
        torch.testing.assert_close(k[:, :, : n - 1], past.layers[0].keys, atol=0, rtol=0)


def test_block_cache_columns_round_trip_across_blocks():
    g = torch.Generator().manual_seed(0)
    cache = BlockCache(2, 3, 2, 4, 3 * BLOCK, torch.float32, "cpu")
    k, v = torch.randn((3, 2, 2 * BLOCK + 5, 4), generator=g), torch.randn((3, 2, 2 * BLOCK + 5, 4), generator=g)
    cache.put(1, slice(None), 7, k, v)
    got_k, got_v = cache.get(1, slice(None), 7, 7 + k.shape[2])
    assert torch.equal(got_k, k) and torch.equal(got_v, v)
    cache.move_row(0, 2, 7 + k.shape[2])
    assert torch.equal(cache.get(1, slice(0, 1), 7, 7 + k.shape[2])[0], k[2:3])
    # compaction's move: columns [BLOCK + 3, end) to [2, ...), overlapping
    end = 7 + k.shape[2]
    cache.put(1, slice(None), 2, *cache.get(1, slice(None), BLOCK + 3, end))
    assert torch.equal(cache.get(1, slice(1, 2), 2, 2 + end - BLOCK - 3)[1], v[1:2, :, BLOCK - 4 :])


def test_engine_gives_the_same_tokens_with_and_without_it(student, prompt_ids):
    tok = student.tokenizer
    eos = [tok.eos_token_id]
    outs = {}
    for fast in (True, False):
        eng = ContinuousBatcher(student.model, tok, slots=4, fast_decode=fast)
        assert eng.fast_decode is fast
        greedy = eng.run(prompt_ids, SamplingParams(n=1, temperature=0.0, max_new_tokens=24), eos)
        sampled = eng.run(prompt_ids, SamplingParams(n=2, temperature=0.8, top_p=0.9, max_new_tokens=24, seed=7), eos)
        outs[fast] = (greedy, sampled)
    assert outs[True][0] == outs[False][0]
    assert outs[True][1] == outs[False][1]


def test_models_it_does_not_reproduce_are_refused(student, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    assert supports_fast_decode(student.model)
    lora = get_peft_model(type(student.model)(student.model.config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert not supports_fast_decode(lora)
    qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=4, num_key_value_heads=2))
    assert not supports_fast_decode(qwen)
    # The engine takes the transformers forward for them.
    assert not ContinuousBatcher(lora, student.tokenizer).fast_decode
