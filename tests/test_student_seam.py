"""The student seam (issue 17.4): the student package imports one way, other
modules use its public functions only, the chat prompt has one renderer,
scoring has one loop (with the numbers it always had), and files are written
atomically through tripost.fileio."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from tripost.errors import TripostError
from tripost.fileio import atomic_directory, atomic_write_json, atomic_write_text

PKG = Path(__file__).resolve().parent.parent / "tripost"
STUDENT = PKG / "student"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str | None = None) -> list[tuple[str, list[str], int]]:
    """Every import in the file, wherever it is (module level, in a function,
    under TYPE_CHECKING): (absolute module, imported names, line). `name`:
    the file's module name (default: from its place under tripost/)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = name or _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            out.append((module, [a.name for a in node.names], node.lineno))
    return out


def _student_graph() -> dict[str, set[str]]:
    """Edges between the student package's modules. `from tripost.student
    import X` imports the package's __init__ (which imports everything), and
    the submodule X too when there is one."""
    modules = {_module_name(p) for p in STUDENT.glob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path in STUDENT.glob("*.py"):
        me = _module_name(path)
        for module, names, _ in _imports(path):
            if module in modules:
                graph[me].add(module)
            for name in names:
                if f"{module}.{name}" in modules:
                    graph[me].add(f"{module}.{name}")
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_import_graph_sees_function_level_and_type_checking_imports(tmp_path):
    # The checker itself must catch what used to hide the cycle.
    f = tmp_path / "probe.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tripost.student.load import Student\n"
                 "def g():\n    from tripost.student import generate\n    import tripost.student.logprob\n    from .spec import parse_spec\n")
    seen = {(m, tuple(n)) for m, n, _ in _imports(f, "tripost.student.probe")}
    assert ("tripost.student.load", ("Student",)) in seen
    assert ("tripost.student", ("generate",)) in seen and ("tripost.student.logprob", ()) in seen
    assert ("tripost.student.spec", ("parse_spec",)) in seen
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_student_package_has_no_import_cycle():
    graph = _student_graph()
    assert "tripost.student.base" in graph and "tripost.student.tokens" in graph
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])
    # Only the package's __init__ may import the package; a module that did
    # would import everything, itself included.
    importers = sorted(m for m, deps in graph.items() if "tripost.student" in deps)
    assert importers == [], importers


def test_student_layers():
    """The one-way order base.py documents."""
    graph = {m.rpartition(".")[2]: {d.rpartition(".")[2] for d in deps} for m, deps in _student_graph().items()}
    for leaf in ("base", "tokens", "spec", "prompt", "hardware", "embedded"):
        assert graph[leaf] == set(), (leaf, graph[leaf])
    assert graph["fastdecode"] <= {"base"}
    assert graph["engine"] <= {"base", "fastdecode"}
    assert graph["generate"] <= {"base", "tokens", "engine"}
    assert graph["logprob"] <= {"base", "tokens"}
    # load is the top of the package; only the remote student (beside it) reads a spec's folder through it.
    assert "load" not in set().union(*(deps for m, deps in graph.items() if m not in ("student", "remote")))


def _tripost_files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_imports_a_private_student_name():
    bad = []
    for path in _tripost_files():
        me = _module_name(path)
        for module, names, line in _imports(path):
            if not (module.startswith("tripost.student") or module == "tripost.fileio") or module == me:
                continue
            bad += [f"{path.relative_to(PKG.parent)}:{line}: {module}.{n}" for n in names if n.startswith("_")]
    assert bad == [], bad


def test_base_modules_import_little():
    """fileio is a base layer (tripost.errors only); the library never imports the CLI."""
    deps = {m for m, _, _ in _imports(PKG / "fileio.py") if m.startswith("tripost")}
    assert deps <= {"tripost.errors"}, deps
    for path in _tripost_files():
        if "cli" in path.relative_to(PKG).parts or path == PKG / "__main__.py":  # the command's own entry points
            continue
        cli = [f"{path.relative_to(PKG.parent)}:{line}" for m, n, line in _imports(path)
               if m.startswith("tripost.cli") or (m == "tripost" and "cli" in n)]
        assert cli == [], cli


