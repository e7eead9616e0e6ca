"""How much an example trains (issue 27, item 8): the loss is Σ w·CE over the
number of target tokens (w > 0), as the TriPosT authors' trainer divides, so
token and example weights scale the update instead of being normalised away
by the step's total weight; still exact across gradient accumulation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")

from tripost.student.prompt import build_prompt  # noqa: E402
from tripost.train import TrainConfig, WeightedCollator, tokenize_example, train_sft, weighted_causal_lm_loss  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ATTEMPT = "(1) 2 + 3 = 6.\n(Final response) So the answer is 6."
TRAJECTORY = "\n".join([ATTEMPT, 'Feedback: In step (1) the part "2 + 3 = 6" is incorrect. This is because 2 + 3 = 5.',
                        "Updated Answer: (1) 2 + 3 = 5.\n(Final response) So the answer is 5.",
                        "Feedback: Step (1) is correct. The final response is also correct."])
DIRECT = "(1) a comes before b.\n(Final response) So the answer is a b."


def _cfg(tiny, **kw):
    # fp32 without autocast, named (not what `auto` picks on this machine);
    # plain SGD without clipping: the update is lr x gradient.
    base = dict(student=f"hf:{tiny}", mode="lora", precision="fp32", mixed_precision="no", lora_dropout=0.0, warmup=0.0,
                optim="sgd", max_grad_norm=0.0, learning_rate=10.0, max_steps=1, save_steps=100, logging_steps=1,
                progress=False, group_by_length=True, packing="off")
    base.update(kw)
    return TrainConfig(**base)


def _rows(weights):
    texts = [("What is 2 + 3?", TRAJECTORY), ("Sort the words: b a", DIRECT)]
    rows = [texts[i % 2] for i in range(len(weights))]
    return datasets.Dataset.from_dict({"prompt": [r[0] for r in rows], "completion": [r[1] for r in rows], "weight": list(weights)})


def _adapter(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_the_loss_divides_by_the_number_of_target_tokens(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    exs = [tokenize_example(tok, build_prompt(tok, q), c, example_weight=x)
           for (q, c), x in [(("What is 2 + 3?", TRAJECTORY), 1.0), (("Q?", DIRECT), 0.5), (("Q2?", ATTEMPT), 0.0)]]
    b = WeightedCollator(pad_token_id=tok.pad_token_id)([{"input_ids": e.input_ids, "loss_weights": e.weights} for e in exs])
    w = b["loss_weights"][:, 1:]
    assert set(w[0].unique().tolist()) == {0.0, 1.0, 1.5}  # the trajectory: prompt, attempt, feedback
    with torch.no_grad():
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1].float()
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), b["input_ids"][:, 1:], reduction="none")
        for fused in (True, False):
            ours = weighted_causal_lm_loss(model, b["input_ids"], b["attention_mask"], b["loss_weights"], fused=fused)
            # A 1.5 token counts 1.5 times a 1.0 token; the weight-0 example is no target at all.
            assert ours.item() == pytest.approx(((ce * w).sum() / (w > 0).sum()).item(), rel=1e-5)
            assert ours.item() != pytest.approx(((ce * w).sum() / w.sum()).item(), rel=1e-3)


def test_low_weight_examples_move_the_weights_less_than_the_same_examples_at_high_weight(tiny_model_dir, tmp_path):
    """One SGD step on the same four examples at example weight 0.1 and 0.9:
    with the loss divided by the step's total weight both steps were the same;
    divided by the number of target tokens the update scales with the weight."""
    low = train_sft(_cfg(tiny_model_dir, batch_size=4, use_example_weight=True), _rows([0.1] * 4), tmp_path / "low")
    high = train_sft(_cfg(tiny_model_dir, batch_size=4, use_example_weight=True), _rows([0.9] * 4), tmp_path / "high")
    assert low.steps == high.steps == 1
    a, b = _adapter(tmp_path / "low"), _adapter(tmp_path / "high")
    # A new adapter starts with lora_B = 0, so after one step lora_B is the update itself.
    keys = [k for k in a if "lora_B" in k]
    d_low = torch.sqrt(sum((a[k].double() ** 2).sum() for k in keys))
    d_high = torch.sqrt(sum((b[k].double() ** 2).sum() for k in keys))
    assert 0 < d_low < d_high
    assert (d_high / d_low).item() == pytest.approx(9.0, rel=1e-3)  # the update is linear in the weight
    for k in keys:
        torch.testing.assert_close(b[k], a[k] * 9.0, rtol=1e-3, atol=1e-7)
    assert high.final_loss == pytest.approx(9.0 * low.final_loss, rel=1e-4)


def test_weighted_examples_accumulate_exactly(tiny_model_dir, tmp_path):
    """Mixed example weights, 1 micro-batch of 4 vs 2 of 2: the step's token
    count is gathered over the micro-batches, so the update is the same."""
    rows = _rows([0.2, 1.7, 0.0, 1.0])
    one = train_sft(_cfg(tiny_model_dir, batch_size=4, grad_accum=1, use_example_weight=True), rows, tmp_path / "one")
    two = train_sft(_cfg(tiny_model_dir, batch_size=2, grad_accum=2, use_example_weight=True), rows, tmp_path / "two")
    assert one.final_loss == pytest.approx(two.final_loss, rel=1e-5)
    a, b = _adapter(tmp_path / "one"), _adapter(tmp_path / "two")
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    assert any("lora_B" in k and bool(v.abs().sum() > 0) for k, v in a.items())
