"""The remote student engine (issue 19, item 4): a student behind an
OpenAI-compatible completions API (`tripost serve-student`, as vLLM serves
one), reached through the real `openai` SDK over loopback HTTP. The same
calls give the same texts and scores as the in-process student.

Issue 29, item 5: serve-student keeps vLLM's rules (at most 1,024 prompts a
request, BOS added unless `add_special_tokens` is false, text offsets as vLLM
computes them, `load_inplace`, unload, LoRA routes that can be off), and
RemoteStudent works within them: chunks of at most 1,024, the flag sent as
the student encodes, scores read by token id, one request per chunk of
sequences, adapters reloaded in place and the previous one unloaded."""

from __future__ import annotations

import json
import shutil

import openai
import pytest
import torch

from tripost.cli import main
from tripost.errors import TripostError
from tripost.serve.student_server import start_student_server
from tripost.student import SamplingParams, build_prompts, load_student
from tripost.student.remote import KEY_ENV, MAX_COMPLETION_PROMPTS, adapter_name, load_remote_student
from tripost.student.tokens import encode_continuation, encode_prompt
from tripost.tasks import get_task, sample_problems

TOKEN = "test-engine-token-0123456789"


@pytest.fixture(scope="module")
def spec(tiny_model_dir):
    return f"hf:{tiny_model_dir}"


@pytest.fixture(scope="module")
def local(spec):
    return load_student(spec, precision="fp32")


@pytest.fixture(scope="module")
def server(local):
    with start_student_server(local, name="tiny", token=TOKEN) as srv:
        yield srv


@pytest.fixture(scope="module")
def remote(spec, server):
    return load_remote_student(spec, server.url, "tiny", api_key=TOKEN)


@pytest.fixture(scope="module")
def prompts(local):
    problems = sample_problems(get_task("arithmetic"), n=3, seed=1)
    return build_prompts(local.tokenizer, [p.question for p in problems])


def test_sampling_through_the_server_equals_sampling_here(local, remote, prompts):
    params = SamplingParams(n=2, temperature=0.8, top_p=0.95, max_new_tokens=12, seed=7)
    here = local.sample(prompts, params)
    there = remote.sample(prompts, params)
    assert [[g.text for g in row] for row in there] == [[g.text for g in row] for row in here]
    assert [[(g.prompt_index, g.sample_index) for g in row] for row in there] == [[(i, j) for j in range(2)] for i in range(3)]
    assert all(g.n_tokens > 0 for row in there for g in row)
    assert [g.text for g in remote.greedy(prompts, max_new_tokens=10)] == [g.text for g in local.greedy(prompts, max_new_tokens=10)]


def test_scores_through_the_server_equal_scores_here(local, remote, prompts):
    conts = ["(1) 1 + 2 = 3.", " So the answer is 4.", ""]
    for eos in (False, True):
        here = local.logprobs(prompts, conts, append_eos=eos)
        there = remote.logprobs(prompts, conts, append_eos=eos)
        for h, t in zip(here, there):
            assert t.n_tokens == h.n_tokens
            assert t.sum == pytest.approx(h.sum, abs=1e-3) and t.mean == pytest.approx(h.mean, abs=1e-3)


def test_the_adapter_is_named_per_request(spec, tmp_path, random_lora):
    folder = random_lora(spec, tmp_path / "it1")
    with_adapter = load_student(spec, precision="fp32", adapter=folder)
    base = load_student(spec, precision="fp32")
    prompts = build_prompts(base.tokenizer, ["(1 + 2) =", "(3 - 5) ="])
    want_adapter = [g.text for g in with_adapter.greedy(prompts, max_new_tokens=8)]
    want_base = [g.text for g in base.greedy(prompts, max_new_tokens=8)]
    assert want_adapter != want_base
    with start_student_server(with_adapter, name="tiny", adapter_name="it1", token=TOKEN) as srv:
        by_adapter = load_remote_student(spec, srv.url, "it1", api_key=TOKEN)
        by_base = load_remote_student(spec, srv.url, "tiny", api_key=TOKEN)
        assert [g.text for g in by_adapter.greedy(prompts, max_new_tokens=8)] == want_adapter
        assert [g.text for g in by_base.greedy(prompts, max_new_tokens=8)] == want_base
        assert srv.service.models() == ["tiny", "it1"]


