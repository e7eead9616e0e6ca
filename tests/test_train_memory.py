"""What keeps full fine-tuning's memory down (tripost.train): the loss head's
gradients computed chunk by chunk in the forward pass, the tied embedding's
sparse gradient, and checkpointed training's lean heap. Each must leave the
loss, the gradients and the trained weights as they were."""

from __future__ import annotations

import datasets
import pytest
import torch

from tripost.student.prompt import build_prompt
from tripost.train import TrainConfig, WeightedCollator, sparse_tied_embedding_grad, tokenize_example, train_sft, weighted_causal_lm_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ANSWER = "(1) 2 + 3 = 5.\n(Final response) So the answer is 5.\nFeedback: Step (1) is correct. The final response is also correct."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tripost.student.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def untied(tmp_path_factory):
    from tripost.student.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("untied") / "model", tie_embeddings=False)


@pytest.fixture(scope="module")
def tok(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny))


def _batch(tok, **weights):
    exs = [tokenize_example(tok, build_prompt(tok, q), c, **weights) for q, c in [("What is 2 + 3?", ANSWER), ("Sort: b a", "(1) a b.\n"), ("Q?", ANSWER[:40])]]
    return WeightedCollator(pad_token_id=tok.pad_token_id)([{"input_ids": e.input_ids, "loss_weights": e.weights} for e in exs])


def _model(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)


def _grads(model, b, *, fused, rows=None, monkeypatch=None):
    import tripost.train.loss as tr

    if rows is not None:
        monkeypatch.setattr(tr, "_CHUNK_ELEMENTS", rows * model.config.vocab_size)
    model.zero_grad(set_to_none=True)
    loss = weighted_causal_lm_loss(model, b["input_ids"], b["attention_mask"], b["loss_weights"], fused=fused)
    loss.backward()
    return loss.item(), {n: p.grad.to_dense().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("rows", [None, 1, 7])
def test_fused_head_gives_every_gradient_of_the_models_own_head(tiny, tok, rows, monkeypatch):
    # Gradients computed in the forward pass, one chunk of rows at a time
    # (1 row: every row its own chunk): the same loss and the same gradient
    # for every weight as the model's own logits, the tied embedding included
    # (up to fp32 summation order: ~1e-6 on gradients of up to ~0.25).
    model = _model(tiny)
    b = _batch(tok)
    ref_loss, ref = _grads(model, b, fused=False)
    loss, got = _grads(model, b, fused=True, rows=rows, monkeypatch=monkeypatch)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert set(got) == set(ref)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-4, atol=2e-6, msg=name)


def test_fused_head_with_a_frozen_head_trains_the_rest(tiny, tok):
    # LoRA freezes the head: no gradient for it, the same for everything else.
    model = _model(tiny)
    b = _batch(tok)
    model.lm_head.weight.requires_grad_(False)
    _, ref = _grads(model, b, fused=False)
    _, got = _grads(model, b, fused=True)
    assert "lm_head.weight" not in got and "model.embed_tokens.weight" not in got
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-4, atol=2e-6, msg=name)


def test_sparse_tied_embedding_gradient_is_the_dense_one(tiny, untied, tok):
    model = _model(tiny)
    b = _batch(tok)
    _, dense = _grads(model, b, fused=True)
    assert sparse_tied_embedding_grad(model)
    assert model.get_input_embeddings().sparse
    _, sparse = _grads(model, b, fused=True)
    assert not model.get_input_embeddings().weight.grad.is_sparse  # what the optimizer sees
    for name in dense:
        torch.testing.assert_close(sparse[name], dense[name], rtol=1e-5, atol=1e-8, msg=name)
    # A micro-batch without a single target: the weight's gradient is still dense (zero).
    none = _batch(tok, attempt_weight=0.0, feedback_weight=0.0)
    model.zero_grad(set_to_none=True)
    weighted_causal_lm_loss(model, none["input_ids"], none["attention_mask"], none["loss_weights"]).backward()
    g = model.get_input_embeddings().weight.grad
    assert not g.is_sparse and not g.any()
    # Untied (the embedding's gradient would be its own, sparse) or frozen: left dense.
    assert not sparse_tied_embedding_grad(_model(untied))
    frozen = _model(tiny)
    frozen.get_input_embeddings().weight.requires_grad_(False)
    assert not sparse_tied_embedding_grad(frozen)


def _rows(n=8):
    return datasets.Dataset.from_dict({"prompt": [f"What is {i} + 3?" for i in range(n)], "completion": [ANSWER] * n})


def test_checkpointed_full_training_trains_the_same_weights(tiny, tmp_path):
    # Full fine-tuning, fused AdamW (the default), packed rows: with activation
    # checkpointing (and so the lean heap and the uncached autocast) the
    # weights after three steps are those of the same run without it.
    from safetensors.torch import load_file

    common = dict(student=f"hf:{tiny}", mode="full", precision="fp32", mixed_precision="no", batch_size=4, max_steps=3,
                  learning_rate=1e-3, warmup=0.0, save_steps=100, logging_steps=1, progress=False)
    assert TrainConfig().optim == "adamw_torch_fused"
    plain = train_sft(TrainConfig(gradient_checkpointing="off", **common), _rows(), tmp_path / "plain")
    lean = train_sft(TrainConfig(gradient_checkpointing="on", **common), _rows(), tmp_path / "lean")
    assert lean.setup["gradient_checkpointing"] and not plain.setup["gradient_checkpointing"]
    assert lean.final_loss == pytest.approx(plain.final_loss, rel=1e-5)
    a, b = load_file(str(tmp_path / "plain" / "model.safetensors")), load_file(str(tmp_path / "lean" / "model.safetensors"))
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6, msg=k)


def test_lean_checkpointing_turns_off_the_autocast_cache_and_keeps_the_heap(tiny, tmp_path):
    import sys

    import tripost.train as tr

    cfg = TrainConfig(student=f"hf:{tiny}", mode="full", precision="fp32", mixed_precision="bf16", gradient_checkpointing="on",
                      batch_size=4, max_steps=1, save_steps=100, progress=False)
    run = tr.prepare_run(cfg, _rows(4), tmp_path)
    assert run.setup.autocast == "bf16" and run.setup.gradient_checkpointing
    assert run.trainer.accelerator.autocast_handler.cache_enabled is False
    if sys.platform.startswith("linux"):
        heap = run.trainer.lean_heap
        assert heap is not None
        run.trainer.train()
        assert not heap.window  # the optimizer's first step is over: thresholds back where glibc's own end up
    # Without checkpointing: autocast as accelerate makes it, no heap handling.
    plain = tr.prepare_run(replace_cfg(cfg, gradient_checkpointing="off"), _rows(4), tmp_path / "plain")
    assert plain.trainer.lean_heap is None and plain.trainer.accelerator.autocast_handler is None


def replace_cfg(cfg, **kw):
    from dataclasses import replace

    return replace(cfg, **kw)