def test_serve_teacher_verb_is_the_library_command():
    """`tripost serve-teacher` and `python -m tripost.serve` run one command (tripost.serve.command)."""
    import tripost.cli
    from tripost.serve import command

    args = tripost.cli.build_parser().parse_args(["serve-teacher", "--port", "0", "--fail-rate", "0.5"])
    assert args.handler is command.run and (args.port, args.fail_rate, args.backend) == (0, 0.5, "scripted")


def _calls(path: Path, attr: str) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == attr]


def test_one_place_for_chat_rendering_adapter_loading_and_atomic_renames():
    mine = [*sorted(STUDENT.glob("*.py")), *sorted((PKG / "train").rglob("*.py")), PKG / "gap.py", PKG / "sources" / "guided.py",
            PKG / "sources" / "guidance.py", PKG / "evaluate" / "__init__.py",
            *sorted((PKG / "serve").glob("*.py"))]
    assert [str(p.relative_to(PKG)) for p in mine if _calls(p, "apply_chat_template")] == ["student/prompt.py"]
    peft = sorted(str(p.relative_to(PKG)) for p in mine if "PeftModel.from_pretrained" in p.read_text(encoding="utf-8"))
    assert peft == ["student/load.py"]
    renames = [str(p.relative_to(PKG)) for p in mine if "os.replace" in p.read_text(encoding="utf-8") or "mkdtemp" in p.read_text(encoding="utf-8")]
    assert renames == []


# ---------------------------------------------------------------- fileio ---


def test_atomic_writes(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": "é"})
    assert target.read_text(encoding="utf-8") == '{\n  "a": "é"\n}\n'
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"

    class Boom(Exception):
        pass

    def fail(_):
        raise Boom

    with pytest.raises(TypeError):  # not serialisable: the old file stays whole
        atomic_write_json(target, {"x": object()})
    with pytest.raises(Boom):
        atomic_write_json(target, {"x": object()}, default=fail)
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary left behind


def test_atomic_directory(tmp_path):
    target = tmp_path / "cache"
    with atomic_directory(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and not target.exists()
        (tmp / "f").write_text("1")
    assert (target / "f").read_text() == "1" and oct(target.stat().st_mode & 0o777) == oct(0o755)
    # An error: nothing appears, nothing is left.
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "other") as tmp:
        (tmp / "f").write_text("half")
        raise RuntimeError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    # Someone else finished first: a complete folder is kept, an incomplete one replaced.
    with atomic_directory(target) as tmp:
        (tmp / "f").write_text("2")
    assert (target / "f").read_text() == "1"
    with atomic_directory(target, keep_existing=lambda p: False) as tmp:
        (tmp / "f").write_text("3")
    assert (target / "f").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


# ------------------------------------------------------- prompt renderer ---


def test_render_chat_is_the_one_renderer(tiny_model_dir, monkeypatch):
    from transformers import AutoTokenizer

    import tripost.student.prompt as prompt
    from tripost.gap import GapConfig, verify_prompt
    from tripost.sources.guided import GuidedPrompt, guided_student_sampler
    from tripost.paths import read_prompt
    from tripost.student import SamplingParams, build_prompt, render_chat
    from tripost.student.prompt import PromptFormat, render_instruction

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    q, attempt = "What is 2 + 3?", "Step 1: 2 + 3 = 5.\n(Final response) So the answer is 5."
    instr = render_instruction(q).rstrip("\n")
    cfg = GapConfig()
    ask = read_prompt(cfg.mc_template).strip()

    # Plain text, and the tokenizer's template, with a system turn when set.
    off = PromptFormat(chat="off")
    assert render_chat(tok, [instr], off) == instr + off.plain_suffix
    assert render_chat(tok, [instr, attempt, ask], off) == f"{instr}{off.plain_suffix}{attempt}\n\n{ask}\n"
    sys_fmt = PromptFormat(system="Be brief.")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": instr}, {"role": "assistant", "content": attempt},
                {"role": "user", "content": ask}]
    assert render_chat(tok, [instr, attempt, ask], sys_fmt) == tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    with pytest.raises(TripostError, match="alternating"):
        render_chat(tok, [instr, attempt])

    calls = []
    real = prompt.render_chat

    def spy(tokenizer, turns, fmt=None):
        calls.append(list(turns))
        return real(tokenizer, turns, fmt)

    # Every module that renders a chat imports this one function: spy on it where each looks it up.
    for module in ("tripost.student.prompt", "tripost.verify", "tripost.sources.guidance"):
        monkeypatch.setattr(f"{module}.render_chat", spy)
    for fmt in (PromptFormat(), off, sys_fmt):
        calls.clear()
        assert build_prompt(tok, q, fmt) == real(tok, [instr], fmt) and calls == [[instr]]
        calls.clear()
        assert verify_prompt(tok, q, f"  {attempt}\n", cfg, fmt) == real(tok, [instr, attempt, ask], fmt) + cfg.mc_prefix
        assert calls == [[instr, attempt, ask]]

        class FakeStudent:
            tokenizer = tok
            seen: list[str] = []

            def sample(self, texts, params):
                self.seen += texts
                return [[] for _ in texts]

        calls.clear()
        student = FakeStudent()
        sampler = guided_student_sampler(student, SamplingParams(n=2, max_new_tokens=4), fmt)
        sampler([GuidedPrompt(problem=None, instruction=instr + "\n", prefix="Step 1:")], 2, 0)
        assert calls == [[instr]] and student.seen == [build_prompt(tok, q, fmt) + "Step 1:"]


