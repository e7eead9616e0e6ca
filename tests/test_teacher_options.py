"""Issue 19, item 1: every teacher option reachable.

The `[teacher]` run config section and the `--teacher-*` flags of `collect`
and `teach` (tripost/teachers/options.py) reach `make_teacher` and, through
the real `openai` and `anthropic` SDKs, `tripost serve-teacher` on loopback,
whose /stats shows the sampling parameters each request carried. Also: the
cache key holds the endpoint, an unpriced model warns once and reports as
"unpriced", `teach` runs concurrently, and a wrong value is one error line.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
from sdk_env import isolate_sdks, point_at, stats

from tripost.cli import main
from tripost.errors import TripostError
from tripost.sources.teacher import CollectConfig, collect
from tripost.format import parse_rationale
from tripost.loop import Run
from tripost.runconfig import RunConfig
from tripost.report import collect_run, render_markdown
from tripost.serve import Faults, start_server
from tripost.tasks import get_task, sample_problems
from tripost.teachers import make_teacher
from tripost.teachers.chat import Usage
from tripost.teachers.prompted import PromptedTeacher
from tripost.teachers.retry import RetryPolicy
from tripost.teachers.scripted import ScriptedTeacher
from tripost.teachers.usage import Ledger, PriceTable

TOKEN = "tpst-test-DO-NOT-LEAK-options-token-1357"
FAST = RetryPolicy(max_attempts=4, initial=0.005, jitter=0.005, max_wait=0.05)
TASK = get_task("arithmetic")
WARNING = "tripost: warning: no price for"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    isolate_sdks(monkeypatch, tmp_path, TOKEN)


@pytest.fixture
def server(monkeypatch):
    with start_server(ScriptedTeacher(), token=TOKEN) as srv:
        point_at(monkeypatch, srv)
        yield srv




def wrong_attempts(n: int, seed: int = 0) -> list[tuple]:
    out = []
    for i, p in enumerate(sample_problems(TASK, n=n, seed=seed)):
        rng = random.Random(f"{seed}|{i}")
        out.append((p, TASK.corrupt(p, rng.randint(1, parse_rationale(p.rationale).n_steps + 1), rng)))
    return out


def llm_teacher(spec: str, **kw) -> PromptedTeacher:
    kw.setdefault("cache", False)
    kw.setdefault("policy", FAST)
    t = make_teacher(spec, **kw)
    assert isinstance(t, PromptedTeacher)
    return t


def prices_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text('["scripted"]\ninput = 1.0\noutput = 2.0\n')
    return path


def err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# ------------------------------------------------------ what reaches the API ---


@pytest.mark.parametrize("token_param", ["max_tokens", "max_completion_tokens"])
def test_openai_token_parameter_name_reaches_the_server(server, token_param):
    t = llm_teacher("openai:scripted", token_param=token_param, max_tokens=99)
    try:
        reply = t.feedback(*wrong_attempts(1)[0])
    finally:
        t.close()
    assert reply.rejected is None
    other = ({"max_tokens", "max_completion_tokens"} - {token_param}).pop()
    params = stats(server)["params"]
    assert params.get(f"{token_param}=99") == 1, params
    assert not any(k.startswith(other + "=") for k in params), params


def test_anthropic_under_api_2026_10_21_gets_no_sampling_parameters(server, capsys, tmp_path):
    """Issue 29, item 1: the pinned SDK sends anthropic-version 2026-10-21,
    under which the API refuses temperature, top_p and top_k at any value;
    serve-teacher refuses them likewise, and the teacher sends none (its
    cache key records "provider default"). A temperature the user sets is
    one error line before any request."""
    from anthropic._constants import ANTHROPIC_API_VERSION

    assert ANTHROPIC_API_VERSION >= "2026-10-21"  # the SDK this project pins (pyproject: anthropic<3)
    item = wrong_attempts(1)[0]
    t = llm_teacher("anthropic:scripted")  # teacher.temperature unset: the default
    try:
        req = t.build_request("feedback", *item)
        assert req.temperature is None and req.canonical("anthropic")["temperature"] == "provider default"
        assert "temperature" not in json.dumps(t.backend.build_params(req)) and "temperature" not in t.backend.batch_params(req)
        assert t.feedback(*item).rejected is None
    finally:
        t.close()
    assert stats(server)["params"] == {"max_tokens=768": 1, "temperature=absent": 1}
    # 1.0 is the provider's default: asking for it is asking for what it does, so nothing is sent.
    t = llm_teacher("anthropic:scripted", temperature=1.0)
    try:
        assert t.build_request("feedback", *item).temperature is None
    finally:
        t.close()
    # Any other value: one error line, before any request.
    for temperature in (0.0, 0.3):
        with pytest.raises(TripostError) as e:
            llm_teacher("anthropic:scripted", temperature=temperature)
        assert "2026-10-21" in str(e.value) and "leave the temperature unset" in str(e.value) and "\n" not in str(e.value)
    assert stats(server)["requests"] == 1
    capsys.readouterr()
    assert main(["teach", "--teacher", "anthropic:scripted", "--task", "arithmetic", str(teach_file(tmp_path, 1)),
                 "--teacher-temperature", "0", "--no-teacher-cache"]) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and err[0].startswith("tripost teach: error: teacher anthropic:scripted: temperature 0 is set"), err
    assert stats(server)["requests"] == 1 and TOKEN not in err[0]
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "teacher.spec=anthropic:claude-haiku-5-5", "teacher.temperature=0.5"]) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and "temperature 0.5 is set" in err[0] and not out.exists(), err
    # The server refuses what the API refuses, at any value, through the real SDK.
    import anthropic

    client = anthropic.Anthropic(base_url=server.url, api_key=TOKEN, max_retries=0)
    for extra in ({"temperature": 1.0}, {"temperature": 0.0}, {"top_p": 0.9}, {"top_k": 5}):
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.messages.create(model="scripted", max_tokens=16, messages=[{"role": "user", "content": "hi"}], extra_body=extra)
        name = next(iter(extra))
        assert bad.value.status_code == 400 and bad.value.body["error"] == {
            "type": "invalid_request_error", "message": f"{name}: Extra inputs are not permitted"}
    # Under the old version (a client that still sends 2023-06-01), a temperature is taken.
    old = anthropic.Anthropic(base_url=server.url, api_key=TOKEN, max_retries=0, default_headers={"anthropic-version": "2023-06-01"})
    with pytest.raises(anthropic.BadRequestError, match="tripost-request"):  # past the sampling check: the scripted teacher wants its block
        old.messages.create(model="scripted", max_tokens=16, messages=[{"role": "user", "content": "hi"}], extra_body={"temperature": 0.0})


def test_the_anthropic_version_decides_whether_a_temperature_travels():
    """Under an API version before 2026-10-21 (an SDK that still sends
    2023-06-01) the Anthropic teacher sends the temperature the user set, in
    the body; from 2026-10-21 on it cannot."""
    from tripost.teachers.sampling import rule_for

    old, new = rule_for("anthropic", "claude-haiku-5-5", "2023-06-01"), rule_for("anthropic", "claude-haiku-5-5", "2026-10-21")
    assert old.takes_temperature and old.request_temperature(0.3, "t") == 0.3 and old.request_temperature(None, "t") is None
    assert not new.takes_temperature and new.request_temperature(None, "t") is None and new.request_temperature(1.0, "t") is None
    with pytest.raises(TripostError, match="refuses temperature, top_p and top_k"):
        new.request_temperature(0.0, "t")


@pytest.mark.parametrize("model", ["gpt-5-mini", "o4-mini", "gpt-6-luna"])
def test_openai_reasoning_models_get_no_temperature_and_max_completion_tokens(server, model, capsys, tmp_path):
    """Issue 29, item 2: OpenAI's reasoning models take only the default
    temperature and refuse max_tokens; serve-teacher answers 400 as they do,
    and the teacher by default sends neither; a non-default temperature set
    for such a model is one error line before any request."""
    item = wrong_attempts(1)[0]
    t = llm_teacher(f"openai:{model}")
    try:
        assert t.backend.token_param == "max_completion_tokens"  # token_param "auto"
        assert t.feedback(*item).rejected is None
    finally:
        t.close()
    assert stats(server)["params"] == {"max_completion_tokens=768": 1, "temperature=absent": 1}
    capsys.readouterr()
    with pytest.raises(TripostError, match=f"'{model}' is an OpenAI reasoning model, which takes only the default temperature"):
        llm_teacher(f"openai:{model}", temperature=0.0)
    assert main(["teach", "--teacher", f"openai:{model}", "--task", "arithmetic", str(teach_file(tmp_path, 1)),
                 "--teacher-temperature", "0.2", "--no-teacher-cache"]) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and f"teacher openai:{model}: temperature 0.2 is set" in err[0], err
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), f"teacher.spec=openai:{model}", "teacher.temperature=0"]) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and err[0].startswith("tripost run: error: teacher 'openai:") and "temperature 0 is set" in err[0], err
    assert not out.exists() and stats(server)["requests"] == 1


def test_serve_teacher_refuses_what_openai_reasoning_models_refuse(server):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key=TOKEN, max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    for model in ("gpt-5", "o3-mini", "gpt-5.4-mini-2026-03-17"):
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model=model, messages=messages, temperature=0, max_completion_tokens=16)
        assert bad.value.status_code == 400 and bad.value.body["code"] == "unsupported_value" and bad.value.body["param"] == "temperature"
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model=model, messages=messages, max_tokens=16)
        assert bad.value.body["param"] == "max_tokens"
        # The default temperature, sent or not, passes the check (then the scripted teacher wants its request block).
        for kw in ({"temperature": 1}, {}):
            with pytest.raises(openai.BadRequestError, match="tripost-request"):
                client.chat.completions.create(model=model, messages=messages, max_completion_tokens=16, **kw)
    with pytest.raises(openai.BadRequestError, match="tripost-request"):  # other models take any temperature
        client.chat.completions.create(model="gpt-4.1-mini", messages=messages, temperature=0, max_tokens=16)


def test_a_set_temperature_reaches_a_model_that_takes_one(server):
    item = wrong_attempts(1)[0]
    for temperature in (0.0, 0.3):
        t = llm_teacher("openai:scripted", temperature=temperature)
        try:
            assert t.build_request("feedback", *item).temperature == temperature  # what the key records
            assert t.feedback(*item).rejected is None
        finally:
            t.close()
    params = stats(server)["params"]
    assert params.get("temperature=0.0") == 1 and params.get("temperature=0.3") == 1, params
    assert "temperature=absent" not in params


def test_run_config_teacher_section_reaches_make_teacher_and_the_server(server, tmp_path):
    prices = prices_file(tmp_path)
    cfg = RunConfig.load(None, ["teacher.spec=openai:scripted", "teacher.timeout=30", "teacher.max_attempts=2", "teacher.max_tokens=99", "teacher.temperature=0.5",
                                "teacher.token_param=max_completion_tokens", "teacher.concurrency=3", "teacher.cache=false",
                                f"teacher.prices={prices}"]).to_dict()
    t = Run(tmp_path / "run", cfg, progress=False).teacher()
    try:
        assert isinstance(t, PromptedTeacher)
        assert (t.max_tokens, t.temperature, t.requester.concurrency, t.cache) == (99, 0.5, 3, None)
        assert t.feedback(*wrong_attempts(1)[0]).rejected is None
        assert t.backend.timeout == 30 and t.backend.client().timeout == 30  # the SDK client's own
        assert t.requester.policy.max_attempts == 2
        assert t.ledger.unpriced_models() == [] and t.ledger.total_cost() > 0
    finally:
        t.close()
    assert {"max_completion_tokens=99", "temperature=0.5"} <= set(stats(server)["params"])


def test_a_run_made_before_the_teacher_options_resumes_with_their_defaults(tmp_path):
    cfg = RunConfig.load().to_dict()
    old = copy.deepcopy(cfg)
    old["teacher"] = {"spec": "scripted", "concurrency": 8}
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(old))
    said: list[str] = []
    Run(run, cfg, progress=False, log=said.append).prepare()
    assert len(said) == 1 and "made before these config keys existed; resuming with" in said[0] and 'teacher.token_param="auto"' in said[0]


# ---------------------------------------------------------------- the flags ---


def teach_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "attempts.jsonl"
    path.write_text("".join(json.dumps({**p.to_dict(), "attempt": a}) + "\n" for p, a in wrong_attempts(n, seed=3)))
    return path


def test_teach_flags_reach_make_teacher_and_requests_run_concurrently(monkeypatch, tmp_path, capsys):
    attempts = teach_file(tmp_path, 8)
    cache = tmp_path / "home" / "teacher-cache.sqlite"
    with start_server(ScriptedTeacher(), token=TOKEN, faults=Faults(latency=0.1)) as srv:
        point_at(monkeypatch, srv)
        assert main(["teach", "--teacher", "openai:scripted", "--task", "arithmetic", str(attempts),
                     "--teacher-token-param", "max_completion_tokens", "--teacher-max-tokens", "99", "--teacher-temperature", "0.25",
                     "--teacher-concurrency", "3", "--teacher-prices", str(prices_file(tmp_path)), "--no-teacher-cache"]) == 0
        s = stats(srv)
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 8 and all(r["rejected"] is None and r["improved"] for r in rows)
    assert [r["id"] for r in rows] == [json.loads(line)["id"] for line in attempts.read_text().splitlines()]  # input order
    n = s["requests"]
    assert s["params"] == {"max_completion_tokens=99": n, "temperature=0.25": n}
    assert 2 <= s["max_in_flight"] <= 3  # concurrent, and bounded by --teacher-concurrency
    assert "cost $" in err and "unpriced" not in err and WARNING not in err
    assert not cache.exists()  # --no-teacher-cache

    # The defaults: one at a time with --teacher-concurrency 1, max_tokens, cached.
    with start_server(ScriptedTeacher(), token=TOKEN, faults=Faults(latency=0.05)) as srv:
        point_at(monkeypatch, srv)
        assert main(["teach", "--teacher", "openai:scripted", "--task", "arithmetic", str(attempts), "--teacher-concurrency", "1"]) == 0
        s = stats(srv)
    assert s["max_in_flight"] == 1
    # auto: greedy where the model takes a temperature (the authors' feedback and fixes at 0.0)
    assert set(s["params"]) == {"max_tokens=768", "temperature=0.0"}
    assert cache.exists()


def test_collect_flags_reach_make_teacher(monkeypatch, tmp_path):
    """The flags `collect` gets are the ones `teach` gets: one definition."""
    from tripost.cli import build_parser
    from tripost.teachers import TeacherOptions

    flags = ["--teacher-timeout", "12.5", "--teacher-max-attempts", "3", "--teacher-max-tokens", "64", "--teacher-temperature", "0.7",
             "--teacher-token-param", "max_completion_tokens", "--teacher-concurrency", "5", "--no-teacher-cache"]
    parser = build_parser()
    collect_args = parser.parse_args(["collect", "--task", "arithmetic", "--out", str(tmp_path / "c"), *flags])
    teach_args = parser.parse_args(["teach", "--teacher", "openai:scripted", "--task", "arithmetic", *flags])
    options = TeacherOptions.from_args(collect_args)
    assert options == TeacherOptions.from_args(teach_args)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    t = make_teacher("openai:scripted", **options.teacher_kwargs())
    try:
        assert t.backend.timeout == 12.5 and t.backend.token_param == "max_completion_tokens" and t.requester.policy.max_attempts == 3
        assert (t.max_tokens, t.temperature, t.requester.concurrency, t.cache) == (64, 0.7, 5, None)
    finally:
        t.close()
    # And the defaults of the flags are the run config's.
    defaults = TeacherOptions.from_args(parser.parse_args(["collect", "--task", "arithmetic", "--out", str(tmp_path / "c")]))
    assert {k: v for k, v in RunConfig.load().to_dict()["teacher"].items() if k != "spec"} == TeacherOptions.config_defaults()
    assert defaults == TeacherOptions()


# -------------------------------------------------------------- wrong values ---


@pytest.mark.parametrize("override, needle", [
    ('teacher.timeout="x"', "config key 'teacher.timeout' must be a number"),
    ("teacher.timeout=0", "teacher.timeout must be more than 0 seconds"),
    ("teacher.token_param=max_tokenz", "teacher.token_param must be one of auto, max_tokens, max_completion_tokens, not 'max_tokenz'"),
    ("teacher.temperature=3", "teacher.temperature must be between 0 and 2"),
    ("teacher.temperature=hot", "teacher.temperature must be a number between 0 and 2 (or unset: the provider's default), not 'hot'"),
    ("teacher.temperature=true", "teacher.temperature must be a number between 0 and 2"),
    ("teacher.max_tokens=-1", "teacher.max_tokens must be at least 1"),
    ("teacher.max_attempts=0", "teacher.max_attempts must be at least 1 (the first try), not 0"),
    ("teacher.concurrency=0", "teacher.concurrency must be at least 1"),
    ("teacher.cache=maybe", "config key 'teacher.cache' must be true/false"),
    ("teacher.prices=no-such-prices.toml", "teacher.prices: price table no-such-prices.toml: cannot read"),
    ("teacher.prices=5", "teacher.prices must be a file name"),
])
def test_a_wrong_teacher_option_in_the_run_config_is_one_line(tmp_path, capsys, override, needle):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), override]) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and err[0].startswith("tripost run: error: ") and needle in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("flags, needle", [
    (["--teacher-timeout", "x"], "argument --teacher-timeout: invalid float value: 'x'"),
    (["--teacher-token-param", "max_tokenz"], "argument --teacher-token-param: invalid choice: 'max_tokenz'"),
    (["--teacher-timeout", "0"], "tripost teach: error: --teacher-timeout must be more than 0 seconds"),
    (["--teacher-max-attempts", "0"], "tripost teach: error: --teacher-max-attempts must be at least 1 (the first try), not 0"),
    (["--teacher-temperature", "-1"], "tripost teach: error: --teacher-temperature must be between 0 and 2"),
    (["--teacher-temperature", "x"], "tripost teach: error: --teacher-temperature must be a number between 0 and 2"),
    (["--teacher-prices", "BAD"], "tripost teach: error: --teacher-prices: price table"),
])
def test_a_wrong_teacher_flag_is_one_line(tmp_path, capsys, flags, needle):
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml\n")
    flags = [str(bad) if f == "BAD" else f for f in flags]
    argv = ["teach", "--teacher", "openai:scripted", "--task", "arithmetic", str(teach_file(tmp_path, 1)), *flags]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse: a usage error
        rc = e.code
    assert rc == 2
    err = err_lines(capsys)
    assert len(err) == 1 and needle in err[0], err
    assert TOKEN not in err[0]


@pytest.fixture
def serve_logger():
    """serve-teacher's command installs a stderr handler on its logger (and
    stops propagation); put it back as it was, so that a later test's server
    does not write to this test's closed capture stream."""
    import logging

    logger = logging.getLogger("tripost.serve")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


