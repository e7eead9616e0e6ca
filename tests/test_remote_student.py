"""The remote student engine (issue 19, item 4): a student behind an
OpenAI-compatible completions API (`tripost serve-student`, as vLLM serves
one), reached through the real `openai` SDK over loopback HTTP. The same
calls give the same texts and scores as the in-process student."""

from __future__ import annotations

import json

import pytest
import torch

from tripost.cli import main
from tripost.errors import TripostError
from tripost.serve.student_server import start_student_server
from tripost.student import SamplingParams, build_prompts, load_student
from tripost.student.remote import KEY_ENV, load_remote_student
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
    from tripost.loop import Run, resolve_config
    from tripost.student.remote import adapter_name

    monkeypatch.setenv("TRIPOST_HOME", str(tmp_path / "home"))
    overrides = [f"student.spec={spec}", "student.sample_precision=fp32", "tasks.n_train=4", "tasks.n_eval=2",
                 "train.epochs=1", "train.precision=fp32", "train.mode=lora", "collect.max_new_tokens=16",
                 "collect.samples_per_problem=1", "eval.max_new_tokens=16", "eval.max_turns=1", "eval.n_bootstrap=20",
                 "loop.iterations=1", "gap.n_problems=2", "gap.samples=2", "gap.max_new_tokens=8"]
    Run(tmp_path / "here", resolve_config(None, overrides), progress=False).run()
    base = load_student(spec, precision="fp32")  # the engine's own copy, as a separate server would hold
    with start_student_server(base, name="tiny", token=TOKEN) as srv:
        monkeypatch.setenv(KEY_ENV, TOKEN)
        engine = [f"student.engine={srv.url}", "student.engine_model=tiny"]
        Run(tmp_path / "there", resolve_config(None, overrides + engine), progress=False).run()
        served = srv.service.models()
    there = tmp_path / "there"
    # The base, then iteration 0's and iteration 1's adapters, each loaded once by path.
    assert served == ["tiny", adapter_name(there / "it0" / "train"), adapter_name(there / "it1" / "train")]

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
    from tripost.loop import resolve_config

    with pytest.raises(TripostError, match=r'needs train.mode="lora" \(not \'full\'\)'):
        resolve_config(None, [f"student.spec={spec}", "student.engine=http://127.0.0.1:9/v1", "train.mode=full"])
    with pytest.raises(TripostError, match="student.engine must be the engine's base URL"):
        resolve_config(None, [f"student.spec={spec}", "student.engine=127.0.0.1:9", "train.mode=lora"])
    resolve_config(None, [f"student.spec={spec}", "student.engine=http://127.0.0.1:9/v1", "train.mode=lora"])


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
        assert remote.use_adapter(folder).model == adapter_name_of(folder)
        assert [g.text for g in remote.greedy(["(1 + 2) ="], max_new_tokens=8)] == want != before
        # Loading it again (a resumed run) is fine; the base is still the base.
        load_remote_student(spec, srv.url, "tiny", api_key=TOKEN).use_adapter(folder)
        assert [g.text for g in load_remote_student(spec, srv.url, "tiny", api_key=TOKEN).greedy(["(1 + 2) ="], max_new_tokens=8)] == before
        with pytest.raises(TripostError, match="no PEFT LoRA adapter there"):
            remote.use_adapter(tmp_path)


def adapter_name_of(folder):
    from tripost.student.remote import adapter_name

    return adapter_name(folder)
