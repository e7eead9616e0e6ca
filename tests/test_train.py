"""Weighted SFT (tripost.train) on the tiny random model with the real tokenizer."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")

from tripost.errors import TripostError  # noqa: E402
from tripost.student.prompt import build_prompt  # noqa: E402
from tripost.train import (  # noqa: E402
    TrainConfig,
    WeightedCollator,
    feedback_offset,
    is_trained,
    load_for_training,
    tokenize_example,
    train_sft,
    weighted_causal_lm_loss,
)

ATTEMPT = "(1) 2 + 3 = 6.\n(Final response) So the answer is 6."
FEEDBACK = 'Feedback: In step (1) the part "2 + 3 = 6" is incorrect. This is because 2 + 3 = 5.'
UPDATED = "Updated Answer: (1) 2 + 3 = 5.\n(Final response) So the answer is 5."
CLOSING = "Feedback: Step (1) is correct. The final response is also correct."
TRAJECTORY = "\n".join([ATTEMPT, FEEDBACK, UPDATED, CLOSING])
DIRECT = "(1) a comes before b.\n(Final response) So the answer is a b.\n" + CLOSING


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tripost.student.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tok(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny))


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def _cfg(tiny, **kw):
    # fp32 without autocast, named: these test logic, so they must not follow
    # what `auto` picks on the suite's machine (the bf16 path: test_hardware.py).
    base = dict(student=f"hf:{tiny}", mode="lora", precision="fp32", batch_size=4, learning_rate=1e-2, warmup=0.0,
                lora_dropout=0.0, logging_steps=1, progress=False, group_by_length=True, mixed_precision="no")
    base.update(kw)
    return TrainConfig(**base)


def _buffer(n=8):
    rows = [("What is 2 + 3?", TRAJECTORY), ("Sort the words: b a", DIRECT)]
    rows = [rows[i % 2] for i in range(n)]
    return datasets.Dataset.from_dict({
        "prompt": [r[0] for r in rows], "completion": [r[1] for r in rows],
        "weight": [1.0 + (i % 2) for i in range(n)],
    })


# ------------------------------------------------------------ weight masks ---


def test_weight_mask_is_exact_token_by_token(tok):
    prompt = build_prompt(tok, "What is 2 + 3?")
    ex = tokenize_example(tok, prompt, TRAJECTORY)
    p = _ids(tok, prompt)  # chat-templated prompts carry their own special tokens
    a = _ids(tok, ATTEMPT + "\n")
    f = _ids(tok, TRAJECTORY[len(ATTEMPT) + 1:])
    # Newlines end pre-tokenised words, so the parts tokenise alone as in the whole.
    assert ex.input_ids == p + a + f + [tok.eos_token_id]
    assert ex.weights == [0.0] * len(p) + [1.0] * len(a) + [1.5] * len(f) + [1.5]
    assert ex.prompt_len == len(p) and ex.feedback_start == len(p) + len(a)
    pieces = tok.convert_ids_to_tokens(ex.input_ids)
    k = ex.feedback_start
    assert pieces[k - 1] == "Ċ" and ex.weights[k - 1] == 1.0  # the newline closes the attempt
    assert pieces[k] == "Feed" and ex.weights[k] == 1.5
    assert tok.decode(ex.input_ids[k:-1]) == TRAJECTORY[len(ATTEMPT) + 1:]
    assert tok.decode(ex.input_ids[len(p):k]) == ATTEMPT + "\n"
    # The prompt is the student's sampling prompt, byte for byte.
    assert tok.decode(ex.input_ids[: ex.prompt_len]) == prompt


def test_weights_are_configurable_and_without_feedback_all_attempt(tok):
    prompt = build_prompt(tok, "Q?")
    ex = tokenize_example(tok, prompt, ATTEMPT, prompt_weight=0.25, attempt_weight=2.0, feedback_weight=9.0, example_weight=0.5)
    n = ex.prompt_len
    assert ex.feedback_start is None
    assert ex.weights[:n] == [0.25] * n
    assert ex.weights[n:] == [1.0] * (len(ex) - n)  # attempt 2.0 x example 0.5, EOS included
    assert ex.input_ids[-1] == tok.eos_token_id


def test_revised_attempt_weight_acts_only_on_an_attempt_that_is_revised(tok):
    prompt = build_prompt(tok, "What is 2 + 3?")
    ex = tokenize_example(tok, prompt, TRAJECTORY, revised_attempt_weight=0.0)
    n, k = ex.prompt_len, ex.feedback_start
    assert ex.weights[n:k] and all(w == 0.0 for w in ex.weights[n:k])  # the wrong attempt: masked
    assert all(w == 1.5 for w in ex.weights[k:])  # feedback, update, closing feedback, EOS: as before
    same = tokenize_example(tok, prompt, TRAJECTORY)
    assert ex.input_ids == same.input_ids and ex.weights[k:] == same.weights[k:]
    # A direct answer (attempt + all-correct feedback, no revision) keeps attempt_weight.
    d = tokenize_example(tok, prompt, DIRECT, attempt_weight=1.0, revised_attempt_weight=0.0)
    assert d.weights == tokenize_example(tok, prompt, DIRECT).weights
    assert 1.0 in d.weights[d.prompt_len:]
    # "Updated Answer:" quoted inside feedback, not starting a line, is no revision.
    quoted = ATTEMPT + '\nFeedback: the words "Updated Answer: x" are not a line start.'
    q = tokenize_example(tok, prompt, quoted, revised_attempt_weight=0.0)
    assert q.weights == tokenize_example(tok, prompt, quoted).weights


def test_revised_attempt_weight_through_prepare_dataset(tiny, tok):
    import datasets

    from tripost.train import prepare_dataset

    rows = datasets.Dataset.from_dict({"prompt": ["What is 2 + 3?", "Q?"], "completion": [TRAJECTORY, DIRECT]})
    masked, _ = prepare_dataset(rows, tok, _cfg(tiny, revised_attempt_weight=0))
    plain, _ = prepare_dataset(rows, tok, _cfg(tiny))
    assert masked["input_ids"] == plain["input_ids"]
    assert masked["loss_weights"][1] == plain["loss_weights"][1]
    assert sum(masked["loss_weights"][0]) < sum(plain["loss_weights"][0])
    with pytest.raises(TripostError, match="revised_attempt_weight"):
        TrainConfig(revised_attempt_weight=-0.5)


def test_tokens_after_an_eos_inside_the_completion_weigh_nothing(tok):
    ex = tokenize_example(tok, build_prompt(tok, "Q?"), "(1) x.<|im_end|>junk after the end")
    eos_at = ex.input_ids.index(tok.eos_token_id, ex.prompt_len)
    assert ex.weights[eos_at] == 1.0
    assert ex.weights[eos_at + 1:] and all(w == 0.0 for w in ex.weights[eos_at + 1:])


def test_feedback_offset_needs_a_line_start():
    assert feedback_offset("(1) a\nFeedback: ok") == 6
    assert feedback_offset('(1) the word "Feedback: x" inside') is None
    assert feedback_offset("no feedback") is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    attempt=st.text(st.sampled_from("abc (1)=+.0123\t"), min_size=1, max_size=40).filter(lambda s: s.strip()),
    tail=st.text(st.sampled_from("xyz Step(2).\n\"'"), max_size=40),
)
def test_weight_regions_cover_exactly_their_text(tok, attempt, tail):
    completion = f"{attempt}\nFeedback: {tail}"
    ex = tokenize_example(tok, "P:", completion)
    w, ids, n = ex.weights, ex.input_ids, ex.prompt_len
    assert all(x == 0.0 for x in w[:n])
    # Non-decreasing 1.0 ... 1.5 after the prompt: one switch, at the feedback.
    comp = w[n:]
    assert set(comp) <= {1.0, 1.5} and comp == sorted(comp) and comp[-1] == 1.5
    k = ex.feedback_start
    assert tok.decode(ids[n:k]) + tok.decode(ids[k:-1]) == completion
    assert "Feedback:" in tok.decode(ids[k:k + 4]) and "Feedback" not in tok.decode(ids[n:k])


def test_collator_pads_right_with_zero_weight(tok):
    a = tokenize_example(tok, "P:", ATTEMPT)
    b = tokenize_example(tok, "P:", TRAJECTORY)
    batch = WeightedCollator(pad_token_id=tok.pad_token_id, pad_to_multiple_of=8)(
        [{"input_ids": a.input_ids, "loss_weights": a.weights}, {"input_ids": b.input_ids, "loss_weights": b.weights}]
    )
    width = batch["input_ids"].shape[1]
    assert width % 8 == 0 and width >= len(b)
    assert batch["attention_mask"][0].tolist() == [1] * len(a) + [0] * (width - len(a))
    assert batch["loss_weights"][0, len(a):].abs().sum() == 0
    assert batch["loss_weights"][1, : len(b)].tolist() == pytest.approx(b.weights)


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(1, 500), min_size=1, max_size=120), bs=st.integers(1, 9), mega=st.integers(1, 4))
def test_length_buckets_are_a_permutation_of_sorted_runs(lengths, bs, mega):
    from tripost.train import LengthBucketSampler

    torch.manual_seed(0)
    order = list(LengthBucketSampler(lengths, bs, mega=mega))
    assert sorted(order) == list(range(len(lengths)))
    batches = [order[i:i + bs] for i in range(0, len(order), bs)]
    # Every batch but the last is full, and each batch is one sorted run of its
    # mega-batch: no example outside it lies strictly between its shortest and longest.
    assert all(len(b) == bs for b in batches[:-1])
    # The longest batch comes first (an out-of-memory error shows at step 1),
    # unless the longest example sits in the short last batch, which stays last.
    full = batches if len(batches[-1]) == bs else batches[:-1]
    if full:
        assert max(lengths[i] for i in batches[0]) == max(lengths[i] for b in full for i in b)
    if mega * bs >= len(lengths):
        for b in batches:
            lo, hi = min(lengths[i] for i in b), max(lengths[i] for i in b)
            inside = sum(lo < lengths[i] < hi for i in range(len(lengths)) if i not in b)
            assert inside == 0


# -------------------------------------------------------------------- loss ---


def _batch(tok, **weights):
    exs = [tokenize_example(tok, build_prompt(tok, q), c, **weights) for q, c in [("What is 2 + 3?", TRAJECTORY), ("Sort: b a", DIRECT), ("Q?", ATTEMPT)]]
    return WeightedCollator(pad_token_id=tok.pad_token_id)([{"input_ids": e.input_ids, "loss_weights": e.weights} for e in exs])


def test_all_weights_one_is_the_standard_causal_lm_loss(tiny, tok):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32).eval()
    b = _batch(tok, prompt_weight=1.0, attempt_weight=1.0, feedback_weight=1.0)
    labels = b["input_ids"].masked_fill(b["attention_mask"] == 0, -100)
    with torch.no_grad():
        ours = weighted_causal_lm_loss(model, b["input_ids"], b["attention_mask"], b["loss_weights"])
        ref = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=labels).loss
        assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
        # Prompt at weight 0 (the default) is the standard loss with the prompt masked
        # out; this also runs the path that skips the prompt's logits.
        b = _batch(tok, attempt_weight=1.0, feedback_weight=1.0)
        labels = b["input_ids"].masked_fill(b["loss_weights"] == 0, -100)
        ours = weighted_causal_lm_loss(model, b["input_ids"], b["attention_mask"], b["loss_weights"])
        ref = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=labels).loss
        assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
        # The 1.5 weight: Σ w·CE over the number of target tokens (w > 0), as
        # the authors' LossMaskedTrainer divides by the loss mask's sum; by hand.
        b = _batch(tok)
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1].float()
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), b["input_ids"][:, 1:], reduction="none")
        w = b["loss_weights"][:, 1:]
        ours = weighted_causal_lm_loss(model, b["input_ids"], b["attention_mask"], b["loss_weights"])
        assert ours.item() == pytest.approx(((ce * w).sum() / (w > 0).sum()).item(), rel=1e-5)


def test_fused_head_path_matches_the_models_own_logits(tiny, tok, monkeypatch):
    # The loss may skip the model's head and apply it to weighted positions
    # only (in recomputed chunks); loss and gradients must not change.
    from transformers import AutoModelForCausalLM

    import tripost.train.loss as tr

    model = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32)
    b = _batch(tok)
    results = []
    for fused, chunk in ((False, tr._CHUNK_ELEMENTS), (True, tr._CHUNK_ELEMENTS), (True, 7 * model.config.vocab_size)):
        monkeypatch.setattr(tr, "_CHUNK_ELEMENTS", chunk)  # 7 rows a chunk: many chunks
        model.zero_grad()
        loss = weighted_causal_lm_loss(model, b["input_ids"], b["attention_mask"], b["loss_weights"], fused=fused)
        loss.backward()
        results.append((loss.item(), model.model.layers[0].mlp.down_proj.weight.grad.clone()))
    for loss, grad in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-5)
        torch.testing.assert_close(grad, results[0][1], rtol=1e-4, atol=1e-7)


def test_gradient_accumulation_normalises_over_the_whole_step(tiny, tmp_path):
    # SGD, no clipping: the update is lr x gradient, so 2 micro-batches of 2
    # must give exactly the update of one batch of 4 (Σ w·CE / #targets over all 4)...
    common = dict(max_steps=1, optim="sgd", max_grad_norm=0.0, learning_rate=10.0, save_steps=100)
    one = train_sft(_cfg(tiny, batch_size=4, grad_accum=1, gradient_checkpointing=False, **common), _buffer(4), tmp_path / "one")
    # ... with gradient checkpointing on too: recomputation must not change the gradient.
    two = train_sft(_cfg(tiny, batch_size=2, grad_accum=2, gradient_checkpointing=True, **common), _buffer(4), tmp_path / "two")
    assert one.final_loss == pytest.approx(two.final_loss, rel=1e-5)
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "one" / "adapter_model.safetensors")), load_file(str(tmp_path / "two" / "adapter_model.safetensors"))
    assert set(a) == set(b)
    moved = False
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
        moved |= "lora_B" in k and bool(a[k].abs().sum() > 0)
    assert moved  # the step did change the adapter


# ---------------------------------------------------------------- training ---


def test_training_lowers_the_loss_and_saves_a_plain_peft_adapter(tiny, tok, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "adapter"
    res = train_sft(_cfg(tiny, max_steps=6, save_steps=100), _buffer(8), out)
    assert res.steps == 6 and res.examples == 8 and is_trained(out)
    assert 0 < res.weighted_tokens <= res.tokens <= res.padded_tokens
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "train_config.json", "train_metrics.json"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()  # removed once the adapter is saved
    assert json.loads((out / "train_config.json").read_text())["feedback_weight"] == 1.5
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert [p["step"] for p in metrics["loss_curve"]] == [1, 2, 3, 4, 5, 6]

    b = _batch(tok)
    base = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32).eval()
    with torch.no_grad():
        before = weighted_causal_lm_loss(base, b["input_ids"], b["attention_mask"], b["loss_weights"]).item()
        tuned = PeftModel.from_pretrained(base, str(out)).eval()  # plain peft, no tripost code
        after = weighted_causal_lm_loss(tuned, b["input_ids"], b["attention_mask"], b["loss_weights"]).item()
    assert after < before - 0.05
    assert metrics["loss_curve"][-1]["loss"] < metrics["loss_curve"][0]["loss"]


def test_qlora_nf4_path_trains_and_saves(tiny, tmp_path):
    # The default precision: NF4 base prepared for k-bit training, LoRA on top
    # (bitsandbytes runs NF4 on CPU too). One step; the adapter must move.
    from safetensors.torch import load_file

    res = train_sft(_cfg(tiny, precision="nf4", max_steps=1, save_steps=100), _buffer(4), tmp_path / "q")
    assert res.steps == 1 and res.final_loss is not None and res.final_loss == res.final_loss  # not NaN
    weights = load_file(str(tmp_path / "q" / "adapter_model.safetensors"))
    assert any("lora_B" in k and bool(v.abs().sum() > 0) for k, v in weights.items())
    assert json.loads((tmp_path / "q" / "tripost-student.json").read_text())["precision"] == "nf4"


class _Crash(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_checkpoint(tiny, tmp_path):
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    class CrashAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == 2:
                raise _Crash()

    cfg = _cfg(tiny, max_steps=4, save_steps=2, batch_size=2, lora_dropout=0.1)
    with pytest.raises(_Crash):
        train_sft(cfg, _buffer(8), tmp_path / "run", callbacks=[CrashAfterSave()])
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir() and not is_trained(tmp_path / "run")
    resumed = train_sft(cfg, _buffer(8), tmp_path / "run")
    assert resumed.resumed_from and resumed.resumed_from.endswith("checkpoint-2")
    assert resumed.steps == 4
    straight = train_sft(cfg, _buffer(8), tmp_path / "straight")
    assert straight.resumed_from is None
    a = load_file(str(tmp_path / "run" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "adapter_model.safetensors"))
    for k in a:  # same data order, dropout masks and optimizer state as one straight run
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_continuing_from_an_adapter_starts_from_its_weights_trainable(tiny, tmp_path):
    from safetensors.torch import load_file

    first = tmp_path / "it1"
    train_sft(_cfg(tiny, max_steps=2, save_steps=100), _buffer(4), first)
    saved = load_file(str(first / "adapter_model.safetensors"))
    student = load_for_training(_cfg(tiny, adapter=str(first)))
    params = {n: p for n, p in student.model.named_parameters() if p.requires_grad}
    assert params and all("lora_" in n for n in params)
    for key, value in saved.items():  # adapter keys drop the adapter name ("default")
        match = [p for n, p in params.items() if n.replace(".default", "").endswith(key.removeprefix("base_model.model."))]
        assert len(match) == 1, key
        torch.testing.assert_close(match[0].detach(), value)
    res = train_sft(_cfg(tiny, adapter=str(first), max_steps=1, save_steps=100), _buffer(4), tmp_path / "it2")
    assert res.steps == 1 and json.loads((tmp_path / "it2" / "tripost-student.json").read_text())["continued_from"] == str(first.resolve())


def test_example_weight_multiplier_is_off_by_default(tiny, tok):
    from tripost.train import prepare_dataset

    ds = _buffer(2)  # weights 1.0 and 2.0
    off, _ = prepare_dataset(ds, tok, _cfg(tiny))
    on, _ = prepare_dataset(ds, tok, _cfg(tiny, use_example_weight=True))
    assert on[1]["loss_weights"] == [2 * w for w in off[1]["loss_weights"]]
    assert off[0]["loss_weights"] == on[0]["loss_weights"]


# ------------------------------------------------------------ bad input ---


def test_bad_config_and_input_are_one_line_errors(tiny, tok):
    from tripost.train import prepare_dataset

    with pytest.raises(TripostError, match="unknown train config key 'epoch'"):
        TrainConfig.from_dict({"epoch": 2})
    with pytest.raises(TripostError, match="precision"):
        TrainConfig(precision="int3")
    with pytest.raises(TripostError, match="feedback_weight"):
        TrainConfig(feedback_weight=-1)
    with pytest.raises(TripostError, match="no 'completion' column"):
        prepare_dataset(datasets.Dataset.from_dict({"prompt": ["q"]}), tok, _cfg(tiny))
    with pytest.raises(TripostError, match="longer than max_length=8"):
        prepare_dataset(_buffer(2), tok, _cfg(tiny, max_length=8))


def _cli(argv):
    """`tripost ...` through the real entry point; if the verb is not wired into
    the command yet, through a parser holding just this verb, the same way."""
    from tripost import cli

    if "tripost.cli.train_cmd" in cli.VERB_MODULES:
        return cli.main(argv)
    from tripost.cli import train_cmd

    parser = cli._Parser(prog="tripost")
    train_cmd.register(parser.add_subparsers(dest="verb", parser_class=cli._Parser))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except TripostError as e:
        print(f"tripost {args.verb}: error: {e}", file=__import__("sys").stderr)
        return e.exit_code


def test_cli_train_end_to_end_and_errors(tiny, tmp_path, capsys):
    from tripost.buffer import BufferStats, Example, save_buffer

    ex = [Example(prompt="What is 2 + 3?", completion=TRAJECTORY, kind="improvement", family="arithmetic", difficulty="1",
                  subset="seen", problem_id="p1", iteration=1, n_edits=1)] * 4
    save_buffer(ex, BufferStats(), tmp_path / "buf")
    out = tmp_path / "ad"
    code = _cli(["train", "--student", f"hf:{tiny}", "--buffer", str(tmp_path / "buf"), "--out", str(out),
                 "--precision", "fp32", "max_steps=1", "batch_size=2", "progress=false", "--json"])
    assert code == 0 and is_trained(out)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 1 and summary["out_dir"] == str(out)

    assert _cli(["train", "--student", f"hf:{tiny}", "--buffer", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _cli(["train", "--student", f"hf:{tiny}", "--buffer", str(tmp_path / "buf"), "--out", str(out), "epoch=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown config key" in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------- packing ---


def _examples(tok):
    pairs = [("What is 2 + 3?", TRAJECTORY), ("Sort: b a", DIRECT), ("Q?", ATTEMPT), ("What is 7 - 1?", ATTEMPT + "\n" + CLOSING)]
    exs = [tokenize_example(tok, build_prompt(tok, q), c, prompt_weight=0.5) for q, c in pairs]
    return [{"input_ids": e.input_ids, "loss_weights": e.weights} for e in exs]


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_packed_rows_give_the_padded_batch_loss_and_gradients(tiny, tok, mode):
    # One packed row (positions restarting per example, attention per example)
    # must train exactly like the right-padded batch of the same examples: same
    # weighted loss, same gradient on every trainable weight. prompt_weight > 0,
    # so an example's first token would be a target if packing let it be.
    from tripost.train import PackedCollator, TrainSetup, load_for_training

    feats = _examples(tok)
    padded = WeightedCollator(pad_token_id=tok.pad_token_id)(feats)
    packed = PackedCollator()(feats)
    assert packed["input_ids"].shape == (1, sum(len(f["input_ids"]) for f in feats))
    assert packed["packed_seq_lens"] == [len(f["input_ids"]) for f in feats]
    grads = []
    for pack in (False, True):
        cfg = _cfg(tiny, mode=mode)
        setup = TrainSetup(device="cpu", mode=mode, precision="fp32", autocast="no", gradient_checkpointing=False, packing=pack, compile=False)
        model = load_for_training(cfg, setup).model
        if mode == "lora":  # B = 0 at init: give the adapter a non-trivial state
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if "lora_B" in n:
                        p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(n))) * 0.05)
        if pack:
            loss = weighted_causal_lm_loss(model, packed["input_ids"], None, packed["loss_weights"],
                                           position_ids=packed["position_ids"], packed_seq_lens=packed["packed_seq_lens"])
        else:
            loss = weighted_causal_lm_loss(model, padded["input_ids"], padded["attention_mask"], padded["loss_weights"])
        loss.backward()
        grads.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}))
    (l0, g0), (l1, g1) = grads
    assert l1 == pytest.approx(l0, rel=1e-5)
    assert set(g0) == set(g1) and g0
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], rtol=1e-4, atol=1e-6, msg=n)


def test_packed_attention_sees_nothing_across_examples(tiny, tok):
    # Changing the first example must not change the second example's logits.
    from transformers import AutoModelForCausalLM

    from tripost.train import PackedCollator, use_packed_attention

    model = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32).eval()
    use_packed_attention(model)
    feats = _examples(tok)
    other = [{**feats[0], "input_ids": [(t + 7) % 1000 for t in feats[0]["input_ids"]]}, feats[1]]
    outs = []
    for f in ([feats[0], feats[1]], other):
        b = PackedCollator()(f)
        with torch.no_grad():
            logits = model(input_ids=b["input_ids"], position_ids=b["position_ids"], packed_seq_lens=b["packed_seq_lens"]).logits
        outs.append(logits[0, len(f[0]["input_ids"]):])
    torch.testing.assert_close(outs[0], outs[1])


@pytest.mark.parametrize("n", [1, 5, 64, 130])
def test_matmul_attention_matches_fp32_attention_as_closely_as_sdpa_in_bf16(n):
    # The bf16 matmul attention (loss.py: bf16 packed rows on a CPU) against
    # SDPA in fp32 on the same bf16 inputs, output and all three gradients,
    # GQA included: no further from it than SDPA's own bf16 kernel.
    import torch.nn.functional as F

    from tripost.train import matmul_causal_attention

    gen = torch.Generator().manual_seed(n)
    heads, kv, dim = 6, 2, 16
    q, k, v = (torch.randn(1, h, n, dim, generator=gen).to(torch.bfloat16).requires_grad_() for h in (heads, kv, kv))
    grad = torch.randn(1, heads, n, dim, generator=gen).to(torch.bfloat16)
    scale = dim**-0.5

    def sdpa(q, k, v):
        rep = heads // kv
        return F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), is_causal=True, scale=scale)

    def run(fn, dtype):
        leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        out.backward(grad.to(dtype))
        return [out.detach().float()] + [t.grad.float() for t in leaves]

    ref = run(sdpa, torch.float32)
    flash = run(sdpa, torch.bfloat16)
    mine = run(lambda a, b, c: matmul_causal_attention(a, b, c, scale, torch.bfloat16), torch.bfloat16)
    for name, r, f, m in zip(("out", "dq", "dk", "dv"), ref, flash, mine):
        assert m.shape == r.shape and m.dtype == r.dtype, name
        err, flash_err = (m - r).abs().max().item(), (f - r).abs().max().item()
        assert err <= 2 * flash_err + 1e-2 * r.abs().max().item(), (name, err, flash_err)


def test_packed_attention_in_bf16_takes_the_matmuls_and_keeps_examples_apart(tiny, tok):
    # Under CPU bf16 autocast, short examples take the matmul attention: the
    # packed row's logits match each example run alone (nothing crosses a
    # boundary), and the gradients reach every parameter.
    from transformers import AutoModelForCausalLM

    from tripost.train import PackedCollator, use_packed_attention

    model = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32)
    use_packed_attention(model)
    feats = _examples(tok)
    b = PackedCollator()(feats)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        packed = model(input_ids=b["input_ids"], position_ids=b["position_ids"], packed_seq_lens=b["packed_seq_lens"]).logits
        alone = [model(input_ids=torch.tensor([f["input_ids"]])).logits[0] for f in feats]
    torch.testing.assert_close(packed[0].float(), torch.cat(alone).float(), rtol=0.05, atol=0.1)
    packed.float().logsumexp(-1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "layers.0." in n)


# ------------------------------------------------------------------- setup ---


def test_setup_on_cpu_resolves_every_auto_and_says_why(tiny, monkeypatch, simulate):
    import tripost.train.setup as tr

    simulate("avx2")  # an AVX2-only CPU, whatever this one is (test_hardware.py: every kind)
    cfg = TrainConfig(student=f"hf:{tiny}")
    s = tr.resolve_setup(cfg, device="cpu")
    assert (s.mode, s.precision, s.autocast, s.packing, s.gradient_checkpointing, s.compile) == ("full", "fp32", "no", True, False, False)
    assert any("mode auto: full" in r for r in s.reasons)
    assert any("AVX2-only" in r for r in s.reasons)
    assert "packed rows" in s.describe() and "fp32 weights" in s.describe()
    monkeypatch.setattr(tr, "available_memory_bytes", lambda dev: 1000)  # no room for full training state
    assert tr.resolve_setup(cfg, device="cpu").mode == "lora"
    # Activations that would not fit switch checkpointing on.
    from transformers import AutoConfig

    mc = AutoConfig.from_pretrained(str(tiny))
    assert tr.resolve_setup(cfg, device="cpu", model_config=mc, max_batch_tokens=4096).gradient_checkpointing
    monkeypatch.setattr(tr, "available_memory_bytes", lambda dev: 2**40)
    assert not tr.resolve_setup(cfg, device="cpu", model_config=mc, max_batch_tokens=4096).gradient_checkpointing
    # Explicit settings win; true/false mean on/off.
    s = tr.resolve_setup(TrainConfig(student=f"hf:{tiny}", gradient_checkpointing=True, packing=False, precision="bf16"), device="cpu")
    assert (s.gradient_checkpointing, s.packing, s.precision, s.autocast) == (True, False, "bf16", "no")


def test_checkpointing_counts_the_probabilities_bf16_matmul_attention_keeps(tiny, monkeypatch, simulate):
    # Packed rows in bf16 on a CPU keep each short example's attention
    # probabilities for backward (loss.py): the activation estimate counts
    # them, so free memory between the two estimates turns checkpointing on.
    import tripost.train.setup as tr
    from transformers import AutoConfig

    simulate("avx512_bf16")
    mc = AutoConfig.from_pretrained(str(tiny))
    plain = tr.activation_bytes_per_token(mc, "full", 0.0, True)
    with_probs = tr.activation_bytes_per_token(mc, "full", 0.0, True, matmul_attention=True)
    assert with_probs - plain == mc.num_hidden_layers * mc.num_attention_heads * tr.MATMUL_ATTENTION_MAX_TOKENS * 2
    tokens = 1 << 20
    monkeypatch.setattr(tr, "available_memory_bytes", lambda dev: int(tokens * (plain + with_probs) / 2 / tr.ACTIVATION_MEMORY_SHARE))
    s = tr.resolve_setup(TrainConfig(student=f"hf:{tiny}"), device="cpu", model_config=mc, max_batch_tokens=tokens)
    assert (s.mode, s.autocast, s.packing, s.gradient_checkpointing) == ("full", "bf16", True, True)
    s = tr.resolve_setup(TrainConfig(student=f"hf:{tiny}", packing="off"), device="cpu", model_config=mc, max_batch_tokens=tokens)
    assert not s.gradient_checkpointing  # padded batches attend through SDPA and keep no probabilities


def test_bad_mode_and_switch_values_are_one_line_errors(tiny):
    with pytest.raises(TripostError, match="unknown train mode 'half'"):
        TrainConfig(mode="half")
    with pytest.raises(TripostError, match="full fine-tuning cannot train 4-bit"):
        TrainConfig(mode="full", precision="nf4")
    with pytest.raises(TripostError, match="packing must be one of auto, on, off"):
        TrainConfig(packing="sometimes")


# --------------------------------------------------------------- full mode ---


def test_full_fine_tuning_saves_weights_the_student_loads_and_continues(tiny, tok, tmp_path):
    from tripost.student.load import check_adapter_dir, is_full_weights, is_trained_weights, load_student

    out = tmp_path / "full"
    res = train_sft(_cfg(tiny, mode="full", max_steps=3, learning_rate=1e-3, save_steps=100), _buffer(8), out)
    assert res.setup["mode"] == "full" and res.trainable_params > 1_000_000
    assert is_full_weights(out) and is_trained_weights(out) and check_adapter_dir(out) == out.resolve()
    assert not (out / "adapter_config.json").exists()
    cfg_json = json.loads((out / "config.json").read_text())
    assert cfg_json.get("_attn_implementation", "sdpa") in ("sdpa", None)  # no trainer-only attention in a saved model
    base = load_student(f"hf:{tiny}", "fp32")
    tuned = load_student(f"hf:{tiny}", "fp32", adapter=out)
    assert tuned.adapter == out.resolve() and not tuned.has_lora
    w0 = base.model.model.layers[0].mlp.down_proj.weight
    w1 = tuned.model.model.layers[0].mlp.down_proj.weight
    assert not torch.equal(w0, w1)  # the fine-tuned weights, not the base's
    # Iteration t+1 continues from them (full), and refuses a LoRA on top.
    res2 = train_sft(_cfg(tiny, mode="full", max_steps=1, adapter=str(out), save_steps=100), _buffer(4), tmp_path / "next")
    assert res2.steps == 1 and is_full_weights(tmp_path / "next")
    with pytest.raises(TripostError, match="holds fully fine-tuned weights"):
        train_sft(_cfg(tiny, mode="lora", max_steps=1, adapter=str(out)), _buffer(4), tmp_path / "bad")


# --------------------------------------------------------------- report_to ---


# transformers' integrations module, imported here for its names, sets off torch.jit deprecation warnings.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_report_to_names_are_transformers_own_and_checked_up_front(monkeypatch):
    import importlib.util

    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    from tripost.runconfig import RunConfig
    from tripost.train import REPORTERS, report_targets

    assert set(REPORTERS) == set(INTEGRATION_TO_CALLBACK)  # a tracker transformers adds or drops shows here
    assert TrainConfig().report_to == "none" and RunConfig.defaults()["train"]["report_to"] == "none"
    assert report_targets("none") == [] and report_targets("") == [] and report_targets(" none ") == []
    for bad, message in [("tensorbored", "unknown tracker 'tensorbored'"), ("none,wandb", "cannot be combined"),
                         ("all", "unknown tracker 'all'")]:
        with pytest.raises(TripostError, match=message) as e:
            TrainConfig(report_to=bad)
        assert "\n" not in str(e.value) and "train.report_to" in str(e.value)
    # A tracker whose package is missing: one line naming what to install,
    # whether or not this machine has it.
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("tensorboard", "tensorboardX", "wandb") else real(name, *a))
    for value, package in [("tensorboard", "tensorboard"), ("tensorboard, wandb", "tensorboard"), ("wandb", "wandb")]:
        with pytest.raises(TripostError, match=f"needs the {package} package.*pip install {package}$") as e:
            TrainConfig(report_to=value)
        assert "\n" not in str(e.value)


def test_report_to_tensorboard_writes_under_out_logs(tiny, tmp_path, capsys):
    import importlib.util

    from tripost.buffer import BufferStats, Example, save_buffer

    have = any(importlib.util.find_spec(m) is not None for m in ("tensorboard", "tensorboardX"))
    ex = [Example(prompt="What is 2 + 3?", completion=TRAJECTORY, kind="improvement", family="arithmetic", difficulty="1",
                  subset="seen", problem_id="p1", iteration=1, n_edits=1)] * 4
    save_buffer(ex, BufferStats(), tmp_path / "buf")
    out = tmp_path / "ad"
    argv = ["train", "--student", f"hf:{tiny}", "--buffer", str(tmp_path / "buf"), "--out", str(out),
            "--precision", "fp32", "max_steps=2", "batch_size=2", "logging_steps=1", "progress=false", "report_to=tensorboard"]
    code = _cli(argv)
    if not have:  # without the package: the one-line error, before anything is loaded or written
        assert code == 2 and not out.exists()
        assert "pip install tensorboard" in capsys.readouterr().err
        pytest.skip("tensorboard (or tensorboardX) is not installed: checked the error only")
    assert code == 0 and is_trained(out)
    events = list((out / "logs").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0  # the loss curve, kept after OUT/checkpoints is removed
    assert not (out / "checkpoints").exists()
    assert json.loads((out / "train_config.json").read_text())["report_to"] == "tensorboard"


def test_a_token_budget_sets_how_much_is_trained_whatever_the_data_size(tiny, tmp_path):
    """train.token_budget: epochs = budget / the set's tokens, so two sets of
    different sizes train about the same number of tokens (one batch apart)."""
    one = train_sft(_cfg(tiny, epochs=1.0, save_steps=100, group_by_length=False), _buffer(8), tmp_path / "one")
    per_pass = one.tokens
    for n, out in ((8, "small"), (16, "big")):
        res = train_sft(_cfg(tiny, token_budget=3 * per_pass, save_steps=100, group_by_length=False), _buffer(n), tmp_path / out)
        batch = 4 * max(1, per_pass // 8)  # tokens of one batch, about
        assert abs(res.tokens - 3 * per_pass) <= batch, (n, res.tokens, per_pass)
    with pytest.raises(TripostError, match="token_budget or max_steps"):
        _cfg(tiny, token_budget=10, max_steps=2).check()
    with pytest.raises(TripostError, match="token_budget must be a whole number"):
        _cfg(tiny, token_budget=-1).check()