def test_gap_and_serve_teacher_take_the_teacher_options(monkeypatch, tmp_path, capsys, serve_logger):
    """The last two verbs that build an LLM teacher: `gap --verifier teacher`
    and serve-teacher as a proxy take the same --teacher-* flags, checked
    before any model loads or any port opens."""
    from tripost.serve.command import main as serve_main

    argv = ["gap", "--task", "arithmetic", "--verifier", "teacher", "--teacher", "openai:scripted", "--n", "1"]
    assert main([*argv, "--teacher-timeout", "0"]) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and "--teacher-timeout must be more than 0 seconds" in err[0], err
    seen = {}

    def fake_make_teacher(spec, **kw):
        seen.update(kw, spec=spec)
        raise SystemExit(0)  # stop before a model loads or a server starts

    # gap and serve-teacher import make_teacher by name: patch it where they look it up
    monkeypatch.setattr("tripost.cli.gap_cmd.make_teacher", fake_make_teacher)
    monkeypatch.setattr("tripost.serve.command.make_teacher", fake_make_teacher)
    with pytest.raises(SystemExit):
        main([*argv, "--teacher-max-tokens", "77", "--teacher-temperature", "0.5"])
    assert (seen["spec"], seen["max_tokens"], seen["temperature"]) == ("openai:scripted", 77, 0.5)
    seen.clear()
    with pytest.raises(SystemExit):
        serve_main(["--backend", "openai:scripted", "--port", "0", "--teacher-max-tokens", "55", "--no-cache"])
    assert (seen["max_tokens"], seen["cache"]) == (55, False)
    assert serve_main(["--backend", "openai:scripted", "--port", "0", "--teacher-temperature", "5"]) == 2
    assert "--teacher-temperature must be between 0 and 2" in capsys.readouterr().err


