"""Issue 20, items 10 and 13: collection after a kill, and with a teacher that
is not there.

10. A run killed between two records of one batch and resumed writes the same
    records as a run that was never killed (a kill leaves exactly a prefix of
    the log, so the test cuts a clean run's log mid-batch and resumes it).
13. A teacher that cannot be reached (a wrong OPENAI_BASE_URL: connection
    refused) stops the collection after a bounded number of trajectories in a
    row, with one error line and a non-zero exit; what was collected stays and
    a rerun against a working teacher finishes it.

Real components: the `tripost` CLI in a subprocess, the tiny model, the real
OpenAI SDK against `tripost serve-teacher` (in a thread) on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tripost.sources.teacher import CollectConfig
from tripost.log import read_log
from tripost.tasks import get_task, sample_problems


def run_cli(args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tripost", *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    out = {**os.environ, "HF_HUB_OFFLINE": "1", "TRIPOST_HOME": str(tmp_path / "home"), "NO_PROXY": "127.0.0.1,localhost"}
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        out.pop(var, None)
    return out


def by_key(log: Path) -> dict[str, dict]:
    """What a record says, without timings (latency differs run to run)."""
    out = {}
    for r in read_log(log):
        out[r.key] = {"kind": r.kind, "turns": r.turns, "stop_reason": r.stop_reason, "final_correct": r.final_correct}
    return out


def cut_log(src: Path, dst: Path, n_lines: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(src.read_text().splitlines(keepends=True)[:n_lines]))


# --------------------------------------------- item 10: resuming mid-batch ---


def test_collect_resumed_mid_batch_writes_the_records_of_a_clean_run(tmp_path, tiny_model_dir, env):
    # 6 problems x 2 samples in batches of 4 problems: a batch is 8 records.
    args = ["collect", "--student", f"hf:{tiny_model_dir}", "--precision", "fp32", "--task", "arithmetic", "--n", "6", "--samples", "2",
            "--problems-per-call", "4", "--max-new-tokens", "24", "--teacher-concurrency", "2"]
    clean = run_cli([*args, "--out", str(tmp_path / "clean")], env)
    assert clean.returncode == 0, clean.stderr[-2000:]
    ref = by_key(tmp_path / "clean" / "log.jsonl")
    assert len(ref) == 12
    # Killed after 3 records: inside the first batch, between a problem's two samples.
    cut_log(tmp_path / "clean" / "log.jsonl", tmp_path / "resumed" / "log.jsonl", 3)
    again = run_cli([*args, "--out", str(tmp_path / "resumed")], env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert by_key(tmp_path / "resumed" / "log.jsonl") == ref


@pytest.fixture(scope="module")
def student(tiny_model_dir):
    from tripost.student import load_student

    return load_student(f"hf:{tiny_model_dir}", precision="fp32")


@pytest.fixture(scope="module")
def problems():
    return sample_problems(get_task("arithmetic"), split="train", n=6, seed=3)


def test_rejection_resumed_mid_batch_writes_the_records_of_a_clean_run(tmp_path, student, problems):
    from tripost.sources.base import student_sampler
    from tripost.sources.rejection import rejection_collect
    from tripost.student import SamplingParams

    sampler = student_sampler(student, SamplingParams(temperature=0.7, max_new_tokens=24, seed=5))
    cfg = CollectConfig(samples_per_problem=2, batch_size=4, seed=5)
    rejection_collect(problems, sampler, tmp_path / "clean.jsonl", cfg, progress=False)
    ref = by_key(tmp_path / "clean.jsonl")
    assert len(ref) == 12 and len({json.dumps(v["turns"]) for v in ref.values()}) > 1
    cut_log(tmp_path / "clean.jsonl", tmp_path / "resumed.jsonl", 3)
    res = rejection_collect(problems, sampler, tmp_path / "resumed.jsonl", cfg, progress=False)
    assert res.records_written == 9 and by_key(tmp_path / "resumed.jsonl") == ref


def test_guided_resumed_mid_batch_writes_the_records_of_a_clean_run(tmp_path, student, problems):
    from tripost.sources.guided import GuidedConfig, guided_collect, guided_student_sampler
    from tripost.student import SamplingParams

    sampler = guided_student_sampler(student, SamplingParams(temperature=0.7, max_new_tokens=24, seed=5))
    # The tiny model is never right: every problem gets the guided round too.
    cfg = GuidedConfig(strategy="answer", samples_per_round=2, min_correct=1, max_rounds=1, batch_size=4, seed=5)
    guided_collect(problems, sampler, None, tmp_path / "clean.jsonl", cfg, progress=False)
    ref = by_key(tmp_path / "clean.jsonl")
    assert len(ref) == 24
    for cut in (3, 15):  # inside round 0's first batch; inside round 1's first batch
        cut_log(tmp_path / "clean.jsonl", tmp_path / f"resumed{cut}.jsonl", cut)
        guided_collect(problems, sampler, None, tmp_path / f"resumed{cut}.jsonl", cfg, progress=False)
        assert by_key(tmp_path / f"resumed{cut}.jsonl") == ref


# ----------------------------------------- item 13: an unreachable teacher ---


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_teacher_stops_collection_keeping_what_was_collected(tmp_path, tiny_model_dir, env):
    from tripost.serve import start_server
    from tripost.teachers.scripted import ScriptedTeacher

    run = tmp_path / "run"
    log = run / "log.jsonl"
    max_unavailable = CollectConfig.max_unavailable

    def collect(n: int, base_url: str, key: str) -> subprocess.CompletedProcess:
        return run_cli(["collect", "--student", f"hf:{tiny_model_dir}", "--precision", "fp32", "--task", "arithmetic", "--n", str(n),
                        "--samples", "1", "--problems-per-call", str(max_unavailable), "--teacher-concurrency", str(max_unavailable), "--max-new-tokens", "16",
                        "--teacher", "openai:scripted", "--out", str(run),
                        # Two tries a request, not six: a refused connection is retried all the same, without 15 s of backoff.
                        "--teacher-max-attempts", "2"],
                       {**env, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": key})

    with start_server(ScriptedTeacher()) as srv:
        first = collect(max_unavailable, srv.url + "/v1", srv.token)
    assert first.returncode == 0, first.stderr[-2000:]
    kept = log.read_text()
    assert len(by_key(log)) == max_unavailable

    # The teacher's address is wrong now: every request is refused.
    n = 4 * max_unavailable
    down = collect(n, f"http://127.0.0.1:{closed_port()}/v1", "sk-not-used-0000")
    assert down.returncode == 2 and "Traceback" not in down.stderr
    last = down.stderr.strip().splitlines()[-1]
    assert last.startswith("tripost collect: error: the teacher openai:scripted did not answer for "
                           f"{max_unavailable} trajectories in a row")
    assert str(log) in last and "rerun the same command" in last
    # Stopped at the first batch it could not finish, not after all of them; nothing lost, nothing unfinished logged.
    assert log.read_text() == kept

    with start_server(ScriptedTeacher()) as srv:
        again = collect(n, srv.url + "/v1", srv.token)
    assert again.returncode == 0, again.stderr[-2000:]
    assert log.read_text().startswith(kept)
    records = list(read_log(log))
    assert len(records) == len({r.key for r in records}) == n
    assert not any(c.get("rejected") == "unavailable" for r in records for c in r.teacher_calls)


def test_unreachable_teacher_stops_the_run_before_its_collect_stage_is_done(tmp_path, tiny_model_dir, env):
    run = tmp_path / "run"
    k = CollectConfig.max_unavailable
    r = run_cli(["run", "--out", str(run), "--no-progress", f"student.spec=hf:{tiny_model_dir}", "student.sample_precision=fp32",
                 "teacher.spec=openai:scripted", f"teacher.concurrency={k}", "teacher.max_attempts=2", "loop.iteration0=false", "gap.enabled=false",
                 f"tasks.n_train={3 * k}", f"collect.batch_size={k}", "collect.samples_per_problem=1", "collect.max_new_tokens=16"],
                {**env, "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port()}/v1", "OPENAI_API_KEY": "sk-not-used-0000"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"tripost run: error: the teacher openai:scripted did not answer for {k} trajectories in a row" in r.stderr.strip().splitlines()[-1]
    state = json.loads((run / "state.json").read_text()) if (run / "state.json").exists() else {"stages": {}}
    assert "it1/collect" not in state["stages"] and not (run / "it1" / "collect" / "collect.json").exists()


def test_one_writer_per_run_folder_and_collect_out(tmp_path, tiny_model_dir):
    """Issue 32, item 2: a second `tripost run` (or `collect`) on a folder
    another process is writing is one line naming the holder, before it
    reads or writes anything; the lock goes with its holder."""
    import subprocess
    import sys

    from tripost.fileio import FolderLock

    for verb, extra in (("run", ["--no-progress", f"student.spec=hf:{tiny_model_dir}"]),
                        ("collect", ["--student", f"hf:{tiny_model_dir}", "--task", "arithmetic", "--n", "1"])):
        out = tmp_path / verb
        with FolderLock(out, "a test holding it"):
            r = subprocess.run([sys.executable, "-m", "tripost", verb, "--out", str(out), *extra],
                               capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
            assert r.returncode == 2, r.stderr[-2000:]
            assert "is being written by a test holding it (pid" in r.stderr and len(r.stderr.strip().splitlines()) == 1
            assert sorted(p.name for p in out.iterdir()) == [".tripost.lock"]  # nothing else read or written
    # Released: the next holder gets it at once.
    with FolderLock(tmp_path / "run", "again"):
        pass