def test_wrong_model_key_or_address_is_one_line(spec, server, prompts):
    with pytest.raises(TripostError, match=r"no model 'it9' there \(model 'it9' not found; this server has tiny\)"):
        load_remote_student(spec, server.url, "it9", api_key=TOKEN).greedy(prompts[:1], max_new_tokens=2)
    with pytest.raises(TripostError, match="the key was refused"):
        load_remote_student(spec, server.url, "tiny", api_key="wrong-token-but-long-enough").greedy(prompts[:1], max_new_tokens=2)
    with pytest.raises(TripostError, match="cannot connect"):
        load_remote_student(spec, "http://127.0.0.1:9/v1", "tiny", api_key=TOKEN).greedy(prompts[:1], max_new_tokens=2)


def test_the_verbs_run_through_the_engine_unchanged(spec, server, monkeypatch, tmp_path, capsys):
    """sample, eval and collect with --engine give what they give in process."""
    monkeypatch.setenv(KEY_ENV, TOKEN)
    engine = ["--engine", server.url, "--engine-model", "tiny"]
    sample = ["sample", "--student", spec, "--task", "arithmetic", "--n", "2", "--samples", "2", "--max-new-tokens", "8", "--json"]

    def texts() -> list[str]:
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
        return [x["text"] for x in lines if x["record"] == "attempt"]

    assert main([*sample, "--precision", "fp32"]) == 0
    here = texts()
    assert main([*sample, *engine]) == 0
    assert texts() == here and len(here) == 4

    ev = ["eval", "--student", spec, "--task", "arithmetic", "--n", "2", "--max-turns", "1", "--max-new-tokens", "8", "--json"]
    assert main([*ev, "--precision", "fp32", "--out", str(tmp_path / "here.json")]) == 0
    capsys.readouterr()
    assert main([*ev, *engine, "--out", str(tmp_path / "there.json")]) == 0
    capsys.readouterr()
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("here", "there"))
    assert a["metrics"]["total"]["first_accuracy"] == b["metrics"]["total"]["first_accuracy"]
    assert b["student"]["engine"].endswith("/v1") and b["student"]["engine_model"] == "tiny"

    co = ["collect", "--student", spec, "--task", "arithmetic", "--n", "3", "--source", "rejection", "--max-new-tokens", "8"]
    assert main([*co, "--precision", "fp32", "--out", str(tmp_path / "c-here")]) == 0
    assert main([*co, *engine, "--out", str(tmp_path / "c-there")]) == 0
    capsys.readouterr()

    def turns(run: str) -> list[str]:
        recs = [json.loads(x) for x in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        return sorted((r["key"], r["turns"][0]["rationale"]) for r in recs)

    assert turns("c-here") == turns("c-there")
    # Flags that contradict each other, before anything loads.
    assert main([*sample, *engine, "--adapter", str(tmp_path)]) == 2
    assert "name it with --engine-model, not --adapter" in capsys.readouterr().err


def test_the_mc_verifier_scores_through_the_engine_as_here(local, remote, prompts):
    """The verdict words' log-probabilities come from `logprobs` remotely: the
    same numbers as the in-process forward pass (tripost.verify.mc_logprobs)."""
    from tripost.verify import mc_logprobs

    verdict = [p + "(1) 1 + 2 = 3.\nVerdict:" for p in prompts]
    here, there = mc_logprobs(local, verdict), mc_logprobs(remote, verdict)
    assert len(there) == len(here) == 3
    for (a, b), (c, d) in zip(here, there):
        assert c == pytest.approx(a, abs=1e-3) and d == pytest.approx(b, abs=1e-3)


def test_a_run_through_the_engine_equals_the_run_in_process(spec, monkeypatch, tmp_path):
    """`tripost run` with `student.engine`: collect, eval and gap sample and
    score on the server, which loads each iteration's LoRA adapter at runtime
    by path (vLLM's /v1/load_lora_adapter); the run's logs and evaluations
    are the in-process run's."""
    from tripost.loop import Run
    from tripost.runconfig import RunConfig

    monkeypatch.setenv("TRIPOST_HOME", str(tmp_path / "home"))
    overrides = [f"student.spec={spec}", "student.sample_precision=fp32", "tasks.n_train=4", "tasks.n_eval=2",
                 "train.epochs=1", "train.precision=fp32", "train.mode=lora", "collect.max_new_tokens=16",
                 "collect.samples_per_problem=1", "eval.max_new_tokens=16", "eval.max_turns=1", "eval.n_bootstrap=20",
                 "loop.iterations=1", "gap.n_problems=2", "gap.samples=2", "gap.max_new_tokens=8"]
    Run(tmp_path / "here", RunConfig.load(None, overrides).to_dict(), progress=False).run()
    base = load_student(spec, precision="fp32")  # the engine's own copy, as a separate server would hold
    with start_student_server(base, name="tiny", token=TOKEN) as srv:
        monkeypatch.setenv(KEY_ENV, TOKEN)
        engine = [f"student.engine={srv.url}", "student.engine_model=tiny"]
        Run(tmp_path / "there", RunConfig.load(None, overrides + engine).to_dict(), progress=False).run()
        served = srv.service.models()
    there = tmp_path / "there"
    # Each iteration's adapter loaded by path; iteration 0's unloaded once iteration 1's was loaded.
    assert served == ["tiny", adapter_name(there / "it1" / "train")]
    assert srv.service.counts["unloaded"] == 1

    def log(run: str) -> list:
        recs = [json.loads(x) for x in (tmp_path / run / "it1" / "collect" / "log.jsonl").read_text().splitlines()]
        return sorted((r["key"], r["kind"], [t["rationale"] for t in r["turns"]]) for r in recs)

    assert log("there") == log("here") and len(log("here")) == 4
    for t in (0, 1):
        a, b = (json.loads((tmp_path / run / f"it{t}" / "eval" / "eval.json").read_text()) for run in ("here", "there"))
        assert a["metrics"] == b["metrics"]
        # The texts alike; token counts differ by design (remote.py counts the returned text with the local tokenizer).
        transcripts = [[{k: v for k, v in json.loads(x).items() if "tokens" not in k}
                        for x in (tmp_path / run / f"it{t}" / "eval" / "eval.transcripts.jsonl").read_text().splitlines()]
                       for run in ("here", "there")]
        assert transcripts[0] == transcripts[1] and transcripts[0]
        assert b["student"]["engine_model"] == adapter_name(there / f"it{t}" / "train")
        ga, gb = (json.loads((tmp_path / run / f"it{t}" / "gap" / "gap.json").read_text())["metrics"] for run in ("here", "there"))
        assert gb["acc_all"] == ga["acc_all"] and gb["gap"]["mean"] == pytest.approx(ga["gap"]["mean"], abs=1e-6)


def test_a_run_engine_needs_lora_training_and_a_url(spec):
    from tripost.runconfig import RunConfig

    with pytest.raises(TripostError, match=r'needs train.mode="lora" \(not \'full\'\)'):
        RunConfig.load(None, [f"student.spec={spec}", "student.engine=http://127.0.0.1:9/v1", "train.mode=full"])
    with pytest.raises(TripostError, match="student.engine must be the engine's base URL"):
        RunConfig.load(None, [f"student.spec={spec}", "student.engine=127.0.0.1:9", "train.mode=lora"])
    RunConfig.load(None, [f"student.spec={spec}", "student.engine=http://127.0.0.1:9/v1", "train.mode=lora"])


def test_serve_student_loads_adapters_at_runtime_and_refuses_bad_ones(spec, tmp_path):
    student = load_student(spec, precision="fp32").attach_lora()
    with torch.no_grad():
        for name, p in student.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    folder = student.save_adapter(tmp_path / "it1")
    want = [g.text for g in load_student(spec, precision="fp32", adapter=folder).greedy(["(1 + 2) ="], max_new_tokens=8)]
    with start_student_server(load_student(spec, precision="fp32"), name="tiny", token=TOKEN) as srv:
        remote = load_remote_student(spec, srv.url, "tiny", api_key=TOKEN)
        before = [g.text for g in remote.greedy(["(1 + 2) ="], max_new_tokens=8)]
        assert remote.use_adapter(folder).model == adapter_name(folder)
        assert [g.text for g in remote.greedy(["(1 + 2) ="], max_new_tokens=8)] == want != before
        # Loading it again (a resumed run) is fine; the base is still the base.
        load_remote_student(spec, srv.url, "tiny", api_key=TOKEN).use_adapter(folder)
        assert [g.text for g in load_remote_student(spec, srv.url, "tiny", api_key=TOKEN).greedy(["(1 + 2) ="], max_new_tokens=8)] == before
        with pytest.raises(TripostError, match=f"no LoRA adapter at {tmp_path} as the engine sees it"):
            remote.use_adapter(tmp_path)


# ------------------------------------------------ vLLM's rules (issue 29, item 5) ---


def _completions(server) -> int:
    return server.service.counts["completions"]


def test_a_call_over_vllms_prompt_cap_goes_in_requests_of_at_most_1024(local, remote, server):
    """vLLM refuses more than 1,024 prompts in one completions request
    (VLLM_MAX_COMPLETION_PROMPTS); so does serve-student, in vLLM's error
    shape. RemoteStudent sends a longer call as several requests, sampling
    and scoring alike, and gets what the in-process student gets."""
    n = MAX_COMPLETION_PROMPTS + 6
    prompts = [f"{i} +" for i in range(n)]
    client = openai.OpenAI(base_url=server.url, api_key=TOKEN, max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt=prompts[: MAX_COMPLETION_PROMPTS + 1], max_tokens=1)
    assert e.value.body == {"message": f"prompt list length {MAX_COMPLETION_PROMPTS + 1} exceeds the maximum allowed count "
                                       f"of {MAX_COMPLETION_PROMPTS}. To increase this limit, start serve-student with a "
                                       "larger --max-prompts.", "type": "BadRequestError", "param": "prompt", "code": 400}
    # A list of token ids is one prompt, however long (vLLM counts it so).
    assert client.completions.create(model="tiny", prompt=list(range(5, 5 + n)), max_tokens=1).choices[0].index == 0

    before = _completions(server)
    there = remote.greedy(prompts, max_new_tokens=1)
    assert _completions(server) == before + 2
    assert [g.text for g in there] == [g.text for g in local.greedy(prompts, max_new_tokens=1)]
    assert [g.prompt_index for g in there] == list(range(n))
    scores = remote.logprobs(prompts, [" 1"] * n)
    assert _completions(server) == before + 4
    for h, t in zip(local.logprobs(prompts, [" 1"] * n), scores):
        assert t.n_tokens == h.n_tokens and t.sum == pytest.approx(h.sum, abs=1e-3)


def test_scores_agree_where_a_character_splits_across_tokens(local, remote, server, prompts):
    """The emoji is two tokens, neither a character on its own: vLLM's
    text_offset (each token decoded alone, offsets their running length)
    puts every later token past where it is, which is how scoring by text
    offsets drifted. Scores now come by token id: the same tokens here and
    there, whatever the text, in one request for all the sequences."""
    tok = local.tokenizer
    assert len(encode_continuation(tok, "🙂")) == 2
    client = openai.OpenAI(base_url=server.url, api_key=TOKEN, max_retries=0)
    echoed = client.completions.create(model="tiny", prompt="a🙂b", max_tokens=0, echo=True, logprobs=0).choices[0]
    assert echoed.text == "a🙂b" and echoed.logprobs.tokens[-1] == "b"
    assert echoed.logprobs.text_offset[-1] != "a🙂b".index("b")  # vLLM's offsets: past the "b"
    by_id = client.completions.create(model="tiny", prompt="a🙂b", max_tokens=0, echo=True, logprobs=0,
                                      extra_body={"return_tokens_as_token_ids": True}).choices[0]
    assert by_id.logprobs.tokens == [f"token_id:{t}" for t in tok("a🙂b", add_special_tokens=False)["input_ids"]]

    # Continuations with split characters, and prompts that end where the continuation would join their last
    # token ("The caf" + "é 🙂", "x " + "🙂": other tokens together than apart). The empty one is 0 tokens.
    ps = [*prompts, prompts[0] + "The caf", prompts[1] + "x "]
    conts = ["(1) 🙂 + é = 🙂🙂.", " 🙂 naïve", "", "é 🙂", "🙂"]
    for p, c in zip(ps[3:], conts[3:]):
        assert encode_prompt(tok, p + c) != encode_prompt(tok, p) + encode_continuation(tok, c)
    for eos in (False, True):
        before = _completions(server)
        there = remote.logprobs(ps, conts, append_eos=eos)
        assert _completions(server) == before + 1  # one request for all the sequences
        here = local.logprobs(ps, conts, append_eos=eos)
        for h, t in zip(here, there):
            assert t.n_tokens == h.n_tokens and len(t.token_logprobs) == h.n_tokens
            assert t.token_logprobs == pytest.approx(h.token_logprobs, abs=1e-3)
            assert t.sum == pytest.approx(h.sum, abs=1e-3) and t.mean == pytest.approx(h.mean, abs=1e-3)


@pytest.fixture(scope="module")
def bos_spec(tmp_path_factory):
    """A tiny model whose tokenizer adds a BOS (as Llama's do; SmolLM2's adds
    none) and whose greedy text depends on the prompt."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    from tripost.student import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("bos"), init_std=0.5, tie_embeddings=False, seed=1)
    tok = AutoTokenizer.from_pretrained(str(path))
    bos = tok.bos_token
    tok.backend_tokenizer.post_processor = TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                              special_tokens=[(bos, tok.bos_token_id)])
    tok.save_pretrained(str(path))
    assert AutoTokenizer.from_pretrained(str(path))("hi")["input_ids"][0] == tok.bos_token_id
    return f"hf:{path}"


def test_add_special_tokens_is_sent_as_the_student_encodes(bos_spec):
    """vLLM tokenizes a text prompt with add_special_tokens, true unless
    sent: a BOS-adding tokenizer then puts a second BOS before a chat
    template that spells its own. serve-student does the same, so a client
    that leaves the flag out is seen; RemoteStudent sends it per request,
    false before a templated prompt and true before a raw one, as the
    in-process student encodes them, and samples what it samples."""
    student = load_student(bos_spec, precision="fp32")
    tok = student.tokenizer
    templated = build_prompts(tok, ["(1 + 2) =", "(3 - 5) ="])
    raw = ["(1 + 2) =", "7 * 8 ="]
    assert templated[0].startswith(tok.bos_token) and not raw[0].startswith(tok.bos_token)
    with start_student_server(load_student(bos_spec, precision="fp32"), name="tiny", token=TOKEN) as srv:
        client = openai.OpenAI(base_url=srv.url, api_key=TOKEN, max_retries=0)
        once = encode_prompt(tok, templated[0])
        assert once[0] == tok.bos_token_id != once[1]
        twice = client.completions.create(model="tiny", prompt=templated[0], max_tokens=0, echo=True, logprobs=0)
        assert twice.usage.prompt_tokens == len(once) + 1
        assert twice.choices[0].logprobs.tokens[:2] == [tok.bos_token, tok.bos_token]
        sent = client.completions.create(model="tiny", prompt=templated[0], max_tokens=1, extra_body={"add_special_tokens": False})
        assert sent.usage.prompt_tokens == len(once)

        remote = load_remote_student(bos_spec, srv.url, "tiny", api_key=TOKEN)
        for batch in (templated, raw, [templated[0], raw[0], templated[1]]):
            want = [g.text for g in student.greedy(batch, max_new_tokens=8)]
            assert [g.text for g in remote.greedy(batch, max_new_tokens=8)] == want
        params = SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=3)
        assert ([[g.text for g in row] for row in remote.sample(templated, params)]
                == [[g.text for g in row] for row in student.sample(templated, params)])
        for h, t in zip(student.logprobs(raw + templated, ["3", " 12"] * 2), remote.logprobs(raw + templated, ["3", " 12"] * 2)):
            assert t.n_tokens == h.n_tokens and t.sum == pytest.approx(h.sum, abs=1e-3)


def test_an_adapter_retrained_at_its_path_is_reloaded_and_the_previous_one_unloaded(spec, tmp_path, random_lora):
    """vLLM keeps serving the weights it read for a name unless the load
    says `load_inplace`; RemoteStudent says so, and unloads the adapter this
    process had the engine load before (the previous iteration's). A student
    still naming an unloaded adapter has it loaded again."""
    first, other = tmp_path / "it1", tmp_path / "it2"
    random_lora(spec, first)
    random_lora(spec, other)
    prompt = ["(1 + 2) ="]

    def want(folder):
        return [g.text for g in load_student(spec, precision="fp32", adapter=folder).greedy(prompt, max_new_tokens=8)]

    def there(student):
        return [g.text for g in student.greedy(prompt, max_new_tokens=8)]

    with start_student_server(load_student(spec, precision="fp32"), name="tiny", token=TOKEN) as srv:
        base = load_remote_student(spec, srv.url, "tiny", api_key=TOKEN)
        base_text = there(base)
        old = want(first)
        assert there(load_remote_student(spec, srv.url, "tiny", api_key=TOKEN).use_adapter(first)) == old
        # vLLM's answer to a second load without load_inplace:
        client = openai.OpenAI(base_url=srv.url, api_key=TOKEN, max_retries=0)
        with pytest.raises(openai.BadRequestError, match="has already been loaded. If you want to load the adapter in place"):
            client.post("/load_lora_adapter", body={"lora_name": adapter_name(first), "lora_path": str(first)}, cast_to=str)
        shutil.rmtree(first)
        random_lora(spec, first)  # retrained at the same path
        new = want(first)
        assert new != old
        again = load_remote_student(spec, srv.url, "tiny", api_key=TOKEN).use_adapter(first)
        assert there(again) == new and srv.service.models() == ["tiny", adapter_name(first)]

        nxt = load_remote_student(spec, srv.url, "tiny", api_key=TOKEN).use_adapter(other)
        assert srv.service.models() == ["tiny", adapter_name(other)]  # the previous one unloaded
        assert there(nxt) == want(other) and there(base) == base_text
        assert there(again) == new  # loaded again by the student that names it
        assert srv.service.models() == ["tiny", adapter_name(other), adapter_name(first)]
        with pytest.raises(openai.NotFoundError, match="The lora adapter 'nope' cannot be found"):
            client.post("/unload_lora_adapter", body={"lora_name": "nope"}, cast_to=str)
        for name in (adapter_name(other), adapter_name(first)):  # the last one's going leaves the plain base
            assert client.post("/unload_lora_adapter", body={"lora_name": name}, cast_to=str) == \
                f"Success: LoRA adapter '{name}' removed successfully."
        assert not srv.service.student.has_lora and there(base) == base_text
        assert there(load_remote_student(spec, srv.url, "tiny", api_key=TOKEN).use_adapter(other)) == want(other)


def test_a_load_route_that_is_not_there_says_runtime_lora_loading_is_off(spec, tmp_path, random_lora):
    """vLLM serves the LoRA routes only with VLLM_ALLOW_RUNTIME_LORA_UPDATING
    (404 otherwise); serve-student can be started so. The 404 is one line
    saying how to turn it on, told apart from vLLM's 404 for a folder with
    no adapter."""
    folder = random_lora(spec, tmp_path / "it1")
    with start_student_server(load_student(spec, precision="fp32"), name="tiny", token=TOKEN, runtime_lora=False) as srv:
        with pytest.raises(TripostError, match=r"^engine http://127\.0\.0\.1:\d+/v1: runtime LoRA loading is off \(start vLLM "
                                               r"with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora\)$"):
            load_remote_student(spec, srv.url, "tiny", api_key=TOKEN).use_adapter(folder)
