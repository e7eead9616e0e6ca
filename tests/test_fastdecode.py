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
from tripost.student.fastdecode import FastDecoder, supports_fast_decode  # noqa: E402
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
        cap = n + 5  # columns past the sequence hold zeros and are masked
        with torch.no_grad():
            want = model(input_ids=torch.tensor([ids])).logits[0, -1]
            cache = model(input_ids=torch.tensor([ids[:-1]]), use_cache=True).past_key_values
            keys_t = [torch.zeros((1, kv, d, cap)) for _ in range(cfg.num_hidden_layers)]
            values = [torch.zeros((1, kv, cap, d)) for _ in range(cfg.num_hidden_layers)]
            for layer in range(cfg.num_hidden_layers):
                keys_t[layer][0, :, :, : n - 1] = cache.layers[layer].keys[0].transpose(-1, -2)
                values[layer][0, :, : n - 1] = cache.layers[layer].values[0]
            allowed = torch.ones((1, n), dtype=torch.bool)
            got = fast.step(torch.tensor([ids[-1]]), torch.tensor([n - 1]), allowed, keys_t, values, n - 1)[0]
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        # the step wrote the new token's key and value at column n - 1
        assert bool(keys_t[0][0, :, :, n - 1].abs().sum() > 0) and bool(values[0][0, :, n - 1].abs().sum() > 0)


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