# ----------------------------------------------------------- the cache key ---


def test_the_cache_key_holds_the_endpoint(monkeypatch, tmp_path):
    """Two servers that serve a model of the same name do not share answers
    through the cache; the same server does."""
    cache = tmp_path / "cache.sqlite"
    item = wrong_attempts(1)[0]
    with start_server(ScriptedTeacher(), token=TOKEN) as a, start_server(ScriptedTeacher(), token=TOKEN) as b:
        for srv, cached in ((a, False), (b, False), (a, True), (b, True)):
            for sdk in ("openai", "anthropic"):
                point_at(monkeypatch, srv)
                t = llm_teacher(f"{sdk}:scripted", cache=cache)
                try:
                    reply = t.feedback(*item)
                finally:
                    t.close()
                assert reply.rejected is None and reply.calls[0].cached is cached, (srv.url, sdk)
        assert stats(a)["requests"] == stats(b)["requests"] == 2  # one per SDK, then cache hits


# ------------------------------------------------------------------ prices ---


def test_an_unpriced_model_warns_once(capsys):
    u = Usage(input_tokens=10, output_tokens=5)
    ledger = Ledger(PriceTable({"priced-model": {"input": 1.0, "output": 1.0}}))
    for _ in range(3):
        ledger.record("openai", "mystery-model", u)
        ledger.record("openai", "priced-model", u)
        ledger.record("hf", "/models/local", u)  # runs here: nothing to bill, nothing to warn about
    err = err_lines(capsys)
    assert len(err) == 1 and WARNING in err[0] and "'mystery-model'" in err[0], err
    assert ledger.unpriced_models() == ["openai:mystery-model"]