# ---------------------------------------------------------------- scoring ---


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, one_torch_thread):
    from tripost.student import load_student

    return load_student(f"hf:{tiny_model_dir}", "fp32")


def _old_sequence_logprobs(student, prompts, continuations, batch_size, append_eos):
    """sequence_logprobs as it was before the seam (its own left-padded loop), for the numbers."""
    import torch

    from tripost.student.tokens import encode_prompt

    model, tok = student.model, student.tokenizer
    items = []
    for p, c in zip(prompts, continuations):
        cid = tok(c, add_special_tokens=False)["input_ids"] if c else []
        items.append((encode_prompt(tok, p), cid + [tok.eos_token_id] if append_eos else cid))
    order = sorted(range(len(items)), key=lambda k: len(items[k][0]) + len(items[k][1]))
    out = [None] * len(items)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    for b in range(0, len(order), batch_size):
        batch = order[b : b + batch_size]
        max_c = max(len(items[k][1]) for k in batch)
        seqs = [items[k][0] + items[k][1] for k in batch]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        att = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s):] = torch.tensor(s)
            att[r, width - len(s):] = 1
        pos = (att.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=att, position_ids=pos, logits_to_keep=max_c + 1, use_cache=False).logits
            logp = logits.float().log_softmax(-1)
        for r, k in enumerate(batch):
            cid = items[k][1]
            c = len(cid)
            if not c:
                out[k] = (0.0, 0.0, 0, ())
                continue
            lp = logp[r, max_c - c : max_c].gather(-1, torch.tensor(cid).unsqueeze(-1)).squeeze(-1)
            total = float(lp.double().sum())
            out[k] = (total, total / c, c, tuple(float(v) for v in lp))
    return out


