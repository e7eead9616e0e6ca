"""`hf:ORG/NAME` students: a Hugging Face Hub model, downloaded through
huggingface_hub, or with offline mode on, the cached copy or a one-line
error. No test here reaches the network: the Hub cache is a temporary folder
laid out as huggingface_hub lays it out, and the online path runs against a
stand-in for `snapshot_download`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")

from tripost.errors import TripostError  # noqa: E402
from tripost.student.load import load_student, resolve_model_dir  # noqa: E402
from tripost.student.spec import HUB_FILES, StudentSpec, parse_spec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache_model(cache: Path, repo: str, model_dir: Path) -> Path:
    """Put `model_dir` into the Hub cache `cache` as revision main of `repo`:
    models--ORG--NAME/{refs/main, snapshots/COMMIT/...}, the layout
    snapshot_download reads offline (real caches link the snapshot's files to
    blobs/; copies read the same)."""
    store = cache / ("models--" + repo.replace("/", "--"))
    (store / "refs").mkdir(parents=True)
    (store / "refs" / "main").write_text(COMMIT)
    shutil.copytree(model_dir, store / "snapshots" / COMMIT)
    return store / "snapshots" / COMMIT


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hub cache for this test, offline (as every test is: conftest)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub read HF_HOME / HF_HUB_CACHE when it was imported; its
    # functions read the cache folder from here at each call.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_offline_and_not_cached_is_one_line_naming_the_setting(hub_cache):
    with pytest.raises(TripostError) as e:
        parse_spec("hf:someorg/somemodel")
    msg = str(e.value)
    assert "\n" not in msg
    assert "HF_HUB_OFFLINE=1" in msg and "not in the local cache" in msg and "someorg/somemodel" in msg
    # Loading says the same (a spec parsed while the model was still cached).
    with pytest.raises(TripostError, match="HF_HUB_OFFLINE=1 is set and the Hub model someorg/somemodel is not in the local cache"):
        resolve_model_dir(StudentSpec("hf", repo="someorg/somemodel"))


def test_a_cached_hub_model_loads_offline(hub_cache, tiny_model_dir):
    snapshot = _cache_model(hub_cache, "someorg/tiny", tiny_model_dir)
    spec = parse_spec("hf:someorg/tiny")
    assert spec == StudentSpec("hf", repo="someorg/tiny") and str(spec) == "hf:someorg/tiny"
    assert resolve_model_dir(spec) == snapshot
    student = load_student("hf:someorg/tiny", "fp32")
    assert student.source_dir == snapshot and str(student.spec) == "hf:someorg/tiny"
    assert student.describe()["student"] == "hf:someorg/tiny"  # what runs record: the model id, not a cache path


def test_a_local_folder_wins_over_a_hub_id_of_the_same_name(hub_cache, tmp_path, monkeypatch, tiny_model_dir):
    assert parse_spec(f"hf:{tiny_model_dir}") == StudentSpec("hf", tiny_model_dir.resolve())
    local = tmp_path / "work" / "someorg" / "tiny"
    shutil.copytree(tiny_model_dir, local)
    monkeypatch.chdir(tmp_path / "work")
    spec = parse_spec("hf:someorg/tiny")  # not cached: the local folder, no Hub look-up
    assert spec.kind == "hf" and spec.repo is None and spec.path == local.resolve()
    # Paths that cannot be Hub ids stay folder errors.
    for text, message in [("hf:./nothing/here", "no such folder"), ("hf:nothing", "no such folder"), ("hf:a/b/c", "no such folder")]:
        with pytest.raises(TripostError, match=message):
            parse_spec(text)


def test_online_the_model_is_downloaded_through_huggingface_hub(tmp_path, monkeypatch, tiny_model_dir):
    import huggingface_hub
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    calls = []

    def fake_download(repo_id, **kw):  # stands in for the network
        calls.append((repo_id, kw))
        if repo_id == "someorg/missing":
            raise OSError("404 Client Error.\nRepository Not Found for url: ...")  # a multi-line error, as the Hub client gives
        return str(tiny_model_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    spec = parse_spec("hf:someorg/tiny")
    assert spec.repo == "someorg/tiny" and calls == []  # parsing online asks nothing
    assert resolve_model_dir(spec) == tiny_model_dir
    repo, kw = calls[-1]
    assert repo == "someorg/tiny" and kw["local_files_only"] is False and kw["allow_patterns"] == HUB_FILES
    with pytest.raises(TripostError, match="cannot download someorg/missing from the Hugging Face Hub: 404 Client Error.$") as e:
        resolve_model_dir(parse_spec("hf:someorg/missing"))
    assert "\n" not in str(e.value)


def test_hf_home_chooses_the_cache_a_fresh_process_reads(tmp_path, tiny_model_dir):
    # As a user sets it: HF_HOME in the environment before anything imports huggingface_hub.
    snapshot = _cache_model(tmp_path / "home" / "hub", "someorg/tiny", tiny_model_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(HF_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    probe = ("from tripost.student.load import resolve_model_dir\nfrom tripost.student.spec import parse_spec\n"
             "print(resolve_model_dir(parse_spec('hf:someorg/tiny')))\n"
             "try:\n    parse_spec('hf:someorg/other')\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found, error = done.stdout.strip().splitlines()
    assert Path(found) == snapshot
    assert error.startswith("TripostError") and "HF_HUB_OFFLINE=1" in error and str(tmp_path / "home" / "hub") in error


def test_tripost_s_own_offline_default_still_lets_a_hub_spec_download(monkeypatch, tiny_model_dir):
    # The commands switch the Hub off unless the user set HF_HUB_OFFLINE
    # (hub_offline_by_default); naming hf:ORG/NAME then still downloads it,
    # with the Hub on for that download alone.
    import huggingface_hub
    from huggingface_hub import constants

    from tripost.student.spec import OFFLINE_BY_DEFAULT, hub_offline_by_default, hub_offline_setting

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", OFFLINE_BY_DEFAULT):
        monkeypatch.delenv(name, raising=False)
    hub_offline_by_default()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ[OFFLINE_BY_DEFAULT] == "1"
    assert hub_offline_setting() is None
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as huggingface_hub read it at import
    seen = []

    def fake_download(repo_id, **kw):
        seen.append((kw["local_files_only"], constants.HF_HUB_OFFLINE))
        return str(tiny_model_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    assert resolve_model_dir(parse_spec("hf:someorg/tiny")) == tiny_model_dir
    assert seen == [(False, False)] and constants.HF_HUB_OFFLINE is True  # on for the download, off again after

    # The user's own choice is kept, either way.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv(OFFLINE_BY_DEFAULT)
    hub_offline_by_default()
    assert os.environ["HF_HUB_OFFLINE"] == "0" and OFFLINE_BY_DEFAULT not in os.environ
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv(OFFLINE_BY_DEFAULT, "1")
    assert hub_offline_setting() == "TRANSFORMERS_OFFLINE=1"


def test_a_hub_that_accepts_and_never_answers_ends_with_one_line(tmp_path):
    """Issue 32, item 10: with HF_HUB_OFFLINE unset and an endpoint that takes
    the connection and never answers (a stalled proxy), `tripost eval
    --student hf:ORG/NAME` waited forever. A real socket on loopback, pointed
    at with HF_ENDPOINT; a short HF_HUB_DOWNLOAD_TIMEOUT so the test is quick
    (no time is asserted: only that the command ends, with one line)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []  # accepted and never answered, never closed until the end

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:  # the server closed: the test is over
                return

    threading.Thread(target=accept, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{server.getsockname()[1]}", HF_HUB_DOWNLOAD_TIMEOUT="1", HF_HOME=str(tmp_path / "hf"),
               NO_PROXY="127.0.0.1,localhost", TRIPOST_HOME=str(tmp_path / "home"))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(var, None)
    try:
        r = subprocess.run([sys.executable, "-m", "tripost", "eval", "--student", "hf:SomeOrg/some-model", "--task", "arithmetic", "--n", "1",
                            "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert held, "the command never reached the stalled endpoint"
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tripost eval: error: student 'hf:SomeOrg/some-model': the Hugging Face Hub at "), r.stderr[-2000:]
    assert "did not answer within 1 s (HF_HUB_DOWNLOAD_TIMEOUT)" in lines[0]