def test_an_unpriced_teacher_shows_as_unpriced_in_collect_teach_and_the_report(server, tmp_path, capsys):
    problems = sample_problems(TASK, n=4, seed=1)
    wrong = dict((p.id, a) for p, a in wrong_attempts(4, seed=1))

    def sampler(batch, n, seed):
        return [[wrong[p.id]] * n for p in batch]

    results = {}
    for name, prices in (("unpriced", None), ("priced", prices_file(tmp_path))):
        t = llm_teacher("openai:scripted", prices=prices)
        try:
            results[name] = collect(problems, sampler, t, tmp_path / name / "log.jsonl", CollectConfig(), progress=False)
        finally:
            t.close()
    warnings = [line for line in err_lines(capsys) if WARNING in line]
    assert len(warnings) == 1, warnings  # once for the whole collection, none with a price
    assert results["unpriced"].unpriced == ["openai:scripted"] and results["unpriced"].cost_usd == 0
    assert results["priced"].unpriced == [] and results["priced"].cost_usd > 0

    # The run report: "unpriced", not 0.0000.
    run = tmp_path / "run"
    (run / "it1" / "collect").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(RunConfig.load(None, ["teacher.spec=openai:scripted"]).to_dict()))
    (run / "it1" / "collect" / "collect.json").write_text(json.dumps(results["unpriced"].to_dict()))
    report = render_markdown(collect_run(run), [])
    row = next(line for line in report.splitlines() if line.startswith("| it1 |"))
    assert "| unpriced |" in row and "0.0000" not in row
    assert "`openai:scripted` answered with no price" in report
    (run / "it1" / "collect" / "collect.json").write_text(json.dumps(results["priced"].to_dict()))
    report = render_markdown(collect_run(run), [])
    assert "unpriced" not in report and f"| {results['priced'].cost_usd:.4f} |" in report

    # tripost teach: the summary line says so too.
    attempts = teach_file(tmp_path, 2)
    assert main(["teach", "--teacher", "openai:scripted", "--task", "arithmetic", str(attempts), "--no-teacher-cache"]) == 0
    err = err_lines(capsys)
    assert sum(WARNING in line for line in err) == 1
    assert err[-1].startswith("taught 2:") and err[-1].endswith("cost unpriced"), err


def test_auto_temperature_is_greedy_where_the_model_takes_one_else_the_provider_default():
    """teacher.temperature=auto (the default): 0 for a model that takes a
    temperature (the authors' feedback and fixes), nothing for one that takes
    only its default; "" (unset) is always nothing."""
    from tripost.teachers import TeacherOptions
    from tripost.teachers.sampling import AUTO, parse_temperature, rule_for

    assert parse_temperature("auto", "t") == AUTO and parse_temperature("", "t") is None and parse_temperature(0.3, "t") == 0.3
    assert rule_for("openai", "gpt-4.1-mini").request_temperature(AUTO, "x") == 0.0
    assert rule_for("hf", "/some/model").request_temperature(AUTO, "x") == 0.0
    assert rule_for("openai", "gpt-5.4-mini").request_temperature(AUTO, "x") is None
    assert rule_for("anthropic", "claude-haiku-5-5", anthropic_version="2026-10-21").request_temperature(AUTO, "x") is None
    assert rule_for("anthropic", "claude-haiku-5-5", anthropic_version="2023-06-01").request_temperature(AUTO, "x") == 0.0
    assert TeacherOptions().temperature == AUTO