@pytest.mark.parametrize("batch_size", [1, 3, 8])
@pytest.mark.parametrize("append_eos", [False, True])
def test_sequence_logprobs_gives_the_numbers_it_always_gave(tiny, batch_size, append_eos):
    from tripost.student import build_prompt, sequence_logprobs

    prompts = [build_prompt(tiny.tokenizer, q) for q in ("What is 2 + 3?", "Sort: pear apple fig", "", "long " * 40)]
    prompts = [prompts[0], *prompts, prompts[2]]
    conts = ["Step 1: 5.", "", "apple fig pear", "x" * 30, "The answer is 42.", " Correct"]
    got = [(s.sum, s.mean, s.n_tokens, s.token_logprobs) for s in sequence_logprobs(tiny, prompts, conts, batch_size=batch_size, append_eos=append_eos)]
    assert got == _old_sequence_logprobs(tiny, prompts, conts, batch_size, append_eos)


def test_mc_shared_pass_gives_the_numbers_it_always_gave(tiny):
    """mc_logprobs' one-sequence pass (tripost.gap) reads the shared loop's
    log-probs; its numbers equal the plain sum over each word's tokens."""
    from tripost.gap import mc_logprobs, verify_prompt
    from tripost.student import sequence_logprobs

    tok = tiny.tokenizer
    prompts = [verify_prompt(tok, q, a) for q, a in [("2+3?", "5"), ("Sort: b a", "a b"), ("A much longer question " * 5, "Step 1: x")]]
    words = (" Correct", " Incorrect")
    assert len(tok(words[1], add_special_tokens=False)["input_ids"]) > 1  # the shared pass, not the fallback
    got = mc_logprobs(tiny, prompts, words, batch_size=2)
    ref = sequence_logprobs(tiny, prompts * 2, [words[0]] * 3 + [words[1]] * 3, batch_size=2)
    # Different batches (one sequence a prompt vs two): equal up to float noise.
    for (a, b), ra, rb in zip(got, ref[:3], ref[3:]):
        assert a == pytest.approx(ra.sum, abs=1e-4) and b == pytest.approx(rb.sum, abs=1e-4)


def test_logprob_batches_restores_training_mode(tiny):
    from tripost.student import encode_prompt, logprob_batches

    pairs = [(encode_prompt(tiny.tokenizer, "hi"), [1, 2]), (encode_prompt(tiny.tokenizer, "a longer one"), [3])]
    tiny.model.train()
    try:
        seen = []
        for batch, logp in logprob_batches(tiny, pairs, batch_size=1):
            assert not tiny.model.training
            seen.append((batch, tuple(logp.shape[:2])))
        assert seen == [([0], (1, 2)), ([1], (1, 1))] and tiny.model.training
    finally:
        tiny.model.eval()
    with pytest.raises(TripostError, match="batch size"):
        next(logprob_batches(tiny, pairs, batch_size=0))


def test_load_adapter_error_is_one_line(tiny, tmp_path):
    from tripost.student import load_adapter

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(TripostError, match=r"^cannot continue from adapter .*bad: "):
        load_adapter(tiny.model, bad, trainable=True, verb="continue from")
    assert os.listdir(bad) == ["adapter_config.json"]


def test_both_students_are_studentlike():
    # The stages above the student take a StudentLike: the local Student and
    # the remote engine's student must each have all of it, with parameters
    # the protocol's callers may pass by name.
    import inspect

    from tripost.student import Student, StudentLike
    from tripost.student.remote import RemoteStudent

    wanted = {n: inspect.signature(getattr(StudentLike, n)) for n in ("describe", "sample", "greedy", "logprobs")}
    for cls in (Student, RemoteStudent):
        for name, sig in wanted.items():
            have = inspect.signature(getattr(cls, name)).parameters
            for p in sig.parameters.values():
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                    assert p.name in have, f"{cls.__name__}.{name} lacks {p.name}"
        assert "tokenizer" in inspect.get_annotations(cls) or "tokenizer" in cls.__dict__ or cls is Student
    # Callers ask the student where its model runs, never its class.
    assert RemoteStudent.in_process is False and Student.in_process.fget(None) is True
